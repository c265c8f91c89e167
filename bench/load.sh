#!/usr/bin/env bash
# Load test of `sark serve` on loopback with wrk: an all-cache-hit mix and an all-miss mix
# (distinct inputs) on the example gateway policy. Run by `make bench` after `make bundle`.
# The hit mix is also run against the bare axum ceiling (`host/examples/bare_axum.rs`: a
# plain axum route that parses the JSON body and answers from a DashMap, no policy work),
# between the two sark runs, so sark's cache-hit throughput is read against the best a plain
# axum route does on the same machine in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y wrk >/dev/null; }

SARK=${SARK:-target/release/sark}
BARE=${BARE:-target/release/examples/bare_axum}
BUNDLE=${BUNDLE:-target/bundles/mcp.wasm}
DURATION=${DURATION:-10s}
LOG=$(mktemp)
BARE_LOG=$(mktemp)
PID=""
BARE_PID=""
trap 'kill $PID $BARE_PID 2>/dev/null || true; rm -f "$LOG" "$BARE_LOG"' EXIT

# Waits for a server's `listening on <url>` line in its log and prints the URL.
listening() {
  for _ in $(seq 50); do grep -q listening "$1" && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$1"
}

# CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}

# Runs wrk with one mix against a URL served by process $3: prints the usual lines and the
# server's CPU time per request (less noisy on a shared machine than the rate, since wrk
# takes its share of the same cores), and leaves Requests/sec in RATE, CPU µs in CPU_US.
RATE=""
CPU_US=""
run() {
  local mix=$1 url=$2 pid=$3 out before after
  before=$(cpu_seconds "$pid")
  out=$(wrk -t2 -c32 -d"$DURATION" --latency -s "bench/$mix.lua" "$url")
  after=$(cpu_seconds "$pid")
  grep -E "Requests/sec|Non-2xx|  50%|  99%" <<<"$out"
  RATE=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  CPU_US=$(awk -v b="$before" -v a="$after" '/ requests in / {n = $1}
    END { if (n > 0) printf "%.1f", (a - b) * 1e6 / n }' <<<"$out")
  echo "server CPU per request: ${CPU_US} µs"
  # Shed requests (503, beyond server.max_concurrent_evaluations and its queue) answer
  # fast: the decisions made per second are the 2xx answers.
  # wrk prints the run time as 5.00s, 1.00m, 1.00h (or ms).
  awk '/ requests in / {n = $1; d = $4; sub(/,$/, "", d); s = d + 0
         if (d ~ /ms$/) s /= 1000; else if (d ~ /m$/) s *= 60; else if (d ~ /h$/) s *= 3600}
       /Non-2xx/ {bad = $5}
       END { if (s > 0) printf "answered 2xx: %.0f/s\n", (n - bad) / s }' <<<"$out"
}

$SARK serve --bundle "$BUNDLE" --addr 127.0.0.1:0 >"$LOG" 2>/dev/null &
PID=$!
URL="$(listening "$LOG")/v1/data/mcp/gateway/decision"

BARE_URL=""
if [ -x "$BARE" ]; then
  $BARE --addr 127.0.0.1:0 >"$BARE_LOG" 2>/dev/null &
  BARE_PID=$!
  BARE_URL=$(listening "$BARE_LOG")
  [ -n "$BARE_URL" ] || echo "bare axum ceiling: $BARE did not start; skipping it"
else
  echo "bare axum ceiling: no $BARE (run \`cargo build --release -p sark --example bare_axum\`); skipping it"
fi

echo "== hit mix: wrk -t2 -c32 -d$DURATION"
run hit "$URL" "$PID"
SARK_HIT=$RATE
SARK_CPU=$CPU_US

BARE_HIT=""
BARE_CPU=""
if [ -n "$BARE_URL" ]; then
  echo "== hit mix, bare axum ceiling: wrk -t2 -c32 -d$DURATION"
  run hit "$BARE_URL/v1/data/mcp/gateway/decision" "$BARE_PID"
  BARE_HIT=$RATE
  BARE_CPU=$CPU_US
fi

echo "== miss mix: wrk -t2 -c32 -d$DURATION"
run miss "$URL" "$PID"

if [ -n "$BARE_HIT" ]; then
  awk -v x="$SARK_HIT" -v y="$BARE_HIT" -v cx="$SARK_CPU" -v cy="$BARE_CPU" 'BEGIN {
    printf "cache hits: sark %s req/s, bare axum %s req/s, ratio %s\n", x, y,
      (y + 0 > 0 ? sprintf("%.2f", x / y) : "n/a")
    printf "cache hits, server CPU per request: sark %s µs, bare axum %s µs, ratio %s\n", cx, cy,
      (cx + 0 > 0 ? sprintf("%.2f", cy / cx) : "n/a")
  }'
fi
