"""Data API benchmark (`make bench`, or `python3 bench/data.py [sark]`).

Builds the REST API fixture (host/tests/fixtures/opa_api: `allow` looks the user's roles up
in `data.users`, which clients write) and reports, as median / p99 / max:

- a write (`PUT /v1/data/users/<u>`, journaled and synced before the 204) and the decision
  right after it, which must see it (checked every time);
- with two instances sharing a real redis-server: a write on A until B's decisions see it
  (polled back to back);
- a 10 MB `users` document: the PUT, the first decisions after it (each pooled instance
  applies the document once), then steady-state decisions for distinct users (so the
  decision cache never answers), against the same decisions with a small document, on the
  component and on the native path, in the same run;
- `kill -9` right after a burst of acknowledged writes: how many are there after a restart.
"""
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SARK = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/sark")
N = int(os.environ.get("DATA_BENCH_N", "200"))
BIG_USERS = int(os.environ.get("DATA_BENCH_BIG_USERS", "100000"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, ok, limit=30.0):
    t = time.time()
    while not ok():
        if time.time() - t > limit:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.01)


class Instance:
    def __init__(self, work, name, bundle, config):
        self.work, self.name, self.bundle = work, name, bundle
        self.config = os.path.join(work, f"{name}.yaml")
        with open(self.config, "w") as f:
            f.write(config)
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [SARK, "serve", "--bundle", self.bundle, "--config", self.config, "--addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=self.work)
        for line in self.proc.stdout:
            if line.startswith("listening on http://"):
                host, port = line.strip()[len("listening on http://"):].split(":")
                break
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def request(self, method, path, body=None):
        self.conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)

    def put(self, path, doc):
        status, body = self.request("PUT", f"/v1/data/{path}", json.dumps(doc))
        assert status == 204, (status, body)

    def allows(self, user, action="write"):
        status, body = self.request("POST", "/v1/data/example/authz/allow",
                                    json.dumps({"input": {"user": user, "action": action}}))
        assert status == 200, body
        return body.get("result") is True

    def health(self):
        try:
            status, body = self.request("GET", "/health")
            return status == 200 and body.get("status") == "ok"
        except (OSError, http.client.HTTPException):
            self.conn.close()
            return False

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def summary(xs, unit="ms", scale=1000.0):
    xs = sorted(x * scale for x in xs)
    p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
    return f"median {statistics.median(xs):.2f} {unit}, p99 {p99:.2f} {unit}, max {xs[-1]:.2f} {unit} (n={len(xs)})"


def timed(f):
    t = time.perf_counter()
    r = f()
    return time.perf_counter() - t, r


def config(work, name, extra=""):
    return f"persistence_directory: {os.path.join(work, name + '-state')}\nserver: {{ reload_poll_ms: 0 }}\n{extra}"


def local_writes(work, bundle):
    a = Instance(work, "local", bundle, config(work, "local"))
    writes, decisions = [], []
    for i in range(N):
        user = f"w{i}"
        dt, _ = timed(lambda: a.put(f"users/{user}", {"roles": ["admin"]}))
        writes.append(dt)
        dt, seen = timed(lambda: a.allows(user))
        assert seen, f"the decision right after the write of {user} did not see it"
        decisions.append(dt)
    print(f"write (PUT, synced to disk before the 204): {summary(writes)}")
    print(f"decision right after the write (saw it: {N}/{N}): {summary(decisions)}")
    a.stop()


def cluster_writes(work, bundle):
    if not shutil.which("redis-server"):
        print("cluster: redis-server not installed; skipped")
        return
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def redis_up():
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False

        wait("redis", redis_up)
        extra = f"cluster: {{ redis_url: 'redis://127.0.0.1:{port}', key_prefix: bench }}\n"
        a = Instance(work, "ca", bundle, config(work, "ca", extra))
        b = Instance(work, "cb", bundle, config(work, "cb", extra))
        wait("connected instances", lambda: a.health() and b.health())
        seen = []
        for i in range(N):
            user = f"c{i}"
            a.put(f"users/{user}", {"roles": ["admin"]})
            t = time.perf_counter()
            while not b.allows(user):
                if time.perf_counter() - t > 5:
                    sys.exit(f"the write of {user} did not reach B within 5 s")
            seen.append(time.perf_counter() - t)
        print(f"cluster: write on A until B's decision sees it: {summary(seen)}")
        a.stop()
        b.stop()
    finally:
        redis.kill()
        redis.wait()


def big_document(work, bundle):
    rng = random.Random(7)
    roles = ["admin", "reader"]
    users = {f"user-{i:06d}": {"roles": [rng.choice(roles)], "team": f"team-{i % 97}",
                               "email": f"user-{i:06d}@example.com", "groups": [f"g{i % 13}", f"g{i % 7}"]}
             for i in range(BIG_USERS)}
    text = json.dumps(users)
    print(f"large document: {len(text) / 1e6:.1f} MB, {BIG_USERS} users")
    results = {}
    for path, pct in (("wasm", 100), ("native", 0)):
        extra = f"features: {{ wasm_engine: {{ rollout_percentage: {pct} }} }}\n"
        s = Instance(work, f"big-{path}", bundle, config(work, f"big-{path}", extra))
        s.put("users", {f"user-{i:06d}": users[f"user-{i:06d}"] for i in range(100)})

        # Distinct inputs each time (the action varies): the decision cache never answers.
        small = [timed(lambda: s.allows(f"user-{i % 100:06d}", f"a{i}"))[0] for i in range(N)]
        dt_put, _ = timed(lambda: s.request("PUT", "/v1/data/users", text))
        first = [timed(lambda: s.allows(f"user-{i:06d}", "first"))[0] for i in range(8)]
        steady = [timed(lambda: s.allows(f"user-{(i * 7919) % BIG_USERS:06d}", f"s{i}"))[0] for i in range(N)]
        patch = json.dumps([{"op": "add", "path": "/newcomer", "value": {"roles": ["admin"]}}])
        dt_patch, (status, _) = timed(lambda: s.request("PATCH", "/v1/data/users", patch))
        assert status == 204
        dt_after, seen = timed(lambda: s.allows("newcomer"))
        assert seen
        results[path] = (statistics.median(small), statistics.median(steady))
        print(f"  {path}: PUT of the 10 MB document {dt_put * 1000:.0f} ms; first decisions after it "
              f"(each pooled instance applies it once): {summary(first)}")
        print(f"  {path}: decisions with 100 users: {summary(small)}")
        print(f"  {path}: decisions with {BIG_USERS} users: {summary(steady)}; "
              f"ratio of medians {results[path][1] / results[path][0]:.2f}")
        print(f"  {path}: PATCH of one user into it {dt_patch * 1000:.1f} ms, the next decision "
              f"(saw it) {dt_after * 1000:.2f} ms")
        s.stop()


def kill9(work, bundle):
    s = Instance(work, "kill9", bundle, config(work, "kill9"))
    n = N
    for i in range(n):
        s.put(f"tools/t{i}", {"i": i})
    s.kill9()
    s.start()
    status, body = s.request("GET", "/v1/data/tools")
    kept = len((body or {}).get("result", {}))
    print(f"kill -9 right after {n} acknowledged writes: {kept}/{n} there after the restart "
          f"({n - kept} lost)")
    s.stop()
    assert kept == n


def main():
    work = tempfile.mkdtemp(prefix="sark-data-bench-")
    try:
        bundle = os.path.join(work, "opa_api.wasm")
        subprocess.run([SARK, "build", "host/tests/fixtures/opa_api", "-o", bundle],
                       check=True, stdout=subprocess.DEVNULL)
        local_writes(work, bundle)
        cluster_writes(work, bundle)
        big_document(work, bundle)
        kill9(work, bundle)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
