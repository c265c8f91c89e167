#!/usr/bin/env bash
# Load test of `sark serve` on loopback with wrk: an all-cache-hit mix and an all-miss mix
# (distinct inputs) on the example gateway policy. Run by `make bench` after `make bundle`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y wrk >/dev/null; }

SARK=${SARK:-target/release/sark}
BUNDLE=${BUNDLE:-target/bundles/mcp.wasm}
DURATION=${DURATION:-10s}
LOG=$(mktemp)
$SARK serve --bundle "$BUNDLE" --addr 127.0.0.1:0 >"$LOG" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 50); do grep -q listening "$LOG" && break; sleep 0.1; done
URL="$(sed -n 's/^listening on //p' "$LOG")/v1/data/mcp/gateway/decision"

for mix in hit miss; do
  echo "== $mix mix: wrk -t2 -c32 -d$DURATION"
  wrk -t2 -c32 -d"$DURATION" --latency -s "bench/$mix.lua" "$URL" | grep -E "Requests/sec|Non-2xx|  50%|  99%"
done
