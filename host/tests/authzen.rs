//! The OpenID AuthZEN Authorization API 1.0 on a real `sark serve` with the example policies
//! (`policies/authzen/`), driven by a real HTTP client: the certification fixture's
//! decisions on both paths, batches under each semantic, search with pagination, the
//! errors and headers, the metadata, every published decision of the interop Todo scenario,
//! and the decisions going through the one door (decision log, metrics, cache).

mod common;

use common::*;
use serde_json::{Value, json};

fn serve(extra: &str) -> (Server, std::path::PathBuf) {
    let dir = scratch(&format!("authzen-{}", uuid_like()));
    let config = write_config(&dir, &format!("server: {{ reload_poll_ms: 0 }}\n{extra}"));
    (
        Server::start(example_bundle(), Some(&config), &[], None),
        dir,
    )
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

const CERT: &str = "authzen: { entrypoint: data.authzen.cert.decision }\n";

/// POSTs JSON to an AuthZEN endpoint: status, body, `X-Request-ID`, content type.
fn call(
    s: &Server,
    path: &str,
    body: &Value,
    request_id: Option<&str>,
) -> (u16, Value, Option<String>, String) {
    let mut req = s
        .http
        .post(format!("{}{path}", s.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let id = header("x-request-id");
    let content_type = header("content-type").unwrap_or_default();
    let text = resp.text().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, id, content_type)
}

fn decision(s: &Server, body: Value) -> Value {
    let (status, out, _, ct) = call(s, "/access/v1/evaluation", &body, None);
    assert_eq!(status, 200, "{body} -> {out}");
    assert_eq!(ct, "application/json");
    out
}

fn user(id: &str) -> Value {
    json!({"type": "user", "id": id})
}

fn record(id: &str) -> Value {
    json!({"type": "record", "id": id})
}

fn req(subject: Value, action: Value, resource: Value) -> Value {
    json!({"subject": subject, "action": action, "resource": resource})
}

/// The fixture's eight decision rules, each on the component and on the native path.
#[test]
fn fixture_decisions_on_both_paths() {
    let cases = [
        (
            req(user("alice"), json!({"name": "read"}), record("record-1")),
            true,
        ),
        (
            req(user("alice"), json!({"name": "write"}), record("record-1")),
            true,
        ),
        (
            req(user("bob"), json!({"name": "read"}), record("record-1")),
            true,
        ),
        (
            req(user("bob"), json!({"name": "write"}), record("record-1")),
            false,
        ),
        (
            req(
                user("alice"),
                json!({"name": "write"}),
                json!({"type": "record", "id": "record-2", "properties": {"status": "archived"}}),
            ),
            false,
        ),
        (
            req(
                json!({"type": "user", "id": "bob", "properties": {"role": "admin"}}),
                json!({"name": "write"}),
                json!({"type": "record", "id": "record-2", "properties": {"status": "archived"}}),
            ),
            true,
        ),
        (
            req(
                user("alice"),
                json!({"name": "delete", "properties": {"soft": true}}),
                record("record-1"),
            ),
            true,
        ),
        (
            req(
                user("alice"),
                json!({"name": "delete", "properties": {"soft": false}}),
                record("record-1"),
            ),
            false,
        ),
    ];
    for pct in [100, 0] {
        let (s, _dir) = serve(&format!(
            "{CERT}features: {{ wasm_engine: {{ rollout_percentage: {pct} }} }}\n"
        ));
        for (request, want) in &cases {
            let got = decision(&s, request.clone());
            assert_eq!(
                got["decision"],
                json!(want),
                "{request} on {pct}% wasm: {got}"
            );
            // The context never changes a fixture decision.
            let mut with_context = request.clone();
            with_context["context"] = json!({"time": "2025-06-27T18:03-07:00", "ip": "10.0.0.1"});
            with_context["unknown"] = json!({"nested": true});
            assert_eq!(decision(&s, with_context)["decision"], json!(want));
        }
        let path = if pct == 100 { "wasm" } else { "native" };
        let metrics = s.metrics();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("opa_evaluation_total")
                    && l.contains(&format!("implementation=\"{path}\""))
                    && !l.ends_with(" 0")),
            "AuthZEN decisions are evaluated on the {path} path:\n{metrics}"
        );
    }
}

#[test]
fn errors_headers_and_metadata() {
    let (s, _dir) = serve(CERT);
    let ok = req(user("alice"), json!({"name": "read"}), record("record-1"));
    let (status, body, id, _) = call(&s, "/access/v1/evaluation", &ok, Some("req-42"));
    assert_eq!((status, id.as_deref()), (200, Some("req-42")), "{body}");
    for (bad, what) in [
        (
            json!({"action": {"name": "read"}, "resource": record("r")}),
            "`subject` is required",
        ),
        (
            req(json!({"id": "alice"}), json!({"name": "read"}), record("r")),
            "`subject.type` is required",
        ),
        (
            req(user("alice"), json!({}), record("r")),
            "`action.name` is required",
        ),
        (
            req(user("alice"), json!({"name": 123}), record("r")),
            "`action.name` must be a string",
        ),
        (
            req(json!("alice"), json!({"name": "read"}), record("r")),
            "`subject` must be an object",
        ),
        (
            req(
                user("alice"),
                json!({"name": "read"}),
                json!({"type": "record"}),
            ),
            "`resource.id` is required",
        ),
        (json!([1, 2]), "must be a JSON object"),
    ] {
        let (status, body, id, ct) = call(&s, "/access/v1/evaluation", &bad, Some("bad-1"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.as_str().unwrap().contains(what), "{bad}: {body}");
        assert_eq!(
            id.as_deref(),
            Some("bad-1"),
            "X-Request-ID is echoed on errors"
        );
        assert!(ct.starts_with("text/plain"), "{ct}");
    }
    let raw = |content_type: &str, body: &str| {
        let resp = s
            .http
            .post(format!("{}/access/v1/evaluation", s.base))
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    let (status, text) = raw("text/plain", &ok.to_string());
    assert_eq!(status, 400);
    assert!(text.contains("application/json"), "{text}");
    assert_eq!(raw("application/json", "{not json").0, 400);
    assert_eq!(raw("application/json", "").0, 400);
    assert_eq!(
        raw("application/json; charset=utf-8", &ok.to_string()).0,
        200
    );

    // The metadata names this PDP as the client reached it.
    let (status, meta) = s.get("/.well-known/authzen-configuration");
    assert_eq!(status, 200);
    assert_eq!(meta["policy_decision_point"], json!(s.base));
    for (key, path) in [
        ("access_evaluation_endpoint", "/access/v1/evaluation"),
        ("access_evaluations_endpoint", "/access/v1/evaluations"),
        ("search_subject_endpoint", "/access/v1/search/subject"),
        ("search_resource_endpoint", "/access/v1/search/resource"),
        ("search_action_endpoint", "/access/v1/search/action"),
    ] {
        assert_eq!(meta[key], json!(format!("{}{path}", s.base)), "{key}");
    }
    // A configured identifier replaces the Host-derived one.
    let (s2, _dir2) = serve(
        "authzen: { entrypoint: data.authzen.cert.decision, policy_decision_point: https://pdp.example.com/ }\n",
    );
    let (_, meta) = s2.get("/.well-known/authzen-configuration");
    assert_eq!(meta["policy_decision_point"], "https://pdp.example.com");
    assert_eq!(
        meta["access_evaluation_endpoint"],
        "https://pdp.example.com/access/v1/evaluation"
    );
}

#[test]
fn batches_follow_each_semantic() {
    let (s, _dir) = serve(CERT);
    let items = json!([
        {"action": {"name": "read"}},
        {"action": {"name": "write"}},
        {"action": {"name": "read"}},
        {}
    ]);
    let batch = |semantic: Option<&str>| {
        let mut body =
            json!({"subject": user("bob"), "resource": record("record-1"), "evaluations": items});
        if let Some(sem) = semantic {
            body["options"] = json!({"evaluations_semantic": sem});
        }
        let (status, out, _, _) = call(&s, "/access/v1/evaluations", &body, None);
        assert_eq!(status, 200, "{out}");
        out["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["decision"].as_bool().unwrap())
            .collect::<Vec<_>>()
    };
    // bob: read yes, write no; the fourth item has no action: a failed item, denied.
    assert_eq!(batch(None), [true, false, true, false]);
    assert_eq!(batch(Some("execute_all")), [true, false, true, false]);
    assert_eq!(batch(Some("deny_on_first_deny")), [true, false]);
    assert_eq!(batch(Some("permit_on_first_permit")), [true]);
    let (status, out, _, _) = call(
        &s,
        "/access/v1/evaluations",
        &json!({"subject": user("bob"), "resource": record("record-1"), "action": {"name": "read"},
                "evaluations": [{}], "options": {"evaluations_semantic": "first_one_wins"}}),
        None,
    );
    assert_eq!(status, 400, "{out}");
    // The failed item says why in its context.
    let (_, out, _, _) = call(
        &s,
        "/access/v1/evaluations",
        &json!({"subject": user("alice"), "action": {"name": "read"},
                "evaluations": [{"resource": record("record-1")}, {}]}),
        None,
    );
    assert_eq!(out["evaluations"][0], json!({"decision": true}));
    assert_eq!(out["evaluations"][1]["decision"], false);
    assert_eq!(out["evaluations"][1]["context"]["error"]["status"], 400);
    // No evaluations: an Access Evaluation answer.
    let (_, out, _, _) = call(
        &s,
        "/access/v1/evaluations",
        &json!({"subject": user("alice"), "action": {"name": "read"}, "resource": record("record-1"), "evaluations": []}),
        None,
    );
    assert_eq!(out, json!({"decision": true}));
}

#[test]
fn search_pages_through_permitted_candidates() {
    let (s, _dir) = serve(CERT);
    let subjects = |page: Option<Value>| {
        let mut body = json!({"subject": {"type": "user", "id": "ignored"}, "action": {"name": "read"},
                              "resource": record("record-1")});
        if let Some(p) = page {
            body["page"] = p;
        }
        let (status, out, _, _) = call(&s, "/access/v1/search/subject", &body, None);
        (status, out)
    };
    let (status, all) = subjects(None);
    assert_eq!(status, 200, "{all}");
    let ids: Vec<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"alice") && ids.contains(&"bob"), "{all}");
    assert!(all.get("page").is_none(), "no page asked, none answered");
    // One result a page, following the tokens, gives the same results.
    let mut paged = Vec::new();
    let (_, mut page) = subjects(Some(json!({"limit": 1})));
    loop {
        paged.extend(page["results"].as_array().unwrap().clone());
        assert_eq!(page["page"]["total"], json!(ids.len()));
        let next = page["page"]["next_token"].as_str().unwrap().to_string();
        if next.is_empty() {
            break;
        }
        let (status, p) = subjects(Some(json!({"limit": 1, "token": next})));
        assert_eq!(status, 200, "{p}");
        page = p;
    }
    assert_eq!(json!(paged), all["results"]);
    // A token with a changed request is refused.
    let (_, first) = subjects(Some(json!({"limit": 1})));
    let token = first["page"]["next_token"].as_str().unwrap();
    let (status, out, _, _) = call(
        &s,
        "/access/v1/search/subject",
        &json!({"subject": {"type": "user"}, "action": {"name": "write"}, "resource": record("record-1"),
                "page": {"limit": 1, "token": token}}),
        None,
    );
    assert_eq!(status, 400, "{out}");
    // Resource and action search, unknown types and ids.
    let (_, out, _, _) = call(
        &s,
        "/access/v1/search/resource",
        &json!({"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}},
                "action": {"name": "write"}, "resource": {"type": "record"}}),
        None,
    );
    assert!(
        out["results"]
            .as_array()
            .unwrap()
            .contains(&record("record-2")),
        "{out}"
    );
    let (_, out, _, _) = call(
        &s,
        "/access/v1/search/action",
        &json!({"subject": user("alice"), "resource": record("record-1")}),
        None,
    );
    let names: Vec<&str> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"read") && names.contains(&"write"), "{out}");
    for (path, body) in [
        (
            "/access/v1/search/subject",
            json!({"subject": {"type": "spaceship"}, "action": {"name": "read"}, "resource": record("record-1")}),
        ),
        (
            "/access/v1/search/action",
            json!({"subject": user("nonexistent-user"), "resource": record("record-1")}),
        ),
        (
            "/access/v1/search/resource",
            json!({"subject": user("alice"), "action": {"name": "read"}, "resource": {"type": "spaceship"}}),
        ),
    ] {
        let (status, out, _, _) = call(&s, path, &body, None);
        assert_eq!(
            (status, out.clone()),
            (200, json!({"results": []})),
            "{path} {body}"
        );
    }
}

/// Every published decision of the interop Todo scenario, on both paths.
#[test]
fn interop_todo_decisions() {
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("authzen/todo-decisions.json")).unwrap(),
    )
    .unwrap();
    let decisions = file["decisions"].as_array().unwrap();
    assert!(
        decisions.len() >= 20,
        "the scenario's decisions are all there"
    );
    for pct in [100, 0] {
        let (s, _dir) = serve(&format!(
            "authzen: {{ entrypoint: data.authzen.todo.decision }}\nfeatures: {{ wasm_engine: {{ rollout_percentage: {pct} }} }}\n"
        ));
        let mut wrong = Vec::new();
        for case in decisions {
            let got = decision(&s, case["request"].clone());
            if got["decision"] != case["expected"] {
                wrong.push(format!("{} -> {got}", case["request"]));
            }
        }
        assert!(
            wrong.is_empty(),
            "{pct}% wasm: {} wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}

/// AuthZEN decisions go through the one door: logged with their input, cached.
#[test]
fn decisions_are_logged_and_cached() {
    let dir = scratch(&format!("authzen-log-{}", uuid_like()));
    let log = dir.join("decisions.jsonl");
    let config = write_config(
        &dir,
        &format!(
            "{CERT}server: {{ reload_poll_ms: 0 }}\ndecision_log: {{ enabled: true, output: {} }}\n",
            log.display()
        ),
    );
    let s = Server::start(example_bundle(), Some(&config), &[], None);
    let request = req(user("alice"), json!({"name": "read"}), record("record-1"));
    for _ in 0..3 {
        assert_eq!(decision(&s, request.clone())["decision"], true);
    }
    let metrics = s.metrics();
    assert!(
        metrics.contains(
            "cache_operations_total{implementation=\"dashmap\",operation=\"get\",result=\"hit\"} 2"
        ),
        "repeated decisions are cache hits:\n{metrics}"
    );
    let lines = logged_decisions(&log, 3);
    let first = &lines[0];
    assert_eq!(first["input"]["subject"]["id"], "alice", "{first}");
    assert_eq!(first["input"]["context"], json!({}), "{first}");
}
