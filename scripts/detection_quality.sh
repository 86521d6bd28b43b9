#!/usr/bin/env bash
# Detection quality of the three judges, side by side (issue 5, point 4): every fault
# scenario over FAULT_SEEDS seeds and every clean scenario over CLEAN_SEEDS seeds, for
# sequential, flagger and argo; sweeps in target/quality/<policy>/{faults,clean}/sweep.json
# and a Markdown table on standard output.
#
# usage: scripts/detection_quality.sh [FAULT_SEEDS] [CLEAN_SEEDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
fault_seeds=${1:-100}
clean_seeds=${2:-500}
jobs=${3:-2}
cargo build --release --quiet
faults=$(ls scenarios/*.toml | grep -v '/clean-')
cleans=$(ls scenarios/clean-*.toml)
for policy in sequential flagger argo; do
  # shellcheck disable=SC2086
  ./target/release/cutover suite $faults --seeds "$fault_seeds" --policy "$policy" --jobs "$jobs" --out "target/quality/$policy/faults" > /dev/null || true
  # shellcheck disable=SC2086
  ./target/release/cutover suite $cleans --seeds "$clean_seeds" --policy "$policy" --jobs "$jobs" --out "target/quality/$policy/clean" > /dev/null || true
done
python3 - <<'PY'
import json
policies = ["sequential", "flagger", "argo"]
data = {p: {} for p in policies}
for p in policies:
    for part in ["faults", "clean"]:
        for s in json.load(open(f"target/quality/{p}/{part}/sweep.json"))["scenarios"]:
            data[p][s["scenario"]] = s
names = sorted(data["sequential"])
def cell(s):
    if s["detection_rate"] is not None:
        t = s["time_to_rollback_s"]
        p50 = "-" if t["p50"] is None else f'{t["p50"]:.0f}'
        p95 = "-" if t["p95"] is None else f'{t["p95"]:.0f}'
        return f'{100 * s["detection_rate"]:.1f} % / {p50} s / {p95} s'
    return f'{100 * s["false_rollback_rate"]:.2f} % false ({s["runs"]} runs)'
print("| scenario | " + " | ".join(policies) + " |")
print("|---|" + "---|" * len(policies))
for n in names:
    print(f"| {n} | " + " | ".join(cell(data[p][n]) for p in policies) + " |")
print()
print("Fault scenarios: detection rate / median / p95 time from fault start to rollback. Clean: false rollback rate.")
PY
