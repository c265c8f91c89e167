"""Policy-edit benchmark (`make bench`, or `python3 bench/edit.py [sark] [policies]`).

What a policy author and a hot-reloading server pay for one edit, medians of RUNS runs:

- `sark test` on the unchanged policy directory, and on a copy edited (a new comment) before
  every run, and their ratio;
- `sark build` of an edited copy plus the first `sark eval` of the new bundle;
- the same two with an empty compiled-code cache (the very first run on a machine);
- a hot reload of a changed bundle in `sark serve`: CPU time of the process across the reload
  (idle server, admin reload), and peak resident memory above steady during it (sampled every
  5 ms), then a reload under cache-hit load: the slowest request of a reload window against
  the p99 of a steady window (wrk, 2 threads, 32 connections), when wrk is installed.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SARK = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/sark")
POLICIES = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "policies")
SAMPLE = os.path.join(POLICIES, "samples", "developer-create-issue.json")
RUNS = int(os.environ.get("EDIT_BENCH_RUNS", "5"))
TOKEN = "edit-bench"
CLK = os.sysconf("SC_CLK_TCK")


def run(args, env=None):
    started = time.perf_counter()
    subprocess.run([SARK, *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def edit(directory, n):
    """Appends a comment to a module: a new content hash, a new bundle."""
    rego = sorted(os.path.join(d, f) for d, _, files in os.walk(directory) for f in files
                  if f.endswith(".rego") and not f.endswith("_test.rego"))[0]
    with open(rego, "a") as f:
        f.write(f"\n# edit {n} {time.time_ns()}\n")


def median_ms(xs):
    return statistics.median(xs) * 1000


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body=b"", token=None):
    req = urllib.request.Request(url, data=body, method="POST")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def wrk(url, seconds, script):
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", script, url],
                         check=True, capture_output=True, text=True).stdout
    def ms(token):
        value = float(token[:-2]) if token.endswith("ms") else float(token[:-2]) / 1000 if token.endswith("us") else float(token[:-1]) * 1000
        return value
    p99 = next(ms(l.split()[1]) for l in out.splitlines() if l.strip().startswith("99%"))
    mx = next(ms(l.split()[3]) for l in out.splitlines() if l.strip().startswith("Latency"))
    return p99, mx


def reload_bench(work, cache_env):
    live = os.path.join(work, "live.wasm")
    copy = os.path.join(work, "reload-src")
    shutil.copytree(POLICIES, copy)
    subprocess.run([SARK, "build", copy, "-o", live], check=True, stderr=subprocess.DEVNULL, env=cache_env)
    port = free_port()
    env = dict(cache_env, SARK_ADMIN_TOKEN=TOKEN)
    config = os.path.join(work, "sark.yaml")
    with open(config, "w") as f:
        f.write("server: { reload_poll_ms: 0 }\n")
    proc = subprocess.Popen([SARK, "serve", "--bundle", live, "--addr", f"127.0.0.1:{port}",
                             "--config", config], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        proc.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        url = f"{base}/v1/data/mcp/gateway/decision"
        with open(SAMPLE) as f:
            body = json.dumps({"input": json.load(f)}).encode()
        for _ in range(200):
            post(url, body)
        time.sleep(0.5)
        cpus, peaks = [], []
        for n in range(RUNS):
            edit(copy, n)
            subprocess.run([SARK, "build", copy, "-o", live + ".new"], check=True,
                           stderr=subprocess.DEVNULL, env=cache_env)
            os.replace(live + ".new", live)
            steady = rss_kib(proc.pid)
            peak = [steady]
            done = threading.Event()
            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], rss_kib(proc.pid))
                    time.sleep(0.005)
            t = threading.Thread(target=sample)
            t.start()
            before = cpu_seconds(proc.pid)
            answer = post(f"{base}/admin/bundle/reload", token=TOKEN)
            cpus.append(cpu_seconds(proc.pid) - before)
            done.set()
            t.join()
            assert answer.get("reloaded"), answer
            peaks.append((peak[0] - steady) / 1024)
        print(f"hot reload, idle server        CPU median {statistics.median(cpus)*1000:7.0f} ms   "
              f"max {max(cpus)*1000:6.0f} ms   peak RSS above steady median {statistics.median(peaks):5.1f} MB   "
              f"max {max(peaks):5.1f} MB   (n={RUNS})")
        if shutil.which("wrk"):
            script = os.path.join(work, "hit.lua")
            with open(script, "w") as f:
                f.write('wrk.method = "POST"\nwrk.body = [[' + body.decode() + ']]\n'
                        'wrk.headers["Content-Type"] = "application/json"\n')
            steady_p99, steady_max = wrk(url, 5, script)
            # Bundles built beforehand: the loaded window measures the server's reload, not
            # a build competing for the same cores.
            variants = []
            for n in range(6):
                edit(copy, 100 + n)
                path = os.path.join(work, f"variant-{n}.wasm")
                subprocess.run([SARK, "build", copy, "-o", path], check=True,
                               stderr=subprocess.DEVNULL, env=cache_env)
                variants.append(path)
            stop = threading.Event()
            def reloads():
                n = 0
                while not stop.is_set():
                    shutil.copy(variants[n % len(variants)], live + ".new")
                    os.replace(live + ".new", live)
                    post(f"{base}/admin/bundle/reload", token=TOKEN)
                    n += 1
                    time.sleep(1)
            t = threading.Thread(target=reloads)
            t.start()
            reload_p99, reload_max = wrk(url, 5, script)
            stop.set()
            t.join()
            print(f"cache-hit load, steady p99 {steady_p99:.2f} ms, slowest {steady_max:.2f} ms; with a reload every ~1 s: "
                  f"p99 {reload_p99:.2f} ms, slowest {reload_max:.2f} ms "
                  f"({reload_max / steady_p99:.1f}x the steady p99)")
    finally:
        proc.terminate()
        proc.wait()


def main():
    work = tempfile.mkdtemp(prefix="sark-edit-bench-")
    cache_env = dict(os.environ, SARK_CACHE_DIR=os.path.join(work, "cache"))
    try:
        copy = os.path.join(work, "policies")
        shutil.copytree(POLICIES, copy)
        # The very first run on a machine: empty cache.
        edit(copy, 0)
        first_test = run(["test", copy], env=cache_env)
        out = os.path.join(work, "b.wasm")
        first_build = run(["build", copy, "-o", out], env=cache_env)
        first_eval = run(["eval", out, "-e", "mcp/gateway/decision", "-i", SAMPLE], env=cache_env)

        run(["test", POLICIES], env=cache_env)
        unchanged = [run(["test", POLICIES], env=cache_env) for _ in range(RUNS)]
        edited = []
        build_eval = []
        for n in range(RUNS):
            edit(copy, n + 1)
            edited.append(run(["test", copy], env=cache_env))
            edit(copy, n + 1000)
            b = run(["build", copy, "-o", out], env=cache_env)
            e = run(["eval", out, "-e", "mcp/gateway/decision", "-i", SAMPLE], env=cache_env)
            build_eval.append((b, e))
        u, ed = median_ms(unchanged), median_ms(edited)
        print(f"== policy-edit benchmark: {SARK}, {POLICIES}, medians of {RUNS}")
        print(f"sark test, unchanged policies   {u:7.0f} ms")
        print(f"sark test, edited policies      {ed:7.0f} ms   ({ed / u:.2f}x the unchanged run)")
        bs = median_ms([b for b, _ in build_eval])
        es = median_ms([e for _, e in build_eval])
        tot = median_ms([b + e for b, e in build_eval])
        print(f"sark build + first eval, edited {tot:7.0f} ms   (build {bs:.0f} ms, eval {es:.0f} ms)")
        print(f"empty code cache: sark test {first_test*1000:.0f} ms; build {first_build*1000:.0f} ms "
              f"+ first eval {first_eval*1000:.0f} ms")
        reload_bench(work, cache_env)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
