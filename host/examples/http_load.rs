//! An open-loop load generator for `sark serve`'s HTTP API (`bench/overload.py`): POSTs
//! `{"input": <file>}` with a distinct `load_id` in every input (every decision a cache
//! miss) from `--concurrency` callers on keep-alive connections, paced at `--rate` requests
//! a second in total. A request that could not be sent when due, because its caller's
//! previous answer was late, is timed from when it was due, so a stalled server is not
//! hidden (no coordinated omission). Reports the achieved rate and, per status, the count
//! and the latency percentiles.
//!
//! `cargo run --release --example http_load -- http://127.0.0.1:8181/v1/data/mcp/gateway/decision --input policies/samples/developer-create-issue.json --rate 12000`

use clap::Parser;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The decision URL.
    url: String,
    /// The input document (JSON); each request adds a distinct `load_id` to it.
    #[arg(long)]
    input: std::path::PathBuf,
    /// Callers, each with one request in flight on its own connection.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Requests a second in total.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of load (after one second of warm-up, not counted).
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let input: serde_json::Value = serde_json::from_slice(&std::fs::read(&args.input)?)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let interval = Duration::from_secs_f64(args.concurrency as f64 / args.rate.max(1) as f64);
    let warmup = Duration::from_secs(1);
    let start = Instant::now();
    let measured_from = start + warmup;
    let end = measured_from + Duration::from_secs(args.duration);
    let next_id = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::new();
    for caller in 0..args.concurrency {
        let (client, url, next_id) = (client.clone(), args.url.clone(), next_id.clone());
        let mut input = input.clone();
        // Callers start spread over one interval.
        let mut due = start + interval.mul_f64(caller as f64 / args.concurrency as f64);
        callers.push(tokio::spawn(async move {
            let mut seen: Vec<(u16, u64)> = Vec::new();
            let mut errors = 0u64;
            while due < end {
                tokio::time::sleep_until(due.into()).await;
                input["load_id"] = next_id.fetch_add(1, Ordering::Relaxed).into();
                let body = serde_json::json!({ "input": &input }).to_string();
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let status = match sent {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        Some(status)
                    }
                    Err(_) => None,
                };
                if due >= measured_from {
                    match status {
                        Some(s) => seen.push((s, due.elapsed().as_micros() as u64)),
                        None => errors += 1,
                    }
                }
                due += interval;
            }
            (seen, errors)
        }));
    }
    let mut by_status: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    let mut errors = 0;
    for c in callers {
        let (seen, e) = c.await?;
        errors += e;
        for (status, us) in seen {
            by_status.entry(status).or_default().push(us);
        }
    }
    let total: usize = by_status.values().map(Vec::len).sum();
    println!(
        "offered {} req/s from {} callers for {} s: {} answered ({:.0} req/s), {} transport errors",
        args.rate,
        args.concurrency,
        args.duration,
        total,
        total as f64 / args.duration as f64,
        errors
    );
    for (status, mut us) in by_status {
        us.sort_unstable();
        println!(
            "  status {status}: {} ({:.1}%), p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            us.len(),
            us.len() as f64 * 100.0 / total.max(1) as f64,
            percentile(&us, 0.5),
            percentile(&us, 0.9),
            percentile(&us, 0.99),
            percentile(&us, 1.0)
        );
    }
    Ok(())
}
