//! Keys for the JWT and X.509 builtins: PEM certificates and public keys, JWKs and JWK sets.

use anyhow::{Context, Result, anyhow, bail};
use data_encoding::{BASE64, BASE64URL_NOPAD};
use der::{Decode, Encode};
use rsa::BigUint;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use signature::hazmat::{PrehashSigner, PrehashVerifier};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::Certificate;

/// Object identifiers of the public-key algorithms we understand.
mod oid {
    use der::asn1::ObjectIdentifier as Oid;
    pub const RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    pub const EC: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
    pub const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    pub const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    pub const P521: Oid = Oid::new_unwrap("1.3.132.0.35");
}

/// A hash function used by a signature algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The digest of `msg`.
    pub fn digest(self, msg: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha1 => sha1::Sha1::digest(msg).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(msg).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(msg).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(msg).to_vec(),
        }
    }

    /// RSASSA-PKCS1-v1_5 padding with this hash.
    fn pkcs1v15(self) -> rsa::Pkcs1v15Sign {
        match self {
            Hash::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
            Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        }
    }

    /// RSASSA-PSS padding with this hash.
    fn pss(self) -> rsa::Pss {
        match self {
            Hash::Sha1 => rsa::Pss::new::<sha1::Sha1>(),
            Hash::Sha256 => rsa::Pss::new::<sha2::Sha256>(),
            Hash::Sha384 => rsa::Pss::new::<sha2::Sha384>(),
            Hash::Sha512 => rsa::Pss::new::<sha2::Sha512>(),
        }
    }
}

/// How a signature is computed: the key family, the padding or encoding, and the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// HMAC (JWT `HS*`).
    Hmac(Hash),
    /// RSASSA-PKCS1-v1_5 (JWT `RS*`).
    RsaPkcs1(Hash),
    /// RSASSA-PSS (JWT `PS*`).
    RsaPss(Hash),
    /// ECDSA; `raw` signatures are `r || s` (JWS), otherwise DER (X.509).
    Ecdsa { hash: Hash, raw: bool },
    /// Ed25519.
    EdDsa,
}

impl Scheme {
    /// The scheme of a JWS `alg` header value.
    pub fn from_jws_alg(alg: &str) -> Option<Scheme> {
        Some(match alg {
            "HS256" => Scheme::Hmac(Hash::Sha256),
            "HS384" => Scheme::Hmac(Hash::Sha384),
            "HS512" => Scheme::Hmac(Hash::Sha512),
            "RS256" => Scheme::RsaPkcs1(Hash::Sha256),
            "RS384" => Scheme::RsaPkcs1(Hash::Sha384),
            "RS512" => Scheme::RsaPkcs1(Hash::Sha512),
            "PS256" => Scheme::RsaPss(Hash::Sha256),
            "PS384" => Scheme::RsaPss(Hash::Sha384),
            "PS512" => Scheme::RsaPss(Hash::Sha512),
            "ES256" => Scheme::Ecdsa {
                hash: Hash::Sha256,
                raw: true,
            },
            "ES384" => Scheme::Ecdsa {
                hash: Hash::Sha384,
                raw: true,
            },
            "ES512" => Scheme::Ecdsa {
                hash: Hash::Sha512,
                raw: true,
            },
            "EdDSA" => Scheme::EdDsa,
            _ => return None,
        })
    }
}

/// A public key that can verify signatures.
#[derive(Clone)]
pub enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Verifies `sig` over `msg`; false when the key does not fit the scheme.
    pub fn verify(&self, scheme: Scheme, msg: &[u8], sig: &[u8]) -> bool {
        match (self, scheme) {
            (PublicKey::Rsa(key), Scheme::RsaPkcs1(hash)) => {
                let padding = hash.pkcs1v15();
                key.verify(padding, &hash.digest(msg), sig).is_ok()
            }
            (PublicKey::Rsa(key), Scheme::RsaPss(hash)) => {
                let padding = hash.pss();
                key.verify(padding, &hash.digest(msg), sig).is_ok()
            }
            (PublicKey::P256(key), Scheme::Ecdsa { hash, raw }) => {
                let sig = if raw {
                    p256::ecdsa::Signature::from_slice(sig)
                } else {
                    p256::ecdsa::Signature::from_der(sig)
                };
                sig.is_ok_and(|s| key.verify_prehash(&hash.digest(msg), &s).is_ok())
            }
            (PublicKey::P384(key), Scheme::Ecdsa { hash, raw }) => {
                let sig = if raw {
                    p384::ecdsa::Signature::from_slice(sig)
                } else {
                    p384::ecdsa::Signature::from_der(sig)
                };
                sig.is_ok_and(|s| key.verify_prehash(&hash.digest(msg), &s).is_ok())
            }
            (PublicKey::P521(key), Scheme::Ecdsa { hash, raw }) => {
                let sig = if raw {
                    p521::ecdsa::Signature::from_slice(sig)
                } else {
                    p521::ecdsa::Signature::from_der(sig)
                };
                sig.is_ok_and(|s| key.verify_prehash(&hash.digest(msg), &s).is_ok())
            }
            (PublicKey::Ed25519(key), Scheme::EdDsa) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| key.verify_strict(msg, &s).is_ok()),
            _ => false,
        }
    }

    /// Reads a DER `SubjectPublicKeyInfo`.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).context("invalid public key info")?;
        Self::from_spki(&spki)
    }

    fn from_spki(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<PublicKey> {
        let bits = spki.subject_public_key.raw_bytes();
        let alg = spki.algorithm.oid;
        if alg == oid::RSA {
            let der = spki.to_der()?;
            return Ok(PublicKey::Rsa(
                rsa::RsaPublicKey::from_public_key_der(&der).context("invalid RSA public key")?,
            ));
        }
        if alg == oid::ED25519 {
            let bytes: [u8; 32] = bits
                .try_into()
                .map_err(|_| anyhow!("invalid Ed25519 key"))?;
            return Ok(PublicKey::Ed25519(
                ed25519_dalek::VerifyingKey::from_bytes(&bytes).context("invalid Ed25519 key")?,
            ));
        }
        if alg == oid::EC {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map_err(|_| anyhow!("EC public key without a named curve"))?;
            return ec_key_from_sec1(curve, bits);
        }
        bail!("unsupported public key algorithm {alg}")
    }
}

fn ec_key_from_sec1(curve: der::asn1::ObjectIdentifier, bytes: &[u8]) -> Result<PublicKey> {
    Ok(if curve == oid::P256 {
        PublicKey::P256(
            p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).context("invalid P-256 key")?,
        )
    } else if curve == oid::P384 {
        PublicKey::P384(
            p384::ecdsa::VerifyingKey::from_sec1_bytes(bytes).context("invalid P-384 key")?,
        )
    } else if curve == oid::P521 {
        PublicKey::P521(
            p521::ecdsa::VerifyingKey::from_sec1_bytes(bytes).context("invalid P-521 key")?,
        )
    } else {
        bail!("unsupported elliptic curve {curve}")
    })
}

/// A PEM block: its label and DER contents.
pub struct PemBlock {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every PEM block in `text`, in order. Text outside blocks is ignored, as Go's `pem.Decode`
/// does; a block with invalid base64 is an error.
pub fn pem_blocks(text: &str) -> Result<Vec<PemBlock>> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----").context("unterminated PEM header")?;
        let label = after[..label_end].to_string();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let end = body_start
            .find(&end_marker)
            .with_context(|| format!("PEM block {label} has no end line"))?;
        let body: String = body_start[..end]
            .lines()
            .filter(|l| !l.contains(':'))
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = BASE64
            .decode(body.as_bytes())
            .with_context(|| format!("PEM block {label} has invalid base64"))?;
        blocks.push(PemBlock { label, der });
        rest = &body_start[end + end_marker.len()..];
    }
    if !blocks.is_empty() && !rest.trim().is_empty() {
        bail!("extra data after a PEM certificate block");
    }
    Ok(blocks)
}

/// The public keys in a JWT builtin's `certificate` argument: PEM certificates or public
/// keys, a JWK, or a JWK set.
pub fn public_keys(text: &str) -> Result<Vec<PublicKey>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let json: serde_json::Value =
            serde_json::from_str(trimmed).context("the key is neither PEM nor valid JSON")?;
        if let Some(keys) = json.get("keys").and_then(|k| k.as_array()) {
            return keys.iter().map(jwk_public_key).collect();
        }
        return Ok(vec![jwk_public_key(&json)?]);
    }
    let blocks = pem_blocks(text)?;
    if blocks.is_empty() {
        bail!("failed to find a PEM block or a JWK in the key");
    }
    blocks
        .iter()
        .map(|block| match block.label.as_str() {
            "CERTIFICATE" => {
                let cert = Certificate::from_der(&block.der).context("invalid certificate")?;
                let spki = cert.tbs_certificate.subject_public_key_info.to_der()?;
                PublicKey::from_spki_der(&spki)
            }
            "PUBLIC KEY" => PublicKey::from_spki_der(&block.der),
            "RSA PUBLIC KEY" => Ok(PublicKey::Rsa(
                rsa::RsaPublicKey::from_pkcs1_der(&block.der).context("invalid RSA public key")?,
            )),
            other => bail!("unsupported PEM block {other}"),
        })
        .collect()
}

/// A base64url (unpadded or padded) member of a JWK.
pub fn jwk_bytes(jwk: &serde_json::Value, field: &str) -> Result<Vec<u8>> {
    let s = jwk
        .get(field)
        .and_then(|v| v.as_str())
        .with_context(|| format!("JWK has no \"{field}\""))?;
    BASE64URL_NOPAD
        .decode(s.trim_end_matches('=').as_bytes())
        .with_context(|| format!("JWK \"{field}\" is not base64url"))
}

fn jwk_uint(jwk: &serde_json::Value, field: &str) -> Result<BigUint> {
    Ok(BigUint::from_bytes_be(&jwk_bytes(jwk, field)?))
}

fn jwk_kty(jwk: &serde_json::Value) -> Result<&str> {
    jwk.get("kty")
        .and_then(|v| v.as_str())
        .context("JWK has no \"kty\"")
}

fn jwk_curve(jwk: &serde_json::Value) -> Result<der::asn1::ObjectIdentifier> {
    Ok(match jwk.get("crv").and_then(|v| v.as_str()) {
        Some("P-256") => oid::P256,
        Some("P-384") => oid::P384,
        Some("P-521") => oid::P521,
        other => bail!("unsupported JWK curve {other:?}"),
    })
}

/// The public key of a JWK.
pub fn jwk_public_key(jwk: &serde_json::Value) -> Result<PublicKey> {
    match jwk_kty(jwk)? {
        "RSA" => Ok(PublicKey::Rsa(
            rsa::RsaPublicKey::new(jwk_uint(jwk, "n")?, jwk_uint(jwk, "e")?)
                .context("invalid RSA JWK")?,
        )),
        "EC" => {
            let mut point = vec![0x04];
            point.extend(jwk_bytes(jwk, "x")?);
            point.extend(jwk_bytes(jwk, "y")?);
            ec_key_from_sec1(jwk_curve(jwk)?, &point)
        }
        "OKP" => {
            let x: [u8; 32] = jwk_bytes(jwk, "x")?
                .try_into()
                .map_err(|_| anyhow!("Ed25519 JWK \"x\" must be 32 bytes"))?;
            Ok(PublicKey::Ed25519(
                ed25519_dalek::VerifyingKey::from_bytes(&x).context("invalid Ed25519 JWK")?,
            ))
        }
        other => bail!("unsupported JWK key type {other:?}"),
    }
}

/// A key that can sign, read from a JWK.
pub enum SigningKey {
    Secret(Vec<u8>),
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl SigningKey {
    /// Reads a private JWK (`oct`, `RSA`, `EC` or `OKP`).
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<SigningKey> {
        Ok(match jwk_kty(jwk)? {
            "oct" => SigningKey::Secret(jwk_bytes(jwk, "k")?),
            "RSA" => {
                let primes = match (jwk.get("p"), jwk.get("q")) {
                    (Some(_), Some(_)) => vec![jwk_uint(jwk, "p")?, jwk_uint(jwk, "q")?],
                    _ => Vec::new(),
                };
                let mut key = rsa::RsaPrivateKey::from_components(
                    jwk_uint(jwk, "n")?,
                    jwk_uint(jwk, "e")?,
                    jwk_uint(jwk, "d")?,
                    primes,
                )
                .context("invalid RSA JWK")?;
                key.precompute().context("invalid RSA JWK")?;
                SigningKey::Rsa(Box::new(key))
            }
            "EC" => {
                let d = jwk_bytes(jwk, "d")?;
                let curve = jwk_curve(jwk)?;
                if curve == oid::P256 {
                    SigningKey::P256(
                        p256::ecdsa::SigningKey::from_slice(&d).context("invalid P-256 JWK")?,
                    )
                } else if curve == oid::P384 {
                    SigningKey::P384(
                        p384::ecdsa::SigningKey::from_slice(&d).context("invalid P-384 JWK")?,
                    )
                } else {
                    SigningKey::P521(
                        p521::ecdsa::SigningKey::from_slice(&d).context("invalid P-521 JWK")?,
                    )
                }
            }
            "OKP" => {
                let d: [u8; 32] = jwk_bytes(jwk, "d")?
                    .try_into()
                    .map_err(|_| anyhow!("Ed25519 JWK \"d\" must be 32 bytes"))?;
                SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&d))
            }
            other => bail!("unsupported JWK key type {other:?}"),
        })
    }

    /// Signs `msg` with `scheme` (ECDSA signatures in the JWS `r || s` form).
    pub fn sign(&self, scheme: Scheme, msg: &[u8]) -> Result<Vec<u8>> {
        match (self, scheme) {
            (SigningKey::Secret(k), Scheme::Hmac(hash)) => Ok(super::crypto::hmac(hash, k, msg)),
            (SigningKey::Rsa(key), Scheme::RsaPkcs1(hash)) => {
                let padding = hash.pkcs1v15();
                key.sign(padding, &hash.digest(msg))
                    .context("RSA signing failed")
            }
            (SigningKey::Rsa(key), Scheme::RsaPss(hash)) => {
                let padding = hash.pss();
                key.sign_with_rng(&mut super::crypto::SystemRng, padding, &hash.digest(msg))
                    .context("RSA-PSS signing failed")
            }
            (SigningKey::P256(key), Scheme::Ecdsa { hash, .. }) => {
                let sig: p256::ecdsa::Signature = key.sign_prehash(&hash.digest(msg))?;
                Ok(sig.to_bytes().to_vec())
            }
            (SigningKey::P384(key), Scheme::Ecdsa { hash, .. }) => {
                let sig: p384::ecdsa::Signature = key.sign_prehash(&hash.digest(msg))?;
                Ok(sig.to_bytes().to_vec())
            }
            (SigningKey::P521(key), Scheme::Ecdsa { hash, .. }) => {
                let sig: p521::ecdsa::Signature = key.sign_prehash(&hash.digest(msg))?;
                Ok(sig.to_bytes().to_vec())
            }
            (SigningKey::Ed25519(key), Scheme::EdDsa) => {
                use ed25519_dalek::Signer;
                Ok(key.sign(msg).to_bytes().to_vec())
            }
            _ => bail!("the key does not fit the signing algorithm"),
        }
    }
}
