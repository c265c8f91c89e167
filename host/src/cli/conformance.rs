//! `sark conformance`: OPA's compliance cases through the component or the native path.

use super::{PathArg, wasm_runtime};
use crate::conformance;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run OPA's compliance cases (YAML) through the component or the native path.
#[derive(Debug, clap::Args)]
pub struct Args {
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
    /// Parse the cases' modules and queries as Rego v0 (OPA's flag; for OPA's v0 cases).
    #[arg(long)]
    v0_compatible: bool,
}

impl Args {
    /// Runs the cases and prints per-folder counts and the totals.
    pub fn run(self) -> Result<ExitCode> {
        let cases = conformance::load_cases(&self.dir)?;
        let skips = if self.skip_file.exists() {
            conformance::load_skips(&self.skip_file)?
        } else {
            Default::default()
        };
        let runtime = wasm_runtime()?;
        let version = if self.v0_compatible {
            sark_guest::RegoVersion::V0
        } else {
            sark_guest::RegoVersion::V1
        };
        let runner = conformance::Runner::new(self.path.into(), &runtime, version)?;
        let t = conformance::run_all(&runner, &cases, &skips, &self.folders, self.verbose);
        println!(
            "{} passed, {} failed, {} skipped",
            t.passed, t.failed, t.skipped
        );
        if t.traps > 0 {
            println!("{} cases trapped", t.traps);
        }
        if let Some(min) = self.min_passed
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
}
