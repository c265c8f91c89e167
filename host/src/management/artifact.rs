//! A downloaded (or persisted) bundle artifact made ready to activate: a sark `.wasm`
//! component checked as it is, or an OPA `.tar.gz` bundle whose signature is verified and
//! which is then built into a component. Verification happens before anything is built.

use super::config::{KeyConfig, Signing};
use super::signatures;
use crate::bundle::{BuildOptions, Bundle, SourceSet, signing};
use std::collections::BTreeMap;

/// The two kinds of artifact a bundle service can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A sark bundle: one WebAssembly component.
    Wasm,
    /// An OPA bundle: a gzip-compressed tarball.
    Tarball,
}

impl ArtifactKind {
    /// The kind of `bytes`, from their magic number.
    pub fn sniff(bytes: &[u8]) -> Result<Self, String> {
        if bytes.starts_with(b"\0asm") {
            Ok(ArtifactKind::Wasm)
        } else if bytes.starts_with(&[0x1f, 0x8b]) {
            Ok(ArtifactKind::Tarball)
        } else if bytes.is_empty() {
            Err("the bundle is empty".into())
        } else {
            Err(
                "the bundle is neither a WebAssembly component nor a gzip-compressed OPA bundle"
                    .into(),
            )
        }
    }

    /// The file name it is persisted under.
    pub fn file_name(self) -> &'static str {
        match self {
            ArtifactKind::Wasm => "bundle.wasm",
            ArtifactKind::Tarball => "bundle.tar.gz",
        }
    }
}

/// How downloaded bundles are verified: OPA's `signing` block and `keys`, and sark's
/// `--verification-key`.
#[derive(Clone, Default)]
pub struct Verifier {
    /// The bundle's `signing` block; present means every bundle must be signed.
    pub signing: Option<Signing>,
    /// OPA's `keys`.
    pub keys: BTreeMap<String, KeyConfig>,
    /// `--verification-key`: every `.wasm` bundle must carry sark's signature by it.
    pub sark_key: Option<signing::VerifyingKey>,
}

/// Largest file inside an OPA tarball.
const MAX_TAR_FILE_BYTES: u64 = 256 << 20;

impl Verifier {
    /// Verifies `bytes` and makes them a bundle ready to load (building an OPA tarball into
    /// a component). Blocking and CPU-heavy for a tarball: run it off the async workers.
    pub fn prepare(&self, bytes: Vec<u8>) -> Result<Bundle, String> {
        match ArtifactKind::sniff(&bytes)? {
            ArtifactKind::Wasm => self.wasm(bytes),
            ArtifactKind::Tarball => self.tarball(&bytes),
        }
    }

    fn wasm(&self, bytes: Vec<u8>) -> Result<Bundle, String> {
        let bundle = Bundle::from_bytes(bytes).map_err(|e| e.to_string())?;
        if let Some(key) = &self.sark_key {
            signing::verify(&bundle, key).map_err(|e| e.to_string())?;
        }
        if let Some(cfg) = &self.signing {
            let sig = bundle.signature().ok_or_else(|| {
                "bundle signature check failed: the bundle is not signed, and bundles.signing is configured".to_string()
            })?;
            let candidates: Vec<(&String, &KeyConfig)> = match &cfg.keyid {
                Some(id) => self.keys.get_key_value(id).into_iter().collect(),
                None => self.keys.iter().collect(),
            };
            let mut tried = Vec::new();
            for (id, k) in candidates {
                if k.algorithm() != "EdDSA" {
                    continue;
                }
                let pem = k.key.as_deref().unwrap_or_default();
                let key =
                    signing::parse_verification_key(pem).map_err(|e| format!("keys.{id}: {e}"))?;
                if signing::key_id(&key) != sig.key_id {
                    tried.push(id.clone());
                    continue;
                }
                return signing::verify(&bundle, &key)
                    .map(|()| bundle)
                    .map_err(|e| e.to_string());
            }
            return Err(format!(
                "bundle signature check failed: the bundle is signed by key {}, which is not among the EdDSA keys configured{}",
                sig.key_id,
                if tried.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", tried.join(", "))
                }
            ));
        }
        Ok(bundle)
    }

    fn tarball(&self, bytes: &[u8]) -> Result<Bundle, String> {
        let sources = self.verified_sources(bytes)?;
        let cache = crate::runtime::CodeCache::open_default();
        let built = crate::runtime::build_bundle(
            &sources,
            &BuildOptions::default(),
            crate::EVALUATOR_COMPONENT,
            cache.as_ref(),
        )
        .map_err(|e| format!("cannot build the OPA bundle: {e}"))?;
        Bundle::from_bytes(built).map_err(|e| e.to_string())
    }

    /// An OPA tarball's files, read and signature-checked by OPA's rules, before they are
    /// built into a component.
    pub fn verified_sources(&self, bytes: &[u8]) -> Result<SourceSet, String> {
        let mut files = crate::bundle::source::tar_gz_files(bytes, MAX_TAR_FILE_BYTES)?;
        let signatures_file = files.remove(signatures::SIGNATURES_FILE);
        // OPA's rules: a `signing` block requires a signature; a signed bundle is verified
        // when keys are configured (with a default block) and refused when none are.
        match (&self.signing, signatures_file) {
            (Some(cfg), Some(sig)) => signatures::verify(&files, &sig, cfg, &self.keys)
                .map_err(|e| format!("bundle signature verification failed: {e}"))?,
            (Some(_), None) => {
                return Err(format!(
                    "bundle signature verification failed: bundle missing {} file",
                    signatures::SIGNATURES_FILE
                ));
            }
            (None, Some(_)) if self.keys.is_empty() => {
                return Err(
                    "bundle signature verification failed: verification key not provided".into(),
                );
            }
            (None, Some(sig)) => signatures::verify(&files, &sig, &Default::default(), &self.keys)
                .map_err(|e| format!("bundle signature verification failed: {e}"))?,
            (None, None) => {}
        }
        Ok(SourceSet::from_files(files))
    }
}
