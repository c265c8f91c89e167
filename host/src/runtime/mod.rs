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
pub use engine::{EPOCH_TICK, WasmRuntime};
pub use pool::{WasmPolicy, default_pool_size};
pub use snapshot::build_bundle;
pub use state::HostState;

/// Typed bindings of the `bundle` world (what a finished bundle exports).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "bundle",
        path: "../wit",
    });
}

/// Typed bindings of the `evaluator-core` world (the bare evaluator: the builder and the
/// conformance runner load payloads into it).
pub(crate) mod core_bindings {
    wasmtime::component::bindgen!({
        world: "evaluator-core",
        path: "../wit",
        with: { "sark:policy/types": super::bindings::sark::policy::types },
    });
}
