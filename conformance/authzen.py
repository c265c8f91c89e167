#!/usr/bin/env python3
"""Conformance runner for the OpenID AuthZEN Authorization API 1.0 certification scenario.

Walks every numbered test of the scenario (`../shared/authzen/authorization-api-1_0-scenario.md`)
against a running Policy Decision Point and prints, per certification sub-level (Basic Core,
Basic Properties, Batch Core, Batch Properties, Search Core, Search Properties, Discovery),
how many tests passed and failed, then a total line; each failed test is listed with its id and
the reason (`C.2.4.1 missing subject: expected 400, got 200`). The exit code is 0 only when
every selected test passed (1 otherwise, 2 for a usage or server start-up error).

Against a running PDP:

    python3 conformance/authzen.py --url http://127.0.0.1:8181

Or let the runner start `sark serve` on a free loopback port and stop it (SIGTERM) afterwards:

    python3 conformance/authzen.py --sark target/release/sark \\
        --bundle target/bundles/mcp.wasm [--config sark.yaml]

Without `--config`, a temporary configuration selecting `data.authzen.cert.decision` as the
AuthZEN entrypoint is written. `--levels "Basic Core,search"` selects sub-levels (a level name
alone selects both its sub-levels); `--verbose` prints every request and response; `--list`
prints the tests without running them.

The PDP must be loaded with the scenario's fixture (C.1). Discovery runs first: when the
metadata document is usable (HTTP 200, a JSON object, `policy_decision_point` equal to the base
URL), its endpoint URLs are used for the other levels; otherwise the default paths (C.6.6).
Only the Python standard library is used.
"""

import argparse
import base64
import copy
import http.client
import json
import os
import queue
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

# --------------------------------------------------------------------------------------------
# Levels and endpoints
# --------------------------------------------------------------------------------------------

BASIC = "Basic Core"
BASIC_P = "Basic Properties"
BATCH = "Batch Core"
BATCH_P = "Batch Properties"
SEARCH = "Search Core"
SEARCH_P = "Search Properties"
DISCOVERY = "Discovery"
LEVELS = [BASIC, BASIC_P, BATCH, BATCH_P, SEARCH, SEARCH_P, DISCOVERY]

# Endpoint name -> (metadata parameter, default path), per the spec's endpoint table.
ENDPOINTS = {
    "evaluation": ("access_evaluation_endpoint", "/access/v1/evaluation"),
    "evaluations": ("access_evaluations_endpoint", "/access/v1/evaluations"),
    "subject search": ("search_subject_endpoint", "/access/v1/search/subject"),
    "resource search": ("search_resource_endpoint", "/access/v1/search/resource"),
    "action search": ("search_action_endpoint", "/access/v1/search/action"),
}
SEARCHES = ["subject search", "resource search", "action search"]
# The entity each search resolves.
SEARCH_TARGET = {"subject search": "subject", "resource search": "resource",
                 "action search": "action"}
# Cross-cutting tests (C.2.3-C.2.6, C.5) re-run on an endpoint count toward its Core level.
CORE_LEVEL = {"evaluation": BASIC, "evaluations": BATCH, **{s: SEARCH for s in SEARCHES}}

WELL_KNOWN = "/.well-known/authzen-configuration"
DEFAULT_TIMEOUT = 10.0  # seconds, every HTTP request
START_TIMEOUT = 60.0  # seconds, for `sark serve` to announce its address
STOP_TIMEOUT = 30.0  # seconds, after SIGTERM (the server flushes its decision log first)
MAX_PAGES = 50  # a search whose next_token never ends is a failure
IDEMPOTENCY_REPEATS = 5
DEFAULT_CONFIG = "authzen:\n  entrypoint: data.authzen.cert.decision\n"

# --------------------------------------------------------------------------------------------
# The fixture (C.1) and request bodies
# --------------------------------------------------------------------------------------------

ALICE = {"type": "user", "id": "alice"}
BOB = {"type": "user", "id": "bob"}
BOB_ADMIN = {"type": "user", "id": "bob", "properties": {"role": "admin"}}
USER = {"type": "user"}  # a Subject Search target
READ = {"name": "read"}
WRITE = {"name": "write"}
RECORD_1 = {"type": "record", "id": "record-1"}
RECORD_2 = {"type": "record", "id": "record-2"}
RECORD_1_ACTIVE = {"type": "record", "id": "record-1", "properties": {"status": "active"}}
RECORD_2_ARCHIVED = {"type": "record", "id": "record-2", "properties": {"status": "archived"}}
RECORD = {"type": "record"}  # a Resource Search target
CONTEXT = {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}


def req(**fields):
    """A request body with the given top-level fields, deep-copied so cases never share objects."""
    return copy.deepcopy(fields)


def without(body, *path):
    """`body` with the key at `path` removed (`without(b, "subject", "id")`)."""
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return out


def replaced(body, value, *path):
    """`body` with the value at `path` replaced by `value`."""
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def with_page(body, **page):
    """`body` with `page` fields added (kept: the fields already in its `page` object)."""
    out = copy.deepcopy(body)
    out["page"] = dict(out.get("page", {}), **page)
    return out


# Rule 1 of C.1.4: the default valid Access Evaluation request.
PERMIT = req(subject=ALICE, action=READ, resource=RECORD_1)
# Rule 4 of C.1.4.
DENY = req(subject=BOB, action=WRITE, resource=RECORD_1)
# The requests of rules 1-4, the Core fixture decisions.
CORE_REQUESTS = [
    PERMIT,
    req(subject=ALICE, action=WRITE, resource=RECORD_1),
    req(subject=BOB, action=READ, resource=RECORD_1),
    DENY,
]
# A valid request per search endpoint (the bodies of C.4.2.1, C.4.3.1 and C.4.4.1) and the
# entities the fixture requires in their results (S1-S3).
SEARCH_BASE = {
    "subject search": req(subject=USER, action=READ, resource=RECORD_1),
    "resource search": req(subject=ALICE, action=READ, resource=RECORD),
    "action search": req(subject=ALICE, resource=RECORD_1),
}
SEARCH_EXPECTED = {
    "subject search": ["alice", "bob"],
    "resource search": ["record-1"],
    "action search": ["read", "write"],
}
# A valid request per endpoint, for the cross-cutting tests (for Access Evaluations the body
# of C.3.2.2: decisions true, false).
VALID = {
    "evaluation": PERMIT,
    "evaluations": req(subject=BOB, resource=RECORD_1,
                       evaluations=[{"action": READ}, {"action": WRITE}]),
    **SEARCH_BASE,
}
MALFORMED_JSON = b'{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"'

# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


class Response:
    """One HTTP exchange's outcome: status, headers and body, or the transport error."""

    def __init__(self, status=None, headers=None, body=b"", error=None):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive
        self.body = body
        self.error = error

    def header(self, name):
        return self.headers.get(name) if self.headers is not None else None


def snippet(data, limit=120):
    """A short, single-line, quoted rendering of a body for messages."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def media_type(value):
    return (value or "").split(";")[0].strip().lower()


class Harness:
    """The PDP under test: its endpoint URLs, the HTTP client and the notes of a run."""

    def __init__(self, base, timeout=DEFAULT_TIMEOUT, verbose=False, insecure=False):
        self.base = base.rstrip("/")
        self.https = urllib.parse.urlsplit(self.base).scheme == "https"
        self.timeout = timeout
        self.verbose = verbose
        self.ssl_context = ssl.create_default_context()
        if insecure:
            self.ssl_context.check_hostname = False
            self.ssl_context.verify_mode = ssl.CERT_NONE
        self.endpoints = {name: self.base + path for name, (_, path) in ENDPOINTS.items()}
        self.endpoint_source = "default paths"
        self.metadata_url = well_known_url(self.base)
        self.metadata = None  # the Response of the metadata GET
        self.notes = []

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def send(self, method, url, body=None, headers=None):
        headers = dict(headers or {})
        parts = urllib.parse.urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if self.verbose:
            print(f"  >>> {method} {url}")
            for key, value in headers.items():
                print(f"      {key}: {value}")
            if body:
                print(f"      {body.decode('utf-8', 'replace')[:2000]}")
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.netloc, timeout=self.timeout,
                                               context=self.ssl_context)
        elif parts.scheme == "http":
            conn = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
        else:
            return Response(error=f"not an http(s) URL: {url!r}")
        try:
            conn.request(method, target, body=body, headers=headers)
            raw = conn.getresponse()
            resp = Response(raw.status, raw.headers, raw.read())
        except (OSError, http.client.HTTPException) as e:
            resp = Response(error=f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        finally:
            conn.close()
        if self.verbose:
            if resp.error:
                print(f"  <<< {resp.error}")
            else:
                print(f"  <<< {resp.status}")
                for key, value in resp.headers.items():
                    print(f"      {key}: {value}")
                if resp.body:
                    print(f"      {resp.body.decode('utf-8', 'replace')[:2000]}")
        return resp

    def post(self, endpoint, body, content_type="application/json", headers=None):
        """POSTs `body` (an object sent as JSON, or bytes sent as they are) to an endpoint."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {"Content-Type": content_type, "Accept": "application/json"}
        all_headers.update(headers or {})
        return self.send("POST", self.endpoints[endpoint], data, all_headers)

    def discover(self):
        """Fetches the metadata (C.6); uses its endpoint URLs when the document is usable."""
        self.metadata = self.send("GET", self.metadata_url, headers={"Accept": "application/json"})
        try:
            doc = json_object(expect_status(self.metadata, 200))
            problem = pdp_identifier_problem(doc, self.base, self.https)
            if problem:
                raise Fail(problem)
        except Fail as e:
            self.note(f"discovery: {e}; using the default paths (C.6.6)")
            return
        self.endpoint_source = f"metadata ({self.metadata_url})"
        for name, (key, path) in ENDPOINTS.items():
            value = doc.get(key)
            if value is None:
                self.note(f"discovery: no {key} in the metadata; using {self.base}{path}")
            elif url_problem(value, self.https) is None:
                self.endpoints[name] = value
            else:
                self.note(f"discovery: {key} {url_problem(value, self.https)}; "
                          f"using {self.base}{path}")


def well_known_url(base):
    """The metadata URL: the well-known string inserted between host and path (C.6.1)."""
    p = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((p.scheme, p.netloc, WELL_KNOWN + p.path.rstrip("/"),
                                    p.query, ""))


def url_problem(value, https):
    """Why `value` is not a valid endpoint URL (https required when `https`), or None."""
    if not isinstance(value, str) or not value:
        return f"is {json.dumps(value)}, not a URL string"
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # raises on a bad port
    except ValueError:
        return f"{value!r} is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} is not a valid http(s) URL"
    if https and parts.scheme != "https":
        return f"{value!r} is not an https URL"
    return None


def same_url(a, b):
    """Whether two URLs are identical up to case of scheme and host, default port and a
    trailing slash."""
    def norm(url):
        p = urllib.parse.urlsplit(url)
        port = p.port or {"http": 80, "https": 443}.get(p.scheme.lower())
        return (p.scheme.lower(), (p.hostname or "").lower(), port, p.path.rstrip("/"),
                p.query, p.fragment)
    try:
        return norm(a) == norm(b)
    except ValueError:
        return False


def pdp_identifier_problem(doc, base, https):
    """Why the metadata's `policy_decision_point` does not identify `base` (C.6.3), or None."""
    if "policy_decision_point" not in doc:
        return "the metadata has no policy_decision_point"
    value = doc["policy_decision_point"]
    problem = url_problem(value, https)
    if problem:
        return f"policy_decision_point {problem}"
    parts = urllib.parse.urlsplit(value)
    if parts.query or parts.fragment:
        return f"policy_decision_point {value!r} has a query or fragment"
    if not same_url(value, base):
        return (f"policy_decision_point is {value!r}, not the base URL used for discovery "
                f"({base!r})")
    return None


# --------------------------------------------------------------------------------------------
# Checks: each raises Fail with a message saying what was expected and what came back
# --------------------------------------------------------------------------------------------


class Fail(Exception):
    pass


def jb(value):
    """JSON rendering for messages (`true`, `[true, false]`)."""
    return json.dumps(value)


def fmt(ids, limit=10):
    shown = ", ".join(ids[:limit]) + (", ..." if len(ids) > limit else "")
    return f"[{shown}]"


def expect_status(resp, want):
    if resp.error:
        raise Fail(f"request failed: {resp.error}")
    if resp.status != want:
        message = f"expected {want}, got {resp.status}"
        if want == 200 and resp.body:
            message += f" ({snippet(resp.body)})"
        raise Fail(message)
    return resp


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def json_object(resp):
    """The response body as a JSON object; Fail (never a traceback) when it is not one."""
    try:
        doc = json.loads(resp.body.decode("utf-8"), parse_constant=reject_constant)
    except (UnicodeDecodeError, ValueError):
        kind = resp.header("Content-Type") or "none"
        raise Fail(f"response is not valid JSON (Content-Type: {kind}): {snippet(resp.body)}")
    if not isinstance(doc, dict):
        raise Fail(f"response is JSON but not an object: {snippet(resp.body)}")
    return doc


def ok_json(resp):
    """The JSON object of a response that must be HTTP 200."""
    return json_object(expect_status(resp, 200))


def decision_in(obj, where, context=False):
    """The boolean `decision` of a Decision object (C.2.3.1); with `context`, also checks
    that a `context` present is an object (C.2.3.2)."""
    if "decision" not in obj:
        raise Fail(f"{where} has no 'decision'")
    value = obj["decision"]
    if not isinstance(value, bool):
        raise Fail(f"{where}: 'decision' is {jb(value)}, not a boolean")
    if context and "context" in obj and not isinstance(obj["context"], dict):
        raise Fail(f"{where}: 'context' is {jb(obj['context'])}, not an object")
    return value


def batch_decisions(doc, count, context=False):
    """The decisions of an Access Evaluations response with `count` evaluations (C.3.3)."""
    items = doc.get("evaluations")
    if not isinstance(items, list):
        raise Fail(f"response has no 'evaluations' array: {snippet(jb(doc))}")
    if len(items) != count:
        raise Fail(f"expected {count} evaluations, got {len(items)}")
    decisions = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise Fail(f"evaluations[{i}] is {jb(item)}, not an object")
        decisions.append(decision_in(item, f"evaluations[{i}]", context))
    return decisions


def error_400(h, case, resp):
    expect_status(resp, 400)


def decision(want=None, context=False):
    """Check: HTTP 200 and a Decision; its value `want` unless None (structure only)."""
    def check(h, case, resp):
        got = decision_in(ok_json(resp), "response", context)
        if want is not None and got != want:
            raise Fail(f"expected decision {jb(want)}, got {jb(got)}")
    return check


def evaluations(want=None, count=None, context=False):
    """Check: HTTP 200 and an `evaluations` array of `count` (or len(want)) Decisions, in
    request order; their values `want` unless None."""
    count = len(want) if want is not None else count

    def check(h, case, resp):
        got = batch_decisions(ok_json(resp), count, context)
        if want is not None and got != want:
            raise Fail(f"expected decisions {jb(want)}, got {jb(got)}")
    return check


def result_id(endpoint, body, item, i):
    """A search result's identifier (entity id, or action name) after checking its shape."""
    where = f"results[{i}]"
    if not isinstance(item, dict):
        raise Fail(f"{where} is {jb(item)}, not an object")
    if endpoint == "action search":
        if not isinstance(item.get("name"), str):
            raise Fail(f"{where} has no string 'name': {snippet(jb(item))}")
        return item["name"]
    for key in ("type", "id"):
        if not isinstance(item.get(key), str):
            raise Fail(f"{where} has no string '{key}': {snippet(jb(item))}")
    want_type = body[SEARCH_TARGET[endpoint]]["type"]
    if item["type"] != want_type:
        raise Fail(f"{where} has type {item['type']!r}, not the requested {want_type!r}")
    return item["id"]


def page_results(endpoint, body, resp):
    """One search response: (its JSON object, the ids of its `results`), shapes checked."""
    doc = ok_json(resp)
    results = doc.get("results")
    if not isinstance(results, list):
        raise Fail(f"response has no 'results' array: {snippet(jb(doc))}")
    return doc, [result_id(endpoint, body, item, i) for i, item in enumerate(results)]


def next_token(doc):
    page = doc.get("page")
    if isinstance(page, dict) and isinstance(page.get("next_token"), str):
        return page["next_token"]
    return ""


def search_all(h, endpoint, body, first=None, on_page=None):
    """The ids of every result of a search, following `next_token` (with `page.token` added
    to the same request, C.4.5.2); every page is checked, and passed to `on_page(n, doc, ids)`."""
    resp = first if first is not None else h.post(endpoint, body)
    found, n = [], 1
    while True:
        try:
            doc, ids = page_results(endpoint, body, resp)
            if on_page:
                on_page(n, doc, ids)
        except Fail as e:
            raise Fail(f"page {n}: {e}" if n > 1 else str(e))
        found += ids
        token = next_token(doc)
        if not token:
            return found
        if n >= MAX_PAGES:
            raise Fail(f"page.next_token still non-empty after {MAX_PAGES} pages")
        n += 1
        resp = h.post(endpoint, with_page(body, token=token))


def results(include=(), same_as=None):
    """Search check: HTTP 200, well-formed `results` (all pages), including `include`; with
    `same_as` = (test id, body), the result set equals that request's."""
    def check(h, case, resp):
        ids = search_all(h, case.endpoint, case.body, resp)
        missing = [x for x in include if x not in ids]
        if missing:
            raise Fail(f"results lack {', '.join(missing)} (got {fmt(ids)})")
        if same_as is not None:
            base_id, base_body = same_as
            try:
                base = search_all(h, case.endpoint, base_body)
            except Fail as e:
                raise Fail(f"the {base_id} request for comparison: {e}")
            if set(ids) != set(base):
                raise Fail(f"result set {fmt(sorted(set(ids)))} differs from {base_id}'s "
                           f"{fmt(sorted(set(base)))}")
    return check


def no_results(h, case, resp):
    ids = search_all(h, case.endpoint, case.body, resp)
    if ids:
        raise Fail(f"expected empty results, got {fmt(ids)}")


def echoes(request_id, then):
    """Check `then`, and that the response carries X-Request-ID `request_id` (C.2.5.1)."""
    def check(h, case, resp):
        then(h, case, resp)
        got = resp.header("X-Request-ID")
        if got != request_id:
            raise Fail(f"X-Request-ID {request_id!r} not echoed (response has {got!r})")
    return check


def json_content_type(then):
    """Check `then`, and that the response's Content-Type is application/json (C.5.2)."""
    def check(h, case, resp):
        then(h, case, resp)
        got = resp.header("Content-Type")
        if media_type(got) != "application/json":
            raise Fail(f"Content-Type is {got!r}, not application/json")
    return check


def non_negative_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def page_problem(page, count):
    """Why a response `page` object is malformed (C.4.5.3), or None; `count` results."""
    if not isinstance(page, dict):
        return f"'page' is {jb(page)}, not an object"
    if not isinstance(page.get("next_token"), str):
        return f"page.next_token is missing or not a string: {snippet(jb(page))}"
    for key in ("count", "total"):
        if key in page and not non_negative_int(page[key]):
            return f"page.{key} is {jb(page[key])}, not a non-negative integer"
    if "count" in page and page["count"] != count:
        return f"page.count is {page['count']} but the page has {count} results"
    if "properties" in page and not isinstance(page["properties"], dict):
        return f"page.properties is {jb(page['properties'])}, not an object"
    return None


# --------------------------------------------------------------------------------------------
# Test cases
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One test: POST `body` to `endpoint` and apply `check(harness, case, response)`; or,
    for a test of more than one request, `run(harness)`. Both raise Fail."""

    id: str
    label: str
    level: str
    endpoint: Optional[str] = None
    body: object = None  # an object (sent as JSON) or bytes (sent as they are)
    check: Optional[Callable] = None
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    run: Optional[Callable] = None

    @property
    def name(self):
        return f"{self.id} {self.label}"


def cross_cutting_errors(endpoint):
    """C.2.4.3-C.2.4.5 on an endpoint other than Access Evaluation."""
    level, valid = CORE_LEVEL[endpoint], VALID[endpoint]
    return [
        Case("C.2.4.3", f"{endpoint}: invalid content type (text/plain)", level, endpoint,
             json.dumps(valid).encode(), error_400, content_type="text/plain"),
        Case("C.2.4.4", f"{endpoint}: malformed JSON", level, endpoint, MALFORMED_JSON,
             error_400),
        Case("C.2.4.5", f"{endpoint}: empty body", level, endpoint, b"", error_400),
    ]


def idempotency(h):
    """C.2.6: the same fixture request several times gives the same decision each time."""
    seen = []
    for i in range(IDEMPOTENCY_REPEATS):
        try:
            seen.append(decision_in(ok_json(h.post("evaluation", PERMIT)), "response"))
        except Fail as e:
            raise Fail(f"request {i + 1}: {e}")
    if len(set(seen)) != 1:
        raise Fail(f"decisions differ across {IDEMPOTENCY_REPEATS} identical requests: {jb(seen)}")


def response_format(context):
    """C.2.3.1 (and with `context` C.2.3.2) over the Core fixture requests."""
    def run(h):
        for body in CORE_REQUESTS:
            who = f"{body['subject']['id']}/{body['action']['name']}/{body['resource']['id']}"
            try:
                decision_in(ok_json(h.post("evaluation", body)), "response", context)
            except Fail as e:
                raise Fail(f"{who}: {e}")
    return run


def basic_cases():
    r1 = str(uuid.uuid4())
    r2 = str(uuid.uuid4())
    cases = [
        # C.2.2 Request acceptance
        Case("C.2.2.1", "permit decision (rule 1)", BASIC, "evaluation", PERMIT, decision(True)),
        Case("C.2.2.2", "deny decision (rule 4)", BASIC, "evaluation", DENY, decision(False)),
        Case("C.2.2.3", "optional context", BASIC, "evaluation",
             req(subject=ALICE, action=READ, resource=RECORD_1, context=CONTEXT), decision(True)),
        Case("C.2.2.4", "deny on resource properties (rule 5)", BASIC_P, "evaluation",
             req(subject=ALICE, action=WRITE, resource=RECORD_2_ARCHIVED), decision(False)),
        Case("C.2.2.5", "permit on subject properties (rule 6)", BASIC_P, "evaluation",
             req(subject=BOB_ADMIN, action=WRITE, resource=RECORD_2_ARCHIVED), decision(True)),
        Case("C.2.2.6", "permit on action properties (rule 7)", BASIC_P, "evaluation",
             req(subject=ALICE, action={"name": "delete", "properties": {"soft": True}},
                 resource=RECORD_1), decision(True)),
        Case("C.2.2.7", "deny on action properties (rule 8)", BASIC_P, "evaluation",
             req(subject=ALICE, action={"name": "delete", "properties": {"soft": False}},
                 resource=RECORD_1), decision(False)),
        Case("C.2.2.8", "additional properties", BASIC, "evaluation",
             req(subject={**ALICE, "properties": {"department": "Sales", "role": "manager"}},
                 action={**READ, "properties": {"method": "GET"}},
                 resource={**RECORD_1, "properties": {"status": "active", "owner": "bob"}}),
             decision(True)),
        Case("C.2.2.9", "unknown fields", BASIC, "evaluation",
             req(subject=ALICE, action=READ, resource=RECORD_1, foo="bar",
                 futureField={"nested": True}), decision(True)),
        # C.2.3 Response format
        Case("C.2.3.1", "decision field is a boolean", BASIC, run=response_format(False)),
        Case("C.2.3.2", "response context, if present, is an object", BASIC,
             run=response_format(True)),
    ]
    # C.2.4 Error handling
    for field_name in ("subject", "action", "resource"):
        cases.append(Case("C.2.4.1", f"missing {field_name}", BASIC, "evaluation",
                          without(PERMIT, field_name), error_400))
    for entity, key in (("subject", "type"), ("subject", "id"), ("action", "name"),
                        ("resource", "type"), ("resource", "id")):
        cases.append(Case("C.2.4.2", f"{entity} missing {key}", BASIC, "evaluation",
                          without(PERMIT, entity, key), error_400))
    cases += [
        Case("C.2.4.3", "invalid content type (text/plain)", BASIC, "evaluation",
             json.dumps(PERMIT).encode(), error_400, content_type="text/plain"),
        Case("C.2.4.4", "malformed JSON", BASIC, "evaluation", MALFORMED_JSON, error_400),
        Case("C.2.4.5", "empty body", BASIC, "evaluation", b"", error_400),
    ]
    for label, value, path in (
        ("subject is a string", "alice", ("subject",)),
        ("action.name is a number", 123, ("action", "name")),
        ("action is a string", "read", ("action",)),
        ("resource is a string", "record-1", ("resource",)),
        ("subject.type is a number", 1, ("subject", "type")),
        ("subject.id is a number", 1, ("subject", "id")),
        ("resource.type is a number", 1, ("resource", "type")),
        ("resource.id is a number", 1, ("resource", "id")),
        ("subject.properties is a string", "admin", ("subject", "properties")),
        ("context is a string", "now", ("context",)),
    ):
        cases.append(Case("C.2.4.6", label, BASIC, "evaluation", replaced(PERMIT, value, *path),
                          error_400))
    cases += [
        # C.2.5 Header handling
        Case("C.2.5.1", "X-Request-ID echoed", BASIC, "evaluation", PERMIT,
             echoes(r1, decision()), headers={"X-Request-ID": r1}),
        Case("C.2.5.1", "X-Request-ID echoed on an error response", BASIC, "evaluation",
             without(PERMIT, "subject"), echoes(r2, error_400), headers={"X-Request-ID": r2}),
        Case("C.2.5.2", "no X-Request-ID: request succeeds", BASIC, "evaluation", PERMIT,
             decision()),
        # C.2.6 Idempotency
        Case("C.2.6", f"same request {IDEMPOTENCY_REPEATS} times, same decision", BASIC,
             run=idempotency),
    ]
    return cases


def top_level_decision_ignored(h):
    """C.3.3.4: a top-level `decision` beside `evaluations` is ignored (SHOULD be omitted)."""
    doc = ok_json(h.post("evaluations", VALID["evaluations"]))
    got = batch_decisions(doc, 2)
    if got != [True, False]:
        raise Fail(f"expected decisions {jb([True, False])}, got {jb(got)}")
    if "decision" in doc:
        h.note("C.3.3.4: the Access Evaluations response has a top-level 'decision' beside "
               "'evaluations' (SHOULD be omitted; ignored)")


def batch_cases():
    def full(subject, action, resource):
        return {"subject": subject, "action": action, "resource": resource}

    cases = [
        # C.3.2 Request acceptance
        Case("C.3.2.1", "evaluations array (structure)", BATCH, "evaluations",
             req(subject=ALICE, action=READ, evaluations=[{"resource": RECORD_1},
                                                          {"resource": RECORD_2}]),
             evaluations(count=2)),
        Case("C.3.2.2", "fixture decisions (rules 3, 4)", BATCH, "evaluations",
             VALID["evaluations"], evaluations([True, False])),
        Case("C.3.2.3", "resource properties per item (rules 2, 5)", BATCH_P, "evaluations",
             req(subject=ALICE, action=WRITE, evaluations=[{"resource": RECORD_1_ACTIVE},
                                                           {"resource": RECORD_2_ARCHIVED}]),
             evaluations([True, False])),
        Case("C.3.2.4", "subject properties per item (rules 5, 6)", BATCH_P, "evaluations",
             req(action=WRITE, resource=RECORD_2_ARCHIVED,
                 evaluations=[{"subject": ALICE}, {"subject": BOB_ADMIN}]),
             evaluations([False, True])),
        Case("C.3.2.5", "fully specified evaluations", BATCH, "evaluations",
             req(evaluations=[full(ALICE, READ, RECORD_1), full(BOB, WRITE, RECORD_1)]),
             evaluations([True, False])),
        Case("C.3.2.6", "context inheritance and override", BATCH, "evaluations",
             req(subject=ALICE, action=READ, context={"time": "2025-06-27T18:03-07:00"},
                 evaluations=[{"resource": RECORD_1},
                              {"resource": RECORD_2,
                               "context": {"time": "2025-06-27T19:00-07:00",
                                           "source": "batch-override"}}]),
             evaluations(count=2)),
        Case("C.3.2.7", "top-level defaults, whole-entity override", BATCH_P, "evaluations",
             req(subject=ALICE, action=WRITE, resource=RECORD_1_ACTIVE,
                 evaluations=[{}, {"resource": RECORD_2_ARCHIVED}]),
             evaluations([True, False])),
        # C.3.3 Response format
        Case("C.3.3.1", "response length matches request (5)", BATCH, "evaluations",
             req(subject=ALICE, action=READ,
                 evaluations=[{"resource": r} for r in
                              (RECORD_1, RECORD_2, RECORD_1, RECORD_2, RECORD_1)]),
             evaluations(count=5)),
        Case("C.3.3.2", "response order matches request", BATCH, "evaluations",
             req(evaluations=[full(BOB, WRITE, RECORD_1), full(ALICE, READ, RECORD_1),
                              full(BOB, READ, RECORD_1), full(BOB, WRITE, RECORD_1),
                              full(ALICE, WRITE, RECORD_1)]),
             evaluations([False, True, True, False, True])),
        Case("C.3.3.3", "each evaluation a boolean decision, context an object", BATCH,
             "evaluations",
             req(evaluations=[full(ALICE, READ, RECORD_1), full(BOB, WRITE, RECORD_1),
                              full(ALICE, READ, RECORD_2)]),
             evaluations(count=3, context=True)),
        Case("C.3.3.4", "top-level decision ignored", BATCH, run=top_level_decision_ignored),
        # C.3.4 Error handling
        Case("C.3.4.1", "execute_all: item missing resource denied", BATCH, "evaluations",
             req(subject=ALICE, action=READ, options={"evaluations_semantic": "execute_all"},
                 evaluations=[{"resource": RECORD_1}, {}]),
             evaluations([True, False])),
        Case("C.3.4.2", "no evaluations array: single evaluation", BATCH, "evaluations",
             PERMIT, decision(True)),
        Case("C.3.4.3", "empty evaluations array: single evaluation", BATCH, "evaluations",
             req(subject=ALICE, action=READ, resource=RECORD_1, evaluations=[]), decision(True)),
    ]
    # Whole-payload errors stay HTTP errors on this endpoint (C.3.4.1's note, C.2.4, C.5.3).
    for field_name in ("subject", "action", "resource"):
        cases.append(Case("C.2.4.1", f"evaluations (no evaluations array): missing {field_name}",
                          BATCH, "evaluations", without(PERMIT, field_name), error_400))
    cases += cross_cutting_errors("evaluations")
    cases += [
        Case("C.2.4.6", "evaluations (no evaluations array): subject is a string", BATCH,
             "evaluations", replaced(PERMIT, "alice", "subject"), error_400),
        Case("C.2.4.6", "evaluations: 'evaluations' is a string", BATCH, "evaluations",
             req(subject=ALICE, action=READ, resource=RECORD_1, evaluations="all"), error_400),
    ]
    return cases


def limit_accepted(h, case, resp):
    """C.4.5.1: HTTP 200, a `results` array; `page`, if present, an object whose next_token,
    if present, is a string."""
    doc, _ = page_results(case.endpoint, case.body, resp)
    if "page" in doc:
        page = doc["page"]
        if not isinstance(page, dict):
            raise Fail(f"'page' is {jb(page)}, not an object")
        if "next_token" in page and not isinstance(page["next_token"], str):
            raise Fail(f"page.next_token is {jb(page['next_token'])}, not a string")


def follow_next_token(endpoint):
    """C.4.5.2: a non-empty next_token for page.limit=1 is followed until it is empty; every
    follow-up has a `page` with a string next_token, and the pages together give the
    unpaginated result set (so next_token was non-empty exactly while results remained)."""
    def run(h):
        body = with_page(SEARCH_BASE[endpoint], limit=1)
        first = h.post(endpoint, body)
        doc, _ = page_results(endpoint, body, first)
        if not next_token(doc):
            h.note(f"C.4.5.2 {endpoint}: no non-empty next_token for page.limit=1, so no "
                   "follow-up request (pagination is optional)")
            return

        def follow_up(n, page_doc, ids):
            if n > 1:
                page = page_doc.get("page")
                if not isinstance(page, dict):
                    raise Fail("response has no 'page' object")
                if not isinstance(page.get("next_token"), str):
                    raise Fail("page.next_token is missing or not a string")

        paged = search_all(h, endpoint, body, first=first, on_page=follow_up)
        full = search_all(h, endpoint, SEARCH_BASE[endpoint])
        if set(paged) != set(full):
            raise Fail(f"the pages for page.limit=1 gave {fmt(paged)}, the unpaginated "
                       f"search {fmt(full)}")
    return run


def pagination_format(endpoint):
    """C.4.5.3: every `page` object returned has a string next_token and, if present, a
    count (equal to the page's results), a total and properties of the right types."""
    def run(h):
        def shape(n, doc, ids):
            if "page" in doc:
                problem = page_problem(doc["page"], len(ids))
                if problem:
                    raise Fail(problem)

        for label, body in (("without page", SEARCH_BASE[endpoint]),
                            ("page.limit=1", with_page(SEARCH_BASE[endpoint], limit=1))):
            try:
                search_all(h, endpoint, body, on_page=shape)
            except Fail as e:
                raise Fail(f"{label}: {e}")
    return run


def pagination_optional(endpoint):
    """C.4.5.4: a `page` object in the request is accepted; a response that does not signal
    more pages (no `page`, or an empty next_token) holds the whole result set."""
    def run(h):
        full = search_all(h, endpoint, SEARCH_BASE[endpoint])
        for label, page in (("page {}", {}), ("page.limit=1", {"limit": 1})):
            body = with_page(SEARCH_BASE[endpoint], **page)
            try:
                doc, ids = page_results(endpoint, body, h.post(endpoint, body))
            except Fail as e:
                raise Fail(f"{label}: {e}")
            if not next_token(doc) and set(ids) != set(full):
                raise Fail(f"{label}: the response signals no further page but has "
                           f"{fmt(ids)} of {fmt(full)}")
    return run


def search_cases():
    subject_base = SEARCH_BASE["subject search"]
    resource_base = SEARCH_BASE["resource search"]
    action_base = SEARCH_BASE["action search"]
    cases = [
        # C.4.2 Subject Search
        Case("C.4.2.1", "subject search: alice and bob (S1)", SEARCH, "subject search",
             subject_base, results(["alice", "bob"])),
        Case("C.4.2.2", "subject search with context", SEARCH, "subject search",
             req(**subject_base, context=CONTEXT),
             results(["alice", "bob"], same_as=("C.4.2.1", subject_base))),
        Case("C.4.2.3", "subject search with subject.id ignored", SEARCH, "subject search",
             replaced(subject_base, ALICE, "subject"),
             results(["alice", "bob"], same_as=("C.4.2.1", subject_base))),
        Case("C.4.2.4", "subject search on resource properties: bob (S4)", SEARCH_P,
             "subject search", req(subject=USER, action=WRITE, resource=RECORD_2_ARCHIVED),
             results(["bob"])),
        # C.4.3 Resource Search
        Case("C.4.3.1", "resource search: record-1 (S2)", SEARCH, "resource search",
             resource_base, results(["record-1"])),
        Case("C.4.3.2", "resource search with context", SEARCH, "resource search",
             req(**resource_base, context=CONTEXT),
             results(["record-1"], same_as=("C.4.3.1", resource_base))),
        Case("C.4.3.3", "resource search with resource.id ignored", SEARCH, "resource search",
             replaced(resource_base, RECORD_1, "resource"),
             results(["record-1"], same_as=("C.4.3.1", resource_base))),
        Case("C.4.3.4", "resource search on subject properties: record-2 (S5)", SEARCH_P,
             "resource search", req(subject=BOB_ADMIN, action=WRITE, resource=RECORD),
             results(["record-2"])),
        # C.4.4 Action Search
        Case("C.4.4.1", "action search: read and write (S3)", SEARCH, "action search",
             action_base, results(["read", "write"])),
        Case("C.4.4.2", "action search with context", SEARCH, "action search",
             req(**action_base, context=CONTEXT),
             results(["read", "write"], same_as=("C.4.4.1", action_base))),
        Case("C.4.4.3", "action search on properties: write (S6)", SEARCH_P, "action search",
             req(subject=BOB_ADMIN, resource=RECORD_2_ARCHIVED), results(["write"])),
    ]
    # C.4.5 Pagination, on each search endpoint
    for endpoint in SEARCHES:
        cases.append(Case("C.4.5.1", f"{endpoint}: page.limit accepted", SEARCH, endpoint,
                          with_page(SEARCH_BASE[endpoint], limit=1), limit_accepted))
    for endpoint in SEARCHES:
        cases.append(Case("C.4.5.2", f"{endpoint}: page.token follow-up", SEARCH,
                          run=follow_next_token(endpoint)))
    for endpoint in SEARCHES:
        cases.append(Case("C.4.5.3", f"{endpoint}: page object format", SEARCH,
                          run=pagination_format(endpoint)))
    for endpoint in SEARCHES:
        cases.append(Case("C.4.5.4", f"{endpoint}: page accepted, unpaginated complete", SEARCH,
                          run=pagination_optional(endpoint)))
    # C.4.6 Empty results, on each search endpoint
    nobody = {"type": "user", "id": "nonexistent-user"}
    unknown_id = {
        "subject search": req(subject=USER, action=READ,
                              resource={"type": "record", "id": "nonexistent-record"}),
        "resource search": req(subject=nobody, action=READ, resource=RECORD),
        "action search": req(subject=nobody, resource=RECORD_1),
    }
    unknown_type = {
        "subject search": req(subject={"type": "spaceship"}, action=READ, resource=RECORD_1),
        "resource search": req(subject=ALICE, action=READ, resource={"type": "spaceship"}),
        "action search": req(subject=ALICE, resource={"type": "spaceship", "id": "record-1"}),
    }
    for endpoint in SEARCHES:
        cases.append(Case("C.4.6.1", f"{endpoint}: unknown identifier, empty results", SEARCH,
                          endpoint, unknown_id[endpoint], no_results))
    for endpoint in SEARCHES:
        cases.append(Case("C.4.6.2", f"{endpoint}: unknown type, empty results", SEARCH,
                          endpoint, unknown_type[endpoint], no_results))
    # C.4.7 Search error handling: every required field, and every required sub-field of an
    # input entity (the searched-for entity needs only its type).
    required = {"subject": ("type", "id"), "action": ("name",), "resource": ("type", "id")}
    for endpoint in SEARCHES:
        for field_name in SEARCH_BASE[endpoint]:
            cases.append(Case("C.4.7.1", f"{endpoint}: missing {field_name}", SEARCH, endpoint,
                              without(SEARCH_BASE[endpoint], field_name), error_400))
    for endpoint in SEARCHES:
        base = SEARCH_BASE[endpoint]
        for entity, keys in required.items():
            if entity not in base:
                continue  # Action Search has no action
            for key in keys:
                if entity == SEARCH_TARGET[endpoint] and key == "id":
                    continue  # what the search resolves
                cases.append(Case("C.4.7.2", f"{endpoint}: {entity} missing {key}", SEARCH,
                                  endpoint, without(base, entity, key), error_400))
    # C.2.4 on the search endpoints
    for endpoint in SEARCHES:
        cases += cross_cutting_errors(endpoint)
        cases.append(Case("C.2.4.6", f"{endpoint}: subject is a string", SEARCH, endpoint,
                          replaced(SEARCH_BASE[endpoint], "alice", "subject"), error_400))
        if "action" in SEARCH_BASE[endpoint]:
            cases.append(Case("C.2.4.6", f"{endpoint}: action.name is a number", SEARCH,
                              endpoint, replaced(SEARCH_BASE[endpoint], 123, "action", "name"),
                              error_400))
    return cases



def transport_cases():
    """C.5: Content-Type of successful responses, X-Request-ID echo and unknown fields on
    every endpoint; each attached to the Core level of its endpoint. (C.5.1, HTTPS, is the
    scheme of the base URL; C.5.3 is covered by C.2.4.1 and C.4.7.1.)"""
    success = {
        "evaluation": decision(),
        "evaluations": evaluations([True, False]),
        **{s: results(SEARCH_EXPECTED[s]) for s in SEARCHES},
    }
    cases = []
    for endpoint in ENDPOINTS:
        cases.append(Case("C.5.2", f"{endpoint}: Content-Type application/json",
                          CORE_LEVEL[endpoint], endpoint, VALID[endpoint],
                          json_content_type(success[endpoint])))
    for endpoint in ENDPOINTS:
        if endpoint == "evaluation":
            continue  # C.2.5.1
        rid = str(uuid.uuid4())
        cases.append(Case("C.5.4", f"{endpoint}: X-Request-ID echoed", CORE_LEVEL[endpoint],
                          endpoint, VALID[endpoint], echoes(rid, success[endpoint]),
                          headers={"X-Request-ID": rid}))
    unknown = {"foo": "bar", "futureField": {"nested": True}}
    batch = req(subject=BOB, resource=RECORD_1, **unknown,
                evaluations=[{"action": READ, "foo": "bar"}, {"action": WRITE, "extra": [1]}])
    cases.append(Case("C.5.5", "evaluations: unknown fields ignored", BATCH, "evaluations",
                      batch, evaluations([True, False])))
    for endpoint in SEARCHES:
        cases.append(Case("C.5.5", f"{endpoint}: unknown fields ignored", SEARCH, endpoint,
                          req(**SEARCH_BASE[endpoint], **unknown),
                          results(SEARCH_EXPECTED[endpoint])))
    return cases


# C.6 Discovery: every test reads the metadata response fetched once by Harness.discover.

def metadata_doc(h):
    try:
        return json_object(expect_status(h.metadata, 200))
    except Fail as e:
        raise Fail(f"no metadata document: {e}")


def metadata_available(h):
    resp = h.metadata
    if resp.error:
        raise Fail(f"GET {h.metadata_url} failed: {resp.error}")
    if resp.status != 200:
        raise Fail(f"GET {h.metadata_url}: expected 200, got {resp.status}")


def metadata_format(h):
    metadata_available(h)
    got = h.metadata.header("Content-Type")
    if media_type(got) != "application/json":
        raise Fail(f"Content-Type is {got!r}, not application/json")
    json_object(h.metadata)


def metadata_pdp(h):
    problem = pdp_identifier_problem(metadata_doc(h), h.base, h.https)
    if problem:
        raise Fail(problem)


def metadata_endpoint(key, required):
    def run(h):
        doc = metadata_doc(h)
        if key not in doc:
            if required:
                raise Fail(f"no {key}")
            return
        problem = url_problem(doc[key], h.https)
        if problem:
            raise Fail(f"{key} {problem}")
    return run


def metadata_capabilities(h):
    doc = metadata_doc(h)
    if "capabilities" not in doc:
        return
    value = doc["capabilities"]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Fail(f"capabilities is {snippet(jb(value))}, not an array of strings")


def b64url_json(part, what):
    try:
        data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise Fail(f"signed_metadata: the JWT {what} is not base64url-encoded JSON")
    if not isinstance(value, dict):
        raise Fail(f"signed_metadata: the JWT {what} is not a JSON object")
    return value


def metadata_signed(h):
    """signed_metadata, if present: a signed JWT (JWS compact form, alg not 'none') with an
    `iss` claim. Its signature is not verified: that needs the issuer's key."""
    doc = metadata_doc(h)
    if "signed_metadata" not in doc:
        return
    token = doc["signed_metadata"]
    if not isinstance(token, str):
        raise Fail(f"signed_metadata is {jb(token)}, not a string")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise Fail("signed_metadata is not a signed JWT (three non-empty dot-separated parts)")
    header = b64url_json(parts[0], "header")
    claims = b64url_json(parts[1], "payload")
    if header.get("alg") in (None, "none"):
        raise Fail(f"signed_metadata is not signed (alg {header.get('alg')!r})")
    if not isinstance(claims.get("iss"), str):
        raise Fail("signed_metadata has no 'iss' claim")
    h.note("C.6.4 signed_metadata: form and 'iss' checked; the signature was not verified "
           "(the runner has no issuer key)")


def discovery_cases():
    cases = [
        Case("C.6.1", "metadata endpoint available (GET, 200)", DISCOVERY, run=metadata_available),
        Case("C.6.2", "Content-Type application/json, JSON object", DISCOVERY,
             run=metadata_format),
        Case("C.6.3", "policy_decision_point is the base URL", DISCOVERY, run=metadata_pdp),
        Case("C.6.3", "access_evaluation_endpoint a valid URL", DISCOVERY,
             run=metadata_endpoint("access_evaluation_endpoint", True)),
    ]
    for name, (key, _) in ENDPOINTS.items():
        if name != "evaluation":
            cases.append(Case("C.6.4", f"{key}, if present, a valid URL", DISCOVERY,
                              run=metadata_endpoint(key, False)))
    cases += [
        Case("C.6.4", "capabilities, if present, an array of strings", DISCOVERY,
             run=metadata_capabilities),
        Case("C.6.4", "signed_metadata, if present, a signed JWT with iss", DISCOVERY,
             run=metadata_signed),
    ]
    return cases


def all_cases():
    return basic_cases() + batch_cases() + search_cases() + transport_cases() + discovery_cases()


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def execute(h, case):
    """Runs one case: None when it passed, else the reason."""
    try:
        if case.run is not None:
            case.run(h)
        else:
            case.check(h, case, h.post(case.endpoint, case.body, case.content_type, case.headers))
    except Fail as e:
        return str(e)
    except Exception as e:  # a bug of the runner: reported as a failure, not a traceback
        if h.verbose:
            traceback.print_exc()
        return f"runner error: {type(e).__name__}: {e}"
    return None


def run_cases(h, cases, levels):
    """Runs the cases and prints the summary; returns the number of failures."""
    tally = {level: [0, []] for level in levels}
    for case in cases:
        if h.verbose:
            print(f"--- {case.name} [{case.level}]")
        reason = execute(h, case)
        if h.verbose:
            print(f"    {'PASS' if reason is None else 'FAIL: ' + reason}")
        if reason is None:
            tally[case.level][0] += 1
        else:
            tally[case.level][1].append(f"{case.name}: {reason}")
    if not h.https:
        h.note(f"the base URL is http, so HTTPS was not checked: neither the transport (C.5.1) "
               f"nor the https scheme of the metadata URLs (C.6.3, C.6.5)")
    for text in h.notes:
        print(f"note: {text}")
    passed = failed = 0
    for level in levels:
        ok, failures = tally[level]
        print(f"{level}: {ok} passed, {len(failures)} failed")
        for line in failures:
            print(f"  {line}")
        passed += ok
        failed += len(failures)
    print(f"Total: {passed} passed, {failed} failed")
    return failed


# --------------------------------------------------------------------------------------------
# `sark serve`
# --------------------------------------------------------------------------------------------

LISTENING = re.compile(r"^listening on (https?://\S+)$")


class StartError(Exception):
    pass


class Server:
    """`sark serve --bundle B --config C --addr 127.0.0.1:0`, started and stopped by us."""

    def __init__(self, sark, bundle, config, verbose):
        self.cmd = [sark, "serve", "--bundle", bundle, "--config", config,
                    "--addr", "127.0.0.1:0"]
        self.verbose = verbose
        self.proc = None
        self.stderr = []
        self.threads = []

    def _drain(self, stream, sink):
        for line in stream:
            sink(line.rstrip("\n"))
        sink(None)

    def _stderr_line(self, line):
        if line is not None:
            self.stderr.append(line)

    def stderr_tail(self, lines=30):
        for t in self.threads:
            t.join(timeout=2)
        tail = self.stderr[-lines:]
        return ("\nserver stderr:\n" + "\n".join(tail)) if tail else "\n(server stderr empty)"

    def start(self):
        """Starts the server; returns its base URL from the `listening on` line."""
        try:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, errors="replace")
        except OSError as e:
            raise StartError(f"cannot start {self.cmd[0]}: {e}")
        lines = queue.Queue()
        self.threads = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, lines.put), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self._stderr_line),
                             daemon=True),
        ]
        for t in self.threads:
            t.start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop(quiet=True)
                raise StartError(f"no 'listening on' line from sark serve within "
                                 f"{START_TIMEOUT:.0f} s{self.stderr_tail()}")
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:  # stdout closed: the server has exited
                try:
                    code = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    code = "still running, stdout closed"
                self.stop(quiet=True)
                raise StartError(f"sark serve exited before listening (exit code {code})"
                                 f"{self.stderr_tail()}")
            if self.verbose:
                print(f"[server] {line}")
            match = LISTENING.match(line.strip())
            if match:
                return match.group(1)

    def stop(self, quiet=False):
        """SIGTERM, then waits (kills after STOP_TIMEOUT); notes an early or failed exit
        unless `quiet`."""
        if self.proc is None:
            return None
        early = self.proc.poll() is not None
        if not early:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                print(f"note: sark serve did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM; "
                      "killed")
        code = self.proc.returncode
        if not quiet and (early or code not in (0, -signal.SIGTERM)):
            print(f"note: sark serve {'had exited' if early else 'exited'} with code {code}"
                  f"{self.stderr_tail()}")
        self.proc = None
        return code


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def compact(name):
    return re.sub(r"[\s_-]+", "", name.lower())


def select_levels(spec):
    """The sub-levels named in `spec` (comma-separated; `basic` means both Basic sub-levels,
    `all` every level), in the canonical order."""
    if not spec:
        return list(LEVELS)
    chosen = set()
    for word in spec.split(","):
        key = compact(word)
        if not key:
            continue
        matches = [level for level in LEVELS
                   if key in ("all", compact(level), compact(level.split()[0]))]
        if not matches:
            raise ValueError(f"unknown level {word.strip()!r}; levels: {', '.join(LEVELS)}")
        chosen.update(matches)
    return [level for level in LEVELS if level in chosen]


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="AuthZEN Authorization API 1.0 certification scenario conformance runner.")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="base URL of a running PDP (e.g. http://127.0.0.1:8181)")
    target.add_argument("--sark", help="the sark binary: start `sark serve` and test it")
    p.add_argument("--bundle", help="with --sark: the bundle to serve")
    p.add_argument("--config", help="with --sark: the configuration (default: a temporary one "
                                    "with authzen.entrypoint data.authzen.cert.decision)")
    p.add_argument("--levels", help="comma-separated sub-levels to run (default: all), e.g. "
                                    "'Basic Core,Batch Core' or 'search'")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="seconds per HTTP request (default: %(default)s)")
    p.add_argument("--insecure", action="store_true",
                   help="with an https URL: do not verify the server's certificate")
    p.add_argument("--verbose", "-v", action="store_true", help="print every request and response")
    p.add_argument("--list", action="store_true", help="list the tests and exit")
    args = p.parse_args(argv)
    if args.sark and not args.bundle:
        p.error("--sark needs --bundle")
    if args.url and (args.bundle or args.config):
        p.error("--bundle and --config go with --sark")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        levels = select_levels(args.levels)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cases = [case for case in all_cases() if case.level in levels]
    if args.list:
        for case in cases:
            print(f"{case.name}  [{case.level}]")
        return 0
    server = None
    temp_config = None
    try:
        if args.sark:
            config = args.config
            if config is None:
                fd, temp_config = tempfile.mkstemp(prefix="authzen-", suffix=".yaml")
                with os.fdopen(fd, "w") as f:
                    f.write(DEFAULT_CONFIG)
                config = temp_config
            server = Server(args.sark, args.bundle, config, args.verbose)
            base = server.start()
        else:
            base = args.url
        h = Harness(base, timeout=args.timeout, verbose=args.verbose, insecure=args.insecure)
        h.discover()
        print(f"PDP {h.base} (endpoints: {h.endpoint_source})")
        if args.verbose:
            for name, url in h.endpoints.items():
                print(f"  {name}: {url}")
        failed = run_cases(h, cases, levels)
    except StartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            server.stop()
        if temp_config is not None:
            os.unlink(temp_config)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
