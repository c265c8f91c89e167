"""Hostile input benchmark (`python3 bench/big_input.py [sark] [bundle]`).

Sends `sark serve` (example bundle, default limits, decision cache off) inputs of 0.8–0.9 MB
(the default `limits.max_input_bytes` is 1 MiB):
the gateway sample with 50,000 extra keys in `parameters`, and one with a 50,000-element array,
each BIG_N times, and reports per request the wall time, the server's CPU time (utime + stime
from /proc, so every thread of the process counts) and the answer, against
`limits.request_timeout_ms` (500 ms).
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

SARK = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/sark")
BUNDLE = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "target/bundles/mcp.wasm")
N = int(os.environ.get("BIG_N", "10"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main():
    work = tempfile.mkdtemp(prefix="sark-big-")
    config = os.path.join(work, "sark.yaml")
    with open(config, "w") as f:
        f.write("features: { decision_cache: { enabled: false } }\nserver: { reload_poll_ms: 0 }\n")
    proc = subprocess.Popen([SARK, "serve", "--bundle", BUNDLE, "--config", config, "--addr", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)
    for line in proc.stdout:
        if line.startswith("listening on http://"):
            host, port = line.strip()[len("listening on http://"):].split(":")
            break
    with open(os.path.join(ROOT, "policies/samples/developer-create-issue.json")) as f:
        sample = json.load(f)
    keys = dict(sample, parameters={f"k{i:05d}": f"v{i:05d}" for i in range(50_000)})
    array = dict(sample, parameters={"items": [f"item-{i:06d}" for i in range(50_000)]})
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for name, doc in (("50,000 keys", keys), ("50,000-element array", array)):
            body = json.dumps({"input": doc})
            worst_wall = worst_cpu = 0.0
            answers = {}
            for _ in range(N):
                cpu0, t = cpu_seconds(proc.pid), time.perf_counter()
                conn.request("POST", "/v1/data/mcp/gateway/decision", body=body,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                text = r.read()
                wall, cpu = time.perf_counter() - t, cpu_seconds(proc.pid) - cpu0
                worst_wall, worst_cpu = max(worst_wall, wall), max(worst_cpu, cpu)
                code = json.loads(text).get("errors", [{}])[0].get("code") if r.status != 200 else "ok"
                answers[(r.status, code)] = answers.get((r.status, code), 0) + 1
            print(f"{name} ({len(body) / 1e6:.2f} MB): worst wall {worst_wall * 1000:.0f} ms, "
                  f"worst server CPU {worst_cpu * 1000:.0f} ms (request budget 500 ms); answers {answers}")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
