# SARK policy runtime. `make run` builds everything and evaluates the example policies;
# `make test` runs every test. One target directory is shared by guest and host.

CARGO      ?= cargo
GUEST_WASM := target/wasm32-wasip2/guest/sark_guest.wasm
SARK       := target/release/sark
BUNDLE     := target/bundles/mcp.wasm
SAMPLES    := $(sort $(wildcard policies/samples/*.json))
# OPA's compliance cases, shared beside the repository.
CONFORMANCE ?= ../shared/conformance/opa-v1

.PHONY: all run test bench soak fuzz guest host bundle lint fmt clean setup portability-deps cluster-deps client-deps python python-wheel console console-deps

all: host

# Install the wasm target (idempotent; CI and fresh machines need it).
setup:
	@rustup target list --installed | grep -q '^wasm32-wasip2$$' || rustup target add wasm32-wasip2

# The evaluator component, built once and embedded into the `sark` binary.
guest: setup
	$(CARGO) build -p sark-guest --target wasm32-wasip2 --profile guest

host: guest
	$(CARGO) build -p sark -p sark-embed-example --release

# Node (jco) and Python (wasmtime) for the portability tests; pinned by package-lock.json
# and requirements.txt.
portability-deps:
	cd examples/node && npm ci --no-audit --no-fund --loglevel=error
	python3 -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt

# The Python package (sark_runtime): the wheel built with maturin into target/wheels, then
# installed into a virtual environment (target/py-venv) and tested with pytest against the
# real bundles. The wheel reuses the host library already built in target/.
PY_VENV := target/py-venv
python-wheel: host
	@test -x $(PY_VENV)/bin/python || python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r python/requirements-dev.txt
	$(PY_VENV)/bin/maturin build --release --quiet -m python/Cargo.toml -o target/wheels
	$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps target/wheels/sark_runtime-*.whl

python: python-wheel
	SARK=$(CURDIR)/$(SARK) $(PY_VENV)/bin/python -m pytest -q python/tests

# The official OPA clients the REST API tests drive (host/tests/clients): the npm SDK pinned
# by its package-lock.json, opa-python-client pinned in requirements.txt, into the venv.
client-deps:
	cd host/tests/clients/node && npm ci --no-audit --no-fund --loglevel=error
	@test -x $(PY_VENV)/bin/python || python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r host/tests/clients/python/requirements.txt

# redis-server for the cluster tests and docker-registry for the OCI tests (they start their
# own on ephemeral loopback ports).
cluster-deps:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
	@command -v docker-registry >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-registry >/dev/null; }

# Debian's Chromium and chromedriver, and selenium (pinned in requirements.txt) into the
# venv, for the browser test of the rollout console.
console-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
	@test -x $(PY_VENV)/bin/python || python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r host/tests/console/requirements.txt

# The rollout console in headless Chromium against a real `sark serve` under load; saves
# screenshots to target/console-*.png.
console: host console-deps
	SARK=$(CURDIR)/$(SARK) $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider host/tests/console

bundle: host
	@mkdir -p $(dir $(BUNDLE))
	$(SARK) build policies -o $(BUNDLE)

# Build everything, then evaluate each sample input on the component and print the decision.
run: bundle
	@$(SARK) inspect $(BUNDLE)
	@for f in $(SAMPLES); do \
	  case $$f in *a2a*) ep=mcp/a2a/decision ;; *) ep=mcp/gateway/decision ;; esac; \
	  echo "== $$f ($$ep)"; \
	  $(SARK) eval $(BUNDLE) -e $$ep -i $$f || exit 1; \
	done
	@$(SARK) test $(BUNDLE)

# Unit tests, integration tests against the real binary and component, and the Rego tests.
# One `cargo test` over the workspace: it resolves the same features as `make host`, so it
# reuses that build (sark-python is tested by pytest below, sark-benches by `make bench`);
# .ci/same-features.sh fails first when a dependency change would break that.
test: bundle portability-deps cluster-deps client-deps console-deps
	.ci/same-features.sh
	$(CARGO) test --workspace --release --exclude sark-python --exclude sark-benches
	$(MAKE) python
	$(MAKE) console
	$(SARK) test policies
	python3 conformance/authzen.py --sark $(SARK) --bundle $(BUNDLE)
	@if [ -d $(CONFORMANCE) ]; then \
	  $(SARK) conformance $(CONFORMANCE) --min-passed $$(cat conformance/baseline.txt); \
	else echo "warning: $(CONFORMANCE) not found; conformance ratchet not run"; fi

bench: bundle cluster-deps python-wheel
	$(SARK) bench $(BUNDLE) -e mcp/gateway/decision -i policies/samples/developer-create-issue.json --path all --duration 5
	$(SARK) build bench/rbac -o target/bundles/rbac.wasm
	$(SARK) bench target/bundles/rbac.wasm -e rbac/allow -i bench/rbac/input.json --path all --duration 5
	$(CARGO) build --release -p sark --example bare_axum
	$(CARGO) bench -p sark-benches --bench cache
	$(CARGO) bench -p sark-benches --bench evaluate
	bench/load.sh
	bench/ext_authz.sh
	python3 bench/cluster.py $(SARK) $(BUNDLE)
	python3 bench/data.py $(SARK)
	python3 bench/slowloris.py $(SARK) $(BUNDLE)
	python3 bench/overload.py $(SARK) $(BUNDLE)
	python3 bench/tls.py $(SARK) $(BUNDLE)
	python3 bench/logs.py $(SARK) $(BUNDLE)
	python3 bench/edit.py $(SARK) policies
	$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r examples/python/requirements.txt
	$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --ignore-requires-python -r bench/requirements-opa.txt
	$(PY_VENV)/bin/python bench/python.py $(BUNDLE) policies policies/samples/developer-create-issue.json

# Soak and fault test (30 minutes; not in CI): SOAK_SECONDS=60 make soak for a short run.
soak: host
	bench/soak.sh

# Fuzz targets, briefly (FUZZ_SECONDS each; 10+ minutes per target for a real campaign).
# Needs nightly and cargo-fuzz: installed here when missing.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS = decide_input bundle_loader config_yaml http_body ext_authz_check downloaded_bundle
fuzz: guest
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
	@rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p target/corpus/$$t && \
	  SARK_EVALUATOR_WASM=$(CURDIR)/target/wasm32-wasip2/guest/sark_guest.wasm \
	    cargo +nightly fuzz run -s none -O $$t target/corpus/$$t corpus/$$t -- \
	      -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -timeout=10 || exit 1; \
	done

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --release --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
