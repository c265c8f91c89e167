//! The SARK policy evaluator.
//!
//! Compiled for `wasm32-wasip2` this crate is the evaluator component (see `wit/policy.wit`);
//! compiled natively it is the host's native path. Both run the same [`PolicySet`] code, so a
//! decision can only differ between the paths through the sandbox, never through the logic.

mod arity;
mod builtins;
mod desugar;
mod error;
#[cfg(any(target_arch = "wasm32", test))]
mod mem_compare;
mod outline;
mod payload;
mod policy;
mod recursion;
#[cfg(any(target_arch = "wasm32", test))]
mod small_alloc;
mod source_limits;
mod store;
mod tests_runner;
mod tokens;

#[cfg(target_arch = "wasm32")]
mod component;

pub use builtins::names as extension_builtins;
/// Compact JWS verification with the JWT builtins' keys and algorithms (OPA bundle signatures).
pub mod jws {
    pub use crate::builtins::{VerifiedJws, unverified_header, verify_compact};
}
pub use desugar::{MetadataBlock, metadata_blocks};
pub use error::{Location, PolicyError};
pub use outline::{Outline, outline};
pub use payload::{BundleInfo, ModuleSource, PAYLOAD_FORMAT, Payload, RegoVersion};
pub use policy::{PolicySet, normalize_entrypoint};
pub use store::{ancestor_of_root, owned_by_roots};
pub use tests_runner::{FileCoverage, TestOutcome};

/// Version of the Regorus evaluator, kept in step with the `=0.14.1` pin in `Cargo.toml`.
pub const REGORUS_VERSION: &str = "0.14.1";
