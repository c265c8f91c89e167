//! Criterion benchmarks of one evaluation on each path, and of instantiation.
//! Run with `make bench` (it builds the example bundle first) or
//! `cargo bench -p sark --bench evaluate` after `make bundle`.

use criterion::{Criterion, criterion_group, criterion_main};
use sark::Evaluator;
use sark::bundle::Bundle;
use sark::config::Limits;
use sark::native::NativePolicy;
use sark::runtime::{CodeCache, WasmRuntime};
use std::hint::black_box;
use std::path::PathBuf;

fn evaluate(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bundle = Bundle::read(&root.join("target/bundles/mcp.wasm"))
        .expect("run `make bundle` first to build target/bundles/mcp.wasm");
    let input =
        std::fs::read_to_string(root.join("policies/samples/developer-create-issue.json")).unwrap();
    let runtime = WasmRuntime::new(
        Limits::default(),
        CodeCache::new(CodeCache::default_dir()).ok(),
    )
    .unwrap();
    let (wasm, _) = runtime.load(&bundle, 4).unwrap();
    let native = NativePolicy::load(&bundle, Limits::default(), 4).unwrap();

    let mut group = c.benchmark_group("gateway_decision");
    group.bench_function("wasm", |b| {
        b.iter(|| {
            wasm.evaluate(black_box("mcp/gateway/decision"), black_box(&input))
                .unwrap()
        })
    });
    group.bench_function("native", |b| {
        b.iter(|| {
            native
                .evaluate(black_box("mcp/gateway/decision"), black_box(&input))
                .unwrap()
        })
    });
    group.finish();
    c.bench_function("instantiate_from_instance_pre", |b| {
        b.iter(|| wasm.instantiate_once().unwrap())
    });
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
