#!/usr/bin/env bash
# Replay throughput and memory on a large recorded file (issue 8): records N requests from
# the bundled domain (default 10 million, about 870 MB of CSV in a temporary folder),
# replays them, and prints the peak resident memory and the rows per second for N/100,
# N/10 and N rows, so that a flat memory shows as flat. Also times JSON lines on N/10.
#
# usage: scripts/replay_figures.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000000}"
cargo build --release --locked -q
bin=target/release/cutover
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
measure() { # file rows
  /usr/bin/time -f "%e %M" "$bin" replay --migration domain/fraud --requests "$1" --out "$tmp/out" >/dev/null 2>"$tmp/time" || true
  read -r secs kb < <(tail -1 "$tmp/time")
  awk -v f="${1##*.}" -v n="$2" -v s="$secs" -v kb="$kb" \
    'BEGIN { printf "%-6s %10d rows  %7.1f s  %9.0f rows/s  peak RSS %6.1f MB\n", f, n, s, n / s, kb / 1024 }'
}
echo "recording $n requests..."
"$bin" record --migration domain/fraud --requests "$n" --rate-rps 200 --out "$tmp/all.csv"
for k in 100 10 1; do
  rows=$((n / k))
  head -n $((rows + 1)) "$tmp/all.csv" > "$tmp/part.csv"
  measure "$tmp/part.csv" "$rows"
done
"$bin" record --migration domain/fraud --requests $((n / 10)) --rate-rps 200 --out "$tmp/part.jsonl"
measure "$tmp/part.jsonl" $((n / 10))
