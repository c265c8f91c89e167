//! `sark build`'s wasmtime step: load the payload into the bare evaluator component and
//! snapshot the initialized instance with wizer, so a bundle starts with everything parsed
//! and compiled. [`build_bundle`] runs the whole build: assemble, snapshot, seal.

use super::bindings::EvaluatorCore;
use super::engine::{compile, snapshot_engine, wasi_linker};
use super::{CodeCache, HostState};
use crate::bundle::{BuildError, BuildOptions, SourceSet, assemble, encode_payload, seal};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Duration;
use wasmtime::Store;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

/// Memory the evaluator may use while loading a payload at build time (1 GiB).
const BUILD_MEMORY_BYTES: usize = 1 << 30;

/// Builds a bundle from `sources` with the bare `evaluator` component: returns the bundle
/// file's bytes. The same sources, options and `sark` binary always give the same bytes.
pub fn build_bundle(
    sources: &SourceSet,
    options: &BuildOptions,
    evaluator: &[u8],
    cache: Option<&CodeCache>,
) -> Result<Vec<u8>, BuildError> {
    let assembled = assemble(sources, options)?;
    let payload_json = encode_payload(&assembled)?;
    let component = snapshot(evaluator, &payload_json, cache)?;
    seal(component, assembled, &payload_json, evaluator)
}

/// A clock frozen at the Unix epoch, so nothing time-dependent enters the snapshot.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Runs `loader.load(payload)` in an instrumented evaluator and snapshots the result.
fn snapshot(
    evaluator: &[u8],
    payload: &[u8],
    cache: Option<&CodeCache>,
) -> Result<Vec<u8>, BuildError> {
    let component_err = |e: wasmtime::Error| BuildError::Component(anyhow::anyhow!("{e:#}"));
    let wizer = Wizer::new();
    let (cx, instrumented) = wizer
        .instrument_component(evaluator)
        .map_err(component_err)?;

    let engine = snapshot_engine().map_err(component_err)?;
    let digest = crate::bundle::sha256_hex(&instrumented);
    let (component, _) = compile(&engine, cache, &instrumented, &digest).map_err(component_err)?;
    let linker = wasi_linker(&engine).map_err(component_err)?;

    // Deterministic WASI: fixed seeds and frozen clocks make the snapshot reproducible.
    let wasi = WasiCtxBuilder::new()
        .secure_random(StdRng::seed_from_u64(0))
        .insecure_random(StdRng::seed_from_u64(1))
        .insecure_random_seed(2)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .build();
    let mut store = Store::new(&engine, HostState::with_wasi(wasi, BUILD_MEMORY_BYTES));
    store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
    let instance = linker
        .instantiate(&mut store, &component)
        .map_err(component_err)?;
    let core = EvaluatorCore::new(&mut store, &instance).map_err(component_err)?;
    core.sark_policy_loader()
        .call_load(&mut store, payload)
        .map_err(component_err)?
        .map_err(|e| BuildError::Policy(super::pool::from_wit(e)))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| BuildError::Component(e.into()))?;
    runtime
        .block_on(wizer.snapshot_component(
            &cx,
            &mut WasmtimeWizerComponent {
                store: &mut store,
                instance,
            },
        ))
        .map_err(component_err)
}
