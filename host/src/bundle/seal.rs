//! The last step of `sark build`: append the payload and the manifest (with the digests of
//! the component part and of the payload) to the snapshotted component.

use super::BuildError;
use super::artifact::{
    BundleManifest, MANIFEST_FORMAT, MANIFEST_SECTION, ModuleEntry, PAYLOAD_SECTION,
    append_custom_section, sha256_hex,
};
use super::assemble::Assembled;

/// The payload as the component's loader and the native path read it.
pub fn encode_payload(assembled: &Assembled) -> Result<Vec<u8>, BuildError> {
    serde_json::to_vec(&assembled.payload)
        .map_err(|e| BuildError::Source(format!("cannot encode payload: {e}")))
}

/// Turns the snapshotted `component` into a bundle file: the payload section, then the
/// manifest section. `evaluator` is the bare evaluator the snapshot was taken from.
pub fn seal(
    mut component: Vec<u8>,
    assembled: Assembled,
    payload_json: &[u8],
    evaluator: &[u8],
) -> Result<Vec<u8>, BuildError> {
    let component_sha256 = sha256_hex(&component);
    append_custom_section(&mut component, PAYLOAD_SECTION, payload_json);
    let payload = &assembled.payload;
    let manifest = BundleManifest {
        format: MANIFEST_FORMAT,
        revision: payload.revision.clone(),
        roots: payload.roots.clone(),
        entrypoints: payload.entrypoints.clone(),
        metadata: assembled.metadata,
        content_hash: payload.content_hash.clone(),
        regorus_version: sark_guest::REGORUS_VERSION.to_string(),
        sark_version: env!("CARGO_PKG_VERSION").to_string(),
        modules: payload
            .modules
            .iter()
            .map(|m| ModuleEntry {
                path: m.path.clone(),
                bytes: m.source.len() as u64,
                rego_version: m.rego_version,
            })
            .collect(),
        data_bytes: payload.data.to_string().len() as u64,
        evaluator_sha256: sha256_hex(evaluator),
        component_sha256,
        payload_sha256: sha256_hex(payload_json),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BuildError::Source(format!("cannot encode manifest: {e}")))?;
    append_custom_section(&mut component, MANIFEST_SECTION, &manifest_json);
    Ok(component)
}
