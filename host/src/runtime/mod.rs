//! The wasmtime side of the runtime: one engine per process, compiled-code cache,
//! per-bundle `InstancePre` and a pool of reusable instances with per-call limits.

mod code_cache;
mod engine;
mod pool;
mod state;

pub use code_cache::CodeCache;
pub use engine::{EPOCH_TICK, WasmRuntime};
pub(crate) use pool::from_wit as policy_error_from_wit;
pub use pool::{WasmPolicy, default_pool_size};
pub use state::HostState;

/// Typed bindings of the `bundle` world (what a finished bundle exports).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "bundle",
        path: "../wit",
    });
}

/// Typed bindings of the `evaluator-core` world (the bare evaluator, used by the builder).
pub(crate) mod core_bindings {
    wasmtime::component::bindgen!({
        world: "evaluator-core",
        path: "../wit",
        with: { "sark:policy/types": super::bindings::sark::policy::types },
    });
}
