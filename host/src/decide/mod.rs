//! The one door every decision goes through — the CLI, the server, the benchmarks, the
//! tests and the fuzz targets — read top to bottom in three steps:
//!
//! 1. [`DecisionService::lookup`]: routing by the rollout flags and the policy canary, the
//!    canonical input and the cache key, the local cache. Never blocks, never evaluates.
//! 2. [`DecisionService::evaluate`] (a miss): the shared cache, the chosen path, the
//!    fallback to the native path, storing the result. May block up to the deadline.
//! 3. [`DecisionService::record`]: the observer — the live comparison, the decision log
//!    and the policy canary's shadow evaluation.
//!
//! [`DecisionService::decide`] runs all three. [`ServiceBuilder`] assembles a service.

mod builder;
mod canonical;
mod disagreements;
mod loaded;
mod observer;
mod prepared;
mod request;

pub use builder::ServiceBuilder;
pub use canonical::canonical_json;
pub use disagreements::{Disagreement, Disagreements, RECENT_DISAGREEMENTS, Side};
pub use loaded::LoadedBundle;
pub use prepared::{Door, InputMemo, MEMO_MAX_BODY_BYTES, MEMO_MAX_BYTES, PreparedInput};
pub use request::{Decided, Decision, DecisionRequest, Lookup, Pending, Target};

/// Why a data write was not applied.
#[derive(Debug, thiserror::Error)]
pub enum DataWriteError {
    /// Refused by the store (persistence failed); nothing changed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The cluster could not publish it: no instance applied it.
    #[error("the cluster did not take the write: {0}")]
    Cluster(crate::cluster::ClusterError),
    /// Published to the cluster, but this instance could not apply it yet (it will on its
    /// next resync).
    #[error("the write reached the cluster but is not applied here yet: {0}")]
    NotYetApplied(String),
}

/// Why a feature change was not applied.
#[derive(Debug, thiserror::Error)]
pub enum FeatureChangeError {
    /// Refused by the flags (unknown feature, bad percentage, state file not writable).
    #[error(transparent)]
    Flag(crate::flags::FlagError),
    /// The cluster could not publish it: no instance applied it.
    #[error("the change was not applied on any instance: {0}")]
    Cluster(crate::cluster::ClusterError),
}

use crate::bundle::Bundle;
use crate::cache::{CacheKey, DecisionCache, SharedCache, SharedKey};
use crate::cluster::Cluster;
use crate::config::{CanaryMode, Limits};
use crate::decision_log::DecisionLog;
use crate::evaluator::{EvalError, PathKind};
use crate::flags::{DECISION_CACHE, POLICY_CANARY, RolloutFlags, WASM_ENGINE};
use crate::metrics::Metrics;
use crate::runtime::WasmRuntime;
use crate::store::DataStore;
use canonical::{DecisionMeta, meta_of, outcome_of, user_key_of};
use request::{Cached, Route};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often [`DecisionService::adopt_snapshots_in_background`] looks for a bundle that can
/// move to its own snapshot.
pub const SNAPSHOT_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// The longest wait between adoption attempts while they keep failing.
pub const SNAPSHOT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Flags, cache, metrics and the active bundle behind one door.
pub struct DecisionService {
    runtime: WasmRuntime,
    limits: Limits,
    pool_size: usize,
    active: RwLock<Arc<LoadedBundle>>,
    candidate: RwLock<Option<Arc<LoadedBundle>>>,
    canary_mode: CanaryMode,
    /// The policy canary's shadow comparisons and recent disagreements.
    disagreements: Arc<Disagreements>,
    cache: Arc<DecisionCache>,
    /// Prepared inputs by raw request body, for the front doors.
    memo: InputMemo,
    shared: Option<Arc<dyn SharedCache>>,
    cluster: Option<Arc<Cluster>>,
    flags: Arc<RolloutFlags>,
    metrics: Arc<Metrics>,
    log: Option<DecisionLog>,
    /// The decision log uploader (OPA's `decision_logs.service`).
    uploader: Option<Arc<crate::management::LogUploader>>,
    /// Documents written at run time, layered over every loaded bundle's data.
    data: Arc<DataStore>,
    /// Policies put at run time, compiled with every loaded bundle.
    policies: Arc<crate::store::PolicyStore>,
}

impl DecisionService {
    /// The wasmtime runtime the bundles are loaded on.
    pub fn runtime(&self) -> &WasmRuntime {
        &self.runtime
    }

    /// Loads another bundle on both paths, with this service's runtime, limits and pool size
    /// (for [`Self::swap_bundle`] or [`Self::set_candidate`]), its instance pool filled (as far
    /// as instance slots allow) so the first decisions after the swap do not make instances
    /// on the request path.
    pub fn load_bundle(&self, bundle: Bundle) -> anyhow::Result<LoadedBundle> {
        self.load_bundle_with(bundle, &self.policies.modules_with(None))
    }

    /// [`Self::load_bundle`] with `policies` in place of the policy store's (to try a
    /// change of the run-time policies before it is accepted).
    pub fn load_bundle_with(
        &self,
        bundle: Bundle,
        policies: &[sark_guest::ModuleSource],
    ) -> anyhow::Result<LoadedBundle> {
        let loaded = LoadedBundle::load(
            &self.runtime,
            bundle,
            self.limits,
            self.pool_size,
            &self.data,
            policies,
        )?;
        loaded.wasm.prewarm();
        // The written documents too: the first decisions on the new bundle do not apply them.
        loaded.catch_up_idle();
        Ok(loaded)
    }

    /// The active bundle.
    pub fn active(&self) -> Arc<LoadedBundle> {
        self.active
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in a new bundle; decisions cached for the old one are dropped. In-flight
    /// decisions finish on the bundle they started with.
    pub fn swap_bundle(&self, bundle: LoadedBundle) -> Arc<LoadedBundle> {
        let new = Arc::new(bundle);
        let old = std::mem::replace(
            &mut *self.active.write().unwrap_or_else(|p| p.into_inner()),
            new,
        );
        self.cache.clear();
        old
    }

    /// Instances the active and candidate bundles' pools lost (to traps, or to growing too
    /// large) and have not replaced yet.
    pub fn missing_instances(&self) -> usize {
        self.loaded().map(|b| b.wasm.missing_instances()).sum()
    }

    /// Replaces the instances [`Self::missing_instances`] counts; it instantiates, so call
    /// it off the async runtime. Returns how many it made.
    pub fn replenish_pools(&self) -> usize {
        self.loaded().map(|b| b.wasm.replenish()).sum()
    }

    /// Whether the active or candidate bundle runs on the carried evaluator and may still
    /// adopt its own snapshot ([`Self::adopt_snapshots`]).
    pub fn snapshots_pending(&self) -> bool {
        self.loaded().any(|b| b.wasm.snapshot_pending())
    }

    /// Moves the active and candidate bundles loaded at least `settled` ago from the carried
    /// evaluator to their own snapshots ([`crate::runtime::WasmPolicy::adopt_snapshot`]): it
    /// compiles, so call it off the async runtime. Returns how many adopted one and how many
    /// failed to (logged; such a bundle stays on the carried evaluator, and may try again
    /// when the failure was a lack of instance slots).
    pub fn adopt_snapshots(&self, settled: Duration) -> (usize, usize) {
        let (mut adopted, mut failed) = (0, 0);
        for bundle in self.loaded() {
            if bundle.loaded_at.elapsed() < settled {
                continue;
            }
            match bundle.wasm.adopt_snapshot() {
                Ok(true) => adopted += 1,
                Ok(false) => {}
                Err(e) => {
                    failed += 1;
                    tracing::warn!(
                        revision = %bundle.manifest.revision,
                        error = %e,
                        "the bundle stays on the carried evaluator"
                    );
                }
            }
        }
        (adopted, failed)
    }

    /// Runs until dropped (spawn it on a tokio runtime): every [`SNAPSHOT_CHECK_INTERVAL`],
    /// the bundles on the carried evaluator that have been loaded for `settle` adopt their
    /// own snapshots ([`Self::adopt_snapshots`]). A revision replaced within `settle` is never
    /// compiled. The compilation runs on a thread of its own, not a blocking task of the
    /// runtime, so shutting the runtime down never waits for it; after a failure the checks
    /// back off to [`SNAPSHOT_MAX_BACKOFF`]. Returns at once when `settle` is zero (never).
    pub async fn adopt_snapshots_in_background(self: Arc<Self>, settle: Duration) {
        if settle.is_zero() {
            return;
        }
        let mut wait = SNAPSHOT_CHECK_INTERVAL;
        loop {
            tokio::time::sleep(wait).await;
            if !self.snapshots_pending() {
                wait = SNAPSHOT_CHECK_INTERVAL;
                continue;
            }
            let (done, finished) = tokio::sync::oneshot::channel();
            let worker = self.clone();
            let spawned = std::thread::Builder::new()
                .name("sark-snapshot".into())
                .spawn(move || {
                    let _ = done.send(worker.adopt_snapshots(settle));
                });
            let failed = match spawned {
                Ok(_) => finished.await.map_or(1, |(_, failed)| failed),
                Err(_) => 1,
            };
            wait = match failed {
                0 => SNAPSHOT_CHECK_INTERVAL,
                _ => (wait * 2).min(SNAPSHOT_MAX_BACKOFF),
            };
        }
    }

    /// The active bundle and the candidate, if any.
    fn loaded(&self) -> impl Iterator<Item = Arc<LoadedBundle>> {
        std::iter::once(self.active()).chain(self.candidate())
    }

    /// Sets (or clears) the candidate bundle of the policy canary.
    pub fn set_candidate(&self, bundle: Option<LoadedBundle>) {
        *self.candidate.write().unwrap_or_else(|p| p.into_inner()) = bundle.map(Arc::new);
    }

    /// The candidate bundle, if any.
    pub fn candidate(&self) -> Option<Arc<LoadedBundle>> {
        self.candidate
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How the candidate is used.
    pub fn canary_mode(&self) -> CanaryMode {
        self.canary_mode
    }

    /// The policy canary's shadow comparisons and recent disagreements.
    pub fn disagreements(&self) -> &Arc<Disagreements> {
        &self.disagreements
    }

    /// Whether decisions recorded with a decision id are written to a decision log.
    pub fn logs_decisions(&self) -> bool {
        self.log.is_some()
    }

    /// The decision log uploader, when decision events go to a collector.
    pub fn log_uploader(&self) -> Option<&Arc<crate::management::LogUploader>> {
        self.uploader.as_ref()
    }

    /// Hands every queued decision record to its sinks and waits up to `deadline` for the
    /// uploader to send them (graceful shutdown). True when nothing is left unsent.
    pub async fn flush_decision_logs(&self, deadline: Duration) -> bool {
        match &self.log {
            Some(log) => log.flush(deadline).await,
            None => true,
        }
    }

    /// The policies put at run time.
    pub fn policies(&self) -> &Arc<crate::store::PolicyStore> {
        &self.policies
    }

    /// The documents written at run time.
    pub fn data(&self) -> &Arc<DataStore> {
        &self.data
    }

    /// The memo of prepared inputs by raw request body, for a front door to skip parsing a
    /// body it has seen. `None` while the decision log is on (it records every input as
    /// parsed) and while the `decision_cache` feature is off for everyone (a remembered body
    /// would then still be evaluated: the memo would only cost).
    pub fn input_memo(&self) -> Option<&InputMemo> {
        let caching = self
            .flags
            .get(DECISION_CACHE)
            .is_some_and(|f| f.enabled && f.rollout_percentage > 0);
        if !caching && !self.memo.is_empty() {
            // Nothing to keep it for: its memory goes back now, not when caching resumes.
            self.memo.clear();
        }
        (self.log.is_none() && caching).then_some(&self.memo)
    }

    /// The input of a request `body` that came in on `door` for `path`: the one prepared
    /// for the same bytes earlier (no parse: the value is `None`), or `parse(body)` prepared,
    /// and remembered when there is a memo and the input's user is in the `decision_cache`
    /// rollout (the others' decisions are evaluated every time, so their bodies are not worth
    /// keeping). A parse error is returned as is, and nothing is remembered.
    pub fn prepare_body<E>(
        &self,
        door: Door,
        path: &str,
        body: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<Option<serde_json::Value>, E>,
    ) -> Result<(Option<serde_json::Value>, Arc<PreparedInput>), E> {
        let memo = self.input_memo();
        if let Some(prepared) = memo.and_then(|m| m.get(door, path, body)) {
            return Ok((None, prepared));
        }
        let input = parse(body)?;
        let prepared = Arc::new(PreparedInput::of(input.as_ref()));
        if let Some(memo) = memo
            && self.flags.is_on(DECISION_CACHE, prepared.user_key())
        {
            memo.put(door, path, body, prepared.clone());
        }
        Ok((input, prepared))
    }

    /// The decision cache.
    pub fn cache(&self) -> &Arc<DecisionCache> {
        &self.cache
    }

    /// The cluster's shared state, when the service runs in one.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// The rollout flags.
    pub fn flags(&self) -> &Arc<RolloutFlags> {
        &self.flags
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Applies planned feature states (from [`RolloutFlags::plan_percentage`] or
    /// [`RolloutFlags::plan_rollback_all`]): through Redis, so every instance applies them,
    /// when the service runs in a cluster; else here. Nothing is applied on an error.
    pub async fn change_features(
        &self,
        planned: &std::collections::BTreeMap<String, crate::flags::Feature>,
    ) -> Result<(), FeatureChangeError> {
        match &self.cluster {
            Some(cluster) => cluster
                .publish(planned)
                .await
                .map_err(FeatureChangeError::Cluster),
            None => planned
                .iter()
                .try_for_each(|(name, f)| self.flags.apply(name, f.clone()).map(drop))
                .map_err(FeatureChangeError::Flag),
        }
    }

    /// Commits a planned data write (see [`DataStore::plan_put`] and friends): through Redis
    /// when the service runs in a cluster, so every instance applies it in version order;
    /// else here, journaled to disk first when the store is durable. The next decision sees
    /// it; decisions cached with older data are dropped.
    pub async fn commit_data(&self, write: crate::store::Write) -> Result<(), DataWriteError> {
        match &self.cluster {
            Some(cluster) => {
                cluster
                    .publish_data(&write)
                    .await
                    .map_err(DataWriteError::Cluster)?;
                cluster
                    .catch_up_data()
                    .await
                    .map_err(|e| DataWriteError::NotYetApplied(e.to_string()))?;
            }
            None => {
                let store = self.data.clone();
                tokio::task::spawn_blocking(move || store.commit(write))
                    .await
                    .map_err(|e| DataWriteError::NotYetApplied(e.to_string()))??;
            }
        }
        self.cache.clear();
        Ok(())
    }

    /// Prometheus text exposition of every metric.
    pub fn metrics_text(&self) -> String {
        self.metrics
            .data_state(self.data.bytes(), self.data.version());
        self.metrics
            .encode(Some(self.cache.stats()), &self.flags.all())
    }

    /// Makes one decision: lookup, evaluation on a miss, record (without a decision log
    /// entry: a front door that logs calls the steps itself, with its decision id).
    pub fn decide(&self, req: &DecisionRequest<'_>) -> Result<Decision, EvalError> {
        self.decide_as(req, None)
    }

    /// [`Self::decide`], recorded under `decision_id` (logged when the decision log is on).
    pub fn decide_as(
        &self,
        req: &DecisionRequest<'_>,
        decision_id: Option<&str>,
    ) -> Result<Decision, EvalError> {
        let decided = match self.lookup(req) {
            Lookup::Hit(d) => d,
            Lookup::Miss(pending) => self.evaluate(pending),
        };
        self.record(decided, decision_id)
    }

    /// Step 1: picks the bundle (policy canary in route mode) and the path (`wasm_engine`,
    /// or the forced path), canonicalizes the input once (or takes the form a front door
    /// prepared, see [`DecisionRequest::prepared`]), and answers from the local cache
    /// when the user is in the `decision_cache` rollout and it holds the decision.
    pub fn lookup<'r>(&self, req: &DecisionRequest<'r>) -> Lookup<'r> {
        let started = Instant::now();
        let user = req
            .user_key
            .or(req.prepared.map(PreparedInput::user_key))
            .unwrap_or_else(|| user_key_of(req.input));
        // A forced path (diagnostics: benchmarks, health probes, `--path`) evaluates the
        // active bundle; only routed decisions take part in the canary.
        let routed = match self.canary_mode {
            CanaryMode::Route if req.force_path.is_none() => self
                .candidate()
                .filter(|_| self.flags.is_on(POLICY_CANARY, user)),
            _ => None,
        };
        let canary = routed.is_some();
        let bundle = routed.unwrap_or_else(|| self.active());
        // An ad-hoc query is code from the caller: it runs in the sandbox unless a path is
        // forced, and never falls back to the native path, which has no memory cap.
        let path = match (req.force_path, req.target) {
            (Some(p), _) => p,
            (None, Target::Query(_)) => PathKind::Wasm,
            (None, Target::Entrypoint(_)) if self.flags.is_on(WASM_ENGINE, user) => PathKind::Wasm,
            (None, Target::Entrypoint(_)) => PathKind::Native,
        };
        let cache_on = matches!(req.target, Target::Entrypoint(_))
            && !req.bypass_cache
            && self.flags.is_on(DECISION_CACHE, user);
        self.metrics.assignment(WASM_ENGINE, path.as_str());
        self.metrics
            .assignment(DECISION_CACHE, if cache_on { "on" } else { "off" });

        let route = Route {
            req: *req,
            bundle,
            path,
            canary,
            canonical: match req.prepared {
                Some(p) => p.canonical().clone(),
                None => req.input.map(canonical_json).unwrap_or_default().into(),
            },
            started,
            deadline: req.received.unwrap_or(started) + evaluation_budget(&self.limits),
        };
        let cache = cache_on.then(|| {
            let entrypoint: Arc<str> = sark_guest::normalize_entrypoint(req.target.as_str()).into();
            // Read before evaluating: an evaluation sees this generation or a newer one, so an
            // entry never holds a decision older than its key.
            let key = CacheKey::new(
                route.bundle.id.clone(),
                entrypoint.clone(),
                &route.canonical,
            )
            .with_data_generation(self.data.generation());
            (key, entrypoint)
        });
        if let Some((key, _)) = &cache {
            let t = Instant::now();
            let found = self.cache.get(key, &route.canonical);
            self.metrics.cache_get(t.elapsed(), found.is_some());
            if let Some(result) = found {
                let outcome = Ok(route.decision(result, path, Cached::Local, None));
                return Lookup::Hit(Decided { route, outcome });
            }
        }
        Lookup::Miss(Pending { route, cache })
    }

    /// Step 2: the shared cache (bounded by its own timeout), then evaluation on the chosen
    /// path; a deadline or a lost instance on the component falls back to the native path
    /// when `wasm_engine.fallback_on_error` is set. The result is stored in both caches.
    pub fn evaluate<'r>(&self, pending: Pending<'r>) -> Decided<'r> {
        let Pending { route, cache } = pending;
        let outcome = self.evaluate_miss(&route, cache);
        Decided { route, outcome }
    }

    /// The bundle part of shared cache keys: the bundle, and the version of the written
    /// documents once there are any (in a cluster every instance applies the same writes in
    /// version order, so the same version is the same documents).
    fn shared_bundle_key(&self, bundle: &LoadedBundle) -> String {
        match self.data.version() {
            0 => bundle.id.to_string(),
            v => format!("{}+data{v}", bundle.id),
        }
    }

    fn evaluate_miss(
        &self,
        route: &Route<'_>,
        cache: Option<(CacheKey, Arc<str>)>,
    ) -> Result<Decision, EvalError> {
        let shared = match (&cache, &self.shared) {
            (Some((_, entrypoint)), Some(store)) => Some((
                store,
                SharedKey::new(
                    &self.shared_bundle_key(&route.bundle),
                    entrypoint,
                    &route.canonical,
                ),
            )),
            _ => None,
        };
        if let (Some((store, shared_key)), Some((key, _))) = (&shared, &cache)
            && let Some((result, ttl)) = store.get(shared_key)
        {
            self.cache
                .insert(key.clone(), &route.canonical, result.clone(), Some(ttl));
            return Ok(route.decision(result, route.path, Cached::Shared, None));
        }

        // Evaluators take the input as JSON text; the canonical form is that text.
        let input_json = std::str::from_utf8(&route.canonical).unwrap_or("");
        let target = route.req.target;
        // One budget for the whole decision: the fallback gets what the component left.
        let deadline = route.deadline;
        let left = || deadline.saturating_duration_since(Instant::now());
        let (result, meta, used, fallback_from) = match run(
            Some(&self.metrics),
            &route.bundle,
            route.path,
            target,
            input_json,
            Some(left()),
        ) {
            Ok((r, meta)) => (r, meta, route.path, None),
            Err(e)
                if route.path == PathKind::Wasm
                    && route.req.force_path.is_none()
                    && matches!(target, Target::Entrypoint(_))
                    && e.allows_fallback() =>
            {
                let fallback = self
                    .flags
                    .get(WASM_ENGINE)
                    .is_some_and(|f| f.fallback_on_error);
                if !fallback {
                    return Err(e);
                }
                let kind = e.kind();
                let budget = left();
                if budget.is_zero() {
                    // Nothing left of the request's budget: the component's error stands.
                    return Err(e);
                }
                tracing::warn!(target = target.as_str(), error = %e, "component failed; evaluating on the native path");
                self.metrics.fallback(WASM_ENGINE, kind);
                let (r, meta) = run(
                    Some(&self.metrics),
                    &route.bundle,
                    PathKind::Native,
                    target,
                    input_json,
                    Some(budget),
                )?;
                (r, meta, PathKind::Native, Some(kind))
            }
            Err(e) => return Err(e),
        };
        let result: Option<Arc<str>> = result.map(Arc::from);

        if let Some((key, _)) = cache {
            let ttl = meta
                .cache_ttl
                .filter(|t| t.is_finite() && *t >= 0.0)
                .map(|t| Duration::try_from_secs_f64(t).unwrap_or(crate::cache::MAX_TTL));
            let t = Instant::now();
            self.cache
                .insert(key, &route.canonical, result.clone(), ttl);
            self.metrics.cache_set(t.elapsed());
            if let Some((store, shared_key)) = shared {
                store.put(
                    shared_key,
                    result.clone(),
                    ttl.unwrap_or(self.cache.default_ttl()),
                );
            }
        }
        Ok(route.decision(result, used, Cached::No, fallback_from))
    }
}

/// How long after a request was received its evaluations must have ended: the request
/// budget less a thirty-second of it, kept for answering (releasing a large input's values,
/// writing the error), so the whole request fits in `limits.request_timeout_ms`. On a 1 MB
/// input the answer after a time limit took about 15 ms of the 500 ms budget.
fn evaluation_budget(limits: &Limits) -> Duration {
    let budget = Duration::from_millis(limits.request_timeout_ms);
    budget - budget / 32
}

/// Evaluates `target` on one path of `bundle`: the one evaluation step of the service
/// (decisions, fallbacks and the canary's shadow). `metrics` records the evaluation; the
/// shadow passes none, so the candidate's evaluations never mix with the served ones.
fn run(
    metrics: Option<&Metrics>,
    bundle: &LoadedBundle,
    path: PathKind,
    target: Target<'_>,
    input_json: &str,
    budget: Option<Duration>,
) -> Result<(Option<String>, DecisionMeta), EvalError> {
    let t = Instant::now();
    let evaluator = bundle.evaluator(path);
    let r = match target {
        Target::Entrypoint(entrypoint) => match budget {
            Some(budget) => evaluator.evaluate_within(entrypoint, input_json, budget),
            None => evaluator.evaluate(entrypoint, input_json),
        },
        Target::Query(query) => evaluator.query(query, input_json).map(Some),
    };
    let elapsed = t.elapsed();
    match r {
        Ok(v) => {
            let meta = meta_of(v.as_deref());
            if let Some(m) = metrics {
                m.evaluation(path, elapsed, outcome_of(v.as_deref(), &meta));
            }
            Ok((v, meta))
        }
        Err(e) => {
            if let Some(m) = metrics {
                m.evaluation_error(path, elapsed, e.kind());
            }
            Err(e)
        }
    }
}
