//! `io.jwt.*`: decoding, verifying and signing JSON Web Tokens (JWS compact form).
//!
//! Behaviour follows OPA's `topdown/tokens.go`: `decode` and `decode_verify` unwrap nested
//! tokens (`cty: JWT`); `decode_verify` answers `[false, {}, {}]` for a token that does not
//! verify or whose claims fail the constraints, and fails only on malformed arguments.

use super::keys::{Hash, PublicKey, Scheme, SigningKey, public_keys};
use super::{Builtin, crypto, string_arg, to_json, type_name};
use anyhow::{Context, Result, anyhow, bail};
use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use regorus::Value;

pub(super) const BUILTINS: &[Builtin] = &[
    ("io.jwt.decode", 1, decode),
    ("io.jwt.decode_verify", 2, decode_verify),
    ("io.jwt.verify_hs256", 2, |a| verify_hmac(a, Hash::Sha256)),
    ("io.jwt.verify_hs384", 2, |a| verify_hmac(a, Hash::Sha384)),
    ("io.jwt.verify_hs512", 2, |a| verify_hmac(a, Hash::Sha512)),
    ("io.jwt.verify_rs256", 2, |a| verify_key(a, "RS256")),
    ("io.jwt.verify_rs384", 2, |a| verify_key(a, "RS384")),
    ("io.jwt.verify_rs512", 2, |a| verify_key(a, "RS512")),
    ("io.jwt.verify_ps256", 2, |a| verify_key(a, "PS256")),
    ("io.jwt.verify_ps384", 2, |a| verify_key(a, "PS384")),
    ("io.jwt.verify_ps512", 2, |a| verify_key(a, "PS512")),
    ("io.jwt.verify_es256", 2, |a| verify_key(a, "ES256")),
    ("io.jwt.verify_es384", 2, |a| verify_key(a, "ES384")),
    ("io.jwt.verify_es512", 2, |a| verify_key(a, "ES512")),
    ("io.jwt.verify_eddsa", 2, |a| verify_key(a, "EdDSA")),
    ("io.jwt.encode_sign", 3, encode_sign),
    ("io.jwt.encode_sign_raw", 3, encode_sign_raw),
];

/// One JWS in compact form, split and decoded.
struct Token<'a> {
    /// `header.payload`, the signed bytes.
    signing_input: &'a str,
    header: Value,
    header_json: serde_json::Value,
    payload_bytes: Vec<u8>,
    signature: Vec<u8>,
}

/// Unpadded base64url that, like Go's decoder, ignores non-zero trailing bits.
fn lenient_b64url() -> &'static data_encoding::Encoding {
    static ENCODING: std::sync::OnceLock<data_encoding::Encoding> = std::sync::OnceLock::new();
    ENCODING.get_or_init(|| {
        let mut spec = BASE64URL_NOPAD.specification();
        spec.check_trailing_bits = false;
        spec.encoding().expect("valid base64url specification")
    })
}

fn b64url(part: &str, what: &str) -> Result<Vec<u8>> {
    lenient_b64url()
        .decode(part.trim_end_matches('=').as_bytes())
        .map_err(|e| anyhow!("JWT {what} had invalid encoding: {e}"))
}

impl<'a> Token<'a> {
    fn parse(token: &'a str) -> Result<Token<'a>> {
        let dots = token.matches('.').count();
        if dots == 0 {
            bail!("encoded JWT had no period separators");
        }
        if dots != 2 {
            bail!("encoded JWT must have 3 sections, found {}", dots + 1);
        }
        let last_dot = token.rfind('.').expect("two dots");
        let signing_input = &token[..last_dot];
        let mut parts = token.split('.');
        let (h, p, s) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let header_bytes = b64url(h, "header")?;
        let payload_bytes = b64url(p, "payload")?;
        let signature = b64url(s, "signature")?;
        let header_text = std::str::from_utf8(&header_bytes).context("JWT header is not UTF-8")?;
        let header_json: serde_json::Value =
            serde_json::from_str(header_text).context("JWT header is not valid JSON")?;
        if !header_json.is_object() {
            bail!("JWT header is not a JSON object");
        }
        if header_json.get("enc").is_some() {
            bail!("JWT is a JWE object, which is not supported");
        }
        let header = Value::from_json_str(header_text).context("JWT header is not valid JSON")?;
        Ok(Token {
            signing_input,
            header,
            header_json,
            payload_bytes,
            signature,
        })
    }

    fn alg(&self) -> Option<&str> {
        self.header_json.get("alg").and_then(|v| v.as_str())
    }

    /// The nested token when the header says `cty: JWT`.
    fn nested(&self) -> Result<Option<String>> {
        let cty = self.header_json.get("cty").and_then(|v| v.as_str());
        if !cty.is_some_and(|c| c.eq_ignore_ascii_case("JWT")) {
            return Ok(None);
        }
        let text = std::str::from_utf8(&self.payload_bytes).context("JWT payload is not UTF-8")?;
        // The inner token may be a JSON string or the bare compact form.
        let inner = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::String(s)) => s,
            _ => text.to_string(),
        };
        Ok(Some(inner))
    }

    fn payload(&self) -> Result<Value> {
        let text = std::str::from_utf8(&self.payload_bytes).context("JWT payload is not UTF-8")?;
        let v = Value::from_json_str(text).context("JWT payload is not valid JSON")?;
        if !matches!(v, Value::Object(_)) {
            bail!("JWT payload is not a JSON object");
        }
        Ok(v)
    }
}

/// `io.jwt.decode(jwt)`: `[header, payload, signature-hex]`, unwrapping nested tokens.
fn decode(args: &[Value]) -> Result<Value> {
    let mut owned = string_arg(args, 0)?.to_string();
    loop {
        let token = Token::parse(&owned)?;
        if let Some(inner) = token.nested()? {
            owned = inner;
            continue;
        }
        return Ok(Value::from(vec![
            token.header.clone(),
            token.payload()?,
            Value::from(HEXLOWER.encode(&token.signature)),
        ]));
    }
}

fn verify_hmac(args: &[Value], hash: Hash) -> Result<Value> {
    let token = Token::parse(string_arg(args, 0)?)?;
    let secret = string_arg(args, 1)?;
    let mac = crypto::hmac(hash, secret.as_bytes(), token.signing_input.as_bytes());
    Ok(Value::from(crypto::constant_time_eq(
        &mac,
        &token.signature,
    )))
}

fn verify_key(args: &[Value], alg: &str) -> Result<Value> {
    let token = Token::parse(string_arg(args, 0)?)?;
    let keys = public_keys(string_arg(args, 1)?)?;
    let scheme = Scheme::from_jws_alg(alg).expect("known algorithm");
    Ok(Value::from(verify_with_keys(&token, &keys, scheme)))
}

fn verify_with_keys(token: &Token<'_>, keys: &[PublicKey], scheme: Scheme) -> bool {
    keys.iter()
        .any(|k| k.verify(scheme, token.signing_input.as_bytes(), &token.signature))
}

/// The constraints of `io.jwt.decode_verify`.
#[derive(Default)]
struct Constraints {
    keys: Option<Vec<PublicKey>>,
    secret: Option<String>,
    alg: Option<String>,
    iss: Option<String>,
    aud: Option<String>,
    /// Nanoseconds since the epoch.
    time: Option<f64>,
}

impl Constraints {
    fn parse(v: &Value) -> Result<Constraints> {
        let Value::Object(obj) = v else {
            bail!("operand 2 must be an object, got {}", type_name(v));
        };
        let mut c = Constraints::default();
        for (key, value) in obj.iter() {
            let key = key
                .as_string()
                .map_err(|_| anyhow!("constraint keys must be strings"))?;
            let text = || -> Result<String> {
                value
                    .as_string()
                    .map(|s| s.to_string())
                    .map_err(|_| anyhow!("constraint {key} must be a string"))
            };
            match key.as_ref() {
                "cert" => c.keys = Some(public_keys(&text()?)?),
                "secret" => c.secret = Some(text()?),
                "alg" => c.alg = Some(text()?),
                "iss" => c.iss = Some(text()?),
                "aud" => c.aud = Some(text()?),
                "time" => {
                    c.time = Some(
                        to_json(value)?
                            .as_f64()
                            .ok_or_else(|| anyhow!("constraint time must be a number"))?,
                    )
                }
                other => bail!("unknown token validation constraint: {other}"),
            }
        }
        if c.keys.is_none() && c.secret.is_none() {
            bail!("no key or secret to verify the token with");
        }
        if c.keys.is_some() && c.secret.is_some() {
            bail!("duplicate key constraints: both cert and secret");
        }
        Ok(c)
    }

    fn now_ns(&self) -> f64 {
        self.time.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as f64)
                .unwrap_or(0.0)
        })
    }
}

/// `io.jwt.decode_verify(jwt, constraints)`: `[valid, header, payload]`.
fn decode_verify(args: &[Value]) -> Result<Value> {
    let constraints = Constraints::parse(args.get(1).unwrap_or(&Value::Undefined))?;
    let invalid = || {
        Value::from(vec![
            Value::from(false),
            Value::new_object(),
            Value::new_object(),
        ])
    };
    let mut owned = string_arg(args, 0)?.to_string();
    let mut outer_header = None;
    loop {
        let token = Token::parse(&owned)?;
        // Every layer of a nested token must verify.
        let Some(alg) = token.alg() else {
            return Ok(invalid());
        };
        if let Some(crit) = token.header_json.get("crit") {
            // No critical header extension is understood.
            if crit.as_array().is_none_or(|c| !c.is_empty()) {
                return Ok(invalid());
            }
        }
        if constraints.alg.as_deref().is_some_and(|want| want != alg) {
            return Ok(invalid());
        }
        let Some(scheme) = Scheme::from_jws_alg(alg) else {
            return Ok(invalid());
        };
        let verified = match (&constraints.keys, &constraints.secret, scheme) {
            (_, Some(secret), Scheme::Hmac(hash)) => {
                let mac = crypto::hmac(hash, secret.as_bytes(), token.signing_input.as_bytes());
                crypto::constant_time_eq(&mac, &token.signature)
            }
            (Some(keys), _, scheme) if !matches!(scheme, Scheme::Hmac(_)) => {
                verify_with_keys(&token, keys, scheme)
            }
            _ => false,
        };
        if !verified {
            return Ok(invalid());
        }
        if outer_header.is_none() {
            outer_header = Some(token.header.clone());
        }
        if let Some(inner) = token.nested()? {
            owned = inner;
            continue;
        }
        let payload = token.payload()?;
        if !claims_ok(&payload, &constraints)? {
            return Ok(invalid());
        }
        return Ok(Value::from(vec![
            Value::from(true),
            token.header.clone(),
            payload,
        ]));
    }
}

/// Checks `exp`, `nbf`, `iss` and `aud` against the constraints.
fn claims_ok(payload: &Value, c: &Constraints) -> Result<bool> {
    let claims = to_json(payload)?;
    let now = c.now_ns();
    let number = |name: &str| -> Result<Option<f64>> {
        match claims.get(name) {
            None => Ok(None),
            Some(serde_json::Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => bail!("{name} value must be a number"),
        }
    };
    if let Some(exp) = number("exp")?
        && now >= exp * 1e9
    {
        return Ok(false);
    }
    if let Some(nbf) = number("nbf")?
        && now < nbf * 1e9
    {
        return Ok(false);
    }
    if let Some(want) = &c.iss
        && claims.get("iss").and_then(|v| v.as_str()) != Some(want.as_str())
    {
        return Ok(false);
    }
    match (claims.get("aud"), &c.aud) {
        (None, None) => {}
        (None, Some(_)) | (Some(_), None) => return Ok(false),
        (Some(aud), Some(want)) => {
            let ok = match aud {
                serde_json::Value::String(s) => s == want,
                serde_json::Value::Array(items) => items.iter().any(|i| i.as_str() == Some(want)),
                _ => false,
            };
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Compact JSON with sorted keys, as OPA serializes headers and claims.
fn compact_json(v: &Value) -> Result<String> {
    serde_json::to_string(v).context("value is not JSON")
}

fn sign(header_text: &str, payload_text: &str, jwk_text: &str) -> Result<Value> {
    let header: serde_json::Value =
        serde_json::from_str(header_text).context("JWS header is not valid JSON")?;
    let alg = header
        .get("alg")
        .and_then(|v| v.as_str())
        .context("JWS header has no \"alg\"")?;
    let scheme =
        Scheme::from_jws_alg(alg).with_context(|| format!("unknown signature algorithm {alg}"))?;
    // Unless the media type says otherwise, the payload must be JSON (as in OPA).
    let typ = header.get("typ").and_then(|v| v.as_str()).unwrap_or("JWT");
    if !typ.eq_ignore_ascii_case("text/plain")
        && serde_json::from_str::<serde_json::Value>(payload_text).is_err()
    {
        bail!("type is {typ} but payload is not JSON");
    }
    let jwk: serde_json::Value =
        serde_json::from_str(jwk_text).context("the key is not a valid JWK")?;
    let key = SigningKey::from_jwk(&jwk)?;
    let signing_input = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(header_text.as_bytes()),
        BASE64URL_NOPAD.encode(payload_text.as_bytes())
    );
    let signature = key.sign(scheme, signing_input.as_bytes())?;
    Ok(Value::from(format!(
        "{signing_input}.{}",
        BASE64URL_NOPAD.encode(&signature)
    )))
}

fn object_arg(args: &[Value], i: usize) -> Result<&Value> {
    match args.get(i) {
        Some(v @ Value::Object(_)) => Ok(v),
        Some(other) => bail!(
            "operand {} must be an object, got {}",
            i + 1,
            type_name(other)
        ),
        None => bail!("operand {} is missing", i + 1),
    }
}

/// `io.jwt.encode_sign(headers, payload, key)` with objects.
fn encode_sign(args: &[Value]) -> Result<Value> {
    let header = compact_json(object_arg(args, 0)?)?;
    let payload = compact_json(object_arg(args, 1)?)?;
    let key = compact_json(object_arg(args, 2)?)?;
    sign(&header, &payload, &key)
}

/// `io.jwt.encode_sign_raw(headers, payload, key)` with JSON strings, signed as given.
fn encode_sign_raw(args: &[Value]) -> Result<Value> {
    sign(
        string_arg(args, 0)?,
        string_arg(args, 1)?,
        string_arg(args, 2)?,
    )
}

/// A compact JWS verified by [`verify_compact`]: its header and payload as JSON.
#[derive(Debug, Clone)]
pub struct VerifiedJws {
    /// The protected header.
    pub header: serde_json::Value,
    /// The payload, parsed as JSON.
    pub payload: serde_json::Value,
}

/// Verifies a compact JWS (`header.payload.signature`) signed with `alg` by `key`: a PEM
/// public key or certificate (or a JWK) for `RS*`, `PS*`, `ES*` and `EdDSA`, the secret
/// itself for `HS*`. The token's `alg` header must equal `alg`; a nested token is refused.
/// Used by the host to check OPA's bundle signatures with the builtins' own code.
pub fn verify_compact(token: &str, alg: &str, key: &str) -> Result<VerifiedJws> {
    let token = Token::parse(token)?;
    let Some(header_alg) = token.alg() else {
        bail!("the token has no alg header");
    };
    if header_alg != alg {
        bail!("the token is signed with {header_alg}, the key is for {alg}");
    }
    let scheme =
        Scheme::from_jws_alg(alg).ok_or_else(|| anyhow!("unsupported signing algorithm {alg}"))?;
    let verified = match scheme {
        Scheme::Hmac(hash) => {
            let mac = crypto::hmac(hash, key.as_bytes(), token.signing_input.as_bytes());
            crypto::constant_time_eq(&mac, &token.signature)
        }
        scheme => verify_with_keys(&token, &public_keys(key)?, scheme),
    };
    if !verified {
        bail!("the signature does not verify with the key");
    }
    let payload: serde_json::Value =
        serde_json::from_slice(&token.payload_bytes).context("the JWT payload is not JSON")?;
    if !payload.is_object() {
        bail!("the JWT payload is not a JSON object");
    }
    Ok(VerifiedJws {
        header: token.header_json.clone(),
        payload,
    })
}

/// The header of a compact JWS, unverified (to pick the key named by `kid`).
pub fn unverified_header(token: &str) -> Result<serde_json::Value> {
    Ok(Token::parse(token)?.header_json)
}
