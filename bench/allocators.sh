#!/usr/bin/env bash
# Allocator comparison (issue 20): the same load on two builds of `sark serve` in one run,
# alternated (A B A B) so that machine noise falls on both: glibc's malloc (the default
# build, tuned by host/src/allocator.rs) and jemalloc with background purging
# (`cargo build --release -p sark --features jemalloc`). For each build and mix (all cache
# hits, all misses) wrk's req/s, p99 and non-2xx answers, and the server's resident memory
# after its runs. The bound on concurrent evaluations is lifted: nothing is shed.
#   bench/allocators.sh target/release/sark /tmp/sark-jemalloc
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?glibc build}; B=${2:?jemalloc build}
BUNDLE=${BUNDLE:-target/bundles/mcp.wasm}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
WORK=$(mktemp -d)
trap 'for f in "$WORK"/*.pid; do kill "$(cat "$f")" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
printf 'server: { reload_poll_ms: 0, max_concurrent_evaluations: 100000 }\n' > "$WORK/sark.yaml"
start() { # $1 = name, $2 = binary
  "$2" serve --bundle "$BUNDLE" --config "$WORK/sark.yaml" --addr 127.0.0.1:0 >"$WORK/$1.log" 2>/dev/null &
  echo $! > "$WORK/$1.pid"
  for _ in $(seq 100); do grep -q listening "$WORK/$1.log" && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$WORK/$1.log"
}
URL_A="$(start glibc "$A")/v1/data/mcp/gateway/decision"
URL_B="$(start jemalloc "$B")/v1/data/mcp/gateway/decision"
for round in $(seq "$ROUNDS"); do
  for mix in hit miss; do
    for name in glibc jemalloc; do
      url=$URL_A; [ "$name" = jemalloc ] && url=$URL_B
      out=$(wrk -t2 -c32 -d"$DURATION" --latency -s "bench/$mix.lua" "$url")
      echo "round $round $mix $name: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s, p99 $(echo "$out" | awk '$1 == "99%" {print $2}'), non-2xx $(echo "$out" | awk '/Non-2xx/ {print $5}')"
    done
  done
done
for name in glibc jemalloc; do
  echo "$name resident memory after the runs: $(awk '/VmRSS/ {print $2}' "/proc/$(cat "$WORK/$name.pid")/status") KiB"
done
