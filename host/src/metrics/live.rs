//! The live A/B comparison behind `/admin/metrics/comparison`: per implementation, the most
//! recent latencies and the counts of requests, errors, fallbacks and cache hits; and the
//! cumulative latency histogram the time series (`/admin/timeseries`) takes its deltas of.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Samples kept per implementation for the live comparison (the most recent ones).
const LIVE_SAMPLES: usize = 8192;

/// Buckets of the cumulative latency histogram: four per power of two of nanoseconds, so
/// the bounds of a bucket are within 25 % of each other, up to 2^40 ns (about 18 minutes;
/// anything longer lands in the last bucket).
pub(super) const LATENCY_BUCKETS: usize = 160;

/// The histogram bucket of a latency of `ns` nanoseconds.
pub(super) fn latency_bucket(ns: u64) -> usize {
    let ns = ns.max(1);
    let octave = (63 - ns.leading_zeros()) as usize;
    let sub = if octave >= 2 {
        ((ns >> (octave - 2)) & 3) as usize
    } else {
        0
    };
    (octave * 4 + sub).min(LATENCY_BUCKETS - 1)
}

/// The bounds of bucket `i` in nanoseconds: `[low, high)`.
pub(super) fn bucket_bounds(i: usize) -> (u64, u64) {
    let (octave, sub) = (i / 4, (i % 4) as u64);
    if octave < 2 {
        let low = 1u64 << octave;
        return (low, low * 2);
    }
    let step = 1u64 << (octave - 2);
    ((4 + sub) * step, (5 + sub) * step)
}

/// The counters of one implementation at one moment (cumulative since start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LiveCounts {
    /// Decisions answered or failed on this path.
    pub(super) requests: u64,
    /// Decisions that failed on this path.
    pub(super) errors: u64,
    /// Decisions this path failed that the other path made.
    pub(super) fallbacks: u64,
    /// Decisions answered from the decision cache.
    pub(super) cache_hits: u64,
    /// Answered decisions per latency bucket (see [`bucket_bounds`]).
    pub(super) latency: Vec<u64>,
}

/// Recent latencies and counts of one implementation, for `/admin/metrics/comparison`.
pub(super) struct LiveWindow {
    samples_ns: Box<[AtomicU64]>,
    next: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    fallbacks: AtomicU64,
    cache_hits: AtomicU64,
    /// Answered decisions per latency bucket, since start.
    latency: Box<[AtomicU64]>,
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
            latency: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The cumulative counters now (for the time series).
    pub(super) fn counts(&self) -> LiveCounts {
        LiveCounts {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            latency: self
                .latency
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
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
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % LIVE_SAMPLES;
        self.samples_ns[i].store(ns, Ordering::Relaxed);
        self.latency[latency_bucket(ns)].fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_latency_falls_within_its_bucket() {
        for ns in (1..5000u64).chain([1 << 20, 123_456_789, (1 << 40) - 1]) {
            let (low, high) = bucket_bounds(latency_bucket(ns));
            assert!(low <= ns && ns < high, "{ns} not in [{low}, {high})");
            assert!(high - low <= (low / 4).max(2), "[{low}, {high}) too wide");
        }
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn counts_follow_what_was_recorded() {
        let w = LiveWindow::new();
        w.served(Duration::from_micros(10), false);
        w.served(Duration::from_micros(10), true);
        w.failed();
        w.fell_back();
        let c = w.counts();
        assert_eq!(
            (c.requests, c.errors, c.fallbacks, c.cache_hits),
            (3, 1, 1, 1)
        );
        assert_eq!(c.latency[latency_bucket(10_000)], 2);
        assert_eq!(c.latency.iter().sum::<u64>(), 2, "a failure has no latency");
    }
}
