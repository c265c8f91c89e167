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
    /// Bundle file (reloaded when it changes, on SIGHUP, or by the admin API). Not needed
    /// when the configuration has a `bundles` section (the bundle comes from a service).
    #[arg(long)]
    bundle: Option<PathBuf>,
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
        let remote = crate::management::RemoteBundle::from_config(&config, key)?;
        let bundle = match (&self.bundle, &remote) {
            (Some(_), Some(_)) => anyhow::bail!(
                "--bundle and the configuration's `bundles` section both name the bundle: use one"
            ),
            (None, None) => {
                anyhow::bail!("no bundle: give --bundle <file>, or a `bundles` section in --config")
            }
            (Some(path), None) => Some(Bundle::read_verified(path, key.as_ref())?),
            // Started from the persisted bundle, else from the service's first delivery.
            (None, Some(remote)) => remote.load_persisted(),
        };
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
        let policies = Arc::new(policies);
        let mut candidate = candidate;
        let builder_config = config.clone();
        let bundle_name = match (&remote, &self.bundle) {
            (Some(r), _) => crate::server::BundleOrigin::Remote(r.clone()).name(),
            (None, Some(path)) => crate::server::BundleOrigin::File(path.clone()).name(),
            (None, None) => "sark".into(),
        };
        // Assembles the decision service around the first bundle (here, or when the bundle
        // service delivers it).
        let build = move |bundle: Bundle| -> Result<crate::decide::DecisionService> {
            let service = ServiceBuilder::new(&builder_config)
                .bundle_name(bundle_name.clone())
                .data_store(data.clone())
                .policy_store(policies.clone())
                .state_file(builder_config.server.state_file.clone())
                .candidate(candidate.take())
                .background(tokio::runtime::Handle::current())
                .build(bundle)?;
            announce(&service, &builder_config);
            Ok(service)
        };
        runtime.block_on(async move {
            match (remote, bundle) {
                (Some(remote), initial) => {
                    let start = crate::server::RemoteStart {
                        remote,
                        initial,
                        config,
                        verification_key: key,
                        build: Box::new(build),
                    };
                    crate::server::serve_remote(start, addr).await
                }
                (None, Some(bundle)) => {
                    let mut build = build;
                    let service = build(bundle)?;
                    let path = self.bundle.clone().unwrap_or_default();
                    let state = Arc::new(AppState::new(
                        service,
                        config,
                        crate::server::BundleOrigin::File(path),
                        key,
                    ));
                    crate::server::serve(state, addr).await
                }
                (None, None) => unreachable!("checked above"),
            }
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Prints what the service runs beside the bundle (canary, cluster, admin API).
fn announce(service: &crate::decide::DecisionService, config: &crate::config::Config) {
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
}
