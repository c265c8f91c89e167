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
    /// Serve HTTPS with this certificate chain (PEM); with --tls-private-key-file
    /// (server.tls_cert_file). Reloaded when the file changes.
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM) (server.tls_private_key_file).
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to, for
    /// --authentication=tls (server.tls_ca_cert_file).
    #[arg(long)]
    tls_ca_cert_file: Option<PathBuf>,
    /// How often the TLS files are read again, e.g. `30s`, `1m`, `500ms`
    /// (server.tls_refresh_ms, default 1s).
    #[arg(long, value_parser = parse_period)]
    tls_cert_refresh_period: Option<u64>,
    /// Lowest TLS version accepted: 1.2 or 1.3 (server.min_tls_version, default 1.2).
    #[arg(long)]
    min_tls_version: Option<String>,
    /// Who the client is, for the authorization policy: off, token (bearer token) or tls
    /// (client certificate) (server.authentication, default off).
    #[arg(long, value_enum)]
    authentication: Option<crate::config::Authentication>,
    /// basic: every request must be allowed by the rule default_authorization_decision
    /// (`/system/authz/allow`) of the bundle (server.authorization, default off).
    #[arg(long, value_enum)]
    authorization: Option<crate::config::Authorization>,
}

/// A period as OPA writes it (`500ms`, `30s`, `5m`, `1h`), in ms.
fn parse_period(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (ms, s, m or h)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("`{text}`: the unit must be ms, s, m or h")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too long a period"))
}

impl Args {
    /// The TLS and authentication flags, over the configuration's `server` keys.
    fn apply_security_flags(&self, server: &mut crate::config::ServerConfig) -> Result<()> {
        let path = |flag: &Option<PathBuf>, key: &mut Option<PathBuf>| {
            if let Some(p) = flag {
                *key = Some(p.clone());
            }
        };
        path(&self.tls_cert_file, &mut server.tls_cert_file);
        path(&self.tls_private_key_file, &mut server.tls_private_key_file);
        path(&self.tls_ca_cert_file, &mut server.tls_ca_cert_file);
        if let Some(ms) = self.tls_cert_refresh_period {
            server.tls_refresh_ms = ms;
        }
        if let Some(v) = &self.min_tls_version {
            server.min_tls_version = v.clone();
        }
        if let Some(a) = self.authentication {
            server.authentication = a;
        }
        if let Some(a) = self.authorization {
            server.authorization = a;
        }
        server.validate_security().map_err(anyhow::Error::msg)
    }
}

impl Args {
    /// Loads the bundles, starts the server and serves until SIGTERM or ctrl-c.
    pub fn run(self) -> Result<ExitCode> {
        let mut config = load_config(self.config.as_deref())?;
        self.apply_security_flags(&mut config.server)?;
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
