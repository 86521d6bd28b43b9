#!/usr/bin/env bash
# Installs the real new platform the live tests run against: Feast (feature server) and
# MLServer with its XGBoost runtime (Open Inference Protocol), each in a virtualenv of its
# own under target/platform/ (they cannot share one: MLServer 1.7.1 needs fastapi < 0.116,
# Feast 0.67 needs starlette >= 1.0.1), and Redis from Debian's packages. Every package is pinned (the *-requirements.txt
# beside this script, frozen from a working install). Idempotent: an installed venv whose
# pins have not changed is kept. Prints the two venvs' bin folders.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
base="${CUTOVER_PLATFORM_DIR:-$root/target/platform}"
mkdir -p "$base"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
  echo "the platform needs Python 3.10 or later as $python (Feast 0.67, MLServer 1.7.1)" >&2
  exit 1
fi
install() { # name requirements
  local env="$base/$1-venv" req="$here/$2"
  local stamp="$env/.requirements.sha256"
  local want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$env/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  rm -rf "$env"
  "$python" -m venv "$env" >&2
  "$env/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
  echo "$want" >"$stamp"
}
# Redis (Debian's package) for the tests that use Feast's Redis online store.
if ! command -v redis-server >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y redis-server >/dev/null 2>&1 || {
    $SUDO apt-get update -qq
    $SUDO apt-get install -y redis-server >/dev/null
  }
fi
install feast feast-requirements.txt
install mlserver mlserver-requirements.txt
"$base/feast-venv/bin/feast" version >&2
"$base/mlserver-venv/bin/mlserver" --version >&2
echo "$base/feast-venv/bin"
echo "$base/mlserver-venv/bin"
