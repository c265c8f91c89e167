"""The soak request mix and its checker (bench/soak.sh).

`build URL OUT_DIR`: writes the mix (soak_data.lua for wrk) and the reference answers
(soak_ref.json) taken from a server with no faults injected. Valid requests are the sample
inputs with a varying request id (so most miss the cache); invalid and hostile requests
carry the status they must get.

`check URL OUT_DIR SECONDS`: replays the mix one request at a time for SECONDS and counts
answers that differ from the reference (a changed result, or another status).
"""
import glob
import json
import sys
import time
import urllib.error
import urllib.request

mode, url, out = sys.argv[1], sys.argv[2], sys.argv[3]


def post(path, body):
    req = urllib.request.Request(url + path, data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


if mode == "check":
    entries = json.load(open(out + "/soak_ref.json"))
    deadline = time.time() + float(sys.argv[4])
    checked = differed = shed = 0
    while time.time() < deadline:
        for e in entries:
            status, text = post(e["path"], e["body"])
            checked += 1
            # Load shedding (503 server_overloaded) is a designed answer, not a difference.
            if status == 503 and "server_overloaded" in text:
                shed += 1
                continue
            if "expect" in e:
                ok = status == 200 and e["expect"] in text
            else:
                ok = status == e["status"]
            if not ok:
                differed += 1
                if differed <= 5:
                    print(f"differs: {e['path']} -> {status} {text[:200]}", file=sys.stderr)
            if time.time() >= deadline:
                break
    print(f"checked answers: {checked}, differing from the reference run: {differed}, shed (503): {shed}")
    sys.exit(0)

entries = []
samples = [json.load(open(p)) for p in sorted(glob.glob("policies/samples/*.json"))]
for i in range(200):
    sample = json.loads(json.dumps(samples[i % len(samples)]))
    sample.setdefault("context", {})["request_id"] = f"soak-{i}"
    for path in ("/v1/data/mcp/gateway/decision", "/v1/data/mcp/gateway/allow"):
        body = json.dumps({"input": sample})
        status, text = post(path, body)
        assert status == 200, (status, text)
        result = json.loads(text)["result"]
        expect = '"result":' + json.dumps(result, separators=(",", ":"))
        entries.append({"path": path, "body": body, "expect": expect})
invalid = [
    ("/v1/data/mcp/gateway/decision", '{"input": {', 400),
    ("/v1/data/mcp/gateway/decision", "[" * 10000 + "]" * 10000, 400),
    ("/v1/data/mcp/gateway/decision", json.dumps({"input": {"p": "x" * 100000}}), 413),
    ("/v1/data/hostile/spin", "{}", 500),
]
for path, body, status in invalid:
    for _ in range(4):
        entries.append({"path": path, "body": body, "status": status})


def lua(s):
    return json.dumps(s)  # JSON string escapes are valid Lua string escapes here


json.dump(entries, open(out + "/soak_ref.json", "w"))
with open(out + "/soak_data.lua", "w") as f:
    f.write("return {\n")
    for e in entries:
        fields = [f"path = {lua(e['path'])}", f"body = {lua(e['body'])}"]
        if "expect" in e:
            fields.append(f"expect = {lua(e['expect'])}")
        else:
            fields.append(f"status = {e['status']}")
        f.write("  {" + ", ".join(fields) + "},\n")
    f.write("}\n")
print(f"{len(entries)} requests in the mix, reference answers recorded")
