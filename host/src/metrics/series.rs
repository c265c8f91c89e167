//! The time series behind `/admin/timeseries` and the console's charts: every interval
//! (`server.timeseries_interval_ms`) the server samples the live comparison's counters and
//! latency histogram of each implementation, and the decision cache's counters, into a
//! bounded ring of points. A point holds what happened during its interval: request rate,
//! error and fallback shares, cache hit rate and p50/p95/p99 latency per implementation
//! (from the histogram's bucket deltas), and the decision cache's hit rate.

use super::Metrics;
use super::live::{LiveCounts, bucket_bounds};
use crate::cache::CacheStats;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Points kept: an hour at the default interval of 5 s. The newest replaces the oldest.
pub const SERIES_POINTS: usize = 720;

/// One interval of the time series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// End of the interval, in unix milliseconds.
    pub t: u64,
    /// Length of the interval, in milliseconds (as measured, close to the configured one).
    pub interval_ms: u64,
    /// The component path.
    pub wasm: PathPoint,
    /// The native path.
    pub native: PathPoint,
    /// The decision cache (every path).
    pub cache: CachePoint,
}

/// What one implementation did during an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathPoint {
    /// Decisions answered or failed on this path.
    pub requests: u64,
    /// `requests` per second.
    pub requests_per_s: f64,
    /// Decisions that failed on this path.
    pub errors: u64,
    /// `errors / requests`; `null` without requests.
    pub error_rate: Option<f64>,
    /// Decisions this path failed that the other path made (counted on the path that
    /// failed, as `/admin/metrics/comparison` does).
    pub fallbacks: u64,
    /// `fallbacks / (requests + fallbacks)`: the share of the decisions routed to this
    /// path that another path answered; `null` when none were routed here.
    pub fallback_rate: Option<f64>,
    /// Decisions answered from the decision cache.
    pub cache_hits: u64,
    /// `cache_hits / requests`; `null` without requests.
    pub cache_hit_rate: Option<f64>,
    /// Decision latency (lookup to answer, cache hits included) of the interval's answered
    /// decisions, in microseconds; `null` without any.
    pub latency_us: Quantiles,
}

/// Latency quantiles, interpolated within the histogram's buckets (each spans at most 25 %).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// What the decision cache did during an interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CachePoint {
    /// Lookups that returned a decision.
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// `hits / (hits + misses)`; `null` without lookups.
    pub hit_rate: Option<f64>,
    /// Decisions cached at the end of the interval.
    pub entries: usize,
}

/// The counters a point is the difference of.
struct Baseline {
    at: Instant,
    wasm: LiveCounts,
    native: LiveCounts,
    cache: CacheStats,
}

struct Ring {
    baseline: Option<Baseline>,
    points: VecDeque<Point>,
}

/// The bounded ring of points and the counters of the last sample.
pub struct TimeSeries {
    interval: Duration,
    capacity: usize,
    ring: Mutex<Ring>,
}

impl TimeSeries {
    /// An empty series sampled every `interval`, keeping [`SERIES_POINTS`] points.
    pub fn new(interval: Duration) -> Self {
        Self::with_capacity(interval, SERIES_POINTS)
    }

    /// An empty series keeping `capacity` points (at least one), sampled every `interval`
    /// (at least 1 ms).
    pub fn with_capacity(interval: Duration, capacity: usize) -> Self {
        TimeSeries {
            interval: interval.max(Duration::from_millis(1)),
            capacity: capacity.max(1),
            ring: Mutex::new(Ring {
                baseline: None,
                points: VecDeque::new(),
            }),
        }
    }

    /// How often the server samples.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Points kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Takes a sample now: the first one only sets the baseline; each later one adds the
    /// point of the interval since the previous sample.
    pub fn sample(&self, metrics: &Metrics, cache: CacheStats) {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.sample_at(unix_ms, Instant::now(), metrics, cache);
    }

    fn sample_at(&self, unix_ms: u64, at: Instant, metrics: &Metrics, cache: CacheStats) {
        let now = Baseline {
            at,
            wasm: metrics.live[0].counts(),
            native: metrics.live[1].counts(),
            cache,
        };
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(before) = ring.baseline.take() {
            let elapsed = now.at.saturating_duration_since(before.at);
            let point = Point {
                t: unix_ms,
                interval_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                wasm: path_point(&before.wasm, &now.wasm, elapsed),
                native: path_point(&before.native, &now.native, elapsed),
                cache: cache_point(&before.cache, &now.cache),
            };
            if ring.points.len() == self.capacity {
                ring.points.pop_front();
            }
            ring.points.push_back(point);
        }
        ring.baseline = Some(now);
    }

    /// The points whose interval ended after `since` (unix ms), oldest first; every point
    /// without `since`.
    pub fn since(&self, since: Option<u64>) -> Vec<Point> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.points
            .iter()
            .filter(|p| since.is_none_or(|s| p.t > s))
            .cloned()
            .collect()
    }
}

/// `part / whole`, `None` when `whole` is 0.
fn share(part: u64, whole: u64) -> Option<f64> {
    if whole == 0 {
        None
    } else {
        Some(part as f64 / whole as f64)
    }
}

fn path_point(before: &LiveCounts, now: &LiveCounts, elapsed: Duration) -> PathPoint {
    let requests = now.requests.saturating_sub(before.requests);
    let errors = now.errors.saturating_sub(before.errors);
    let fallbacks = now.fallbacks.saturating_sub(before.fallbacks);
    let cache_hits = now.cache_hits.saturating_sub(before.cache_hits);
    let deltas: Vec<u64> = now
        .latency
        .iter()
        .zip(before.latency.iter().chain(std::iter::repeat(&0)))
        .map(|(n, b)| n.saturating_sub(*b))
        .collect();
    let secs = elapsed.as_secs_f64();
    PathPoint {
        requests,
        requests_per_s: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        errors,
        error_rate: share(errors, requests),
        fallbacks,
        fallback_rate: share(fallbacks, requests + fallbacks),
        cache_hits,
        cache_hit_rate: share(cache_hits, requests),
        latency_us: Quantiles {
            p50: quantile_us(&deltas, 0.50),
            p95: quantile_us(&deltas, 0.95),
            p99: quantile_us(&deltas, 0.99),
        },
    }
}

fn cache_point(before: &CacheStats, now: &CacheStats) -> CachePoint {
    let hits = now.hits.saturating_sub(before.hits);
    let misses = now.misses.saturating_sub(before.misses);
    CachePoint {
        hits,
        misses,
        hit_rate: share(hits, hits + misses),
        entries: now.size,
    }
}

/// The `q` quantile of the latencies counted in `buckets` (per bucket of
/// [`bucket_bounds`]), in microseconds: the bucket holding the rank, interpolated linearly
/// within it (as Prometheus' `histogram_quantile`). `None` when nothing was counted.
fn quantile_us(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (below + n) as f64 >= rank {
            let (low, high) = bucket_bounds(i);
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            let ns = low as f64 + (high - low) as f64 * within;
            // Nanosecond precision is all the histogram has.
            return Some(ns.round() / 1000.0);
        }
        below += n;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::live::latency_bucket;
    use super::*;
    use crate::evaluator::PathKind;

    #[test]
    fn quantiles_come_from_the_interval_only() {
        let m = Metrics::new();
        let series = TimeSeries::with_capacity(Duration::from_secs(5), 3);
        let start = Instant::now();
        // Before the first sample: part of the baseline, never of a point.
        for _ in 0..1000 {
            m.decision(PathKind::Wasm, Duration::from_millis(50), false);
        }
        series.sample_at(1_000, start, &m, CacheStats::default());
        assert!(
            series.since(None).is_empty(),
            "the first sample is the baseline"
        );
        for i in 0..100u64 {
            m.decision(PathKind::Wasm, Duration::from_micros(10 + i), i % 4 == 0);
        }
        m.decision_error(PathKind::Wasm);
        m.decision_fallback(PathKind::Wasm);
        m.decision(PathKind::Native, Duration::from_micros(200), false);
        let cache = CacheStats {
            hits: 30,
            misses: 10,
            size: 7,
            ..Default::default()
        };
        series.sample_at(6_000, start + Duration::from_secs(5), &m, cache);
        let points = series.since(None);
        assert_eq!(points.len(), 1);
        let p = &points[0];
        assert_eq!((p.t, p.interval_ms), (6_000, 5_000));
        assert_eq!(p.wasm.requests, 101);
        assert!((p.wasm.requests_per_s - 20.2).abs() < 1e-9);
        assert_eq!(p.wasm.errors, 1);
        assert_eq!(p.wasm.fallbacks, 1);
        assert_eq!(p.wasm.fallback_rate, Some(1.0 / 102.0));
        assert_eq!(p.wasm.cache_hits, 25);
        let p50 = p.wasm.latency_us.p50.unwrap();
        let p99 = p.wasm.latency_us.p99.unwrap();
        // The true p50 is 59.5 µs and the p99 109 µs; buckets span at most 25 %.
        assert!((48.0..=75.0).contains(&p50), "p50 {p50}");
        assert!((88.0..=137.0).contains(&p99), "p99 {p99}");
        assert!(p50 <= p.wasm.latency_us.p95.unwrap() && p.wasm.latency_us.p95.unwrap() <= p99);
        assert!(
            p99 < 1000.0,
            "the 50 ms before the baseline are not in the point"
        );
        assert_eq!(p.native.requests, 1);
        assert_eq!(p.native.error_rate, Some(0.0));
        assert_eq!(p.cache.hit_rate, Some(0.75));
        assert_eq!(p.cache.entries, 7);
    }

    #[test]
    fn an_idle_interval_has_no_quantiles_and_the_ring_is_bounded() {
        let m = Metrics::new();
        let series = TimeSeries::with_capacity(Duration::from_secs(1), 3);
        let start = Instant::now();
        for i in 0..6u64 {
            series.sample_at(
                1_000 * i,
                start + Duration::from_secs(i),
                &m,
                CacheStats::default(),
            );
        }
        let points = series.since(None);
        assert_eq!(points.len(), 3, "bounded to its capacity");
        assert_eq!(
            points.iter().map(|p| p.t).collect::<Vec<_>>(),
            [3_000, 4_000, 5_000]
        );
        assert_eq!(series.since(Some(4_000)).len(), 1);
        let p = &points[2];
        assert_eq!(p.wasm.requests, 0);
        assert_eq!(p.wasm.latency_us.p50, None);
        assert_eq!(p.wasm.error_rate, None);
        assert_eq!(p.cache.hit_rate, None);
    }

    #[test]
    fn a_single_latency_is_found_in_its_bucket() {
        let mut buckets = vec![0u64; super::super::live::LATENCY_BUCKETS];
        buckets[latency_bucket(1_000_000)] = 1;
        let p50 = quantile_us(&buckets, 0.5).unwrap();
        assert!((800.0..=1250.0).contains(&p50), "{p50}");
        assert_eq!(quantile_us(&[0; 4], 0.5), None);
    }
}
