"""TLS benchmark (`python3 bench/tls.py [sark] [bundle]`).

Makes a CA and a server certificate (P-256) with the openssl command, starts `sark serve`
over HTTPS and over plain HTTP on the example bundle, and measures, as the client sees it
(Python's ssl and http.client, on the same machine):
- a new connection per decision: TCP connect + TLS handshake + the first decision, over HTTPS
  and (for reference) TCP connect + the decision over HTTP;
- decisions on one kept-alive HTTPS connection.
Reports p50/p99 of each (N per mode) and the handshake's share.
"""
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time

SARK = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/sark")
BUNDLE = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "target/bundles/mcp.wasm")
N = int(os.environ.get("TLS_N", "1000"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def openssl(work, *args):
    subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)


def pki(work):
    openssl(work, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    with open(os.path.join(work, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl(work, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    openssl(work, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")


def start(work, extra):
    proc = subprocess.Popen([SARK, "serve", "--bundle", BUNDLE, "--addr", "127.0.0.1:0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)
    for line in proc.stdout:
        if line.startswith("listening on "):
            scheme, rest = line.strip()[len("listening on "):].split("://")
            host, port = rest.split(":")
            return proc, host, int(port)
    raise SystemExit("sark serve did not start")


def pct(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] * 1000, xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000


def decide(conn, body):
    conn.request("POST", "/v1/data/mcp/gateway/decision", body=body,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    assert r.status == 200, r.status


def main():
    work = tempfile.mkdtemp(prefix="sark-tls-")
    pki(work)
    with open(os.path.join(ROOT, "policies/samples/developer-create-issue.json")) as f:
        body = json.dumps({"input": json.load(f)})
    ctx = ssl.create_default_context(cafile=os.path.join(work, "ca.pem"))
    https, host, tls_port = start(work, ["--tls-cert-file", "server.pem", "--tls-private-key-file", "server.key"])
    plain, _, plain_port = start(work, [])
    try:
        def fresh(make):
            out = []
            for _ in range(N):
                t = time.perf_counter()
                conn = make()
                decide(conn, body)
                out.append(time.perf_counter() - t)
                conn.close()
            return out

        new_tls = lambda: http.client.HTTPSConnection(host, tls_port, context=ctx, timeout=10)
        new_plain = lambda: http.client.HTTPConnection(host, plain_port, timeout=10)
        fresh(new_tls)  # warm-up (cache, instances)
        fresh(new_plain)
        tls = pct(fresh(new_tls))
        http_ = pct(fresh(new_plain))
        conn = new_tls()
        kept = []
        for _ in range(N):
            t = time.perf_counter()
            decide(conn, body)
            kept.append(time.perf_counter() - t)
        conn.close()
        kept = pct(kept)
        print(f"new HTTPS connection (TCP + TLS 1.3 handshake + first decision): p50 {tls[0]:.3f} ms, p99 {tls[1]:.3f} ms (n={N})")
        print(f"new HTTP connection (TCP + first decision):                     p50 {http_[0]:.3f} ms, p99 {http_[1]:.3f} ms")
        print(f"kept-alive HTTPS connection (a decision):                       p50 {kept[0]:.3f} ms, p99 {kept[1]:.3f} ms")
        print(f"handshake share of a new HTTPS connection's p50: {(tls[0] - http_[0]) / tls[0]:.0%}")
    finally:
        for p in (https, plain):
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
