//! Criterion benchmarks of one gateway decision: each path's evaluator alone, a miss and a
//! cache hit through `DecisionService::decide`, and instantiation. The service is assembled
//! by `ServiceBuilder`, as the binary assembles it.
//! Run with `make bench` (it builds the example bundle first) or
//! `cargo bench -p sark-benches --bench evaluate` after `make bundle`.

use criterion::{Criterion, criterion_group, criterion_main};
use sark::Evaluator;
use sark::bundle::Bundle;
use sark::config::Config;
use sark::decide::{DecisionRequest, ServiceBuilder};
use std::hint::black_box;
use std::path::PathBuf;

fn evaluate(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bundle = Bundle::read(&root.join("target/bundles/mcp.wasm"))
        .expect("run `make bundle` first to build target/bundles/mcp.wasm");
    let text =
        std::fs::read_to_string(root.join("policies/samples/developer-create-issue.json")).unwrap();
    let input: serde_json::Value = serde_json::from_str(&text).unwrap();
    let service = ServiceBuilder::new(&Config::default())
        .pool_size(4)
        .build(bundle)
        .unwrap();
    let active = service.active();
    let entrypoint = "mcp/gateway/decision";

    let mut group = c.benchmark_group("gateway_decision");
    group.bench_function("wasm", |b| {
        b.iter(|| {
            active
                .wasm
                .evaluate(black_box(entrypoint), black_box(&text))
                .unwrap()
        })
    });
    group.bench_function("native", |b| {
        b.iter(|| {
            active
                .native
                .evaluate(black_box(entrypoint), black_box(&text))
                .unwrap()
        })
    });
    let mut miss = DecisionRequest::new(entrypoint, Some(&input));
    miss.bypass_cache = true;
    group.bench_function("decide_wasm_miss", |b| {
        b.iter(|| service.decide(black_box(&miss)).unwrap())
    });
    let hit = DecisionRequest::new(entrypoint, Some(&input));
    group.bench_function("decide_cache_hit", |b| {
        b.iter(|| service.decide(black_box(&hit)).unwrap())
    });
    group.finish();
    c.bench_function("instantiate_from_instance_pre", |b| {
        b.iter(|| active.wasm.instantiate_once().unwrap())
    });
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
