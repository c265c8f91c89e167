//! Ed25519 signatures over a bundle's manifest.
//!
//! The manifest carries the sha-256 of the component part and of the payload, and every
//! load checks both, so a signature over the manifest covers every byte of the bundle. The
//! signature travels in a last custom section, `sark-signature`: `{alg, key_id, signature}`,
//! where `key_id` is the first 16 hex digits of the sha-256 of the public key and the
//! signature (hex) is over `sark-bundle-signature-v1\0` followed by the manifest section's
//! contents. Keys are PEM: PKCS#8 for the private key, SPKI for the public key.

use super::BundleError;
use super::artifact::{
    Bundle, BundleSignature, SIGNATURE_SECTION, append_custom_section, sha256_hex,
};
/// An Ed25519 public key that bundles are verified with.
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use std::path::{Path, PathBuf};

/// Domain separation for the signed message.
const CONTEXT: &[u8] = b"sark-bundle-signature-v1\0";

/// A key file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a key of the expected kind.
    #[error("{path}: not an Ed25519 {kind} key in PEM form ({reason})")]
    Format {
        /// The file.
        path: String,
        /// `private` or `public`.
        kind: &'static str,
        /// The parser's reason.
        reason: String,
    },
}

/// The key id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())[..16].to_string()
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|error| KeyError::Io {
        path: path.display().to_string(),
        error,
    })
}

/// Reads a PKCS#8 PEM private key.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(&read(path)?).map_err(|e| KeyError::Format {
        path: path.display().to_string(),
        kind: "private",
        reason: e.to_string(),
    })
}

/// Reads an SPKI PEM public key.
pub fn read_verification_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(&read(path)?).map_err(|e| KeyError::Format {
        path: path.display().to_string(),
        kind: "public",
        reason: e.to_string(),
    })
}

/// Parses an SPKI PEM public key given as text (e.g. OPA's `keys.<id>.key`).
pub fn parse_verification_key(pem: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| format!("not an Ed25519 public key in PEM form ({e})"))
}

/// Writes a new key pair: the private key at `path` (mode 0600) and the public key at
/// `path.pub`. Returns the public key's path.
pub fn generate(path: &Path) -> Result<PathBuf, KeyError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |error| KeyError::Io { path: p, error }
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Io {
        path: path.display().to_string(),
        error: std::io::Error::other(e.to_string()),
    })?;
    let key = SigningKey::from_bytes(&seed);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Format {
            path: path.display().to_string(),
            kind: "private",
            reason: e.to_string(),
        })?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Format {
            path: path.display().to_string(),
            kind: "public",
            reason: e.to_string(),
        })?;
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(io(path))?;
        f.write_all(private.as_bytes()).map_err(io(path))?;
    }
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    std::fs::write(&pub_path, public.as_bytes()).map_err(io(&pub_path))?;
    Ok(pub_path)
}

impl Bundle {
    /// Reads a bundle and, when `key` is given, checks its signature.
    pub fn read_verified(
        path: &Path,
        key: Option<&ed25519_dalek::VerifyingKey>,
    ) -> Result<Self, BundleError> {
        let bundle = Bundle::read(path)?;
        if let Some(key) = key {
            verify(&bundle, key)?;
        }
        Ok(bundle)
    }
}

fn message(manifest: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + manifest.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(manifest);
    m
}

/// Signs a built bundle: appends the `sark-signature` section.
pub fn sign(bundle: &Bundle, key: &SigningKey) -> Vec<u8> {
    let signature = key.sign(&message(bundle.manifest_bytes()));
    let section = BundleSignature {
        alg: "ed25519".into(),
        key_id: key_id(&key.verifying_key()),
        signature: hex::encode(signature.to_bytes()),
    };
    let mut out = bundle.bytes().to_vec();
    let json = serde_json::to_vec(&section).expect("the signature serializes");
    append_custom_section(&mut out, SIGNATURE_SECTION, &json);
    out
}

/// Checks that `bundle` is signed by `key`. Refuses an unsigned bundle, one signed by
/// another key, and one whose manifest (and so content) changed after signing.
pub fn verify(bundle: &Bundle, key: &VerifyingKey) -> Result<(), BundleError> {
    let Some(sig) = bundle.signature() else {
        return Err(BundleError::Signature(
            "the bundle is not signed, and a verification key is configured".into(),
        ));
    };
    let expected = key_id(key);
    if sig.alg != "ed25519" {
        return Err(BundleError::Signature(format!(
            "unsupported signature algorithm {:?}",
            sig.alg
        )));
    }
    if sig.key_id != expected {
        return Err(BundleError::Signature(format!(
            "the bundle is signed by key {}, not by the verification key {expected}",
            sig.key_id
        )));
    }
    let bytes = hex::decode(&sig.signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| BundleError::Signature("the signature is malformed".into()))?;
    key.verify(&message(bundle.manifest_bytes()), &bytes)
        .map_err(|_| {
            BundleError::Signature(
                "the signature does not match: the bundle was changed after it was signed".into(),
            )
        })
}
