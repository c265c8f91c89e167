//! OPA bundle signatures (`.signatures.json`), verified the way OPA's bundle reader does:
//! one compact JWS whose key comes from `signing.keyid`, the header `kid` or the payload
//! `keyid`, whose algorithm and key come from `keys.<id>`, and whose `scope` must equal the
//! configured one; then every bundle file must be listed (or excluded) with a matching
//! digest: raw bytes, or for `data.json`, `data.yaml` and `.manifest` OPA's canonical JSON.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::config::{KeyConfig, Signing};

mod canonical;
mod glob;

use canonical::canonical;
use glob::glob_match;

/// The signature file of an OPA bundle.
pub const SIGNATURES_FILE: &str = ".signatures.json";

/// The algorithms OPA's JWA lookup knows; any other is `unknown signature algorithm`.
const JWA: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "ES256K", "EdDSA",
];
/// What `sark_guest::jws::verify_compact` says when the signature itself is wrong.
const GUEST_BAD_SIGNATURE: &str = "the signature does not verify with the key";
const BAD_PEM: &str = "failed to parse PEM block containing the key";

/// Verifies OPA bundle `files` (every file of the tarball by path without leading '/',
/// EXCLUDING .signatures.json) against the content of `.signatures.json`, with the bundle's
/// signing block and the configured keys. Err is a message in OPA's words.
pub fn verify(
    files: &BTreeMap<String, Vec<u8>>,
    signatures_json: &[u8],
    signing: &Signing,
    keys: &BTreeMap<String, KeyConfig>,
) -> Result<(), String> {
    let (signatures, plugin) = parse_signatures(signatures_json)
        .map_err(|e| format!("bundle load failed on signatures decode: {e}"))?;
    // OPA has a verification config when keys or a signing block are configured.
    let configured = !keys.is_empty() || *signing != Signing::default();
    if signatures.is_none() && plugin.is_empty() {
        // `{}` is no signature at all: fine unless a key id makes one mandatory.
        let keyid = signing.keyid.as_deref().is_some_and(|k| !k.is_empty());
        return match configured && keyid {
            true => Err(format!("bundle missing {SIGNATURES_FILE} file")),
            false => Ok(()),
        };
    }
    if !configured {
        return Err("verification key not provided".into());
    }
    if !plugin.is_empty() && plugin != "_default" {
        return Err(format!("no verifier exists under id {plugin}"));
    }
    let token = match signatures.unwrap_or_default().as_slice() {
        [] => return Err(".signatures.json: missing JWT (expected exactly one)".into()),
        [one] => one.clone(),
        _ => {
            return Err(
                ".signatures.json: multiple JWTs not supported (expected exactly one)".into(),
            );
        }
    };
    let decoded = verify_jwt(&token, signing, keys)?;
    // A name listed twice: the last entry wins.
    let mut listed: BTreeMap<String, FileInfo> = decoded
        .files
        .into_iter()
        .map(|f| (f.name.clone(), f))
        .collect();
    for (path, bytes) in files {
        if signing.exclude_files.iter().any(|p| glob_match(p, path)) {
            listed.remove(path);
            continue;
        }
        let Some(info) = listed.remove(path) else {
            return Err(format!("file {path} not included in bundle signature"));
        };
        check_file(path, bytes, &info)?;
    }
    if !listed.is_empty() {
        let names: Vec<&str> = listed.keys().map(String::as_str).collect();
        return Err(format!(
            "file(s) [{}] specified in bundle signatures but not found in the target bundle",
            names.join(" ")
        ));
    }
    Ok(())
}

/// One entry of the payload's `files`.
#[derive(Debug, Default)]
struct FileInfo {
    name: String,
    hash: String,
    algorithm: String,
}

/// The claims OPA reads from the payload (`iat` and `iss` are type-checked, not used).
#[derive(Debug, Default)]
struct Decoded {
    files: Vec<FileInfo>,
    keyid: String,
    scope: String,
}

/// Go's `json` names of a value's type, for its unmarshal errors.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `json.Unmarshal` type error; `at` is `value` or `struct field T.f`.
fn type_error(v: &Value, at: &str, ty: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go {at} of type {ty}",
        kind(v)
    )
}

/// A struct field as Go finds it: the exact key, else one equal ignoring case.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn go_string(v: Option<&Value>, at: &str) -> Result<String, String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(type_error(other, &format!("struct field {at}"), "string")),
    }
}

/// An object, or None for `null` (Go leaves the struct zero).
fn object<'a>(v: &'a Value, at: &str, ty: &str) -> Result<Option<&'a Map<String, Value>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Object(o) => Ok(Some(o)),
        other => Err(type_error(other, at, ty)),
    }
}

/// An array field, or None when absent or `null`.
fn array<'a>(v: Option<&'a Value>, at: &str, ty: &str) -> Result<Option<&'a [Value]>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(other) => Err(type_error(other, &format!("struct field {at}"), ty)),
    }
}

/// `{"signatures": [...], "plugin": "..."}`; `signatures` is None when absent or null.
fn parse_signatures(bytes: &[u8]) -> Result<(Option<Vec<String>>, String), String> {
    // Like Go's json.Decoder, read the first value and ignore what follows.
    let value = match serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .next()
    {
        Some(v) => v.map_err(|e| e.to_string())?,
        None => return Err("EOF".into()),
    };
    let Some(obj) = object(&value, "value", "bundle.SignaturesConfig")? else {
        return Ok((None, String::new()));
    };
    let at = "SignaturesConfig.signatures";
    let signatures = array(field(obj, "signatures"), at, "[]string")?
        .map(|items| {
            items
                .iter()
                .map(|t| go_string(Some(t), at))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok((
        signatures,
        go_string(field(obj, "plugin"), "SignaturesConfig.plugin")?,
    ))
}

/// The payload as Go decodes it into OPA's `DecodedSignature`.
fn decode_payload(bytes: &[u8]) -> Result<Decoded, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let Some(obj) = object(&value, "value", "bundle.DecodedSignature")? else {
        return Ok(Decoded::default());
    };
    let mut files = Vec::new();
    let listed = array(
        field(obj, "files"),
        "DecodedSignature.files",
        "[]bundle.FileInfo",
    )?;
    for item in listed.unwrap_or_default() {
        let at = "struct field DecodedSignature.files";
        let Some(o) = object(item, at, "bundle.FileInfo")? else {
            files.push(FileInfo::default());
            continue;
        };
        let s = |name: &str| go_string(field(o, name), &format!("FileInfo.files.{name}"));
        files.push(FileInfo {
            name: s("name")?,
            hash: s("hash")?,
            algorithm: s("algorithm")?,
        });
    }
    match field(obj, "iat") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.is_i64() => {}
        Some(v) => {
            let what = if v.is_number() {
                format!("number {v}")
            } else {
                kind(v).to_string()
            };
            return Err(format!(
                "json: cannot unmarshal {what} into Go struct field DecodedSignature.iat of type int64"
            ));
        }
    }
    go_string(field(obj, "iss"), "DecodedSignature.iss")?;
    Ok(Decoded {
        files,
        keyid: go_string(field(obj, "keyid"), "DecodedSignature.keyid")?,
        scope: go_string(field(obj, "scope"), "DecodedSignature.scope")?,
    })
}

/// OPA's `verifyJWTSignature`: picks the key, checks the signature, then the scope.
fn verify_jwt(
    token: &str,
    signing: &Signing,
    keys: &BTreeMap<String, KeyConfig>,
) -> Result<Decoded, String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err("failed to split compact JWT: jwsbb: invalid number of segments".into());
    };
    let mut keyid = signing.keyid.clone().unwrap_or_default();
    if keyid.is_empty() {
        keyid = header_kid(header)
            .map_err(|e| format!("failed to extract key ID from headers: {e}"))?;
    }
    let bytes = b64url(payload).map_err(|e| format!("failed to base64 decode JWT payload: {e}"))?;
    let decoded = decode_payload(&bytes)?;
    if keyid.is_empty() {
        keyid.clone_from(&decoded.keyid);
    }
    if keyid.is_empty() {
        return Err("verification key ID is empty".into());
    }
    let key = keys
        .get(&keyid)
        .ok_or_else(|| format!("verification key corresponding to ID {keyid} not found"))?;
    let alg = key.algorithm();
    if !JWA.contains(&alg) {
        return Err(format!("unknown signature algorithm: {alg}"));
    }
    let material = key.key.as_deref().unwrap_or_default();
    let hmac = alg.starts_with("HS");
    // HMAC secrets are the raw string; everything else is the first PEM block.
    let material = if hmac {
        material
    } else {
        first_pem_block(material)?
    };
    b64url(signature).map_err(|e| format!("failed to base64 decode JWT signature: {e}"))?;
    sark_guest::jws::verify_compact(token, alg, material).map_err(|e| {
        let detail = match e.to_string() == GUEST_BAD_SIGNATURE {
            true if hmac => "invalid HMAC signature".to_string(),
            true if alg.starts_with("RS") || alg.starts_with("PS") => {
                "crypto/rsa: verification error".to_string()
            }
            _ => format!("{e:#}"),
        };
        format!("failed to verify JWT signature: {detail}")
    })?;
    let expected = match signing.scope.as_deref() {
        Some(s) if !s.is_empty() => s,
        _ => key.scope.as_deref().unwrap_or_default(),
    };
    if decoded.scope != expected {
        return Err("scope mismatch".into());
    }
    Ok(decoded)
}

fn header_kid(header: &str) -> Result<String, String> {
    let bytes = b64url(header).map_err(|e| format!("failed to decode source: {e}"))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(value
        .get("kid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string())
}

/// Go's `base64.RawURLEncoding` (no padding; CR and LF skipped; trailing bits ignored), with
/// its error messages.
fn b64url(s: &str) -> Result<Vec<u8>, String> {
    static ENCODING: std::sync::OnceLock<data_encoding::Encoding> = std::sync::OnceLock::new();
    let encoding = ENCODING.get_or_init(|| {
        let mut spec = data_encoding::BASE64URL_NOPAD.specification();
        spec.check_trailing_bits = false;
        spec.ignore.push_str("\r\n");
        spec.encoding().expect("a valid base64url specification")
    });
    encoding.decode(s.as_bytes()).map_err(|e| {
        let at = match e.kind {
            data_encoding::DecodeKind::Length => s.len(),
            _ => e.position,
        };
        format!("illegal base64 data at input byte {at}")
    })
}

/// The first PEM block of `text` (as Go's `pem.Decode` picks it), if of a public type.
fn first_pem_block(text: &str) -> Result<&str, String> {
    let start = text.find("-----BEGIN ").ok_or(BAD_PEM)?;
    let rest = &text[start + 11..];
    let label = &rest[..rest.find("-----").ok_or(BAD_PEM)?];
    let after = &rest[label.len() + 5..];
    let end_marker = format!("-----END {label}-----");
    let body_end = after.find(&end_marker).ok_or(BAD_PEM)?;
    let b64: String = after[..body_end]
        .lines()
        .filter(|l| !l.contains(':'))
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect();
    let data = b64.trim_end_matches('=');
    let valid = b64.len().is_multiple_of(4)
        && b64.len() - data.len() <= 2
        && !data.is_empty()
        && data
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/');
    if !valid {
        return Err(BAD_PEM.into());
    }
    match label {
        "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => {
            Ok(&text[start..text.len() - after.len() + body_end + end_marker.len()])
        }
        "RSA PRIVATE KEY" | "PRIVATE KEY" | "EC PRIVATE KEY" => Err(format!(
            "the key is a {label}; sark verifies bundle signatures with a public key or certificate"
        )),
        _ => Err(BAD_PEM.into()),
    }
}

/// OPA's `VerifyBundleFile` once the entry is found.
fn check_file(path: &str, bytes: &[u8], info: &FileInfo) -> Result<(), String> {
    if info.algorithm.is_empty() {
        return Err(format!("no hashing algorithm provided for file {path}"));
    }
    let got = file_digest(path, bytes, &info.algorithm)?;
    let want = go_hex(&info.hash)?;
    if want != got {
        return Err(format!(
            "{path}: digest mismatch (want: {}, got: {})",
            hex::encode(&want),
            hex::encode(&got)
        ));
    }
    Ok(())
}

/// The digest of one file: canonical JSON for OPA's structured files, raw bytes otherwise.
fn file_digest(path: &str, bytes: &[u8], alg: &str) -> Result<Vec<u8>, String> {
    use sha2::Digest;
    const SHA2: &[&str] = &[
        "SHA-224",
        "SHA-256",
        "SHA-384",
        "SHA-512",
        "SHA-512-224",
        "SHA-512-256",
    ];
    if matches!(alg, "MD5" | "SHA-1") {
        return Err(format!(
            "unsupported hashing algorithm: {alg} (not available in sark)"
        ));
    }
    if !SHA2.contains(&alg) {
        return Err(format!("unsupported hashing algorithm: {alg}"));
    }
    let base = path.rsplit('/').next().unwrap_or(path);
    let canon;
    let data = if matches!(
        base,
        "data.json" | "data.yaml" | ".manifest" | "signatures.json"
    ) {
        canon = canonical(bytes)?;
        canon.as_slice()
    } else {
        bytes
    };
    Ok(match alg {
        "SHA-224" => sha2::Sha224::digest(data).to_vec(),
        "SHA-256" => sha2::Sha256::digest(data).to_vec(),
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512-224" => sha2::Sha512_224::digest(data).to_vec(),
        "SHA-512-256" => sha2::Sha512_256::digest(data).to_vec(),
        _ => sha2::Sha512::digest(data).to_vec(),
    })
}

/// Go's `hex.DecodeString`, with its error messages.
fn go_hex(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let bad = |c: u8| match c {
        0x20..=0x7e | 0xa1.. => format!("encoding/hex: invalid byte: U+{c:04X} '{}'", c as char),
        _ => format!("encoding/hex: invalid byte: U+{c:04X}"),
    };
    let mut out = Vec::with_capacity(b.len() / 2);
    for pair in b.chunks_exact(2) {
        let hi = val(pair[0]).ok_or_else(|| bad(pair[0]))?;
        let lo = val(pair[1]).ok_or_else(|| bad(pair[1]))?;
        out.push((hi << 4) | lo);
    }
    if let Some(&last) = b.chunks_exact(2).remainder().first() {
        return Err(match val(last) {
            None => bad(last),
            Some(_) => "encoding/hex: odd length hex string".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::canonical::go_float;
    use super::*;
    use sha2::{Digest, Sha256};

    const MANIFEST: &str = r#"{"revision": "quickbrownfaux"}"#;
    const MANIFEST_SHA: &str = "507a2c38a1441db58d2cb87982c42aa91a4342ef422a6b542eddebeef6f0412f";
    const DATA_SHA: &str = "a615eeaee21de5179de080de8c3052c8da901138406ba71c38c032845f7d54f4";
    const REGO_SHA: &str = "f664461e303b37c20c5e0be2900881678cdf8e860aa433a5a14d494ba3c66649";

    fn b64e(bytes: &[u8]) -> String {
        data_encoding::BASE64URL_NOPAD.encode(bytes)
    }

    fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
    }

    /// An HS256 token signed with `secret` (kid `foo`), like `opa sign --signing-alg HS256`.
    fn sign(payload: &str) -> String {
        let input = format!(
            "{}.{}",
            b64e(br#"{"alg":"HS256","kid":"foo"}"#),
            b64e(payload.as_bytes())
        );
        format!(
            "{input}.{}",
            b64e(&hmac_sha256(b"secret", input.as_bytes()))
        )
    }

    fn payload(files: &[(&str, &str)], claims: &str) -> String {
        let files: Vec<String> = files
            .iter()
            .map(|(n, h)| format!(r#"{{"name":"{n}","hash":"{h}","algorithm":"SHA-256"}}"#))
            .collect();
        format!(r#"{{"files":[{}]{claims}}}"#, files.join(","))
    }

    fn sigs(token: &str) -> Vec<u8> {
        format!(r#"{{"signatures":["{token}"]}}"#).into_bytes()
    }

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn key(alg: &str, key: &str) -> BTreeMap<String, KeyConfig> {
        let k = KeyConfig {
            algorithm: Some(alg.into()),
            key: Some(key.into()),
            ..Default::default()
        };
        BTreeMap::from([("foo".to_string(), k)])
    }

    fn bundle() -> BTreeMap<String, Vec<u8>> {
        files(&[
            (".manifest", MANIFEST),
            ("a/b/c/data.json", "[1,2,3]"),
            ("example/example.rego", "package example"),
        ])
    }

    fn signed_bundle(claims: &str) -> Vec<u8> {
        let list = [
            (".manifest", MANIFEST_SHA),
            ("a/b/c/data.json", DATA_SHA),
            ("example/example.rego", REGO_SHA),
        ];
        sigs(&sign(&payload(&list, claims)))
    }

    fn excluding(globs: &[&str]) -> Signing {
        Signing {
            exclude_files: globs.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn hashes_match_opa() {
        let nested = r#"{"x": {"y": true}, "a": {"b": {"z": true}}}"#;
        let escapes = r#"{ "z": "a<b>&c", "a": [1.0, 2e3, -0], "m": "line\nbreak\u2028é" }"#;
        for (path, content, alg, want) in [
            (".manifest", MANIFEST, "SHA-256", MANIFEST_SHA),
            ("a/b/c/data.json", "[1,2,3]", "SHA-256", DATA_SHA),
            (
                "a/b/c/data.json",
                "[1,2,3]",
                "SHA-512",
                "60f7b5dc86ded48785436192a08dbfd04894d7f1b417c4f8d3714679a7f78cb3c833f16a8559a1cf1f32968747dc1d95ef34826263dacf125ded8f5c374be4c0",
            ),
            (
                "a/b/d/data.json",
                "true",
                "SHA-256",
                "b5bea41b6c623f7c09f1bf24dcae58ebab3c0cdd90ad966bc43a45b44867e12b",
            ),
            (
                "a/b/y/data.yaml",
                "foo: 1",
                "SHA-512",
                "20f27a640a233e6524fe7d138898583cd43475724806feb26be7f214e1d10b29edf6a0d3cb08f82107a45686b61b8fdabab6406cf4e70efe134f42238dbd70ab",
            ),
            (
                "example/example.rego",
                "package example",
                "SHA-256",
                REGO_SHA,
            ),
            (
                "policy.wasm",
                "modules-compiled-as-wasm-binary",
                "SHA-512",
                "4f73765168fd8b5c294b739436da312cc5e979faf09f67bf576d36ea79a4f79c70cbb3c33d06ff65f531a9f42abd0a8f4daacc554cb521837e876dc28f56ce89",
            ),
            (
                "data.json",
                nested,
                "SHA-256",
                "31ade98a8342162ff1a4dcdbd76855f897a4578e00068124a711c756ff548b12",
            ),
            (
                "data.json",
                r#""<foo></foo>""#,
                "SHA-256",
                "2db349797c21117c577fe900a78daafda7c2109af1c77533bfbe73c000a9e06a",
            ),
            (
                "data.json",
                escapes,
                "SHA-256",
                "265619b841b6afe518c9c3599a4c9ef3de45332bca1c8f8b4f04c821c93d6d12",
            ),
        ] {
            assert_eq!(
                hex::encode(file_digest(path, content.as_bytes(), alg).unwrap()),
                want,
                "{path} {alg}"
            );
        }
        let canon = |s: &[u8]| String::from_utf8(canonical(s).unwrap()).unwrap();
        assert_eq!(
            canon(escapes.as_bytes()),
            r#"{"a":[1.0,2e3,-0],"m":"line\nbreak\u2028é","z":"a<b>&c"}"#
        );
        assert_eq!(
            canon(b"\xEF\xBB\xBF[\"\\u0001\\b\\ud800x\\/\", 5, \"\xff\"]".as_slice()),
            "[\"\\u0001\\b\u{FFFD}x/\",5,\"\u{FFFD}\"]"
        );
        assert_eq!(
            canon(b"a: 1.0\nb: 0.5\nc: -3\n".as_slice()),
            r#"{"a":1,"b":0.5,"c":-3}"#
        );
        assert_eq!(
            [
                go_float(1e21),
                go_float(1.5e-7),
                go_float(-0.0),
                go_float(2.0)
            ],
            ["1e+21", "1.5e-7", "-0", "2"]
        );
        assert!(canonical("[".repeat(600).as_bytes()).is_err());
        // data.yml is raw, and OPA's names are case-sensitive.
        assert_eq!(
            file_digest("data.yml", b"foo: 1", "SHA-256").unwrap(),
            Sha256::digest(b"foo: 1").to_vec()
        );
        assert_eq!(
            file_digest("x", b"", "sha256").unwrap_err(),
            "unsupported hashing algorithm: sha256"
        );
        assert!(
            file_digest("x", b"", "MD5")
                .unwrap_err()
                .starts_with("unsupported hashing algorithm: MD5")
        );
        assert_eq!(
            go_hex("abc").unwrap_err(),
            "encoding/hex: odd length hex string"
        );
        assert_eq!(
            go_hex("0g").unwrap_err(),
            "encoding/hex: invalid byte: U+0067 'g'"
        );
    }

    #[test]
    fn hs256_bundle_verifies() {
        verify(
            &bundle(),
            &signed_bundle(""),
            &Signing::default(),
            &key("HS256", "secret"),
        )
        .unwrap();
        // Whitespace in a structured file does not change its digest.
        let mut spaced = bundle();
        spaced.insert("a/b/c/data.json".into(), b"[ 1, 2, 3 ]\n".to_vec());
        verify(
            &spaced,
            &signed_bundle(""),
            &Signing::default(),
            &key("HS256", "secret"),
        )
        .unwrap();
    }

    #[test]
    fn file_checks() {
        let (keys, none) = (key("HS256", "secret"), Signing::default());
        let mut tampered = bundle();
        tampered.insert("a/b/c/data.json".into(), b"[1,2,4]".to_vec());
        let err = verify(&tampered, &signed_bundle(""), &none, &keys).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "a/b/c/data.json: digest mismatch (want: {DATA_SHA}, got: "
            )),
            "{err}"
        );
        let mut extra = bundle();
        extra.insert("README.md".into(), b"hi".to_vec());
        let err = verify(&extra, &signed_bundle(""), &none, &keys).unwrap_err();
        assert_eq!(err, "file README.md not included in bundle signature");
        verify(&extra, &signed_bundle(""), &excluding(&["*.md"]), &keys).unwrap();
        extra.insert("docs/x.md".into(), b"hi".to_vec()); // `*` does not cross `/`
        let err = verify(&extra, &signed_bundle(""), &excluding(&["*.md"]), &keys).unwrap_err();
        assert_eq!(err, "file docs/x.md not included in bundle signature");
        let mut missing = bundle();
        missing.remove("example/example.rego");
        let err = verify(&missing, &signed_bundle(""), &none, &keys).unwrap_err();
        assert_eq!(
            err,
            "file(s) [example/example.rego] specified in bundle signatures but not found in the target bundle"
        );
    }

    #[test]
    fn key_and_scope_checks() {
        let keys = key("HS256", "secret");
        let scoped = signed_bundle(r#","scope":"write""#);
        assert_eq!(
            verify(&bundle(), &scoped, &Signing::default(), &keys).unwrap_err(),
            "scope mismatch"
        );
        let write = Signing {
            scope: Some("write".into()),
            ..Default::default()
        };
        verify(&bundle(), &scoped, &write, &keys).unwrap();
        let mut key_scoped = keys.clone();
        key_scoped.get_mut("foo").unwrap().scope = Some("write".into());
        verify(&bundle(), &scoped, &Signing::default(), &key_scoped).unwrap();
        let err = verify(
            &bundle(),
            &signed_bundle(""),
            &Signing::default(),
            &key("HS256", "bad_secret"),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "failed to verify JWT signature: invalid HMAC signature"
        );
        let err = verify(
            &bundle(),
            &signed_bundle(""),
            &Signing::default(),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(err, "verification key not provided");
    }

    #[test]
    fn signature_file_shapes() {
        let (keys, none) = (key("HS256", "secret"), Signing::default());
        let check =
            |json: &str, signing: &Signing| verify(&bundle(), json.as_bytes(), signing, &keys);
        check("{}", &none).unwrap();
        let keyed = Signing {
            keyid: Some("foo".into()),
            ..Default::default()
        };
        assert_eq!(
            check("{}", &keyed).unwrap_err(),
            "bundle missing .signatures.json file"
        );
        assert_eq!(
            check(r#"{"signatures": []}"#, &none).unwrap_err(),
            ".signatures.json: missing JWT (expected exactly one)"
        );
        assert_eq!(
            check(r#"{"signatures": ["a.b.c", "d.e.f"]}"#, &none).unwrap_err(),
            ".signatures.json: multiple JWTs not supported (expected exactly one)"
        );
        assert_eq!(
            check(r#"{"signatures": ["a.b"]}"#, &none).unwrap_err(),
            "failed to split compact JWT: jwsbb: invalid number of segments"
        );
        assert_eq!(
            check(r#"{"plugin": "x"}"#, &none).unwrap_err(),
            "no verifier exists under id x"
        );
        assert!(
            check("[", &none)
                .unwrap_err()
                .starts_with("bundle load failed on signatures decode: ")
        );
    }

    // OPA's own vectors (v1/bundle/bundle_test.go, verify_test.go): HS256 with `secret`.
    const HS_HEADER_FOO: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImZvbyJ9";
    const T1_PAYLOAD: &str = r#"{"files":[{"name":".manifest","hash":"507a2c38a1441db58d2cb87982c42aa91a4342ef422a6b542eddebeef6f0412f","algorithm":"SHA-256"},{"name":"a/b/c/data.json","hash":"42cfe6768b57bb5f7503c165c28dd07ac5b813554ebc850f2cc35843e7137b1d","algorithm":"SHA-256"},{"name":"http/policy/policy.rego","hash":"a615eeaee21de5179de080de8c3052c8da901138406ba71c38c032845f7d54f4","algorithm":"SHA-256"}],"iat":1592248027,"iss":"JWTService",KEYID"scope":"write"}"#;
    const DB_PAYLOAD: &str = r#"{"files":[{"name":"db/uam2/entitlements/data.json","hash":"c2131544c716a25a5e31f504300f5240e8235cadb9a57f0bd1b6f4bd74b26612","algorithm":"sha256"},{"name":"db/uam2/policy/opa-policy.rego","hash":"42cfe6768b57bb5f7503c165c28dd07ac5b813554ebc850f2cc35843e7137b1d"}],"iat":IAT,"iss":"JWTService",KEYID"scope":"write"}"#;

    fn opa_token(header: &str, payload: &str, signature: &str) -> String {
        format!("{header}.{}.{signature}", b64e(payload.as_bytes()))
    }

    #[test]
    fn opa_bundle_vectors() {
        let t1 = |keyid: &str, sig: &str| {
            sigs(&opa_token(
                HS_HEADER_FOO,
                &T1_PAYLOAD.replace("KEYID", keyid),
                sig,
            ))
        };
        let with_keyid = t1(
            r#""keyid":"foo","#,
            "grzWHYvyVS6LfWy0oiFTEJThKooOAwic8sexYaflzOM",
        );
        let without = t1("", "Vmm9UDiInUnXXlk-OOjiCy3rR7EVvXS-OFst1rbh3Zo");
        // The test helpers reproduce OPA's signature.
        let input = format!(
            "{HS_HEADER_FOO}.{}",
            b64e(T1_PAYLOAD.replace("KEYID", "").as_bytes())
        );
        assert_eq!(
            b64e(&hmac_sha256(b"secret", input.as_bytes())),
            "Vmm9UDiInUnXXlk-OOjiCy3rR7EVvXS-OFst1rbh3Zo"
        );
        let (keys, write) = (
            key("HS256", "secret"),
            Signing {
                scope: Some("write".into()),
                ..Default::default()
            },
        );
        let tar = files(&[("a/b/c/data.json", "[1,2,3]"), (".manifest", MANIFEST)]);
        assert_eq!(
            verify(&tar, &with_keyid, &write, &keys).unwrap_err(),
            format!(
                "a/b/c/data.json: digest mismatch (want: 42cfe6768b57bb5f7503c165c28dd07ac5b813554ebc850f2cc35843e7137b1d, got: {DATA_SHA})"
            )
        );
        let mut all = tar.clone();
        all.insert(
            "http/policy/policy.rego".into(),
            b"package example".to_vec(),
        );
        let excluded = Signing {
            exclude_files: vec![
                ".*".into(),
                "a/b/c/data.json".into(),
                "http/policy/policy.rego".into(),
            ],
            ..write.clone()
        };
        verify(&all, &with_keyid, &excluded, &keys).unwrap();
        assert_eq!(
            verify(&files(&[(".manifest", MANIFEST)]), &without, &write, &keys).unwrap_err(),
            "file(s) [a/b/c/data.json http/policy/policy.rego] specified in bundle signatures but not found in the target bundle"
        );
    }

    /// Runs an OPA `TestVerifyJWTSignature` token over its two files, both excluded.
    fn db(
        token: &str,
        keyid: Option<&str>,
        scope: &str,
        keys: &BTreeMap<String, KeyConfig>,
    ) -> Result<(), String> {
        let tar = files(&[
            ("db/uam2/entitlements/data.json", "{}"),
            ("db/uam2/policy/opa-policy.rego", ""),
        ]);
        let signing = Signing {
            keyid: keyid.map(Into::into),
            scope: Some(scope.into()),
            exclude_files: vec!["db/*/*/*".into()],
        };
        verify(&tar, &sigs(token), &signing, keys)
    }

    #[test]
    fn opa_key_selection_vectors() {
        let p = |keyid: &str| {
            DB_PAYLOAD
                .replace("IAT", "1592248027")
                .replace("KEYID", keyid)
        };
        let kid_foo = opa_token(
            HS_HEADER_FOO,
            &p(""),
            "u7b_h88osJpU6VQLhIUmZjblsPNCO_kTqsVtpEAHavs",
        );
        let no_kid_header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
        let no_kid = opa_token(
            no_kid_header,
            &p(""),
            "N2DaEyhfACMAij2sRC0ZDwNz4wI7BX_flH3IkKqMvE4",
        );
        let claim = opa_token(
            no_kid_header,
            &p(r#""keyid":"foo","#),
            "4nrInalqppAc9EjsNUD9Y35amVpDGoRk4bkxzdY8fhs",
        );
        let kid_bar = opa_token(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImJhciJ9",
            &p(""),
            "xW04tph2-dSy47uZ-CgiObvFWFLUsMym8N7ermgPZ0s",
        );
        let hs = key("HS256", "secret");
        db(&kid_foo, None, "write", &hs).unwrap();
        assert_eq!(
            db(&kid_foo, None, "bad_scope", &hs).unwrap_err(),
            "scope mismatch"
        );
        let other: BTreeMap<_, _> = hs
            .values()
            .map(|k| ("bar".to_string(), k.clone()))
            .collect();
        assert_eq!(
            db(&kid_foo, None, "", &other).unwrap_err(),
            "verification key corresponding to ID foo not found"
        );
        assert_eq!(
            db(&kid_foo, None, "", &key("RS007", "somekey")).unwrap_err(),
            "unknown signature algorithm: RS007"
        );
        assert_eq!(
            db(&no_kid, None, "", &hs).unwrap_err(),
            "verification key ID is empty"
        );
        db(&claim, None, "write", &hs).unwrap();
        db(&kid_bar, Some("foo"), "write", &hs).unwrap();
        let bad_header = kid_foo.replacen("ImZvbyJ9", "ImZvby 9", 1);
        assert_eq!(
            db(&bad_header, None, "", &hs).unwrap_err(),
            "failed to extract key ID from headers: failed to decode source: illegal base64 data at input byte 50"
        );
        let files_object = r#"{"files":{"name":"db/uam2/policy/opa-policy.rego","hash":"42cfe6768b57bb5f7503c165c28dd07ac5b813554ebc850f2cc35843e7137b1d"},"iat":1592248027,"iss":"JWTService","keyid":"foo","scope":"write"}"#;
        assert_eq!(
            db(&opa_token(no_kid_header, files_object, "x"), None, "", &hs).unwrap_err(),
            "json: cannot unmarshal object into Go struct field DecodedSignature.files of type []bundle.FileInfo"
        );
    }

    const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA9KaakMv1XKKDaSch3PFR
3a27oaHp1GNTTNqvb1ZaHZXp+wuhYDwc/MTE67x9GCifvQBWzEGorgTq7aisiOyl
vKifwz6/wQ+62WHKG/sqKn2Xikp3P63aBIPlZcHbkyyRmL62yeyuzYoGvLEYel+m
z5SiKGBwviSY0Th2L4e5sGJuk2HOut6emxDi+E2Fuuj5zokFJvIT6Urlq8f3h6+l
GeR6HUOXqoYVf7ff126GP7dticTVBgibxkkuJFmpvQSW6xmxruT4k6iwjzbZHY7P
ypZ/TdlnuGC1cOpAVyU7k32IJ9CRbt3nwEf5U54LRXLLQjFixWZHwKdDiMTF4ws0
+wIDAQAB
-----END PUBLIC KEY-----";
    const RSA_OTHER: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDMYfnvWtC8Id5bPKae5yXSxQTt
+Zpul6AnnZWfI2TtIarvjHBFUtXRo96y7hoL4VWOPKGCsRqMFDkrbeUjRrx8iL91
4/srnyf6sh9c8Zk04xEOpK1ypvBz+Ks4uZObtjnnitf0NBGdjMKxveTq+VE7BWUI
yQjtQ8mbDOsiLLvh7wIDAQAB
-----END PUBLIC KEY-----";
    const RS256_SIGNATURE: &str = "UZcX_Qj29o213nwZ5mysiyNcgAp1AOqCkDLkj1KGZ7Cw3l17TbkF8t3FJd654sf762NGcABA0WQ2zxq-labXl_d5TKQmq23lurO3qLHI1cKQPyoxPbddGo78sJpMwWsiMyEYcyyKC9FpNUpa8cT81GPo4q9Zui8TAD0wtHh2YxBL7E8QYLJxcLMJTJxVBgrQGLXFT7vYRc6hJz9Vu-i0SWuLBGxOCmYoHr4DWFfy0IhAbhiUFyLRpukfBPjCJNYY5LgaZdN6LaYivtIEUms5jUuXubBimLJm7KOT5-bgJMXTcUsbrbl2Ma7PwG5IOKjjgyEvH8KVfGFZSzNrpuxKmA";

    #[test]
    fn opa_rs256_vector() {
        let header = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImZvbyJ9";
        let payload = DB_PAYLOAD.replace("IAT", "1592251406").replace("KEYID", "");
        let token = opa_token(header, &payload, RS256_SIGNATURE);
        db(&token, None, "write", &key("RS256", RSA_PUBLIC)).unwrap();
        db(&token, Some("foo"), "write", &key("RS256", RSA_PUBLIC)).unwrap();
        assert_eq!(
            db(&token, None, "", &key("RS256", RSA_OTHER)).unwrap_err(),
            "failed to verify JWT signature: crypto/rsa: verification error"
        );
        let bad = RSA_OTHER.replace("wIDAQAB\n", "wIDAQAB==\n");
        assert_eq!(
            db(&token, Some("foo"), "", &key("RS256", &bad)).unwrap_err(),
            "failed to parse PEM block containing the key"
        );
        assert_eq!(
            db(&token, None, "", &key("RS256", "not a pem")).unwrap_err(),
            "failed to parse PEM block containing the key"
        );
    }

    #[test]
    fn go_filepath_match() {
        for (pattern, name, want) in [
            (".*", ".manifest", true),
            ("*.json", "data.json", true),
            ("*.json", "a/data.json", false),
            ("a/*/c", "a/b/c", true),
            ("a/?/c", "a//c", false),
            ("a/[^x]b", "a/yb", true),
            ("a/[a-c]b", "a/db", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("[", "[", false),
            ("*", "", true),
            ("db/*/*/*", "db/uam2/policy/opa-policy.rego", true),
            ("/x", "x", false),
        ] {
            assert_eq!(glob_match(pattern, name), want, "{pattern} {name}");
        }
    }
}
