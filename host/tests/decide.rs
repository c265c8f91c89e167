//! `decide()` on the real component: flags, cache, fallback and metrics.

mod common;

use common::*;
use sark::bundle::Bundle;
use sark::config::Config;
use sark::decide::{DecisionRequest, DecisionService, Door, PreparedInput, ServiceBuilder};
use sark::flags::{DECISION_CACHE, WASM_ENGINE};
use sark::{EvalError, PathKind, PolicyError};
use serde_json::json;

fn build(dir: &std::path::Path, revision: &str) -> Bundle {
    bundle_of(dir, Some(revision), &[])
}

fn service(bundle: Bundle, config: &Config) -> DecisionService {
    ServiceBuilder::new(config)
        .code_cache(code_cache())
        .pool_size(2)
        .build(bundle)
        .unwrap()
}

fn failures(config: &Config) -> DecisionService {
    service(build(&fixture("failures"), "f1"), config)
}

#[test]
fn deadline_on_the_component_falls_back_to_native() {
    let mut config = Config::default();
    config.limits.eval_timeout_ms = 2;
    config.limits.native_timeout_ms = 20_000;
    config.limits.request_timeout_ms = 30_000;
    let s = failures(&config);
    let d = s
        .decide(&DecisionRequest::new("failures/slow", None))
        .unwrap();
    assert_eq!(d.path, PathKind::Native);
    assert_eq!(d.fallback_from, Some("timeout"));
    assert_eq!(d.result.as_deref(), Some("97"));
    // The live comparison counts the fallback on the path that failed.
    let cmp = s.metrics().comparison();
    assert_eq!(cmp["wasm"]["fallbacks"], 1, "{cmp}");
    assert_eq!(cmp["native"]["requests"], 1, "{cmp}");
    let text = s.metrics_text();
    assert!(
        text.contains(
            r#"implementation_fallback_total{feature="wasm_engine",error_type="timeout"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"opa_evaluation_errors_total{implementation="wasm",error_type="timeout"} 1"#
        ),
        "{text}"
    );

    // Without fallback the typed error is returned.
    let mut no_fallback = config.clone();
    no_fallback.features.wasm_engine.fallback_on_error = false;
    let s = failures(&no_fallback);
    let err = s
        .decide(&DecisionRequest::new("failures/slow", None))
        .unwrap_err();
    assert!(
        matches!(err, EvalError::Deadline { timeout_ms: 2 }),
        "{err}"
    );
}

#[test]
fn memory_cap_on_the_component_is_final() {
    // The native path has no memory cap, so a policy that hit the sandbox's cap is not
    // re-run in the host: the decision fails with the typed limit error.
    let s = failures(&Config::default());
    let err = s
        .decide(&DecisionRequest::new("failures/big", None))
        .unwrap_err();
    assert!(matches!(err, EvalError::MemoryCap { max_mb: 64 }), "{err}");
    assert_eq!(err.kind(), "memory");
    // Forced onto the wasm path, the same.
    let mut req = DecisionRequest::new("failures/big", None);
    req.force_path = Some(PathKind::Wasm);
    req.bypass_cache = true;
    let err = s.decide(&req).unwrap_err();
    assert!(matches!(err, EvalError::MemoryCap { max_mb: 64 }), "{err}");
}

#[test]
fn a_panic_is_a_typed_error_on_both_paths() {
    let s = failures(&Config::default());
    let err = s
        .decide(&DecisionRequest::new("failures/panics", None))
        .unwrap_err();
    // The same evaluator code panics the same way natively, so a panic is not retried there.
    assert!(
        matches!(err, EvalError::Trap(ref m) if m.contains("the evaluator panicked")),
        "{err}"
    );
    let text = s.metrics_text();
    assert!(!text.contains("implementation_fallback_total{"), "{text}");
    // Forced onto the native path, the panic is caught and typed too.
    let mut req = DecisionRequest::new("failures/panics", None);
    req.force_path = Some(PathKind::Native);
    let err = s.decide(&req).unwrap_err();
    assert!(
        matches!(err, EvalError::Trap(ref m) if m.contains("native evaluator panicked")),
        "{err}"
    );
    // Both paths still serve.
    let d = s
        .decide(&DecisionRequest::new("failures/uncached", None))
        .unwrap();
    assert_eq!(d.path, PathKind::Wasm);
}

#[test]
fn policy_errors_are_returned_not_retried() {
    let s = failures(&Config::default());
    let input = json!({"c": true});
    let err = s
        .decide(&DecisionRequest::new("failures/conflict", Some(&input)))
        .unwrap_err();
    assert!(
        matches!(err, EvalError::Policy(PolicyError::Evaluation(_))),
        "{err}"
    );
    assert!(!s.metrics_text().contains("implementation_fallback_total{"));
}

#[test]
fn cache_hits_ignore_key_order_and_honour_the_decision_ttl() {
    let s = failures(&Config::default());
    let a = json!({"user": {"id": "alice", "role": "x"}, "n": 1});
    let b: serde_json::Value =
        serde_json::from_str(r#"{"n": 1, "user": {"role": "x", "id": "alice"}}"#).unwrap();
    let first = s
        .decide(&DecisionRequest::new("failures/cached", Some(&a)))
        .unwrap();
    assert!(!first.cache_hit);
    let second = s
        .decide(&DecisionRequest::new("data.failures.cached", Some(&b)))
        .unwrap();
    assert!(
        second.cache_hit,
        "same input in another key order, same entrypoint in another form"
    );
    assert_eq!(first.result, second.result);
    let c = json!({"user": {"id": "alice", "role": "x"}, "n": 2});
    let third = s
        .decide(&DecisionRequest::new("failures/cached", Some(&c)))
        .unwrap();
    assert!(!third.cache_hit);
    assert!(third.result.as_deref().unwrap().contains("\"seen\":2"));

    // cache_ttl 0: never cached.
    for _ in 0..2 {
        assert!(
            !s.decide(&DecisionRequest::new("failures/uncached", None))
                .unwrap()
                .cache_hit
        );
    }
    let stats = s.cache().stats();
    assert_eq!(stats.hits, 1);
    assert_eq!(stats.size, 2);
}

#[test]
fn a_new_bundle_never_serves_the_old_bundles_decisions() {
    let s = service(build(&root().join("policies"), "one"), &Config::default());
    let input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("policies/samples/developer-create-issue.json"))
            .unwrap(),
    )
    .unwrap();
    let req = DecisionRequest::new("mcp/gateway/allow", Some(&input));
    assert!(!s.decide(&req).unwrap().cache_hit);
    assert!(s.decide(&req).unwrap().cache_hit);
    let old = s.active().id.clone();

    let next = build(&root().join("policies"), "two");
    s.swap_bundle(s.load_bundle(next).unwrap());
    let d = s.decide(&req).unwrap();
    assert!(!d.cache_hit, "decisions of the old revision are gone");
    assert_ne!(d.bundle_id, old);
    assert!(d.bundle_id.starts_with("two@"));
}

#[test]
fn rollout_routes_users_stably_and_rollback_is_immediate() {
    let s = service(Bundle::read(example_bundle()).unwrap(), &Config::default());
    let input = |user: &str| json!({"user": {"id": user, "role": "viewer"}, "action": "tool:invoke", "resource": {"server": "docs", "tool": "search"}});
    s.flags().set_percentage(WASM_ENGINE, 30).unwrap();
    s.flags().set_percentage(DECISION_CACHE, 0).unwrap();
    let users: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    let mut on_wasm = 0;
    for u in &users {
        let i = input(u);
        let d = s
            .decide(&DecisionRequest::new("mcp/gateway/allow", Some(&i)))
            .unwrap();
        let expected = if sark::flags::bucket(WASM_ENGINE, u) < 30 {
            PathKind::Wasm
        } else {
            PathKind::Native
        };
        assert_eq!(d.path, expected, "{u}");
        assert!(!d.cache_hit);
        assert_eq!(d.result.as_deref(), Some("true"));
        on_wasm += usize::from(d.path == PathKind::Wasm);
        // The same user lands on the same path again.
        assert_eq!(
            s.decide(&DecisionRequest::new("mcp/gateway/allow", Some(&i)))
                .unwrap()
                .path,
            d.path
        );
    }
    assert!(
        (30..=90).contains(&on_wasm),
        "{on_wasm} of 200 on wasm at 30%"
    );
    s.flags().rollback(WASM_ENGINE).unwrap();
    for u in &users {
        let i = input(u);
        assert_eq!(
            s.decide(&DecisionRequest::new("mcp/gateway/allow", Some(&i)))
                .unwrap()
                .path,
            PathKind::Native
        );
    }
    let text = s.metrics_text();
    assert!(
        text.contains(r#"feature_flag_rollout_percentage{feature="wasm_engine"} 0"#),
        "{text}"
    );
    assert!(text.contains(
        r#"feature_flag_assignments_total{feature="decision_cache",implementation="off"}"#
    ));
    assert!(text.contains(r#"opa_evaluation_total{implementation="native",result="allow"}"#));
}

#[test]
fn undefined_decisions_are_cached_as_undefined() {
    let s = service(build(&fixture("basic"), "b"), &Config::default());
    let input = json!({"a": 2});
    let first = s
        .decide(&DecisionRequest::new("basic/maybe", Some(&input)))
        .unwrap();
    let second = s
        .decide(&DecisionRequest::new("basic/maybe", Some(&input)))
        .unwrap();
    assert_eq!(first.result, None);
    assert!(second.cache_hit);
    assert_eq!(second.result, None);
}

#[test]
fn ad_hoc_queries_go_through_the_door_uncached_and_limited() {
    let mut config = Config::default();
    config.limits.max_input_bytes = 100;
    let s = service(build(&fixture("basic"), "q"), &config);
    let input = json!({"a": 41});
    for _ in 0..2 {
        let d = s
            .decide(&DecisionRequest::query("x := input.a + 1", Some(&input)))
            .unwrap();
        assert!(!d.cache_hit);
        assert_eq!(d.path, PathKind::Wasm);
        let rows: serde_json::Value = serde_json::from_str(d.result.as_deref().unwrap()).unwrap();
        assert_eq!(rows[0]["bindings"]["x"], 42, "{rows}");
    }
    assert_eq!(s.cache().stats().size, 0, "queries are never cached");
    assert_eq!(s.metrics().comparison()["wasm"]["requests"], 2);
    assert!(
        s.metrics_text()
            .contains(r#"opa_evaluation_total{implementation="wasm",result="value"} 2"#)
    );
    // The limits hold for queries too.
    let big = json!({"a": "x".repeat(200)});
    let err = s
        .decide(&DecisionRequest::query("x := 1", Some(&big)))
        .unwrap_err();
    assert!(matches!(err, EvalError::InputRefused(_)), "{err}");
    assert_eq!(s.metrics().comparison()["wasm"]["errors"], 1);
    // Queries are the caller's code: they stay in the sandbox whatever the rollout says.
    s.flags().set_percentage(WASM_ENGINE, 0).unwrap();
    let d = s.decide(&DecisionRequest::query("x := 1", None)).unwrap();
    assert_eq!(d.path, PathKind::Wasm);
}

#[test]
fn the_shadow_compares_without_counting_as_served_evaluations() {
    let mut config = Config::default();
    config.features.decision_cache.enabled = false;
    let s = ServiceBuilder::new(&config)
        .code_cache(code_cache())
        .pool_size(2)
        .candidate(Some(build(&fixture("canary_candidate"), "cand")))
        .build(build(&fixture("canary_active"), "act"))
        .unwrap();
    for n in [1, 4, 9] {
        let input = json!({"n": n});
        let d = s
            .decide(&DecisionRequest::new("canary/allow", Some(&input)))
            .unwrap();
        assert!(!d.canary, "shadow mode never serves the candidate");
        assert_eq!(
            d.result.as_deref(),
            Some(if n > 5 { "true" } else { "false" })
        );
    }
    let text = s.metrics_text();
    // Only n = 4 is decided differently by the candidate.
    assert!(
        text.contains(r#"policy_canary_disagreements_total{entrypoint="data.canary.allow"} 1"#),
        "{text}"
    );
    // Three served evaluations; the candidate's three are not among them.
    assert!(
        text.contains(r#"opa_evaluation_duration_seconds_count{implementation="wasm"} 3"#),
        "{text}"
    );
}

/// Regorus itself, in v0 mode, on the fixture's `legacy/` modules: `data.legacy`.
fn regorus_v0_reference(input: &serde_json::Value) -> serde_json::Value {
    let dir = fixture("rego_v0");
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    for f in ["helpers", "rules", "future", "v1import"] {
        engine
            .add_policy_from_file(dir.join(format!("legacy/{f}.rego")))
            .unwrap();
    }
    engine
        .add_data_json(&std::fs::read_to_string(dir.join("data.json")).unwrap())
        .unwrap();
    engine.set_input(regorus::Value::from(input.clone()));
    let results = engine.eval_query("data.legacy".into(), false).unwrap();
    serde_json::to_value(&results.result[0].expressions[0].value).unwrap()
}

#[test]
fn rego_v0_and_v1_modules_in_one_bundle_decide_as_regorus_v0_does() {
    let bundle = bundle_of(&fixture("rego_v0"), None, &["legacy"]);
    // `.manifest`: `rego_version: 0`, and `modern/*.rego` v1 by `file_rego_versions`.
    let versions: Vec<(String, u8)> = bundle
        .manifest()
        .modules
        .iter()
        .map(|m| (m.path.clone(), u8::from(m.rego_version)))
        .collect();
    let want: Vec<(String, u8)> = [
        ("legacy/future.rego", 0),
        ("legacy/helpers.rego", 0),
        ("legacy/rules.rego", 0),
        ("legacy/v1import.rego", 0),
        ("modern/api.rego", 1),
    ]
    .iter()
    .map(|(p, v)| (p.to_string(), *v))
    .collect();
    assert_eq!(versions, want);
    let s = service(bundle, &Config::default());
    let inputs = [
        json!({"user": {"name": "carol", "role": "guest"}, "points": 50,
               "users": [{"name": "alice", "role": "admin"}, {"name": "bob", "role": "dev"}]}),
        json!({"user": {"name": "dave", "role": "admin"}, "points": 500,
               "users": [{"name": "", "role": "dev"}]}),
        json!({"user": {"name": "eve", "role": "guest"}, "points": 1, "users": []}),
    ];
    for input in &inputs {
        let reference = regorus_v0_reference(input);
        for path in [PathKind::Wasm, PathKind::Native] {
            let mut req = DecisionRequest::new("legacy", Some(input));
            req.force_path = Some(path);
            req.bypass_cache = true;
            let d = s.decide(&req).unwrap();
            let got: serde_json::Value =
                serde_json::from_str(d.result.as_deref().unwrap()).unwrap();
            assert_eq!(got, reference, "{path} on {input}");
        }
    }
    // Every rule form gave something: the comparison is not between two empty documents.
    let first = regorus_v0_reference(&inputs[0]);
    for key in [
        "allow",
        "names",
        "roles",
        "doubled",
        "level",
        "as_admin",
        "owners_replaced",
    ] {
        assert!(!first[key].is_null(), "{key} missing from {first}");
    }
    assert_eq!(first["level"], "silver");
    assert_eq!(first["future"]["admins"], json!(["alice"]));
    assert_eq!(regorus_v0_reference(&inputs[1])["level"], "gold");
    // The v1 module of the same bundle reads the v0 rules and interpolates.
    for path in [PathKind::Wasm, PathKind::Native] {
        let mut req = DecisionRequest::new("modern/decision", Some(&inputs[0]));
        req.force_path = Some(path);
        req.bypass_cache = true;
        let d = s.decide(&req).unwrap();
        assert_eq!(
            json(d.result.as_deref().unwrap()),
            json!({"allow": true, "level": "silver", "admins": ["alice"],
                   "greeting": "hello carol, 2 users, missing: <undefined>"}),
            "{path}"
        );
    }
}

#[test]
fn string_interpolation_formats_values_and_undefined_parts_as_opa_does() {
    let s = failures(&Config::default());
    let input = json!({"n": 3, "xs": ["a", "b"], "o": {"k": [1, 2.5]}, "s": "plain"});
    let cases = [
        (
            r#"x := $"{input.n} {input.s} {input.o} {input.nope}""#,
            json!(r#"3 plain {"k": [1, 2.5]} <undefined>"#),
        ),
        (
            r#"x := $"{{y | some y in input.xs}} {set()} {[true, null]}""#,
            json!(r#"{"a", "b"} set() [true, null]"#),
        ),
        (
            r#"x := $"\{literal} {$"nested {input.n + 1}"}""#,
            json!("{literal} nested 4"),
        ),
        ("x := $`multi\n{input.s}`", json!("multi\nplain")),
    ];
    for (query, want) in cases {
        for path in [PathKind::Wasm, PathKind::Native] {
            let mut req = DecisionRequest::query(query, Some(&input));
            req.force_path = Some(path);
            let d = s.decide(&req).unwrap();
            let rows = json(d.result.as_deref().unwrap());
            assert_eq!(rows[0]["bindings"]["x"], want, "{path}: {query}");
        }
    }
    // An expression with several values is an error, not a guess.
    let mut req = DecisionRequest::query(r#"x := $"{input.xs[_]}""#, Some(&input));
    req.force_path = Some(PathKind::Wasm);
    let err = s.decide(&req).unwrap_err();
    assert!(err.to_string().contains("must produce one"), "{err}");
}

#[test]
fn a_fallback_gets_only_what_is_left_of_the_request_budget() {
    // The component's deadline, then the native fallback, all within one budget: the
    // native path's own (long) limit never applies past the request's.
    let mut config = Config::default();
    config.limits.eval_timeout_ms = 50;
    config.limits.native_timeout_ms = 20_000;
    config.limits.request_timeout_ms = 300;
    let s = service(build(&fixture("hostile"), "h1"), &config);
    for path in [None, Some(PathKind::Native)] {
        let mut req = DecisionRequest::new("hostile/spin", None);
        req.force_path = path;
        let t = std::time::Instant::now();
        let e = s.decide(&req).unwrap_err();
        let took = t.elapsed();
        assert!(
            took < std::time::Duration::from_millis(1500),
            "{path:?}: {took:?} for a 300 ms budget"
        );
        assert!(
            matches!(
                e,
                EvalError::Policy(PolicyError::LimitExceeded(_)) | EvalError::Deadline { .. }
            ),
            "{path:?}: a time limit is a limit error: {e:?}"
        );
    }
}

/// A prepared input (as a front door passes a body it remembered) decides as its value does,
/// shares its cache entries, and the memo is offered only while decisions are cached.
#[test]
fn prepared_inputs_decide_as_their_values_and_share_the_cache() {
    let s = failures(&Config::default());
    let a = json!({"user": {"id": "alice", "role": "x"}, "n": 7});
    let prepared = PreparedInput::of(Some(&a));
    assert_eq!(prepared.user_key(), "alice");
    let first = s
        .decide(&DecisionRequest::new("failures/cached", None).with_prepared(&prepared))
        .unwrap();
    assert!(!first.cache_hit);
    assert!(
        first.result.as_deref().unwrap().contains("\"seen\":7"),
        "{first:?}"
    );
    let by_value = s
        .decide(&DecisionRequest::new("failures/cached", Some(&a)))
        .unwrap();
    assert!(
        by_value.cache_hit,
        "the value's decision is the prepared one's entry"
    );
    assert_eq!(first.result, by_value.result);

    // The memo is there while decisions are cached, and goes with the cache rollout.
    let memo = s.input_memo().expect("a memo while decisions are cached");
    memo.put(
        Door::V1Data,
        "p",
        b"{}",
        std::sync::Arc::new(PreparedInput::of(None)),
    );
    assert!(!memo.is_empty());
    s.flags().set_percentage(DECISION_CACHE, 0).unwrap();
    assert!(
        s.input_memo().is_none(),
        "nothing is cached: the memo would only cost"
    );
    s.flags().set_percentage(DECISION_CACHE, 100).unwrap();
    let memo = s.input_memo().expect("a memo again");
    assert!(memo.is_empty(), "emptied while it was off");
    // Only users in the cache rollout have their bodies remembered.
    let out_of = (0..100)
        .map(|i| format!("user-{i}"))
        .find(|u| sark::flags::bucket(DECISION_CACHE, u) >= 50)
        .unwrap();
    let into = (0..100)
        .map(|i| format!("user-{i}"))
        .find(|u| sark::flags::bucket(DECISION_CACHE, u) < 50)
        .unwrap();
    s.flags().set_percentage(DECISION_CACHE, 50).unwrap();
    let parsed = |user: &str| {
        let value = json!({"user": user});
        move |_: &[u8]| Ok::<_, ()>(Some(value))
    };
    let (value, _) = s
        .prepare_body(Door::V1Data, "p", b"out", parsed(&out_of))
        .unwrap();
    assert_eq!(value, Some(json!({"user": out_of})), "parsed");
    let (_, inside) = s
        .prepare_body(Door::V1Data, "p", b"in", parsed(&into))
        .unwrap();
    assert_eq!(inside.user_key(), into);
    let memo = s.input_memo().unwrap();
    assert!(
        memo.get(Door::V1Data, "p", b"out").is_none(),
        "{out_of} is not cached"
    );
    // A remembered body is not parsed again, and a parse error is returned as is.
    let unparsed = |_: &[u8]| -> Result<Option<serde_json::Value>, ()> { panic!("parsed again") };
    let (value, again) = s.prepare_body(Door::V1Data, "p", b"in", unparsed).unwrap();
    assert!(
        value.is_none() && std::sync::Arc::ptr_eq(&again, &inside),
        "{into} is remembered"
    );
    let refused = s.prepare_body(Door::V1Data, "p", b"bad", |_| {
        Err::<Option<serde_json::Value>, _>("bad")
    });
    assert_eq!(refused.unwrap_err(), "bad");
    assert!(memo.get(Door::V1Data, "p", b"bad").is_none());
    // (With the decision log on there is no memo either: `decision_log_masks_nested_fields`
    // in tests/server.rs has a repeated body logged with its input.)
}
