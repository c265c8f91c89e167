//! End-to-end tests of the `sark` binary on the real component.

mod common;

use common::*;

#[test]
fn gateway_decisions_allow_and_deny() {
    let bundle = example_bundle().to_str().unwrap();
    let allow = json(&ok(&[
        "eval",
        bundle,
        "-e",
        "mcp/gateway/decision",
        "-i",
        root()
            .join("policies/samples/developer-create-issue.json")
            .to_str()
            .unwrap(),
    ]));
    assert_eq!(allow["result"]["allow"], true);
    assert_eq!(allow["result"]["cache_ttl"], 180);
    assert_eq!(
        allow["result"]["filtered_parameters"],
        serde_json::json!({"title": "Login fails"})
    );

    let deny = json(&ok(&[
        "eval",
        bundle,
        "-e",
        "data.mcp.gateway.decision",
        "-i",
        root()
            .join("policies/samples/viewer-write-denied.json")
            .to_str()
            .unwrap(),
    ]));
    assert_eq!(deny["result"]["allow"], false);
    assert_eq!(
        deny["result"]["reasons"],
        serde_json::json!(["role viewer may not perform write operations"])
    );
}

#[test]
fn undefined_is_not_false() {
    let dir = scratch("undefined");
    let bundle = dir.join("basic.wasm");
    build(&fixture("basic"), &bundle, &[]);
    let input = dir.join("input.json");
    std::fs::write(&input, r#"{"a": 2}"#).unwrap();
    let b = bundle.to_str().unwrap();
    let i = input.to_str().unwrap();
    for path in ["wasm", "native"] {
        // `maybe` has no value for this input: no `result` key at all.
        assert_eq!(
            json(&ok(&[
                "eval",
                b,
                "-e",
                "basic/maybe",
                "-i",
                i,
                "--path",
                path
            ])),
            serde_json::json!({})
        );
        // `flag` has a default: false is a value.
        assert_eq!(
            json(&ok(&[
                "eval",
                b,
                "-e",
                "basic/flag",
                "-i",
                i,
                "--path",
                path
            ])),
            serde_json::json!({"result": false})
        );
    }
}

#[test]
fn malformed_input_is_a_clear_error() {
    let dir = scratch("malformed");
    let input = dir.join("bad.json");
    std::fs::write(&input, r#"{"user": "#).unwrap();
    let bundle = example_bundle().to_str().unwrap();
    for path in ["wasm", "native"] {
        let err = fails(&[
            "eval",
            bundle,
            "-e",
            "mcp/gateway/allow",
            "-i",
            input.to_str().unwrap(),
            "--path",
            path,
        ]);
        assert!(err.contains("invalid input"), "{path}: {err}");
    }
}

#[test]
fn unknown_entrypoint_is_a_typed_error() {
    let bundle = example_bundle().to_str().unwrap();
    let input = root().join("policies/samples/developer-create-issue.json");
    for path in ["wasm", "native"] {
        let err = fails(&[
            "eval",
            bundle,
            "-e",
            "mcp/gateway/no_such_rule",
            "-i",
            input.to_str().unwrap(),
            "--path",
            path,
        ]);
        assert!(
            err.contains("unknown entrypoint `data.mcp.gateway.no_such_rule`"),
            "{path}: {err}"
        );
    }
}

#[test]
fn evaluation_errors_are_reported_not_trapped() {
    let dir = scratch("conflict");
    let bundle = dir.join("basic.wasm");
    build(&fixture("basic"), &bundle, &[]);
    let input = dir.join("input.json");
    std::fs::write(&input, r#"{"c": true}"#).unwrap();
    let err = fails(&[
        "eval",
        bundle.to_str().unwrap(),
        "-e",
        "basic/conflict",
        "-i",
        input.to_str().unwrap(),
    ]);
    assert!(
        err.contains("evaluation error") && err.contains("conflict"),
        "{err}"
    );
    assert!(!err.contains("trapped"), "{err}");
}

#[test]
fn syntax_error_is_reported_with_file_row_col() {
    let dir = scratch("syntax");
    let err = fails(&[
        "build",
        fixture("broken_syntax").to_str().unwrap(),
        "-o",
        dir.join("b.wasm").to_str().unwrap(),
    ]);
    assert!(err.contains("broken.rego:5:1"), "{err}");
    assert!(
        !dir.join("b.wasm").exists(),
        "no bundle is written on error"
    );
}

#[test]
fn truncated_and_tampered_bundles_are_refused() {
    let dir = scratch("tamper");
    let bytes = std::fs::read(example_bundle()).unwrap();
    let input = root().join("policies/samples/developer-create-issue.json");
    let input = input.to_str().unwrap();

    let truncated = dir.join("truncated.wasm");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&[
        "eval",
        truncated.to_str().unwrap(),
        "-e",
        "mcp/gateway/allow",
        "-i",
        input,
    ]);
    assert!(err.contains("not a valid bundle"), "{err}");

    // Flip one byte inside the component (in the snapshotted data, past the headers).
    let mut tampered = bytes.clone();
    let at = bytes.len() / 3;
    tampered[at] ^= 0x55;
    let path = dir.join("tampered.wasm");
    std::fs::write(&path, &tampered).unwrap();
    let err = fails(&[
        "eval",
        path.to_str().unwrap(),
        "-e",
        "mcp/gateway/allow",
        "-i",
        input,
    ]);
    assert!(
        err.contains("integrity check failed") || err.contains("not a valid bundle"),
        "{err}"
    );

    // Change the payload (policy source) without updating the manifest.
    let needle = b"max_delegation_depth";
    let pos = bytes
        .windows(needle.len())
        .rposition(|w| w == needle)
        .expect("payload contains the data");
    let mut edited = bytes.clone();
    edited[pos] = b'X';
    let path = dir.join("edited.wasm");
    std::fs::write(&path, &edited).unwrap();
    let err = fails(&["inspect", path.to_str().unwrap()]);
    assert!(err.contains("integrity check failed"), "{err}");

    let not_wasm = dir.join("text.wasm");
    std::fs::write(&not_wasm, "package x").unwrap();
    let err = fails(&["inspect", not_wasm.to_str().unwrap()]);
    assert!(err.contains("not a valid bundle"), "{err}");
}

#[test]
fn a_missing_bundle_is_named_once() {
    let dir = scratch("missing");
    let bundle = dir.join("absent.wasm");
    let err = fails(&["inspect", bundle.to_str().unwrap()]);
    assert_missing_named_once(&err, "cannot read bundle", "absent.wasm");
}

/// `err` says `what` about `file`, and gives the OS error (not found) exactly once.
fn assert_missing_named_once(err: &str, what: &str, file: &str) {
    assert!(err.contains(what) && err.contains(file), "{err}");
    assert_eq!(
        err.matches("os error 2").count(),
        1,
        "cause repeated: {err}"
    );
}

#[test]
fn builds_are_reproducible() {
    let dir = scratch("repro");
    let a = dir.join("a.wasm");
    let b = dir.join("b.wasm");
    build(&root().join("policies"), &a, &[]);
    build(&root().join("policies"), &b, &[]);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "two builds differ"
    );
    // A different revision changes the bytes.
    let c = dir.join("c.wasm");
    build(&root().join("policies"), &c, &["--revision", "other"]);
    assert!(std::fs::read(&a).unwrap() != std::fs::read(&c).unwrap());
}

#[test]
fn opa_tar_gz_bundle_builds_with_the_same_content() {
    let dir = scratch("targz");
    let tgz = dir.join("bundle.tar.gz");
    let status = std::process::Command::new("tar")
        .args([
            "-czf",
            tgz.to_str().unwrap(),
            "-C",
            root().join("policies").to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let from_tar = dir.join("tar.wasm");
    build(&tgz, &from_tar, &[]);
    let a = json(&ok(&[
        "inspect",
        from_tar.to_str().unwrap(),
        "--format",
        "json",
    ]));
    let b = json(&ok(&[
        "inspect",
        example_bundle().to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(a["content_hash"], b["content_hash"]);
    assert_eq!(a["entrypoints"], b["entrypoints"]);
    assert_eq!(a["revision"], "mcp-policies-1.0.0");
}

#[test]
fn inspect_reads_the_manifest_without_running() {
    let m = json(&ok(&[
        "inspect",
        example_bundle().to_str().unwrap(),
        "--format",
        "json",
    ]));
    assert_eq!(m["revision"], "mcp-policies-1.0.0");
    assert_eq!(m["roots"], serde_json::json!(["mcp", "authzen"]));
    assert_eq!(m["regorus_version"], "0.14.1");
    assert_eq!(m["content_hash"].as_str().unwrap().len(), 64);
    // Entrypoints come from the METADATA annotations.
    assert_eq!(
        m["entrypoints"],
        serde_json::json!([
            "data.authzen.cert.decision",
            "data.authzen.cert.candidates",
            "data.authzen.mcp.decision",
            "data.authzen.mcp.candidates",
            "data.authzen.todo.decision",
            "data.authzen.todo.candidates",
            "data.mcp.a2a.allow",
            "data.mcp.a2a.decision",
            "data.mcp.gateway.allow",
            "data.mcp.gateway.decision"
        ])
    );
    let modules: Vec<&str> = m["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert!(
        modules.contains(&"mcp/gateway/gateway_test.rego"),
        "tests are embedded: {modules:?}"
    );
}

#[test]
fn component_imports_only_wasi_0_2() {
    // Hosts (jco, wasmtime-py) must be able to satisfy every import; a new one fails here.
    let m = json(&ok(&[
        "inspect",
        example_bundle().to_str().unwrap(),
        "--format",
        "json",
    ]));
    let mut imports: Vec<String> = m["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().split('@').next().unwrap().to_string())
        .collect();
    imports.sort();
    let expected = [
        "sark:policy/types",
        "wasi:cli/environment",
        "wasi:cli/exit",
        "wasi:cli/stderr",
        "wasi:cli/stdin",
        "wasi:cli/stdout",
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stderr",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:clocks/monotonic-clock",
        "wasi:clocks/wall-clock",
        "wasi:io/error",
        "wasi:io/poll",
        "wasi:io/streams",
        "wasi:random/insecure-seed",
        "wasi:random/random",
    ];
    assert_eq!(imports, expected);
}

#[test]
fn rego_unit_tests_pass_and_fail() {
    let out = ok(&["test", root().join("policies").to_str().unwrap(), "-v"]);
    assert!(
        out.contains("data.mcp.gateway_test.test_parameters_are_filtered: PASS"),
        "{out}"
    );
    assert!(out.contains("PASS: 96/96"), "{out}");

    // Against the exact artifact too, on both paths.
    for path in ["wasm", "native"] {
        let out = ok(&["test", example_bundle().to_str().unwrap(), "--path", path]);
        assert!(out.contains("PASS: 96/96"), "{out}");
    }

    let failing = run(&["test", fixture("failing_test").to_str().unwrap()]);
    assert_eq!(failing.status.code(), Some(1));
    let out = String::from_utf8_lossy(&failing.stdout);
    assert!(
        out.contains("data.demo_test.test_guest_allowed: FAIL"),
        "{out}"
    );
    assert!(out.contains("FAIL: 1/2"), "{out}");

    let filtered = ok(&[
        "test",
        fixture("failing_test").to_str().unwrap(),
        "--run",
        "admin",
        "-v",
    ]);
    assert!(filtered.contains("PASS: 1/1"), "{filtered}");
}

#[test]
fn wasm_and_native_paths_agree_on_every_sample() {
    let bundle = example_bundle().to_str().unwrap();
    for (input, ep) in samples() {
        for entrypoint in [ep, &ep.replace("decision", "allow")] {
            let i = input.to_str().unwrap();
            let wasm = ok(&["eval", bundle, "-e", entrypoint, "-i", i, "--path", "wasm"]);
            let native = ok(&[
                "eval", bundle, "-e", entrypoint, "-i", i, "--path", "native",
            ]);
            assert_eq!(
                json(&wasm),
                json(&native),
                "{entrypoint} on {}",
                input.display()
            );
        }
    }
}

#[test]
fn ad_hoc_query() {
    let bundle = example_bundle().to_str().unwrap();
    let input = root().join("policies/samples/developer-create-issue.json");
    let out = json(&ok(&[
        "eval",
        bundle,
        "--query",
        "x := data.mcp.gateway.allow; y := input.user.role",
        "-i",
        input.to_str().unwrap(),
    ]));
    assert_eq!(out["result"][0]["bindings"]["x"], true);
    assert_eq!(out["result"][0]["bindings"]["y"], "developer");
}

#[test]
fn stdin_input() {
    let bundle = example_bundle().to_str().unwrap();
    let mut child = sark()
        .args(["eval", bundle, "-e", "mcp/a2a/allow", "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"source_agent": {"id": "scraper"}, "target_agent": {"id": "coder"}, "action": "query"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        json(&String::from_utf8_lossy(&out.stdout)),
        serde_json::json!({"result": false})
    );
}

#[test]
fn compiled_code_cache_is_reused() {
    let cache = scratch("codecache");
    let bundle = example_bundle().to_str().unwrap();
    let input = root().join("policies/samples/developer-create-issue.json");
    let eval = |bundle: &str| {
        sark()
            .env("SARK_CACHE_DIR", &cache)
            .env("SARK_LOG", "sark=debug")
            .args([
                "eval",
                bundle,
                "-e",
                "mcp/gateway/allow",
                "-i",
                input.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let first = eval(bundle);
    assert!(first.status.success());
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(log.contains("compiled the evaluator component"), "{log}");
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(entries.len(), 1, "one compiled artifact is cached");

    let second = eval(bundle);
    let log = String::from_utf8_lossy(&second.stderr);
    assert!(
        log.contains("loaded the compiled evaluator component from the cache"),
        "{log}"
    );
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        r#"{"result":true}"#
    );

    // An edited policy is a new bundle on the same evaluator: nothing is compiled again.
    let dir = scratch("codecache-edited");
    let src = dir.join("src");
    copy_dir(&root().join("policies"), &src);
    let rego = src.join("mcp/a2a/a2a.rego");
    let mut text = std::fs::read_to_string(&rego).unwrap();
    text.push_str("\n# an edit\n");
    std::fs::write(&rego, text).unwrap();
    let edited = dir.join("edited.wasm");
    build(&src, &edited, &[]);
    let third = eval(edited.to_str().unwrap());
    let log = String::from_utf8_lossy(&third.stderr);
    assert!(third.status.success(), "{log}");
    assert!(
        log.contains("loaded the compiled evaluator component from the cache")
            && !log.contains("compiled the evaluator component"),
        "{log}"
    );
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    let inspect = sark()
        .env("SARK_CACHE_DIR", &cache)
        .args(["inspect", edited.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    let v = json(&String::from_utf8_lossy(&inspect.stdout));
    assert_eq!(v["compiled_code"]["shared"], true, "{v}");
    assert!(
        v["compiled_code"]["cached_bytes"].as_u64().unwrap() > 1_000_000,
        "{v}"
    );

    // A corrupt cache entry is recompiled, not trusted.
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&entry, b"garbage").unwrap();
    let fourth = eval(bundle);
    assert!(
        fourth.status.success(),
        "{}",
        String::from_utf8_lossy(&fourth.stderr)
    );
    assert!(String::from_utf8_lossy(&fourth.stderr).contains("compiled the evaluator component"));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn hostile_policies_hit_typed_limits_on_the_wasm_path() {
    let dir = scratch("hostile");
    let bundle = dir.join("hostile.wasm");
    build(&fixture("hostile"), &bundle, &["-e", "hostile/fine"]);
    let b = bundle.to_str().unwrap();
    // `--path wasm`: these policies would run unbounded on the native path (a fallback).
    let err = fails(&["eval", b, "-e", "hostile/hungry", "--path", "wasm"]);
    assert!(err.contains("memory cap of 64 MiB"), "{err}");
    let config = dir.join("sark.yaml");
    std::fs::write(&config, "limits: { eval_timeout_ms: 50 }\n").unwrap();
    let err = fails(&[
        "eval",
        b,
        "-e",
        "hostile/spin",
        "--path",
        "wasm",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(err.contains("deadline of 50 ms"), "{err}");
    let err = fails(&["eval", b, "-e", "hostile/huge_range", "--path", "wasm"]);
    assert!(err.contains("trapped") && err.contains("panicked"), "{err}");
    // Routed as usual (wasm with fallback), the panic is final: a billion-number range is
    // never retried natively, where it would first try to allocate gigabytes.
    let err = fails(&["eval", b, "-e", "hostile/huge_range"]);
    assert!(err.contains("trapped") && err.contains("panicked"), "{err}");
    // Unbounded allocation likewise ends at the memory cap without a native retry.
    let err = fails(&["eval", b, "-e", "hostile/hungry"]);
    assert!(err.contains("memory cap of 64 MiB"), "{err}");
    assert_eq!(
        json(&ok(&["eval", b, "-e", "hostile/fine"])),
        serde_json::json!({"result": true})
    );
}

#[test]
fn config_errors_name_the_key() {
    let dir = scratch("config");
    let config = dir.join("sark.yaml");
    std::fs::write(&config, "limits: { eval_timeout: 5 }\n").unwrap();
    let eval_with = |config: &std::path::Path| {
        fails(&[
            "eval",
            example_bundle().to_str().unwrap(),
            "-e",
            "mcp/gateway/allow",
            "--config",
            config.to_str().unwrap(),
        ])
    };
    let err = eval_with(&config);
    assert!(err.contains("eval_timeout"), "{err}");

    let err = eval_with(&dir.join("absent.yaml"));
    assert_missing_named_once(&err, "cannot read config", "absent.yaml");
}

#[test]
fn health_check_uses_the_embedded_example_policies() {
    let out = ok(&["health-check"]);
    assert!(out.contains("wasm: OK (10 entrypoints)"), "{out}");
    assert!(out.contains("native: OK (10 entrypoints)"), "{out}");
    let out = ok(&[
        "health-check",
        "--bundle",
        example_bundle().to_str().unwrap(),
    ]);
    assert!(out.contains("wasm: OK"), "{out}");
}

#[test]
fn bench_reports_both_paths_as_json() {
    let input = root().join("policies/samples/developer-create-issue.json");
    let report = json(&ok(&[
        "bench",
        example_bundle().to_str().unwrap(),
        "-e",
        "mcp/gateway/decision",
        "-i",
        input.to_str().unwrap(),
        "--duration",
        "0.2",
        "--format",
        "json",
    ]));
    for path in ["wasm", "native"] {
        let p = &report["paths"][path];
        for key in ["median_us", "p95_us", "p99_us", "mean_us", "evals_per_sec"] {
            assert!(p[key].as_f64().unwrap() > 0.0, "{path}.{key}: {report}");
        }
        assert!(p["p99_us"].as_f64() >= p["median_us"].as_f64());
    }
    assert!(report["instantiate_median_us"].as_f64().unwrap() > 0.0);
    // As `sark serve` once settled, the wasm path ran on the bundle's own snapshot.
    assert_eq!(report["wasm_instances"], "snapshot", "{report}");
    // What one pooled instance and one engine clone hold: an instance has its linear
    // memory (the example policies take megabytes), a clone shares the loaded program.
    let wasm = &report["footprint"]["wasm"];
    assert_eq!(wasm["instances"], 8, "{report}");
    assert!(wasm["bytes"].as_u64().unwrap() > 1 << 20, "{report}");
    let native = &report["footprint"]["native"];
    assert_eq!(native["instances"], 8, "{report}");
    // The heap figure is glibc's; under another allocator it is null.
    if let Some(heap) = native["bytes"].as_u64() {
        assert!(heap < wasm["bytes"].as_u64().unwrap(), "{report}");
    }
}

#[test]
fn build_refuses_paths_escaping_the_directory() {
    let dir = scratch("escape");
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("ok.rego"), "package ok\nx := 1\n").unwrap();
    let outside = dir.join("outside.rego");
    std::fs::write(&outside, "package evil\nx := 1\n").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, policies.join("link.rego")).unwrap();
    let err = fails(&[
        "build",
        policies.to_str().unwrap(),
        "-o",
        dir.join("o.wasm").to_str().unwrap(),
    ]);
    assert!(err.contains("points outside the policy directory"), "{err}");
}

#[test]
fn builtins_beyond_regorus_agree_on_both_paths() {
    let out = scratch("builtins").join("builtins.wasm");
    build(&fixture("builtins"), &out, &[]);
    let input = fixture("builtins").join("input.json");
    let mut answers = Vec::new();
    for path in ["wasm", "native"] {
        let v = json(&ok(&[
            "eval",
            out.to_str().unwrap(),
            "-e",
            "builtins/result",
            "-i",
            input.to_str().unwrap(),
            "--path",
            path,
        ]));
        let r = &v["result"];
        assert_eq!(r["hs_valid"], true, "{path}: {r}");
        assert_eq!(r["rs_valid"], true, "{path}: {r}");
        assert_eq!(r["tampered"], false, "{path}: {r}");
        assert_eq!(r["expired"], false, "{path}: {r}");
        assert_eq!(r["rs_with_wrong_key"], false, "{path}: {r}");
        assert_eq!(r["subject"], "alice", "{path}: {r}");
        assert_eq!(r["output_argument_form"], "HS256", "{path}: {r}");
        assert_eq!(
            r["cidrs"],
            serde_json::json!(["10.0.0.0/24", "192.168.1.7/32"]),
            "{path}"
        );
        // HMAC-SHA256("msg", key "key"), as Python's hmac module computes it.
        assert_eq!(
            r["hmac"],
            "2d93cbc1be167bcb1637a4a23cbff01a7878f0c50ee833954ea5221bb1b8c628"
        );
        assert_eq!(r["graphql_valid"], true, "{path}: {r}");
        assert_eq!(r["graphql_invalid"], false, "{path}: {r}");
        // Go's strings.Count: an empty needle counts characters plus one (Regorus panics).
        assert_eq!(r["count_empty"], 4, "{path}: {r}");
        answers.push(v);
    }
    assert_eq!(answers[0], answers[1]);
}

#[test]
fn rego_test_coverage_and_run_pattern() {
    let out = ok(&["test", fixture("coverage").to_str().unwrap(), "--coverage"]);
    assert!(out.contains("policy.rego: 2/3 lines covered"), "{out}");
    assert!(out.contains("not covered: 8"), "{out}");
    assert!(out.contains("PASS: 1/1"), "{out}");

    // --run is a regular expression over `package.rule`, as in `opa test`.
    let out = ok(&[
        "test",
        root().join("policies").to_str().unwrap(),
        "--run",
        "a2a_test\\.test_.*",
    ]);
    assert!(out.contains("PASS: 13/13"), "{out}");
    let err = fails(&["test", fixture("coverage").to_str().unwrap(), "--run", "("]);
    assert!(err.contains("invalid --run pattern"), "{err}");
}

#[test]
fn recursive_functions_are_refused_at_build() {
    let out = scratch("recursive").join("recursive.wasm");
    let err = fails(&[
        "build",
        fixture("recursive").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("recursive.rego:5:1"), "{err}");
    assert!(
        err.contains("rego_recursion_error")
            && err.contains("data.recursive.depth -> data.recursive.depth"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn signed_bundles_are_verified() {
    use sark::bundle::SIGNATURE_SECTION;
    use sark::bundle::{Bundle, append_custom_section};

    let dir = scratch("signing");
    for f in ["key", "key.pub", "other", "other.pub"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let key = dir.join("key");
    let other = dir.join("other");
    ok(&["keygen", "-o", key.to_str().unwrap()]);
    ok(&["keygen", "-o", other.to_str().unwrap()]);
    // The private key is private; a second keygen never overwrites it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let err = fails(&["keygen", "-o", key.to_str().unwrap()]);
    assert!(err.contains("exists"), "{err}");

    let signed = dir.join("signed.wasm");
    let unsigned = dir.join("unsigned.wasm");
    build(
        &fixture("basic"),
        &signed,
        &["--signing-key", key.to_str().unwrap()],
    );
    build(
        &fixture("basic"),
        &unsigned,
        &["--revision", "other-content"],
    );
    let public = dir.join("key.pub");
    let eval = |bundle: &std::path::Path, key: &std::path::Path| {
        run(&[
            "eval",
            bundle.to_str().unwrap(),
            "-e",
            "basic/flag",
            "--verification-key",
            key.to_str().unwrap(),
        ])
    };
    assert!(eval(&signed, &public).status.success());
    let err = String::from_utf8(eval(&unsigned, &public).stderr).unwrap();
    assert!(err.contains("not signed"), "{err}");
    let err = String::from_utf8(eval(&signed, &dir.join("other.pub")).stderr).unwrap();
    assert!(err.contains("signed by key"), "{err}");

    // Content changed after signing: another bundle (consistent digests) carrying the
    // signature of the first.
    let a = Bundle::read(&signed).unwrap();
    let b = Bundle::read(&unsigned).unwrap();
    let mut forged = b.bytes().to_vec();
    let sig = serde_json::to_vec(a.signature().unwrap()).unwrap();
    append_custom_section(&mut forged, SIGNATURE_SECTION, &sig);
    let forged_path = dir.join("forged.wasm");
    std::fs::write(&forged_path, forged).unwrap();
    let err = String::from_utf8(eval(&forged_path, &public).stderr).unwrap();
    assert!(err.contains("changed after it was signed"), "{err}");
    let out = ok(&["inspect", signed.to_str().unwrap()]);
    assert!(out.contains("signature:       ed25519 key"), "{out}");
}

#[test]
fn deeply_nested_sources_are_refused_before_parsing() {
    // Found by fuzzing the loader: Regorus's parse time doubles per nesting level.
    let out = scratch("deep").join("deep.wasm");
    let started = std::time::Instant::now();
    let err = fails(&[
        "build",
        fixture("deep_nesting").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("deep.rego:4:"), "{err}");
    assert!(err.contains("nest deeper than 20 levels"), "{err}");
    // Refused up front (the build still compiles the evaluator once, hence the margin).
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn rego_v0_sources_need_the_flag_or_the_manifest() {
    let dir = scratch("rego-v0-cli");
    std::fs::write(
        dir.join("p.rego"),
        "package p\n\ndefault allow = false\n\nallow {\n    input.user == \"alice\"\n}\n\ntest_alice {\n    allow with input as {\"user\": \"alice\"}\n}\n",
    )
    .unwrap();
    let out = dir.join("p.wasm");
    let (d, o) = (dir.to_str().unwrap(), out.to_str().unwrap());
    // As v1 (OPA 1.x's default), the v0 body is refused with its location.
    let err = fails(&["build", d, "-o", o, "-e", "p/allow"]);
    assert!(err.contains("p.rego:5:7"), "{err}");
    ok(&["build", d, "-o", o, "-e", "p/allow", "--v0-compatible"]);
    let inspected = ok(&["inspect", o]);
    assert!(
        inspected.contains("p.rego (") && inspected.contains("B, Rego v0)"),
        "{inspected}"
    );
    assert_eq!(
        ok(&["eval", o, "-e", "p/allow"]).trim(),
        r#"{"result":false}"#
    );
    // `sark test` and `sark eval` take the flag for a directory too.
    let tested = ok(&["test", d, "--v0-compatible", "-v"]);
    assert!(tested.contains("data.p.test_alice: PASS"), "{tested}");
    fails(&["test", d]);
    let rows = ok(&["eval", d, "--v0-compatible", "--query", "x = data.p.allow"]);
    assert!(rows.contains("\"x\":false"), "{rows}");
    // A query on a v1 bundle cannot be parsed as v0 after the fact.
    let v1 = scratch("rego-v1-cli");
    std::fs::write(v1.join("q.rego"), "package q\nx := 1\n").unwrap();
    let v1_out = v1.join("q.wasm");
    build(&v1, &v1_out, &[]);
    let err = fails(&[
        "eval",
        v1_out.to_str().unwrap(),
        "--v0-compatible",
        "--query",
        "y = data.q.x",
    ]);
    assert!(err.contains("Rego version, v1"), "{err}");
    // The manifest decides over the flag; a bad version is refused with its place.
    std::fs::write(dir.join(".manifest"), r#"{"rego_version": 1}"#).unwrap();
    let err = fails(&["build", d, "-o", o, "--v0-compatible"]);
    assert!(err.contains("p.rego:5:7"), "{err}");
    std::fs::write(
        dir.join(".manifest"),
        r#"{"file_rego_versions": {"*.rego": 3}}"#,
    )
    .unwrap();
    let err = fails(&["build", d, "-o", o]);
    assert!(
        err.contains(".manifest: file_rego_versions[\"*.rego\"]: unsupported Rego version 3 (expected 0 or 1)"),
        "{err}"
    );
}

#[test]
fn a_trap_while_warming_up_only_warns() {
    // OPA builds this; evaluating `n` needs a billion-element range, more than a build may
    // spend. The build warns, keeps the bundle, and `small` decides.
    let dir = scratch("warm-up-trap");
    std::fs::write(
        dir.join("p.rego"),
        "package huge\n\n# METADATA\n# entrypoint: true\nn := count([x | some x in numbers.range(1, 1000000000); x % 7 == 0])\n\n# METADATA\n# entrypoint: true\nsmall := 1\n",
    )
    .unwrap();
    let out = dir.join("p.wasm");
    let built = run(&["build", dir.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "{log}");
    assert!(
        log.contains("warning: warming up the entrypoints stopped ("),
        "{log}"
    );
    assert!(!log.contains("wasm backtrace"), "{log}");
    let small = ok(&["eval", out.to_str().unwrap(), "-e", "huge/small"]);
    assert_eq!(small.trim(), r#"{"result":1}"#);
    // A real compile error still fails the build, located.
    std::fs::write(dir.join("p.rego"), "package huge\n\nsmall := \n").unwrap();
    let err = fails(&["build", dir.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(
        err.contains("p.rego:4:1") || err.contains("p.rego:3:"),
        "{err}"
    );
    // So does a builtin called with the wrong number of arguments, even in a branch no
    // warm-up reaches.
    std::fs::write(
        dir.join("p.rego"),
        "package huge\n\nsmall := 1\n\nrare if {\n  input.never\n  count(input.a, input.b, input.c)\n}\n",
    )
    .unwrap();
    let err = fails(&["build", dir.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(
        err.contains("p.rego:7:3") && err.contains("rego_type_error: count: arity mismatch"),
        "{err}"
    );
}
