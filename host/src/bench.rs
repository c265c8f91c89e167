//! `sark bench`: per-path latency of one entrypoint and input, like `opa bench`.

use crate::decide::{DecisionRequest, DecisionService, canonical_json};
use crate::evaluator::{EvalError, Footprint, PathKind};
use crate::flags::{DECISION_CACHE, WASM_ENGINE};
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
    /// `decide()` per path, forced to that path, cache bypassed (`wasm`, `native`).
    pub paths: BTreeMap<String, PathStats>,
    /// `decide()` as traffic sees it: `cache_hit`, and `wasm_miss` / `native_miss` (routed
    /// by the flags with the cache off).
    pub decide: BTreeMap<String, PathStats>,
    /// The evaluators called directly, without `decide()` (and `native-interpreter`: the
    /// native path without its RVM programs, for reference).
    pub raw: BTreeMap<String, PathStats>,
    /// wasm median / native median of `paths`, when both ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasm_native_median_ratio: Option<f64>,
    /// `raw.wasm` / `raw.native` timed in alternating turns of 20 ms: the median over the
    /// rounds of the two turns' median ratio (robust to the machine changing speed during
    /// the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_wasm_native_ratio: Option<f64>,
    /// Median cost of flags, cache bookkeeping and metrics on a miss:
    /// `decide.wasm_miss` − `raw.wasm`, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decide_overhead_us: Option<f64>,
    /// Where the wasm path's new instances came from: `snapshot` (the bundle's memory
    /// image) or `payload` (loaded into the carried evaluator).
    pub wasm_instances: &'static str,
    /// Median time to create a fresh instance from the `InstancePre`, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instantiate_median_us: Option<f64>,
    /// Median of instantiate + first evaluation on that fresh instance, µs (the cost a
    /// replaced instance pays: copy-on-write faults of the snapshot's memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_eval_on_fresh_instance_median_us: Option<f64>,
    /// Memory per pooled component instance (`wasm`) and per native engine clone
    /// (`native`), each measured with [`FOOTPRINT_INSTANCES`] held at once.
    pub footprint: BTreeMap<String, Footprint>,
}

/// Instances (or engine clones) held at once to measure what one holds.
pub const FOOTPRINT_INSTANCES: usize = 8;

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

/// Runs `f` repeatedly for `duration` after a warm-up and reports its latency.
pub fn measure(
    duration: Duration,
    mut f: impl FnMut() -> Result<(), EvalError>,
) -> Result<PathStats, EvalError> {
    let mut fns: [Timed<'_>; 1] = [(String::new(), Box::new(&mut f))];
    let (mut all, _) = measure_interleaved(duration, &mut fns)?;
    Ok(all
        .pop_first()
        .map(|(_, stats)| stats)
        .unwrap_or_else(|| stats(Vec::new(), Duration::ZERO)))
}

/// Length of one path's turn in [`measure_interleaved`].
const TURN: Duration = Duration::from_millis(20);

/// What [`measure_interleaved`] returns: each function's latency over the whole run, by
/// name, and each round's medians (µs), one column per function.
pub type Interleaved = (BTreeMap<String, PathStats>, Vec<Vec<f64>>);

/// One function [`measure_interleaved`] times, by name.
pub type Timed<'a> = (String, Box<dyn FnMut() -> Result<(), EvalError> + 'a>);

/// Runs each of `fns` in turns of [`TURN`], round after round, for `duration` in all
/// (after a warm-up of each). Every function thus sees the same states of a noisy machine
/// (another tenant, a frequency change), which a sequential run gives to one path only.
/// Returns each one's latency over the whole run and, for each round, its median (µs).
pub fn measure_interleaved(
    duration: Duration,
    fns: &mut [Timed<'_>],
) -> Result<Interleaved, EvalError> {
    for (_, f) in fns.iter_mut() {
        for _ in 0..WARMUP_EVALS {
            f()?;
        }
    }
    let mut samples: Vec<Vec<u64>> = fns.iter().map(|_| Vec::with_capacity(1 << 16)).collect();
    let mut busy = vec![Duration::ZERO; fns.len()];
    let mut rounds = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let mut round = Vec::with_capacity(fns.len());
        for (i, (_, f)) in fns.iter_mut().enumerate() {
            let from = samples[i].len();
            let turn = Instant::now();
            while turn.elapsed() < TURN {
                let t = Instant::now();
                let r = f();
                samples[i].push(t.elapsed().as_nanos() as u64);
                r?;
            }
            busy[i] += turn.elapsed();
            round.push(stats(samples[i][from..].to_vec(), TURN).median_us);
        }
        rounds.push(round);
    }
    let all = fns
        .iter()
        .zip(samples)
        .zip(busy)
        .map(|(((name, _), s), busy)| (name.clone(), stats(s, busy)))
        .collect();
    Ok((all, rounds))
}

/// The median over `rounds` of column `a`'s median divided by column `b`'s: a ratio of two
/// functions timed in the same rounds.
pub fn paired_ratio(rounds: &[Vec<f64>], a: usize, b: usize) -> Option<f64> {
    let mut ratios: Vec<f64> = rounds
        .iter()
        .filter(|r| r[b] > 0.0)
        .map(|r| r[a] / r[b])
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some(ratios[ratios.len() / 2])
}

/// Benchmarks `entrypoint` with `input` through `service` on the requested paths. The
/// flags are changed during the run and restored afterwards. `interpreter`, the bundle on
/// Regorus's interpreter alone, is measured as `raw["native-interpreter"]` for reference.
pub fn run(
    service: &DecisionService,
    paths: &[PathKind],
    entrypoint: &str,
    input: Option<&serde_json::Value>,
    duration: Duration,
    interpreter: Option<&dyn crate::evaluator::Evaluator>,
) -> Result<BenchReport, EvalError> {
    let bundle = service.active();
    let input_json = input
        .map(|v| String::from_utf8(canonical_json(v)).unwrap_or_default())
        .unwrap_or_default();
    let flags = service.flags();
    let saved = flags.all();
    let set = |feature: &str, pct: u32| {
        flags
            .set_percentage(feature, pct)
            .map(drop)
            .map_err(|e| EvalError::Instance(e.to_string()))
    };
    let mut report = BenchReport {
        paths: BTreeMap::new(),
        decide: BTreeMap::new(),
        raw: BTreeMap::new(),
        wasm_native_median_ratio: None,
        raw_wasm_native_ratio: None,
        decide_overhead_us: None,
        wasm_instances: if bundle.wasm.loads_payload() {
            "payload"
        } else {
            "snapshot"
        },
        instantiate_median_us: None,
        first_eval_on_fresh_instance_median_us: None,
        footprint: BTreeMap::new(),
    };
    for &path in paths {
        let name = path.as_str().to_string();
        let mut req = DecisionRequest::new(entrypoint, input);
        req.force_path = Some(path);
        req.bypass_cache = true;
        report.paths.insert(
            name.clone(),
            measure(duration, || service.decide(&req).map(drop))?,
        );
        // Routed by the flags, as live traffic is, with the cache off: a miss.
        set(WASM_ENGINE, if path == PathKind::Wasm { 100 } else { 0 })?;
        set(DECISION_CACHE, 0)?;
        let req = DecisionRequest::new(entrypoint, input);
        let miss = measure(duration, || service.decide(&req).map(drop))?;
        report.decide.insert(format!("{name}_miss"), miss);
    }
    // The evaluators alone, in turns: their ratios are of the same moments.
    let mut raw: Vec<Timed<'_>> = Vec::new();
    for &path in paths {
        let ev = bundle.evaluator(path);
        let input_json = &input_json;
        raw.push((
            path.as_str().to_string(),
            Box::new(move || ev.evaluate(entrypoint, input_json).map(drop)),
        ));
    }
    if let Some(ev) = interpreter {
        let input_json = &input_json;
        raw.push((
            "native-interpreter".into(),
            Box::new(move || ev.evaluate(entrypoint, input_json).map(drop)),
        ));
    }
    let turns = u32::try_from(raw.len()).unwrap_or(1).max(1);
    let (raw_stats, rounds) = measure_interleaved(duration * turns, &mut raw)?;
    let column = |name: &str| raw.iter().position(|(n, _)| n == name);
    report.raw_wasm_native_ratio = match (column("wasm"), column("native")) {
        (Some(w), Some(n)) => paired_ratio(&rounds, w, n),
        _ => None,
    };
    drop(raw);
    report.raw = raw_stats;
    set(DECISION_CACHE, 100)?;
    let req = DecisionRequest::new(entrypoint, input);
    let hit = measure(duration, || service.decide(&req).map(drop))?;
    report.decide.insert("cache_hit".into(), hit);
    for (name, f) in saved {
        set(&name, u32::from(f.rollout_percentage))?;
    }

    report.wasm_native_median_ratio = match (report.paths.get("wasm"), report.paths.get("native")) {
        (Some(w), Some(n)) if n.median_us > 0.0 => Some(w.median_us / n.median_us),
        _ => None,
    };
    report.decide_overhead_us = match (report.decide.get("wasm_miss"), report.raw.get("wasm")) {
        (Some(d), Some(r)) => Some(d.median_us - r.median_us),
        _ => None,
    };
    if paths.contains(&PathKind::Wasm) {
        let mut samples = Vec::new();
        let start = Instant::now();
        for _ in 0..200 {
            let t = Instant::now();
            bundle.wasm.instantiate_once()?;
            samples.push(t.elapsed().as_nanos() as u64);
        }
        report.instantiate_median_us = Some(stats(samples, start.elapsed()).median_us);
        let mut samples = Vec::new();
        let start = Instant::now();
        for _ in 0..100 {
            let t = Instant::now();
            bundle
                .wasm
                .evaluate_on_fresh_instance(entrypoint, &input_json)?;
            samples.push(t.elapsed().as_nanos() as u64);
        }
        report.first_eval_on_fresh_instance_median_us =
            Some(stats(samples, start.elapsed()).median_us);
        // Best effort: with many cores the prewarmed pools may leave no instance slots.
        match bundle
            .wasm
            .footprint(FOOTPRINT_INSTANCES, entrypoint, &input_json)
        {
            Ok(f) => drop(report.footprint.insert("wasm".into(), f)),
            Err(e) => tracing::warn!(error = %e, "no memory figure for a pooled instance"),
        }
    }
    if paths.contains(&PathKind::Native) {
        match bundle
            .native
            .footprint(FOOTPRINT_INSTANCES, entrypoint, &input_json)
        {
            Ok(f) => drop(report.footprint.insert("native".into(), f)),
            Err(e) => tracing::warn!(error = %e, "no memory figure for a native engine clone"),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paired_ratio_is_the_median_of_the_rounds_ratios() {
        let rounds = vec![
            vec![2.0, 1.0],
            vec![40.0, 10.0],
            vec![30.0, 10.0],
            vec![5.0, 0.0],
        ];
        assert_eq!(paired_ratio(&rounds, 0, 1), Some(3.0));
        let inverse = paired_ratio(&rounds[..3], 1, 0).unwrap();
        assert!((inverse - 1.0 / 3.0).abs() < 1e-12, "{inverse}");
        assert_eq!(paired_ratio(&[vec![1.0, 0.0]], 0, 1), None);
    }

    #[test]
    fn interleaved_turns_time_every_function_in_every_round() {
        let calls = std::cell::Cell::new([0usize; 2]);
        let bump = |i: usize| {
            let mut c = calls.get();
            c[i] += 1;
            calls.set(c);
        };
        let mut fns: Vec<Timed<'_>> = vec![
            (
                "a".into(),
                Box::new(|| {
                    bump(0);
                    Ok(())
                }),
            ),
            (
                "b".into(),
                Box::new(|| Err(EvalError::Instance("b fails".into()))),
            ),
        ];
        let err = measure_interleaved(Duration::from_millis(50), &mut fns).unwrap_err();
        assert!(err.to_string().contains("b fails"), "{err}");
        fns.truncate(1);
        fns.push((
            "b".into(),
            Box::new(|| {
                bump(1);
                Ok(())
            }),
        ));
        let (all, rounds) = measure_interleaved(Duration::from_millis(100), &mut fns).unwrap();
        assert!(rounds.len() >= 2, "{} rounds", rounds.len());
        assert!(rounds.iter().all(|r| r.len() == 2));
        let [a, b] = calls.get();
        assert_eq!(all["a"].samples + 2 * WARMUP_EVALS, a);
        assert_eq!(all["b"].samples + WARMUP_EVALS, b);
    }

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
