//! The rollout console and the admin endpoints it reads (`/admin/timeseries`,
//! `/admin/canary`, `/admin/bundle`), against the real `sark serve`. The browser test of
//! the console itself is `host/tests/console/test_console.py` (`make console`).

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Status, headers and body text of a GET, with the bearer `token` when given.
fn get(s: &Server, path: &str, token: Option<&str>) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = s.http.get(format!("{}{path}", s.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap())
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[test]
fn the_console_is_behind_the_admin_token() {
    let s = Server::start(example_bundle(), None, &[], Some("t"));
    for path in [
        "/console",
        "/console/app.js",
        "/console/uplot.js",
        "/console/nope",
    ] {
        for token in [None, Some("wrong")] {
            let (code, _, _) = get(&s, path, token);
            assert_eq!(code, 401, "{path} with {token:?}");
        }
    }
    // Without the token the page is the sign-in form, with a 401.
    let (_, headers, body) = get(&s, "/console", None);
    assert!(header(&headers, "www-authenticate").starts_with("Bearer"));
    assert!(header(&headers, "content-type").starts_with("text/html"));
    assert!(body.contains(r#"id="sign-in-form""#) && body.contains(r#"data-auth="token""#));
    let (code, headers, body) = get(&s, "/console", Some("t"));
    assert_eq!(code, 200);
    assert!(body.contains(r#"data-auth="header""#));
    let csp = header(&headers, "content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    for (asset, kind, needle) in [
        ("app.js", "text/javascript", "SarkConsole"),
        ("app.css", "text/css", ".panel"),
        ("uplot.js", "text/javascript", "uPlot"),
        ("uplot.css", "text/css", ".uplot"),
    ] {
        let (code, headers, body) = get(&s, &format!("/console/{asset}"), Some("t"));
        assert_eq!(code, 200, "{asset}");
        assert!(
            header(&headers, "content-type").starts_with(kind),
            "{asset}"
        );
        assert!(body.contains(needle), "{asset}");
    }
    let (code, _, _) = get(&s, "/console/nope", Some("t"));
    assert_eq!(code, 404);
    drop(s);

    // No admin token: the console is off like the admin API.
    let s = Server::start(example_bundle(), None, &[], None);
    for path in [
        "/console",
        "/console/app.js",
        "/admin/timeseries",
        "/admin/bundle",
    ] {
        let (code, _, _) = get(&s, path, Some("t"));
        assert_eq!(code, 404, "{path}");
    }
}

#[test]
fn the_time_series_counts_every_decision_of_each_implementation() {
    let dir = scratch("console-series");
    let config = write_config(
        &dir,
        "server: { timeseries_interval_ms: 200 }\nfeatures: { wasm_engine: { rollout_percentage: 50 } }\n",
    );
    let s = Server::start(example_bundle(), Some(&config), &[], Some("t"));
    let (code, body) = s.admin("/admin/timeseries", Some("t"), None);
    assert_eq!(code, 200);
    assert_eq!(body["interval_ms"], 200);
    assert_eq!(body["capacity"], 720);
    let mut input = sample("developer-create-issue.json");
    let (mut wasm, mut native) = (0u64, 0u64);
    for i in 0..60 {
        let user = format!("user-{}", i % 30);
        input["user"]["id"] = json!(user);
        if sark::flags::bucket("wasm_engine", &user) < 50 {
            wasm += 1;
        } else {
            native += 1;
        }
        let (code, _) = s.post(
            "/v1/data/mcp/gateway/decision",
            &json!({ "input": input }).to_string(),
        );
        assert_eq!(code, 200);
    }
    assert!(wasm > 0 && native > 0, "both paths decide");
    let total = |points: &Value, path: &str, field: &str| -> u64 {
        points
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[path][field].as_u64().unwrap())
            .sum()
    };
    let mut points = Value::Null;
    eventually(
        Duration::from_secs(10),
        "every decision in the series",
        || {
            points = s.admin("/admin/timeseries", Some("t"), None).1["points"].clone();
            total(&points, "wasm", "requests") == wasm
                && total(&points, "native", "requests") == native
        },
    );
    // The second decision of each user is a cache hit.
    assert_eq!(
        total(&points, "wasm", "cache_hits") + total(&points, "native", "cache_hits"),
        30
    );
    assert_eq!(total(&points, "cache", "hits"), 30);
    assert_eq!(total(&points, "cache", "misses"), 30);
    assert_eq!(total(&points, "wasm", "errors"), 0);
    let busy: Vec<&Value> = points
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["wasm"]["requests"].as_u64().unwrap() > 0)
        .collect();
    let p = busy[0];
    let (p50, p99) = (
        p["wasm"]["latency_us"]["p50"].as_f64().unwrap(),
        p["wasm"]["latency_us"]["p99"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99, "{p}");
    assert!(p["wasm"]["requests_per_s"].as_f64().unwrap() > 0.0);
    assert!(p["wasm"]["cache_hit_rate"].as_f64().is_some());
    // `since` answers only the newer points.
    let last = points.as_array().unwrap().last().unwrap()["t"]
        .as_u64()
        .unwrap();
    let (_, newer) = s.admin(&format!("/admin/timeseries?since={last}"), Some("t"), None);
    assert!(
        newer["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["t"].as_u64().unwrap() > last)
    );
    let (code, body) = s.admin("/admin/timeseries?since=yesterday", Some("t"), None);
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["code"], "invalid_parameter");
}

#[test]
fn the_canary_keeps_its_last_disagreements_masked() {
    let dir = scratch("console-canary");
    let active = dir.join("active.wasm");
    let candidate = dir.join("candidate.wasm");
    build(&fixture("canary_active"), &active, &["--revision", "a1"]);
    build(
        &fixture("canary_candidate"),
        &candidate,
        &["--revision", "c1"],
    );
    let config = write_config(
        &dir,
        "features: { policy_canary: { mode: shadow } }\ndecision_log: { mask: [/input/secret] }\n",
    );
    let s = Server::start(
        &active,
        Some(&config),
        &["--candidate-bundle", candidate.to_str().unwrap()],
        Some("t"),
    );
    for (i, n) in [4, 5, 10, 4].into_iter().enumerate() {
        let input = json!({"input": {"user": {"id": format!("u{i}")}, "n": n, "secret": "s3cr3t"}});
        let (_, body) = s.post("/v1/data/canary/allow", &input.to_string());
        assert_eq!(body["result"], n > 5, "the active bundle answers");
    }
    let mut canary = Value::Null;
    eventually(Duration::from_secs(10), "four shadow comparisons", || {
        canary = s.admin("/admin/canary", Some("t"), None).1;
        canary["compared"] == 4
    });
    assert_eq!(canary["mode"], "shadow");
    assert_eq!(canary["shadowed_percentage"], 100);
    assert_eq!(canary["routed_percentage"], 0);
    assert_eq!(canary["candidate"]["revision"], "c1");
    assert_eq!(canary["disagreements"], 3, "n = 4, 5, 4; not 10");
    assert_eq!(canary["mask"], json!(["/input/secret"]));
    let recent = canary["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 3);
    for d in recent {
        assert_eq!(d["entrypoint"], "data.canary.allow");
        assert!(d["input"].get("secret").is_none(), "{d}");
        assert_eq!(d["erased"], json!(["/input/secret"]));
        assert_eq!(d["active"]["result"], false);
        assert_eq!(d["candidate"]["result"], true);
        assert!(d["active"]["bundle"].as_str().unwrap().starts_with("a1@"));
        assert!(
            d["candidate"]["bundle"]
                .as_str()
                .unwrap()
                .starts_with("c1@")
        );
    }
    let mut ns: Vec<u64> = recent
        .iter()
        .map(|d| d["input"]["n"].as_u64().unwrap())
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, [4, 4, 5]);
    assert!(!canary.to_string().contains("s3cr3t"));
}

#[test]
fn the_bundle_view_shows_the_signature_and_the_last_reloads() {
    let dir = scratch("console-bundle");
    let key = dir.join("key");
    ok(&["keygen", "-o", key.to_str().unwrap()]);
    let public = dir.join("key.pub");
    let key_id = sark::bundle::signing::key_id(
        &sark::bundle::signing::read_verification_key(&public).unwrap(),
    );
    let live = dir.join("live.wasm");
    build(
        &fixture("canary_active"),
        &live,
        &["--revision", "r1", "--signing-key", key.to_str().unwrap()],
    );
    let config = write_config(&dir, "server: { reload_poll_ms: 100 }\n");
    let s = Server::start(
        &live,
        Some(&config),
        &["--verification-key", public.to_str().unwrap()],
        Some("t"),
    );
    let (code, bundle) = s.admin("/admin/bundle", Some("t"), None);
    assert_eq!(code, 200, "{bundle}");
    assert_eq!(bundle["active"]["revision"], "r1");
    assert_eq!(bundle["active"]["signing_key_id"], key_id.as_str());
    assert_eq!(bundle["verification_key_id"], key_id.as_str());
    assert!(bundle["candidate"].is_null() && bundle["cluster"].is_null());
    let (_, health) = s.get("/health");
    assert_eq!(
        bundle["active"]["content_hash"],
        health["bundle"]["content_hash"]
    );
    assert_eq!(bundle["reloads"].as_array().unwrap().len(), 1);
    assert_eq!(bundle["reloads"][0]["reason"], "start");
    assert_eq!(bundle["reloads"][0]["result"], "success");
    assert_eq!(bundle["reloads"][0]["revision"], "r1");

    // An unsigned bundle is refused: the history says why; the signed one stays.
    let unsigned = dir.join("unsigned.wasm");
    build(
        &fixture("canary_candidate"),
        &unsigned,
        &["--revision", "r2"],
    );
    std::fs::rename(&unsigned, &live).unwrap();
    let mut bundle = Value::Null;
    eventually(Duration::from_secs(10), "the refused reload", || {
        bundle = s.admin("/admin/bundle", Some("t"), None).1;
        bundle["reloads"].as_array().unwrap().len() >= 2
    });
    let refused = &bundle["reloads"][1];
    assert_eq!(refused["result"], "failure", "{bundle}");
    assert_eq!(refused["reason"], "bundle file changed");
    assert!(
        refused["error"].as_str().unwrap().contains("not signed"),
        "{refused}"
    );
    assert!(refused.get("revision").is_none());
    assert_eq!(bundle["active"]["revision"], "r1");
    assert_eq!(bundle["reload"]["last_error"], refused["error"]);
}
