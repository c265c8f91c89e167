"""Overload benchmark (`python3 bench/overload.py [sark] [bundle]`).

Starts `sark serve` on the example bundle with the decision cache off (every decision is an
evaluation), twice in the same run: with the default bound on concurrent evaluations, and with
the bound lifted (`max_concurrent_evaluations: 100000`, the behaviour before load shedding).
Each is driven open-loop by `host/examples/http_load.rs` (distinct inputs, 256 callers, paced
at OVERLOAD_RATES req/s; a late request is timed from when it was due), first below capacity,
then above it. Reported per run: the answers by status with their p50/p90/p99. The load
generator shares the machine's cores with the server. OVERLOAD_VARIANTS adds runs with other
`server` settings in the same run, separated by `;` (for example
`OVERLOAD_VARIANTS="max_queued_evaluations: 3; queue_timeout_ms: 10"`).
"""
import os
import subprocess
import sys
import tempfile

SARK = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/sark")
BUNDLE = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "target/bundles/mcp.wasm")
RATES = os.environ.get("OVERLOAD_RATES", "4000 12000").split()
SECONDS = os.environ.get("OVERLOAD_SECONDS", "8")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOAD = os.path.join(os.path.dirname(SARK), "examples", "http_load")


def run(label, extra_server):
    work = tempfile.mkdtemp(prefix="sark-overload-")
    config = os.path.join(work, "sark.yaml")
    with open(config, "w") as f:
        f.write("features: { decision_cache: { enabled: false } }\n")
        f.write("server: { reload_poll_ms: 0%s }\n" % extra_server)
    proc = subprocess.Popen([SARK, "serve", "--bundle", BUNDLE, "--config", config, "--addr", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)
    try:
        for line in proc.stdout:
            if line.startswith("listening on "):
                base = line.strip()[len("listening on "):]
                break
        for rate in RATES:
            out = subprocess.run([LOAD, base + "/v1/data/mcp/gateway/decision", "--input",
                                  os.path.join(ROOT, "policies/samples/developer-create-issue.json"),
                                  "--rate", rate, "--duration", SECONDS, "--concurrency", "256"],
                                 check=True, capture_output=True, text=True).stdout
            print(f"== {label}, offered {rate} req/s")
            print(out.rstrip())
    finally:
        proc.terminate()
        proc.wait()


def main():
    if not os.path.exists(LOAD):
        subprocess.run(["cargo", "build", "--release", "-p", "sark", "--example", "http_load"], check=True, cwd=ROOT)
    run("bounded (defaults)", "")
    for variant in filter(None, (v.strip() for v in os.environ.get("OVERLOAD_VARIANTS", "").split(";"))):
        run(f"bounded ({variant})", ", " + variant)
    run("unbounded (max_concurrent_evaluations: 100000)", ", max_concurrent_evaluations: 100000")


if __name__ == "__main__":
    main()
