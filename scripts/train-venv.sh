#!/usr/bin/env bash
# The virtualenv the training scripts share (target/train-venv): real xgboost and pandas
# from PyPI, pinned. Prints its python.
set -euo pipefail
cd "$(dirname "$0")/.."
env=target/train-venv
if [ ! -x "$env/bin/python" ]; then
  python3 -m venv "$env" >&2
  "$env/bin/pip" install -q xgboost-cpu==3.2.0 pandas==3.1.1 numpy==2.4.6 >&2
fi
echo "$env/bin/python"
