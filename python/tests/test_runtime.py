"""sark_runtime against the real component, the real bundles and the `sark` binary."""

import asyncio
import json
import threading
import time

import pytest

import sark_runtime
from sark_runtime import (
    BundleError,
    EvaluationError,
    InvalidInput,
    LimitExceeded,
    OPAClient,
    PolicyCache,
    RolloutFlags,
    SarkError,
    UnknownEntrypoint,
)

from conftest import sark


def test_decisions_equal_sark_eval_on_both_paths(bundles, samples):
    client = OPAClient(bundles["mcp"])
    for f, ep in samples:
        data = json.loads(f.read_text())
        for path in ("wasm", "native"):
            want = json.loads(sark("eval", str(bundles["mcp"]), "-e", ep, "-i", str(f), "--path", path))
            assert client.evaluate(ep, data, path=path) == want.get("result"), (f.name, path)
            d = client.decide(ep, data, path=path, bypass_cache=True)
            assert d.path == path and d.result == want.get("result")
    # Without a forced path, the rollout decides (the sandbox at the default 100%).
    f, ep = samples[0]
    d = client.decide(ep, json.loads(f.read_text()))
    assert d.path == "wasm" and d.fallback_from is None and d.bundle.startswith(client.info["revision"])
    assert len(d.decision_id) == 36 and d.decision_id != client.decide(ep, json.loads(f.read_text())).decision_id


def test_decisions_are_logged_as_the_server_logs_them(bundles, tmp_path):
    log = tmp_path / "decisions.jsonl"
    config = {"decision_log": {"enabled": True, "output": str(log)}}
    client = OPAClient(bundles["r1"], config=config)
    d = client.decide("t/maybe", {"x": 1})
    client.evaluate("t/no")
    for _ in range(500):  # the writer task flushes each batch; wait for both lines
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= 2:
            break
        time.sleep(0.01)
    events = [json.loads(line) for line in lines]
    assert [e["decision_id"] for e in events][0] == d.decision_id
    assert events[0]["result"] == 1 and events[1]["result"] is False


def test_undefined_is_none_and_false_is_a_value(bundles):
    client = OPAClient(bundles["r1"])
    assert client.evaluate("t/maybe", {"x": 2}) is None
    assert client.evaluate("t/maybe", {"x": 1}) == 1
    assert client.evaluate("t/no") is False
    assert client.decide("t/maybe", {"x": 2}).result is None
    rows = client.query("x = data.t.no")
    assert rows[0]["bindings"]["x"] is False


def test_each_error_is_its_own_exception_class(bundles, tmp_path):
    client = OPAClient(bundles["failures"])
    with pytest.raises(UnknownEntrypoint):
        client.evaluate("failures/nothing_here")
    with pytest.raises(InvalidInput):
        client.evaluate("failures/cached", {"x": object()})
    with pytest.raises(InvalidInput):
        client.evaluate("failures/cached", {"x": float("nan")})
    with pytest.raises(InvalidInput):
        client.evaluate("failures/cached", {"x": 1 << 70})
    with pytest.raises(EvaluationError):
        client.evaluate("failures/conflict", {"c": True})
    with pytest.raises(LimitExceeded):
        client.evaluate("failures/big")
    with pytest.raises(BundleError):
        OPAClient(tmp_path / "missing.wasm")
    with pytest.raises(BundleError):
        OPAClient(bundles["broken"])
    for cls in (UnknownEntrypoint, InvalidInput, EvaluationError, LimitExceeded, BundleError):
        assert issubclass(cls, SarkError)
    with pytest.raises(ValueError):
        client.evaluate("failures/cached", path="gpu")


def test_a_component_failure_falls_back_to_native(bundles):
    config = {"limits": {"eval_timeout_ms": 2, "native_timeout_ms": 20000}}
    client = OPAClient(bundles["failures"], config=config)
    d = client.decide("failures/slow")
    assert (d.path, d.fallback_from, d.result) == ("native", "timeout", 97)
    assert 'fallback_total{' in client.metrics_text()


def test_cache_hits_and_metrics(bundles):
    client = OPAClient(bundles["failures"])
    first = client.decide("failures/cached", {"user": {"id": "alice"}, "n": 1})
    again = client.decide("failures/cached", {"n": 1, "user": {"id": "alice"}})
    assert not first.cache_hit and again.cache_hit and again.result == first.result
    assert client.cache_stats()["hits"] >= 1
    text = client.metrics_text()
    assert "# TYPE opa_evaluation_duration_seconds" in text and "cluster_redis_connected" in text


def test_policy_cache_ttl_bound_and_async():
    cache = PolicyCache(max_size=3, ttl_seconds=60)
    for i in range(10):
        cache.set(f"k{i}", {"n": i, "tags": ["a", "b"]})
    assert len(cache) == 3
    stats = cache.stats()
    assert stats["evictions"] == 7 and stats["max_size"] == 3
    assert cache.get("k9") == {"n": 9, "tags": ["a", "b"]}
    assert cache.get("k0", "gone") == "gone"
    cache.set("short", "v", ttl=0.05)
    assert "short" in cache
    time.sleep(0.1)
    assert cache.get("short") is None and "short" not in cache
    cache.set("k8", "old")
    cache.set("k8", "new", ttl=0)  # stores nothing, and the old value is gone too
    assert cache.get("k8") is None
    cache.set("forever", 1, ttl=1e30)  # clamped, not an overflow
    assert cache.get("forever") == 1
    assert cache.delete("k9") and not cache.delete("k9")

    async def use():
        await cache.set_async("key", "value", ttl=300)
        assert await cache.get_async("key") == "value"
        await cache.clear_async()
        assert await cache.get_async("key") is None

    asyncio.run(use())
    with pytest.raises(InvalidInput):
        cache.set("bad", object())


def test_buckets_equal_the_rust_golden_values():
    users = ["alice", "bob", "carol", "user-1", "user-2", "", "ünïcode"]
    assert [sark_runtime.bucket("wasm_engine", u) for u in users] == [53, 56, 86, 76, 45, 69, 5]
    assert RolloutFlags.bucket("wasm_engine", "alice") == 53


def test_flags_steer_the_client_and_roll_back(bundles, tmp_path):
    client = OPAClient(bundles["r1"])
    flags = client.flags
    assert flags.get("wasm_engine")["rollout_percentage"] == 100
    assert client.decide("t/no", user="alice", bypass_cache=True).path == "wasm"
    flags.rollback("wasm_engine")
    assert client.decide("t/no", user="alice", bypass_cache=True).path == "native"
    flags.set_percentage("wasm_engine", 54)  # alice's bucket is 53
    assert flags.is_enabled("wasm_engine", "alice") and not flags.is_enabled("wasm_engine", "bob")
    assert client.decide("t/no", user="alice", bypass_cache=True).path == "wasm"
    assert client.decide("t/no", user="bob", bypass_cache=True).path == "native"
    assert all(f["rollout_percentage"] == 0 for f in flags.rollback_all().values())
    with pytest.raises(ValueError):
        flags.set_percentage("wasm_engine", 101)
    with pytest.raises(ValueError):
        flags.set_percentage("no_such_feature", 5)
    # Standalone flags with a state file keep their changes across instances.
    state = tmp_path / "state.json"
    RolloutFlags(state_file=state).set_percentage("policy_canary", 25)
    assert RolloutFlags(state_file=state).get("policy_canary")["rollout_percentage"] == 25


def test_concurrent_reloads_do_not_deadlock(bundles):
    client = OPAClient(bundles["r1"])
    done = []

    def reload(path):
        for _ in range(5):
            client.reload(path)
        done.append(path)

    threads = [threading.Thread(target=reload, args=(bundles[r],)) for r in ("r1", "r2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(done) == 2 and client.info["revision"] in ("r1", "r2")
    # Flags handed out keep working after their client is gone.
    flags = client.flags
    del client
    assert flags.set_percentage("wasm_engine", 10)["rollout_percentage"] == 10


def test_threads_evaluate_concurrently(bundles, samples):
    client = OPAClient(bundles["mcp"])
    f, ep = samples[0]
    data = json.loads(f.read_text())
    want = client.evaluate(ep, data)
    results, errors = [], []

    def work(n):
        try:
            for i in range(100):
                results.append(client.evaluate(ep, dict(data, n=n * 1000 + i)) == want)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 400 and all(results)


def test_async_api_under_an_event_loop(bundles, samples):
    client = OPAClient(bundles["mcp"])
    inputs = [json.loads(f.read_text()) for f, _ in samples]
    eps = [ep for _, ep in samples]

    async def run():
        values = await asyncio.gather(*(client.evaluate_async(ep, i) for ep, i in zip(eps, inputs)))
        batch = await client.evaluate_batch_async(eps[0], [inputs[0]] * 3)
        decision = await client.decide_async(eps[0], inputs[0])
        return values, batch, decision

    values, batch, decision = asyncio.run(run())
    assert values == [client.evaluate(ep, i) for ep, i in zip(eps, inputs)]
    assert batch == [values[0]] * 3 and decision.result == values[0]


def test_reload_to_a_new_revision_and_refuse_a_broken_one(bundles):
    client = OPAClient(bundles["r1"])
    assert client.info["revision"] == "r1" and client.evaluate("t/rev") == "one"
    assert client.reload(bundles["r2"]) == "r2"
    assert client.info["revision"] == "r2" and client.evaluate("t/rev") == "two"
    with pytest.raises(BundleError):
        client.reload(bundles["broken"])
    assert client.info["revision"] == "r2" and client.evaluate("t/rev") == "two"
    assert client.reload() == "r2"
