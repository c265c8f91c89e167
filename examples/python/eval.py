"""Evaluates the test vectors against a SARK bundle in Python, through the bundle's WIT
exports, with the `wasmtime` package.

Run: pip install -r requirements.txt && python3 eval.py <bundle.wasm> <vectors.json>
Prints one JSON line per vector: {"result": v} | {} (undefined) | {"error": "<kind>"},
then the median latency of the first vector as {"median_us": ...} on stderr.
"""
import json
import sys
import time

import wasmtime
import wasmtime.component as component


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python3 eval.py <bundle.wasm> <vectors.json>", file=sys.stderr)
        return 2
    bundle_path, vectors_path = sys.argv[1], sys.argv[2]

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())  # no files, no env, no args
    linker = component.Linker(engine)
    linker.add_wasip2()
    instance = linker.instantiate(store, component.Component.from_file(engine, bundle_path))
    iface = instance.get_export_index(store, "sark:policy/evaluator@0.2.0")
    evaluate = instance.get_func(store, instance.get_export_index(store, "evaluate", iface))

    def run(entrypoint: str, input_json: str) -> dict:
        value = evaluate(store, entrypoint, input_json)
        evaluate.post_return(store)
        # result<option<string>, error>: ok(some) is a str, ok(none) is None, and the
        # error variant arrives as a Variant with its tag.
        if isinstance(value, component.Variant):
            return {"error": value.tag}
        if value is None:
            return {}
        return {"result": json.loads(value)}

    with open(vectors_path) as f:
        vectors = json.load(f)
    for v in vectors:
        input_json = v["raw_input"] if "raw_input" in v else json.dumps(v["input"])
        print(json.dumps(run(v["entrypoint"], input_json)), flush=True)

    first = vectors[0]
    input_json = json.dumps(first["input"])
    for _ in range(200):
        run(first["entrypoint"], input_json)
    samples = []
    until = time.perf_counter() + 2.0
    while time.perf_counter() < until:
        t = time.perf_counter_ns()
        run(first["entrypoint"], input_json)
        samples.append((time.perf_counter_ns() - t) / 1000)
    samples.sort()
    print(json.dumps({"median_us": samples[len(samples) // 2], "samples": len(samples)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
