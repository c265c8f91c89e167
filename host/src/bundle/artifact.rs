//! Reading and verifying bundle files; encoding their custom sections.

use super::BundleError;
use sark_guest::Payload;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use wasmparser::{Chunk, Parser, Payload as Section};

/// Name of the custom section holding the payload JSON.
pub const PAYLOAD_SECTION: &str = "sark-payload";
/// Name of the custom section holding the [`BundleManifest`] JSON.
pub const MANIFEST_SECTION: &str = "sark-manifest";
/// Current manifest format.
pub const MANIFEST_FORMAT: u32 = 1;
/// Name of the custom section holding the signature (see [`super::signing`]).
pub const SIGNATURE_SECTION: &str = "sark-signature";

/// The contents of the `sark-signature` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleSignature {
    /// Always `ed25519`.
    pub alg: String,
    /// Identifies the public key: 16 hex digits of its sha-256.
    pub key_id: String,
    /// Hex Ed25519 signature.
    pub signature: String,
}

/// What a bundle declares about itself; readable without instantiating it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// Manifest format, [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Revision (from `.manifest` or `--revision`).
    pub revision: String,
    /// Data roots owned by the bundle.
    pub roots: Vec<String>,
    /// Entrypoints as `data.` paths.
    pub entrypoints: Vec<String>,
    /// The `.manifest` `metadata` object, verbatim.
    pub metadata: serde_json::Value,
    /// Hex sha-256 of the policies and data (see `SourceSet::content_hash`).
    pub content_hash: String,
    /// Regorus version of the evaluator.
    pub regorus_version: String,
    /// Version of `sark` that built the bundle.
    pub sark_version: String,
    /// Module paths and sizes.
    pub modules: Vec<ModuleEntry>,
    /// Size of the merged data document (JSON bytes).
    pub data_bytes: u64,
    /// Hex sha-256 of the bare evaluator component the bundle was built from.
    pub evaluator_sha256: String,
    /// Hex sha-256 of the component part of the file (everything before the payload).
    pub component_sha256: String,
    /// Hex sha-256 of the payload section's contents.
    pub payload_sha256: String,
}

/// One module of a bundle, as listed by `sark inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleEntry {
    /// Path inside the bundle.
    pub path: String,
    /// Source size in bytes.
    pub bytes: u64,
    /// The module's Rego syntax (bundles built before Rego v0 support were all v1).
    #[serde(default)]
    pub rego_version: sark_guest::RegoVersion,
}

/// A verified bundle file in memory.
#[derive(Clone)]
pub struct Bundle {
    bytes: Arc<[u8]>,
    manifest: BundleManifest,
    manifest_range: Range<usize>,
    signature: Option<BundleSignature>,
    component_end: usize,
    payload: Range<usize>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("revision", &self.manifest.revision)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A custom section at the top level of a component.
#[derive(Debug, Clone)]
pub struct CustomSection {
    /// Section name.
    pub name: String,
    /// Offset where the section (its id byte) starts.
    pub start: usize,
    /// Byte range of the section's contents.
    pub data: Range<usize>,
}

impl Bundle {
    /// Reads and verifies a bundle file.
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        let bytes = std::fs::read(path).map_err(|error| BundleError::Io {
            path: path.display().to_string(),
            error,
        })?;
        Self::from_bytes(bytes)
    }

    /// Verifies bundle bytes: a complete component, a SARK manifest, matching digests.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, BundleError> {
        let sections = top_level_custom_sections(&bytes)?;
        let find = |name: &str| {
            sections
                .iter()
                .rev()
                .find(|s| s.name == name)
                .cloned()
                .ok_or_else(|| {
                    BundleError::NotABundle(format!("the component has no `{name}` section"))
                })
        };
        let manifest_section = find(MANIFEST_SECTION)?;
        let payload_section = find(PAYLOAD_SECTION)?;
        let manifest: BundleManifest =
            serde_json::from_slice(&bytes[manifest_section.data.clone()])
                .map_err(|e| BundleError::Tampered(format!("the manifest is not valid: {e}")))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(BundleError::NotABundle(format!(
                "manifest format {} is not supported by this sark (expected {MANIFEST_FORMAT})",
                manifest.format
            )));
        }
        let component_end = payload_section.start;
        if manifest_section.start < component_end {
            return Err(BundleError::Tampered("sections are out of order".into()));
        }
        let component_sha = sha256_hex(&bytes[..component_end]);
        if component_sha != manifest.component_sha256 {
            return Err(BundleError::Tampered(format!(
                "the component digest is {component_sha}, the manifest says {}",
                manifest.component_sha256
            )));
        }
        let payload_sha = sha256_hex(&bytes[payload_section.data.clone()]);
        if payload_sha != manifest.payload_sha256 {
            return Err(BundleError::Tampered(format!(
                "the payload digest is {payload_sha}, the manifest says {}",
                manifest.payload_sha256
            )));
        }
        let signature = match sections.iter().rev().find(|s| s.name == SIGNATURE_SECTION) {
            None => None,
            Some(s) if s.start < manifest_section.start => {
                return Err(BundleError::Tampered(
                    "the signature section precedes the manifest".into(),
                ));
            }
            Some(s) => Some(serde_json::from_slice(&bytes[s.data.clone()]).map_err(|e| {
                BundleError::Signature(format!("the signature section is not valid: {e}"))
            })?),
        };
        Ok(Bundle {
            bytes: bytes.into(),
            manifest,
            manifest_range: manifest_section.data,
            signature,
            component_end,
            payload: payload_section.data,
        })
    }

    /// The manifest section's contents (what a signature covers).
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.bytes[self.manifest_range.clone()]
    }

    /// The bundle's signature, when it has one.
    pub fn signature(&self) -> Option<&BundleSignature> {
        self.signature.as_ref()
    }

    /// The bundle's manifest.
    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The component to compile (the file without SARK's trailing sections).
    pub fn component_bytes(&self) -> &[u8] {
        &self.bytes[..self.component_end]
    }

    /// The payload (modules and data), for the native path.
    pub fn payload(&self) -> Result<Payload, BundleError> {
        serde_json::from_slice(&self.bytes[self.payload.clone()])
            .map_err(|e| BundleError::Tampered(format!("the payload is not valid: {e}")))
    }

    /// Names of the component's imports.
    pub fn imports(&self) -> Result<Vec<String>, BundleError> {
        component_imports(self.component_bytes())
    }

    /// Size of the payload section's contents.
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }
}

/// Hex sha-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Appends a custom section (id 0: size-prefixed name, then the data) to a component.
pub fn append_custom_section(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut contents = Vec::with_capacity(name.len() + data.len() + 5);
    leb128(&mut contents, name.len() as u64);
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(data);
    out.push(0);
    leb128(out, contents.len() as u64);
    out.extend_from_slice(&contents);
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Visits the top-level sections of a component (not descending into nested modules or
/// components) with each section's start offset; fails on truncated or malformed framing
/// and on trailing bytes.
fn walk_top_level(
    bytes: &[u8],
    mut visit: impl FnMut(&Section<'_>, usize) -> Result<(), BundleError>,
) -> Result<(), BundleError> {
    let mut parser = Parser::new(0);
    let mut offset = 0usize;
    loop {
        let chunk = parser
            .parse(&bytes[offset..], true)
            .map_err(|e| BundleError::Malformed(e.to_string()))?;
        let (consumed, payload) = match chunk {
            Chunk::NeedMoreData(_) => {
                return Err(BundleError::Malformed("unexpected end of file".into()));
            }
            Chunk::Parsed { consumed, payload } => (consumed, payload),
        };
        let start = offset;
        offset += consumed;
        match &payload {
            Section::Version { encoding, .. } if *encoding != wasmparser::Encoding::Component => {
                return Err(BundleError::NotABundle(
                    "a core module, not a component".into(),
                ));
            }
            Section::ModuleSection {
                unchecked_range, ..
            }
            | Section::ComponentSection {
                unchecked_range, ..
            } => {
                // The outer parser continues after the nested item; skip its bytes.
                offset = offset
                    .checked_add(unchecked_range.len())
                    .filter(|end| *end <= bytes.len())
                    .ok_or_else(|| BundleError::Malformed("unexpected end of file".into()))?;
            }
            Section::End(_) => break,
            _ => {}
        }
        visit(&payload, start)?;
    }
    if offset != bytes.len() {
        return Err(BundleError::Malformed(format!(
            "{} trailing bytes after the component",
            bytes.len() - offset
        )));
    }
    Ok(())
}

/// Lists the custom sections at the top level of a component.
pub fn top_level_custom_sections(bytes: &[u8]) -> Result<Vec<CustomSection>, BundleError> {
    let mut found = Vec::new();
    walk_top_level(bytes, |section, start| {
        if let Section::CustomSection(reader) = section {
            found.push(CustomSection {
                name: reader.name().to_string(),
                start,
                data: reader.data_offset()..reader.data_offset() + reader.data().len(),
            });
        }
        Ok(())
    })?;
    Ok(found)
}

/// Names of a component's top-level imports (the WASI interfaces it needs).
pub fn component_imports(bytes: &[u8]) -> Result<Vec<String>, BundleError> {
    let mut names = Vec::new();
    walk_top_level(bytes, |section, _| {
        if let Section::ComponentImportSection(reader) = section {
            for import in reader.clone() {
                let import = import.map_err(|e| BundleError::Malformed(e.to_string()))?;
                names.push(import.name.name.to_string());
            }
        }
        Ok(())
    })?;
    Ok(names)
}
