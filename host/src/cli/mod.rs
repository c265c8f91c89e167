//! The `sark` command line: one file per command, each an `Args` struct with its own
//! `run()`; this file dispatches and holds what several commands share.

mod bench;
mod build;
mod conformance;
mod eval;
mod health;
mod inspect;
mod keygen;
mod push;
mod serve;
mod test;

use crate::bundle::{BuildOptions, Bundle, SourceSet};
use crate::config::Config;
use crate::evaluator::PathKind;
use crate::runtime::{CodeCache, WasmRuntime};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

/// SARK policy runtime: Rego policies compiled into sandboxed WebAssembly bundles.
#[derive(Debug, Parser)]
#[command(name = "sark", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a policy directory (or OPA bundle .tar.gz) into one self-contained .wasm bundle.
    Build(build::Args),
    /// Write an Ed25519 key pair for signing bundles: `<output>` (private, mode 0600) and
    /// `<output>.pub` (public).
    Keygen(keygen::Args),
    /// Evaluate an entrypoint or a query; prints {"result": …} (no result when undefined).
    Eval(eval::Args),
    /// Show a bundle's manifest without running it.
    Inspect(inspect::Args),
    /// Run the Rego unit tests (test_* rules) of a policy directory or bundle.
    Test(test::Args),
    /// Measure evaluation latency per path (median, p95, p99, mean, evals/s).
    Bench(bench::Args),
    /// Run OPA's compliance cases (YAML) through the component or the native path.
    Conformance(conformance::Args),
    /// Serve decisions over HTTP (OPA-compatible API, gateway API, admin API, metrics).
    Serve(serve::Args),
    /// Push a bundle (.wasm, or an OPA .tar.gz) to an OCI registry as a one-layer artifact.
    Push(push::Args),
    /// Load a bundle and evaluate every entrypoint with an empty input on both paths.
    HealthCheck(health::Args),
}

/// Parses the command line and runs the command; returns the process exit code.
pub fn run() -> Result<ExitCode> {
    match Cli::parse().command {
        Command::Build(args) => args.run(),
        Command::Keygen(args) => args.run(),
        Command::Eval(args) => args.run(),
        Command::Inspect(args) => args.run(),
        Command::Test(args) => args.run(),
        Command::Bench(args) => args.run(),
        Command::Conformance(args) => args.run(),
        Command::Serve(args) => args.run(),
        Command::Push(args) => args.run(),
        Command::HealthCheck(args) => args.run(),
    }
}

/// Sets up logging to stderr; `SARK_LOG` takes a tracing filter (default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SARK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// An evaluation path on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum PathArg {
    Wasm,
    Native,
}

impl From<PathArg> for PathKind {
    fn from(p: PathArg) -> Self {
        match p {
            PathArg::Wasm => PathKind::Wasm,
            PathArg::Native => PathKind::Native,
        }
    }
}

/// Output format of `inspect` and `bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// The configuration file, or the defaults.
fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::from_file(p)?),
        None => Ok(Config::default()),
    }
}

/// The text of an input file, of stdin for `-`, or nothing.
fn read_input(input: Option<&Path>) -> Result<String> {
    match input {
        None => Ok(String::new()),
        Some(p) if p == Path::new("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading input from stdin")?;
            Ok(s)
        }
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading input {}", p.display()))
        }
    }
}

/// Parses an input document; empty text means no input.
fn parse_input(text: &str) -> Result<Option<serde_json::Value>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("invalid input: {e}"))
}

/// The verification key of `--verification-key`, if given.
fn verification_key(path: Option<&Path>) -> Result<Option<ed25519_dalek::VerifyingKey>> {
    Ok(match path {
        Some(p) => Some(crate::bundle::signing::read_verification_key(p)?),
        None => None,
    })
}

/// The wasmtime runtime of commands that do not decide (test, conformance, inspect): the
/// default limits and the default code cache.
fn wasm_runtime() -> Result<WasmRuntime> {
    WasmRuntime::new(Config::default().limits, CodeCache::open_default())
        .map_err(|e| anyhow::anyhow!("{e:#}"))
}

/// A bundle file (`.wasm`, verified with `key` when given), or a policy directory or OPA
/// `.tar.gz` built in memory with `options`.
fn open_bundle(
    target: &Path,
    options: &BuildOptions,
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<Bundle> {
    if target.extension().is_some_and(|e| e == "wasm") {
        return Ok(Bundle::read_verified(target, key)?);
    }
    if key.is_some() {
        anyhow::bail!(
            "{}: only a built bundle can be verified; build it with `sark build --signing-key`",
            target.display()
        );
    }
    build_in_memory(&SourceSet::read(target)?, options)
}

/// Builds a source set into a verified in-memory bundle (with the default code cache).
fn build_in_memory(sources: &SourceSet, options: &BuildOptions) -> Result<Bundle> {
    let cache = CodeCache::open_default();
    let built = crate::runtime::build_bundle_reporting(
        sources,
        options,
        crate::EVALUATOR_COMPONENT,
        cache.as_ref(),
    )?;
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    Ok(Bundle::from_bytes(built.bytes)?)
}
