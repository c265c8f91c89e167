//! `crypto.x509.*` and `crypto.parse_private_keys`.
//!
//! Certificates are returned as OPA returns them: Go's `x509.Certificate` JSON encoding (the
//! fields policies use: names, validity, SANs as `DNSNames` / `EmailAddresses` /
//! `IPAddresses` / `URIStrings`, CA flags, algorithms, raw DER in base64), with Go's `null`
//! for absent lists.

use super::keys::{Hash, PublicKey, Scheme, pem_blocks};
use super::{Builtin, from_json, string_arg};
use anyhow::{Context, Result, anyhow, bail};
use data_encoding::{BASE64, BASE64URL_NOPAD};
use der::asn1::ObjectIdentifier as Oid;
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use regorus::Value;
use rsa::BigUint;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use serde_json::{Value as Json, json};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::request::CertReq;

pub(super) const BUILTINS: &[Builtin] = &[
    ("crypto.x509.parse_certificates", 1, parse_certificates),
    (
        "crypto.x509.parse_and_verify_certificates",
        1,
        parse_and_verify_certificates,
    ),
    (
        "crypto.x509.parse_certificate_request",
        1,
        parse_certificate_request,
    ),
    (
        "crypto.x509.parse_rsa_private_key",
        1,
        parse_rsa_private_key,
    ),
    ("crypto.x509.parse_keypair", 2, parse_keypair),
    ("crypto.parse_private_keys", 1, parse_private_keys),
];

/// DER blobs of the certificates in `text`: PEM, base64-encoded PEM, or base64-encoded DER
/// (one or several certificates back to back), as OPA accepts them.
fn der_items(text: &str, label: &str) -> Result<Vec<Vec<u8>>> {
    let pem_text = if text.trim_start().starts_with("-----BEGIN") {
        text.to_string()
    } else {
        let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = BASE64
            .decode(cleaned.as_bytes())
            .map_err(|e| anyhow!("illegal base64 data: {e}"))?;
        if bytes.starts_with(b"-----BEGIN") {
            String::from_utf8(bytes).context("PEM data is not UTF-8")?
        } else {
            return split_der(&bytes);
        }
    };
    let blocks = pem_blocks(&pem_text)?;
    let ders: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.label == label)
        .map(|b| b.der)
        .collect();
    if ders.is_empty() {
        bail!("no {label} PEM block found");
    }
    Ok(ders)
}

/// Splits concatenated DER structures.
fn split_der(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut reader = SliceReader::new(bytes).context("DER data too long")?;
    while !reader.is_finished() {
        let any: der::asn1::AnyRef<'_> = reader
            .decode()
            .map_err(|e| anyhow!("x509: malformed certificate: {e}"))?;
        out.push(any.to_der()?);
    }
    if out.is_empty() {
        bail!("x509: malformed certificate: no data");
    }
    Ok(out)
}

fn parse_certs(text: &str) -> Result<Vec<(Certificate, Vec<u8>)>> {
    der_items(text, "CERTIFICATE")?
        .into_iter()
        .map(|der| {
            let cert = Certificate::from_der(&der)
                .map_err(|e| anyhow!("x509: malformed certificate: {e}"))?;
            Ok((cert, der))
        })
        .collect()
}

fn parse_certificates(args: &[Value]) -> Result<Value> {
    let certs = parse_certs(string_arg(args, 0)?)?;
    let json: Vec<Json> = certs
        .iter()
        .map(|(c, der)| cert_json(c, der))
        .collect::<Result<_>>()?;
    Ok(from_json(Json::Array(json)))
}

/// `[valid, chain]`: as in OPA, the first certificate is the trusted root and the last the
/// leaf. Each must be signed by the one before it, be within its validity period, and
/// (except the leaf) be a CA. The chain is returned leaf first.
fn parse_and_verify_certificates(args: &[Value]) -> Result<Value> {
    let invalid = Value::from(vec![Value::from(false), Value::new_array()]);
    let Ok(mut certs) = parse_certs(string_arg(args, 0)?) else {
        return Ok(invalid);
    };
    certs.reverse();
    if certs.len() < 2 {
        return Ok(invalid);
    }
    let now = std::time::SystemTime::now();
    for (i, (cert, _)) in certs.iter().enumerate() {
        let validity = &cert.tbs_certificate.validity;
        if now < validity.not_before.to_system_time() || now > validity.not_after.to_system_time() {
            return Ok(invalid);
        }
        if i > 0 && is_ca(cert) == Some(false) {
            return Ok(invalid);
        }
        if let Some((issuer, _)) = certs.get(i + 1)
            && (cert.tbs_certificate.issuer != issuer.tbs_certificate.subject
                || !signed_by(cert, issuer))
        {
            return Ok(invalid);
        }
    }
    let json: Vec<Json> = certs
        .iter()
        .map(|(c, der)| cert_json(c, der))
        .collect::<Result<_>>()?;
    Ok(Value::from(vec![
        Value::from(true),
        from_json(Json::Array(json)),
    ]))
}

fn is_ca(cert: &Certificate) -> Option<bool> {
    let ext = cert
        .tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oids::BASIC_CONSTRAINTS)?;
    BasicConstraints::from_der(ext.extn_value.as_bytes())
        .ok()
        .map(|b| b.ca)
}

/// Whether `issuer`'s key verifies `cert`'s signature.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    let Some(scheme) = signature_scheme(&cert.signature_algorithm.oid) else {
        return false;
    };
    let (Ok(tbs), Ok(spki)) = (
        cert.tbs_certificate.to_der(),
        issuer.tbs_certificate.subject_public_key_info.to_der(),
    ) else {
        return false;
    };
    let Ok(key) = PublicKey::from_spki_der(&spki) else {
        return false;
    };
    let Some(sig) = cert.signature.as_bytes() else {
        return false;
    };
    key.verify(scheme, &tbs, sig)
}

mod oids {
    use der::asn1::ObjectIdentifier as Oid;
    pub const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
    pub const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
    pub const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
}

fn signature_scheme(oid: &Oid) -> Option<Scheme> {
    Some(match oid.to_string().as_str() {
        "1.2.840.113549.1.1.5" => Scheme::RsaPkcs1(Hash::Sha1),
        "1.2.840.113549.1.1.11" => Scheme::RsaPkcs1(Hash::Sha256),
        "1.2.840.113549.1.1.12" => Scheme::RsaPkcs1(Hash::Sha384),
        "1.2.840.113549.1.1.13" => Scheme::RsaPkcs1(Hash::Sha512),
        "1.2.840.10045.4.1" => Scheme::Ecdsa {
            hash: Hash::Sha1,
            raw: false,
        },
        "1.2.840.10045.4.3.2" => Scheme::Ecdsa {
            hash: Hash::Sha256,
            raw: false,
        },
        "1.2.840.10045.4.3.3" => Scheme::Ecdsa {
            hash: Hash::Sha384,
            raw: false,
        },
        "1.2.840.10045.4.3.4" => Scheme::Ecdsa {
            hash: Hash::Sha512,
            raw: false,
        },
        "1.3.101.112" => Scheme::EdDsa,
        _ => return None,
    })
}

/// Go's `x509.SignatureAlgorithm` number for a signature OID (0 = unknown).
fn go_signature_algorithm(oid: &Oid) -> u8 {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.4" => 2,
        "1.2.840.113549.1.1.5" => 3,
        "1.2.840.113549.1.1.11" => 4,
        "1.2.840.113549.1.1.12" => 5,
        "1.2.840.113549.1.1.13" => 6,
        "1.2.840.10045.4.1" => 9,
        "1.2.840.10045.4.3.2" => 10,
        "1.2.840.10045.4.3.3" => 11,
        "1.2.840.10045.4.3.4" => 12,
        "1.2.840.113549.1.1.10" => 13,
        "1.3.101.112" => 16,
        _ => 0,
    }
}

/// Go's `x509.PublicKeyAlgorithm` number for a key OID (0 = unknown).
fn go_public_key_algorithm(oid: &Oid) -> u8 {
    match oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => 1,
        "1.2.840.10040.4.1" => 2,
        "1.2.840.10045.2.1" => 3,
        "1.3.101.112" => 4,
        _ => 0,
    }
}

/// The text of a directory-string attribute value.
fn attribute_text(any: &der::Any) -> String {
    let bytes = any.value();
    match any.tag() {
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        Tag::TeletexString => bytes.iter().map(|&b| b as char).collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Go's `pkix.Name` JSON encoding.
fn name_json(name: &Name) -> Json {
    let mut fields: serde_json::Map<String, Json> = serde_json::Map::new();
    let mut names = Vec::new();
    let list = |fields: &mut serde_json::Map<String, Json>, key: &str, v: &str| {
        let entry = fields
            .entry(key.to_string())
            .or_insert_with(|| Json::Array(Vec::new()));
        if let Json::Array(a) = entry {
            a.push(Json::from(v));
        }
    };
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            let text = attribute_text(&atv.value);
            let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
            names.push(json!({"Type": arcs, "Value": text}));
            match atv.oid.to_string().as_str() {
                "2.5.4.6" => list(&mut fields, "Country", &text),
                "2.5.4.10" => list(&mut fields, "Organization", &text),
                "2.5.4.11" => list(&mut fields, "OrganizationalUnit", &text),
                "2.5.4.7" => list(&mut fields, "Locality", &text),
                "2.5.4.8" => list(&mut fields, "Province", &text),
                "2.5.4.9" => list(&mut fields, "StreetAddress", &text),
                "2.5.4.17" => list(&mut fields, "PostalCode", &text),
                "2.5.4.5" => {
                    fields.insert("SerialNumber".into(), Json::from(text));
                }
                "2.5.4.3" => {
                    fields.insert("CommonName".into(), Json::from(text));
                }
                _ => {}
            }
        }
    }
    let mut out = serde_json::Map::new();
    for key in [
        "Country",
        "Organization",
        "OrganizationalUnit",
        "Locality",
        "Province",
        "StreetAddress",
        "PostalCode",
    ] {
        out.insert(key.into(), fields.remove(key).unwrap_or(Json::Null));
    }
    out.insert(
        "SerialNumber".into(),
        fields.remove("SerialNumber").unwrap_or(Json::from("")),
    );
    out.insert(
        "CommonName".into(),
        fields.remove("CommonName").unwrap_or(Json::from("")),
    );
    out.insert(
        "Names".into(),
        if names.is_empty() {
            Json::Null
        } else {
            Json::Array(names)
        },
    );
    out.insert("ExtraNames".into(), Json::Null);
    Json::Object(out)
}

/// Subject alternative names as Go lists (null when absent).
struct AltNames {
    dns: Vec<String>,
    email: Vec<String>,
    ip: Vec<String>,
    uri: Vec<String>,
}

fn alt_names(exts: Option<&Vec<x509_cert::ext::Extension>>) -> AltNames {
    let mut names = AltNames {
        dns: vec![],
        email: vec![],
        ip: vec![],
        uri: vec![],
    };
    let Some(ext) = exts.and_then(|e| e.iter().find(|e| e.extn_id == oids::SUBJECT_ALT_NAME))
    else {
        return names;
    };
    let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) else {
        return names;
    };
    for gn in san.0 {
        match gn {
            GeneralName::DnsName(s) => names.dns.push(s.to_string()),
            GeneralName::Rfc822Name(s) => names.email.push(s.to_string()),
            GeneralName::UniformResourceIdentifier(s) => names.uri.push(s.to_string()),
            GeneralName::IpAddress(octets) => {
                let b = octets.as_bytes();
                let ip = match b.len() {
                    4 => Some(std::net::IpAddr::from(
                        <[u8; 4]>::try_from(b).expect("4 bytes"),
                    )),
                    16 => Some(std::net::IpAddr::from(
                        <[u8; 16]>::try_from(b).expect("16 bytes"),
                    )),
                    _ => None,
                };
                if let Some(ip) = ip {
                    names.ip.push(ip.to_string());
                }
            }
            _ => {}
        }
    }
    names
}

fn list_or_null(v: Vec<String>) -> Json {
    if v.is_empty() {
        Json::Null
    } else {
        Json::from(v)
    }
}

fn rfc3339(t: &x509_cert::time::Time) -> String {
    let dt = t.to_date_time();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minutes(),
        dt.seconds()
    )
}

/// Go's `x509.KeyUsage` bit set (bit i = RFC 5280 bit i).
fn key_usage(exts: Option<&Vec<x509_cert::ext::Extension>>) -> u32 {
    let Some(ext) = exts.and_then(|e| e.iter().find(|e| e.extn_id == oids::KEY_USAGE)) else {
        return 0;
    };
    KeyUsage::from_der(ext.extn_value.as_bytes())
        .map(|ku| ku.0.bits() as u32)
        .unwrap_or(0)
}

fn b64(bytes: &[u8]) -> Json {
    Json::from(BASE64.encode(bytes))
}

/// Go's JSON encoding of one certificate.
fn cert_json(cert: &Certificate, der: &[u8]) -> Result<Json> {
    let tbs = &cert.tbs_certificate;
    let exts = tbs.extensions.as_ref();
    let names = alt_names(exts);
    let basic = exts
        .and_then(|e| e.iter().find(|e| e.extn_id == oids::BASIC_CONSTRAINTS))
        .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok());
    let serial = BigUint::from_bytes_be(tbs.serial_number.as_bytes());
    let serial_json: Json = serde_json::from_str(&serial.to_string()).unwrap_or(Json::Null);
    let extensions: Vec<Json> = exts
        .map(|e| {
            e.iter()
                .map(|x| {
                    json!({
                        "Id": x.extn_id.arcs().map(u64::from).collect::<Vec<_>>(),
                        "Critical": x.critical,
                        "Value": BASE64.encode(x.extn_value.as_bytes()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "Raw": b64(der),
        "RawTBSCertificate": b64(&tbs.to_der()?),
        "RawSubjectPublicKeyInfo": b64(&tbs.subject_public_key_info.to_der()?),
        "RawSubject": b64(&tbs.subject.to_der()?),
        "RawIssuer": b64(&tbs.issuer.to_der()?),
        "Signature": b64(cert.signature.raw_bytes()),
        "SignatureAlgorithm": go_signature_algorithm(&cert.signature_algorithm.oid),
        "PublicKeyAlgorithm": go_public_key_algorithm(&tbs.subject_public_key_info.algorithm.oid),
        "Version": tbs.version as u8 + 1,
        "SerialNumber": serial_json,
        "Issuer": name_json(&tbs.issuer),
        "Subject": name_json(&tbs.subject),
        "NotBefore": rfc3339(&tbs.validity.not_before),
        "NotAfter": rfc3339(&tbs.validity.not_after),
        "KeyUsage": key_usage(exts),
        "Extensions": if extensions.is_empty() { Json::Null } else { Json::Array(extensions) },
        "BasicConstraintsValid": basic.is_some(),
        "IsCA": basic.as_ref().is_some_and(|b| b.ca),
        "MaxPathLen": basic.as_ref().and_then(|b| b.path_len_constraint).map(i64::from).unwrap_or(-1),
        "DNSNames": list_or_null(names.dns),
        "EmailAddresses": list_or_null(names.email),
        "IPAddresses": list_or_null(names.ip),
        "URIStrings": list_or_null(names.uri),
    }))
}

fn parse_certificate_request(args: &[Value]) -> Result<Value> {
    let der = der_items(string_arg(args, 0)?, "CERTIFICATE REQUEST")?
        .into_iter()
        .next()
        .context("no certificate request")?;
    let req = CertReq::from_der(&der).map_err(|e| anyhow!("asn1: structure error: {e}"))?;
    let info = &req.info;
    Ok(from_json(json!({
        "Raw": b64(&der),
        "RawTBSCertificateRequest": b64(&info.to_der()?),
        "RawSubjectPublicKeyInfo": b64(&info.public_key.to_der()?),
        "RawSubject": b64(&info.subject.to_der()?),
        "Version": info.version as u8,
        "Signature": b64(req.signature.raw_bytes()),
        "SignatureAlgorithm": go_signature_algorithm(&req.algorithm.oid),
        "PublicKeyAlgorithm": go_public_key_algorithm(&info.public_key.algorithm.oid),
        "Subject": name_json(&info.subject),
    })))
}

fn uint_b64url(n: &BigUint) -> Json {
    Json::from(BASE64URL_NOPAD.encode(&n.to_bytes_be()))
}

/// An RSA private key as a JWK.
fn rsa_jwk(key: &rsa::RsaPrivateKey) -> Json {
    let mut jwk = serde_json::Map::new();
    jwk.insert("kty".into(), Json::from("RSA"));
    jwk.insert("n".into(), uint_b64url(key.n()));
    jwk.insert("e".into(), uint_b64url(key.e()));
    jwk.insert("d".into(), uint_b64url(key.d()));
    if let [p, q] = key.primes() {
        jwk.insert("p".into(), uint_b64url(p));
        jwk.insert("q".into(), uint_b64url(q));
    }
    if let Some(dp) = key.dp() {
        jwk.insert("dp".into(), uint_b64url(dp));
    }
    if let Some(dq) = key.dq() {
        jwk.insert("dq".into(), uint_b64url(dq));
    }
    if let Some(qi) = key.crt_coefficient() {
        jwk.insert("qi".into(), uint_b64url(&qi));
    }
    Json::Object(jwk)
}

/// PEM text, or base64 of PEM text, as OPA's key builtins accept.
fn pem_text(text: &str) -> Result<String> {
    if text.trim_start().starts_with("-----BEGIN") {
        return Ok(text.to_string());
    }
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = BASE64
        .decode(cleaned.as_bytes())
        .map_err(|e| anyhow!("illegal base64 data: {e}"))?;
    String::from_utf8(bytes).context("decoded key is not PEM text")
}

fn rsa_private_key(label: &str, der: &[u8]) -> Result<rsa::RsaPrivateKey> {
    match label {
        "RSA PRIVATE KEY" => {
            rsa::RsaPrivateKey::from_pkcs1_der(der).context("invalid RSA private key")
        }
        "PRIVATE KEY" => {
            rsa::RsaPrivateKey::from_pkcs8_der(der).context("invalid PKCS#8 RSA private key")
        }
        other => bail!("unsupported private key block {other}"),
    }
}

/// `crypto.x509.parse_rsa_private_key(pem)`: the key as a JWK.
fn parse_rsa_private_key(args: &[Value]) -> Result<Value> {
    let text = pem_text(string_arg(args, 0)?)?;
    let block = pem_blocks(&text)?
        .into_iter()
        .next()
        .context("failed to parse PEM block containing the key")?;
    Ok(from_json(rsa_jwk(&rsa_private_key(
        &block.label,
        &block.der,
    )?)))
}

/// `crypto.parse_private_keys(keys)`: every RSA private key in the PEM text as a JWK; an
/// empty string gives null and text without keys an empty array, as in OPA.
fn parse_private_keys(args: &[Value]) -> Result<Value> {
    let text = string_arg(args, 0)?;
    if text.is_empty() {
        return Ok(Value::Null);
    }
    let Ok(text) = pem_text(text).or_else(|_| Ok::<_, anyhow::Error>(text.to_string())) else {
        return Ok(Value::new_array());
    };
    let keys: Vec<Json> = pem_blocks(&text)
        .unwrap_or_default()
        .iter()
        .filter_map(|b| rsa_private_key(&b.label, &b.der).ok())
        .map(|k| rsa_jwk(&k))
        .collect();
    Ok(from_json(Json::Array(keys)))
}

/// `crypto.x509.parse_keypair(cert, key)`: Go's `tls.Certificate` shape, `Certificate`
/// holding the base64 DER of each certificate. The key must match the leaf's public key.
fn parse_keypair(args: &[Value]) -> Result<Value> {
    let certs = parse_certs(string_arg(args, 0)?)?;
    let key_text = pem_text(string_arg(args, 1)?)?;
    let block = pem_blocks(&key_text)?
        .into_iter()
        .next()
        .context("failed to find a PEM block in the key")?;
    let private = if block.label.contains("RSA") || block.label == "PRIVATE KEY" {
        let key = rsa_private_key(&block.label, &block.der)?;
        let leaf_spki = certs[0]
            .0
            .tbs_certificate
            .subject_public_key_info
            .to_der()?;
        match PublicKey::from_spki_der(&leaf_spki)? {
            PublicKey::Rsa(public) if public == key.to_public_key() => {}
            _ => bail!("private key does not match public key"),
        }
        rsa_jwk(&key)
    } else {
        bail!("unsupported private key type {}", block.label);
    };
    Ok(from_json(json!({
        "Certificate": certs.iter().map(|(_, der)| BASE64.encode(der)).collect::<Vec<_>>(),
        "PrivateKey": private,
        "Leaf": Json::Null,
    })))
}
