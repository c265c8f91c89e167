//! `sark eval`: one decision (or ad-hoc query) through the decision service.

use super::{PathArg, load_config, open_bundle, parse_input, read_input, verification_key};
use crate::bundle::BuildOptions;
use crate::decide::{DecisionRequest, ServiceBuilder, Target};
use anyhow::{Result, bail};
use sark_guest::RegoVersion;
use std::path::PathBuf;
use std::process::ExitCode;

/// Evaluate an entrypoint or a query; prints {"result": …} (no result when undefined).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bundle file, or a policy directory or OPA .tar.gz (built in memory).
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
    /// Rego v0 (OPA's flag): the modules of a directory or .tar.gz, unless its `.manifest`
    /// says otherwise, and the query. A built bundle parses queries as it was built.
    #[arg(long)]
    v0_compatible: bool,
}

impl Args {
    /// Decides and prints `{"result": …}` (for a query: the result rows).
    pub fn run(self) -> Result<ExitCode> {
        let config = load_config(self.config.as_deref())?;
        let key = verification_key(self.verification_key.as_deref())?;
        let options = BuildOptions {
            v0_compatible: self.v0_compatible,
            ..Default::default()
        };
        let bundle = open_bundle(&self.bundle, &options, key.as_ref())?;
        if self.v0_compatible
            && self.query.is_some()
            && bundle.payload()?.rego_version != RegoVersion::V0
        {
            bail!(
                "{}: queries are parsed in the bundle's Rego version, v1; build it with \
                 `sark build --v0-compatible` (or a .manifest `rego_version: 0`), or give the \
                 policy directory",
                self.bundle.display()
            );
        }
        let input = parse_input(&read_input(self.input.as_deref())?)?;
        let target = match (&self.query, &self.entrypoint) {
            (Some(q), _) => Target::Query(q),
            (None, Some(e)) => Target::Entrypoint(e),
            (None, None) => bail!("give an entrypoint (-e) or a query (--query)"),
        };
        let service = ServiceBuilder::new(&config).build(bundle)?;
        let req = DecisionRequest {
            target,
            input: input.as_ref(),
            prepared: None,
            user_key: self.user.as_deref(),
            force_path: self.path.map(Into::into),
            bypass_cache: false,
            received: None,
        };
        let decision = service.decide(&req)?;
        if let Some(kind) = decision.fallback_from {
            eprintln!("warning: the component failed ({kind}); decided on the native path");
        }
        let out = match (target, decision.result) {
            (Target::Query(_), rows) => {
                format!("{{\"result\":{}}}", rows.as_deref().unwrap_or("[]"))
            }
            (Target::Entrypoint(_), Some(v)) => format!("{{\"result\":{v}}}"),
            (Target::Entrypoint(_), None) => "{}".to_string(),
        };
        println!("{out}");
        if self.metrics {
            eprint!("{}", service.metrics_text());
        }
        Ok(ExitCode::SUCCESS)
    }
}
