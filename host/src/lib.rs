//! The SARK policy runtime: builds Rego policy sets into self-contained WebAssembly
//! components ("bundles") and evaluates them, in a wasmtime sandbox or natively.
//!
//! - [`bundle`]: the bundle file format (sources, payload, sections, manifest, signatures).
//! - [`runtime`]: every use of wasmtime (engines, code cache, instance pool, the build's
//!   snapshot, the bare evaluator).
//! - [`native`]: the same evaluator linked into the host (the native path).
//! - [`evaluator`]: the common interface of both paths.
//! - [`decide`]: the one door every decision goes through (lookup → evaluate → record),
//!   and [`decide::ServiceBuilder`], which assembles it.
//! - [`cache`], [`flags`], [`metrics`], [`decision_log`], [`cluster`]: what `decide` uses.
//! - [`idle_pool`]: the bounded pool of reusable instances, engines and connections.
//! - [`config`]: the YAML configuration and its defaults.
//! - [`store`]: documents written at run time (OPA's data API), durable and shared.
//! - [`management`]: OPA's management plane: bundles from a service, decision logs and
//!   status uploaded.
//! - [`authzen`]: the OpenID AuthZEN Authorization API on Rego.
//! - [`ext_authz`]: Envoy's external authorization (gRPC) on Rego.
//! - [`server`]: `sark serve`, the HTTP decision point.
//! - [`cli`]: the `sark` command line, one file per command.

pub mod allocator;
pub mod authzen;
pub mod bench;
pub mod bundle;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod conformance;
pub mod decide;
pub mod decision_log;
pub mod evaluator;
pub mod ext_authz;
pub mod flags;
pub mod idle_pool;
pub mod management;
pub mod metrics;
pub mod native;
pub mod runtime;
pub mod server;
pub mod store;

pub use bundle::Bundle;
pub use evaluator::{EvalError, Evaluator, PathKind};
pub use sark_guest::{PolicyError, normalize_entrypoint};

/// The bare evaluator component embedded in the binary; `sark build` turns it into bundles.
pub static EVALUATOR_COMPONENT: &[u8] = include_bytes!(env!("SARK_EVALUATOR_WASM"));
