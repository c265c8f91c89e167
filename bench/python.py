"""Python in-process figures for `make bench`, one run, printed as ratios.

- sark_runtime `evaluate` of the gateway decision (decision cache off) against the Rust
  `decide()` time of the same calls (`Decision.elapsed_us`, measured inside Rust);
- a decision-cache hit from Python, and a `PolicyCache.get` hit;
- the wasmtime-py example (`examples/python/eval.py`, the bundle's WIT exports from Python);
- OPA (Go) in process through `opa-golib-python-bindings` on the same policies, data and
  input, with the bridge's own cost (a constant rule) reported beside it;
- 4 threads evaluating against 1 (decisions release the GIL).

Run: python bench/python.py <bundle.wasm> <policy dir> <input.json> (make bench does).
"""

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sark_runtime import OPAClient, PolicyCache

ENTRYPOINT = "mcp/gateway/decision"
ROOT = Path(__file__).resolve().parents[1]


ROUNDS = 3


def median_us(call, seconds=0.7):
    """The median of `ROUNDS` round medians (this machine is noisy; the figures of one
    report are taken interleaved, see `main`)."""
    for _ in range(300):
        call()
    samples = []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        t = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - t) / 1000)
    return statistics.median(samples), len(samples)


def interleaved(calls):
    """Runs every call's measurement once per round, `ROUNDS` rounds: {name: median µs}."""
    rounds = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            rounds[name].append(median_us(call)[0])
    return {name: statistics.median(r) for name, r in rounds.items()}


def throughput(client, data, threads, seconds=2.0):
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i):
        n = 0
        while time.perf_counter() < stop:
            client.evaluate(ENTRYPOINT, data)
            n += 1
        counts[i] = n

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / seconds


def opa_golib(policy_dir):
    """OPA's engine with the same policies and data plus a constant rule (the bridge's own
    cost): (engine, package path, None), or None when the bindings are not installed."""
    try:
        from opa_bindings import OpaEngine
    except ImportError:
        return None
    engine = OpaEngine()
    for f in sorted(Path(policy_dir).rglob("*.rego")):
        if not f.name.endswith("_test.rego"):
            engine.add_policy(str(f), f.read_text())
    for f in sorted(Path(policy_dir).rglob("data.json")):
        rel = f.parent.relative_to(policy_dir).parts
        if rel:
            engine.add_data(json.loads(f.read_text()), path="/".join(rel))
        else:
            engine.add_data(json.loads(f.read_text()))
    engine.add_policy("bridge.rego", "package sark_bench_bridge\n\nx := 1\n")
    return engine, ENTRYPOINT.replace("/", "."), None


def wasmtime_py(bundle, data):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump([{"entrypoint": ENTRYPOINT, "input": data}], f)
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples/python/eval.py"), bundle, f.name],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return None
    return json.loads(out.stderr.strip().splitlines()[-1])["median_us"]


def main():
    bundle, policy_dir, input_path = sys.argv[1:4]
    data = json.loads(Path(input_path).read_text())
    no_cache = {"features": {"decision_cache": {"enabled": False, "rollout_percentage": 0}}}
    client = OPAClient(bundle, config=no_cache)
    want = client.evaluate(ENTRYPOINT, data)
    # The same client routed to the native path (the RVM programs outside the sandbox), as a
    # wasm_engine rollout of 0% routes it in `sark serve`.
    native_config = {"features": {**no_cache["features"],
                                  "wasm_engine": {"enabled": True, "rollout_percentage": 0}}}
    native = OPAClient(bundle, config=native_config)
    assert native.evaluate(ENTRYPOINT, data) == want, "the paths disagree"

    cached = OPAClient(bundle)
    cache = PolicyCache()
    cache.set("key", want)
    rust = []
    calls = {
        "py": lambda: client.evaluate(ENTRYPOINT, data),
        "py_native": lambda: native.evaluate(ENTRYPOINT, data),
        "rust": lambda: rust.append(client.decide(ENTRYPOINT, data).elapsed_us),
        "hit": lambda: cached.evaluate(ENTRYPOINT, data),
        "get": lambda: cache.get("key"),
    }
    opa_engine = opa_golib(policy_dir)
    if opa_engine is not None:
        engine, package, opa_result = opa_engine
        calls["opa"] = lambda: engine.eval_document(package, data)
        calls["bridge"] = lambda: engine.eval_document("sark_bench_bridge.x", data)
    m = interleaved(calls)
    py_us, rust_us, hit_us, get_us = m["py"], statistics.median(rust), m["hit"], m["get"]
    n = len(rust)
    one = throughput(client, data, 1)
    four = throughput(client, data, 4)
    wt_us = wasmtime_py(bundle, data)
    opa = None if opa_engine is None else (m["opa"], m["bridge"], opa_result)

    if opa is not None:
        opa = (opa[0], opa[1], opa_engine[0].eval_document(opa_engine[1], data))
    print(f"python evaluate (gateway decision, no cache): median {py_us:.1f} µs "
          f"(medians of {ROUNDS} interleaved rounds)")
    print(f"python evaluate on the native path:         median {m['py_native']:.1f} µs")
    print(f"rust decide() of the same calls:            median {rust_us:.1f} µs ({n} calls)")
    print(f"  python / (rust + 5 µs) = {py_us / (rust_us + 5):.2f} (target <= 1.2)")
    print(f"python decision-cache hit:                  median {hit_us:.2f} µs (target <= 5)")
    print(f"PolicyCache.get hit:                        median {get_us:.2f} µs")
    print(f"threads: 1 -> {one:.0f}/s, 4 -> {four:.0f}/s ({four / one:.2f}x, target >= 1.6)")
    if wt_us is not None:
        print(f"wasmtime-py example:                        median {wt_us:.1f} µs "
              f"({wt_us / py_us:.1f}x slower than sark_runtime, target >= 5)")
    else:
        print("wasmtime-py example: not run (pip install -r examples/python/requirements.txt)")
    if opa is not None:
        opa_us, bridge_us, opa_result = opa
        net = max(opa_us - bridge_us, 0.001)
        same = "same result" if opa_result == want else "DIFFERENT result"
        print(f"OPA (Go) via opa-golib-python-bindings:     median {opa_us:.1f} µs, bridge {bridge_us:.1f} µs, "
              f"net {net:.1f} µs ({same}); sark_runtime is {net / py_us:.1f}x faster net on the component, "
              f"{net / m['py_native']:.1f}x on the native path; {opa_us / py_us:.1f}x and "
              f"{opa_us / m['py_native']:.1f}x with the bridge counted (target >= 5)")
    else:
        print("OPA (Go): not run (pip install --ignore-requires-python opa-golib-python-bindings)")


if __name__ == "__main__":
    main()
