//! The SARK policy runtime: builds Rego policy sets into self-contained WebAssembly
//! components ("bundles") and evaluates them, in a wasmtime sandbox or natively.
//!
//! - [`bundle`]: collecting sources, building and reading bundle artifacts.
//! - [`runtime`]: the wasmtime side (engine, compiled-code cache, instance pool, limits).
//! - [`native`]: the same evaluator linked into the host (the native path).
//! - [`evaluator`]: the common interface of both paths.
//! - [`decide`]: the one decision path (flags, cache, fallback, metrics) over both.
//! - [`cache`], [`flags`], [`metrics`]: the services `decide()` uses.
//! - [`config`]: the YAML configuration and its defaults.
//! - [`server`]: `sark serve`, the HTTP decision point.
//! - [`cli`]: the `sark` command line.

pub mod allocator;
pub mod bench;
pub mod bundle;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conformance;
pub mod decide;
pub mod evaluator;
pub mod flags;
pub mod metrics;
pub mod native;
pub mod runtime;
pub mod server;

pub use bundle::Bundle;
pub use evaluator::{EvalError, Evaluator, PathKind};
pub use sark_guest::{PolicyError, normalize_entrypoint};

/// The bare evaluator component embedded in the binary; `sark build` turns it into bundles.
pub static EVALUATOR_COMPONENT: &[u8] = include_bytes!(env!("SARK_EVALUATOR_WASM"));
