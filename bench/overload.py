"""Overload benchmark (`python3 bench/overload.py [sark] [bundle]`).

Starts `sark serve` on the example bundle with the decision cache off (every decision is an
evaluation), twice in the same run: with the default bound on concurrent evaluations, and with
the bound lifted (`max_concurrent_evaluations: 100000`, the behaviour before load shedding).
Each time, wrk drives OVERLOAD_CONNECTIONS connections of distinct inputs (bench/miss.lua)
while a probe sends decisions one after another on its own connection; reported: wrk's rate
and how many answers were 503, and the probe's p50/p99 over the decisions that were admitted
(200) and the share that was shed. wrk and the server share the machine's cores.
"""
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SARK = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/sark")
BUNDLE = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "target/bundles/mcp.wasm")
CONNECTIONS = int(os.environ.get("OVERLOAD_CONNECTIONS", "256"))
SECONDS = int(os.environ.get("OVERLOAD_SECONDS", "15"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")


def start(extra_server):
    work = tempfile.mkdtemp(prefix="sark-overload-")
    config = os.path.join(work, "sark.yaml")
    with open(config, "w") as f:
        f.write("features: { decision_cache: { enabled: false } }\n")
        f.write("server: { reload_poll_ms: 0%s }\n" % extra_server)
    proc = subprocess.Popen([SARK, "serve", "--bundle", BUNDLE, "--config", config, "--addr", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)
    for line in proc.stdout:
        if line.startswith("listening on http://"):
            host, port = line.strip()[len("listening on http://"):].split(":")
            return proc, host, int(port)
    raise SystemExit("sark serve did not start")


def probe(host, port, stop, out):
    with open(os.path.join(ROOT, "policies/samples/developer-create-issue.json")) as f:
        sample = json.load(f)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    n = 0
    while not stop.is_set():
        n += 1
        sample["parameters"] = {"title": f"probe-{n}"}
        body = json.dumps({"input": sample})
        t = time.perf_counter()
        conn.request("POST", "/v1/data/mcp/gateway/decision", body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        out.append((r.status, time.perf_counter() - t))
        time.sleep(0.002)
    conn.close()


def run(label, extra_server):
    proc, host, port = start(extra_server)
    try:
        url = f"http://{host}:{port}/v1/data/mcp/gateway/decision"
        stop = threading.Event()
        samples = []
        t = threading.Thread(target=probe, args=(host, port, stop, samples))
        wrk = subprocess.Popen(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "-s",
                                os.path.join(ROOT, "bench/miss.lua"), url],
                               stdout=subprocess.PIPE, text=True)
        time.sleep(1)  # wrk's connections are open and loaded before the probe starts
        t.start()
        out, _ = wrk.communicate()
        stop.set()
        t.join()
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
        total = re.search(r"(\d+) requests in", out).group(1)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        shed = int(non2xx.group(1)) if non2xx else 0
        admitted = [s for status, s in samples if status == 200]
        refused = sum(1 for status, _ in samples if status == 503)
        other = sum(1 for status, _ in samples if status not in (200, 503))
        print(f"{label}: wrk -c{CONNECTIONS} {rate} req/s, {shed}/{total} answered non-2xx (503); "
              f"probe: {len(admitted)} admitted p50 {pct(admitted, 0.5):.2f} ms p99 {pct(admitted, 0.99):.2f} ms, "
              f"{refused} shed, {other} other")
        return pct(admitted, 0.99)
    finally:
        proc.terminate()
        proc.wait()


def main():
    bounded = run("bounded (defaults)", "")
    unbounded = run("unbounded (max_concurrent_evaluations: 100000)",
                    ", max_concurrent_evaluations: 100000")
    print(f"p99 of admitted decisions, bounded / unbounded: {bounded / unbounded:.2f}")


if __name__ == "__main__":
    main()
