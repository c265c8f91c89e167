// Drives a running `sark serve` (fixture bundle host/tests/fixtures/opa_api) with the official
// OPA JavaScript SDK, @open-policy-agent/opa (version pinned in package.json / package-lock.json).
//
//   node sdk.mjs http://127.0.0.1:PORT
//
// Prints one line per check (`ok <name>` / `FAIL <name>: <why>`) and a closing
// `N passed, N failed` line; exits 0 only when every check passed. Every request has a 10 s
// timeout and a watchdog ends the whole run after 90 s, so it never hangs.
//
// What the SDK calls, and the endpoint each one hits:
//   OPAClient.evaluate(path)              GET  /v1/data/{path}
//   OPAClient.evaluate(path, input)       POST /v1/data/{path}        {"input": …}
//   OPAClient.evaluateDefault(input)      POST /                      raw input; raw result back
//   OPAClient.evaluateBatch(path, inputs) POST /v1/batch/data/{path}  {"inputs": {id: input}}
//                                         (with `fallback: true` it falls back to one POST
//                                         /v1/data/{path} per input, but only on a 404)
//   OPAClient.getFilters(path, input, o)  POST /v1/compile/{path}     Accept: the target's
//                                         media type (application/vnd.opa.sql.postgresql+json, …)
//   OPAClient.getMultipleFilters(…)       POST /v1/compile/{path}     Accept:
//                                         application/vnd.opa.multitarget+json
//   OpaApiClient.health()                 GET  /health?bundles=false&plugins=false
// The SDK has no data-write method: the users data is written with plain fetch
// (PUT / DELETE /v1/data/users).
//
// What the SDK requires of the server: a 200 must carry `Content-Type: application/json`
// (anything else is an SDKError "Unexpected API response status or content-type"); 400 and 500
// bodies must be JSON with string `code` and `message` (ClientError / ServerError), any other
// 4xx/5xx becomes an SDKError whose body is discarded; evaluateDefault throws when the body of
// `POST /` is empty/falsy.

import { OPAClient } from "@open-policy-agent/opa";
import { OpaApiClient } from "@open-policy-agent/opa/sdk/index.js";
import { isDeepStrictEqual, inspect } from "node:util";

const TIMEOUT_MS = 10_000;
const WATCHDOG_MS = 90_000;

const base = (process.argv[2] || "").replace(/\/+$/, "");
if (!base) {
  console.error("usage: node sdk.mjs <base-url>");
  process.exit(2);
}

let passed = 0;
let failed = 0;

const watchdog = setTimeout(() => {
  console.log(`FAIL watchdog: the run took longer than ${WATCHDOG_MS / 1000} s`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

function show(v) {
  return inspect(v, { depth: 6, breakLength: Infinity });
}

function describe(err) {
  if (err === undefined || err === null) return String(err);
  if (typeof err === "string") return err;
  const status = err?.httpMeta?.response?.status;
  const name = err?.name || err?.constructor?.name || "Error";
  return `${name}: ${err?.message ?? show(err)}${status ? ` (HTTP ${status})` : ""}`;
}

// Runs one named check: `fn` returns nothing (pass) or throws (fail).
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${describe(err)}`.replace(/\s*\n\s*/g, " "));
  }
}

function expectEqual(got, want, what = "result") {
  if (!isDeepStrictEqual(got, want)) {
    throw new Error(`${what}: got ${show(got)}, want ${show(want)}`);
  }
}

async function http(method, path, body) {
  const init = { method, signal: AbortSignal.timeout(TIMEOUT_MS), headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get("content-type") || "", text };
}

// A server-side rejection: the promise must reject promptly with an error that came from an HTTP
// response (status >= 400), not with a local validation error, a timeout or a success.
async function expectHttpRejection(promise) {
  const t0 = Date.now();
  let value;
  try {
    value = await promise;
  } catch (err) {
    const ms = Date.now() - t0;
    if (ms > 5_000) throw new Error(`rejected only after ${ms} ms: ${describe(err)}`);
    const status = err?.httpMeta?.response?.status;
    const fromServer =
      (typeof status === "number" && status >= 400) ||
      err?.name === "ClientError" ||
      err?.name === "ServerError";
    if (!fromServer) throw new Error(`rejected, but not by the server: ${describe(err)}`);
    return err;
  }
  throw new Error(`resolved instead of rejecting: ${show(value)}`);
}

const sdkOptions = { sdk: { timeoutMs: TIMEOUT_MS } };
const opa = new OPAClient(base, sdkOptions);
const ALLOW = "example/authz/allow";
const ROLES = "example/authz/roles";
const USERS = { alice: { roles: ["admin"] }, bob: { roles: ["reader"] } };

// Start from a server without `data.users` (a previous run may have left it behind).
await http("DELETE", "/v1/data/users").catch(() => {});

await check("OpaApiClient.health", async () => {
  const low = new OpaApiClient({ serverURL: base, timeoutMs: TIMEOUT_MS });
  const res = await low.health();
  expectEqual(res?.httpMeta?.response?.status, 200, "status");
});

await check("evaluate allow before the users data is written", async () => {
  expectEqual(await opa.evaluate(ALLOW, { user: "alice", action: "write" }), false);
});

await check("evaluate without input (GET)", async () => {
  expectEqual(await opa.evaluate(ALLOW), false);
});

await check("evaluate roles undefined before the users data is written", async () => {
  expectEqual(await opa.evaluate(ROLES, { user: "alice" }), undefined);
});

await check("PUT /v1/data/users (fetch)", async () => {
  const res = await http("PUT", "/v1/data/users", USERS);
  expectEqual(res.status, 204, `status (body ${res.text})`);
});

await check("evaluate allow after the write", async () => {
  expectEqual(await opa.evaluate(ALLOW, { user: "alice", action: "write" }), true, "alice write");
  expectEqual(await opa.evaluate(ALLOW, { user: "bob", action: "write" }), false, "bob write");
  expectEqual(await opa.evaluate(ALLOW, { user: "bob", action: "read" }), true, "bob read");
  expectEqual(await opa.evaluate(ALLOW, { user: "mallory", action: "read" }), false, "unknown user");
});

await check("evaluate roles", async () => {
  expectEqual(await opa.evaluate(ROLES, { user: "alice" }), ["admin"], "alice");
  expectEqual(await opa.evaluate(ROLES, { user: "bob" }), ["reader"], "bob");
  expectEqual(await opa.evaluate(ROLES, { user: "mallory" }), [], "unknown user");
});

await check("evaluate with a revoked token", async () => {
  // data.revoked is not written: object.get falls back to [], so the token is not revoked.
  expectEqual(
    await opa.evaluate(ALLOW, { user: "alice", action: "write", token: "t1" }),
    true,
  );
});

await check("evaluate with fromResult", async () => {
  const got = await opa.evaluate(
    ALLOW,
    { user: "alice", action: "delete" },
    { fromResult: (r) => (r === true ? "allowed" : "denied") },
  );
  expectEqual(got, "allowed");
});

await check("evaluate with a ToInput object", async () => {
  class Req {
    constructor(user, action) {
      this.u = user;
      this.a = action;
    }
    toInput() {
      return { user: this.u, action: this.a };
    }
  }
  expectEqual(await opa.evaluate(ALLOW, new Req("bob", "delete")), false);
});

await check("evaluate an unknown path is undefined", async () => {
  expectEqual(await opa.evaluate("example/authz/no_such_rule", { user: "alice" }), undefined);
});

await check("evaluate with custom headers", async () => {
  const withHeaders = new OPAClient(base, {
    ...sdkOptions,
    headers: { Authorization: "Bearer not-checked", "X-Request-Id": "sdk-mjs" },
  });
  expectEqual(await withHeaders.evaluate(ALLOW, { user: "alice", action: "read" }), true);
});

await check("evaluateDefault (POST /)", async () => {
  expectEqual(
    await opa.evaluateDefault({ user: "alice", action: "write" }),
    { allow: true, user: "alice" },
    "alice write",
  );
  expectEqual(
    await opa.evaluateDefault({ user: "bob", action: "write" }),
    { allow: false, user: "bob" },
    "bob write",
  );
});

await check("evaluateDefault with fromResult", async () => {
  const got = await opa.evaluateDefault(
    { user: "bob", action: "read" },
    { fromResult: (r) => r?.allow },
  );
  expectEqual(got, true);
});

const batchInputs = {
  a: { user: "alice", action: "write" },
  b: { user: "bob", action: "write" },
  c: { user: "bob", action: "read" },
  d: { user: "nobody", action: "read" },
};
const batchWant = { a: true, b: false, c: true, d: false };

await check("evaluateBatch", async () => {
  expectEqual(await opa.evaluateBatch(ALLOW, batchInputs), batchWant);
});

await check("evaluateBatch rejectMixed", async () => {
  expectEqual(await opa.evaluateBatch(ALLOW, batchInputs, { rejectMixed: true }), batchWant);
});

await check("evaluateBatch fallback", async () => {
  expectEqual(await opa.evaluateBatch(ALLOW, batchInputs, { fallback: true }), batchWant);
});

await check("evaluateBatch roles with fromResult", async () => {
  const got = await opa.evaluateBatch(
    ROLES,
    { x: { user: "alice" }, y: { user: "bob" } },
    { fromResult: (r) => (r ?? []).join(",") },
  );
  expectEqual(got, { x: "admin", y: "reader" });
});

await check("evaluateBatch empty", async () => {
  expectEqual(await opa.evaluateBatch(ALLOW, {}), {});
});

await check("getFilters rejects (compile API not implemented)", async () => {
  await expectHttpRejection(
    opa.getFilters(ALLOW, { user: "alice" }, { target: "postgresql", unknowns: ["input.action"] }),
  );
});

await check("getFilters ucastPrisma rejects", async () => {
  await expectHttpRejection(opa.getFilters(ALLOW, { user: "alice" }, "users"));
});

await check("getMultipleFilters rejects", async () => {
  await expectHttpRejection(
    opa.getMultipleFilters(
      ALLOW,
      { user: "alice" },
      { targets: ["postgresql", "ucastMinimal"], unknowns: ["input.action"] },
    ),
  );
});

await check("compile endpoint answers an OPA-shaped error", async () => {
  const res = await http("POST", "/v1/compile/example/authz/allow", {
    input: { user: "alice" },
    unknowns: ["input.action"],
  });
  if (res.status < 400) throw new Error(`status ${res.status}: ${res.text}`);
  if (!res.contentType.startsWith("application/json")) {
    throw new Error(`content-type ${JSON.stringify(res.contentType)}`);
  }
  const body = JSON.parse(res.text);
  if (typeof body.code !== "string" || typeof body.message !== "string") {
    throw new Error(`body without string code/message: ${res.text}`);
  }
});

await check("DELETE /v1/data/users (fetch)", async () => {
  const res = await http("DELETE", "/v1/data/users");
  expectEqual(res.status, 204, `status (body ${res.text})`);
});

await check("evaluate allow after the delete", async () => {
  expectEqual(await opa.evaluate(ALLOW, { user: "alice", action: "write" }), false);
  expectEqual(
    await opa.evaluateDefault({ user: "alice", action: "write" }),
    { allow: false, user: "alice" },
    "evaluateDefault",
  );
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
