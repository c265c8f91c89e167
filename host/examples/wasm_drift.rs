//! Latency of one component instance over many evaluations: the median of each window of
//! calls, to see whether an instance slows down as it ages: one long-lived instance, a fresh
//! one and the native path, interleaved (or the long-lived one `alone`).
//! `cargo run --release --example wasm_drift -- target/bundles/mcp.wasm mcp/gateway/decision policies/samples/developer-create-issue.json`

use sark::Evaluator;
use sark::bundle::Bundle;
use sark::config::Limits;
use sark::runtime::WasmRuntime;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        anyhow::bail!("usage: wasm_drift <bundle> <entrypoint> <input.json> [windows] [alone]");
    }
    let bundle = Bundle::read(std::path::Path::new(&args[1]))?;
    let input = std::fs::read_to_string(&args[3])?;
    let windows: usize = args.get(4).map_or(Ok(20), |s| s.parse())?;
    // `alone`: only the long-lived instance, window after window.
    let alone = args.get(5).is_some_and(|a| a == "alone");
    let runtime = WasmRuntime::new(Limits::default(), None)?;
    let (policy, _) = runtime.load(&bundle, 1)?;
    let native = sark::native::NativePolicy::load(&bundle, Limits::default(), 1)?;
    let window = |ev: &dyn Evaluator| -> anyhow::Result<(f64, f64)> {
        let mut samples = Vec::with_capacity(5000);
        for _ in 0..5000 {
            let t = Instant::now();
            ev.evaluate(&args[2], &input)?;
            samples.push(t.elapsed().as_nanos() as u64);
        }
        samples.sort_unstable();
        Ok((samples[2500] as f64 / 1000.0, samples[4500] as f64 / 1000.0))
    };
    for w in 0..windows {
        let (aged, aged90) = window(&policy)?;
        if alone {
            println!("window {w:2}: aged instance median {aged:.1} µs (p90 {aged90:.1})");
            continue;
        }
        let (fresh_policy, _) = runtime.load(&bundle, 1)?;
        let (fresh, _) = window(&fresh_policy)?;
        let (nat, _) = window(&native)?;
        println!(
            "window {w:2}: aged instance median {aged:.1} µs (p90 {aged90:.1}), fresh instance {fresh:.1} µs, native {nat:.1} µs"
        );
    }
    Ok(())
}
