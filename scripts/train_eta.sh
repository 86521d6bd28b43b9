#!/usr/bin/env bash
# Regenerates the bundled ETA example (domain/eta/): its request log (scripts/make_eta.py),
# the legacy path's training rows (`cutover dataset --from`), the model trained by real
# xgboost from PyPI with the log's legacy answers added (scripts/train_eta.py), and the two
# registry entries (`cutover registry add`). CI does not run this; it reads the committed
# files.
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(scripts/train-venv.sh)
mkdir -p target/train
"$python" scripts/make_eta.py domain/eta/requests.csv
cargo build --release --quiet
cutover=target/release/cutover
command="cutover dataset --migration domain/eta --spec domain/eta/legacy.toml --from domain/eta/requests.csv --label delivered_minutes --out target/train/eta.csv"
$cutover ${command#cutover }
"$python" scripts/train_eta.py target/train/eta.csv domain/eta/requests.csv domain/eta "$command"
rm -rf domain/eta/registry && mkdir -p domain/eta/registry
$cutover registry --migration domain/eta add --name eta-xgb --model domain/eta/model.ubj \
  --spec domain/eta/legacy.toml --training-record domain/eta/training.json --stage production
$cutover registry --migration domain/eta add --name eta-xgb --model domain/eta/model.ubj \
  --spec domain/eta/new.toml --training-record domain/eta/training.json --parent eta-xgb/1 --stage staging
