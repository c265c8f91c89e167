//! Every wasmtime engine SARK creates, configured here and nowhere else: the serving engine
//! (epoch ticker, pooling allocator, bundle loading) and the plain engine `sark build`
//! snapshots with; and the WASI linker both use.

use super::pool::PrepareSnapshot;
use super::{CodeCache, HostState, WasmPolicy};
use crate::bundle::Bundle;
use crate::config::Limits;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime::component::{InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Period of the epoch ticker. Deadlines are whole ticks, so a deadline fires between
/// `eval_timeout_ms` and `eval_timeout_ms + 1 tick` after the call starts.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Component instances the pooling allocator reserves slots for (all bundles together).
/// Each slot reserves address space, not memory; 64 covers a pool per core plus reloads.
const POOL_COMPONENT_INSTANCES: u32 = 64;

/// Core instances inside one component instance (the evaluator has a handful of shims).
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;

/// Stops the ticker thread when the runtime and every policy loaded from it are dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One wasmtime engine with epoch interruption, the pooling allocator, a WASI linker and
/// an optional compiled-code cache. Create one per process and load bundles from it.
pub struct WasmRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    cache: Option<CodeCache>,
    ticker: Arc<Ticker>,
    /// The evaluator this binary carries, compiled (or read from the code cache) on first
    /// use: the prepared instance and whether the cache had it.
    carried: OnceLock<(InstancePre<HostState>, bool)>,
    /// Whether bundles built from the carried evaluator use their own snapshots (cached, or
    /// adopted once compiled). Default on.
    snapshots: bool,
}

/// What a bundle's compiled code is, as `sark inspect` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CompiledCode {
    /// The bundle runs on the evaluator this `sark` carries: one compiled copy serves every
    /// bundle built by this `sark`.
    pub shared: bool,
    /// Size of the compiled code in the code cache, when it is cached.
    pub cached_bytes: Option<u64>,
    /// For a bundle on the carried evaluator: the size of its own snapshot's compiled code
    /// in the code cache, when it is cached (then new instances start from the snapshot).
    pub snapshot_cached_bytes: Option<u64>,
}

/// Hex sha-256 of the evaluator component this binary carries ([`crate::EVALUATOR_COMPONENT`]),
/// computed once per process. A bundle whose manifest names it runs on the carried evaluator.
pub(crate) fn carried_evaluator_sha256() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| crate::bundle::sha256_hex(crate::EVALUATOR_COMPONENT))
}

impl WasmRuntime {
    /// Creates the engine with `limits` and an optional compiled-code cache.
    pub fn new(limits: Limits, cache: Option<CodeCache>) -> wasmtime::Result<Self> {
        // Instances holding documents written at run time may grow past the evaluation cap
        // by what the documents take (see `WasmPolicy`).
        let max_memory = (usize::try_from(limits.max_memory_mb)? << 20)
            .saturating_add(limits.data_memory_bytes());
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_COMPONENT_INSTANCES)
            .total_core_instances(POOL_COMPONENT_INSTANCES * CORE_INSTANCES_PER_COMPONENT)
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_memories(POOL_COMPONENT_INSTANCES * 2)
            .max_memories_per_component(2)
            .total_tables(POOL_COMPONENT_INSTANCES * CORE_INSTANCES_PER_COMPONENT)
            .max_tables_per_component(CORE_INSTANCES_PER_COMPONENT)
            .max_memory_size(max_memory)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .memory_init_cow(true);
        if std::env::var_os("SARK_PERFMAP").is_some_and(|v| v == "1") {
            // `perf record` then names the component's JIT-compiled functions
            // (/tmp/perf-<pid>.map); see docs/operations.md, "Profiling the component".
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let linker = wasi_linker(&engine)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("sark-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(Self {
            engine,
            linker,
            limits,
            cache,
            ticker: Arc::new(Ticker { stop }),
            carried: OnceLock::new(),
            snapshots: true,
        })
    }

    /// Runs every bundle built from the carried evaluator on it, each new instance loading
    /// the payload, and never on the bundle's own snapshot (`sark bench --no-snapshot`).
    pub fn without_snapshots(mut self) -> Self {
        self.snapshots = false;
        self
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Keeps the epoch ticker running for as long as the holder lives.
    pub(crate) fn ticker(&self) -> Arc<Ticker> {
        self.ticker.clone()
    }

    /// Compiles `wasm` (whose hex sha-256 is `digest`) or loads it from the code cache; the
    /// flag says whether the cache had it.
    pub(crate) fn compile(
        &self,
        wasm: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(wasmtime::component::Component, bool)> {
        compile(&self.engine, self.cache.as_ref(), wasm, digest)
    }

    /// The limits every evaluation runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The carried evaluator, prepared for instantiation (compiled once per process, and
    /// once per `sark` version through the code cache). The flag says whether the cache had
    /// the compiled code.
    pub(crate) fn carried_evaluator(&self) -> wasmtime::Result<(InstancePre<HostState>, bool)> {
        if let Some(prepared) = self.carried.get() {
            return Ok(prepared.clone());
        }
        // Only a success is kept: a failure (say, out of memory) is retried by the next load.
        let digest = carried_evaluator_sha256();
        let (component, cached) = self
            .compile(crate::EVALUATOR_COMPONENT, digest)
            .map_err(|e| wasmtime::format_err!("cannot compile the evaluator component: {e:#}"))?;
        if cached {
            tracing::debug!(
                digest,
                "loaded the compiled evaluator component from the cache"
            );
        } else {
            tracing::debug!(digest, "compiled the evaluator component");
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| wasmtime::format_err!("cannot prepare the evaluator component: {e:#}"))?;
        Ok(self.carried.get_or_init(|| (pre, cached)).clone())
    }

    /// How `bundle` runs on this runtime: on the carried evaluator (compiled code shared by
    /// every bundle built by this `sark`) or on its own component, and the size of that
    /// compiled code in the code cache, when it is there.
    pub fn compiled_code(&self, bundle: &Bundle) -> CompiledCode {
        let manifest = bundle.manifest();
        let shared = manifest.evaluator_sha256 == carried_evaluator_sha256();
        let digest = if shared {
            carried_evaluator_sha256()
        } else {
            &manifest.component_sha256
        };
        let cached = |digest: &str| {
            self.cache
                .as_ref()
                .and_then(|c| c.entry_bytes(&self.engine, digest))
        };
        CompiledCode {
            shared,
            cached_bytes: cached(digest),
            snapshot_cached_bytes: shared.then(|| cached(&manifest.component_sha256)).flatten(),
        }
    }

    /// Prepares a bundle's instances. A bundle built from the evaluator this binary carries
    /// runs on it — compiled once for every such bundle — and each new instance loads the
    /// bundle's payload; any other bundle's own component is compiled (or read from the
    /// code cache). The returned flag says whether the compiled code came from the cache.
    pub fn load(&self, bundle: &Bundle, pool_size: usize) -> wasmtime::Result<(WasmPolicy, bool)> {
        self.load_with(bundle, pool_size, &[])
    }

    /// [`Self::load`], with `extra` modules (policies put at run time) compiled with the
    /// bundle's: then the bundle's payload and the modules load into the carried evaluator.
    pub fn load_with(
        &self,
        bundle: &Bundle,
        pool_size: usize,
        extra: &[sark_guest::ModuleSource],
    ) -> wasmtime::Result<(WasmPolicy, bool)> {
        let manifest = bundle.manifest();
        if manifest.evaluator_sha256 == carried_evaluator_sha256() || !extra.is_empty() {
            return self.load_on_carried(bundle, pool_size, extra);
        }
        let digest = &manifest.component_sha256;
        let (component, cached) = self.compile(bundle.component_bytes(), digest)?;
        if cached {
            tracing::debug!(digest = %digest, "loaded the compiled bundle component from the cache");
        } else {
            tracing::debug!(digest = %digest, "compiled the bundle component");
        }
        let pre = self.linker.instantiate_pre(&component)?;
        // A bundle built by an older `sark` exports an older contract (`sark:policy@0.1.0`,
        // without `store`): its payload runs on the carried evaluator instead.
        if !exports_current_contract(&component, &self.engine) {
            tracing::warn!(
                revision = %manifest.revision,
                "the bundle's component predates sark:policy@0.2.0; its policies run on this sark's evaluator"
            );
            return self.load_on_carried(bundle, pool_size, extra);
        }
        let policy = WasmPolicy::new(pre, None, self.limits, pool_size, self.ticker.clone())?;
        Ok((policy, cached))
    }

    /// Prepares `bundle` on the carried evaluator: each new instance loads its payload. A
    /// bundle built from the carried evaluator (and no `extra` modules) starts on its own
    /// snapshot instead when the code cache already has it compiled; otherwise its policy is
    /// offered the snapshot, to adopt once compiled ([`WasmPolicy::adopt_snapshot`]).
    fn load_on_carried(
        &self,
        bundle: &Bundle,
        pool_size: usize,
        extra: &[sark_guest::ModuleSource],
    ) -> wasmtime::Result<(WasmPolicy, bool)> {
        let manifest = bundle.manifest();
        let own_snapshot = self.snapshots
            && extra.is_empty()
            && manifest.evaluator_sha256 == carried_evaluator_sha256();
        if own_snapshot && self.compiled_code(bundle).snapshot_cached_bytes.is_some() {
            match self.load_cached_snapshot(bundle, pool_size) {
                Ok(policy) => return Ok((policy, true)),
                Err(e) => tracing::warn!(
                    revision = %manifest.revision,
                    error = %format_args!("{e:#}"),
                    "the bundle's cached snapshot does not load; its payload runs on the carried evaluator"
                ),
            }
        }
        let (pre, cached) = self.carried_evaluator()?;
        // The bundle was validated when it was built: new instances skip the warm-up
        // evaluation of every entrypoint, which a slow entrypoint would make slow.
        let mut payload = bundle.payload().map_err(|e| wasmtime::format_err!("{e}"))?;
        payload.warm_up = false;
        payload.modules.extend_from_slice(extra);
        let payload: Arc<[u8]> = serde_json::to_vec(&payload)?.into();
        let mut policy = WasmPolicy::new(
            pre,
            Some(payload),
            self.limits,
            pool_size,
            self.ticker.clone(),
        )?;
        if own_snapshot {
            policy.offer_snapshot(self.snapshot_preparer(bundle));
        }
        Ok((policy, cached))
    }

    /// `bundle` on its own snapshot, whose compiled code the code cache has: it must export
    /// the current contract and describe the bundle's revision and content hash.
    fn load_cached_snapshot(
        &self,
        bundle: &Bundle,
        pool_size: usize,
    ) -> wasmtime::Result<WasmPolicy> {
        let manifest = bundle.manifest();
        let (component, _) = self.compile(bundle.component_bytes(), &manifest.component_sha256)?;
        if !exports_current_contract(&component, &self.engine) {
            wasmtime::bail!("the bundle's component does not export sark:policy@0.2.0");
        }
        let pre = self.linker.instantiate_pre(&component)?;
        let policy = WasmPolicy::new(pre, None, self.limits, pool_size, self.ticker.clone())?;
        let info = crate::evaluator::Evaluator::info(&policy);
        if info.revision != manifest.revision || info.content_hash != manifest.content_hash {
            wasmtime::bail!(
                "it describes revision {:?} ({}), not the manifest's {:?} ({})",
                info.revision,
                info.content_hash,
                manifest.revision,
                manifest.content_hash
            );
        }
        tracing::debug!(revision = %manifest.revision, "starting from the bundle's snapshot (compiled code cached)");
        Ok(policy)
    }

    /// Prepares `bundle`'s own snapshotted component when called: compiled on one thread of
    /// lowered priority (it runs beside the decisions, off the request path) into the code
    /// cache, or read from it.
    fn snapshot_preparer(&self, bundle: &Bundle) -> PrepareSnapshot {
        let wasm = bundle.component_bytes().to_vec();
        let digest = bundle.manifest().component_sha256.clone();
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let linker = self.linker.clone();
        Box::new(move || {
            let (component, cached) = compile_quietly(&engine, cache.as_ref(), &wasm, &digest)?;
            tracing::debug!(digest = %digest, cached, "prepared the bundle's snapshot");
            if !exports_current_contract(&component, &engine) {
                wasmtime::bail!("the bundle's component does not export sark:policy@0.2.0");
            }
            linker.instantiate_pre(&component)
        })
    }
}

/// [`compile`] on one thread of lowered priority (nice 10 on Linux) instead of every core:
/// for a compilation that runs while the process serves decisions.
fn compile_quietly(
    engine: &Engine,
    cache: Option<&CodeCache>,
    wasm: &[u8],
    digest: &str,
) -> wasmtime::Result<(wasmtime::component::Component, bool)> {
    // wasmtime compiles functions in parallel on the current rayon pool: a pool of one.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "sark-compile".into())
        .start_handler(|_| lower_thread_priority())
        .build()
        .map_err(|e| wasmtime::format_err!("cannot start the compile thread: {e}"))?;
    pool.install(|| compile(engine, cache, wasm, digest))
}

/// Lowers the calling thread's scheduling priority (Linux keeps a nice value per thread).
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        unsafe extern "C" {
            fn setpriority(which: i32, who: u32, prio: i32) -> i32;
        }
        const PRIO_PROCESS: i32 = 0;
        // SAFETY: a plain system call; `who` 0 is the calling thread on Linux.
        let _ = unsafe { setpriority(PRIO_PROCESS, 0, 10) };
    }
}

/// Whether `component` exports the `store` interface of the contract this host binds.
fn exports_current_contract(component: &wasmtime::component::Component, engine: &Engine) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name == "sark:policy/store@0.2.0")
}

/// A linker with WASI 0.2 (what the evaluator imports; the store decides what it may see).
pub(crate) fn wasi_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker)
}

/// The engine `sark build` snapshots with: wasmtime's defaults plus epoch interruption
/// (the build bounds how long loading may take), without the pool's memory cap (loading a
/// large policy set may need far more than one evaluation may use; the builder's store sets
/// its own cap).
pub(crate) fn snapshot_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    Engine::new(&config)
}

/// Compiles a component, through `cache` when there is one.
pub(crate) fn compile(
    engine: &Engine,
    cache: Option<&CodeCache>,
    wasm: &[u8],
    digest: &str,
) -> wasmtime::Result<(wasmtime::component::Component, bool)> {
    match cache {
        Some(cache) => cache.load_or_compile(engine, wasm, digest),
        None => Ok((wasmtime::component::Component::new(engine, wasm)?, false)),
    }
}
