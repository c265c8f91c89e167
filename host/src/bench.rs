//! `sark bench`: per-path latency of one entrypoint and input, like `opa bench`.

use crate::evaluator::{EvalError, Evaluator, PathKind};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Evaluations run before measuring, to fill caches and the instance pool.
const WARMUP_EVALS: usize = 200;

/// Latency figures of one path.
#[derive(Debug, Clone, Serialize)]
pub struct PathStats {
    /// Median latency, µs.
    pub median_us: f64,
    /// 95th percentile, µs.
    pub p95_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Evaluations per second (single thread).
    pub evals_per_sec: f64,
    /// Number of evaluations measured.
    pub samples: usize,
}

/// The report `sark bench --format json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Figures per path (`wasm`, `native`).
    pub paths: BTreeMap<String, PathStats>,
    /// wasm median / native median, when both ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasm_native_median_ratio: Option<f64>,
    /// Median time to create a fresh instance from the `InstancePre`, µs (wasm only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instantiate_median_us: Option<f64>,
}

/// Summarizes latency samples (in nanoseconds).
pub fn stats(mut samples_ns: Vec<u64>, elapsed: Duration) -> PathStats {
    samples_ns.sort_unstable();
    let n = samples_ns.len().max(1);
    let pct = |p: f64| {
        let idx = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        samples_ns.get(idx).copied().unwrap_or(0) as f64 / 1000.0
    };
    let total: u64 = samples_ns.iter().sum();
    PathStats {
        median_us: pct(0.50),
        p95_us: pct(0.95),
        p99_us: pct(0.99),
        mean_us: total as f64 / n as f64 / 1000.0,
        evals_per_sec: samples_ns.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        samples: samples_ns.len(),
    }
}

/// Evaluates `entrypoint` on `evaluator` repeatedly for `duration` and reports latency.
pub fn bench_path(
    evaluator: &dyn Evaluator,
    entrypoint: &str,
    input_json: &str,
    duration: Duration,
) -> Result<PathStats, EvalError> {
    for _ in 0..WARMUP_EVALS {
        evaluator.evaluate(entrypoint, input_json)?;
    }
    let mut samples = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        let r = evaluator.evaluate(entrypoint, input_json);
        samples.push(t.elapsed().as_nanos() as u64);
        r?;
    }
    Ok(stats(samples, start.elapsed()))
}

/// Runs the benchmark on each evaluator and assembles the report.
pub fn run(
    evaluators: &[&dyn Evaluator],
    entrypoint: &str,
    input_json: &str,
    duration: Duration,
    instantiate: Option<&dyn Fn() -> Result<(), EvalError>>,
) -> Result<BenchReport, EvalError> {
    let mut paths = BTreeMap::new();
    for ev in evaluators {
        let s = bench_path(*ev, entrypoint, input_json, duration)?;
        paths.insert(ev.path().as_str().to_string(), s);
    }
    let ratio = match (
        paths.get(PathKind::Wasm.as_str()),
        paths.get(PathKind::Native.as_str()),
    ) {
        (Some(w), Some(n)) if n.median_us > 0.0 => Some(w.median_us / n.median_us),
        _ => None,
    };
    let instantiate_median_us = match instantiate {
        Some(f) => {
            let mut samples = Vec::new();
            let start = Instant::now();
            for _ in 0..200 {
                let t = Instant::now();
                f()?;
                samples.push(t.elapsed().as_nanos() as u64);
            }
            Some(stats(samples, start.elapsed()).median_us)
        }
        None => None,
    };
    Ok(BenchReport {
        paths,
        wasm_native_median_ratio: ratio,
        instantiate_median_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_samples() {
        let s = stats(
            (1..=100).map(|i| i * 1000).collect(),
            Duration::from_secs(1),
        );
        assert_eq!(s.median_us, 50.0);
        assert_eq!(s.p95_us, 95.0);
        assert_eq!(s.p99_us, 99.0);
        assert_eq!(s.mean_us, 50.5);
        assert_eq!(s.samples, 100);
    }
}
