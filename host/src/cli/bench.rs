//! `sark bench`: latency of one entrypoint and input per path, like `opa bench`.

use super::{Format, load_config, parse_input, read_input};
use crate::bundle::Bundle;
use crate::decide::ServiceBuilder;
use crate::evaluator::PathKind;
use crate::native::NativePolicy;
use anyhow::Result;
use clap::ValueEnum;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Which path(s) `sark bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchPath {
    Wasm,
    Native,
    All,
}

/// Measure evaluation latency per path (median, p95, p99, mean, evals/s).
#[derive(Debug, clap::Args)]
pub struct Args {
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
    /// Measure the wasm path on the carried evaluator, each new instance loading the
    /// payload, as a bundle runs until its snapshot is compiled. By default the bundle's
    /// snapshot is compiled (or read from the code cache) first, as `sark serve` does.
    #[arg(long)]
    no_snapshot: bool,
}

impl Args {
    /// Measures and prints the report.
    pub fn run(self) -> Result<ExitCode> {
        let config = load_config(self.config.as_deref())?;
        let bundle = Bundle::read(&self.bundle)?;
        let input = parse_input(&read_input(Some(&self.input))?)?;
        let duration = Duration::from_secs_f64(self.duration.max(0.01));
        let paths: &[PathKind] = match self.path {
            BenchPath::Wasm => &[PathKind::Wasm],
            BenchPath::Native => &[PathKind::Native],
            BenchPath::All => &[PathKind::Wasm, PathKind::Native],
        };
        // The interpreter alone, for reference: what the native path ran before it ran the
        // RVM programs.
        let interpreter = match paths.contains(&PathKind::Native) {
            true => Some(NativePolicy::load_interpreter(&bundle, config.limits, 1)?),
            false => None,
        };
        let mut builder = ServiceBuilder::new(&config);
        if self.no_snapshot {
            builder = builder.without_snapshots();
        }
        let service = builder.build(bundle)?;
        if !self.no_snapshot && service.snapshots_pending() {
            eprintln!(
                "compiling the bundle's snapshot (once per revision: the code cache keeps it)"
            );
            let (_, failed) = service.adopt_snapshots(Duration::ZERO);
            if failed > 0 {
                eprintln!("the snapshot could not be adopted: measuring the carried evaluator");
            }
        }
        let report = crate::bench::run(
            &service,
            paths,
            &self.entrypoint,
            input.as_ref(),
            duration,
            interpreter
                .as_ref()
                .map(|p| p as &dyn crate::evaluator::Evaluator),
        )?;
        if self.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        if self.metrics {
            eprint!("{}", service.metrics_text());
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print_report(report: &crate::bench::BenchReport) {
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
    if let Some(r) = report.raw_wasm_native_ratio {
        println!("raw wasm/native ratio (paired turns): {r:.2}");
    }
    if let Some(o) = report.decide_overhead_us {
        println!("decide() overhead on a wasm miss (flags, cache bookkeeping, metrics): {o:.2} µs");
    }
    if let Some(i) = report.instantiate_median_us {
        println!(
            "instantiate (fresh instance from the {}) median: {i:.1} µs",
            match report.wasm_instances {
                "snapshot" => "bundle's snapshot",
                _ => "carried evaluator, loading the payload",
            }
        );
    }
    if let Some(f) = report.first_eval_on_fresh_instance_median_us {
        println!("instantiate + first evaluation on the fresh instance median: {f:.1} µs");
    }
    let mib = |b: Option<usize>| match b {
        None => "n/a".to_string(),
        Some(b) if b < 1 << 20 => format!("{:.0} KiB", b as f64 / 1024.0),
        Some(b) => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
    };
    if let Some(f) = report.footprint.get("wasm") {
        println!(
            "memory per pooled instance ({} held): linear memory {}, resident {}",
            f.instances,
            mib(f.bytes),
            mib(f.resident_bytes)
        );
    }
    if let Some(f) = report.footprint.get("native") {
        println!(
            "memory per native engine clone ({} held): heap {}, resident {}",
            f.instances,
            mib(f.bytes),
            mib(f.resident_bytes)
        );
    }
}
