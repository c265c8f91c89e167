//! `sark health-check`: load a bundle and decide every entrypoint on both paths.

use super::build_in_memory;
use crate::bundle::{BuildOptions, Bundle};
use crate::config::Config;
use crate::decide::{DecisionRequest, DecisionService, ServiceBuilder};
use crate::evaluator::{EvalError, PathKind};
use anyhow::{Result, bail};
use sark_guest::PolicyError;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Load a bundle and evaluate every entrypoint with an empty input on both paths.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bundle file (default: the example policies built into this binary).
    #[arg(long)]
    bundle: Option<PathBuf>,
}

impl Args {
    /// Prints `OK` or `FAILED` per path; exit 1 when a path failed.
    pub fn run(self) -> Result<ExitCode> {
        let started = Instant::now();
        let bundle = match &self.bundle {
            Some(p) => Bundle::read(p)?,
            None => build_in_memory(
                &crate::bundle::source::example_policies(),
                &BuildOptions::default(),
            )?,
        };
        let entrypoints = bundle.manifest().entrypoints.clone();
        let service = ServiceBuilder::new(&Config::default()).build(bundle);
        let mut healthy = true;
        for path in [PathKind::Wasm, PathKind::Native] {
            let outcome = match &service {
                Ok(service) => check(service, path, &entrypoints),
                Err(e) => Err(anyhow::anyhow!("{e:#}")),
            };
            match outcome {
                Ok(()) => println!("{path}: OK ({} entrypoints)", entrypoints.len()),
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
}

/// Decides every entrypoint on `path` with `{}`: a policy error is a policy's answer, a
/// sandbox failure or an entrypoint the bundle does not know is not healthy.
fn check(service: &DecisionService, path: PathKind, entrypoints: &[String]) -> Result<()> {
    let empty = serde_json::json!({});
    for ep in entrypoints {
        let mut req = DecisionRequest::new(ep, Some(&empty));
        req.force_path = Some(path);
        req.bypass_cache = true;
        match service.decide(&req) {
            Ok(_) => {}
            Err(e)
                if !e.is_component_failure()
                    && !matches!(e, EvalError::Policy(PolicyError::UnknownEntrypoint(_))) => {}
            Err(e) => bail!("{ep}: {e}"),
        }
    }
    Ok(())
}
