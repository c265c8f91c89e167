#!/usr/bin/env bash
# Checks that `cargo test` (the workspace test of `make test`) resolves every crate `make host`
# builds with the same features. When a dev-dependency turns on another feature of a shared
# crate, cargo builds that crate again for the tests, and everything above it: a feature of
# hashbrown or crossbeam-epoch rebuilds cranelift and wasmtime (about 14 minutes of CI on two
# cores). Prints the crates that differ and fails; runs in seconds (no build).
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per crate and feature set ("name version [features]"); a crate may appear with
# several sets (for build scripts and for the target).
features() {
  cargo tree "$@" -f '{p} [{f}]' --prefix none | sed 's/ (\*)$//' | grep -v '^$' | sort -u
}
python3 - <(features -p sark -p sark-embed-example -e normal,build) \
  <(features --workspace --exclude sark-python --exclude sark-benches -e normal,build,dev) <<'PY'
import collections, sys

def sets(path):
    out = collections.defaultdict(set)
    for line in open(path):
        name, version, rest = line.split(" ", 2)
        out[(name, version)].add(rest.strip())
    return out

build, tests = sets(sys.argv[1]), sets(sys.argv[2])
differ = [k for k in sorted(build.keys() & tests.keys()) if build[k] != tests[k]]
for name, version in differ:
    print(f"  {name} {version}: make host {sorted(build[(name, version)])}, "
          f"cargo test {sorted(tests[(name, version)])}")
if differ:
    print("cargo test resolves these crates with other features than make host (so it "
          "rebuilds them and what depends on them): see .ci/same-features.sh")
    sys.exit(1)
print("cargo test and make host resolve every shared crate with the same features")
PY
