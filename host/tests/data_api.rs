//! OPA's REST API beyond decisions, against a real `sark serve`: data written at run time
//! (seen by the next decision on both paths, durable across restarts and `kill -9`), the
//! policy API, the default decision, config, status, health and compile; and the official
//! OPA SDKs (npm `@open-policy-agent/opa`, PyPI `opa-python-client`) driving it unchanged.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The fixture bundle (roots `example` and `system`), built once per run.
fn bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let out = scratch("data-api-bundle").join("opa_api.wasm");
        build(&fixture("opa_api"), &out, &[]);
        out
    })
}

/// A config routing every user to `path`, with the persistence directory `dir`.
fn config(dir: &Path, path: &str, extra: &str) -> PathBuf {
    let pct = if path == "wasm" { 100 } else { 0 };
    let server = if extra.contains("server:") {
        ""
    } else {
        "server: { reload_poll_ms: 0 }\n"
    };
    write_config(
        dir,
        &format!(
            "persistence_directory: {}\nfeatures: {{ wasm_engine: {{ rollout_percentage: {pct} }} }}\n{server}{extra}",
            dir.join("state").display()
        ),
    )
}

/// Decides `allow` for `user`/`action`: the result and the path that evaluated it.
fn allow(s: &Server, user: &str, action: &str) -> (Value, String) {
    let (code, body) = s.post(
        "/v1/data/example/authz/allow?metrics",
        &json!({"input": {"user": user, "action": action}}).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    (
        body["result"].clone(),
        body["metrics"]["implementation"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

fn put(s: &Server, path: &str, doc: &Value) -> (u16, Value) {
    s.request("PUT", &format!("/v1/data/{path}"), &doc.to_string())
}

#[test]
fn writes_are_seen_by_the_next_decision_on_both_paths_and_survive_a_restart() {
    let dir = scratch("data-api-both-paths");
    for path in ["wasm", "native"] {
        let _ = std::fs::remove_dir_all(dir.join("state"));
        let cfg = config(&dir, path, "");
        let s = Server::start(bundle(), Some(&cfg), &[], None);
        // Decided (and cached) before the write, then decided again after each write: the
        // cache never answers with a decision computed from older data.
        assert_eq!(
            allow(&s, "alice", "write"),
            (json!(false), path.to_string())
        );
        let (code, body) = put(&s, "users", &json!({"alice": {"roles": ["admin"]}}));
        assert_eq!(code, 204, "{body}");
        assert_eq!(allow(&s, "alice", "write"), (json!(true), path.to_string()));
        let (code, body) = s.request(
            "PATCH",
            "/v1/data/users",
            r#"[{"op": "replace", "path": "/alice/roles", "value": ["reader"]},
                {"op": "add", "path": "/bob", "value": {"roles": ["admin"]}}]"#,
        );
        assert_eq!(code, 204, "{body}");
        assert_eq!(allow(&s, "alice", "write").0, json!(false));
        assert_eq!(allow(&s, "alice", "read").0, json!(true));
        assert_eq!(allow(&s, "bob", "delete").0, json!(true));
        // Reads of the written document itself, through the data API.
        let (code, body) = s.get("/v1/data/users/bob");
        assert_eq!((code, &body["result"]), (200, &json!({"roles": ["admin"]})));
        // A policy reading data outside its package sees writes at any depth.
        put(&s, "revoked", &json!({"tokens": ["t1"]}));
        let (_, body) = s.post(
            "/v1/data/example/authz/allow",
            &json!({"input": {"user": "bob", "action": "read", "token": "t1"}}).to_string(),
        );
        assert_eq!(body["result"], json!(false));
        drop(s);

        // Restored at start, before the first decision.
        let s = Server::start(bundle(), Some(&cfg), &[], None);
        assert_eq!(allow(&s, "bob", "delete"), (json!(true), path.to_string()));
        assert_eq!(allow(&s, "alice", "write").0, json!(false));
        let (code, _) = s.request("DELETE", "/v1/data/users", "");
        assert_eq!(code, 204);
        assert_eq!(allow(&s, "bob", "delete").0, json!(false));
        drop(s);
        let s = Server::start(bundle(), Some(&cfg), &[], None);
        assert_eq!(allow(&s, "bob", "delete").0, json!(false));
    }
}

#[test]
fn kill_9_right_after_a_204_loses_nothing() {
    let dir = scratch("data-api-kill9");
    let cfg = config(&dir, "wasm", "");
    let mut s = Server::start(bundle(), Some(&cfg), &[], None);
    let n = 40;
    for i in 0..n {
        let (code, body) = put(
            &s,
            &format!("tools/t{i}"),
            &json!({"i": i, "pad": "x".repeat(i * 100)}),
        );
        assert_eq!(code, 204, "{body}");
    }
    // Killed (SIGKILL) the moment the last 204 arrived: no graceful shutdown, no flush.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let s = Server::start(bundle(), Some(&cfg), &[], None);
    let (code, body) = s.get("/v1/data/tools");
    assert_eq!(code, 200);
    let tools = body["result"]
        .as_object()
        .expect("the documents were restored");
    assert_eq!(tools.len(), n);
    assert_eq!(tools["t39"]["i"], json!(39));
}

#[test]
fn writes_the_bundle_owns_or_that_are_malformed_are_refused_as_opa_does() {
    let dir = scratch("data-api-refusals");
    let cfg = config(
        &dir,
        "wasm",
        "limits: { max_data_bytes: 100000, max_data_depth: 8 }\n",
    );
    let s = Server::start(bundle(), Some(&cfg), &[], None);
    let refused = |code: u16, body: &Value, want_code: u16, opa_code: &str, text: &str| {
        assert_eq!(code, want_code, "{body}");
        assert_eq!(body["code"], opa_code, "{body}");
        assert!(body["message"].as_str().unwrap().contains(text), "{body}");
    };
    let (c, b) = put(&s, "example/permissions", &json!({}));
    refused(
        c,
        &b,
        400,
        "invalid_parameter",
        "path example/permissions is owned by bundle \"opa_api\"",
    );
    let (c, b) = s.request("DELETE", "/v1/data/system", "");
    refused(c, &b, 400, "invalid_parameter", "owned by bundle");
    let (c, b) = put(&s, "", &json!({}));
    refused(
        c,
        &b,
        400,
        "invalid_parameter",
        "can't write to document root",
    );
    let (c, b) = s.request("PUT", "/v1/data/users", "{not json");
    refused(c, &b, 400, "invalid_parameter", "key must be a string");
    let (c, b) = s.request(
        "PATCH",
        "/v1/data/users",
        r#"[{"op": "move", "path": "/a"}]"#,
    );
    refused(c, &b, 400, "invalid_parameter", "bad patch operation: move");
    // Limits: size and depth.
    let (c, b) = put(&s, "big", &json!("x".repeat(120_000)));
    refused(c, &b, 400, "invalid_parameter", "limits.max_data_bytes");
    // The limit holds for all written documents together.
    assert_eq!(put(&s, "half", &json!("x".repeat(60_000))).0, 204);
    let (c, b) = put(&s, "other_half", &json!("x".repeat(60_000)));
    refused(c, &b, 400, "invalid_parameter", "limits.max_data_bytes");
    assert_eq!(s.request("DELETE", "/v1/data/half", "").0, 204);
    // A body beyond the limit is refused before it is read whole.
    let (c, b) = put(&s, "huge", &json!("x".repeat(400_000)));
    assert_eq!(
        (c, b["code"].as_str()),
        (413, Some("request_too_large")),
        "{b}"
    );
    let (c, b) = put(
        &s,
        "deep",
        &json!({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}),
    );
    refused(c, &b, 400, "invalid_parameter", "limits.max_data_depth");
    // A patch that fails midway leaves the document as it was.
    assert_eq!(
        put(&s, "users", &json!({"alice": {"roles": ["admin"]}})).0,
        204
    );
    let (c, b) = s.request(
        "PATCH",
        "/v1/data/users",
        r#"[{"op": "add", "path": "/bob", "value": {"roles": ["admin"]}},
            {"op": "remove", "path": "/nobody"}]"#,
    );
    refused(c, &b, 404, "resource_not_found", "document does not exist");
    assert_eq!(
        s.get("/v1/data/users").1["result"],
        json!({"alice": {"roles": ["admin"]}})
    );
    // A write below a document that is not an object.
    assert_eq!(put(&s, "flag", &json!(true)).0, 204);
    let (c, b) = put(&s, "flag/x", &json!(1));
    refused(
        c,
        &b,
        404,
        "resource_conflict",
        "storage_write_conflict_error",
    );
    // If-None-Match: * keeps an existing document (304), creates a missing one.
    let resp = s
        .http
        .put(format!("{}/v1/data/users", s.base))
        .header("If-None-Match", "*")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 304);
    assert_eq!(allow(&s, "alice", "write").0, json!(true));
    let (c, b) = s.request("DELETE", "/v1/data/nothing/here", "");
    refused(c, &b, 404, "resource_not_found", "document does not exist");
    // Every write is counted, refusals apart.
    let m = s.metrics();
    for line in [
        r#"data_api_writes_total{operation="put",result="refused"}"#,
        r#"data_api_writes_total{operation="put",result="ok"}"#,
        r#"data_api_writes_total{operation="patch",result="refused"}"#,
        r#"data_api_writes_total{operation="delete",result="refused"}"#,
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
    assert!(m.contains("data_documents_bytes "), "{m}");
}

#[test]
fn the_policy_api_lists_the_bundle_and_puts_modules_outside_its_roots() {
    let dir = scratch("data-api-policies");
    let cfg = config(&dir, "wasm", "");
    let s = Server::start(bundle(), Some(&cfg), &[], None);
    let (code, body) = s.get("/v1/policies");
    assert_eq!(code, 200);
    let ids: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["opa_api/example/authz.rego", "opa_api/system/main.rego"]
    );
    let (code, body) = s.get("/v1/policies/opa_api/example/authz.rego");
    assert_eq!(code, 200);
    let p = &body["result"];
    assert!(p["raw"].as_str().unwrap().contains("package example.authz"));
    assert_eq!(
        p["ast"]["package"]["path"][1],
        json!({"type": "string", "value": "example"})
    );
    assert_eq!(p["ast"]["rules"][0]["head"]["name"], "allow");

    // The bundle's modules cannot change.
    let (code, body) = s.request(
        "PUT",
        "/v1/policies/opa_api/example/authz.rego",
        "package x\n",
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{body}"
    );
    let (code, body) = s.request("DELETE", "/v1/policies/opa_api/system/main.rego", "");
    assert_eq!(code, 400, "{body}");
    let (code, body) = s.request(
        "PUT",
        "/v1/policies/mine.rego",
        "package example.mine\nx := 1\n",
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("path example/mine is owned by bundle")
    );
    // A module that does not parse: located errors, in OPA's shape.
    let (code, body) = s.request(
        "PUT",
        "/v1/policies/bad.rego",
        "package extra\nallow { true }\n",
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["message"],
        "error(s) occurred while compiling module(s)"
    );
    assert_eq!(body["errors"][0]["location"]["row"], 2);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`if` keyword is required")
    );

    // A new module outside the roots: compiled with the bundle, decided on at once, durable.
    let source = "package extra.rules\n\nhello if input.name == \"world\"\nadmins := data.example.permissions.admin\n";
    let (code, body) = s.request("PUT", "/v1/policies/extra/rules.rego", source);
    assert_eq!((code, &body), (200, &json!({})));
    let (_, body) = s.post(
        "/v1/data/extra/rules/hello",
        r#"{"input": {"name": "world"}}"#,
    );
    assert_eq!(body["result"], json!(true));
    let (_, body) = s.get("/v1/policies/extra/rules.rego");
    assert_eq!(body["result"]["raw"], source);
    drop(s);
    let s = Server::start(bundle(), Some(&cfg), &[], None);
    let (_, body) = s.post("/v1/data/extra/rules/admins", "{}");
    assert_eq!(body["result"], json!(["read", "write", "delete"]));
    let (code, _) = s.request("DELETE", "/v1/policies/extra/rules.rego", "");
    assert_eq!(code, 200);
    let (_, body) = s.post(
        "/v1/data/extra/rules/hello",
        r#"{"input": {"name": "world"}}"#,
    );
    assert!(body.get("result").is_none(), "{body}");
    let (code, body) = s.request("DELETE", "/v1/policies/extra/rules.rego", "");
    assert_eq!(
        (code, body["code"].as_str()),
        (404, Some("resource_not_found"))
    );
}

#[test]
fn default_decision_config_status_health_and_compile_answer_as_opa() {
    let dir = scratch("data-api-management");
    let cfg = config(
        &dir,
        "wasm",
        "server: { admin_token: very-secret, reload_poll_ms: 0 }\n",
    );
    let s = Server::start(bundle(), Some(&cfg), &[], None);
    put(&s, "users", &json!({"alice": {"roles": ["admin"]}}));
    // POST /: the raw input in, the raw value out.
    let (code, body) = s.post("/", r#"{"user": "alice", "action": "write"}"#);
    assert_eq!((code, body), (200, json!({"allow": true, "user": "alice"})));
    let (code, body) = s.post("/", "{bad");
    assert_eq!(
        (code, body["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
    drop(s);
    // Another default decision; undefined answers 404 as OPA.
    let text =
        std::fs::read_to_string(&cfg).unwrap() + "default_decision: /example/authz/revoked\n";
    std::fs::write(&cfg, text).unwrap();
    let s = Server::start(bundle(), Some(&cfg), &[], None);
    put(&s, "revoked", &json!({"tokens": ["t1"]}));
    let (code, body) = s.post("/", r#"{"token": "t1"}"#);
    assert_eq!((code, body), (200, json!(true)));
    let (code, body) = s.post("/", r#"{"token": "t2"}"#);
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["code"], "undefined_document");
    assert_eq!(
        body["message"],
        "document undefined: data.example.authz.revoked"
    );

    let (code, body) = s.get("/v1/config");
    assert_eq!(code, 200);
    assert_eq!(body["result"]["default_decision"], "/example/authz/revoked");
    assert!(!body.to_string().contains("very-secret"), "{body}");
    let (code, body) = s.get("/v1/status");
    assert_eq!(code, 200);
    let b = &body["result"]["bundles"]["opa_api"];
    assert_eq!(b["active_revision"], "opa-api-1");
    assert!(
        b["last_successful_activation"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );
    assert_eq!(body["result"]["plugins"]["bundle"]["state"], "OK");
    assert_eq!(s.get("/health?bundles").0, 200);
    let (code, body) = s.get("/health?plugins&exclude-plugin=decision_logs");
    assert_eq!((code, body), (200, json!({})));
    let (code, body) = s.post("/v1/compile/example/authz/allow", "{}");
    assert_eq!(
        (code, body["code"].as_str()),
        (501, Some("not_implemented"))
    );
    // OPA's path rules: a trailing slash redirects; HEAD is not allowed.
    let no_redirects = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .get(format!("{}/v1/policies/", s.base))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 301);
    assert_eq!(resp.headers()["location"], "/v1/policies");
    let resp = no_redirects
        .head(format!("{}/v1/data", s.base))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

/// The official clients, pinned and installed by `make client-deps`, run against one server.
#[test]
fn opa_sdk_clients_work_unchanged() {
    let clients = root().join("host/tests/clients");
    let node_modules = clients.join("node/node_modules/@open-policy-agent/opa");
    assert!(
        node_modules.exists(),
        "the npm client is not installed: run `make client-deps`"
    );
    let python = std::env::var("SARK_CLIENT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/py-venv/bin/python"));
    let dir = scratch("data-api-clients");
    let cfg = config(&dir, "wasm", "");
    let s = Server::start(bundle(), Some(&cfg), &[], None);
    for (what, mut cmd) in [
        ("node sdk.mjs", {
            let mut c = std::process::Command::new("node");
            c.arg(clients.join("node/sdk.mjs"));
            c
        }),
        ("python client.py", {
            let mut c = std::process::Command::new(&python);
            c.arg(clients.join("python/client.py"));
            c
        }),
    ] {
        let out = cmd
            .arg(&s.base)
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(" passed, 0 failed"), "{what}:\n{stdout}");
    }
}
