//! Prometheus metrics (text exposition via `prometheus-client`), with the names SARK users
//! already chart. Label combinations on the hot path are resolved once at startup, so
//! recording a decision touches only atomics. Beside them, the live A/B comparison of the
//! implementations and its sampled time series ([`TimeSeries`], `/admin/timeseries`).

use crate::cache::CacheStats;
use crate::evaluator::PathKind;
use crate::flags::Feature;
use live::LiveWindow;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod cluster;
mod live;
mod series;

pub use series::{CachePoint, PathPoint, Point, Quantiles, SERIES_POINTS, TimeSeries};

type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Name of the cache implementation in metric labels.
const CACHE_IMPL: &str = "dashmap";

fn evaluation_histogram() -> Histogram {
    // 1 µs .. ~0.5 s.
    Histogram::new(exponential_buckets(1e-6, 2.0, 20))
}

fn cache_histogram() -> Histogram {
    // 50 ns .. ~1.6 ms.
    Histogram::new(exponential_buckets(5e-8, 2.0, 16))
}

/// How an evaluation ended, for `opa_evaluation_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `true`, or an object with `"allow": true`.
    Allow,
    /// `false`, or an object with `"allow": false`.
    Deny,
    /// Undefined.
    Undefined,
    /// Any other value.
    Value,
    /// An error.
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Undefined => "undefined",
            Outcome::Value => "value",
            Outcome::Error => "error",
        }
    }
}

const OUTCOMES: [Outcome; 5] = [
    Outcome::Allow,
    Outcome::Deny,
    Outcome::Undefined,
    Outcome::Value,
    Outcome::Error,
];

struct PathHandles {
    duration: Histogram,
    outcomes: [Counter; 5],
}

/// Every metric of the runtime.
pub struct Metrics {
    registry: Registry,
    paths: [PathHandles; 2],
    errors: Family<Labels, Counter>,
    cache_get: Histogram,
    cache_set: Histogram,
    cache_hit: Counter,
    cache_miss: Counter,
    cache_set_ok: Counter,
    cache_evict: Counter,
    cache_expire: Counter,
    cache_size: Gauge,
    reported_evictions: AtomicU64,
    reported_expirations: AtomicU64,
    assignments: Family<Labels, Counter>,
    /// Pre-resolved counters of the built-in features' assignments.
    builtin_assignments: Vec<(&'static str, &'static str, Counter)>,
    rollout: Family<Labels, Gauge>,
    fallbacks: Family<Labels, Counter>,
    reloads: Family<Labels, Counter>,
    canary_disagreements: Family<Labels, Counter>,
    decision_log_dropped: Counter,
    decision_logs_dropped: Counter,
    evaluations_shed: Counter,
    fail_closed: Family<Labels, Counter>,
    cache_ops: Family<Labels, Counter>,
    shared_cache_get: Histogram,
    cluster_connected: Gauge,
    cluster_updates: Family<Labels, Counter>,
    cluster_data_writes: Counter,
    data_writes: Family<Labels, Counter>,
    data_bytes: Gauge,
    data_version: Gauge,
    live: [LiveWindow; 2],
}

fn idx(path: PathKind) -> usize {
    match path {
        PathKind::Wasm => 0,
        PathKind::Native => 1,
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let durations: HistogramFamily = Family::new_with_constructor(evaluation_histogram);
        registry.register(
            "opa_evaluation_duration_seconds",
            "Time to evaluate a policy decision, by implementation",
            durations.clone(),
        );
        let totals: Family<Labels, Counter> = Family::default();
        registry.register(
            "opa_evaluation",
            "Policy evaluations by implementation and result",
            totals.clone(),
        );
        let errors: Family<Labels, Counter> = Family::default();
        registry.register(
            "opa_evaluation_errors",
            "Evaluation errors by implementation and error type",
            errors.clone(),
        );
        let cache_durations: HistogramFamily = Family::new_with_constructor(cache_histogram);
        registry.register(
            "cache_operation_duration_seconds",
            "Decision cache operation latency",
            cache_durations.clone(),
        );
        let cache_ops: Family<Labels, Counter> = Family::default();
        registry.register(
            "cache_operations",
            "Decision cache operations by result",
            cache_ops.clone(),
        );
        let cache_size = Gauge::default();
        registry.register(
            "decision_cache_entries",
            "Decisions currently cached",
            cache_size.clone(),
        );
        let assignments: Family<Labels, Counter> = Family::default();
        registry.register(
            "feature_flag_assignments",
            "Decisions routed by a rollout feature, by the implementation chosen",
            assignments.clone(),
        );
        let rollout: Family<Labels, Gauge> = Family::default();
        registry.register(
            "feature_flag_rollout_percentage",
            "Rollout percentage of each feature",
            rollout.clone(),
        );
        let fallbacks: Family<Labels, Counter> = Family::default();
        registry.register(
            "implementation_fallback",
            "Decisions re-evaluated on the native path after a component failure",
            fallbacks.clone(),
        );
        let reloads: Family<Labels, Counter> = Family::default();
        registry.register(
            "bundle_reloads",
            "Bundle reload attempts by result",
            reloads.clone(),
        );
        let canary_disagreements: Family<Labels, Counter> = Family::default();
        registry.register(
            "policy_canary_disagreements",
            "Shadow decisions of the candidate bundle that differ from the active bundle's",
            canary_disagreements.clone(),
        );
        let fail_closed: Family<Labels, Counter> = Family::default();
        registry.register(
            "gateway_fail_closed",
            "Gateway authorizations denied because the policy failed or gave no decision",
            fail_closed.clone(),
        );
        let decision_log_dropped = Counter::default();
        registry.register(
            "decision_log_dropped",
            "Decision log records dropped because the writer fell behind",
            decision_log_dropped.clone(),
        );

        let decision_logs_dropped = Counter::default();
        registry.register(
            "decision_logs_dropped",
            "Decision events dropped from the upload buffer (decision_logs.reporting.buffer_size_limit_bytes) or too large for one upload",
            decision_logs_dropped.clone(),
        );
        let evaluations_shed = Counter::default();
        registry.register(
            "evaluations_shed",
            "Evaluations refused with 503 because server.max_concurrent_evaluations were running and the queue was full or its wait ran out",
            evaluations_shed.clone(),
        );
        let shared_cache_get = Histogram::new(exponential_buckets(1e-5, 2.0, 16));
        registry.register(
            "shared_cache_lookup_duration_seconds",
            "Time a decision waited on the shared (Redis) cache after a local miss",
            shared_cache_get.clone(),
        );
        let cluster_connected = Gauge::default();
        registry.register(
            "cluster_redis_connected",
            "1 while the instance is connected to the cluster's Redis (0: degraded)",
            cluster_connected.clone(),
        );
        let cluster_updates: Family<Labels, Counter> = Family::default();
        registry.register(
            "cluster_rollout_updates",
            "Rollout changes applied from the cluster, by source (local, pubsub, resync)",
            cluster_updates.clone(),
        );
        let data_writes: Family<Labels, Counter> = Family::default();
        registry.register(
            "data_api_writes",
            "Writes through the data API (PUT, PATCH, DELETE /v1/data), by operation and result (ok, refused, error)",
            data_writes.clone(),
        );
        let data_bytes = Gauge::default();
        registry.register(
            "data_documents_bytes",
            "Serialized size of the documents written through the data API",
            data_bytes.clone(),
        );
        let data_version = Gauge::default();
        registry.register(
            "data_version",
            "Version of the last applied data write (the same on every instance of a cluster once applied)",
            data_version.clone(),
        );
        let cluster_data_writes = Counter::default();
        registry.register(
            "cluster_data_writes_applied",
            "Data API writes applied from the cluster (this instance's own included)",
            cluster_data_writes.clone(),
        );

        let path = |p: PathKind| PathHandles {
            duration: durations
                .get_or_create(&vec![("implementation", p.as_str().to_string())])
                .clone(),
            outcomes: OUTCOMES.map(|o| {
                totals
                    .get_or_create(&vec![
                        ("implementation", p.as_str().to_string()),
                        ("result", o.label().to_string()),
                    ])
                    .clone()
            }),
        };
        let op = |operation: &str, result: &str| {
            cache_ops
                .get_or_create(&vec![
                    ("implementation", CACHE_IMPL.to_string()),
                    ("operation", operation.to_string()),
                    ("result", result.to_string()),
                ])
                .clone()
        };
        let cache_duration = |operation: &str| {
            cache_durations
                .get_or_create(&vec![
                    ("implementation", CACHE_IMPL.to_string()),
                    ("operation", operation.to_string()),
                ])
                .clone()
        };
        Metrics {
            paths: [path(PathKind::Wasm), path(PathKind::Native)],
            errors,
            cache_get: cache_duration("get"),
            cache_set: cache_duration("set"),
            cache_hit: op("get", "hit"),
            cache_miss: op("get", "miss"),
            cache_set_ok: op("set", "ok"),
            cache_evict: op("evict", "ok"),
            cache_expire: op("expire", "ok"),
            cache_size,
            reported_evictions: AtomicU64::new(0),
            reported_expirations: AtomicU64::new(0),
            builtin_assignments: [
                (crate::flags::WASM_ENGINE, "wasm"),
                (crate::flags::WASM_ENGINE, "native"),
                (crate::flags::DECISION_CACHE, "on"),
                (crate::flags::DECISION_CACHE, "off"),
            ]
            .into_iter()
            .map(|(f, i)| {
                let c = assignments
                    .get_or_create(&vec![
                        ("feature", f.to_string()),
                        ("implementation", i.to_string()),
                    ])
                    .clone();
                (f, i, c)
            })
            .collect(),
            assignments,
            rollout,
            fallbacks,
            reloads,
            canary_disagreements,
            decision_log_dropped,
            decision_logs_dropped,
            evaluations_shed,
            fail_closed,
            cache_ops,
            shared_cache_get,
            cluster_connected,
            cluster_updates,
            cluster_data_writes,
            data_writes,
            data_bytes,
            data_version,
            live: [LiveWindow::new(), LiveWindow::new()],
            registry,
        }
    }

    /// Records one evaluation on `path`.
    pub fn evaluation(&self, path: PathKind, elapsed: Duration, outcome: Outcome) {
        let h = &self.paths[idx(path)];
        h.duration.observe(elapsed.as_secs_f64());
        let i = OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(4);
        h.outcomes[i].inc();
    }

    /// Records an evaluation error of `error_type` on `path`.
    pub fn evaluation_error(&self, path: PathKind, elapsed: Duration, error_type: &str) {
        self.evaluation(path, elapsed, Outcome::Error);
        self.errors
            .get_or_create(&vec![
                ("implementation", path.as_str().to_string()),
                ("error_type", error_type.to_string()),
            ])
            .inc();
    }

    /// Records a cache lookup.
    pub fn cache_get(&self, elapsed: Duration, hit: bool) {
        self.cache_get.observe(elapsed.as_secs_f64());
        if hit {
            &self.cache_hit
        } else {
            &self.cache_miss
        }
        .inc();
    }

    /// Records a cache insert.
    pub fn cache_set(&self, elapsed: Duration) {
        self.cache_set.observe(elapsed.as_secs_f64());
        self.cache_set_ok.inc();
    }

    /// Records which implementation a feature routed a decision to.
    pub fn assignment(&self, feature: &str, implementation: &'static str) {
        match self
            .builtin_assignments
            .iter()
            .find(|(f, i, _)| *f == feature && *i == implementation)
        {
            Some((_, _, counter)) => {
                counter.inc();
            }
            None => {
                self.assignments
                    .get_or_create(&vec![
                        ("feature", feature.to_string()),
                        ("implementation", implementation.to_string()),
                    ])
                    .inc();
            }
        }
    }

    /// Records a fallback to the native path.
    pub fn fallback(&self, feature: &str, error_type: &str) {
        self.fallbacks
            .get_or_create(&vec![
                ("feature", feature.to_string()),
                ("error_type", error_type.to_string()),
            ])
            .inc();
    }

    /// Records a served decision for the live comparison.
    pub fn decision(&self, path: PathKind, elapsed: Duration, cache_hit: bool) {
        self.live[idx(path)].served(elapsed, cache_hit);
    }

    /// Records a failed decision for the live comparison.
    pub fn decision_error(&self, path: PathKind) {
        self.live[idx(path)].failed();
    }

    /// Records, for the live comparison, that `path` failed and another path decided.
    pub fn decision_fallback(&self, path: PathKind) {
        self.live[idx(path)].fell_back();
    }

    /// Per implementation: requests, errors, fallbacks, cache hit rate and p50/p95/p99 of the
    /// most recent decisions, measured on live traffic.
    pub fn comparison(&self) -> serde_json::Value {
        serde_json::json!({
            "wasm": self.live[0].summary(),
            "native": self.live[1].summary(),
        })
    }

    /// Records a bundle reload attempt (`result` = `success` | `failure`).
    pub fn reload(&self, result: &str) {
        self.reloads
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    /// Records a data API write (`operation` put | patch | delete; `result` ok | refused |
    /// error).
    pub fn data_write(&self, operation: &str, result: &str) {
        self.data_writes
            .get_or_create(&vec![
                ("operation", operation.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    /// Sets the size and version of the written documents (read when metrics are encoded).
    pub fn data_state(&self, bytes: usize, version: u64) {
        self.data_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.data_version
            .set(i64::try_from(version).unwrap_or(i64::MAX));
    }

    /// Records a shadow disagreement of the candidate bundle.
    pub fn canary_disagreement(&self, entrypoint: &str) {
        self.canary_disagreements
            .get_or_create(&vec![("entrypoint", entrypoint.to_string())])
            .inc();
    }

    /// Records a gateway authorization that failed closed (`reason` = `error` | `no_decision`).
    pub fn fail_closed(&self, endpoint: &str, reason: &str) {
        self.fail_closed
            .get_or_create(&vec![
                ("endpoint", endpoint.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }

    /// Records a dropped decision log record.
    pub fn decision_log_dropped(&self) {
        self.decision_log_dropped.inc();
    }

    /// Counts `n` decision events dropped by the uploader.
    pub fn decision_logs_dropped(&self, n: u64) {
        self.decision_logs_dropped.inc_by(n);
    }

    /// Counts an evaluation refused by the server's admission bound.
    pub fn evaluation_shed(&self) {
        self.evaluations_shed.inc();
    }

    /// Encodes everything in the Prometheus text format, after refreshing the gauges and
    /// counters that mirror the cache and the flags.
    pub fn encode(
        &self,
        cache: Option<CacheStats>,
        features: &BTreeMap<String, Feature>,
    ) -> String {
        if let Some(stats) = cache {
            self.cache_size.set(stats.size as i64);
            let sync = |reported: &AtomicU64, now: u64, counter: &Counter| {
                let before = reported.swap(now, Ordering::Relaxed);
                counter.inc_by(now.saturating_sub(before));
            };
            sync(&self.reported_evictions, stats.evictions, &self.cache_evict);
            sync(
                &self.reported_expirations,
                stats.expirations,
                &self.cache_expire,
            );
        }
        for (name, f) in features {
            let pct = if f.enabled {
                i64::from(f.rollout_percentage)
            } else {
                0
            };
            self.rollout
                .get_or_create(&vec![("feature", name.clone())])
                .set(pct);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_users_chart_are_exposed() {
        let m = Metrics::new();
        m.evaluation(PathKind::Wasm, Duration::from_micros(10), Outcome::Allow);
        m.evaluation_error(PathKind::Native, Duration::from_micros(10), "timeout");
        m.cache_get(Duration::from_nanos(300), true);
        m.cache_set(Duration::from_nanos(300));
        m.assignment("wasm_engine", "wasm");
        m.fallback("wasm_engine", "timeout");
        let mut features = BTreeMap::new();
        features.insert(
            "wasm_engine".to_string(),
            Feature {
                enabled: true,
                rollout_percentage: 25,
                fallback_on_error: true,
            },
        );
        let text = m.encode(
            Some(CacheStats {
                evictions: 3,
                ..Default::default()
            }),
            &features,
        );
        for needle in [
            "opa_evaluation_duration_seconds_count{implementation=\"wasm\"} 1",
            "opa_evaluation_total{implementation=\"wasm\",result=\"allow\"} 1",
            "opa_evaluation_errors_total{implementation=\"native\",error_type=\"timeout\"} 1",
            "cache_operation_duration_seconds_count{implementation=\"dashmap\",operation=\"get\"} 1",
            "cache_operations_total{implementation=\"dashmap\",operation=\"get\",result=\"hit\"} 1",
            "cache_operations_total{implementation=\"dashmap\",operation=\"evict\",result=\"ok\"} 3",
            "feature_flag_assignments_total{feature=\"wasm_engine\",implementation=\"wasm\"} 1",
            "feature_flag_rollout_percentage{feature=\"wasm_engine\"} 25",
            "implementation_fallback_total{feature=\"wasm_engine\",error_type=\"timeout\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
