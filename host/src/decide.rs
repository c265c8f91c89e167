//! `decide()`: the one path every decision takes — rollout flags, decision cache, the
//! chosen implementation, fallback, metrics. The CLI, the server, the benchmarks and the
//! tests all call it.

use crate::bundle::{Bundle, BundleManifest};
use crate::cache::{CacheKey, DecisionCache, SharedCache, SharedKey};
use crate::config::{CanaryMode, Config};
use crate::evaluator::{EvalError, Evaluator, PathKind};
use crate::flags::{DECISION_CACHE, POLICY_CANARY, RolloutFlags, WASM_ENGINE};
use crate::metrics::{Metrics, Outcome};
use crate::native::NativePolicy;
use crate::runtime::{WasmPolicy, WasmRuntime};
use serde::Deserialize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A bundle loaded on both paths.
pub struct LoadedBundle {
    /// The verified bundle's manifest. The file's bytes are not kept: once both paths
    /// are loaded they are dead weight (about 10 MB for the example policies).
    pub manifest: BundleManifest,
    /// The component path.
    pub wasm: WasmPolicy,
    /// The native path.
    pub native: NativePolicy,
    /// Identity used in cache keys: `<revision>@<content hash>`.
    pub id: Arc<str>,
    /// Whether the compiled code came from the on-disk cache.
    pub code_cache_hit: bool,
}

impl LoadedBundle {
    /// Loads `bundle` on both paths.
    pub fn load(
        runtime: &WasmRuntime,
        bundle: Bundle,
        config: &Config,
        pool_size: usize,
    ) -> anyhow::Result<Self> {
        let (wasm, code_cache_hit) = runtime
            .load(&bundle, pool_size)
            .map_err(|e| anyhow::anyhow!("cannot load the bundle component: {e:#}"))?;
        let native = NativePolicy::load(&bundle, config.limits, pool_size)?;
        let manifest = bundle.manifest().clone();
        let id = format!("{}@{}", manifest.revision, manifest.content_hash).into();
        Ok(LoadedBundle {
            manifest,
            wasm,
            native,
            id,
            code_cache_hit,
        })
    }

    /// The evaluator of `path`.
    pub fn evaluator(&self, path: PathKind) -> &dyn Evaluator {
        match path {
            PathKind::Wasm => &self.wasm,
            PathKind::Native => &self.native,
        }
    }
}

/// One decision to make.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRequest<'a> {
    /// Entrypoint (`data.a.b` or `a/b`).
    pub entrypoint: &'a str,
    /// The input document; `None` evaluates without input.
    pub input: Option<&'a serde_json::Value>,
    /// Key for rollout buckets; default: `input.user.id` (or `input.user` when it is a
    /// string), else the empty key shared by all anonymous requests.
    pub user_key: Option<&'a str>,
    /// Evaluate on this path, ignoring `wasm_engine` and never falling back.
    pub force_path: Option<PathKind>,
    /// Skip the decision cache (lookup and store).
    pub bypass_cache: bool,
}

impl<'a> DecisionRequest<'a> {
    /// A request routed by the flags, with the cache.
    pub fn new(entrypoint: &'a str, input: Option<&'a serde_json::Value>) -> Self {
        DecisionRequest {
            entrypoint,
            input,
            user_key: None,
            force_path: None,
            bypass_cache: false,
        }
    }
}

/// A decision and how it was made.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The result as JSON, `None` when undefined.
    pub result: Option<Arc<str>>,
    /// The implementation that produced it (after a fallback: native).
    pub path: PathKind,
    /// Served from the decision cache (local or shared).
    pub cache_hit: bool,
    /// Served from the shared (second-level) cache after a local miss.
    pub shared_cache_hit: bool,
    /// Decided by the candidate bundle (policy canary, route mode).
    pub canary: bool,
    /// The component failure that caused a fallback to the native path.
    pub fallback_from: Option<&'static str>,
    /// Identity of the bundle that decided.
    pub bundle_id: Arc<str>,
    /// Time spent in `decide()`.
    pub elapsed: Duration,
}

/// The fields of a decision document `decide()` looks at.
#[derive(Default, Deserialize)]
struct DecisionMeta {
    allow: Option<bool>,
    cache_ttl: Option<f64>,
}

fn meta_of(result: Option<&str>) -> DecisionMeta {
    match result {
        Some(s) if s.starts_with('{') => serde_json::from_str(s).unwrap_or_default(),
        _ => DecisionMeta::default(),
    }
}

fn outcome_of(result: Option<&str>, meta: &DecisionMeta) -> Outcome {
    match (result, meta.allow) {
        (None, _) => Outcome::Undefined,
        (Some("true"), _) | (_, Some(true)) => Outcome::Allow,
        (Some("false"), _) | (_, Some(false)) => Outcome::Deny,
        _ => Outcome::Value,
    }
}

/// Flags, cache, metrics and the active bundle behind one `decide()`.
pub struct DecisionService {
    runtime: WasmRuntime,
    active: RwLock<Arc<LoadedBundle>>,
    candidate: RwLock<Option<Arc<LoadedBundle>>>,
    canary_mode: CanaryMode,
    cache: Arc<DecisionCache>,
    shared: Option<Arc<dyn SharedCache>>,
    flags: Arc<RolloutFlags>,
    metrics: Arc<Metrics>,
}

impl DecisionService {
    /// Assembles the service around a loaded bundle.
    pub fn new(
        runtime: WasmRuntime,
        bundle: LoadedBundle,
        config: &Config,
        flags: Arc<RolloutFlags>,
    ) -> Self {
        let c = &config.features.decision_cache;
        DecisionService {
            runtime,
            active: RwLock::new(Arc::new(bundle)),
            candidate: RwLock::new(None),
            canary_mode: config.features.policy_canary.mode,
            cache: Arc::new(DecisionCache::new(
                c.max_size,
                Duration::from_secs(c.ttl_seconds),
            )),
            shared: None,
            flags,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// The wasmtime runtime (to load another bundle).
    pub fn runtime(&self) -> &WasmRuntime {
        &self.runtime
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

    /// In shadow mode, evaluates `req` on the candidate bundle and compares with the
    /// decision the caller got. Call it off the response path. Returns the candidate's
    /// result when it disagreed (counted in `policy_canary_disagreements_total` and logged).
    pub fn shadow(
        &self,
        req: &DecisionRequest<'_>,
        served: &Decision,
    ) -> Option<Result<Option<String>, String>> {
        if self.canary_mode != CanaryMode::Shadow || served.canary {
            return None;
        }
        let candidate = self.candidate()?;
        let input_json = req
            .input
            .map(|v| String::from_utf8(canonical_json(v)).unwrap_or_default())
            .unwrap_or_default();
        let shadow = candidate
            .evaluator(PathKind::Wasm)
            .evaluate(req.entrypoint, &input_json)
            .map_err(|e| e.to_string());
        let same = matches!(&shadow, Ok(r) if r.as_deref() == served.result.as_deref());
        if same {
            return None;
        }
        self.metrics
            .canary_disagreement(&sark_guest::normalize_entrypoint(req.entrypoint));
        tracing::warn!(
            entrypoint = req.entrypoint,
            active = served.result.as_deref().unwrap_or("<undefined>"),
            candidate = ?shadow,
            active_bundle = %served.bundle_id,
            candidate_bundle = %candidate.id,
            "policy canary disagreement"
        );
        Some(shadow)
    }

    /// The decision cache.
    pub fn cache(&self) -> &Arc<DecisionCache> {
        &self.cache
    }

    /// Adds a second-level cache, consulted after a local miss and written after every
    /// evaluation (only for users in the `decision_cache` rollout, like the local one).
    pub fn set_shared_cache(&mut self, shared: Arc<dyn SharedCache>) {
        self.shared = Some(shared);
    }

    /// The rollout flags.
    pub fn flags(&self) -> &Arc<RolloutFlags> {
        &self.flags
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Prometheus text exposition of every metric.
    pub fn metrics_text(&self) -> String {
        self.metrics
            .encode(Some(self.cache.stats()), &self.flags.all())
    }

    /// Makes one decision. See the module docs for the order of things.
    pub fn decide(&self, req: &DecisionRequest<'_>) -> Result<Decision, EvalError> {
        self.decide_with(req, true)
            .map(|d| d.expect("an evaluating decision always answers"))
    }

    /// The decision when the cache holds it, else `None` (nothing evaluated, no metrics
    /// recorded). The server answers hits on its async workers and sends misses, which may
    /// run a slow policy up to its deadline, to blocking threads.
    pub fn decide_cached(&self, req: &DecisionRequest<'_>) -> Option<Decision> {
        self.decide_with(req, false).ok().flatten()
    }

    fn decide_with(
        &self,
        req: &DecisionRequest<'_>,
        evaluate: bool,
    ) -> Result<Option<Decision>, EvalError> {
        let started = Instant::now();
        let user = req.user_key.unwrap_or_else(|| user_key_of(req.input));
        let routed_candidate = match self.canary_mode {
            CanaryMode::Route => self
                .candidate()
                .filter(|_| self.flags.is_on(POLICY_CANARY, user)),
            CanaryMode::Shadow => None,
        };
        let canary = routed_candidate.is_some();
        let bundle = routed_candidate.unwrap_or_else(|| self.active());
        let result = self.decide_on(&bundle, req, user, started, evaluate);
        match &result {
            Ok(Some(d)) => self.metrics.decision(d.path, d.elapsed, d.cache_hit),
            Ok(None) => {}
            Err(_) => self.metrics.decision_error(req.force_path.unwrap_or(
                if self.flags.is_on(WASM_ENGINE, user) {
                    PathKind::Wasm
                } else {
                    PathKind::Native
                },
            )),
        }
        result.map(|d| {
            d.map(|mut d| {
                d.canary = canary;
                d
            })
        })
    }

    fn decide_on(
        &self,
        bundle: &Arc<LoadedBundle>,
        req: &DecisionRequest<'_>,
        user: &str,
        started: Instant,
        evaluate: bool,
    ) -> Result<Option<Decision>, EvalError> {
        let path = match req.force_path {
            Some(p) => p,
            None if self.flags.is_on(WASM_ENGINE, user) => PathKind::Wasm,
            None => PathKind::Native,
        };
        let cache_on = !req.bypass_cache && self.flags.is_on(DECISION_CACHE, user);
        if !cache_on && !evaluate {
            return Ok(None);
        }
        let record_assignments = || {
            self.metrics.assignment(WASM_ENGINE, path.as_str());
            self.metrics
                .assignment(DECISION_CACHE, if cache_on { "on" } else { "off" });
        };

        let canonical = match req.input {
            Some(v) => canonical_json(v),
            None => Vec::new(),
        };
        let entrypoint: Option<Arc<str>> =
            cache_on.then(|| sark_guest::normalize_entrypoint(req.entrypoint).into());
        let key = entrypoint
            .as_ref()
            .map(|e| CacheKey::new(bundle.id.clone(), e.clone(), &canonical));
        let hit = |result, shared_cache_hit| {
            Ok(Some(Decision {
                result,
                path,
                cache_hit: true,
                shared_cache_hit,
                canary: false,
                fallback_from: None,
                bundle_id: bundle.id.clone(),
                elapsed: started.elapsed(),
            }))
        };
        if let Some(key) = &key {
            let t = Instant::now();
            let found = self.cache.get(key, &canonical);
            if found.is_some() || evaluate {
                self.metrics.cache_get(t.elapsed(), found.is_some());
            }
            if let Some(result) = found {
                record_assignments();
                return hit(result, false);
            }
        }

        if !evaluate {
            return Ok(None);
        }
        // Local miss: the shared cache next (bounded by its own timeout), then evaluation.
        let shared = entrypoint.as_ref().and_then(|e| {
            let store = self.shared.as_ref()?;
            Some((store, SharedKey::new(&bundle.id, e, &canonical)))
        });
        if let (Some((store, shared_key)), Some(key)) = (&shared, &key)
            && let Some((result, ttl)) = store.get(shared_key)
        {
            self.cache
                .insert(key.clone(), &canonical, result.clone(), Some(ttl));
            record_assignments();
            return hit(result, true);
        }
        record_assignments();

        // Evaluators take the input as JSON text; the canonical form is that text.
        let input_json = std::str::from_utf8(&canonical).unwrap_or("");
        let (result, meta, used, fallback_from) = match self.evaluate_on(
            bundle,
            path,
            req.entrypoint,
            input_json,
        ) {
            Ok((r, meta)) => (r, meta, path, None),
            Err(e) if path == PathKind::Wasm && req.force_path.is_none() && e.allows_fallback() => {
                let fallback = self
                    .flags
                    .get(WASM_ENGINE)
                    .is_some_and(|f| f.fallback_on_error);
                if !fallback {
                    return Err(e);
                }
                let kind = e.kind();
                tracing::warn!(entrypoint = req.entrypoint, error = %e, "component failed; evaluating on the native path");
                self.metrics.fallback(WASM_ENGINE, kind);
                let (r, meta) =
                    self.evaluate_on(bundle, PathKind::Native, req.entrypoint, input_json)?;
                (r, meta, PathKind::Native, Some(kind))
            }
            Err(e) => return Err(e),
        };
        let result: Option<Arc<str>> = result.map(Arc::from);

        if let Some(key) = key {
            let ttl = meta
                .cache_ttl
                .filter(|t| t.is_finite() && *t >= 0.0)
                .map(Duration::from_secs_f64);
            let t = Instant::now();
            self.cache.insert(key, &canonical, result.clone(), ttl);
            self.metrics.cache_set(t.elapsed());
            if let Some((store, shared_key)) = shared {
                store.put(
                    shared_key,
                    result.clone(),
                    ttl.unwrap_or(self.cache.default_ttl()),
                );
            }
        }
        Ok(Some(Decision {
            result,
            path: used,
            cache_hit: false,
            shared_cache_hit: false,
            canary: false,
            fallback_from,
            bundle_id: bundle.id.clone(),
            elapsed: started.elapsed(),
        }))
    }

    fn evaluate_on(
        &self,
        bundle: &LoadedBundle,
        path: PathKind,
        entrypoint: &str,
        input_json: &str,
    ) -> Result<(Option<String>, DecisionMeta), EvalError> {
        let t = Instant::now();
        let r = bundle.evaluator(path).evaluate(entrypoint, input_json);
        let elapsed = t.elapsed();
        match r {
            Ok(v) => {
                let meta = meta_of(v.as_deref());
                self.metrics
                    .evaluation(path, elapsed, outcome_of(v.as_deref(), &meta));
                Ok((v, meta))
            }
            Err(e) => {
                self.metrics.evaluation_error(path, elapsed, e.kind());
                Err(e)
            }
        }
    }
}

/// The default rollout key of a request: `input.user.id`, or `input.user` when it is a
/// string, else empty.
fn user_key_of(input: Option<&serde_json::Value>) -> &str {
    let user = input.and_then(|i| i.get("user"));
    match user {
        Some(serde_json::Value::String(s)) => s,
        Some(u) => u.get("id").and_then(|v| v.as_str()).unwrap_or(""),
        None => "",
    }
}

/// Compact JSON with object keys sorted at every level, so key order never changes a cache
/// key (independent of serde_json's `preserve_order` feature).
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    fn write(v: &serde_json::Value, out: &mut Vec<u8>) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_unstable();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    // Serializing a string cannot fail.
                    let _ = serde_json::to_writer(&mut *out, k);
                    out.push(b':');
                    write(&map[k], out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => {
                let _ = serde_json::to_writer(&mut *out, scalar);
            }
        }
    }
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"s"}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            String::from_utf8(canonical_json(&a)).unwrap(),
            r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
    }

    #[test]
    fn user_key_comes_from_the_input() {
        let v = serde_json::json!({"user": {"id": "alice", "role": "x"}});
        assert_eq!(user_key_of(Some(&v)), "alice");
        let v = serde_json::json!({"user": "bob"});
        assert_eq!(user_key_of(Some(&v)), "bob");
        assert_eq!(user_key_of(None), "");
    }

    #[test]
    fn outcomes_follow_allow() {
        let m = meta_of(Some(r#"{"allow":false,"cache_ttl":60}"#));
        assert_eq!(outcome_of(Some("{}"), &m), Outcome::Deny);
        assert_eq!(m.cache_ttl, Some(60.0));
        assert_eq!(
            outcome_of(Some("true"), &DecisionMeta::default()),
            Outcome::Allow
        );
        assert_eq!(
            outcome_of(None, &DecisionMeta::default()),
            Outcome::Undefined
        );
        assert_eq!(
            outcome_of(Some("3"), &DecisionMeta::default()),
            Outcome::Value
        );
    }
}
