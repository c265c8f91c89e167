//! The `sark` command line.

use crate::bench;
use crate::bundle::{self, BuildOptions, Bundle, SourceSet};
use crate::config::Config;
use crate::evaluator::{Evaluator, PathKind};
use crate::native::NativePolicy;
use crate::runtime::{CodeCache, WasmPolicy, WasmRuntime};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    Build {
        /// Directory with *.rego, data.json/data.yaml and an optional .manifest, or a .tar.gz.
        dir: PathBuf,
        /// Output bundle file.
        #[arg(short, long)]
        output: PathBuf,
        /// Entrypoint (data.a.b or a/b); adds to METADATA `entrypoint: true` annotations.
        #[arg(short, long = "entrypoint")]
        entrypoints: Vec<String>,
        /// Revision (overrides the manifest's).
        #[arg(long)]
        revision: Option<String>,
    },
    /// Evaluate an entrypoint or a query; prints {"result": …} (no result when undefined).
    Eval {
        /// Bundle file.
        bundle: PathBuf,
        /// Entrypoint to evaluate (data.a.b or a/b).
        #[arg(short, long, required_unless_present = "query")]
        entrypoint: Option<String>,
        /// Input JSON file, or `-` for stdin.
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Ad-hoc Rego query instead of an entrypoint.
        #[arg(long, conflicts_with = "entrypoint")]
        query: Option<String>,
        /// Evaluation path.
        #[arg(long, value_enum, default_value_t = PathArg::Wasm)]
        path: PathArg,
        /// Configuration file (limits).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show a bundle's manifest without running it.
    Inspect {
        /// Bundle file.
        bundle: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run the Rego unit tests (test_* rules) of a policy directory or bundle.
    Test {
        /// Policy directory, OPA .tar.gz or bundle .wasm.
        target: PathBuf,
        /// Print every test with its timing.
        #[arg(short, long)]
        verbose: bool,
        /// Only run tests whose `package.rule` name contains this text.
        #[arg(long)]
        run: Option<String>,
        /// Evaluation path.
        #[arg(long, value_enum, default_value_t = PathArg::Wasm)]
        path: PathArg,
    },
    /// Measure evaluation latency per path (median, p95, p99, mean, evals/s).
    Bench {
        /// Bundle file.
        bundle: PathBuf,
        /// Entrypoint to evaluate.
        #[arg(short, long)]
        entrypoint: String,
        /// Input JSON file, or `-` for stdin.
        #[arg(short, long)]
        input: PathBuf,
        /// Which path(s) to measure.
        #[arg(long, value_enum, default_value_t = BenchPath::All)]
        path: BenchPath,
        /// Seconds to measure each path.
        #[arg(long, default_value_t = 3.0)]
        duration: f64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Configuration file (limits).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Load a bundle and evaluate every entrypoint with an empty input on both paths.
    HealthCheck {
        /// Bundle file (default: the example policies built into this binary).
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchPath {
    Wasm,
    Native,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
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

/// Parses the command line and runs the command; returns the process exit code.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Build {
            dir,
            output,
            entrypoints,
            revision,
        } => cmd_build(
            &dir,
            &output,
            BuildOptions {
                entrypoints,
                revision,
            },
        ),
        Command::Eval {
            bundle,
            entrypoint,
            input,
            query,
            path,
            config,
        } => cmd_eval(&bundle, entrypoint, input, query, path.into(), config),
        Command::Inspect { bundle, format } => cmd_inspect(&bundle, format),
        Command::Test {
            target,
            verbose,
            run,
            path,
        } => cmd_test(&target, verbose, run, path.into()),
        Command::Bench {
            bundle,
            entrypoint,
            input,
            path,
            duration,
            format,
            config,
        } => cmd_bench(&bundle, &entrypoint, &input, path, duration, format, config),
        Command::HealthCheck { bundle } => cmd_health(bundle),
    }
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::from_file(p)?),
        None => Ok(Config::default()),
    }
}

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

fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// Builds a source set into a verified in-memory bundle.
fn build_bundle(sources: &SourceSet, options: &BuildOptions) -> Result<Bundle> {
    let cache = CodeCache::new(CodeCache::default_dir()).ok();
    let bytes = bundle::build(sources, options, crate::EVALUATOR_COMPONENT, cache.as_ref())?;
    Ok(Bundle::from_bytes(bytes)?)
}

fn cmd_build(dir: &Path, output: &Path, options: BuildOptions) -> Result<ExitCode> {
    let sources = SourceSet::read(dir)?;
    let bundle = build_bundle(&sources, &options)?;
    let tmp = output.with_extension("wasm.tmp");
    std::fs::write(&tmp, bundle.bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("writing {}", output.display()))?;
    let m = bundle.manifest();
    eprintln!(
        "built {} ({} bytes): revision {:?}, {} modules, entrypoints: {}",
        output.display(),
        bundle.bytes().len(),
        m.revision,
        m.modules.len(),
        m.entrypoints.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads one path of a bundle.
fn load_evaluator(bundle: &Bundle, path: PathKind, config: &Config) -> Result<Box<dyn Evaluator>> {
    Ok(match path {
        PathKind::Wasm => Box::new(load_wasm(bundle, config)?.0),
        PathKind::Native => Box::new(NativePolicy::load(
            bundle,
            config.limits,
            default_pool_size(),
        )?),
    })
}

fn load_wasm(bundle: &Bundle, config: &Config) -> Result<(WasmPolicy, WasmRuntime)> {
    let cache = CodeCache::new(CodeCache::default_dir()).ok();
    let runtime = WasmRuntime::new(config.limits, cache).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let (policy, _) = runtime
        .load(bundle, default_pool_size())
        .map_err(|e| anyhow::anyhow!("cannot load the bundle component: {e:#}"))?;
    Ok((policy, runtime))
}

fn cmd_eval(
    bundle_path: &Path,
    entrypoint: Option<String>,
    input: Option<PathBuf>,
    query: Option<String>,
    path: PathKind,
    config: Option<PathBuf>,
) -> Result<ExitCode> {
    let config = load_config(config.as_deref())?;
    let bundle = Bundle::read(bundle_path)?;
    let input = read_input(input.as_deref())?;
    let evaluator = load_evaluator(&bundle, path, &config)?;
    let out = match (query, entrypoint) {
        (Some(q), _) => {
            let results = evaluator.query(&q, &input)?;
            format!("{{\"result\":{results}}}")
        }
        (None, Some(e)) => match evaluator.evaluate(&e, &input)? {
            Some(v) => format!("{{\"result\":{v}}}"),
            None => "{}".to_string(),
        },
        (None, None) => bail!("give an entrypoint (-e) or a query (--query)"),
    };
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn cmd_inspect(bundle_path: &Path, format: Format) -> Result<ExitCode> {
    let bundle = Bundle::read(bundle_path)?;
    let m = bundle.manifest();
    let imports = bundle.imports()?;
    if format == Format::Json {
        let mut v = serde_json::to_value(m)?;
        v["file_bytes"] = bundle.bytes().len().into();
        v["component_bytes"] = bundle.component_bytes().len().into();
        v["payload_bytes"] = bundle.payload_len().into();
        v["imports"] = imports.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("bundle:          {}", bundle_path.display());
    println!("revision:        {}", m.revision);
    println!("content hash:    sha256:{}", m.content_hash);
    println!("entrypoints:     {}", m.entrypoints.join(", "));
    println!(
        "roots:           {}",
        if m.roots.is_empty() {
            "(all)".to_string()
        } else {
            m.roots.join(", ")
        }
    );
    println!("regorus:         {}", m.regorus_version);
    println!("built by:        sark {}", m.sark_version);
    println!(
        "sizes:           file {} B, component {} B, payload {} B, data {} B",
        bundle.bytes().len(),
        bundle.component_bytes().len(),
        bundle.payload_len(),
        m.data_bytes
    );
    println!("modules:");
    for module in &m.modules {
        println!("  {} ({} B)", module.path, module.bytes);
    }
    println!("imports:");
    for i in imports {
        println!("  {i}");
    }
    if !m.metadata.is_null() {
        println!("metadata:        {}", m.metadata);
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_test(
    target: &Path,
    verbose: bool,
    filter: Option<String>,
    path: PathKind,
) -> Result<ExitCode> {
    let is_bundle = target.extension().is_some_and(|e| e == "wasm");
    let bundle = if is_bundle {
        Bundle::read(target)?
    } else {
        build_bundle(&SourceSet::read(target)?, &BuildOptions::default())?
    };
    let evaluator = load_evaluator(&bundle, path, &Config::default())?;
    let results = evaluator.run_tests(filter.as_deref())?;
    let mut failed = 0;
    let mut current_file = String::new();
    for r in &results {
        if !r.passed {
            failed += 1;
        }
        if verbose || !r.passed {
            if r.file != current_file {
                println!("{}:", r.file);
                current_file = r.file.clone();
            }
            let status = if r.passed { "PASS" } else { "FAIL" };
            println!(
                "{}.{}: {status} ({:.3}ms)",
                r.package,
                r.name,
                r.duration_ns as f64 / 1e6
            );
            if let Some(m) = &r.message
                && !r.passed
            {
                println!("  {m}");
            }
        }
    }
    println!("{}", "-".repeat(80));
    if results.is_empty() {
        println!("no tests found");
        return Ok(ExitCode::FAILURE);
    }
    if failed == 0 {
        println!("PASS: {}/{}", results.len(), results.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("PASS: {}/{}", results.len() - failed, results.len());
        println!("FAIL: {failed}/{}", results.len());
        Ok(ExitCode::FAILURE)
    }
}

fn cmd_bench(
    bundle_path: &Path,
    entrypoint: &str,
    input: &Path,
    which: BenchPath,
    duration: f64,
    format: Format,
    config: Option<PathBuf>,
) -> Result<ExitCode> {
    let config = load_config(config.as_deref())?;
    let bundle = Bundle::read(bundle_path)?;
    let input = read_input(Some(input))?;
    let duration = Duration::from_secs_f64(duration.max(0.01));
    let wasm = match which {
        BenchPath::Wasm | BenchPath::All => Some(load_wasm(&bundle, &config)?),
        BenchPath::Native => None,
    };
    let native = match which {
        BenchPath::Native | BenchPath::All => Some(NativePolicy::load(
            &bundle,
            config.limits,
            default_pool_size(),
        )?),
        BenchPath::Wasm => None,
    };
    let mut evaluators: Vec<&dyn Evaluator> = Vec::new();
    if let Some((w, _)) = &wasm {
        evaluators.push(w);
    }
    if let Some(n) = &native {
        evaluators.push(n);
    }
    let instantiate = wasm.as_ref().map(|(w, _)| move || w.instantiate_once());
    let report = bench::run(
        &evaluators,
        entrypoint,
        &input,
        duration,
        instantiate
            .as_ref()
            .map(|f| f as &dyn Fn() -> Result<(), crate::EvalError>),
    )?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>12} {:>14}",
        "path", "median µs", "p95 µs", "p99 µs", "mean µs", "evals/s"
    );
    for (name, s) in &report.paths {
        println!(
            "{:<8} {:>12.2} {:>12.2} {:>12.2} {:>12.2} {:>14.0}",
            name, s.median_us, s.p95_us, s.p99_us, s.mean_us, s.evals_per_sec
        );
    }
    if let Some(r) = report.wasm_native_median_ratio {
        println!("wasm/native median ratio: {r:.2}");
    }
    if let Some(i) = report.instantiate_median_us {
        println!("instantiate (fresh instance from InstancePre) median: {i:.1} µs");
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_health(bundle_path: Option<PathBuf>) -> Result<ExitCode> {
    let started = Instant::now();
    let bundle = match bundle_path {
        Some(p) => Bundle::read(&p)?,
        None => build_bundle(
            &crate::bundle::source::example_policies(),
            &BuildOptions::default(),
        )?,
    };
    let config = Config::default();
    let mut healthy = true;
    for path in [PathKind::Wasm, PathKind::Native] {
        let outcome = load_evaluator(&bundle, path, &config).and_then(|ev| {
            for ep in &bundle.manifest().entrypoints {
                match ev.evaluate(ep, "{}") {
                    Ok(_) => {}
                    Err(e)
                        if !e.is_component_failure()
                            && !matches!(
                                e,
                                crate::EvalError::Policy(
                                    sark_guest::PolicyError::UnknownEntrypoint(_)
                                )
                            ) => {}
                    Err(e) => bail!("{ep}: {e}"),
                }
            }
            Ok(())
        });
        match outcome {
            Ok(()) => println!(
                "{path}: OK ({} entrypoints)",
                bundle.manifest().entrypoints.len()
            ),
            Err(e) => {
                healthy = false;
                println!("{path}: FAILED: {e:#}");
            }
        }
    }
    println!(
        "checked in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
