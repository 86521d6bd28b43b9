#!/usr/bin/env bash
# Installs Debian's Chromium for the dashboard's browser tests (tests/live/browser.rs),
# unless a Chromium is already there. Needs root (or sudo) and Debian's package mirror.
set -euo pipefail
for b in "${CUTOVER_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -n "$b" ] && [ -x "$b" ]; then
    "$b" --version 2>/dev/null || true
    exit 0
  fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y chromium >/dev/null 2>&1 || {
  $SUDO apt-get update -qq
  $SUDO apt-get install -y chromium >/dev/null
}
/usr/bin/chromium --version 2>/dev/null
