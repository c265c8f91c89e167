//! Helpers shared by the integration tests: the real `sark` binary, the example bundle
//! (built once per test run) and scratch directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod server;
#[allow(unused_imports)]
pub use server::*;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fixture directory under `host/tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    root().join("host/tests/fixtures").join(name)
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("sark-it")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `sark` command with a private compiled-code cache shared by the test run.
pub fn sark() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sark"));
    cmd.env(
        "SARK_CACHE_DIR",
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sark-it-cache"),
    );
    cmd.env_remove("SARK_LOG");
    cmd
}

/// Runs `sark` with `args`; returns the output.
pub fn run(args: &[&str]) -> Output {
    sark().args(args).output().expect("sark runs")
}

/// stdout of a successful run; panics with stderr otherwise.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "sark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// stderr of a failed run; panics if it succeeded.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "sark {args:?} should have failed; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// Builds `dir` into `out` with extra args.
pub fn build(dir: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["build", dir.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    ok(&args);
}

/// The example policies built once per test run.
pub fn example_bundle() -> &'static Path {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sark-it-bundles");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!("mcp-{}.wasm", std::process::id()));
        build(&root().join("policies"), &out, &[]);
        out
    })
}

/// Sample inputs with the entrypoint that fits each.
pub fn samples() -> Vec<(PathBuf, &'static str)> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("policies/samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let ep = if p.to_string_lossy().contains("a2a") {
                "mcp/a2a/decision"
            } else {
                "mcp/gateway/decision"
            };
            (p, ep)
        })
        .collect();
    v.sort();
    v
}

/// The decision log file's records once it has at least `n` (waits up to 10 s).
pub fn logged_decisions(log: &Path, n: usize) -> Vec<serde_json::Value> {
    let read = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let what = format!("{n} records in the decision log {}", log.display());
    eventually(std::time::Duration::from_secs(10), &what, || {
        read().len() >= n
    });
    read()
}

/// Parses JSON output.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The compiled-code cache the in-process tests share with the binary's runs (compiling
/// takes seconds).
pub fn code_cache() -> Option<sark::runtime::CodeCache> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sark-it-cache");
    Some(sark::runtime::CodeCache::new(dir).unwrap())
}

/// `rego` with a first comment no other run of the tests writes (process id and time): a
/// revision whose compiled snapshot no code cache has yet.
pub fn fresh_rego(rego: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "# {}-{}: a new revision, so the code cache cannot have its snapshot\n{rego}",
        std::process::id(),
        now.as_nanos()
    )
}

/// Builds `dir` in process into a verified bundle.
pub fn bundle_of(dir: &Path, revision: Option<&str>, entrypoints: &[&str]) -> sark::Bundle {
    let options = sark::bundle::BuildOptions {
        entrypoints: entrypoints.iter().map(|s| s.to_string()).collect(),
        revision: revision.map(str::to_string),
        ..Default::default()
    };
    let bytes = sark::runtime::build_bundle(
        &sark::bundle::SourceSet::read(dir).unwrap(),
        &options,
        sark::EVALUATOR_COMPONENT,
        code_cache().as_ref(),
    )
    .unwrap();
    sark::Bundle::from_bytes(bytes).unwrap()
}

/// Waits until `done` holds, polling every 5 ms (fine enough to time propagation); returns how long it took. Panics naming
/// `what` after `limit`.
pub fn eventually(
    limit: std::time::Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    start.elapsed()
}
