#!/usr/bin/env bash
# Soak and fault test of `sark serve` (`make soak`; not in CI). For SOAK_SECONDS (default
# 1800, 30 minutes) wrk drives a mix of valid, invalid and hostile requests while the bundle file flips
# between a good and a broken bundle every 30 s and the wasm_engine rollout changes every
# 10 s. Reports requests, responses by status, undesigned 5xx, resident memory at start and
# end, and decisions that differ from a reference run on the same inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y wrk >/dev/null; }

SARK=${SARK:-target/release/sark}
SECONDS_TOTAL=${SOAK_SECONDS:-1800}
WORK=$(mktemp -d)
cleanup() {
  for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The example policies plus the hostile fixture (CPU burner) in one bundle.
cp -r policies "$WORK/src"
cp host/tests/fixtures/hostile/hostile.rego "$WORK/src/hostile.rego"
$SARK build "$WORK/src" -o "$WORK/good.wasm" -e hostile/spin >/dev/null 2>&1
head -c 200000 "$WORK/good.wasm" > "$WORK/broken.wasm"   # truncated: refused on reload
cp "$WORK/good.wasm" "$WORK/live.wasm"
cat > "$WORK/sark.yaml" <<YAML
limits: { eval_timeout_ms: 50, native_timeout_ms: 200 }
server: { reload_poll_ms: 1000, admin_token: soak-token }
YAML

start_server() { # $1 = bundle, $2 = log file
  $SARK serve --bundle "$1" --config "$WORK/sark.yaml" --addr 127.0.0.1:0 >"$2" 2>"$2.err" &
  echo $! > "$2.pid"
  for _ in $(seq 1200); do grep -q listening "$2" && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$2"
}

# Reference run: a separate server, no reloads, no rollout changes.
REF_URL=$(start_server "$WORK/good.wasm" "$WORK/ref.log")
python3 bench/soak_requests.py build "$REF_URL" "$WORK"
kill "$(cat "$WORK/ref.log.pid")"

URL=$(start_server "$WORK/live.wasm" "$WORK/soak.log")
PID=$(cat "$WORK/soak.log.pid")
# A bundle starts on the carried evaluator until its snapshot is compiled in the background
# (once per revision; reloads of it then start from the cached snapshot). Wait for that, so
# the start and end samples hold the same kind of instances.
for _ in $(seq 1200); do
  curl -s -H 'Authorization: Bearer soak-token' "$URL/admin/bundle" | grep -q '"instances":"snapshot"' && break
  sleep 0.5
done
echo "instances: $(curl -s -H 'Authorization: Bearer soak-token' "$URL/admin/bundle" | grep -o '"instances":"[a-z]*"' | head -1)"
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
# Anonymous resident memory: heap and wasm linear memories, without the file-backed pages of
# the binary and the compiled code (shared, reclaimable, touched again after each reload).
rss_anon() { awk '/RssAnon/ {print $2}' "/proc/$PID/status"; }
# Warm up until the instance pools of both paths are full, then take the starting memory.
for pct in 0 100; do
  curl -s -o /dev/null -X POST -H 'Authorization: Bearer soak-token' -H 'Content-Type: application/json' \
    -d "{\"feature\":\"wasm_engine\",\"percentage\":$pct}" "$URL/admin/rollout/update"
  SOAK_DATA="$WORK/soak_data.lua" wrk -t2 -c16 -d${WARMUP_SECONDS:-15}s -s bench/soak.lua "$URL" >/dev/null
done
RSS_START=$(rss)
ANON_START=$(rss_anon)
BREAKDOWN_START=$(python3 bench/rss_breakdown.py "$PID")

admin() { curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer soak-token' \
  -H 'Content-Type: application/json' -d "$2" "$URL$1"; }
(
  i=0
  while sleep 10; do
    i=$((i + 1))
    pct=$(( (i * 37) % 101 ))
    echo "rollout wasm_engine=$pct: $(admin /admin/rollout/update "{\"feature\":\"wasm_engine\",\"percentage\":$pct}")"
    echo "rss $((i * 10))s: $(rss) KiB"
    echo "breakdown $((i * 10))s: $(python3 bench/rss_breakdown.py "$PID")"
    if (( i % 3 == 0 )); then
      if (( (i / 3) % 2 == 1 )); then cp "$WORK/broken.wasm" "$WORK/live.wasm.tmp"; echo "bundle: broken"
      else cp "$WORK/good.wasm" "$WORK/live.wasm.tmp"; echo "bundle: good"; fi
      mv "$WORK/live.wasm.tmp" "$WORK/live.wasm"
    fi
  done
) > "$WORK/faults.log" 2>&1 &
echo $! > "$WORK/faults.pid"

python3 bench/soak_requests.py check "$URL" "$WORK" "$SECONDS_TOTAL" > "$WORK/check.out" &
CHECKER=$!
echo "== soak: ${SECONDS_TOTAL}s, wrk -t2 -c16, plus one checking client"
SOAK_DATA="$WORK/soak_data.lua" wrk -t2 -c16 -d"${SECONDS_TOTAL}s" --latency -s bench/soak.lua "$URL" \
  | grep -vE "^\s*$" | tee "$WORK/wrk.out"
wait "$CHECKER" || true
cat "$WORK/check.out"
RSS_END=$(rss)
ANON_END=$(rss_anon)
BREAKDOWN_END=$(python3 bench/rss_breakdown.py "$PID")
echo "faults: $(grep -c rollout "$WORK/faults.log") rollout changes ($(grep -c ': 200' "$WORK/faults.log") accepted), $(grep -c 'bundle:' "$WORK/faults.log") bundle flips"
echo "reloads: $(curl -s "$URL/metrics" | grep '^bundle_reloads_total' | tr '\n' ' ')"
echo "resident memory every 60 s: $(grep '^rss' "$WORK/faults.log" | awk 'NR % 6 == 0 {print $3}' | tr '\n' ' ')KiB"
echo "resident memory: start ${RSS_START} KiB, end ${RSS_END} KiB ($(( (RSS_END - RSS_START) * 100 / RSS_START ))%)"
echo "anonymous resident memory: start ${ANON_START} KiB, end ${ANON_END} KiB ($(( (ANON_END - ANON_START) * 100 / ANON_START ))%)"
# Single samples swing with what is in flight (a hostile evaluation's linear memory, code
# pages touched again after a reload); the medians of the first and last minute do not.
grep '^rss' "$WORK/faults.log" | awk '{print $3}' | python3 -c '
import statistics, sys
v = [int(x) for x in sys.stdin]
if len(v) >= 12:
    a, b = statistics.median(v[:6]), statistics.median(v[-6:])
    print(f"resident memory, median of the first and last minute: {a:.0f} KiB, {b:.0f} KiB "
          f"({(b - a) * 100 / a:+.0f}%); min {min(v)}, max {max(v)} KiB")'
echo "resident memory by holder (KiB, bench/rss_breakdown.py):"
echo "  start: $BREAKDOWN_START"
echo "  end:   $BREAKDOWN_END"
[ -n "${SOAK_LOG:-}" ] && cp "$WORK/faults.log" "$SOAK_LOG"
kill -0 "$PID" && echo "server still running"
