//! `sark test`: the `test_*` rules of a policy directory or bundle, on one path, with
//! optional coverage.

use super::{PathArg, open_bundle};
use crate::bundle::{BuildOptions, Bundle};
use crate::config::Config;
use crate::evaluator::{Evaluator, PathKind};
use crate::native::NativePolicy;
use crate::runtime::{CodeCache, WasmRuntime, default_pool_size};
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run the Rego unit tests (test_* rules) of a policy directory or bundle.
#[derive(Debug, clap::Args)]
pub struct Args {
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
    /// Parse the modules of a directory or .tar.gz as Rego v0 (OPA's flag), unless its
    /// `.manifest` says otherwise; a built bundle keeps the versions it was built with.
    #[arg(long)]
    v0_compatible: bool,
    /// Time limit of the test run in ms, as OPA's `opa test --timeout` (default 5 s): tests
    /// are not decisions, so `limits.eval_timeout_ms` (100 ms) does not apply.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

impl Args {
    /// Runs the tests; exit 1 when one fails or none exist.
    pub fn run(self) -> Result<ExitCode> {
        let options = BuildOptions {
            v0_compatible: self.v0_compatible,
            ..Default::default()
        };
        let bundle = open_bundle(&self.target, &options, None)?;
        let filter = self.run.as_deref();
        let (results, files) = if self.coverage {
            let mut set = sark_guest::PolicySet::load(bundle.payload()?)
                .map_err(|e| anyhow::anyhow!("cannot load the bundle natively: {e}"))?;
            let (results, files) = set
                .run_tests_with_coverage(filter)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            (results, Some(files))
        } else {
            let evaluator = load_one_path(&bundle, self.path.into(), self.timeout_ms)?;
            (evaluator.run_tests(filter)?, None)
        };
        let mut failed = 0;
        let mut current_file = String::new();
        for r in &results {
            if !r.passed {
                failed += 1;
            }
            if self.verbose || !r.passed {
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
            print_coverage(&files, self.verbose);
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
}

/// Loads only the path the tests run on (tests are not decisions: no flags, no cache).
fn load_one_path(bundle: &Bundle, path: PathKind, timeout_ms: u64) -> Result<Box<dyn Evaluator>> {
    let mut limits = Config::default().limits;
    limits.eval_timeout_ms = timeout_ms.max(1);
    limits.native_timeout_ms = timeout_ms.max(1);
    limits.request_timeout_ms = timeout_ms.max(1);
    Ok(match path {
        PathKind::Wasm => {
            let (policy, _) = WasmRuntime::new(limits, CodeCache::open_default())
                .map_err(|e| anyhow::anyhow!("{e:#}"))?
                .load(bundle, default_pool_size())
                .map_err(|e| anyhow::anyhow!("cannot load the bundle component: {e:#}"))?;
            Box::new(policy)
        }
        PathKind::Native => Box::new(NativePolicy::load(bundle, limits, default_pool_size())?),
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
