//! The runtime library on the real component: pool, limits, traps, both paths.

mod common;

use common::*;
use sark::bundle::Bundle;
use sark::config::Limits;
use sark::native::NativePolicy;
use sark::runtime::{WasmPolicy, WasmRuntime};
use sark::{EvalError, Evaluator, PolicyError};
use std::sync::Arc;

fn bundle_of(dir: &std::path::Path, entrypoints: &[&str]) -> Bundle {
    common::bundle_of(dir, None, entrypoints)
}

fn wasm(bundle: &Bundle, limits: Limits) -> (WasmPolicy, WasmRuntime) {
    let runtime = WasmRuntime::new(limits, code_cache()).unwrap();
    let (policy, _cached) = runtime.load(bundle, 4).unwrap();
    (policy, runtime)
}

#[test]
fn pool_is_shared_across_threads_and_stays_bounded() {
    let bundle = Bundle::read(example_bundle()).unwrap();
    let (policy, _rt) = wasm(&bundle, Limits::default());
    let policy = Arc::new(policy);
    let input =
        std::fs::read_to_string(root().join("policies/samples/developer-create-issue.json"))
            .unwrap();
    let expected = policy.evaluate("mcp/gateway/decision", &input).unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let policy = policy.clone();
            let input = input.clone();
            let expected = expected.clone();
            s.spawn(move || {
                for _ in 0..50 {
                    assert_eq!(
                        policy.evaluate("mcp/gateway/decision", &input).unwrap(),
                        expected
                    );
                }
            });
        }
    });
    assert!(
        policy.idle_instances() <= 4,
        "idle pool is bounded by its size"
    );
    assert!(policy.idle_instances() >= 1);
}

#[test]
fn info_matches_the_manifest() {
    let bundle = Bundle::read(example_bundle()).unwrap();
    let (policy, _rt) = wasm(&bundle, Limits::default());
    let info = policy.info();
    let m = bundle.manifest();
    assert_eq!(info.revision, m.revision);
    assert_eq!(info.entrypoints, m.entrypoints);
    assert_eq!(info.content_hash, m.content_hash);
    assert_eq!(info.regorus_version, "0.14.1");
    let native = NativePolicy::load(&bundle, Limits::default(), 2).unwrap();
    assert_eq!(native.info(), info);
}

#[test]
fn deadline_and_memory_cap_are_typed_and_the_instance_is_replaced() {
    let bundle = bundle_of(&fixture("hostile"), &["hostile/fine"]);
    let limits = Limits {
        eval_timeout_ms: 30,
        max_memory_mb: 2048,
        ..Limits::default()
    };
    let (policy, _rt) = wasm(&bundle, limits);
    let started = std::time::Instant::now();
    let err = policy.evaluate("hostile/spin", "").unwrap_err();
    assert!(
        matches!(err, EvalError::Deadline { timeout_ms: 30 }),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "interrupted promptly"
    );
    assert!(err.is_component_failure());
    // The next evaluation gets a fresh instance and works.
    assert_eq!(
        policy.evaluate("hostile/fine", "").unwrap().as_deref(),
        Some("true")
    );

    let (capped, _rt2) = wasm(
        &bundle,
        Limits {
            eval_timeout_ms: 10_000,
            max_memory_mb: 64,
            ..Limits::default()
        },
    );
    let err = capped.evaluate("hostile/hungry", "").unwrap_err();
    assert!(matches!(err, EvalError::MemoryCap { max_mb: 64 }), "{err}");
    assert_eq!(err.kind(), "memory");
    assert_eq!(
        capped.evaluate("hostile/fine", "").unwrap().as_deref(),
        Some("true")
    );
}

#[test]
fn instances_lost_to_traps_are_replaced_off_the_request_path() {
    let bundle = bundle_of(&fixture("hostile"), &["hostile/fine"]);
    let limits = Limits {
        eval_timeout_ms: 30,
        ..Limits::default()
    };
    let (policy, _rt) = wasm(&bundle, limits);
    assert_eq!(policy.prewarm(), 3, "the pool of 4 is filled");
    assert_eq!(policy.missing_instances(), 0);
    for _ in 0..2 {
        let err = policy.evaluate("hostile/spin", "").unwrap_err();
        assert!(matches!(err, EvalError::Deadline { .. }), "{err}");
    }
    assert_eq!(policy.idle_instances(), 2);
    assert_eq!(policy.missing_instances(), 2, "two instances trapped");
    assert_eq!(policy.replenish(), 2);
    assert_eq!(policy.idle_instances(), 4);
    assert_eq!(policy.missing_instances(), 0);
    assert_eq!(policy.replenish(), 0, "nothing more to replace");
    assert_eq!(
        policy.evaluate("hostile/fine", "").unwrap().as_deref(),
        Some("true")
    );
}

#[test]
fn instances_that_grew_large_are_not_pooled() {
    let bundle = bundle_of(&fixture("grow"), &["grow/size"]);
    let limits = Limits {
        eval_timeout_ms: 10_000,
        ..Limits::default()
    };
    let (policy, _rt) = wasm(&bundle, limits);
    assert_eq!(
        policy.idle_instances(),
        1,
        "the instance that loaded the bundle"
    );
    let size = |n: u32| {
        policy
            .evaluate("grow/size", &format!(r#"{{"n": {n}}}"#))
            .unwrap()
    };
    // A small evaluation returns its instance to the pool.
    assert_eq!(size(1000).as_deref(), Some("1000"));
    assert_eq!(policy.idle_instances(), 1);
    // One that grew linear memory by more than 16 MiB succeeds, but its instance is dropped.
    assert_eq!(size(400_000).as_deref(), Some("400000"));
    assert_eq!(
        policy.idle_instances(),
        0,
        "the grown instance was not kept"
    );
    // The next evaluation starts from a fresh instance, which is pooled again.
    assert_eq!(size(10).as_deref(), Some("10"));
    assert_eq!(policy.idle_instances(), 1);
}

#[test]
fn policy_errors_are_not_component_failures() {
    let bundle = bundle_of(&fixture("basic"), &[]);
    let (policy, _rt) = wasm(&bundle, Limits::default());
    let err = policy
        .evaluate("basic/conflict", r#"{"c": true}"#)
        .unwrap_err();
    assert!(
        matches!(err, EvalError::Policy(PolicyError::Evaluation(_))),
        "{err}"
    );
    assert!(!err.is_component_failure());
    let err = policy.evaluate("basic/maybe", "{").unwrap_err();
    assert!(
        matches!(err, EvalError::Policy(PolicyError::InvalidInput(_))),
        "{err}"
    );
    let err = policy.evaluate("basic/none", "{}").unwrap_err();
    assert!(
        matches!(err, EvalError::Policy(PolicyError::UnknownEntrypoint(_))),
        "{err}"
    );
}

#[test]
fn oversized_and_deeply_nested_inputs_are_refused() {
    let bundle = bundle_of(&fixture("basic"), &[]);
    let limits = Limits {
        max_input_bytes: 1000,
        ..Limits::default()
    };
    let (policy, _rt) = wasm(&bundle, limits);
    let native = NativePolicy::load(&bundle, limits, 1).unwrap();
    let big = format!(r#"{{"a": "{}"}}"#, "x".repeat(2000));
    for ev in [&policy as &dyn Evaluator, &native] {
        let err = ev.evaluate("basic/echo", &big).unwrap_err();
        assert!(matches!(err, EvalError::InputRefused(_)), "{err}");
    }
    let (policy, _rt) = wasm(
        &bundle,
        Limits {
            max_input_bytes: 1 << 20,
            ..Limits::default()
        },
    );
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let err = policy.evaluate("basic/echo", &nested).unwrap_err();
    assert!(
        matches!(err, EvalError::Policy(PolicyError::InvalidInput(_))),
        "{err}"
    );
    // Still healthy afterwards.
    assert_eq!(
        policy
            .evaluate("basic/flag", r#"{"a": 1}"#)
            .unwrap()
            .as_deref(),
        Some("true")
    );
}

#[test]
fn a_finished_bundle_refuses_a_second_payload() {
    // The loader export survives the snapshot; it must not replace the loaded policies.
    use wasmtime::component::{Component, Linker};
    let bundle = Bundle::read(example_bundle()).unwrap();
    let engine = wasmtime::Engine::default();
    let component = Component::new(&engine, bundle.component_bytes()).unwrap();
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let mut store = wasmtime::Store::new(&engine, sark::runtime::HostState::new(1 << 30));
    let instance = linker.instantiate(&mut store, &component).unwrap();
    let loader = instance
        .get_export_index(&mut store, None, "sark:policy/loader@0.2.0")
        .unwrap();
    let load = instance
        .get_export_index(&mut store, Some(&loader), "load")
        .unwrap();
    let load = instance.get_func(&mut store, load).unwrap();
    let mut results = [wasmtime::component::Val::Bool(false)];
    load.call(
        &mut store,
        &[wasmtime::component::Val::List(vec![])],
        &mut results,
    )
    .unwrap();
    let text = format!("{:?}", results[0]);
    assert!(text.contains("already loaded"), "{text}");
}

#[test]
fn bundles_of_another_evaluator_run_on_their_own_snapshot() {
    // A bundle built by another sark (another evaluator) cannot use the carried evaluator:
    // its own snapshotted component is compiled and runs, with the same decisions.
    use sark::bundle::{MANIFEST_SECTION, append_custom_section, top_level_custom_sections};
    let bundle = Bundle::read(example_bundle()).unwrap();
    let sections = top_level_custom_sections(bundle.bytes()).unwrap();
    let at = sections
        .iter()
        .find(|s| s.name == MANIFEST_SECTION)
        .unwrap()
        .start;
    let mut manifest = bundle.manifest().clone();
    manifest.evaluator_sha256 = "0".repeat(64);
    let mut bytes = bundle.bytes()[..at].to_vec();
    append_custom_section(
        &mut bytes,
        MANIFEST_SECTION,
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let foreign = Bundle::from_bytes(bytes).unwrap();

    // Tests are not decisions: the 96 example tests in one call need more than the 100 ms
    // decision deadline when the machine is loaded (as `sark test --timeout-ms`).
    let limits = Limits {
        eval_timeout_ms: 5_000,
        ..Limits::default()
    };
    let runtime = WasmRuntime::new(limits, code_cache()).unwrap();
    let (own, _) = runtime.load(&foreign, 2).unwrap();
    // The foreign bundle's component is this bundle's snapshot, now in the code cache: a
    // runtime that uses snapshots would start this bundle from it too.
    let carried_only = WasmRuntime::new(limits, code_cache())
        .unwrap()
        .without_snapshots();
    let (carried, _) = carried_only.load(&bundle, 2).unwrap();
    assert!(!own.loads_payload() && carried.loads_payload());
    assert!(!runtime.compiled_code(&foreign).shared);
    assert!(runtime.compiled_code(&bundle).shared);
    assert_eq!(own.info(), carried.info());
    for (sample, entrypoint) in samples() {
        let input = std::fs::read_to_string(&sample).unwrap();
        assert_eq!(
            own.evaluate(entrypoint, &input).unwrap(),
            carried.evaluate(entrypoint, &input).unwrap(),
            "{}",
            sample.display()
        );
    }
    let tests = |p: &WasmPolicy| {
        p.run_tests(None)
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.passed))
            .collect::<Vec<_>>()
    };
    assert_eq!(tests(&own), tests(&carried));
}

#[test]
fn a_policy_on_the_carried_evaluator_adopts_its_snapshot_and_decides_the_same() {
    // A bundle whose snapshot is not compiled yet starts on the carried evaluator (each new
    // instance loads the payload), adopts its snapshot once compiled with the written
    // documents still applied, and a later load starts from the cached snapshot at once.
    let dir = scratch("adopt-snapshot");
    std::fs::write(
        dir.join("adopt.rego"),
        fresh_rego(
            "package adopt\nimport rego.v1\ndefault allow := false\n\
             allow if input.user in data.admins\n",
        ),
    )
    .unwrap();
    // The bundle owns `data.adopt` only: `data.admins` is written at run time.
    std::fs::write(dir.join(".manifest"), r#"{"roots": ["adopt"]}"#).unwrap();
    let bundle = bundle_of(&dir, &["adopt/allow"]);
    let runtime = WasmRuntime::new(Limits::default(), code_cache()).unwrap();
    let (mut policy, _) = runtime.load(&bundle, 2).unwrap();
    assert!(
        policy.loads_payload() && policy.snapshot_pending(),
        "payload {} pending {} shared {:?}",
        policy.loads_payload(),
        policy.snapshot_pending(),
        runtime.compiled_code(&bundle)
    );

    let data = Arc::new(sark::store::DataStore::in_memory(
        sark::config::Config::default().data_limits(),
    ));
    let put = |admins: serde_json::Value| {
        let write = data.plan_put(vec!["admins".into()], admins, false).unwrap();
        data.commit(write).unwrap();
    };
    put(serde_json::json!(["bob"]));
    policy.attach_store(data.clone());
    let decide = |p: &WasmPolicy| {
        ["ann", "bob", "carol"].map(|u| {
            p.evaluate("adopt/allow", &format!(r#"{{"user":"{u}"}}"#))
                .unwrap()
                .unwrap()
        })
    };
    let before = decide(&policy);
    assert_eq!(before, ["false", "true", "false"]);

    // Evaluations go on while the snapshot is compiled and swapped in.
    let adopting = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut n = 0;
                while adopting.load(std::sync::atomic::Ordering::Relaxed) || n < 10 {
                    assert_eq!(decide(&policy), before);
                    n += 1;
                    // Leave CPU to the compilation (one thread at nice 10).
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            });
        }
        let adopted = policy.adopt_snapshot();
        adopting.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(adopted.unwrap());
    });
    assert!(!policy.loads_payload() && !policy.snapshot_pending());
    assert_eq!(policy.idle_instances(), 2, "the snapshot's pool is filled");
    assert_eq!(decide(&policy), before);
    assert!(!policy.adopt_snapshot().unwrap(), "nothing left to adopt");
    put(serde_json::json!(["carol"]));
    assert_eq!(decide(&policy), ["false", "false", "true"]);

    let (again, cached) = runtime.load(&bundle, 2).unwrap();
    assert!(cached, "the snapshot's compiled code came from the cache");
    assert!(!again.loads_payload() && !again.snapshot_pending());
    assert_eq!(again.info(), policy.info());
}
