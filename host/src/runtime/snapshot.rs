//! `sark build`'s wasmtime step: load the payload into the bare evaluator component and
//! snapshot the initialized instance with wizer, so a bundle starts with everything parsed
//! and compiled. [`build_bundle`] runs the whole build: assemble, snapshot, seal.

use super::bindings::EvaluatorCore;
use super::engine::{compile, snapshot_engine, wasi_linker};
use super::{CodeCache, HostState};
use crate::bundle::{
    Assembled, BuildError, BuildOptions, SourceSet, assemble, encode_payload, seal,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Duration;
use wasmtime::Store;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

/// Memory the evaluator may use while loading a payload at build time (1 GiB).
const BUILD_MEMORY_BYTES: usize = 1 << 30;

/// Builds a bundle from `sources` with the bare `evaluator` component: returns the bundle
/// file's bytes. The same sources, options and `sark` binary give the same bytes, unless
/// loading with warm-up ends near its wall-clock budget ([`WARM_UP_BUDGET`], which also
/// covers parsing): then one machine may build with warm-up and another without.
pub fn build_bundle(
    sources: &SourceSet,
    options: &BuildOptions,
    evaluator: &[u8],
    cache: Option<&CodeCache>,
) -> Result<Vec<u8>, BuildError> {
    let built = build_bundle_reporting(sources, options, evaluator, cache)?;
    for w in &built.warnings {
        tracing::warn!("{w}");
    }
    Ok(built.bytes)
}

/// A built bundle and what the build has to say about it.
pub struct Built {
    /// The bundle file's bytes.
    pub bytes: Vec<u8>,
    /// Warnings for the user (the build succeeded).
    pub warnings: Vec<String>,
}

/// Like [`build_bundle`], returning the warnings instead of logging them.
pub fn build_bundle_reporting(
    sources: &SourceSet,
    options: &BuildOptions,
    evaluator: &[u8],
    cache: Option<&CodeCache>,
) -> Result<Built, BuildError> {
    let assembled = assemble(sources, options)?;
    let payload_json = encode_payload(&assembled)?;
    let mut warnings = Vec::new();
    let component = snapshot(evaluator, &assembled, &payload_json, cache, &mut warnings)?;
    let bytes = seal(component, assembled, &payload_json, evaluator)?;
    Ok(Built { bytes, warnings })
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

/// How long loading may spend warming up the entrypoints at build time. Warm-up only
/// primes caches; a policy that needs longer (a constant over a huge range, say) is built
/// without it.
const WARM_UP_BUDGET: Duration = Duration::from_secs(2);
/// How long the load without warm-up may take: parsing and compiling only.
const LOAD_BUDGET: Duration = Duration::from_secs(120);
/// Period of the epoch ticker that enforces the budgets.
const TICK: Duration = Duration::from_millis(10);

/// Why a build-time load did not finish.
enum LoadFailure {
    /// The policy is wrong (does not compile, an entrypoint names nothing): the build fails.
    Policy(sark_guest::PolicyError),
    /// The instance trapped or ran out of its budget; the one-line reason.
    Trap(String),
    /// wasmtime could not run the component at all.
    Component(wasmtime::Error),
}

/// Runs `loader.load(payload)` in an instrumented evaluator and snapshots the result.
///
/// The load warms up every entrypoint (evaluates it once with no input) within
/// [`WARM_UP_BUDGET`] and the build's memory cap. When that traps, the build warns and
/// snapshots a fresh instance loaded without warm-up: only a policy that does not compile,
/// or an entrypoint that names nothing, fails a build.
fn snapshot(
    evaluator: &[u8],
    assembled: &Assembled,
    payload: &[u8],
    cache: Option<&CodeCache>,
    warnings: &mut Vec<String>,
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
    let _ticker = EpochTicker::start(&engine);

    let load = |payload: &[u8], budget: Duration| -> Result<_, LoadFailure> {
        let mut store = deterministic_store(&engine);
        store.set_epoch_deadline(ticks(budget));
        let instance = linker
            .instantiate(&mut store, &component)
            .map_err(LoadFailure::Component)?;
        let core = EvaluatorCore::new(&mut store, &instance).map_err(LoadFailure::Component)?;
        match core.sark_policy_loader().call_load(&mut store, payload) {
            Ok(Ok(_)) => Ok((store, instance)),
            Ok(Err(e)) => Err(LoadFailure::Policy(super::pool::from_wit(e))),
            Err(e) => Err(LoadFailure::Trap(describe_trap(&e, &store, budget))),
        }
    };
    let loaded = match load(payload, WARM_UP_BUDGET) {
        Err(LoadFailure::Trap(reason)) => {
            warnings.push(format!(
                "warming up the entrypoints stopped ({reason}); the bundle is built without \
                 warm-up, so the first decision of each entrypoint also prepares it"
            ));
            let mut cold = assembled.payload.clone();
            cold.warm_up = false;
            let cold = serde_json::to_vec(&cold)
                .map_err(|e| BuildError::Component(anyhow::anyhow!("encoding the payload: {e}")))?;
            load(&cold, LOAD_BUDGET)
        }
        other => other,
    };
    let (mut store, instance) = loaded.map_err(|failure| match failure {
        LoadFailure::Policy(e) => BuildError::Policy(e),
        LoadFailure::Trap(reason) => BuildError::Component(anyhow::anyhow!(
            "loading the policies stopped without warm-up: {reason}"
        )),
        LoadFailure::Component(e) => component_err(e),
    })?;
    // The snapshot runs the instance's own accessors: no deadline for them.
    store.set_epoch_deadline(u64::MAX / 2);

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

/// A store whose WASI is deterministic: fixed seeds and frozen clocks make the snapshot
/// reproducible.
fn deterministic_store(engine: &wasmtime::Engine) -> Store<HostState> {
    let wasi = WasiCtxBuilder::new()
        .secure_random(StdRng::seed_from_u64(0))
        .insecure_random(StdRng::seed_from_u64(1))
        .insecure_random_seed(2)
        .wall_clock(FrozenClock)
        .monotonic_clock(FrozenClock)
        .build();
    let mut store = Store::new(engine, HostState::with_wasi(wasi, BUILD_MEMORY_BYTES));
    store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
    store
}

fn ticks(budget: Duration) -> u64 {
    (budget.as_millis() / TICK.as_millis()).max(1) as u64
}

/// One line on why a build-time load trapped (never the raw wasm backtrace).
fn describe_trap(e: &wasmtime::Error, store: &Store<HostState>, budget: Duration) -> String {
    if store.data().memory_cap_hit {
        return format!(
            "it needed more than the build's {} MiB of memory",
            BUILD_MEMORY_BYTES >> 20
        );
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!("it ran longer than {budget:?}"),
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "the evaluator aborted (an allocation failed or it panicked)".to_string()
        }
        Some(trap) => format!("the evaluator trapped: {trap}"),
        None => e.to_string(),
    }
}

/// Advances the engine's epoch every [`TICK`] until dropped.
struct EpochTicker {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: &wasmtime::Engine) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sark-build-epoch".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
