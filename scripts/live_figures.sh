#!/usr/bin/env bash
# Issue 6's live figures on this machine, with wrk (Debian's package, installed here if
# missing) as the independent load generator beside goose:
#  1. the router's added latency: legacy called directly vs through the router (rollout
#     held: legacy only), same load;
#  2. the shadow's cost: through the router with the rollout held vs in shadow (every
#     request also sent to the new stack, off the user's path), same load;
#  3. the highest sustained rate through the router in shadow (unthrottled, 64 connections).
# Everything on 127.0.0.1; every run is bounded in time.
#
# usage: scripts/live_figures.sh [SECONDS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
rate=${2:-2000}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
cargo build --release --quiet -p cutover-loadgen --example fixed_rate
fixed=./target/release/examples/fixed_rate
token=figures-token-0123456789
log=$(mktemp)
./target/release/cutover serve --scenario scenarios/live/clean-promotes.toml --port 18080 --legacy-port 18081 \
  --new-port 18082 --token "$token" --hold > "$log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log" "$lua"' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
lua=$(mktemp --suffix .lua)
body=$(python3 -c '
import json
print(json.dumps({"transaction_id": 1, "customer_id": 4242, "event_time_ms": 1767225600000, "amount": 42.5,
  "currency": "EUR", "merchant_category": "5411", "country": "DE", "channel": "web", "device_os": "iOS",
  "account_age_days": 400.0, "card_present": False, "distance_from_home_km": 3.2}))')
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
# wrk2-style fixed rate is not in Debian's wrk: hold the load with a fixed connection count
# instead and report what each achieved.
run() {
  local name=$1 url=$2 conns=$3
  echo "## $name ($conns connections, ${secs}s)"
  wrk -t 2 -c "$conns" -d "${secs}s" --latency -s "$lua" "$url/v1/score" | grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors" || true
  echo
}
# The same load, open loop at a fixed rate.
echo "## fixed rate: $rate requests/s for ${secs}s"
echo "legacy directly:                $($fixed http://127.0.0.1:18081 "$rate" "$secs")"
echo "router, held (legacy only):     $($fixed http://127.0.0.1:18080 "$rate" "$secs")"
echo
run "legacy directly" http://127.0.0.1:18081 8
run "through the router, rollout held (legacy only)" http://127.0.0.1:18080 8
curl -sf -X POST -H "Authorization: Bearer $token" http://127.0.0.1:18080/admin/start >/dev/null
echo "## fixed rate, in shadow"
echo "router, shadow (both stacks):   $($fixed http://127.0.0.1:18080 "$rate" "$secs")"
echo
run "through the router in shadow" http://127.0.0.1:18080 8
run "through the router in shadow, saturated" http://127.0.0.1:18080 64
curl -sf -H "Authorization: Bearer $token" http://127.0.0.1:18080/admin/rollout | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("router-side user latency by phase (ms):")
for p in v["user_latency_ms"]:
    if p["requests"]:
        print("  %-18s %8d requests  p50 %.3f  p99 %.3f" % (p["phase"], p["requests"], p["p50"], p["p99"]))
print("phase", v["phase"], "requests", v["requests_total"], "failed", v["requests_failed"])'
