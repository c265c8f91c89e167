//! `sark serve`: the HTTP decision point.

use super::{load_config, verification_key};
use crate::bundle::Bundle;
use crate::decide::ServiceBuilder;
use crate::server::AppState;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Serve decisions over HTTP (OPA-compatible API, gateway API, admin API, metrics).
#[derive(Debug, clap::Args)]
pub struct Args {
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
}

impl Args {
    /// Loads the bundles, starts the server and serves until SIGTERM or ctrl-c.
    pub fn run(self) -> Result<ExitCode> {
        let config = load_config(self.config.as_deref())?;
        let key = verification_key(self.verification_key.as_deref())?;
        let addr: std::net::SocketAddr = self
            .addr
            .as_deref()
            .unwrap_or(&config.server.addr)
            .parse()
            .context("invalid listen address")?;
        let bundle = Bundle::read_verified(&self.bundle, key.as_ref())?;
        let candidate = match &self.candidate_bundle {
            Some(path) => Some(
                Bundle::read_verified(path, key.as_ref())
                    .with_context(|| format!("candidate bundle {}", path.display()))?,
            ),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        // Documents written through the data API, restored before the first decision.
        let dir = config.persistence_dir();
        let data = crate::store::DataStore::open(&dir, config.data_limits())
            .with_context(|| format!("persistence directory {}", dir.display()))?;
        if !data.is_empty() {
            eprintln!(
                "data: restored {} bytes of written documents (version {}) from {}",
                data.bytes(),
                data.version(),
                dir.display()
            );
        }
        let data = Arc::new(data);
        let policies = crate::store::PolicyStore::open(&dir)
            .with_context(|| format!("persistence directory {}", dir.display()))?;
        if !policies.list().is_empty() {
            eprintln!(
                "policies: restored {} put through the policy API from {}",
                policies.list().len(),
                dir.display()
            );
        }
        runtime.block_on(async move {
            let service = ServiceBuilder::new(&config)
                .data_store(data)
                .policy_store(Arc::new(policies))
                .state_file(config.server.state_file.clone())
                .candidate(candidate)
                .background(tokio::runtime::Handle::current())
                .build(bundle)?;
            if let Some(c) = service.candidate() {
                eprintln!(
                    "policy canary: candidate {} ({:?} mode)",
                    c.id,
                    service.canary_mode()
                );
            }
            if let (Some(cluster), Some(c)) = (service.cluster(), &config.cluster) {
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
            }
            let state = Arc::new(AppState::new(service, config, self.bundle, key));
            if state.admin_token.is_none() {
                eprintln!("admin API off: no server.admin_token or SARK_ADMIN_TOKEN");
            }
            crate::server::serve(state, addr).await
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
