//! OPA's management plane: bundles downloaded from a bundle service ([`download`]),
//! verified with OPA's bundle signatures ([`signatures`]) or sark's own and built on
//! arrival ([`artifact`]), or pulled from an OCI registry ([`oci`]); decision logs and status reports uploaded to collectors. The
//! configuration sections keep OPA's names ([`config`]); every request goes through one
//! client per service ([`client`]). This room owns the HTTP client (reqwest).

pub mod artifact;
pub mod client;
pub mod config;
pub mod download;
pub mod logs;
pub mod oci;
pub mod signatures;
pub mod status;

pub use artifact::{ArtifactKind, Verifier};
pub use client::ServiceClient;
pub use download::{Arrival, BundleStatus, RemoteBundle, Transport};
pub use logs::LogUploader;
pub use status::StatusReporter;

/// This process's id (OPA's `labels.id`), new at every start.
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

/// OPA's `labels` of this instance: the configured ones, with `id` and `version`.
pub fn labels(configured: &std::collections::BTreeMap<String, String>) -> serde_json::Value {
    let mut labels = serde_json::json!(configured);
    labels["id"] = serde_json::json!(instance_id());
    labels["version"] = serde_json::json!(env!("CARGO_PKG_VERSION"));
    labels
}
