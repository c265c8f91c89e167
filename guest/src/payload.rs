//! The payload `sark build` hands to the evaluator: modules, data and manifest facts.

use serde::{Deserialize, Serialize};

/// Current payload format; a loader refuses any other.
pub const PAYLOAD_FORMAT: u32 = 1;

/// The Rego syntax a module is written in (OPA's `rego_version`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum RegoVersion {
    /// Rego v0: `if` and `contains` optional, `future.keywords` imports (OPA's
    /// `--v0-compatible`, `rego_version: 0`).
    V0,
    /// Rego v1, OPA 1.x's default.
    #[default]
    V1,
}

impl RegoVersion {
    /// True for [`RegoVersion::V1`] (the default, which payloads do not write).
    pub fn is_v1(&self) -> bool {
        *self == RegoVersion::V1
    }
}

impl TryFrom<u8> for RegoVersion {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            0 => Ok(RegoVersion::V0),
            1 => Ok(RegoVersion::V1),
            n => Err(format!("unsupported Rego version {n} (expected 0 or 1)")),
        }
    }
}

impl From<RegoVersion> for u8 {
    fn from(v: RegoVersion) -> u8 {
        match v {
            RegoVersion::V0 => 0,
            RegoVersion::V1 => 1,
        }
    }
}

impl core::fmt::Display for RegoVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RegoVersion::V0 => "v0",
            RegoVersion::V1 => "v1",
        })
    }
}

/// One Rego module of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleSource {
    /// Path inside the bundle, `/`-separated, e.g. `mcp/gateway.rego`.
    pub path: String,
    /// Rego source text.
    pub source: String,
    /// The module's Rego syntax; not written when v1.
    #[serde(default, skip_serializing_if = "RegoVersion::is_v1")]
    pub rego_version: RegoVersion,
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
    /// The syntax ad-hoc queries are parsed in (the bundle's default Rego version); each
    /// module carries its own. Not written when v1.
    #[serde(default, skip_serializing_if = "RegoVersion::is_v1")]
    pub rego_version: RegoVersion,
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
