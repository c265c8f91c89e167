//! The real `sark serve` on an ephemeral port, driven by a real HTTP client.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[test]
fn opa_data_api() {
    let s = Server::start(example_bundle(), None, &[], None);
    let input = sample("developer-create-issue.json");
    let (code, body) = s.post(
        "/v1/data/mcp/gateway/decision",
        &json!({"input": input}).to_string(),
    );
    assert_eq!(code, 200);
    assert_eq!(body["result"]["allow"], true);
    // OPA answers with a `decision_id` only while decision logging is on; it is off here.
    assert!(body.get("decision_id").is_none(), "{body}");

    // GET with ?input=, provenance and metrics.
    let q = urlencode(&input.to_string());
    let (code, body) = s.get(&format!(
        "/v1/data/mcp/gateway/allow?input={q}&provenance=true&metrics=true"
    ));
    assert_eq!(code, 200);
    assert_eq!(body["result"], true);
    assert_eq!(body["provenance"]["revision"], "mcp-policies-1.0.0");
    assert!(
        body["metrics"]["timer_rego_query_eval_ns"]
            .as_u64()
            .is_some()
    );

    // Unknown path: 200 without result, as OPA.
    let (code, body) = s.post("/v1/data/mcp/gateway/nothing_here", r#"{"input": {}}"#);
    assert_eq!(code, 200);
    assert!(
        body.get("result").is_none() && body.get("decision_id").is_none(),
        "{body}"
    );

    // Pretty output is still the same JSON.
    let (_, body) = s.post(
        "/v1/data/mcp/gateway/allow?pretty=true",
        &json!({"input": input}).to_string(),
    );
    assert_eq!(body["result"], true);

    // v0: raw input, raw value; undefined is 404.
    let (code, body) = s.post("/v0/data/mcp/gateway/allow", &input.to_string());
    assert_eq!((code, body), (200, json!(true)));
    let (code, body) = s.post("/v0/data/mcp/gateway/nothing_here", "{}");
    assert_eq!(code, 404);
    assert_eq!(body["code"], "undefined_document");

    // Batch.
    let viewer = sample("viewer-write-denied.json");
    let (code, body) = s.post(
        "/v1/batch/data/mcp/gateway/allow",
        &json!({"inputs": {"a": input, "b": viewer}}).to_string(),
    );
    assert_eq!(code, 200);
    assert_eq!(body["responses"]["a"]["result"], true);
    assert_eq!(body["responses"]["b"]["result"], false);

    // Ad-hoc queries.
    let (code, body) = s.post(
        "/v1/query",
        r#"{"query": "x := input.a + 1", "input": {"a": 41}}"#,
    );
    assert_eq!((code, body), (200, json!({"result": [{"x": 42}]})));
    let (code, body) = s.get("/v1/query?q=y%20%3A%3D%20data.mcp.config.max_delegation_depth");
    assert_eq!(code, 200);
    assert_eq!(body["result"][0]["y"], 3);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn errors_in_opa_shape() {
    let dir = scratch("server-errors");
    let bundle = dir.join("basic.wasm");
    build(&fixture("basic"), &bundle, &[]);
    let config = write_config(&dir, "limits: { max_input_bytes: 2000 }\n");
    let s = Server::start(&bundle, Some(&config), &[], None);

    let (code, body) = s.post("/v1/data/basic/flag", r#"{"input": {"#);
    assert_eq!(code, 400);
    assert_eq!(body["code"], "invalid_parameter");

    let big = json!({"input": {"a": "x".repeat(100_000)}}).to_string();
    let (code, body) = s.post("/v1/data/basic/echo", &big);
    assert_eq!(code, 413, "{body}");
    assert_eq!(body["code"], "request_too_large");

    let nested = format!(r#"{{"input": {}{}}}"#, "[".repeat(600), "]".repeat(600));
    let (code, body) = s.post("/v1/data/basic/echo", &nested);
    assert_eq!(code, 400, "{body}");

    let (code, body) = s.post("/v1/data/basic/conflict", r#"{"input": {"c": true}}"#);
    assert_eq!(code, 500);
    assert_eq!(body["code"], "internal_error");
    assert_eq!(body["errors"][0]["code"], "eval_conflict_error");

    let (code, body) = s.post("/v1/query", r#"{"query": "x := "}"#);
    assert_eq!(code, 400, "{body}");

    // Still healthy after all that.
    assert_eq!(s.get("/health").0, 200);
}

#[test]
fn gateway_api_and_fail_closed() {
    let s = Server::start(example_bundle(), None, &[], None);
    let (code, body) = s.post(
        "/api/v1/gateway/authorize",
        r#"{"action": "tool:invoke", "server_name": "github", "tool_name": "create_issue",
            "parameters": {"title": "x", "api_key": "k"}, "gateway_metadata": {"request_id": "r1"},
            "user": {"id": "dana", "role": "developer"}}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(body["allow"], true);
    assert_eq!(body["filtered_parameters"], json!({"title": "x"}));
    assert_eq!(body["cache_ttl"], 180);
    assert!(body["audit_id"].as_str().is_some());
    assert_eq!(body["reason"], "role developer may write internal tools");

    let (_, body) = s.post(
        "/api/v1/gateway/authorize",
        r#"{"server_name": "jira", "tool_name": "create_ticket", "user": {"id": "vic", "role": "viewer"}}"#,
    );
    assert_eq!(body["allow"], false);
    assert_eq!(
        body["reason"],
        "role viewer may not perform write operations"
    );

    let (_, body) = s.post(
        "/api/v1/gateway/authorize-a2a",
        &sample("a2a-planner-delegates.json").to_string(),
    );
    assert_eq!(body["allow"], true);
    assert_eq!(body["cache_ttl"], 120);

    // A bundle without the gateway entrypoint: fail closed, never open.
    let dir = scratch("server-closed");
    let bundle = dir.join("basic.wasm");
    build(&fixture("basic"), &bundle, &[]);
    let s = Server::start(&bundle, None, &[], None);
    let (code, body) = s.post(
        "/api/v1/gateway/authorize",
        r#"{"server_name": "x", "user": {"id": "a"}}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(body["allow"], false);
    assert_eq!(body["cache_ttl"], 0);
    let (code, _) = s.post("/api/v1/gateway/authorize", "not json");
    assert_eq!(code, 400);
    assert!(
        s.metrics().contains(
            r#"gateway_fail_closed_total{endpoint="data.mcp.gateway.decision",reason="error"} 1"#
        ),
        "{}",
        s.metrics()
    );
}

#[test]
fn health_and_metrics() {
    let s = Server::start(example_bundle(), None, &[], None);
    let (code, body) = s.get("/health");
    assert_eq!(code, 200);
    assert_eq!(body["paths"]["wasm"], "ok");
    assert_eq!(body["paths"]["native"], "ok");
    assert_eq!(s.get("/health/live").0, 200);
    assert_eq!(s.get("/health/ready").0, 200);
    s.post(
        "/v1/data/mcp/gateway/allow",
        &json!({"input": sample("developer-create-issue.json")}).to_string(),
    );
    let text = s.metrics();
    assert!(
        text.contains("opa_evaluation_total{implementation=\"wasm\",result=\"allow\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("feature_flag_rollout_percentage{feature=\"wasm_engine\"} 100"),
        "{text}"
    );
    assert_eq!(s.get("/no/such/route").0, 404);
}

#[test]
fn admin_auth_and_rollback_on_the_next_request() {
    // No token configured: the admin API is off.
    let s = Server::start(example_bundle(), None, &[], None);
    assert_eq!(s.admin("/admin/features", None, None).0, 404);
    drop(s);

    let s = Server::start(example_bundle(), None, &[], Some("s3cret"));
    assert_eq!(s.admin("/admin/features", None, None).0, 401);
    assert_eq!(s.admin("/admin/features", Some("wrong"), None).0, 401);
    let (code, body) = s.admin("/admin/features", Some("s3cret"), None);
    assert_eq!(code, 200);
    assert_eq!(body["features"]["wasm_engine"]["rollout_percentage"], 100);

    let input = json!({"input": sample("developer-create-issue.json")}).to_string();
    let implementation = |s: &Server| {
        s.post("/v1/data/mcp/gateway/allow?metrics", &input).1["metrics"]["implementation"].clone()
    };
    // Turn the cache off so every request evaluates.
    let (code, _) = s.admin(
        "/admin/rollout/update",
        Some("s3cret"),
        Some(json!({"feature": "decision_cache", "percentage": 0})),
    );
    assert_eq!(code, 200);
    assert_eq!(implementation(&s), "wasm");
    let (code, _) = s.admin(
        "/admin/rollout/rollback",
        Some("s3cret"),
        Some(json!({"feature": "wasm_engine"})),
    );
    assert_eq!(code, 200);
    assert_eq!(
        implementation(&s),
        "native",
        "rollback applies to the next request"
    );
    let (code, _) = s.admin(
        "/admin/rollout/update",
        Some("s3cret"),
        Some(json!({"feature": "wasm_engine", "percentage": 100})),
    );
    assert_eq!(code, 200);
    assert_eq!(implementation(&s), "wasm");
    let (code, body) = s.admin(
        "/admin/rollout/update",
        Some("s3cret"),
        Some(json!({"feature": "nope", "percentage": 1})),
    );
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown feature")
    );
    let (code, _) = s.admin(
        "/admin/rollout/update",
        Some("s3cret"),
        Some(json!({"feature": "wasm_engine", "percentage": 101})),
    );
    assert_eq!(code, 400);
    let (code, body) = s.admin("/admin/rollout/rollback-all", Some("s3cret"), None);
    assert_eq!(code, 200);
    assert_eq!(body["features"]["wasm_engine"]["rollout_percentage"], 0);

    // Live comparison with real figures.
    let (code, body) = s.admin("/admin/metrics/comparison", Some("s3cret"), None);
    assert_eq!(code, 200);
    assert!(
        body["implementations"]["wasm"]["requests"]
            .as_u64()
            .unwrap()
            >= 2,
        "{body}"
    );
    assert!(
        body["implementations"]["native"]["requests"]
            .as_u64()
            .unwrap()
            >= 1,
        "{body}"
    );
    assert!(
        body["implementations"]["wasm"]["latency_us"]["p50"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{body}"
    );
}

#[test]
fn hot_reload_good_and_broken_bundles() {
    let dir = scratch("server-reload");
    let live = dir.join("live.wasm");
    let one = dir.join("one.wasm");
    let two = dir.join("two.wasm");
    build(&root().join("policies"), &one, &["--revision", "one"]);
    build(&root().join("policies"), &two, &["--revision", "two"]);
    std::fs::copy(&one, &live).unwrap();
    let config = write_config(&dir, "server: { reload_poll_ms: 100 }\n");
    let s = Server::start(&live, Some(&config), &[], Some("t"));
    let input = json!({"input": sample("developer-create-issue.json")}).to_string();
    let revision = |s: &Server| {
        s.post("/v1/data/mcp/gateway/allow?provenance&metrics", &input)
            .1
    };
    assert_eq!(revision(&s)["provenance"]["revision"], "one");
    assert_eq!(revision(&s)["metrics"]["cache_hit"], true);

    // A broken bundle is refused; the old one keeps serving.
    std::fs::write(&live, b"\0asm garbage").unwrap();
    let (code, body) = s.admin("/admin/bundle/reload", Some("t"), None);
    assert_eq!(code, 422, "{body}");
    assert_eq!(revision(&s)["provenance"]["revision"], "one");
    let (_, health) = s.get("/health");
    assert!(
        health["reload"]["last_error"].as_str().is_some(),
        "{health}"
    );
    assert!(
        s.metrics()
            .contains("bundle_reloads_total{result=\"failure\"}")
    );

    // A good bundle through the file watcher.
    std::fs::copy(&two, &live).unwrap();
    // A liveness bound, not a speed target: the other tests load both cores meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = revision(&s);
        if r["provenance"]["revision"] == "two" {
            // Decisions cached for the old revision are not served for the new one.
            assert_eq!(r["metrics"]["cache_hit"], false);
            break;
        }
        assert!(Instant::now() < deadline, "the watcher did not reload");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, health) = s.get("/health");
    assert!(health["reload"]["last_error"].is_null(), "{health}");

    // And through the admin call.
    std::fs::copy(&one, &live).unwrap();
    let (code, body) = s.admin("/admin/bundle/reload", Some("t"), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(revision(&s)["provenance"]["revision"], "one");
}

#[test]
fn policy_canary_routes_stably_and_counts_shadow_disagreements() {
    let dir = scratch("server-canary");
    let active = dir.join("active.wasm");
    let candidate = dir.join("candidate.wasm");
    build(&fixture("canary_active"), &active, &[]);
    build(&fixture("canary_candidate"), &candidate, &[]);
    let n4 = |user: &str| json!({"input": {"user": {"id": user}, "n": 4}}).to_string();

    // Route mode at 50%: a user's answer depends only on their bucket.
    let config = write_config(
        &dir,
        "features: { policy_canary: { rollout_percentage: 50, mode: route }, decision_cache: { enabled: false } }\n",
    );
    let s = Server::start(
        &active,
        Some(&config),
        &["--candidate-bundle", candidate.to_str().unwrap()],
        None,
    );
    let mut routed = 0;
    for i in 0..100 {
        let user = format!("user-{i}");
        let expected = sark::flags::bucket("policy_canary", &user) < 50;
        for _ in 0..2 {
            let (_, body) = s.post("/v1/data/canary/allow", &n4(&user));
            assert_eq!(body["result"], expected, "{user}");
        }
        routed += usize::from(expected);
    }
    assert!((25..=75).contains(&routed), "{routed}");
    drop(s);

    // Shadow mode: answers never change; disagreements are counted.
    let config = write_config(&dir, "features: { policy_canary: { mode: shadow } }\n");
    let s = Server::start(
        &active,
        Some(&config),
        &["--candidate-bundle", candidate.to_str().unwrap()],
        None,
    );
    for i in 0..5 {
        let (_, body) = s.post("/v1/data/canary/allow", &n4(&format!("u{i}")));
        assert_eq!(body["result"], false, "the active bundle answers");
    }
    let (_, body) = s.post(
        "/v1/data/canary/allow",
        &json!({"input": {"n": 10}}).to_string(),
    );
    assert_eq!(body["result"], true);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = s.metrics();
        if text.contains("policy_canary_disagreements_total{entrypoint=\"data.canary.allow\"} 5") {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A repeated body is answered from the memo of prepared inputs and the decision cache:
/// the same answer, and never another door's, path's or body's.
#[test]
fn repeated_bodies_are_answered_as_the_first() {
    let s = Server::start(example_bundle(), None, &[], None);
    let input = sample("developer-create-issue.json");
    let body = json!({"input": input}).to_string();
    let url = "/v1/data/mcp/gateway/decision?metrics=true";
    let (code, first) = s.post(url, &body);
    assert_eq!(code, 200, "{first}");
    assert_eq!(first["metrics"]["cache_hit"], false, "{first}");
    let (_, second) = s.post(url, &body);
    assert_eq!(second["result"], first["result"]);
    assert_eq!(second["metrics"]["cache_hit"], true, "{second}");
    // The same input with its keys in another order: the same cache entry.
    let mut members: Vec<(String, Value)> =
        input.as_object().unwrap().clone().into_iter().collect();
    members.reverse();
    let reordered = format!(
        "{{\"input\":{{{}}}}}",
        members
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_ne!(reordered, body);
    let (_, third) = s.post(url, &reordered);
    assert_eq!(third["result"], first["result"]);
    assert_eq!(third["metrics"]["cache_hit"], true, "{third}");
    // The same bytes on another path, and on the v0 door (where they are the whole input).
    let (_, allow) = s.post("/v1/data/mcp/gateway/allow", &body);
    assert_eq!(allow["result"], true, "{allow}");
    let (code, v0) = s.post("/v0/data/mcp/gateway/decision", &body);
    assert_eq!(code, 200, "{v0}");
    assert_ne!(
        v0, first["result"],
        "the v0 door reads {{\"input\": …}} as the input itself"
    );
    let (_, v0_plain) = s.post("/v0/data/mcp/gateway/decision", &input.to_string());
    assert_eq!(v0_plain, first["result"]);
    // Another body after a remembered one: its own decision.
    let mut other = input.clone();
    other["user"]["role"] = json!("viewer");
    let (_, denied) = s.post(url, &json!({"input": other}).to_string());
    assert_ne!(denied["result"], first["result"], "{denied}");
    assert_eq!(denied["metrics"]["cache_hit"], false, "{denied}");
}

#[test]
fn decision_log_masks_nested_fields() {
    let dir = scratch("server-log");
    let log = dir.join("decisions.jsonl");
    let config = write_config(
        &dir,
        &format!(
            "decision_log: {{ enabled: true, output: {:?}, mask: [/input/parameters/password, /input/parameters/db/token] }}\n",
            log.display().to_string()
        ),
    );
    let s = Server::start(example_bundle(), Some(&config), &[], None);
    let mut input = sample("developer-create-issue.json");
    input["parameters"] =
        json!({"title": "x", "password": "hunter2", "db": {"token": "t0k", "name": "main"}});
    let (code, body) = s.post(
        "/v1/data/mcp/gateway/allow",
        &json!({"input": input}).to_string(),
    );
    assert_eq!(code, 200);
    let record = log_record(&log, body_id(&body));
    assert!(
        !record.to_string().contains("hunter2") && !record.to_string().contains("t0k"),
        "{record}"
    );
    assert_eq!(record["input"]["parameters"]["db"]["name"], "main");
    // The same body again (a cache hit): logged with its input too.
    let (_, again) = s.post(
        "/v1/data/mcp/gateway/allow",
        &json!({"input": input}).to_string(),
    );
    assert_ne!(body_id(&again), body_id(&body));
    let repeat = log_record(&log, body_id(&again));
    assert_eq!(
        repeat["input"]["parameters"]["db"]["name"], "main",
        "{repeat}"
    );
    assert_eq!(
        record["erased"],
        json!(["/input/parameters/password", "/input/parameters/db/token"])
    );
    assert_eq!(record["result"], true);
    assert_eq!(record["implementation"], "wasm");
    assert_eq!(record["path"], "data.mcp.gateway.allow");
    assert!(
        record["bundle"]
            .as_str()
            .unwrap()
            .starts_with("mcp-policies-1.0.0@")
    );
}

/// Reads the decision log until a record containing `needle` (e.g. its id) appears.
fn log_record(log: &std::path::Path, needle: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return serde_json::from_str::<Value>(line).unwrap();
        }
        assert!(Instant::now() < deadline, "no log record with {needle}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn comparison_counts_fallbacks_and_each_miss_once() {
    let dir = scratch("server-comparison");
    let bundle = dir.join("failures.wasm");
    build(&fixture("failures"), &bundle, &[]);
    let log = dir.join("decisions.jsonl");
    let config = write_config(
        &dir,
        &format!(
            "limits: {{ eval_timeout_ms: 2, native_timeout_ms: 20000, request_timeout_ms: 30000 }}
decision_log: {{ enabled: true, output: {:?} }}
",
            log.display().to_string()
        ),
    );
    let s = Server::start(&bundle, Some(&config), &[], Some("tok"));
    let comparison = || {
        let (code, body) = s.admin("/admin/metrics/comparison", Some("tok"), None);
        assert_eq!(code, 200, "{body}");
        body
    };

    // One request that misses the cache is one miss, not one per step of the decision.
    let input = json!({"input": {"user": {"id": "alice"}, "n": 1}}).to_string();
    assert_eq!(s.post("/v1/data/failures/cached", &input).0, 200);
    let body = comparison();
    assert_eq!(
        (&body["cache"]["misses"], &body["cache"]["hits"]),
        (&json!(1), &json!(0)),
        "{body}"
    );
    assert_eq!(s.post("/v1/data/failures/cached", &input).0, 200);
    let body = comparison();
    assert_eq!(
        (&body["cache"]["misses"], &body["cache"]["hits"]),
        (&json!(1), &json!(1)),
        "{body}"
    );
    assert_eq!(body["implementations"]["wasm"]["fallbacks"], 0, "{body}");

    // The component misses its 2 ms deadline; the native path decides. The comparison
    // counts the fallback on the path that failed, and the decision on the one that served.
    let (code, body) = s.post("/v1/data/failures/slow", "{}");
    assert_eq!((code, &body["result"]), (200, &json!(97)), "{body}");
    let body = comparison();
    assert_eq!(body["implementations"]["wasm"]["fallbacks"], 1, "{body}");
    assert_eq!(body["implementations"]["native"]["requests"], 1, "{body}");

    // A failed decision is logged too, with its error and without a result.
    let (code, body) = s.post("/v1/data/failures/conflict", r#"{"input": {"c": true}}"#);
    assert_eq!(code, 500, "{body}");
    let metrics = s.metrics();
    assert!(
        metrics.contains(
            r#"implementation_fallback_total{feature="wasm_engine",error_type="timeout"} 1"#
        ),
        "{metrics}"
    );
    let failed = log_record(&log, "evaluation_error");
    assert_eq!(failed["path"], "data.failures.conflict", "{failed}");
    assert!(failed.get("result").is_none(), "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("conflict"),
        "{failed}"
    );
}

fn body_id(body: &Value) -> &str {
    body["decision_id"].as_str().expect("a decision id")
}

#[cfg(unix)]
#[test]
fn sighup_reloads_the_bundle() {
    let dir = scratch("server-sighup");
    let live = dir.join("live.wasm");
    let two = dir.join("two.wasm");
    build(&root().join("policies"), &live, &["--revision", "one"]);
    build(&root().join("policies"), &two, &["--revision", "two"]);
    // No file watcher: only the signal can reload.
    let config = write_config(&dir, "server: { reload_poll_ms: 0 }\n");
    let mut s = Server::start(&live, Some(&config), &[], None);
    std::fs::copy(&two, &live).unwrap();
    // Soon after the address is announced. `serve` installs the handler before announcing
    // it (the default action of SIGHUP terminates the process); this test checks that the
    // signal reloads, it cannot force the narrow race the ordering closes.
    signal(&s, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            s.child.try_wait().unwrap().is_none(),
            "SIGHUP killed the server"
        );
        let (_, health) = s.get("/health");
        if health["bundle"]["revision"] == "two" {
            assert_eq!(health["reload"]["attempts"], 1, "{health}");
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload: {health}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, body) = s.post(
        "/v1/data/mcp/gateway/allow?provenance",
        &json!({"input": sample("developer-create-issue.json")}).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["provenance"]["revision"], "two");
}

/// Sends a signal (`-HUP`, `-TERM`) to the server process.
#[cfg(unix)]
fn signal(s: &Server, sig: &str) {
    let pid = s.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[cfg(unix)]
#[test]
fn sigterm_and_sigint_shut_down_gracefully() {
    for sig in ["-TERM", "-INT"] {
        let mut s = Server::start(example_bundle(), None, &[], None);
        assert_eq!(s.get("/health/live").0, 200);
        signal(&s, sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // A clean exit (status 0), not death by the signal's default action.
            if let Some(status) = s.child.try_wait().unwrap() {
                assert!(status.success(), "{sig}: {status}");
                break;
            }
            assert!(Instant::now() < deadline, "{sig}: server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hostile_policies_and_inputs_over_http() {
    let dir = scratch("server-hostile");
    let bundle = dir.join("hostile.wasm");
    build(&fixture("hostile"), &bundle, &["-e", "hostile/fine"]);
    // No snapshot compilation in the background: its transient memory (over 100 MB) would
    // blur the resident-memory check below.
    let config = write_config(
        &dir,
        "limits: { eval_timeout_ms: 50, native_timeout_ms: 200 }\n\
         server: { snapshot_delay_ms: 0 }\n",
    );
    let s = Server::start(&bundle, Some(&config), &[], None);
    let pid = s.child.id();
    for _ in 0..20 {
        assert_eq!(s.post("/v1/data/hostile/fine", "{}").0, 200);
    }
    let rss_before = rss_kib(pid);

    // A CPU-bound policy: typed cancel error after the deadline (and the native fallback's
    // own time limit), while other requests keep being answered meanwhile.
    let base = s.base.clone();
    let spinner = std::thread::spawn(move || {
        let started = Instant::now();
        let resp = reqwest::blocking::Client::new()
            .post(format!("{base}/v1/data/hostile/spin"))
            .body("{}")
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap();
        (status, body, started.elapsed())
    });
    let mut fine = 0;
    while !spinner.is_finished() {
        let t = Instant::now();
        let (code, _) = s.post("/v1/data/hostile/fine", "{}");
        assert_eq!(code, 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        fine += 1;
    }
    let (code, body, elapsed) = spinner.join().unwrap();
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["errors"][0]["code"], "eval_cancel_error", "{body}");
    // 50 ms in the component, then at most 200 ms natively, plus a margin.
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert!(fine > 0);

    // Unbounded allocation: the memory cap, final (no native retry), every time.
    for _ in 0..5 {
        let (code, body) = s.post("/v1/data/hostile/hungry", "{}");
        assert_eq!(code, 500, "{body}");
        assert_eq!(body["errors"][0]["code"], "eval_cancel_error", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("memory cap"),
            "{body}"
        );
    }
    // The trapped instances were dropped: memory returns near its level before.
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 96 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );

    // Hostile inputs: clear 4xx answers, no stack overflow in the host.
    let nested = format!(
        r#"{{"input": {}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let (code, body) = s.post("/v1/data/hostile/fine", &nested);
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["code"], "invalid_parameter");
    let long = json!({"input": {"prompt": "x".repeat(100_000)}}).to_string();
    let (code, body) = s.post("/v1/data/hostile/fine", &long);
    assert_eq!(code, 413, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("string"),
        "{body}"
    );
    let (code, body) = s.post("/v1/data/hostile/fine", "{\"input\": ");
    assert_eq!(code, 400, "{body}");

    assert_eq!(s.get("/health").0, 200);
    assert_eq!(s.post("/v1/data/hostile/fine", "{}").1["result"], true);
}

#[test]
fn signed_bundles_only_with_a_verification_key() {
    let dir = scratch("server-signed");
    let key = dir.join("signing-key");
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(dir.join("signing-key.pub"));
    ok(&["keygen", "-o", key.to_str().unwrap()]);
    let public = dir.join("signing-key.pub");
    let live = dir.join("live.wasm");
    let signed = dir.join("signed.wasm");
    let unsigned = dir.join("unsigned.wasm");
    build(
        &root().join("policies"),
        &signed,
        &[
            "--revision",
            "signed",
            "--signing-key",
            key.to_str().unwrap(),
        ],
    );
    build(
        &root().join("policies"),
        &unsigned,
        &["--revision", "unsigned"],
    );

    // An unsigned bundle does not start.
    let err = fails(&[
        "serve",
        "--bundle",
        unsigned.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
        "--verification-key",
        public.to_str().unwrap(),
    ]);
    assert!(err.contains("not signed"), "{err}");

    std::fs::copy(&signed, &live).unwrap();
    let s = Server::start(
        &live,
        None,
        &["--verification-key", public.to_str().unwrap()],
        Some("t"),
    );
    let input = json!({"input": sample("developer-create-issue.json")}).to_string();
    let revision = |s: &Server| {
        s.post("/v1/data/mcp/gateway/allow?provenance", &input).1["provenance"]["revision"].clone()
    };
    assert_eq!(revision(&s), "signed");

    // A reload goes through the same check: the unsigned bundle is refused.
    std::fs::copy(&unsigned, &live).unwrap();
    let (code, body) = s.admin("/admin/bundle/reload", Some("t"), None);
    assert_eq!(code, 422, "{body}");
    assert!(body.to_string().contains("not signed"), "{body}");
    assert_eq!(revision(&s), "signed");
}

/// Reads `conn` until the server closes it (EOF or reset) or `within` passes; true when it
/// closed.
fn closed_within(conn: &mut std::net::TcpStream, within: Duration) -> bool {
    use std::io::Read;
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        conn.set_read_timeout(Some(left)).unwrap();
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_idle_and_excess_connections_are_closed_while_decisions_go_on() {
    use std::io::Write;
    use std::net::TcpStream;
    let dir = scratch("server-connection-hygiene");
    let cfg = write_config(
        &dir,
        "server: { header_timeout_ms: 700, body_timeout_ms: 500, max_connections: 40, reload_poll_ms: 0 }\n",
    );
    let s = Server::start(example_bundle(), Some(&cfg), &[], None);
    let addr = s.base.trim_start_matches("http://").to_string();
    let decide = || {
        s.post(
            "/v1/data/mcp/gateway/decision",
            &json!({"input": sample("developer-create-issue.json")}).to_string(),
        )
        .0
    };
    assert_eq!(decide(), 200);

    // Slowloris: half a request head each, then nothing.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(b"POST /v1/data/mcp/gateway/decision HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            c
        })
        .collect();
    // Decisions are answered meanwhile.
    assert_eq!(decide(), 200);
    let started = Instant::now();
    for c in &mut slow {
        assert!(
            closed_within(c, Duration::from_secs(5)),
            "a slowloris connection stayed open"
        );
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");

    // An idle keep-alive connection is closed after the same timeout.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(5)));

    // A body that does not arrive: 408 within the body timeout, then the connection closes.
    let mut body = TcpStream::connect(&addr).unwrap();
    body.write_all(
        b"POST /v1/data/mcp/gateway/decision HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in",
    )
    .unwrap();
    let t = Instant::now();
    let mut answer = Vec::new();
    use std::io::Read;
    body.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = body.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body_timeout_ms"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(3));

    // Past max_connections, a new connection is closed at once; the others stay served.
    let mut held: Vec<TcpStream> = (0..45)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let excess = held
        .iter_mut()
        .filter_map(|c| closed_within(c, Duration::from_millis(150)).then_some(()))
        .count();
    assert!(
        excess >= 5,
        "{excess} of 45 connections were refused with 40 slots"
    );
    drop(held);
    // Once the slots are free again, decisions go on.
    let again = Instant::now();
    while decide() != 200 {
        assert!(again.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn evaluations_beyond_the_bound_are_shed_with_503_while_cache_hits_are_answered() {
    let dir = scratch("server-admission");
    let bundle = dir.join("hostile.wasm");
    build(&fixture("hostile"), &bundle, &["-e", "hostile/fine"]);
    // One evaluation at a time and no queue: while `spin` holds the slot (up to its
    // budget), every other evaluation is refused at once.
    let config = write_config(
        &dir,
        "limits: { eval_timeout_ms: 300, request_timeout_ms: 1500, native_timeout_ms: 1500 }
server:
  max_concurrent_evaluations: 1
  max_queued_evaluations: 0
  gateway_entrypoint: data.hostile.fine
",
    );
    let s = Server::start(&bundle, Some(&config), &[], None);
    // A decision that is cached before the overload.
    let cached = r#"{"input": {"user": {"id": "cached"}}}"#;
    assert_eq!(s.post("/v1/data/hostile/fine", cached).0, 200);

    let base = s.base.clone();
    // `spin` itself is shed when a miss below holds the slot as it arrives: it is sent
    // again until it is admitted.
    let spinner = std::thread::spawn(move || {
        loop {
            let status = reqwest::blocking::Client::new()
                .post(format!("{base}/v1/data/hostile/spin"))
                .body("{}")
                .send()
                .unwrap()
                .status()
                .as_u16();
            if status != 503 {
                return status;
            }
        }
    });
    // Misses (a new input each time) until one is refused, while `spin` runs.
    let mut refused = None;
    for n in 0.. {
        if spinner.is_finished() {
            break;
        }
        let resp = s
            .http
            .post(format!("{}/v1/data/hostile/fine", s.base))
            .body(json!({"input": {"n": n}}).to_string())
            .send()
            .unwrap();
        if resp.status().as_u16() == 503 {
            let retry = resp.headers().get("retry-after").cloned();
            refused = Some((retry, resp.json::<Value>().unwrap()));
            break;
        }
    }
    let (retry, body) = refused.expect("a miss was refused while the only slot was busy");
    assert_eq!(retry.unwrap(), "1");
    assert_eq!(body["code"], "server_overloaded", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("max_concurrent_evaluations"),
        "{body}"
    );
    // A cache hit needs no slot; the gateway fails closed with 503.
    let (code, body) = s.post("/v1/data/hostile/fine", cached);
    assert_eq!((code, &body["result"]), (200, &json!(true)), "{body}");
    let resp = s
        .http
        .post(format!("{}/api/v1/gateway/authorize", s.base))
        .body(json!({"tool_name": "x", "user": {"id": "gw"}}).to_string())
        .send()
        .unwrap();
    // Still spinning after the answer came back: the slot was busy all along.
    if !spinner.is_finished() {
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(resp.headers()["retry-after"], "1");
        assert_eq!(resp.json::<Value>().unwrap()["allow"], false);
    }
    assert_eq!(spinner.join().unwrap(), 500, "spin ends with its budget");
    // The slot is free again.
    let (code, body) = s.post("/v1/data/hostile/fine", r#"{"input": {"n": "after"}}"#);
    assert_eq!((code, &body["result"]), (200, &json!(true)), "{body}");
    let metrics = s.metrics();
    let shed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("evaluations_shed_total "))
        .expect("the shed counter is exported");
    assert!(shed.parse::<u64>().unwrap() >= 1, "{metrics}");
}

#[test]
fn a_bundle_moves_to_its_snapshot_in_the_background_and_decides_the_same() {
    // A revision whose snapshot is not compiled yet starts on the carried evaluator; after
    // it has served a while the server compiles its snapshot in the background and moves to
    // it, with the same decisions; a reload of that revision then starts from the snapshot.
    let dir = scratch("server-snapshot");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("snap.rego"),
        fresh_rego(
            "package snap\nimport rego.v1\ndefault allow := false\n\
             allow if input.user in {\"ann\", \"bob\"}\n",
        ),
    )
    .unwrap();
    let bundle = dir.join("snap.wasm");
    build(&src, &bundle, &["--revision", "snap", "-e", "snap/allow"]);
    // Every answer from the component: no fallback to the native path could hide a broken
    // snapshot pool.
    let config = write_config(
        &dir,
        "features:\n  wasm_engine: { enabled: true, rollout_percentage: 100, fallback_on_error: false }\n",
    );
    let s = Server::start(&bundle, Some(&config), &[], Some("t"));
    let instances = |s: &Server| {
        let (code, body) = s.admin("/admin/bundle", Some("t"), None);
        assert_eq!(code, 200, "{body}");
        body["active"]["instances"].as_str().unwrap().to_string()
    };
    assert_eq!(instances(&s), "payload");
    let n = std::sync::atomic::AtomicU64::new(0);
    let decide = |s: &Server| {
        ["ann", "carol"].map(|u| {
            // A fresh body each time: the decision cache must not answer for the new pool.
            let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (code, body) = s.post(
                "/v1/data/snap/allow?metrics",
                &json!({"input": {"user": u, "n": n}}).to_string(),
            );
            assert_eq!(code, 200, "{body}");
            assert_eq!(body["metrics"]["cache_hit"], false, "{body}");
            assert_eq!(body["metrics"]["implementation"], "wasm", "{body}");
            body["result"].clone()
        })
    };
    let before = decide(&s);
    assert_eq!(before, [json!(true), json!(false)]);
    // A liveness bound, not a speed target: the snapshot compiles on one thread at nice 10
    // while the other tests load both cores.
    let deadline = Instant::now() + Duration::from_secs(600);
    while instances(&s) != "snapshot" {
        assert!(
            Instant::now() < deadline,
            "the server did not move to the snapshot"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(decide(&s), before);
    let (code, body) = s.admin("/admin/bundle/reload", Some("t"), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        instances(&s),
        "snapshot",
        "the reload started from the cached snapshot"
    );
    assert_eq!(decide(&s), before);
}
