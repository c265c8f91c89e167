//! `providers.aws.sign_req(request, aws_config, time_ns)`: AWS Signature Version 4.
//!
//! Adds `host`, `x-amz-date`, `x-amz-content-sha256` (and `x-amz-security-token` with a
//! session token) and the `Authorization` header to an `http.send`-style request object, as
//! OPA does. The payload hash is over `raw_body`, else the compact JSON of `body`, else the
//! empty string; `disable_payload_signing` uses `UNSIGNED-PAYLOAD`, and an
//! `x-amz-content-sha256` header already in the request is kept.

use super::crypto::hmac;
use super::keys::Hash;
use super::{Builtin, from_json, to_json};
use anyhow::{Context, Result, bail};
use data_encoding::HEXLOWER;
use regorus::Value;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;

pub(super) const BUILTINS: &[Builtin] = &[("providers.aws.sign_req", 3, sign_req)];

fn field<'a>(obj: &'a Json, key: &str) -> Result<&'a str> {
    obj.get(key)
        .and_then(|v| v.as_str())
        .with_context(|| format!("aws_config needs the string \"{key}\""))
}

/// Percent-encodes per SigV4 (unreserved characters kept; `/` kept in paths).
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// UTC date-time of a Unix timestamp: `(YYYYMMDD, YYYYMMDDTHHMMSSZ)`.
fn amz_dates(secs: i64) -> (String, String) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    (date, stamp)
}

fn sign_req(args: &[Value]) -> Result<Value> {
    let mut req = to_json(args.first().context("operand 1 is missing")?)?;
    let config = to_json(args.get(1).context("operand 2 is missing")?)?;
    let time_ns = match args.get(2) {
        Some(Value::Number(_)) => to_json(&args[2])?.as_f64().unwrap_or_default(),
        _ => bail!("operand 3 must be a number of nanoseconds"),
    };
    let Json::Object(request) = &mut req else {
        bail!("operand 1 must be an object");
    };
    let access_key = field(&config, "aws_access_key")?;
    let secret = field(&config, "aws_secret_access_key")?;
    let service = field(&config, "aws_service")?;
    let region = field(&config, "aws_region")?;
    let token = config.get("aws_session_token").and_then(|v| v.as_str());
    let unsigned = match config.get("disable_payload_signing") {
        None => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => bail!("disable_payload_signing must be a boolean"),
    };

    let method = request
        .get("method")
        .and_then(|v| v.as_str())
        .context("request needs a \"method\"")?
        // Signed as given, as OPA does (it does not upper-case the method).
        .to_string();
    let url = request
        .get("url")
        .and_then(|v| v.as_str())
        .context("request needs a \"url\"")?
        .to_string();
    let after_scheme = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .context("url has no scheme")?;
    let (authority, path_query) = match after_scheme.find('/') {
        Some(i) => (&after_scheme[..i], &after_scheme[i..]),
        // A URL without a path signs an empty canonical URI, as OPA does.
        None => (after_scheme, ""),
    };
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));

    let body_hash = if unsigned {
        "UNSIGNED-PAYLOAD".to_string()
    } else {
        let body = match (request.get("raw_body"), request.get("body")) {
            (Some(Json::String(raw)), _) => raw.clone(),
            (_, Some(body)) => serde_json::to_string(body)?,
            _ => String::new(),
        };
        HEXLOWER.encode(&Hash::Sha256.digest(body.as_bytes()))
    };
    let (date, stamp) = amz_dates((time_ns / 1e9).floor() as i64);

    // Headers: the request's own (lower-cased), then the ones SigV4 needs.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    if let Some(Json::Object(h)) = request.get("headers") {
        for (k, v) in h {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            headers.insert(k.to_lowercase(), v);
        }
    }
    headers.insert("host".into(), authority.to_string());
    headers.insert("x-amz-date".into(), stamp.clone());
    headers
        .entry("x-amz-content-sha256".into())
        .or_insert(body_hash);
    if let Some(t) = token {
        headers.insert("x-amz-security-token".into(), t.to_string());
    }
    let payload_hash = headers["x-amz-content-sha256"].clone();

    let mut query_pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(k, false), encode(v, false))
        })
        .collect();
    query_pairs.sort();
    let canonical_query: Vec<String> = query_pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let signed_headers: Vec<&str> = headers.keys().map(String::as_str).collect();
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let canonical_request = format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
        encode(path, true),
        canonical_query.join("&"),
        signed_headers.join(";"),
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        HEXLOWER.encode(&Hash::Sha256.digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        Hash::Sha256,
        format!("AWS4{secret}").as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac(Hash::Sha256, &key, part.as_bytes());
    }
    let signature = HEXLOWER.encode(&hmac(Hash::Sha256, &key, string_to_sign.as_bytes()));
    let mut out_headers: Map<String, Json> = match request.remove("headers") {
        Some(Json::Object(h)) => h,
        _ => Map::new(),
    };
    for (k, v) in &headers {
        if !out_headers
            .keys()
            .any(|existing| existing.eq_ignore_ascii_case(k))
        {
            out_headers.insert(k.clone(), Json::from(v.clone()));
        }
    }
    out_headers.insert(
        "Authorization".into(),
        Json::from(format!(
            "AWS4-HMAC-SHA256 Credential={access_key}/{scope},SignedHeaders={},Signature={signature}",
            signed_headers.join(";")
        )),
    );
    request.insert("headers".into(), Json::Object(out_headers));
    // The body goes back as given (sets included), not as its JSON form.
    let mut out = from_json(req);
    if let (Some(Value::Object(orig)), Value::Object(_)) = (args.first(), &out)
        && let Some(body) = orig.get(&Value::from("body"))
        && let Ok(obj) = out.as_object_mut()
    {
        obj.insert(Value::from("body"), body.clone());
    }
    Ok(out)
}
