#!/usr/bin/env bash
# Detection quality of the three judges, side by side (issues 5 and 15): every fault
# scenario over FAULT_SEEDS seeds and every clean scenario over CLEAN_SEEDS seeds, for
# sequential, flagger and argo at once (the judges of one seed share a world until their
# decisions diverge). Sweeps land in target/quality/{faults,clean}/<policy>/sweep.json, the
# side-by-side tables in target/quality/{faults,clean}/comparison.md and on standard output,
# with the wall time of each part.
#
# usage: scripts/detection_quality.sh [FAULT_SEEDS] [CLEAN_SEEDS] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
fault_seeds=${1:-100}
clean_seeds=${2:-500}
jobs=${3:-2}
cargo build --release --quiet
# The whole library, both bundled migrations: a scenario that expects a rollback is a
# fault scenario, any other (promoted, or held in progress) a clean one.
library=$(ls scenarios/*.toml scenarios/eta/*.toml)
# shellcheck disable=SC2086
faults=$(grep -l '^outcome = "rolled_back"' $library)
# shellcheck disable=SC2086
cleans=$(grep -L '^outcome = "rolled_back"' $library)
run() {
  local part=$1 seeds=$2
  shift 2
  local start=$SECONDS
  # Runs that miss their scenario's SLOs (the anchors, by design) exit 1: the table says so.
  ./target/release/cutover suite "$@" --seeds "$seeds" --policy sequential,flagger,argo --jobs "$jobs" \
    --out "target/quality/$part" > "target/quality/$part.log" || true
  echo "## ${part}: $seeds seeds, $((SECONDS - start)) s wall on $jobs jobs"
  echo
  cat "target/quality/$part/comparison.md"
  echo
}
mkdir -p target/quality
# shellcheck disable=SC2086
run faults "$fault_seeds" $faults
# shellcheck disable=SC2086
run clean "$clean_seeds" $cleans
