//! The `sark` command line.

use crate::bench;
use crate::bundle::{self, BuildOptions, Bundle, SourceSet};
use crate::config::Config;
use crate::decide::{DecisionRequest, DecisionService, LoadedBundle};
use crate::evaluator::{Evaluator, PathKind};
use crate::flags::RolloutFlags;
use crate::native::NativePolicy;
use crate::runtime::{CodeCache, WasmPolicy, WasmRuntime};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
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
        /// Ed25519 private key (PKCS#8 PEM, from `sark keygen`) to sign the bundle with.
        #[arg(long)]
        signing_key: Option<PathBuf>,
    },
    /// Write an Ed25519 key pair for signing bundles: `<output>` (private, mode 0600) and
    /// `<output>.pub` (public).
    Keygen {
        /// Private key file to create (must not exist).
        #[arg(short, long)]
        output: PathBuf,
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
        /// Evaluate on this path (default: as the `wasm_engine` rollout decides, with
        /// fallback to native when the component fails).
        #[arg(long, value_enum)]
        path: Option<PathArg>,
        /// Rollout key (default: input.user.id).
        #[arg(long)]
        user: Option<String>,
        /// Configuration file (features, limits).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the Prometheus metrics of this run to stderr.
        #[arg(long)]
        metrics: bool,
        /// Refuse the bundle unless it is signed by this Ed25519 public key (SPKI PEM).
        #[arg(long)]
        verification_key: Option<PathBuf>,
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
        /// Only run tests whose `package.rule` name matches this regular expression.
        #[arg(long)]
        run: Option<String>,
        /// Evaluation path.
        #[arg(long, value_enum, default_value_t = PathArg::Wasm)]
        path: PathArg,
        /// Report covered and uncovered lines per file (computed on the native path, which
        /// runs the same evaluator code; the component has no coverage export).
        #[arg(long)]
        coverage: bool,
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
        /// Configuration file (features, limits).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the Prometheus metrics of the run to stderr.
        #[arg(long)]
        metrics: bool,
    },
    /// Run OPA's compliance cases (YAML) through the component or the native path.
    Conformance {
        /// Directory of case files (e.g. ../shared/conformance/opa-v1).
        dir: PathBuf,
        /// Evaluation path.
        #[arg(long, value_enum, default_value_t = PathArg::Wasm)]
        path: PathArg,
        /// Only these folders (repeatable).
        #[arg(long = "folder")]
        folders: Vec<String>,
        /// Print each failure with its reason.
        #[arg(short, long)]
        verbose: bool,
        /// Skip list: one `note  # reason` per line.
        #[arg(long, default_value = "conformance/skip.txt")]
        skip_file: PathBuf,
        /// Fail when fewer cases pass (the ratchet `make test` uses).
        #[arg(long)]
        min_passed: Option<usize>,
    },
    /// Serve decisions over HTTP (OPA-compatible API, gateway API, admin API, metrics).
    Serve {
        /// Bundle file (reloaded when it changes, on SIGHUP, or by the admin API).
        #[arg(long)]
        bundle: PathBuf,
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address (default: server.addr, 127.0.0.1:8181).
        #[arg(long)]
        addr: Option<String>,
        /// Candidate bundle for the policy canary (`features.policy_canary`).
        #[arg(long)]
        candidate_bundle: Option<PathBuf>,
        /// Refuse bundles (at start, on reload, the candidate) unless they are signed by
        /// this Ed25519 public key (SPKI PEM).
        #[arg(long)]
        verification_key: Option<PathBuf>,
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
            signing_key,
        } => cmd_build(
            &dir,
            &output,
            BuildOptions {
                entrypoints,
                revision,
            },
            signing_key.as_deref(),
        ),
        Command::Keygen { output } => cmd_keygen(&output),
        Command::Eval {
            bundle,
            entrypoint,
            input,
            query,
            path,
            user,
            config,
            metrics,
            verification_key,
        } => cmd_eval(EvalArgs {
            verification_key,
            bundle,
            entrypoint,
            input,
            query,
            path: path.map(Into::into),
            user,
            config,
            metrics,
        }),
        Command::Inspect { bundle, format } => cmd_inspect(&bundle, format),
        Command::Test {
            target,
            verbose,
            run,
            path,
            coverage,
        } => cmd_test(&target, verbose, run, path.into(), coverage),
        Command::Bench {
            bundle,
            entrypoint,
            input,
            path,
            duration,
            format,
            config,
            metrics,
        } => cmd_bench(
            &bundle,
            &entrypoint,
            &input,
            path,
            duration,
            format,
            config,
            metrics,
        ),
        Command::HealthCheck { bundle } => cmd_health(bundle),
        Command::Conformance {
            dir,
            path,
            folders,
            verbose,
            skip_file,
            min_passed,
        } => cmd_conformance(&dir, path.into(), &folders, verbose, &skip_file, min_passed),
        Command::Serve {
            bundle,
            config,
            addr,
            candidate_bundle,
            verification_key,
        } => cmd_serve(&bundle, config, addr, candidate_bundle, verification_key),
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

use crate::runtime::default_pool_size;

/// The process's wasmtime runtime with the default compiled-code cache.
fn wasm_runtime(config: &Config) -> Result<WasmRuntime> {
    let cache = CodeCache::new(CodeCache::default_dir()).ok();
    WasmRuntime::new(config.limits, cache).map_err(|e| anyhow::anyhow!("{e:#}"))
}

/// Builds a source set into a verified in-memory bundle.
fn build_bundle(sources: &SourceSet, options: &BuildOptions) -> Result<Bundle> {
    let cache = CodeCache::new(CodeCache::default_dir()).ok();
    let bytes = bundle::build(sources, options, crate::EVALUATOR_COMPONENT, cache.as_ref())?;
    Ok(Bundle::from_bytes(bytes)?)
}

fn cmd_keygen(output: &Path) -> Result<ExitCode> {
    let public = crate::bundle::signing::generate(output)?;
    let key = crate::bundle::signing::read_verification_key(&public)?;
    eprintln!(
        "wrote {} (private, keep it secret) and {} (public); key id {}",
        output.display(),
        public.display(),
        crate::bundle::signing::key_id(&key)
    );
    Ok(ExitCode::SUCCESS)
}

/// The verification key of `--verification-key`, if given.
fn verification_key(path: Option<&Path>) -> Result<Option<ed25519_dalek::VerifyingKey>> {
    Ok(match path {
        Some(p) => Some(crate::bundle::signing::read_verification_key(p)?),
        None => None,
    })
}

fn cmd_build(
    dir: &Path,
    output: &Path,
    options: BuildOptions,
    signing_key: Option<&Path>,
) -> Result<ExitCode> {
    // Read the key first: a bad key must not cost a build.
    let key = match signing_key {
        Some(p) => Some(crate::bundle::signing::read_signing_key(p)?),
        None => None,
    };
    let sources = SourceSet::read(dir)?;
    let mut bundle = build_bundle(&sources, &options)?;
    if let Some(key) = &key {
        let signed = crate::bundle::signing::sign(&bundle, key);
        bundle = Bundle::from_bytes(signed)?;
        crate::bundle::signing::verify(&bundle, &key.verifying_key())?;
        eprintln!(
            "signed with key {}",
            crate::bundle::signing::key_id(&key.verifying_key())
        );
    }
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
    let runtime = wasm_runtime(config)?;
    let (policy, _) = runtime
        .load(bundle, default_pool_size())
        .map_err(|e| anyhow::anyhow!("cannot load the bundle component: {e:#}"))?;
    Ok((policy, runtime))
}

struct EvalArgs {
    verification_key: Option<PathBuf>,
    bundle: PathBuf,
    entrypoint: Option<String>,
    input: Option<PathBuf>,
    query: Option<String>,
    path: Option<PathKind>,
    user: Option<String>,
    config: Option<PathBuf>,
    metrics: bool,
}

/// Loads a bundle on both paths behind a [`DecisionService`] configured by `config`.
fn decision_service(bundle: Bundle, config: &Config) -> Result<DecisionService> {
    service_with_state(bundle, config, None)
}

fn service_with_state(
    bundle: Bundle,
    config: &Config,
    state_file: Option<PathBuf>,
) -> Result<DecisionService> {
    let runtime = wasm_runtime(config)?;
    let loaded = LoadedBundle::load(&runtime, bundle, config, default_pool_size())?;
    let flags = Arc::new(RolloutFlags::new(config, state_file)?);
    Ok(DecisionService::new(runtime, loaded, config, flags))
}

fn cmd_conformance(
    dir: &Path,
    path: PathKind,
    folders: &[String],
    verbose: bool,
    skip_file: &Path,
    min_passed: Option<usize>,
) -> Result<ExitCode> {
    use crate::conformance;
    let cases = conformance::load_cases(dir)?;
    let skips = if skip_file.exists() {
        conformance::load_skips(skip_file)?
    } else {
        Default::default()
    };
    let cache = CodeCache::new(CodeCache::default_dir()).ok();
    let runtime = WasmRuntime::new(Config::default().limits, cache.clone())
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let runner = conformance::Runner::new(path, runtime.engine(), cache.as_ref())?;
    let t = conformance::run_all(&runner, &cases, &skips, folders, verbose);
    println!(
        "{} passed, {} failed, {} skipped",
        t.passed, t.failed, t.skipped
    );
    if t.traps > 0 {
        println!("{} cases trapped", t.traps);
    }
    if let Some(min) = min_passed
        && t.passed < min
    {
        eprintln!(
            "error: {} cases passed, fewer than the recorded {min}",
            t.passed
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_serve(
    bundle_path: &Path,
    config_path: Option<PathBuf>,
    addr: Option<String>,
    candidate: Option<PathBuf>,
    verification_key_path: Option<PathBuf>,
) -> Result<ExitCode> {
    let config = load_config(config_path.as_deref())?;
    let key = verification_key(verification_key_path.as_deref())?;
    let addr: std::net::SocketAddr = addr
        .as_deref()
        .unwrap_or(&config.server.addr)
        .parse()
        .context("invalid listen address")?;
    let bundle = Bundle::read_verified(bundle_path, key.as_ref())?;
    let service = service_with_state(bundle, &config, config.server.state_file.clone())?;
    if let Some(path) = &candidate {
        let candidate = Bundle::read_verified(path, key.as_ref())
            .with_context(|| format!("candidate bundle {}", path.display()))?;
        let loaded =
            LoadedBundle::load(service.runtime(), candidate, &config, default_pool_size())?;
        eprintln!(
            "policy canary: candidate {} ({:?} mode)",
            loaded.id, config.features.policy_canary.mode
        );
        service.set_candidate(Some(loaded));
    }
    let admin_token = config
        .server
        .admin_token
        .clone()
        .or_else(|| std::env::var("SARK_ADMIN_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if admin_token.is_none() {
        eprintln!("admin API off: no server.admin_token or SARK_ADMIN_TOKEN");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let mut service = service;
        let cluster = match &config.cluster {
            Some(c) => {
                let cluster = Arc::new(
                    crate::cluster::Cluster::new(
                        c,
                        service.flags().clone(),
                        service.metrics().clone(),
                    )
                    .context("cluster")?,
                );
                if config.features.decision_cache.shared {
                    service.set_shared_cache(Arc::new(crate::cluster::RedisDecisionCache::new(
                        cluster.clone(),
                    )));
                }
                cluster.spawn();
                eprintln!(
                    "cluster: rollout state in redis {} (prefix `{}`), shared decision cache {}",
                    cluster.status().redis,
                    c.key_prefix,
                    if config.features.decision_cache.shared {
                        "on"
                    } else {
                        "off"
                    }
                );
                Some(cluster)
            }
            None => None,
        };
        let service = Arc::new(service);
        let log = if config.decision_log.enabled {
            Some(
                crate::server::DecisionLog::start(&config.decision_log, service.metrics().clone())
                    .await?,
            )
        } else {
            None
        };
        let state = Arc::new(crate::server::AppState {
            service,
            config,
            admin_token,
            bundle_path: bundle_path.to_path_buf(),
            verification_key: key,
            reloads: Default::default(),
            log,
            cluster,
        });
        crate::server::serve(state, addr).await
    })?;
    Ok(ExitCode::SUCCESS)
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

fn cmd_eval(args: EvalArgs) -> Result<ExitCode> {
    let config = load_config(args.config.as_deref())?;
    let key = verification_key(args.verification_key.as_deref())?;
    let bundle = Bundle::read_verified(&args.bundle, key.as_ref())?;
    let input = read_input(args.input.as_deref())?;
    let service = decision_service(bundle, &config)?;
    let out = match (args.query, args.entrypoint) {
        (Some(q), _) => {
            let active = service.active();
            let results = active
                .evaluator(args.path.unwrap_or(PathKind::Wasm))
                .query(&q, &input)?;
            format!("{{\"result\":{results}}}")
        }
        (None, Some(e)) => {
            let value = parse_input(&input)?;
            let mut req = DecisionRequest::new(&e, value.as_ref());
            req.force_path = args.path;
            req.user_key = args.user.as_deref();
            let decision = service.decide(&req)?;
            if let Some(kind) = decision.fallback_from {
                eprintln!("warning: the component failed ({kind}); decided on the native path");
            }
            match decision.result {
                Some(v) => format!("{{\"result\":{v}}}"),
                None => "{}".to_string(),
            }
        }
        (None, None) => bail!("give an entrypoint (-e) or a query (--query)"),
    };
    println!("{out}");
    if args.metrics {
        eprint!("{}", service.metrics_text());
    }
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
        v["signature"] = serde_json::to_value(bundle.signature())?;
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
        "signature:       {}",
        bundle.signature().map_or("none".to_string(), |s| format!(
            "{} key {} (not verified: give --verification-key to eval/serve)",
            s.alg, s.key_id
        ))
    );
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
    coverage: bool,
) -> Result<ExitCode> {
    let is_bundle = target.extension().is_some_and(|e| e == "wasm");
    let bundle = if is_bundle {
        Bundle::read(target)?
    } else {
        build_bundle(&SourceSet::read(target)?, &BuildOptions::default())?
    };
    let (results, files) = if coverage {
        let mut set = sark_guest::PolicySet::load(bundle.payload()?)
            .map_err(|e| anyhow::anyhow!("cannot load the bundle natively: {e}"))?;
        let (results, files) = set
            .run_tests_with_coverage(filter.as_deref())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        (results, Some(files))
    } else {
        let evaluator = load_evaluator(&bundle, path, &Config::default())?;
        (evaluator.run_tests(filter.as_deref())?, None)
    };
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
    if let Some(files) = files {
        print_coverage(&files, verbose);
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

#[allow(clippy::too_many_arguments)]
fn cmd_bench(
    bundle_path: &Path,
    entrypoint: &str,
    input: &Path,
    which: BenchPath,
    duration: f64,
    format: Format,
    config: Option<PathBuf>,
    show_metrics: bool,
) -> Result<ExitCode> {
    let config = load_config(config.as_deref())?;
    let bundle = Bundle::read(bundle_path)?;
    let input = parse_input(&read_input(Some(input))?)?;
    let duration = Duration::from_secs_f64(duration.max(0.01));
    let paths: &[PathKind] = match which {
        BenchPath::Wasm => &[PathKind::Wasm],
        BenchPath::Native => &[PathKind::Native],
        BenchPath::All => &[PathKind::Wasm, PathKind::Native],
    };
    let service = decision_service(bundle, &config)?;
    let report = bench::run(&service, paths, entrypoint, input.as_ref(), duration)?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:<18} {:>12} {:>12} {:>12} {:>12} {:>14}",
            "path", "median µs", "p95 µs", "p99 µs", "mean µs", "evals/s"
        );
        let rows = report
            .paths
            .iter()
            .map(|(n, s)| (n.clone(), s))
            .chain(
                report
                    .decide
                    .iter()
                    .map(|(n, s)| (format!("decide {n}"), s)),
            )
            .chain(report.raw.iter().map(|(n, s)| (format!("raw {n}"), s)));
        for (name, s) in rows {
            println!(
                "{:<18} {:>12.2} {:>12.2} {:>12.2} {:>12.2} {:>14.0}",
                name, s.median_us, s.p95_us, s.p99_us, s.mean_us, s.evals_per_sec
            );
        }
        if let Some(r) = report.wasm_native_median_ratio {
            println!("wasm/native median ratio: {r:.2}");
        }
        if let Some(o) = report.decide_overhead_us {
            println!(
                "decide() overhead on a wasm miss (flags, cache bookkeeping, metrics): {o:.2} µs"
            );
        }
        if let Some(i) = report.instantiate_median_us {
            println!("instantiate (fresh instance from InstancePre) median: {i:.1} µs");
        }
        if let Some(f) = report.first_eval_on_fresh_instance_median_us {
            println!("instantiate + first evaluation on the fresh instance median: {f:.1} µs");
        }
    }
    if show_metrics {
        eprint!("{}", service.metrics_text());
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

/// Prints covered/uncovered lines per file and the total, as `opa test --coverage` reports.
fn print_coverage(files: &[sark_guest::FileCoverage], verbose: bool) {
    let (mut covered, mut total) = (0usize, 0usize);
    println!("coverage:");
    for f in files {
        let n = f.covered.len() + f.not_covered.len();
        covered += f.covered.len();
        total += n;
        let pct = if n == 0 {
            100.0
        } else {
            100.0 * f.covered.len() as f64 / n as f64
        };
        println!(
            "  {}: {}/{} lines covered ({pct:.1}%)",
            f.path,
            f.covered.len(),
            n
        );
        if !f.not_covered.is_empty() {
            let lines: Vec<String> = f.not_covered.iter().map(u32::to_string).collect();
            println!("    not covered: {}", lines.join(", "));
        }
        if verbose && !f.covered.is_empty() {
            let lines: Vec<String> = f.covered.iter().map(u32::to_string).collect();
            println!("    covered: {}", lines.join(", "));
        }
    }
    let pct = if total == 0 {
        100.0
    } else {
        100.0 * covered as f64 / total as f64
    };
    println!("  total: {covered}/{total} lines covered ({pct:.1}%)");
}
