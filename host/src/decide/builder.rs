//! [`ServiceBuilder`]: the one place a [`DecisionService`] is assembled from a configuration
//! and a bundle. The CLI, the server, the tests, the benches and the fuzz targets all use it,
//! so each of them runs what the binary runs.

use super::{DecisionService, Disagreements, InputMemo, LoadedBundle};
use crate::bundle::Bundle;
use crate::cache::{DecisionCache, SharedCache};
use crate::cluster::{Cluster, RedisDecisionCache};
use crate::config::Config;
use crate::decision_log::{DecisionLog, OpaEvents};
use crate::flags::RolloutFlags;
use crate::metrics::Metrics;
use crate::runtime::{CodeCache, WasmRuntime, default_pool_size};
use crate::store::{DataStore, PolicyStore};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often expired decisions are swept from the cache while the service runs.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Assembles a [`DecisionService`]. The parts that need background tasks — the decision
/// log writer, the cluster's Redis subscriber, the cache sweeper — start only when a tokio
/// runtime is given with [`ServiceBuilder::background`] (as `sark serve` does); one-shot
/// commands run without them.
pub struct ServiceBuilder {
    config: Config,
    code_cache: Option<Option<CodeCache>>,
    pool_size: usize,
    state_file: Option<PathBuf>,
    candidate: Option<Bundle>,
    background: Option<tokio::runtime::Handle>,
    data: Option<Arc<DataStore>>,
    policies: Option<Arc<PolicyStore>>,
    bundle_name: String,
    snapshots: bool,
}

impl ServiceBuilder {
    /// A builder for `config`: the default code cache directory, the default pool size, no
    /// state file, no candidate, no background tasks.
    pub fn new(config: &Config) -> Self {
        ServiceBuilder {
            config: config.clone(),
            code_cache: None,
            pool_size: default_pool_size(),
            state_file: None,
            candidate: None,
            background: None,
            data: None,
            policies: None,
            bundle_name: "sark".into(),
            snapshots: true,
        }
    }

    /// The bundle's name in OPA's terms (the `bundles` key of decision events). Default
    /// `sark`.
    pub fn bundle_name(mut self, name: impl Into<String>) -> Self {
        self.bundle_name = name.into();
        self
    }

    /// Compiles the policies of `store` (put at run time) with every bundle (default: none).
    pub fn policy_store(mut self, store: Arc<PolicyStore>) -> Self {
        self.policies = Some(store);
        self
    }

    /// Layers the documents of `store` over every bundle's data (default: an empty store in
    /// memory, as one-shot commands use).
    pub fn data_store(mut self, store: Arc<DataStore>) -> Self {
        self.data = Some(store);
        self
    }

    /// Uses this compiled-code cache (`None`: compile in memory, cache nothing) instead of
    /// the default directory.
    pub fn code_cache(mut self, cache: Option<CodeCache>) -> Self {
        self.code_cache = Some(cache);
        self
    }

    /// Keeps bundles built by this `sark` on the carried evaluator, never on their own
    /// snapshots ([`WasmRuntime::without_snapshots`]).
    pub fn without_snapshots(mut self) -> Self {
        self.snapshots = false;
        self
    }

    /// Idle instances (and native engines) kept per bundle.
    pub fn pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Persists rollout changes to this file (and starts from it when it exists).
    pub fn state_file(mut self, path: Option<PathBuf>) -> Self {
        self.state_file = path;
        self
    }

    /// The policy canary's candidate bundle.
    pub fn candidate(mut self, bundle: Option<Bundle>) -> Self {
        self.candidate = bundle;
        self
    }

    /// Starts the background parts on `runtime`: the cache sweeper, and as configured the
    /// decision log writer and the cluster (rollout state and shared cache in Redis).
    pub fn background(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.background = Some(runtime);
        self
    }

    /// Loads `bundle` (and the candidate) on both paths and assembles the service.
    pub fn build(self, bundle: Bundle) -> anyhow::Result<DecisionService> {
        let config = &self.config;
        let code_cache = match self.code_cache {
            Some(cache) => cache,
            None => CodeCache::open_default(),
        };
        let mut runtime =
            WasmRuntime::new(config.limits, code_cache).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        if !self.snapshots || config.server.snapshot_delay_ms == 0 {
            runtime = runtime.without_snapshots();
        }
        let data = self
            .data
            .unwrap_or_else(|| Arc::new(DataStore::in_memory(config.data_limits())));
        let policies = self
            .policies
            .unwrap_or_else(|| Arc::new(PolicyStore::in_memory()));
        let modules = policies.modules_with(None);
        let load = |b: Bundle, m: &[sark_guest::ModuleSource]| {
            LoadedBundle::load(&runtime, b, config.limits, self.pool_size, &data, m)
        };
        let active = load(bundle, &modules)?;
        let candidate = self
            .candidate
            .map(|b| load(b, &modules).context("candidate bundle"))
            .transpose()?;
        let flags = Arc::new(RolloutFlags::new(config, self.state_file)?);
        let metrics = Arc::new(Metrics::new());
        let c = &config.features.decision_cache;
        let cache = Arc::new(DecisionCache::new(
            c.max_size,
            Duration::from_secs(c.ttl_seconds),
        ));

        let (mut cluster, mut shared, mut log, mut uploader) = (None, None, None, None);
        if let Some(handle) = &self.background {
            // A long-running service fills its pools now, not on its first requests.
            for bundle in std::iter::once(&active).chain(&candidate) {
                bundle.wasm.prewarm();
                bundle.catch_up_idle();
            }
            let _entered = handle.enter();
            cache.spawn_sweeper(SWEEP_INTERVAL);
            if let Some(c) = &config.cluster {
                let joined = Arc::new(
                    Cluster::new(c, flags.clone(), metrics.clone(), data.clone())
                        .context("cluster")?,
                );
                joined.spawn();
                if config.features.decision_cache.shared {
                    shared =
                        Some(Arc::new(RedisDecisionCache::new(joined.clone()))
                            as Arc<dyn SharedCache>);
                }
                cluster = Some(joined);
            }
            if config.decision_log.enabled || config.decision_logs.is_some() {
                let mut events = OpaEvents {
                    bundle_name: self.bundle_name.clone(),
                    labels: crate::management::labels(&config.labels),
                    ..Default::default()
                };
                if let Some(opa) = &config.decision_logs {
                    events.console = opa.console;
                    if let Some(name) = &opa.service {
                        let service = config.services.0.get(name).with_context(|| {
                            format!("decision_logs.service `{name}` is not in `services`")
                        })?;
                        let client = crate::management::ServiceClient::new(name, service)?;
                        let uploader = Arc::new(crate::management::LogUploader::new(
                            client,
                            opa,
                            metrics.clone(),
                        ));
                        events.upload = Some(uploader);
                    }
                }
                uploader = events.upload.clone();
                log = Some(DecisionLog::start(
                    &config.decision_log,
                    events,
                    metrics.clone(),
                )?);
            }
        }
        Ok(DecisionService {
            limits: config.limits,
            pool_size: self.pool_size,
            active: RwLock::new(Arc::new(active)),
            candidate: RwLock::new(candidate.map(Arc::new)),
            canary_mode: config.features.policy_canary.mode,
            // Disagreements are shown masked as the decision log masks its records.
            disagreements: Arc::new(Disagreements::new(config.decision_log.mask.clone())),
            memo: InputMemo::new(cache.max_size()),
            cache,
            shared,
            cluster,
            flags,
            metrics,
            log,
            uploader,
            runtime,
            data,
            policies,
        })
    }
}
