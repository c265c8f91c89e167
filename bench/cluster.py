"""Cluster benchmark (`make bench`, or `python3 bench/cluster.py [sark] [bundle]`).

Starts a real redis-server on an ephemeral loopback port and three `sark serve` instances on
the example bundle: A and B share rollout state and the decision cache through Redis, C runs
alone (no cluster). Reports, as median / p99 / max:

- rollout propagation: an admin change on A until B's /admin/features shows it (polled
  back-to-back, so the figure includes one admin round trip);
- the cost of the shared cache on a local miss, from the server's own handler timer
  (`?metrics=true`): a local miss that Redis answers (hit) and one it does not (miss, then
  evaluation), against a local miss on C, which evaluates without asking Redis.
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SARK = sys.argv[1] if len(sys.argv) > 1 else "target/release/sark"
BUNDLE = sys.argv[2] if len(sys.argv) > 2 else "target/bundles/mcp.wasm"
N = int(os.environ.get("CLUSTER_BENCH_N", "2000"))
TOKEN = "bench-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, ok, limit=30.0):
    t = time.time()
    while not ok():
        if time.time() - t > limit:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.02)


class Instance:
    def __init__(self, work, name, config):
        path = os.path.join(work, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(config)
        env = dict(os.environ, SARK_ADMIN_TOKEN=TOKEN)
        self.proc = subprocess.Popen(
            [SARK, "serve", "--bundle", BUNDLE, "--config", path, "--addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        for line in self.proc.stdout:
            if line.startswith("listening on http://"):
                host, port = line.strip()[len("listening on http://"):].split(":")
                break
        self.conn = http.client.HTTPConnection(host, int(port))

    def request(self, method, path, body=None, token=False):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {TOKEN}"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, json.loads(r.read() or b"null")

    def handler_us(self, input_doc):
        status, body = self.request("POST", "/v1/data/mcp/gateway/decision?metrics=true",
                                    json.dumps({"input": input_doc}))
        assert status == 200, body
        m = body["metrics"]
        return m["timer_server_handler_ns"] / 1000.0, m["cache_hit"], m["shared_cache_hit"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def summary(xs, unit):
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
    return f"median {statistics.median(xs):8.1f} {unit}   p99 {p99:8.1f} {unit}   max {xs[-1]:8.1f} {unit}   (n={len(xs)})"


def main():
    sample = json.load(open("policies/samples/developer-create-issue.json"))

    def inputs(tag):
        for i in range(N):
            d = json.loads(json.dumps(sample))
            d.setdefault("context", {})["request_id"] = f"{tag}-{i}"
            yield d

    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="sark-cluster-bench-")
    shared = (f"cluster: {{ redis_url: 'redis://127.0.0.1:{port}', key_prefix: bench }}\n"
              "features: { decision_cache: { shared: true } }\n")
    instances = []
    try:
        wait("redis", lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0)
        a, b = Instance(work, "a", shared), Instance(work, "b", shared)
        c = Instance(work, "c", "")
        instances = [a, b, c]
        for s in (a, b):
            wait("cluster connection", lambda: s.request("GET", "/health")[1]["status"] == "ok")

        # Rollout propagation A -> B.
        props = []
        for i in range(100):
            pct = (i * 37) % 101
            status, _ = a.request("POST", "/admin/rollout/update",
                                  json.dumps({"feature": "decision_cache", "percentage": pct}), True)
            assert status == 200
            t = time.perf_counter()
            while b.request("GET", "/admin/features", token=True)[1]["features"]["decision_cache"]["rollout_percentage"] != pct:
                pass
            props.append((time.perf_counter() - t) * 1e3)
        a.request("POST", "/admin/rollout/update",
                  json.dumps({"feature": "decision_cache", "percentage": 100}), True)
        wait("cache rollout back to 100%", lambda: b.request(
            "GET", "/admin/features", token=True)[1]["features"]["decision_cache"]["rollout_percentage"] == 100)

        # Warm both paths' instance pools and connections.
        for d in inputs("warm"):
            for s in instances:
                s.handler_us(d)

        # A evaluates set "h" (written to Redis); B then sees each as a local miss + shared hit.
        for d in inputs("h"):
            a.handler_us(d)
        time.sleep(0.5)  # writes to Redis are off the response path
        shared_hit, shared_miss, alone = [], [], []
        for d in inputs("h"):
            us, hit, shared_hit_flag = b.handler_us(d)
            assert hit and shared_hit_flag, "expected a shared-cache hit"
            shared_hit.append(us)
        for d in inputs("m"):
            us, hit, shared_hit_flag = b.handler_us(d)
            assert not hit
            shared_miss.append(us)
            us, hit, _ = c.handler_us(d)
            assert not hit
            alone.append(us)

        print(f"== cluster bench: redis-server on loopback, 2 instances + 1 alone, {N} distinct inputs per set")
        print(f"rollout propagation A->B            {summary(props, 'ms')}")
        print(f"local miss, no cluster (C)          {summary(alone, 'us')}")
        print(f"local miss, shared miss + evaluate  {summary(shared_miss, 'us')}")
        print(f"local miss, shared hit              {summary(shared_hit, 'us')}")
        print(f"shared-cache cost on a miss: median {statistics.median(shared_miss) - statistics.median(alone):+.1f} us; "
              f"a shared hit is {statistics.median(alone) / statistics.median(shared_hit):.2f}x faster than evaluating")
    finally:
        for s in instances:
            s.stop()
        redis.terminate()
        redis.wait()


if __name__ == "__main__":
    main()
