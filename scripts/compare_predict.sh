#!/usr/bin/env bash
# Times `cutover predict` end to end against pandas + xgboost (scripts/predict_xgboost.py)
# on the same 100k-row CSV and model, checks both outputs agree bit for bit, and prints
# the median of several runs of each. Needs python3 and PyPI (a virtualenv under target/).
#
# usage: scripts/compare_predict.sh [ROWS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
runs=${2:-5}
env=target/compare-venv
if [ ! -x "$env/bin/python" ]; then
  python3 -m venv "$env"
  "$env/bin/pip" install -q xgboost-cpu==3.2.0 pandas==3.1.1 numpy==2.4.6
fi
model=tests/fixtures/xgboost/3.2.0/bench_100x6.ubj
work=target/compare
mkdir -p "$work"
[ -f "$work/rows_$rows.csv" ] || "$env/bin/python" scripts/make_rows.py "$rows" "$work/rows_$rows.csv"
cargo build --release --quiet

"$env/bin/python" - "$rows" "$runs" "$model" "$work" <<'PY'
import statistics, subprocess, sys, time
rows, runs, model, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
inp = f"{work}/rows_{rows}.csv"
cmds = {
    "cutover predict": ["target/release/cutover", "predict", "--model", model, "--input", inp, "--output", f"{work}/cutover.csv"],
    "python pandas+xgboost": [sys.executable, "scripts/predict_xgboost.py", model, inp, f"{work}/python.csv"],
}
times = {}
for name, cmd in cmds.items():
    subprocess.run(cmd, check=True)  # warm the page cache
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        samples.append(time.perf_counter() - t)
    times[name] = statistics.median(samples)
    print(f"{name:24s} median {times[name]*1000:8.1f} ms over {runs} runs ({rows / times[name] / 1e6:.2f} M rows/s)")
import numpy as np
a = np.loadtxt(f"{work}/cutover.csv", skiprows=1, dtype=np.float32)
b = np.loadtxt(f"{work}/python.csv", skiprows=1, dtype=np.float32)
same = np.array_equal(a.view(np.uint32), b.view(np.uint32))
print(f"outputs identical bit for bit: {same} ({len(a)} rows)")
print(f"speedup: {times['python pandas+xgboost'] / times['cutover predict']:.1f}x")
sys.exit(0 if same else 1)
PY
