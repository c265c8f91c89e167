//! The same bundle in every host: `sark eval` (both paths), Node.js (jco), Python
//! (wasmtime-py) and a plain Rust wasmtime embedding give identical decisions and the same
//! WIT error cases for a fixed set of inputs (`examples/vectors.json`).

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn vectors() -> (PathBuf, Vec<Value>) {
    let path = root().join("examples/vectors.json");
    let v: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, v)
}

/// Runs a host program and parses its one-JSON-line-per-vector output.
fn host_lines(mut cmd: Command, what: &str) -> Vec<Value> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: bad line {l}: {e}")))
        .collect()
}

/// `sark eval` on one path, in the hosts' line format.
fn sark_lines(path: &str) -> Vec<Value> {
    let (_, vectors) = vectors();
    let dir = scratch(&format!("portability-{path}"));
    vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let input = dir.join(format!("{i}.json"));
            let text = match v.get("raw_input") {
                Some(raw) => raw.as_str().unwrap().to_string(),
                None => v["input"].to_string(),
            };
            std::fs::write(&input, text).unwrap();
            let out = run(&[
                "eval",
                example_bundle().to_str().unwrap(),
                "-e",
                v["entrypoint"].as_str().unwrap(),
                "-i",
                input.to_str().unwrap(),
                "--path",
                path,
            ]);
            if out.status.success() {
                json(&String::from_utf8_lossy(&out.stdout))
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                let tag = [
                    ("unknown entrypoint", "unknown-entrypoint"),
                    ("invalid input", "invalid-input"),
                    ("evaluation error", "evaluation"),
                    ("limit exceeded", "limit-exceeded"),
                ]
                .iter()
                .find(|(needle, _)| err.contains(needle))
                .map(|(_, tag)| *tag)
                .unwrap_or_else(|| panic!("unexpected sark error: {err}"));
                serde_json::json!({ "error": tag })
            }
        })
        .collect()
}

fn assert_same(reference: &[Value], other: &[Value], what: &str) {
    let (_, vectors) = vectors();
    assert_eq!(other.len(), vectors.len(), "{what}: one line per vector");
    for (i, (a, b)) in reference.iter().zip(other).enumerate() {
        assert_eq!(
            a, b,
            "{what} differs on vector {i} ({})",
            vectors[i]["entrypoint"]
        );
    }
}

#[test]
fn every_host_gives_the_same_decisions_and_errors() {
    let (vectors_path, vectors) = vectors();
    let reference = sark_lines("wasm");
    // The vectors exercise decisions and each error case that must cross the boundary.
    for tag in ["unknown-entrypoint", "invalid-input", "evaluation"] {
        assert!(
            reference.iter().any(|l| l["error"] == tag),
            "no vector yields {tag}"
        );
    }
    assert!(
        reference
            .iter()
            .filter(|l| l.get("result").is_some())
            .count()
            >= 6
    );
    assert_eq!(vectors.len(), reference.len());

    assert_same(&reference, &sark_lines("native"), "sark eval --path native");

    let bundle = example_bundle().to_str().unwrap().to_string();
    let vectors_arg = vectors_path.to_str().unwrap().to_string();

    let node_dir = root().join("examples/node");
    assert!(
        node_dir.join("node_modules/.bin/jco").exists(),
        "examples/node/node_modules is missing: run `make portability-deps` (npm ci)"
    );
    let mut node = Command::new("node");
    node.arg(node_dir.join("eval.mjs"))
        .args([&bundle, &vectors_arg]);
    assert_same(
        &reference,
        &host_lines(node, "node eval.mjs"),
        "Node.js (jco)",
    );

    let mut python = Command::new("python3");
    python
        .arg(root().join("examples/python/eval.py"))
        .args([&bundle, &vectors_arg]);
    assert_same(
        &reference,
        &host_lines(python, "python3 eval.py"),
        "Python (wasmtime-py)",
    );

    // Built by `make host` into the same target directory as this test.
    let embed = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("sark-embed-example");
    assert!(
        embed.exists(),
        "{} is missing: run `make host`",
        embed.display()
    );
    let mut rust = Command::new(embed);
    rust.args([&bundle, &vectors_arg]);
    assert_same(
        &reference,
        &host_lines(rust, "sark-embed-example"),
        "Rust embedding",
    );
}
