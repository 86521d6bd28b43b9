#!/usr/bin/env bash
# Regenerates the bundled fraud model (domain/fraud/model.ubj and training.json) with real
# xgboost from PyPI, on data from `cutover dataset`. CI does not run this; it reads the
# committed model.
set -euo pipefail
cd "$(dirname "$0")/.."
env=target/train-venv
if [ ! -x "$env/bin/python" ]; then
  python3 -m venv "$env"
  "$env/bin/pip" install -q xgboost-cpu==3.2.0 pandas==3.1.1 numpy==2.4.6
fi
mkdir -p target/train
command="cutover dataset --requests 300000 --seed 2026 --rate-rps 5 --out target/train/fraud.csv"
cargo run --release --quiet -- ${command#cutover }
"$env/bin/python" scripts/train_reference.py target/train/fraud.csv domain/fraud "$command"
