"""Decision log upload benchmark (`make bench`, or `python3 bench/logs.py [sark] [bundle]`).

Runs `sark serve` on the example bundle under wrk at a paced rate (LOGS_BENCH_RATE, default
10,000 decisions/s: wrk connections each waiting between requests), three times in one run:
without a decision log, with sark's records written to /dev/null (the request path's
share), then uploading every decision to a collector started here (a
Python HTTP server that decompresses and counts every event). Reports, for both runs: the
decisions made, p50/p99 latency, the server's CPU (user + system seconds per second of
load) and the collector's (this process; on a 2-core machine it competes with the server); for the upload run: events received by the collector against decisions made
(nothing may be missing once the server has shut down), uploads, compressed bytes, and the
CPU the uploads added per 10,000 events.
"""
import gzip
import http.server
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time

SARK = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/sark")
BUNDLE = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "target/bundles/mcp.wasm")
RATE = int(os.environ.get("LOGS_BENCH_RATE", "10000"))
SECONDS = int(os.environ.get("LOGS_BENCH_SECONDS", "10"))
CONNECTIONS = 20
HERE = os.path.dirname(os.path.abspath(__file__))


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.events = 0
        self.uploads = 0
        self.compressed = 0
        self.ids = set()


COUNTS = Counts()


class Collector(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/logs"):
            events = json.loads(gzip.decompress(body))
            with COUNTS.lock:
                COUNTS.events += len(events)
                COUNTS.uploads += 1
                COUNTS.compressed += len(body)
                COUNTS.ids.update(e["decision_id"] for e in events)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(config_text, work, name):
    config = os.path.join(work, f"{name}.yaml")
    with open(config, "w") as f:
        f.write(config_text)
    proc = subprocess.Popen(
        [SARK, "serve", "--bundle", BUNDLE, "--config", config, "--addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)
    for line in proc.stdout:
        if line.startswith("listening on "):
            url = line.split()[-1]
            break
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    # Warm up (pools, cache), then measure.
    subprocess.run(["wrk", "-t1", "-c4", "-d1s", "-s", os.path.join(HERE, "hit.lua"),
                    url + "/v1/data/mcp/gateway/decision"], capture_output=True)
    script = os.path.join(work, "paced.lua")
    delay_ms = CONNECTIONS * 1000.0 / RATE
    with open(script, "w") as f:
        f.write(f'dofile("{os.path.join(HERE, "hit.lua")}")\n'
                f"function delay() return {delay_ms} end\n")
    cpu0 = cpu_seconds(proc.pid)
    own0 = resource.getrusage(resource.RUSAGE_SELF)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", script,
         url + "/v1/data/mcp/gateway/decision"], capture_output=True, text=True).stdout
    cpu = cpu_seconds(proc.pid) - cpu0
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    collector_cpu = (own1.ru_utime - own0.ru_utime) + (own1.ru_stime - own0.ru_stime)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
    proc.terminate()
    proc.wait(timeout=30)
    return {"requests": requests, "rate": requests / SECONDS, "p50": p50, "p99": p99,
            "cpu_per_s": cpu / SECONDS, "collector_per_s": collector_cpu / SECONDS}


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    collector = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as work:
        base = run("{}\n", work, "plain")
        # The same records built and queued, written to /dev/null: what logging costs the
        # request path without any upload.
        recorded = run("decision_log: { enabled: true, output: /dev/null }\n", work, "record")
        uploading = run(
            f"services:\n  collector: {{ url: '{collector}' }}\n"
            "decision_logs:\n  service: collector\n"
            "  reporting: { min_delay_seconds: 1, max_delay_seconds: 2 }\n",
            work, "upload")
    for name, r in (("no decision log", base), ("records to /dev/null", recorded),
                    ("decision_logs upload", uploading)):
        print(f"{name:22} {r['requests']:7} decisions ({r['rate']:8.0f}/s)  "
              f"p50 {r['p50']:>8}  p99 {r['p99']:>8}  server CPU {r['cpu_per_s']:.2f} s/s  "
              f"collector CPU {r['collector_per_s']:.2f} s/s")
    with COUNTS.lock:
        events, uploads, compressed = COUNTS.events, COUNTS.uploads, COUNTS.compressed
    # The warm-up's decisions are uploaded too.
    print(f"collector: {events} events in {uploads} uploads, {compressed / 1e6:.1f} MB gzip "
          f"({compressed / max(events, 1):.0f} B/event); "
          f"{'all' if events >= uploading['requests'] else 'NOT all'} {uploading['requests']} "
          f"measured decisions received")
    added = (uploading["cpu_per_s"] - base["cpu_per_s"]) * SECONDS
    print(f"upload CPU: {added / max(uploading['requests'], 1) * 1e4:.2f} s per 10,000 events "
          f"(same-run difference); CPU ratio {uploading['cpu_per_s'] / base['cpu_per_s']:.2f}")


if __name__ == "__main__":
    main()
