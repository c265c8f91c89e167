//! The live A/B comparison behind `/admin/metrics/comparison`: per implementation, the most
//! recent latencies and the counts of requests, errors, fallbacks and cache hits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Samples kept per implementation for the live comparison (the most recent ones).
const LIVE_SAMPLES: usize = 8192;

/// Recent latencies and counts of one implementation, for `/admin/metrics/comparison`.
pub(super) struct LiveWindow {
    samples_ns: Box<[AtomicU64]>,
    next: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    fallbacks: AtomicU64,
    cache_hits: AtomicU64,
}

impl LiveWindow {
    pub(super) fn new() -> Self {
        LiveWindow {
            samples_ns: (0..LIVE_SAMPLES).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        }
    }

    /// A decision served on this path.
    pub(super) fn served(&self, elapsed: Duration, cache_hit: bool) {
        self.record(elapsed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if cache_hit {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A decision that failed on this path.
    pub(super) fn failed(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A decision this path failed and another path made.
    pub(super) fn fell_back(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    fn record(&self, elapsed: Duration) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % LIVE_SAMPLES;
        self.samples_ns[i].store(elapsed.as_nanos().max(1) as u64, Ordering::Relaxed);
    }

    pub(super) fn summary(&self) -> serde_json::Value {
        let recorded = (self.next.load(Ordering::Relaxed) as usize).min(LIVE_SAMPLES);
        let mut v: Vec<u64> = self.samples_ns[..recorded]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .filter(|x| *x > 0)
            .collect();
        v.sort_unstable();
        let q = |p: f64| -> serde_json::Value {
            if v.is_empty() {
                serde_json::Value::Null
            } else {
                let idx = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
                serde_json::json!(v[idx] as f64 / 1000.0)
            }
        };
        let requests = self.requests.load(Ordering::Relaxed);
        let hits = self.cache_hits.load(Ordering::Relaxed);
        serde_json::json!({
            "requests": requests,
            "errors": self.errors.load(Ordering::Relaxed),
            "fallbacks": self.fallbacks.load(Ordering::Relaxed),
            "cache_hits": hits,
            "cache_hit_rate": if requests == 0 { 0.0 } else { hits as f64 / requests as f64 },
            "latency_us": { "p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "samples": v.len() },
        })
    }
}
