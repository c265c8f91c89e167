#!/usr/bin/env bash
# ext_authz (gRPC Check) beside /v1/data on one `sark serve`, same policy, same decision,
# all cache hits: /v1/data with wrk (HTTP/1.1, closed loop), Check with
# host/examples/ext_authz_load.rs (HTTP/2, closed loop, then paced at $RATE/s). Run by
# `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y wrk >/dev/null; }

SARK=${SARK:-target/release/sark}
DURATION=${DURATION:-10}
RATE=${RATE:-10000}
BUNDLE=target/bundles/envoy.wasm
cargo build --release --quiet --example ext_authz_load
LOAD=target/release/examples/ext_authz_load
$SARK build host/tests/fixtures/envoy -o "$BUNDLE" >/dev/null
DIR=$(mktemp -d)
printf 'server: { reload_poll_ms: 0 }\next_authz: { addr: "127.0.0.1:0" }\n' >"$DIR/sark.yaml"
$SARK serve --bundle "$BUNDLE" --config "$DIR/sark.yaml" --addr 127.0.0.1:0 >"$DIR/out" 2>/dev/null &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do grep -q '^listening' "$DIR/out" && break; sleep 0.1; done
URL="$(sed -n 's/^listening on //p' "$DIR/out")/v1/data/envoy/authz/allow"
GRPC="$(sed -n 's/^ext_authz listening on //p' "$DIR/out")"

echo "== /v1/data (HTTP/1.1): wrk -t2 -c32 -d${DURATION}s"
wrk -t2 -c32 -d"${DURATION}s" --latency -s bench/envoy_data.lua "$URL" | grep -E "Requests/sec|Non-2xx|  50%|  99%"
echo "== ext_authz Check (gRPC), closed loop"
$LOAD "$GRPC" --connections 2 --concurrency 32 --duration "$DURATION"
echo "== ext_authz Check (gRPC), paced"
$LOAD "$GRPC" --connections 2 --concurrency 32 --duration "$DURATION" --rate "$RATE"
