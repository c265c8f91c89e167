#!/usr/bin/env python3
"""Drives a running `sark serve` (fixture bundle host/tests/fixtures/opa_api) with the
`opa-python-client` package (module `opa_client`, version pinned in requirements.txt).

    python3 client.py http://127.0.0.1:PORT

Prints one line per check (`ok <name>` / `FAIL <name>: <why>`) and a closing
`N passed, N failed` line; exits 0 only when every check passed. Every request has a 10 s
timeout (the client's own default is 1.5 s), the client's retries are off (one request per
call, so a check never passes on a second try), and a watchdog ends the run after 120 s.

Every public method of `OpaClient` (sync, requests) and the endpoint it hits. All of them are
exercised below except `close_connection` (no request; used through `with`):

    check_health(query, diagnostic_url)  GET    /health[?bundles=True]   -> True on 200
    wait_for_ready(timeout, interval)    GET    /health (polled)         -> True on 200
    check_connection()                   GET    /v1/policies/            -> True on 2xx  (note
                                         the trailing slash: OPA's router (StrictSlash)
                                         answers it with a 301 to /v1/policies, which requests
                                         follows; anything but 2xx raises ConnectionsError)
    get_policies_list()                  GET    /v1/policies/            -> [result[].id]
    get_policies_info()                  GET    /v1/policies/            -> {id: {path, rules}}
                                         built from result[].ast.package.path[].value and
                                         result[].ast.rules[].head.name
    get_policy(id)                       GET    /v1/policies/{id}        -> body on 200, else
                                         PolicyNotFoundError(code, message) from the JSON body
    policy_to_file(id, path, filename)   GET    /v1/policies/{id}        writes result.raw
    update_policy_from_string(rego, id)  PUT    /v1/policies/{id}  Content-Type: text/plain
                                         -> True on 200; otherwise, when the error's
                                         errors[].message says "`if` keyword is required" /
                                         "`contains` keyword is required", it re-PUTs the policy
                                         rewritten to v1 syntax (rego_compat); finally raises
                                         RegoParseError(code, message, errors)
    update_policy_from_file(path, id)    PUT    /v1/policies/{id}        (reads the file)
    update_policy_from_url(url, id)      GET    url (plain requests.get, no timeout), then PUT
                                         /v1/policies/{id}
    delete_policy(id)                    DELETE /v1/policies/{id}        -> True on 200, else
                                         DeletePolicyError
    update_or_create_data(doc, path)     PUT    /v1/data/{path}  application/json -> True on
                                         204 (exactly), else RegoParseError from the JSON body
    patch_data(path, ops)                PATCH  /v1/data/{path}  application/json-patch+json
                                         -> True on 204, else PatchDataError
    get_data(path, query_params)         GET    /v1/data/{path}          -> body when 200 and
                                         "result" in it, else PolicyNotFoundError (so an
                                         undefined document, 200 `{}`, raises)
    delete_data(path)                    DELETE /v1/data/{path}          -> True on 204, else
                                         DeleteDataError
    query_rule(input, pkg, rule, qp)     POST   /v1/data/{pkg with . -> /}/{rule}
                                         {"input": …} -> raw body (raise_for_status)
    ad_hoc_query(query, input, qp)       POST   /v1/query {"query", "input"} (input left out
                                         when empty) -> raw body (raise_for_status)
    bulk_query_rule(inputs, pkg, rule)   POST   /v1/query with
                                         "r0 := data.pkg.rule with input as {…}; r1 := …"
                                         -> [r0, r1, …] or {key: value}; QueryExecuteError
                                         when the result is empty
    compile_query(query, input, unk)     POST   /v1/compile {"query", "input", "unknowns"}
                                         (raise_for_status) -- expected to fail here: SARK
                                         answers an OPA-shaped error (501 not_implemented)
    get_config()                         GET    /v1/config               -> raw body
    get_status()                         GET    /v1/status               -> raw body (OPA
                                         itself answers 500 "status plugin not enabled"
                                         when the status plugin is off)
    get_metrics()                        GET    /metrics                 -> text

`AsyncOpaClient` (aiohttp) has the same methods and endpoints; a subset is exercised at the
end. Unlike the sync client it needs `async with` (the session is only made in __aenter__),
and aiohttp's `response.json()` refuses a body whose Content-Type is not application/json.

Names from older releases of the package (check_permission, get_opa_raw_data,
delete_opa_data, check_policy_rule, ...) no longer exist in 3.x: query_rule, get_data,
delete_data and ad_hoc_query replace them.

Query-string flags: the client passes Python booleans through urlencode, so `metrics=True`
(capital T) reaches the server; OPA compares flags case-insensitively (strings.EqualFold).
"""

import asyncio
import http.server
import os
import sys
import tempfile
import threading
import time
import urllib.parse

import aiohttp
import requests

from opa_client import AsyncOpaClient, OpaClient
from opa_client.errors import (
	DeleteDataError,
	DeletePolicyError,
	PatchDataError,
	PolicyNotFoundError,
	QueryExecuteError,
	RegoParseError,
)

TIMEOUT = 10.0
WATCHDOG_S = 120.0

USERS = {"alice": {"roles": ["admin"]}, "bob": {"roles": ["reader"]}}
PERMISSIONS = {"admin": ["read", "write", "delete"], "reader": ["read"]}

EXTRA_ID = "extra/rules.rego"
EXTRA_POLICY = 'package extra.rules\n\nhello if input.name == "world"\n'
EXTRA_POLICY_2 = (
	'package extra.rules\n\nhello if input.name == "world"\n\nbye if input.name == "moon"\n'
)
URL_ID = "extra/from_url.rego"
URL_POLICY = 'package extra.fromurl\n\ngreeting := sprintf("hi %s", [input.name])\n'
V0_ID = "extra/v0.rego"
V0_POLICY = 'package extra.v0\n\nallow {\n\tinput.name == "world"\n}\n'
ASYNC_ID = "extra/async.rego"
ASYNC_POLICY = "package extra.asyncrules\n\nanswer := 42\n"
OWNED_ID = "extra/intrude.rego"
OWNED_POLICY = "package example.intrude\n\nx := 1\n"

passed = 0
failed = 0
_lock = threading.Lock()


def _watchdog():
	with _lock:
		print(f"FAIL watchdog: the run took longer than {WATCHDOG_S:.0f} s", flush=True)
		print(f"{passed} passed, {failed + 1} failed", flush=True)
	os._exit(1)


def describe(err):
	text = f"{type(err).__name__}: {err}"
	resp = getattr(err, "response", None)
	if isinstance(resp, requests.Response):
		text += f" (HTTP {resp.status_code}, body {resp.text[:300]!r})"
	return " ".join(text.split())


def check(name, fn):
	"""Runs one named check: `fn` returns nothing (pass) or raises (fail)."""
	global passed, failed
	try:
		fn()
	except BaseException as err:  # noqa: BLE001 - every failure is reported, none escapes
		if isinstance(err, KeyboardInterrupt):
			raise
		with _lock:
			failed += 1
			print(f"FAIL {name}: {describe(err)}", flush=True)
		return
	with _lock:
		passed += 1
		print(f"ok {name}", flush=True)


async def acheck(name, coro_fn):
	global passed, failed
	try:
		await asyncio.wait_for(coro_fn(), timeout=TIMEOUT * 2)
	except BaseException as err:  # noqa: BLE001
		if isinstance(err, KeyboardInterrupt):
			raise
		failed += 1
		print(f"FAIL {name}: {describe(err)}", flush=True)
		return
	passed += 1
	print(f"ok {name}", flush=True)


def expect(got, want, what="result"):
	if got != want:
		raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def expect_raises(fn, *types):
	"""`fn()` must raise one of `types`; returns the exception."""
	t0 = time.monotonic()
	try:
		value = fn()
	except types as err:
		if time.monotonic() - t0 > 5:
			raise AssertionError(f"raised only after {time.monotonic() - t0:.1f} s: {err!r}")
		return err
	raise AssertionError(f"returned {value!r} instead of raising {[t.__name__ for t in types]}")


def result_of(body):
	"""The `result` of a /v1/data answer; a missing `result` (undefined) is None."""
	if not isinstance(body, dict):
		raise AssertionError(f"not a JSON object: {body!r}")
	return body.get("result")


def serve_once(text):
	"""A loopback HTTP server answering every GET with `text` (for update_policy_from_url)."""

	class Handler(http.server.BaseHTTPRequestHandler):
		def do_GET(self):  # noqa: N802
			body = text.encode("utf-8")
			self.send_response(200)
			self.send_header("Content-Type", "text/plain")
			self.send_header("Content-Length", str(len(body)))
			self.end_headers()
			self.wfile.write(body)

		def log_message(self, *args):
			pass

	srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
	threading.Thread(target=srv.serve_forever, daemon=True).start()
	return srv


def main():
	if len(sys.argv) < 2:
		print("usage: client.py <base-url>", file=sys.stderr)
		return 2
	url = urllib.parse.urlsplit(sys.argv[1])
	host, port = url.hostname or "127.0.0.1", url.port or 8181
	if url.scheme == "https":
		print("client.py: only http:// base URLs are supported", file=sys.stderr)
		return 2

	timer = threading.Timer(WATCHDOG_S, _watchdog)
	timer.daemon = True
	timer.start()

	with OpaClient(host=host, port=port, timeout=TIMEOUT, retries=0) as c:
		run_sync(c)
	asyncio.run(run_async(host, port))

	timer.cancel()
	print(f"{passed} passed, {failed} failed", flush=True)
	return 0 if failed == 0 else 1


def run_sync(c):
	root = c.root_url  # http://host:port/v1

	def allow(user, action):
		return result_of(c.query_rule({"user": user, "action": action}, "example.authz", "allow"))

	# Leftovers of an interrupted earlier run would change the answers below.
	for cleanup in (
		lambda: c.delete_data("users"),
		lambda: c.delete_data("async_probe"),
		lambda: c.delete_policy(EXTRA_ID),
		lambda: c.delete_policy(URL_ID),
		lambda: c.delete_policy(V0_ID),
		lambda: c.delete_policy(ASYNC_ID),
		lambda: c.delete_policy(OWNED_ID),
	):
		try:
			cleanup()
		except Exception:  # noqa: BLE001 - absent is fine
			pass

	# -- health and connection ---------------------------------------------------------------
	check("check_health", lambda: expect(c.check_health(), True))
	check("check_health ?bundles", lambda: expect(c.check_health(query={"bundles": True}), True))
	check("wait_for_ready", lambda: expect(c.wait_for_ready(timeout=TIMEOUT, interval=0.2), True))
	check("check_connection (GET /v1/policies/)", lambda: expect(c.check_connection(), True))

	# -- policies: the bundle's modules ------------------------------------------------------
	ids = {}

	def policies_list():
		got = c.get_policies_list()
		if not isinstance(got, list):
			raise AssertionError(f"not a list: {got!r}")
		authz = [i for i in got if i.endswith("example/authz.rego")]
		main_ = [i for i in got if i.endswith("system/main.rego")]
		if len(authz) != 1 or len(main_) != 1:
			raise AssertionError(f"want one example/authz.rego and one system/main.rego: {got!r}")
		ids["authz"], ids["main"] = authz[0], main_[0]

	check("get_policies_list", policies_list)
	authz_id = ids.get("authz", "example/authz.rego")
	main_id = ids.get("main", "system/main.rego")

	def policies_info():
		info = c.get_policies_info()
		entry = info.get(authz_id)
		if entry is None:
			raise AssertionError(f"no entry for {authz_id}: {info!r}")
		expect(entry["path"], f"{root}/data/example/authz", "path (from ast.package.path)")
		rules = set(entry["rules"])
		for rule in ("allow", "roles", "revoked"):
			if f"{root}/data/example/authz/{rule}" not in rules:
				raise AssertionError(f"rule {rule} missing (from ast.rules[].head.name): {rules!r}")
		expect(info.get(main_id, {}).get("path"), f"{root}/data/system", "system/main path")

	check("get_policies_info", policies_info)

	authz_raw = {}

	def get_bundle_policy():
		body = c.get_policy(authz_id)
		res = result_of(body) or {}
		expect(res.get("id"), authz_id, "result.id")
		raw = res.get("raw", "")
		if "package example.authz" not in raw:
			raise AssertionError(f"result.raw is not the module: {raw[:200]!r}")
		if not isinstance(res.get("ast"), dict):
			raise AssertionError(f"result.ast missing: {sorted(res)!r}")
		authz_raw["raw"] = raw

	check("get_policy (bundle module)", get_bundle_policy)

	def policy_to_file():
		with tempfile.TemporaryDirectory() as d:
			expect(c.policy_to_file(authz_id, path=d, filename="authz.rego"), True)
			with open(os.path.join(d, "authz.rego"), encoding="utf-8") as f:
				expect(f.read(), authz_raw.get("raw"), "file content")

	check("policy_to_file", policy_to_file)

	check(
		"get_policy unknown id raises PolicyNotFoundError",
		lambda: expect_raises(lambda: c.get_policy("no/such/module.rego"), PolicyNotFoundError),
	)

	# -- policies: a module pushed at run time ------------------------------------------------
	check(
		"update_policy_from_string (new module)",
		lambda: expect(c.update_policy_from_string(EXTRA_POLICY, EXTRA_ID), True),
	)
	check(
		"get_policies_list lists the new module",
		lambda: expect(EXTRA_ID in c.get_policies_list(), True, f"{EXTRA_ID} listed"),
	)
	check(
		"get_policy (new module)",
		lambda: expect((result_of(c.get_policy(EXTRA_ID)) or {}).get("raw"), EXTRA_POLICY, "raw"),
	)

	def query_new_module():
		expect(result_of(c.query_rule({"name": "world"}, "extra.rules", "hello")), True, "world")
		expect(result_of(c.query_rule({"name": "mars"}, "extra.rules", "hello")), None, "mars")
		expect(result_of(c.query_rule({"name": "world"}, "extra/rules", "hello")), True, "slashes")

	check("query_rule on the new module", query_new_module)
	check(
		"ad_hoc_query on the new module",
		lambda: expect(
			c.ad_hoc_query("x := data.extra.rules.hello", {"name": "world"}).get("result"),
			[{"x": True}],
		),
	)

	def from_file():
		with tempfile.TemporaryDirectory() as d:
			p = os.path.join(d, "rules.rego")
			with open(p, "w", encoding="utf-8") as f:
				f.write(EXTRA_POLICY_2)
			expect(c.update_policy_from_file(p, EXTRA_ID), True, "update_policy_from_file")
		expect(result_of(c.query_rule({"name": "moon"}, "extra.rules", "bye")), True, "bye")
		expect(result_of(c.query_rule({"name": "world"}, "extra.rules", "hello")), True, "hello")

	check("update_policy_from_file (replaces the module)", from_file)

	def from_url():
		srv = serve_once(URL_POLICY)
		try:
			link = f"http://127.0.0.1:{srv.server_address[1]}/policy.rego"
			expect(c.update_policy_from_url(link, URL_ID), True, "update_policy_from_url")
		finally:
			srv.shutdown()
		got = result_of(c.query_rule({"name": "bob"}, "extra.fromurl", "greeting"))
		expect(got, "hi bob", "greeting")
		expect(c.delete_policy(URL_ID), True, "delete_policy")

	check("update_policy_from_url", from_url)

	def v0_upgrade():
		# OPA 1.x rejects v0 syntax with errors[].message "`if` keyword is required before rule
		# body"; the client then re-PUTs the policy rewritten to v1 (`allow if {`).
		expect(c.update_policy_from_string(V0_POLICY, V0_ID), True, "upload")
		expect(result_of(c.query_rule({"name": "world"}, "extra.v0", "allow")), True, "allow")
		raw = (result_of(c.get_policy(V0_ID)) or {}).get("raw", "")
		if "allow if {" not in raw:
			raise AssertionError(f"stored policy is not the upgraded one: {raw!r}")
		expect(c.delete_policy(V0_ID), True, "delete_policy")

	check("update_policy_from_string v0 syntax (rego_compat upgrade)", v0_upgrade)

	def bad_rego():
		err = expect_raises(
			lambda: c.update_policy_from_string("package extra.bad\n\nallow if {\n", "extra/bad.rego"),
			RegoParseError,
		)
		if not err.message:
			raise AssertionError(f"no message in {err!r}")
		expect_raises(lambda: c.get_policy("extra/bad.rego"), PolicyNotFoundError)

	check("update_policy_from_string with a syntax error raises RegoParseError", bad_rego)

	def bundle_module_update():
		expect_raises(
			lambda: c.update_policy_from_string(
				"package example.authz\n\nallow := true\n", authz_id, rego_compat=False
			),
			RegoParseError,
		)
		expect((result_of(c.get_policy(authz_id)) or {}).get("raw"), authz_raw.get("raw"), "raw")
		expect(allow("mallory", "write"), False, "the bundle's allow still answers")

	check("update_policy_from_string on a bundle module raises", bundle_module_update)

	def owned_package():
		expect_raises(lambda: c.update_policy_from_string(OWNED_POLICY, OWNED_ID), RegoParseError)
		expect_raises(lambda: c.get_policy(OWNED_ID), PolicyNotFoundError)

	check("update_policy_from_string with a package under a bundle root raises", owned_package)

	def bundle_module_delete():
		expect_raises(lambda: c.delete_policy(authz_id), DeletePolicyError)
		expect((result_of(c.get_policy(authz_id)) or {}).get("id"), authz_id, "still there")

	check("delete_policy on a bundle module raises", bundle_module_delete)

	def delete_new_module():
		expect(c.delete_policy(EXTRA_ID), True, "delete_policy")
		expect_raises(lambda: c.get_policy(EXTRA_ID), PolicyNotFoundError)
		expect(EXTRA_ID in c.get_policies_list(), False, "still listed")
		expect(result_of(c.query_rule({"name": "world"}, "extra.rules", "hello")), None, "hello")

	check("delete_policy (new module)", delete_new_module)
	check(
		"delete_policy unknown id raises DeletePolicyError",
		lambda: expect_raises(lambda: c.delete_policy(EXTRA_ID), DeletePolicyError),
	)

	# -- data ---------------------------------------------------------------------------------
	check("query_rule allow before the users data is written", lambda: expect(allow("alice", "write"), False))
	check(
		"update_or_create_data users",
		lambda: expect(c.update_or_create_data(USERS, "users"), True),
	)
	check("get_data users", lambda: expect(c.get_data("users").get("result"), USERS))
	check(
		"get_data nested path",
		lambda: expect(c.get_data("users/alice/roles").get("result"), ["admin"]),
	)

	def get_data_root():
		res = c.get_data().get("result")  # GET /v1/data/ (trailing slash)
		expect(res.get("users"), USERS, "result.users")
		expect(res.get("example", {}).get("permissions"), PERMISSIONS, "result.example.permissions")

	check("get_data root (GET /v1/data/)", get_data_root)
	check(
		"get_data of a rule",
		lambda: expect(c.get_data("example/authz/allow").get("result"), False),
	)

	def query_allow():
		expect(allow("alice", "write"), True, "alice write")
		expect(allow("bob", "write"), False, "bob write")
		expect(allow("bob", "read"), True, "bob read")
		expect(allow("carol", "read"), False, "carol read")

	check("query_rule allow after the write", query_allow)
	check(
		"query_rule roles",
		lambda: expect(result_of(c.query_rule({"user": "alice"}, "example.authz", "roles")), ["admin"]),
	)
	check(
		"query_rule system.main",
		lambda: expect(
			result_of(c.query_rule({"user": "alice", "action": "write"}, "system", "main")),
			{"allow": True, "user": "alice"},
		),
	)

	def query_flags():
		body = c.query_rule(
			{"user": "alice", "action": "read"},
			"example.authz",
			"allow",
			query_params={"metrics": True, "provenance": True},
		)
		expect(result_of(body), True)
		for key in ("metrics", "provenance"):
			if key not in body:
				raise AssertionError(f"no {key!r} for ?{key}=True: {body!r}")

	check("query_rule ?metrics=True&provenance=True", query_flags)

	def patch():
		expect(
			c.patch_data("users", [{"op": "add", "path": "/carol", "value": {"roles": ["admin"]}}]),
			True,
			"add",
		)
		expect(allow("carol", "delete"), True, "carol delete")
		expect(
			c.patch_data("users", [{"op": "replace", "path": "/bob/roles", "value": ["admin"]}]),
			True,
			"replace",
		)
		expect(allow("bob", "write"), True, "bob write after replace")
		expect(
			c.patch_data(
				"users",
				[
					{"op": "remove", "path": "/carol"},
					{"op": "replace", "path": "/bob/roles", "value": ["reader"]},
				],
			),
			True,
			"remove + replace",
		)
		expect(c.get_data("users").get("result"), USERS, "users after the patches")

	check("patch_data", patch)
	check(
		"patch_data on a missing path raises PatchDataError",
		lambda: expect_raises(
			lambda: c.patch_data("no_such_doc", [{"op": "replace", "path": "/x", "value": 1}]),
			PatchDataError,
		),
	)

	def owned_data():
		expect_raises(lambda: c.update_or_create_data({"x": 1}, "example/extra"), RegoParseError)
		expect_raises(
			lambda: c.patch_data("example", [{"op": "add", "path": "/extra", "value": 1}]),
			PatchDataError,
		)
		expect_raises(lambda: c.delete_data("example/permissions"), DeleteDataError)
		expect(c.get_data("example/permissions").get("result"), PERMISSIONS, "bundle data")

	check("data writes under a bundle root raise", owned_data)

	# -- ad-hoc queries ----------------------------------------------------------------------
	def adhoc():
		q = c.ad_hoc_query
		expect(q("x := data.example.authz.allow", {"user": "alice", "action": "write"}).get("result"), [{"x": True}], "binding")
		expect(q("data.example.authz.allow", {"user": "alice", "action": "write"}).get("result"), [{}], "true ref")
		expect(q("r := data.example.authz.roles", {"user": "bob"}).get("result"), [{"r": ["reader"]}], "roles")
		expect(q("p := data.example.permissions.reader").get("result"), [{"p": ["read"]}], "no input")

	check("ad_hoc_query", adhoc)

	def adhoc_false():
		# As in OPA, a query of one expression captures its value (a row even when it is
		# false), while a false expression among several fails the query: no rows.
		got = c.ad_hoc_query("x := 1; 1 == 2")
		if got.get("result"):
			raise AssertionError(f"`x := 1; 1 == 2`: want no rows, got {got!r}")
		got = c.ad_hoc_query("x := 1; 1 == 1")
		expect(got.get("result"), [{"x": 1}], "`x := 1; 1 == 1`")

	check("ad_hoc_query false expression fails a query", adhoc_false)

	def bulk():
		inputs = [
			{"user": "alice", "action": "write"},
			{"user": "bob", "action": "write"},
			{"user": "bob", "action": "read"},
		]
		expect(c.bulk_query_rule(inputs, "example.authz", "allow"), [True, False, True], "list")
		keyed = {"a": {"user": "alice", "action": "delete"}, "b": {"user": "bob", "action": "delete"}}
		expect(c.bulk_query_rule(keyed, "example.authz", "allow"), {"a": True, "b": False}, "dict")
		expect(
			c.bulk_query_rule([{"user": "alice"}, {"user": "bob"}], "example.authz", "roles"),
			[["admin"], ["reader"]],
			"roles",
		)

	check("bulk_query_rule", bulk)

	def bulk_undefined():
		c.update_policy_from_string("package extra.nodefault\n\nok if input.x == 1\n", "extra/nodefault.rego")
		try:
			expect_raises(
				lambda: c.bulk_query_rule([{"x": 1}, {"x": 2}], "extra.nodefault", "ok"),
				QueryExecuteError,
			)
		finally:
			c.delete_policy("extra/nodefault.rego")

	check("bulk_query_rule undefined raises QueryExecuteError", bulk_undefined)

	# -- the compile API (not implemented by SARK) -------------------------------------------
	def compile_rejects():
		err = expect_raises(
			lambda: c.compile_query(
				"data.example.authz.allow == true",
				input_data={"user": "alice"},
				unknowns=["input.action"],
			),
			requests.HTTPError,
		)
		body = err.response.json()
		if not (isinstance(body.get("code"), str) and isinstance(body.get("message"), str)):
			raise AssertionError(f"not an OPA-shaped error: {err.response.text!r}")

	check("compile_query raises (compile API not implemented)", compile_rejects)

	# -- config, status, metrics -------------------------------------------------------------
	def config():
		body = c.get_config()
		if not isinstance(body, dict) or not isinstance(body.get("result"), dict):
			raise AssertionError(f"want {{'result': {{...}}}}, got {body!r}")

	check("get_config", config)

	def status():
		# OPA answers {"result": {...}} with the status plugin on, and 500
		# {"code": "internal_error", "message": "status plugin not enabled"} with it off.
		try:
			body = c.get_status()
		except requests.HTTPError as err:
			shaped = err.response.json()
			if not (isinstance(shaped.get("code"), str) and isinstance(shaped.get("message"), str)):
				raise AssertionError(f"error is not OPA-shaped: {err.response.text!r}") from err
			return
		if not isinstance(body, dict) or not isinstance(body.get("result"), dict):
			raise AssertionError(f"want {{'result': {{...}}}}, got {body!r}")

	check("get_status", status)

	def metrics():
		text = c.get_metrics()
		if not isinstance(text, str) or "# TYPE" not in text:
			raise AssertionError(f"not Prometheus text: {str(text)[:200]!r}")

	check("get_metrics", metrics)

	# -- data clean-up ------------------------------------------------------------------------
	check("delete_data users", lambda: expect(c.delete_data("users"), True))
	check("query_rule allow after the delete", lambda: expect(allow("alice", "write"), False))
	check(
		"get_data deleted document raises PolicyNotFoundError",
		lambda: expect_raises(lambda: c.get_data("users"), PolicyNotFoundError),
	)
	check(
		"delete_data missing document raises DeleteDataError",
		lambda: expect_raises(lambda: c.delete_data("users"), DeleteDataError),
	)


async def run_async(host, port):
	async with AsyncOpaClient(host=host, port=port, timeout=TIMEOUT, retries=0) as c:
		await acheck("async check_health", lambda: _aexpect(c.check_health(), True))
		await acheck("async check_connection", lambda: _aexpect(c.check_connection(), True))

		async def policies():
			got = await c.get_policies_list()
			authz = [i for i in got if i.endswith("example/authz.rego")]
			if len(authz) != 1:
				raise AssertionError(f"no example/authz.rego in {got!r}")
			body = await c.get_policy(authz[0])
			if "package example.authz" not in (body.get("result") or {}).get("raw", ""):
				raise AssertionError(f"get_policy: {body!r}")

		await acheck("async get_policies_list + get_policy", policies)

		async def data_and_eval():
			expect(await c.update_or_create_data(USERS, "users"), True, "update_or_create_data")
			try:
				expect((await c.get_data("users")).get("result"), USERS, "get_data")
				body = await c.query_rule({"user": "alice", "action": "write"}, "example.authz", "allow")
				expect(body.get("result"), True, "alice write")
				body = await c.query_rule({"user": "bob", "action": "write"}, "example.authz", "allow")
				expect(body.get("result"), False, "bob write")
				body = await c.ad_hoc_query("x := data.example.authz.roles", {"user": "bob"})
				expect(body.get("result"), [{"x": ["reader"]}], "ad_hoc_query")
				got = await c.bulk_query_rule(
					[{"user": "alice", "action": "read"}, {"user": "nobody", "action": "read"}],
					"example.authz",
					"allow",
				)
				expect(got, [True, False], "bulk_query_rule")
			finally:
				expect(await c.delete_data("users"), True, "delete_data")
			body = await c.query_rule({"user": "alice", "action": "write"}, "example.authz", "allow")
			expect(body.get("result"), False, "alice write after delete_data")

		await acheck("async data + query_rule + ad_hoc_query + bulk_query_rule", data_and_eval)

		async def policy_roundtrip():
			expect(await c.update_policy_from_string(ASYNC_POLICY, ASYNC_ID), True, "update")
			body = await c.query_rule({}, "extra.asyncrules", "answer")
			expect(body.get("result"), 42, "answer")
			expect(await c.delete_policy(ASYNC_ID), True, "delete")
			try:
				await c.get_policy(ASYNC_ID)
			except PolicyNotFoundError:
				return
			raise AssertionError("get_policy after delete_policy did not raise")

		await acheck("async update_policy_from_string + delete_policy", policy_roundtrip)

		async def patch():
			expect(await c.update_or_create_data({"n": 1}, "async_probe"), True, "put")
			expect(await c.patch_data("async_probe", [{"op": "add", "path": "/m", "value": 2}]), True, "patch")
			expect((await c.get_data("async_probe")).get("result"), {"n": 1, "m": 2}, "get_data")
			expect(await c.delete_data("async_probe"), True, "delete")

		await acheck("async patch_data", patch)

		async def compile_rejects():
			try:
				await c.compile_query("data.example.authz.allow == true", unknowns=["input.action"])
			except aiohttp.ClientResponseError:
				return
			raise AssertionError("compile_query did not raise")

		await acheck("async compile_query raises", compile_rejects)


async def _aexpect(coro, want):
	expect(await coro, want)


if __name__ == "__main__":
	sys.exit(main())
