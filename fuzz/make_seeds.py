#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets added with the AuthZEN, data API, ext_authz
and bundle service work (run from anywhere: `python3 fuzz/make_seeds.py`):

- corpus/http_body/: AuthZEN and data API write bodies (first byte: the route selector of
  fuzz_targets/http_body.rs);
- corpus/ext_authz_check/: protobuf-encoded Envoy `CheckRequest`s, by hand in the wire
  format;
- corpus/downloaded_bundle/: OPA bundle tarballs (.manifest, data, one .rego), two signed
  with HS256 under key id `fuzz` and secret `fuzz-secret`, as the target's configs expect;
- corpus/config_yaml/: configs with the OPA management sections, authzen, ext_authz and the
  server's security and admission keys.

Only the standard library; the output is deterministic (gzip and tar times are 0)."""

import base64
import gzip
import hashlib
import hmac
import io
import json
import os
import struct
import tarfile

FUZZ = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(FUZZ, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(value):
    """JSON as OPA's canonical form prints it (compact, keys sorted); ASCII only here."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# ---------------------------------------------------------------------------------------
# http_body: selector byte + body. The selectors are the indexes of ROUTES.

SEL_EVALUATION = 8
SEL_EVALUATIONS = 9
SEL_SEARCH_SUBJECT = 10
SEL_SEARCH_RESOURCE = 11
SEL_SEARCH_ACTION = 12
SEL_PUT = 13
SEL_PATCH = 14
SEL_READ = 15
SEL_PUT_IF_NONE_MATCH = SEL_PUT + 128  # 141 % 16 == 13, and >= 128: If-None-Match: *

RICK = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"  # admin, evil_genius
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"  # editor
BETH = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"  # viewer


def user(pid):
    return {"type": "user", "id": pid}


def http(name, selector, body):
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    write("http_body", name, bytes([selector]) + body)


def http_body():
    http(
        "authzen_evaluation_permit",
        SEL_EVALUATION,
        {
            "subject": user(RICK),
            "action": {"name": "can_read_user"},
            "resource": {"type": "user", "id": "beth@the-smiths.com"},
        },
    )
    http(
        "authzen_evaluation_deny",
        SEL_EVALUATION,
        {
            "subject": user(BETH),
            "action": {"name": "can_delete_todo"},
            "resource": {
                "type": "todo",
                "id": "7240d0db-8ff0-41ec-98b2-34a096273b92",
                "properties": {"ownerID": "morty@the-citadel.com"},
            },
            "context": {"time": "2025-06-27T18:03:00-07:00"},
        },
    )
    http(
        "authzen_evaluation_own_todo",
        SEL_EVALUATION,
        {
            "subject": {"type": "user", "id": MORTY, "properties": {"department": "science"}},
            "action": {"name": "can_update_todo", "properties": {"method": "PUT"}},
            "resource": {
                "type": "todo",
                "id": "7240d0db",
                "properties": {"ownerID": "morty@the-citadel.com"},
            },
        },
    )
    http(
        "authzen_evaluations_batch",
        SEL_EVALUATIONS,
        {
            "subject": user(MORTY),
            "resource": {"type": "todo", "id": "1", "properties": {"ownerID": "morty@the-citadel.com"}},
            "context": {},
            "evaluations": [
                {"action": {"name": "can_read_todos"}},
                {"action": {"name": "can_delete_todo"}},
                {"subject": user(BETH), "action": {"name": "can_create_todo"}},
                {"action": {"name": "can_update_todo"}},
            ],
            "options": {"evaluations_semantic": "deny_on_first_deny"},
        },
    )
    http(
        "authzen_evaluations_permit_first",
        SEL_EVALUATIONS,
        {
            "subject": user(BETH),
            "action": {"name": "can_read_user"},
            "evaluations": [
                {"resource": {"type": "user", "id": "nobody@example.com"}},
                {"resource": {"type": "user", "id": "rick@the-citadel.com"}},
            ],
            "options": {"evaluations_semantic": "permit_on_first_permit"},
        },
    )
    http(
        "authzen_evaluations_single",
        SEL_EVALUATIONS,
        {
            "subject": user(RICK),
            "action": {"name": "can_read_todos"},
            "resource": {"type": "todo", "id": "2"},
            "evaluations": [],
        },
    )
    http(
        "authzen_search_subject",
        SEL_SEARCH_SUBJECT,
        {
            "subject": {"type": "user"},
            "action": {"name": "can_delete_todo"},
            "resource": {"type": "todo", "id": "3", "properties": {"ownerID": "summer@the-smiths.com"}},
            "page": {"limit": 2},
        },
    )
    http(
        "authzen_search_resource",
        SEL_SEARCH_RESOURCE,
        {
            "subject": user(BETH),
            "action": {"name": "can_read_user"},
            "resource": {"type": "user"},
        },
    )
    http(
        "authzen_search_action",
        SEL_SEARCH_ACTION,
        {
            "subject": user(MORTY),
            "resource": {"type": "todo", "id": "4", "properties": {"ownerID": "morty@the-citadel.com"}},
            "context": {"ip": "10.0.0.1"},
            "page": {"limit": 3, "token": ""},
        },
    )
    http(
        "data_put_doc",
        SEL_PUT,
        {"owner": "ada", "tools": ["jira", "github"], "limits": {"rate": 10, "burst": 20}},
    )
    http("data_put_scalar", SEL_PUT, "42")
    http("data_put_if_none_match", SEL_PUT_IF_NONE_MATCH, {"created": True})
    http(
        "data_patch_ops",
        SEL_PATCH,
        [
            {"op": "add", "path": "/tools/-", "value": "slack"},
            {"op": "replace", "path": "/limits/rate", "value": 20},
            {"op": "remove", "path": "/owner"},
        ],
    )
    http(
        "data_patch_create",
        SEL_PATCH,
        [{"op": "add", "path": "", "value": {"fresh": True, "tools": []}}],
    )
    http(
        "data_patch_whole",
        SEL_PATCH,
        [{"op": "replace", "path": "/", "value": {"owner": "grace", "tools": ["jira"]}}],
    )
    http("data_read", SEL_READ, {"input": {"user": {"id": "ada"}}})
    http("data_read_no_input", SEL_READ, "")


# ---------------------------------------------------------------------------------------
# ext_authz_check: protobuf wire format (envoy.service.auth.v3.CheckRequest).


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field, wire):
    return varint((field << 3) | wire)


def pb_uint(field, n):
    return tag(field, 0) + varint(n)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return tag(field, 2) + varint(len(data)) + data


def pb_double(field, x):
    return tag(field, 1) + struct.pack("<d", x)


def pb_string_map(field, entries):
    """map<string, string>: one length-delimited entry {1: key, 2: value} each."""
    return b"".join(pb_bytes(field, pb_bytes(1, k) + pb_bytes(2, v)) for k, v in entries.items())


def pb_value(v):
    """google.protobuf.Value."""
    if v is None:
        return pb_uint(1, 0)
    if isinstance(v, bool):
        return pb_uint(4, int(v))
    if isinstance(v, (int, float)):
        return pb_double(2, float(v))
    if isinstance(v, str):
        return pb_bytes(3, v)
    if isinstance(v, list):
        return pb_bytes(6, b"".join(pb_bytes(1, pb_value(x)) for x in v))
    return pb_bytes(5, pb_struct(v))


def pb_struct(d):
    """google.protobuf.Struct: map<string, Value> fields = 1."""
    return b"".join(pb_bytes(1, pb_bytes(1, k) + pb_bytes(2, pb_value(v))) for k, v in d.items())


def socket_address(address, port):
    # Address { socket_address = 1: SocketAddress { address = 2, port_value = 3 } }
    return pb_bytes(1, pb_bytes(2, address) + pb_uint(3, port))


def peer(address, port, principal="", labels=None, service=""):
    out = pb_bytes(1, socket_address(address, port))
    if service:
        out += pb_bytes(2, service)
    if labels:
        out += pb_string_map(3, labels)
    if principal:
        out += pb_bytes(4, principal)
    return out


def http_request(
    method,
    path,
    headers,
    host="gateway.local",
    body=None,
    raw_body=None,
    header_map=None,
    size=None,
):
    out = pb_bytes(1, "1f0e2d3c-4b5a-6978-8695-a4b3c2d1e0f9")
    out += pb_bytes(2, method)
    out += pb_string_map(3, headers)
    out += pb_bytes(4, path)
    out += pb_bytes(5, host)
    out += pb_bytes(6, "https")
    if size is not None:
        out += pb_uint(9, size)
    out += pb_bytes(10, "HTTP/1.1")
    if body is not None:
        out += pb_bytes(11, body)
    if raw_body is not None:
        out += pb_bytes(12, raw_body)
    if header_map is not None:
        # HeaderMap { headers = 1: HeaderValue { key = 1, value = 2, raw_value = 3 } }
        hm = b""
        for key, value, raw in header_map:
            hv = pb_bytes(1, key)
            if value:
                hv += pb_bytes(2, value)
            if raw:
                hv += pb_bytes(3, raw)
            hm += pb_bytes(1, hv)
        out += pb_bytes(13, hm)
    return out


def check_request(
    http_req,
    seconds=1751068980,
    nanos=123456789,
    context_extensions=None,
    metadata=None,
    sni=None,
    source=None,
):
    request = pb_bytes(1, pb_uint(1, seconds) + pb_uint(2, nanos))  # Timestamp
    request += pb_bytes(2, http_req)
    attrs = pb_bytes(
        1,
        source
        or peer(
            "10.0.0.7",
            51234,
            principal="spiffe://cluster.local/ns/default/sa/frontend",
        ),
    )
    attrs += pb_bytes(2, peer("10.0.0.9", 8080, labels={"app": "mcp-gateway"}, service="gateway"))
    attrs += pb_bytes(4, request)
    if context_extensions:
        attrs += pb_string_map(10, context_extensions)
    if metadata:
        # Metadata { filter_metadata = 1: map<string, Struct> }
        attrs += pb_bytes(
            11, b"".join(pb_bytes(1, pb_bytes(1, k) + pb_bytes(2, pb_struct(v))) for k, v in metadata.items())
        )
    if sni:
        attrs += pb_bytes(12, pb_bytes(1, sni))  # TlsSession { sni = 1 }
    return pb_bytes(1, attrs)  # CheckRequest { attributes = 1 }


def ext_authz_check():
    base = {":authority": "gateway.local", "x-user-id": "ada", "user-agent": "curl/8.5.0"}
    write(
        "ext_authz_check",
        "get_with_query",
        check_request(
            http_request(
                "GET",
                "/api/v1/tools/github%2Fissues?limit=10&server=github&tag=a&tag=b+c",
                {**base, ":path": "/api/v1/tools", ":method": "GET", "authorization": "Bearer abc.def.ghi"},
            ),
            context_extensions={"virtual_host": "mcp", "cluster": "tools"},
            sni="gateway.local",
        ),
    )
    body = json.dumps(
        {
            "user": {"id": "ada", "role": "admin"},
            "action": "tool:invoke",
            "resource": {"server": "github", "tool": "create_issue"},
            "parameters": {"title": "fuzz"},
        }
    )
    write(
        "ext_authz_check",
        "post_json_body",
        check_request(
            http_request(
                "POST",
                "/mcp/invoke",
                {**base, "content-type": "application/json", "content-length": str(len(body))},
                body=body,
                size=len(body),
            )
        ),
    )
    form = "tool=create_issue&server=github&note=hello+world%21"
    write(
        "ext_authz_check",
        "post_form_body",
        check_request(
            http_request(
                "POST",
                "/forms/submit",
                {**base, "content-type": "application/x-www-form-urlencoded"},
                body=form,
            )
        ),
    )
    multipart = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="meta"\r\n'
        b"Content-Type: application/json\r\n\r\n"
        b'{"tool":"upload"}\r\n'
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        b"hello\r\n"
        b"--XyZ--\r\n"
    )
    write(
        "ext_authz_check",
        "multipart_raw_body",
        check_request(
            http_request(
                "PUT",
                "/upload",
                {**base, "content-type": "multipart/form-data; boundary=XyZ", "content-length": str(len(multipart))},
                raw_body=multipart,
                header_map=[("x-raw", "", b"\xff\xfe"), ("x-plain", "v", b"")],
            )
        ),
    )
    write(
        "ext_authz_check",
        "jwt_metadata",
        check_request(
            http_request("DELETE", "/api/v1/servers/production", {**base, "x-user-id": "vic"}),
            metadata={
                "envoy.filters.http.jwt_authn": {
                    "sub": "vic",
                    "roles": ["viewer", None],
                    "exp": 1751072580,
                    "verified": True,
                    "claims": {"aud": "mcp", "scope": 1.5},
                }
            },
        ),
    )
    write(
        "ext_authz_check",
        "partial_body",
        check_request(
            http_request(
                "POST",
                "/mcp/invoke",
                {**base, "content-type": "application/json", "x-envoy-auth-partial-body": "true"},
                body='{"user": {"id": "ada"',
            )
        ),
    )
    # A `;` in the query: the plugin's request_parse_error answer.
    write(
        "ext_authz_check",
        "query_semicolon",
        check_request(http_request("GET", "/search?a=1;b=2", base)),
    )
    # A body that claims JSON and is not: a parse error only when the body is parsed.
    write(
        "ext_authz_check",
        "bad_json_body",
        check_request(
            http_request("POST", "/mcp/invoke", {**base, "content-type": "application/json"}, body="{not json")
        ),
    )
    # No attributes at all: the input is `version` and the empty path.
    write("ext_authz_check", "empty", b"")


# ---------------------------------------------------------------------------------------
# downloaded_bundle: OPA bundle tarballs.

SECRET = b"fuzz-secret"
KEYID = "fuzz"

POLICY = """package fuzz

# METADATA
# title: Fuzz decision
# entrypoint: true
default allow := false

allow if {
	input.user.id in data.fuzz.admins
}

allow if input.action == "read"
"""

POLICY_V0 = """package fuzz.legacy

default allow = false

allow {
	input.user == "ada"
}
"""


def tar_gz(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signatures(files, digests, extra_claims=None, algorithm="SHA-256"):
    """`.signatures.json` as `opa sign --signing-alg HS256`: one compact JWS over the list
    of files (name without the leading '/', hex digest of the canonical bytes)."""
    hashes = {"SHA-256": hashlib.sha256, "SHA-512": hashlib.sha512}
    listed = [
        {"name": name.lstrip("/"), "hash": hashes[algorithm](digests.get(name, data)).hexdigest(), "algorithm": algorithm}
        for name, data in files
    ]
    header = b64url(json.dumps({"alg": "HS256", "kid": KEYID}).encode())
    claims = {"files": listed, "keyid": KEYID}
    claims.update(extra_claims or {})
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}"
    sig = b64url(hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest())
    return json.dumps({"signatures": [f"{signing_input}.{sig}"]}).encode()


def bundle_files(revision):
    return [
        ("/.manifest", compact({"revision": revision, "roots": ["fuzz"]}).encode()),
        ("/fuzz/data.json", compact({"admins": ["ada", "grace"], "limits": {"rate": 10}}).encode()),
        ("/fuzz/policy.rego", POLICY.encode()),
    ]


def downloaded_bundle():
    write("downloaded_bundle", "unsigned.tar.gz", tar_gz(bundle_files("fuzz-1")))

    files = bundle_files("fuzz-2")
    files.append(("/.signatures.json", signatures(files, {})))
    write("downloaded_bundle", "signed_hs256.tar.gz", tar_gz(files))

    # Signed with SHA-512 digests and OPA's other claims; a data.yaml (hashed as its
    # canonical JSON) and a Rego v0 module chosen by the manifest's file_rego_versions.
    manifest = compact(
        {
            "revision": "fuzz-3",
            "roots": ["fuzz"],
            "rego_version": 1,
            "file_rego_versions": {"fuzz/legacy/*.rego": 0},
            "metadata": {"entrypoints": ["fuzz/legacy/allow"], "owner": "fuzz"},
            "wasm": [{"entrypoint": "fuzz/allow", "module": "/policy.wasm"}],
        }
    ).encode()
    yaml = b"limits:\n  burst: 20\nteams: [red, blue]\n"
    files = [
        ("/.manifest", manifest),
        ("/fuzz/data.json", compact({"admins": ["ada"]}).encode()),
        ("/fuzz/extra/data.yaml", yaml),
        ("/fuzz/policy.rego", POLICY.encode()),
        ("/fuzz/legacy/legacy.rego", POLICY_V0.encode()),
    ]
    digests = {"/fuzz/extra/data.yaml": compact({"limits": {"burst": 20}, "teams": ["red", "blue"]}).encode()}
    files.append(
        (
            ".signatures.json",
            signatures(files, digests, {"iat": 1751068980, "iss": "fuzz-ci"}, algorithm="SHA-512"),
        )
    )
    write("downloaded_bundle", "signed_sha512_yaml_v0.tar.gz", tar_gz(files))

    # Signed, then a file changed: the digest mismatch.
    files = bundle_files("fuzz-4")
    sig = signatures(files, {})
    files[2] = ("/fuzz/policy.rego", POLICY.replace("read", "write").encode())
    files.append(("/.signatures.json", sig))
    write("downloaded_bundle", "tampered.tar.gz", tar_gz(files))

    # An empty signatures file: no signature at all.
    files = bundle_files("fuzz-5") + [("/.signatures.json", b"{}")]
    write("downloaded_bundle", "empty_signatures.tar.gz", tar_gz(files))

    # A sark component's header: the `.wasm` branch.
    write("downloaded_bundle", "wasm_header", b"\0asm\x0d\x00\x01\x00")


# ---------------------------------------------------------------------------------------
# config_yaml: the management sections, authzen, ext_authz, server security.

CONFIGS = {
    "management.yaml": """\
labels: { region: eu-west-1, team: platform }
services:
  bundles:
    url: https://bundles.example.com/v1
    headers: { X-Tenant: acme }
    credentials:
      bearer: { token: s3cr3t, scheme: Bearer }
    tls: { ca_cert: /etc/sark/ca.pem, system_ca_required: true }
    response_header_timeout_seconds: 5
  collector:
    url: http://collector.internal:8080
    credentials:
      bearer: { token_path: /var/run/secrets/collector-token }
bundles:
  authz:
    service: bundles
    resource: bundles/authz.tar.gz
    persist: true
    size_limit_bytes: 10485760
    trigger: periodic
    polling: { min_delay_seconds: 10, max_delay_seconds: 20, long_polling_timeout_seconds: 30 }
    signing:
      keyid: team
      scope: write
      exclude_files: ["*.md", "docs/**"]
keys:
  team: { algorithm: HS256, key: fuzz-secret, scope: write }
  release:
    algorithm: EdDSA
    key: |
      -----BEGIN PUBLIC KEY-----
      MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
      -----END PUBLIC KEY-----
decision_logs:
  service: collector
  resource: /logs/sark
  console: true
  partition_name: eu
  reporting:
    min_delay_seconds: 5
    max_delay_seconds: 10
    buffer_size_limit_bytes: 1048576
    buffer_size_limit_events: 5000
    upload_size_limit_bytes: 65536
    buffer_type: event
    trigger: periodic
status:
  service: collector
  partition_name: eu
  console: true
  prometheus: true
persistence_directory: /var/lib/sark
""",
    "management_list.yaml": """\
services:
  - name: registry
    url: https://ghcr.io
    type: oci
    credentials: { bearer: { token: ghp_fuzz } }
  - name: logs
    url: http://127.0.0.1:9000
    allow_insecure_tls: false
bundles:
  policies:
    service: registry
    resource: ghcr.io/acme/policies:v1.2.3
    signing: {}
keys:
  rsa: { key: "-----BEGIN PUBLIC KEY-----\\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAK=\\n-----END PUBLIC KEY-----\\n" }
decision_logs: { console: true }
status: { console: true }
""",
    "authzen.yaml": """\
authzen:
  entrypoint: data.authzen.todo.decision
  candidates_entrypoint: data.authzen.todo.candidates
  policy_decision_point: https://pdp.example.com
  max_evaluations: 100
  max_candidates: 500
""",
    "ext_authz.yaml": """\
ext_authz:
  addr: 127.0.0.1:9191
  path: envoy/authz/allow
  dry_run: true
  skip_request_body_parse: false
  user_header: x-user-id
""",
    "server_security.yaml": """\
server:
  addr: 0.0.0.0:8443
  admin_token: fuzz-admin
  tls_cert_file: /etc/sark/tls/server.crt
  tls_private_key_file: /etc/sark/tls/server.key
  tls_ca_cert_file: /etc/sark/tls/clients-ca.crt
  tls_refresh_ms: 5000
  min_tls_version: "1.3"
  authentication: token
  authorization: basic
  max_concurrent_evaluations: 8
  max_queued_evaluations: 32
  queue_timeout_ms: 50
  header_timeout_ms: 5000
  body_timeout_ms: 5000
  max_connections: 1000
default_authorization_decision: /system/authz/allow
default_decision: /mcp/gateway/decision
""",
    "server_mtls.yaml": """\
server:
  tls_cert_file: server.pem
  tls_private_key_file: server-key.pem
  tls_ca_cert_file: ca.pem
  authentication: tls
  authorization: basic
  max_concurrent_evaluations: 1
  max_queued_evaluations: 0
ext_authz: { addr: ":9292" }
""",
    "everything.yaml": """\
features:
  wasm_engine: { enabled: true, rollout_percentage: 50, fallback_on_error: true }
  decision_cache: { enabled: true, rollout_percentage: 100, max_size: 1000, ttl_seconds: 60 }
  policy_canary: { enabled: true, rollout_percentage: 10, mode: route }
limits:
  eval_timeout_ms: 100
  request_timeout_ms: 400
  max_data_bytes: 1048576
  max_data_depth: 32
server:
  authentication: token
  authorization: basic
  max_concurrent_evaluations: 4
labels: { env: staging }
services:
  s: { url: "http://127.0.0.1:8282" }
bundles:
  authz: { service: s, signing: { keyid: k } }
keys:
  k: { algorithm: HS512, key: fuzz-secret }
decision_logs: { service: s, reporting: { min_delay_seconds: 1, max_delay_seconds: 1 } }
status: { service: s }
authzen: { entrypoint: data.authzen.mcp.decision }
ext_authz: { path: mcp/gateway/allow, dry_run: false }
decision_log: { enabled: true, output: stdout, mask: ["/input/token"] }
""",
}


def config_yaml():
    for name, text in CONFIGS.items():
        write("config_yaml", name, text)


if __name__ == "__main__":
    http_body()
    ext_authz_check()
    downloaded_bundle()
    config_yaml()
