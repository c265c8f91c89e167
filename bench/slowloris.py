"""Slowloris benchmark (`python3 bench/slowloris.py [sark] [bundle]`).

Starts `sark serve` on the example bundle with a 2 s header timeout, measures decisions
(sequential, one keep-alive connection) as a baseline, then opens SLOW connections that each
send half a request head and stop, measures the same decisions while they are open, and reports:
p50/p99 of both runs and their ratio, how many slow connections the server accepted, and how
long it took to close them (against the header timeout).
"""
import http.client
import json
import os
import socket
import statistics
import selectors
import subprocess
import sys
import tempfile
import threading
import time

SARK = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/sark")
BUNDLE = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "target/bundles/mcp.wasm")
SLOW = int(os.environ.get("SLOWLORIS_CONNECTIONS", "5000"))
N = int(os.environ.get("SLOWLORIS_N", "2000"))
HEADER_TIMEOUT_MS = 2000


def percentiles(xs):
    xs = sorted(xs)
    return statistics.median(xs) * 1000, xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000


def main():
    work = tempfile.mkdtemp(prefix="sark-slowloris-")
    config = os.path.join(work, "sark.yaml")
    with open(config, "w") as f:
        f.write(f"server: {{ header_timeout_ms: {HEADER_TIMEOUT_MS}, reload_poll_ms: 0 }}\n"
                "features: { decision_cache: { enabled: false } }\n")
    proc = subprocess.Popen([SARK, "serve", "--bundle", BUNDLE, "--config", config, "--addr", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)
    for line in proc.stdout:
        if line.startswith("listening on http://"):
            host, port = line.strip()[len("listening on http://"):].split(":")
            port = int(port)
            break
    with open("policies/samples/developer-create-issue.json") as f:
        body = json.dumps({"input": json.load(f)})

    def decisions():
        conn = http.client.HTTPConnection(host, port, timeout=10)
        out = []
        for _ in range(N):
            t = time.perf_counter()
            conn.request("POST", "/v1/data/mcp/gateway/decision", body=body,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status
            out.append(time.perf_counter() - t)
        conn.close()
        return out

    try:
        decisions()  # warm-up
        base = percentiles(decisions())
        slow = []
        opened = time.perf_counter()
        for _ in range(SLOW):
            s = socket.create_connection((host, port))
            s.sendall(b"POST /v1/data/mcp/gateway/decision HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        open_s = time.perf_counter() - opened
        # A watcher records when the server closes each slow connection.
        closed_at = []
        sel = selectors.DefaultSelector()
        for sock in slow:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)

        def watch():
            left = len(slow)
            deadline = time.perf_counter() + 60
            while left and time.perf_counter() < deadline:
                for key, _ in sel.select(timeout=1):
                    try:
                        data = key.fileobj.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(key.fileobj)
                        closed_at.append(time.perf_counter() - opened)
                        left -= 1

        watcher = threading.Thread(target=watch)
        watcher.start()
        under = percentiles(decisions())
        watcher.join()
        for sock in slow:
            sock.close()
        print(f"baseline decisions: p50 {base[0]:.3f} ms, p99 {base[1]:.3f} ms (n={N})")
        print(f"with {SLOW} slowloris connections open: p50 {under[0]:.3f} ms, p99 {under[1]:.3f} ms; "
              f"p99 ratio {under[1] / base[1]:.2f}")
        print(f"slowloris connections opened in {open_s:.2f} s; {len(closed_at)}/{SLOW} closed by the "
              f"server, the last {max(closed_at):.2f} s after the first was opened "
              f"(header timeout {HEADER_TIMEOUT_MS / 1000:.1f} s)")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
