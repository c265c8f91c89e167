//! Every use of wasmtime: the engines and their configuration, the compiled-code cache, the
//! per-bundle `InstancePre` with a pool of reusable instances under per-call limits, the
//! snapshot `sark build` takes, and the bare evaluator `sark conformance` runs.

mod bare;
mod code_cache;
mod engine;
mod pool;
mod snapshot;
mod state;

pub use bare::BareEvaluator;
pub use code_cache::CodeCache;
pub use engine::{CompiledCode, EPOCH_TICK, WasmRuntime};
pub use pool::{WasmPolicy, default_pool_size};
pub use snapshot::{Built, build_bundle, build_bundle_reporting};
pub use state::HostState;

/// Typed bindings of the `evaluator-core` world: the `evaluator` and `loader` exports. The
/// bare evaluator has both, and a finished bundle keeps both (its loader refuses a second
/// payload), so one set of bindings serves the snapshot, the carried evaluator, the builder
/// and the conformance runner. (A bundle's own world, `bundle`, is what foreign hosts bind.)
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "evaluator-core",
        path: "../wit",
    });
}
