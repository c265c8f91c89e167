//! The payload `sark build` hands to the evaluator: modules, data and manifest facts.

use serde::{Deserialize, Serialize};

/// Current payload format; a loader refuses any other.
pub const PAYLOAD_FORMAT: u32 = 1;

/// One Rego module of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleSource {
    /// Path inside the bundle, `/`-separated, e.g. `mcp/gateway.rego`.
    pub path: String,
    /// Rego source text.
    pub source: String,
}

/// Everything the evaluator needs to load a policy set. Serialized as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// Always [`PAYLOAD_FORMAT`].
    pub format: u32,
    /// Manifest revision (may be empty).
    pub revision: String,
    /// Data roots owned by the bundle (manifest `roots`).
    pub roots: Vec<String>,
    /// Entrypoints as `data.` rule paths.
    pub entrypoints: Vec<String>,
    /// Hex sha-256 of the policies and data, computed by the builder.
    pub content_hash: String,
    /// Policy modules, sorted by path.
    pub modules: Vec<ModuleSource>,
    /// The merged data document.
    pub data: serde_json::Value,
    /// A builtin given bad arguments fails the evaluation (`true`, Regorus's and SARK's
    /// default, OPA's `--strict-builtin-errors`) or makes its expression undefined (`false`,
    /// OPA's default).
    #[serde(default = "strict_default")]
    pub strict_builtin_errors: bool,
    /// Evaluate every entrypoint once while loading, with an empty input (`true`, the
    /// default: `sark build` validates the entrypoints and warms the engine this way). A host
    /// that loads an already built bundle into a fresh instance sets it to `false`: the
    /// bundle was validated when it was built, and a slow entrypoint must not make every new
    /// instance slow. Not written when `true`, so payloads stay as they were.
    #[serde(default = "strict_default", skip_serializing_if = "is_true")]
    pub warm_up: bool,
}

fn strict_default() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

/// Description of a loaded bundle; mirrors the WIT `bundle-info` record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleInfo {
    /// Manifest revision.
    pub revision: String,
    /// Entrypoints as `data.` rule paths.
    pub entrypoints: Vec<String>,
    /// Data roots owned by the bundle.
    pub roots: Vec<String>,
    /// Hex sha-256 of the policies and data.
    pub content_hash: String,
    /// Regorus version of the evaluator.
    pub regorus_version: String,
    /// Module paths, sorted.
    pub modules: Vec<String>,
}
