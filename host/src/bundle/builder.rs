//! `sark build`: load the payload into the evaluator component, snapshot the initialized
//! instance with wizer, and append the payload and manifest sections.

use super::artifact::{
    BundleManifest, MANIFEST_FORMAT, MANIFEST_SECTION, ModuleEntry, PAYLOAD_SECTION,
    append_custom_section, sha256_hex,
};
use super::{BuildError, BuildOptions, SourceSet, assemble};
use crate::runtime::CodeCache;
use crate::runtime::HostState;
use crate::runtime::core_bindings::EvaluatorCore;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

/// Memory the evaluator may use while loading a payload at build time (1 GiB).
const BUILD_MEMORY_BYTES: usize = 1 << 30;

/// Builds a bundle from `sources`: returns the bundle file's bytes. The same sources, options
/// and `sark` binary always give the same bytes.
pub fn build(
    sources: &SourceSet,
    options: &BuildOptions,
    evaluator: &[u8],
    cache: Option<&CodeCache>,
) -> Result<Vec<u8>, BuildError> {
    let assembled = assemble(sources, options)?;
    let payload_json = serde_json::to_vec(&assembled.payload)
        .map_err(|e| BuildError::Source(format!("cannot encode payload: {e}")))?;
    let mut out = snapshot(evaluator, &payload_json, cache)?;

    let component_sha256 = sha256_hex(&out);
    append_custom_section(&mut out, PAYLOAD_SECTION, &payload_json);
    let payload = &assembled.payload;
    let manifest = BundleManifest {
        format: MANIFEST_FORMAT,
        revision: payload.revision.clone(),
        roots: payload.roots.clone(),
        entrypoints: payload.entrypoints.clone(),
        metadata: assembled.metadata,
        content_hash: payload.content_hash.clone(),
        regorus_version: sark_guest::REGORUS_VERSION.to_string(),
        sark_version: env!("CARGO_PKG_VERSION").to_string(),
        modules: payload
            .modules
            .iter()
            .map(|m| ModuleEntry {
                path: m.path.clone(),
                bytes: m.source.len() as u64,
            })
            .collect(),
        data_bytes: payload.data.to_string().len() as u64,
        evaluator_sha256: sha256_hex(evaluator),
        component_sha256,
        payload_sha256: sha256_hex(&payload_json),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BuildError::Source(format!("cannot encode manifest: {e}")))?;
    append_custom_section(&mut out, MANIFEST_SECTION, &manifest_json);
    Ok(out)
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

    let engine = Engine::new(&Config::new()).map_err(component_err)?;
    let component = match cache {
        Some(cache) => {
            cache
                .load_or_compile(&engine, &instrumented, &sha256_hex(&instrumented))
                .map_err(component_err)?
                .0
        }
        None => {
            wasmtime::component::Component::new(&engine, &instrumented).map_err(component_err)?
        }
    };
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(component_err)?;

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
        .map_err(|e| BuildError::Policy(crate::runtime::policy_error_from_wit(e)))?;

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
