//! Compares the interpreter with precompiled RVM programs natively.
//! Run: cargo run -p sark-guest --release --example rvm_vs_interpreter -- <payload.json> <entrypoint> <input.json>
use sark_guest::{Payload, PolicySet};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let payload: Payload = serde_json::from_slice(&std::fs::read(&args[1]).unwrap()).unwrap();
    let input = std::fs::read_to_string(&args[3]).unwrap();
    for compiled in [false, true] {
        let mut set = if compiled {
            PolicySet::load_compiled(payload.clone()).unwrap()
        } else {
            PolicySet::load(payload.clone()).unwrap()
        };
        let r = set.evaluate(&args[2], &input).unwrap();
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            set.evaluate(&args[2], &input).unwrap();
        }
        println!("compiled={compiled} (rvm used: {}) {:.1} µs/eval  result={r:?}", set.is_compiled(&args[2]), t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
}
