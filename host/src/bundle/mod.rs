//! The bundle file format: one self-contained `.wasm` component per policy set. This folder
//! knows bytes, not engines: collecting sources, assembling the payload, the custom
//! sections, the manifest and signatures. The wasmtime steps of a build (the snapshot) live
//! in [`crate::runtime`].
//!
//! A bundle is the evaluator component snapshotted after loading the policies (so it starts
//! with everything parsed and compiled), followed by two custom sections that any tool can
//! read without instantiating it:
//! - `sark-payload`: the payload JSON (modules, data), for the native path and `sark inspect`;
//! - `sark-manifest`: the [`BundleManifest`] JSON, including sha-256 digests of the component
//!   part and of the payload, so a truncated or tampered file is refused before it runs.

mod annotations;
mod artifact;
mod assemble;
mod seal;
pub mod signing;
pub mod source;

pub use artifact::{
    Bundle, BundleManifest, BundleSignature, CustomSection, MANIFEST_SECTION, PAYLOAD_SECTION,
    SIGNATURE_SECTION, append_custom_section, sha256_hex, top_level_custom_sections,
};
pub use assemble::{Assembled, BuildOptions, assemble};
pub use seal::{encode_payload, seal};
pub use source::SourceSet;

use std::path::Path;

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A source file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error (in the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// The sources are not a valid policy set (layout, manifest, data).
    #[error("{0}")]
    Source(String),
    /// A policy does not parse or compile, or an entrypoint names nothing.
    #[error(transparent)]
    Policy(#[from] sark_guest::PolicyError),
    /// The evaluator component could not be run or snapshotted.
    #[error("cannot assemble the bundle component: {0:#}")]
    Component(anyhow::Error),
}

impl BuildError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        BuildError::Io {
            path: path.display().to_string(),
            error,
        }
    }
}

/// Why a bundle file was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file could not be read.
    #[error("cannot read bundle {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error (in the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// The bytes are not a complete WebAssembly component.
    #[error("not a valid bundle (truncated or not a WebAssembly component): {0}")]
    Malformed(String),
    /// The component has no SARK manifest (built by another tool).
    #[error("not a SARK bundle: {0}")]
    NotABundle(String),
    /// A digest does not match: the file was changed after it was built.
    #[error("bundle integrity check failed: {0}")]
    Tampered(String),
    /// The signature check failed (unsigned, another key, or changed after signing).
    #[error("bundle signature check failed: {0}")]
    Signature(String),
}
