#!/usr/bin/env bash
# Regenerates the bundled fraud model (domain/fraud/model.ubj and training.json) with real
# xgboost from PyPI, on data from `cutover dataset`. CI does not run this; it reads the
# committed model.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(scripts/train-venv.sh)
mkdir -p target/train
command="cutover dataset --migration domain/fraud --requests 300000 --seed 2026 --rate-rps 5 --out target/train/fraud.csv"
cargo run --release --quiet -- ${command#cutover }
"$python" scripts/train_reference.py target/train/fraud.csv domain/fraud "$command"
