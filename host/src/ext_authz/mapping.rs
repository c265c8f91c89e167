//! Envoy's ext_authz v3 `Check`, mapped as OPA-Envoy (opa-envoy-plugin) maps it:
//! [`check_input`] turns a `CheckRequest` into the policy's `input`, [`check_response`]
//! turns the policy's decision into a `CheckResponse`, and [`dry_run`],
//! [`with_decision_id`] and [`request_parse_error_response`] are the plugin's last touches.
//!
//! The input is the plugin's: `attributes` (the request in the protobuf JSON mapping:
//! lowerCamelCase names, zero values left out, bytes in base64, `request.time` in RFC 3339),
//! `version`, `parsed_path`, `parsed_query`, `parsed_body` and `truncated_body` (unless the
//! body is not to be parsed), and `source_principal` when the source peer has one.
//! Failures carry the plugin's own messages: Go's `net/url`, `strconv` and `mime` wording
//! where the plugin relies on those packages, `serde_json`'s for JSON that does not parse.

use envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderMap, HeaderValue, HeaderValueOption, Metadata, QueryParameter, SocketAddress,
    address, envoy_internal_address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::{HttpStatus, StatusCode};
use envoy_types::pb::google::protobuf::{self as pb, value::Kind};
use envoy_types::pb::google::rpc::Status;
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// `google.rpc.Code.OK`.
const GRPC_OK: i32 = 0;
/// `google.rpc.Code.PERMISSION_DENIED`.
const GRPC_PERMISSION_DENIED: i32 = 7;
/// The HTTP status of a denial whose decision names none (403 Forbidden).
const DEFAULT_DENIED_STATUS: i64 = 403;
/// Envoy's word that the body it forwards was cut at `max_request_bytes`.
const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

// ---------------------------------------------------------------------------------------
// The input document.
// ---------------------------------------------------------------------------------------

/// The policy's `input` for `req`, as OPA-Envoy builds it (`envoyauth.RequestToInput`).
/// With `skip_body_parse` (`skip-request-body-parse: true`), `parsed_body` and
/// `truncated_body` are left out. `Err` carries the plugin's message for a request that
/// cannot be read (a path or query with a bad escape, a body that claims JSON or a form
/// and is not one, a `content-length` that is not a number, ...); the plugin answers it
/// with [`request_parse_error_response`].
pub fn check_input(req: &CheckRequest, skip_body_parse: bool) -> Result<Value, String> {
    let mut input = Map::new();
    if let Some(attributes) = &req.attributes {
        input.insert("attributes".to_owned(), attributes_json(attributes));
    }
    input.insert(
        "version".to_owned(),
        json!({"ext_authz": "v3", "encoding": "protojson"}),
    );

    let http = req
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref());
    let no_headers = HashMap::new();
    let (path, headers, body, raw_body) = match http {
        Some(h) => (
            h.path.as_str(),
            &h.headers,
            h.body.as_str(),
            h.raw_body.as_slice(),
        ),
        None => ("", &no_headers, "", &[][..]),
    };

    let (parsed_path, parsed_query) = parse_path_and_query(path)?;
    input.insert(
        "parsed_path".to_owned(),
        Value::Array(parsed_path.into_iter().map(Value::String).collect()),
    );
    input.insert("parsed_query".to_owned(), Value::Object(parsed_query));

    if !skip_body_parse {
        let (parsed_body, truncated) = parse_body(headers, body, raw_body)?;
        input.insert("parsed_body".to_owned(), parsed_body);
        input.insert("truncated_body".to_owned(), Value::Bool(truncated));
    }

    let principal = req
        .attributes
        .as_ref()
        .and_then(|a| a.source.as_ref())
        .map_or("", |s| s.principal.as_str());
    if !principal.is_empty() {
        input.insert(
            "source_principal".to_owned(),
            Value::String(principal.to_owned()),
        );
    }
    Ok(Value::Object(input))
}

/// `parsed_path` and `parsed_query` from the request's path: the path before `?`,
/// percent-decoded, leading slashes trimmed, split on `/` (so `%2F` splits too, and an
/// empty path is `[""]`); the query as a map of value lists (Go's `url.ParseQuery`).
fn parse_path_and_query(path: &str) -> Result<(Vec<String>, Map<String, Value>), String> {
    let (raw_path, raw_query) = path.split_once('?').unwrap_or((path, ""));
    let decoded = go_unescape(raw_path, false)?;
    let parsed_path = decoded
        .trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    Ok((parsed_path, parse_query(raw_query)?))
}

/// `parsed_body` and `truncated_body` (`envoyauth.getParsedBody`): a body Envoy marked
/// partial, or shorter than its `content-length`, is truncated and not parsed; JSON is
/// parsed as JSON, `application/x-www-form-urlencoded` and `multipart/form-data` as maps
/// of value lists; anything else (gRPC needs proto descriptors, which are not configured)
/// is `null`. `body` is used when set, else `raw_body`.
fn parse_body(
    headers: &HashMap<String, String>,
    body: &str,
    raw_body: &[u8],
) -> Result<(Value, bool), String> {
    if headers
        .get(PARTIAL_BODY_HEADER)
        .is_some_and(|v| v == "true")
    {
        return Ok((Value::Null, true));
    }
    let Some(content_type) = headers.get("content-type") else {
        return Ok((Value::Null, false));
    };
    let payload = if !body.is_empty() {
        body.as_bytes()
    } else {
        raw_body
    };
    let parsed = if content_type.contains("application/json") {
        BodyKind::Json
    } else if content_type.contains("application/grpc") {
        return Ok((Value::Null, false));
    } else if content_type.contains("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else if content_type.contains("multipart/form-data") {
        BodyKind::Multipart
    } else {
        return Ok((Value::Null, false));
    };
    if payload.is_empty() {
        return Ok((Value::Null, false));
    }
    if let Some(length) = headers.get("content-length") {
        let length = go_parse_int(length)?;
        let have = i64::try_from(payload.len()).unwrap_or(i64::MAX);
        if length != -1 && length > have {
            return Ok((Value::Null, true));
        }
    }
    let data: Value = match parsed {
        BodyKind::Json => serde_json::from_str(&lossy(payload)).map_err(|e| e.to_string())?,
        BodyKind::Form => Value::Object(parse_query(&lossy(payload))?),
        BodyKind::Multipart => {
            let (_, params) = parse_media_type(content_type)?;
            match params.get("boundary") {
                Some(boundary) => parse_multipart(payload, boundary)?,
                None => Value::Null,
            }
        }
    };
    Ok((data, false))
}

/// The body encodings the plugin parses.
enum BodyKind {
    Json,
    Form,
    Multipart,
}

/// `attributes`: the `AttributeContext` in the protobuf JSON mapping.
fn attributes_json(a: &AttributeContext) -> Value {
    let mut m = Map::new();
    if let Some(peer) = &a.source {
        m.insert("source".to_owned(), peer_json(peer));
    }
    if let Some(peer) = &a.destination {
        m.insert("destination".to_owned(), peer_json(peer));
    }
    if let Some(request) = &a.request {
        m.insert("request".to_owned(), request_json(request));
    }
    put_string_map(&mut m, "contextExtensions", &a.context_extensions);
    if let Some(metadata) = &a.metadata_context {
        m.insert("metadataContext".to_owned(), metadata_json(metadata));
    }
    if let Some(metadata) = &a.route_metadata_context {
        m.insert("routeMetadataContext".to_owned(), metadata_json(metadata));
    }
    if let Some(tls) = &a.tls_session {
        let mut t = Map::new();
        put_str(&mut t, "sni", &tls.sni);
        m.insert("tlsSession".to_owned(), Value::Object(t));
    }
    Value::Object(m)
}

fn peer_json(p: &Peer) -> Value {
    let mut m = Map::new();
    if let Some(address) = &p.address {
        m.insert("address".to_owned(), address_json(address));
    }
    put_str(&mut m, "service", &p.service);
    put_string_map(&mut m, "labels", &p.labels);
    put_str(&mut m, "principal", &p.principal);
    put_str(&mut m, "certificate", &p.certificate);
    Value::Object(m)
}

fn address_json(a: &Address) -> Value {
    let mut m = Map::new();
    match &a.address {
        Some(address::Address::SocketAddress(s)) => {
            m.insert("socketAddress".to_owned(), socket_address_json(s));
        }
        Some(address::Address::Pipe(p)) => {
            let mut pipe = Map::new();
            put_str(&mut pipe, "path", &p.path);
            if p.mode != 0 {
                pipe.insert("mode".to_owned(), Value::from(p.mode));
            }
            m.insert("pipe".to_owned(), Value::Object(pipe));
        }
        Some(address::Address::EnvoyInternalAddress(e)) => {
            let mut internal = Map::new();
            if let Some(envoy_internal_address::AddressNameSpecifier::ServerListenerName(name)) =
                &e.address_name_specifier
            {
                internal.insert("serverListenerName".to_owned(), Value::from(name.as_str()));
            }
            put_str(&mut internal, "endpointId", &e.endpoint_id);
            m.insert("envoyInternalAddress".to_owned(), Value::Object(internal));
        }
        None => {}
    }
    Value::Object(m)
}

fn socket_address_json(s: &SocketAddress) -> Value {
    let mut m = Map::new();
    if s.protocol != 0 {
        let protocol = socket_address::Protocol::try_from(s.protocol).map_or_else(
            |_| Value::from(s.protocol),
            |p| Value::from(p.as_str_name()),
        );
        m.insert("protocol".to_owned(), protocol);
    }
    put_str(&mut m, "address", &s.address);
    match &s.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(port)) => {
            m.insert("portValue".to_owned(), Value::from(*port));
        }
        Some(socket_address::PortSpecifier::NamedPort(name)) => {
            m.insert("namedPort".to_owned(), Value::from(name.as_str()));
        }
        None => {}
    }
    put_str(&mut m, "resolverName", &s.resolver_name);
    if s.ipv4_compat {
        m.insert("ipv4Compat".to_owned(), Value::Bool(true));
    }
    put_str(
        &mut m,
        "networkNamespaceFilepath",
        &s.network_namespace_filepath,
    );
    Value::Object(m)
}

fn request_json(r: &Request) -> Value {
    let mut m = Map::new();
    if let Some(time) = &r.time {
        m.insert("time".to_owned(), timestamp_json(time));
    }
    if let Some(http) = &r.http {
        m.insert("http".to_owned(), http_json(http));
    }
    Value::Object(m)
}

/// `request.http`. `size` is a number, as in OPA-Envoy's documented input and its current
/// conversion (the strict protobuf mapping would quote the int64).
fn http_json(h: &HttpRequest) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "id", &h.id);
    put_str(&mut m, "method", &h.method);
    put_string_map(&mut m, "headers", &h.headers);
    if let Some(header_map) = &h.header_map {
        m.insert("headerMap".to_owned(), header_map_json(header_map));
    }
    put_str(&mut m, "path", &h.path);
    put_str(&mut m, "host", &h.host);
    put_str(&mut m, "scheme", &h.scheme);
    put_str(&mut m, "query", &h.query);
    put_str(&mut m, "fragment", &h.fragment);
    if h.size != 0 {
        m.insert("size".to_owned(), Value::from(h.size));
    }
    put_str(&mut m, "protocol", &h.protocol);
    put_str(&mut m, "body", &h.body);
    put_bytes(&mut m, "rawBody", &h.raw_body);
    Value::Object(m)
}

/// `headerMap` (Envoy's `encode_raw_headers`): the headers as a list of key/value pairs.
fn header_map_json(h: &HeaderMap) -> Value {
    let mut m = Map::new();
    if !h.headers.is_empty() {
        let headers = h
            .headers
            .iter()
            .map(|header| {
                let mut e = Map::new();
                put_str(&mut e, "key", &header.key);
                put_str(&mut e, "value", &header.value);
                put_bytes(&mut e, "rawValue", &header.raw_value);
                Value::Object(e)
            })
            .collect();
        m.insert("headers".to_owned(), Value::Array(headers));
    }
    Value::Object(m)
}

/// `metadataContext` / `routeMetadataContext`. A typed entry (`google.protobuf.Any`)
/// cannot be expanded without its message type: it is given as `typeUrl` and the
/// base64 `value`, as OPA-Envoy's conversion gives it.
fn metadata_json(md: &Metadata) -> Value {
    let mut m = Map::new();
    if !md.filter_metadata.is_empty() {
        let filters = md
            .filter_metadata
            .iter()
            .map(|(k, v)| (k.clone(), struct_json(v)))
            .collect();
        m.insert("filterMetadata".to_owned(), Value::Object(filters));
    }
    if !md.typed_filter_metadata.is_empty() {
        let typed = md
            .typed_filter_metadata
            .iter()
            .map(|(k, any)| {
                let mut e = Map::new();
                put_str(&mut e, "typeUrl", &any.type_url);
                put_bytes(&mut e, "value", &any.value);
                (k.clone(), Value::Object(e))
            })
            .collect();
        m.insert("typedFilterMetadata".to_owned(), Value::Object(typed));
    }
    Value::Object(m)
}

/// A `google.protobuf.Struct` as the JSON object it stands for.
fn struct_json(s: &pb::Struct) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

/// A `google.protobuf.Value` as JSON (`structpb`'s `AsInterface`: an unset value is
/// `null`, a non-finite number the string `NaN`, `Infinity` or `-Infinity`).
fn value_json(v: &pb::Value) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => number_json(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_json).collect()),
    }
}

/// A double as JSON: integral values within 2^53 as integers (`1`, not `1.0`, as Go
/// prints them).
fn number_json(n: f64) -> Value {
    if n.is_nan() {
        return Value::from("NaN");
    }
    if n.is_infinite() {
        return Value::from(if n > 0.0 { "Infinity" } else { "-Infinity" });
    }
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// A `google.protobuf.Timestamp` in RFC 3339, UTC, with 0, 3, 6 or 9 fractional digits
/// (the protobuf JSON mapping). A value outside its valid range (years 1 to 9999, nanos
/// below a second) is given as its `seconds` and `nanos` fields instead of failing the
/// request.
fn timestamp_json(t: &pb::Timestamp) -> Value {
    const MIN_SECONDS: i64 = -62_135_596_800;
    const MAX_SECONDS: i64 = 253_402_300_799;
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        let mut m = Map::new();
        if t.seconds != 0 {
            m.insert("seconds".to_owned(), Value::from(t.seconds));
        }
        if t.nanos != 0 {
            m.insert("nanos".to_owned(), Value::from(t.nanos));
        }
        return Value::Object(m);
    }
    let (year, month, day) = civil_from_days(t.seconds.div_euclid(86_400));
    let secs = t.seconds.rem_euclid(86_400);
    let (hour, minute, second) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    let nanos = t.nanos;
    if nanos != 0 {
        if nanos % 1_000_000 == 0 {
            out.push_str(&format!(".{:03}", nanos / 1_000_000));
        } else if nanos % 1000 == 0 {
            out.push_str(&format!(".{:06}", nanos / 1000));
        } else {
            out.push_str(&format!(".{nanos:09}"));
        }
    }
    out.push('Z');
    Value::String(out)
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn put_str(m: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        m.insert(key.to_owned(), Value::from(value));
    }
}

fn put_bytes(m: &mut Map<String, Value>, key: &str, value: &[u8]) {
    if !value.is_empty() {
        m.insert(
            key.to_owned(),
            Value::from(data_encoding::BASE64.encode(value)),
        );
    }
}

fn put_string_map(m: &mut Map<String, Value>, key: &str, value: &HashMap<String, String>) {
    if !value.is_empty() {
        let object = value
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        m.insert(key.to_owned(), Value::Object(object));
    }
}

fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// A string quoted as Go's `%q` quotes it (for the plain text of messages).
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Go's `strconv.ParseInt(s, 10, 64)`, with its messages.
fn go_parse_int(s: &str) -> Result<i64, String> {
    s.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing {}: {why}", go_quote(s))
    })
}

/// Go's `url.PathUnescape` (`query: false`) and `url.QueryUnescape` (`query: true`, where
/// `+` is a space): `%XX` decoded, a bad escape refused with Go's message. Decoded bytes
/// that are not UTF-8 become U+FFFD, as they do once OPA writes them out.
fn go_unescape(s: &str, query: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    if !(bytes.contains(&b'%') || (query && bytes.contains(&b'+'))) {
        return Ok(s.to_owned());
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let high = bytes.get(i + 1).and_then(|b| hex_digit(*b));
                let low = bytes.get(i + 2).and_then(|b| hex_digit(*b));
                let (Some(high), Some(low)) = (high, low) else {
                    let end = (i + 3).min(bytes.len());
                    let escape = bytes.get(i..end).unwrap_or_default();
                    return Err(format!("invalid URL escape {}", go_quote(&lossy(escape))));
                };
                out.push((high << 4) | low);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(lossy(&out).into_owned())
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Go's `url.ParseQuery`: `&`-separated `key=value` pairs, both unescaped, values listed
/// per key in order. A pair with a `;` is refused ("invalid semicolon separator in
/// query"), as is a bad escape; Go reports the last semicolon error, else the first
/// escape error.
fn parse_query(query: &str) -> Result<Map<String, Value>, String> {
    let mut values = Map::new();
    let mut error: Option<String> = None;
    for pair in query.split('&') {
        if pair.contains(';') {
            error = Some("invalid semicolon separator in query".to_owned());
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = match go_unescape(key, true) {
            Ok(key) => key,
            Err(e) => {
                error.get_or_insert(e);
                continue;
            }
        };
        let value = match go_unescape(value, true) {
            Ok(value) => value,
            Err(e) => {
                error.get_or_insert(e);
                continue;
            }
        };
        if let Value::Array(list) = values
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            list.push(Value::String(value));
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(values),
    }
}

// ---------------------------------------------------------------------------------------
// Media types and multipart bodies (Go's `mime.ParseMediaType` and `mime/multipart`).
// ---------------------------------------------------------------------------------------

/// Go's `mime.ParseMediaType`: the lowercased media type and its parameters (names
/// lowercased, values unquoted). RFC 2231 continuations (`name*0=`) are kept as they are.
fn parse_media_type(v: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let (base, mut rest) = match v.find(';') {
        Some(i) => v.split_at(i),
        None => (v, ""),
    };
    let media_type = base.to_lowercase().trim().to_owned();
    check_media_type(&media_type)?;
    let mut params = BTreeMap::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let Some((key, value, after)) = consume_media_param(rest) else {
            if rest.trim() == ";" {
                break;
            }
            return Err("mime: invalid media parameter".to_owned());
        };
        if params.get(&key).is_some_and(|existing| existing != &value) {
            return Err("mime: duplicate parameter name".to_owned());
        }
        params.insert(key, value);
        rest = after;
    }
    Ok((media_type, params))
}

fn check_media_type(s: &str) -> Result<(), String> {
    let (kind, rest) = consume_token(s);
    if kind.is_empty() {
        return Err("mime: no media type".to_owned());
    }
    if rest.is_empty() {
        return Ok(());
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Err("mime: expected slash after first token".to_owned());
    };
    let (subtype, rest) = consume_token(rest);
    if subtype.is_empty() {
        return Err("mime: expected token after slash".to_owned());
    }
    if !rest.is_empty() {
        return Err("mime: unexpected content after media subtype".to_owned());
    }
    Ok(())
}

/// One `; name=value` parameter, or `None` where there is none to read.
fn consume_media_param(v: &str) -> Option<(String, String, &str)> {
    let rest = v.trim_start().strip_prefix(';')?.trim_start();
    let (name, rest) = consume_token(rest);
    if name.is_empty() {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let (value, after) = consume_value(rest)?;
    Some((name.to_lowercase(), value, after))
}

/// A token or a quoted string (`\` escaping a special character), or `None`.
fn consume_value(v: &str) -> Option<(String, &str)> {
    if !v.starts_with('"') {
        let (token, rest) = consume_token(v);
        return (!token.is_empty()).then(|| (token.to_owned(), rest));
    }
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return Some((lossy(&out).into_owned(), v.get(i + 1..).unwrap_or(""))),
            b'\\' if bytes.get(i + 1).is_some_and(|n| is_tspecial(*n)) => {
                out.extend(bytes.get(i + 1).copied());
                i += 2;
            }
            b'\r' | b'\n' => return None,
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

fn consume_token(v: &str) -> (&str, &str) {
    let end = v
        .find(|c: char| !(c.is_ascii() && is_token_byte(c as u8)))
        .unwrap_or(v.len());
    v.split_at(end)
}

fn is_tspecial(b: u8) -> bool {
    b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// A MIME token character: printable US-ASCII, not a space, not a special.
fn is_token_byte(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !is_tspecial(b)
}

/// The form fields of a `multipart/form-data` body, as Go's `multipart.Reader` reads
/// them: each part named by a `form-data` `Content-Disposition` gives its name one value,
/// parsed JSON when the part's `Content-Type` says `application/json`, else its text.
/// Lines may end in CRLF or, as the first boundary shows, LF alone; a preamble before the
/// first boundary is skipped. (Go also undoes `quoted-printable` part encodings; this
/// reader does not.)
fn parse_multipart(payload: &[u8], boundary: &str) -> Result<Value, String> {
    if boundary.is_empty() {
        return Err("multipart: boundary is empty".to_owned());
    }
    let dash = [b"--".as_slice(), boundary.as_bytes()].concat();
    let mut nl: &[u8] = b"\r\n";
    let mut pos = 0usize;
    let mut parts_read = 0usize;
    let mut values = Map::new();
    'parts: loop {
        // The next boundary line (Go's `NextPart`).
        let mut expect_new_part = false;
        loop {
            let rest = payload.get(pos..).unwrap_or_default();
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                if is_final_boundary(rest, &dash, nl) {
                    break 'parts;
                }
                return Err("multipart: NextPart: EOF".to_owned());
            };
            let line = &rest[..=end];
            pos += line.len();
            if is_boundary_line(line, &dash, &mut nl, parts_read) {
                parts_read += 1;
                break;
            }
            if is_final_boundary(line, &dash, nl) {
                break 'parts;
            }
            if expect_new_part {
                return Err(format!(
                    "multipart: expecting a new Part; got line {}",
                    go_quote(&lossy(line))
                ));
            }
            if parts_read == 0 {
                continue;
            }
            if line == nl {
                expect_new_part = true;
                continue;
            }
            return Err(format!(
                "multipart: unexpected line in Next(): {}",
                go_quote(&lossy(line))
            ));
        }

        let headers = read_mime_header(payload, &mut pos)?;
        let nl_dash = [nl, dash.as_slice()].concat();
        let rest = payload.get(pos..).unwrap_or_default();
        let body = rest
            .get(..part_body_len(rest, &dash, &nl_dash)?)
            .unwrap_or_default();
        pos += body.len();

        let (disposition, params) =
            parse_media_type(mime_header(&headers, "Content-Disposition")).unwrap_or_default();
        if disposition != "form-data" {
            continue;
        }
        let Some(name) = params.get("name").filter(|n| !n.is_empty()) else {
            continue;
        };
        let value: Value = if mime_header(&headers, "Content-Type").contains("application/json") {
            serde_json::from_str(&lossy(body)).map_err(|e| e.to_string())?
        } else {
            Value::String(lossy(body).into_owned())
        };
        if let Value::Array(list) = values
            .entry(name.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            list.push(value);
        }
    }
    Ok(Value::Object(values))
}

/// `--boundary` and a line end; the first one also tells whether lines end in LF alone.
fn is_boundary_line(line: &[u8], dash: &[u8], nl: &mut &[u8], parts_read: usize) -> bool {
    let Some(rest) = line.strip_prefix(dash) else {
        return false;
    };
    let rest = skip_lwsp(rest);
    if parts_read == 0 && rest == b"\n" {
        *nl = &b"\n"[..];
    }
    rest == *nl
}

/// `--boundary--`, then nothing but a line end.
fn is_final_boundary(line: &[u8], dash: &[u8], nl: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(dash).and_then(|r| r.strip_prefix(b"--")) else {
        return false;
    };
    let rest = skip_lwsp(rest);
    rest.is_empty() || rest == nl
}

fn skip_lwsp(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    b
}

/// The length of a part's body in `buf`: up to the line end before the next boundary
/// (or none, when the body starts with a boundary). No boundary: "unexpected EOF".
fn part_body_len(buf: &[u8], dash: &[u8], nl_dash: &[u8]) -> Result<usize, String> {
    let mut from = 0;
    if buf.starts_with(dash) {
        if boundary_follows(buf, dash.len()) {
            return Ok(0);
        }
        from = dash.len();
    }
    while let Some(found) = find(buf.get(from..).unwrap_or_default(), nl_dash) {
        let at = from + found;
        if boundary_follows(buf.get(at..).unwrap_or_default(), nl_dash.len()) {
            return Ok(at);
        }
        from = at + nl_dash.len();
    }
    Err("unexpected EOF".to_owned())
}

/// Whether what follows a boundary's `prefix_len` bytes at the start of `buf` ends it:
/// the end of the body, white space, a line end, or `--`.
fn boundary_follows(buf: &[u8], prefix_len: usize) -> bool {
    match buf.get(prefix_len) {
        None | Some(b' ' | b'\t' | b'\r' | b'\n') => true,
        Some(b'-') => buf.get(prefix_len + 1) == Some(&b'-'),
        Some(_) => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A part's MIME header (Go's `textproto.ReadMIMEHeader`): `Key: value` lines up to an
/// empty line, folded lines joined to the one before.
fn read_mime_header(payload: &[u8], pos: &mut usize) -> Result<Vec<(String, String)>, String> {
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let rest = payload.get(*pos..).unwrap_or_default();
        if rest.is_empty() {
            return Err("EOF".to_owned());
        }
        let (line, used) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], end + 1),
            None => (rest, rest.len()),
        };
        *pos += used;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok(headers);
        }
        let text = lossy(line);
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            let Some((_, value)) = headers.last_mut() else {
                return Err(format!("malformed MIME header initial line: {text}"));
            };
            value.push(' ');
            value.push_str(text.trim_matches(is_lwsp_char));
            continue;
        }
        let Some((key, value)) = text.split_once(':') else {
            return Err(format!("malformed MIME header line: {text}"));
        };
        if key.is_empty() || !key.bytes().all(is_header_key_byte) {
            return Err(format!("malformed MIME header line: {text}"));
        }
        let value = value.trim_matches(is_lwsp_char);
        headers.push((key.to_owned(), value.to_owned()));
    }
}

fn is_lwsp_char(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// An RFC 7230 `tchar`.
fn is_header_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The first value of a MIME header (names compared without case), or "".
fn mime_header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or("", |(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------
// The answer.
// ---------------------------------------------------------------------------------------

/// A decision read as OPA-Envoy reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// What the policy decided (also under dry-run, where the answer is always OK).
    pub allowed: bool,
    /// The answer for Envoy.
    pub response: CheckResponse,
}

/// The answer to Envoy for the policy's decision (`None`: undefined), as OPA-Envoy builds
/// it (`internal.check` with `envoyauth.EvalResult`):
/// - a boolean: `OK` or `PERMISSION_DENIED`, nothing else;
/// - an object: `allowed` (required, boolean) decides; `headers` (an object of string or
///   string-list values, or a list of such objects) and `dynamic_metadata` (an object)
///   apply either way; allowed, `request_headers_to_remove`, `response_headers_to_add`,
///   `query_parameters_to_remove` and `query_parameters_to_set` fill the `OkHttpResponse`;
///   denied, `body` (a string) and `http_status` (a status Envoy knows, 403 by default)
///   fill the `DeniedHttpResponse`;
/// - anything else, an undefined decision ("undefined decision") or a field of the wrong
///   type: `Err` with the plugin's message, which it returns as the gRPC error of the call
///   (status UNKNOWN), not as a `CheckResponse`.
pub fn check_response(result: Option<&Value>) -> Result<CheckOutcome, String> {
    let decision = result.ok_or_else(|| "undefined decision".to_owned())?;
    let allowed = is_allowed(decision).map_err(context("failed to get response status"))?;
    let code = if allowed {
        GRPC_OK
    } else {
        GRPC_PERMISSION_DENIED
    };
    let mut response = CheckResponse {
        status: Some(rpc_status(code, "")),
        ..Default::default()
    };
    if let Value::Object(d) = decision {
        let headers =
            header_options(d, "headers").map_err(context("failed to get response headers"))?;
        response.dynamic_metadata =
            dynamic_metadata(d).map_err(context("failed to get dynamic metadata"))?;
        response.http_response = Some(if allowed {
            let headers_to_remove = string_list(d, "request_headers_to_remove")
                .map_err(context("failed to get request headers to remove"))?;
            let response_headers_to_add = header_options(d, "response_headers_to_add")
                .map_err(context("failed to get response headers to send to client"))?;
            let query_parameters_to_remove = string_list(d, "query_parameters_to_remove")
                .map_err(context("failed to get request query parameters to remove"))?;
            let query_parameters_to_set = query_parameters_to_set(d)
                .map_err(context("failed to get request query parameters to set"))?;
            HttpResponse::OkResponse(ok_http_response(
                headers,
                headers_to_remove,
                response_headers_to_add,
                query_parameters_to_set,
                query_parameters_to_remove,
            ))
        } else {
            let body = response_body(d).map_err(context("failed to get response body"))?;
            let code = http_status(d).map_err(context("failed to get response http status"))?;
            HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code }),
                headers,
                body,
            })
        });
    }
    Ok(CheckOutcome { allowed, response })
}

/// OPA-Envoy's `dry-run: true`: a non-OK answer becomes a bare OK (`status` OK, an empty
/// `OkHttpResponse`: no header or query changes); the dynamic metadata stays, and so does
/// `allowed`, for the decision log records what would have happened. Dry-run does not
/// touch errors (an undefined or malformed decision is still the call's gRPC error) nor
/// the answer to a request that cannot be read ([`request_parse_error_response`]).
pub fn dry_run(mut outcome: CheckOutcome) -> CheckOutcome {
    if outcome
        .response
        .status
        .as_ref()
        .is_none_or(|s| s.code != GRPC_OK)
    {
        outcome.response.status = Some(rpc_status(GRPC_OK, ""));
        outcome.response.http_response = Some(HttpResponse::OkResponse(ok_http_response(
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        )));
    }
    outcome
}

/// The decision's id under `decision_id` in the answer's dynamic metadata, as OPA-Envoy
/// adds it to every evaluated answer (after dry-run).
pub fn with_decision_id(response: &mut CheckResponse, decision_id: &str) {
    response
        .dynamic_metadata
        .get_or_insert_with(Default::default)
        .fields
        .insert(
            "decision_id".to_owned(),
            pb::Value {
                kind: Some(Kind::StringValue(decision_id.to_owned())),
            },
        );
}

/// OPA-Envoy's answer to a request [`check_input`] refused: `PERMISSION_DENIED` with the
/// message `request_parse_error: <message>`, and a 400 Bad Request carrying the same text
/// as its body. (It is returned as is: no dry-run, no decision id.)
pub fn request_parse_error_response(message: &str) -> CheckResponse {
    let text = format!("request_parse_error: {message}");
    CheckResponse {
        status: Some(rpc_status(GRPC_PERMISSION_DENIED, &text)),
        dynamic_metadata: None,
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: StatusCode::BadRequest as i32,
            }),
            headers: Vec::new(),
            body: text,
        })),
    }
}

fn rpc_status(code: i32, message: &str) -> Status {
    Status {
        code,
        message: message.to_owned(),
        details: Vec::new(),
    }
}

fn context(what: &'static str) -> impl Fn(String) -> String {
    move |e| format!("{what}: {e}")
}

/// `OkHttpResponse`, its deprecated `dynamic_metadata` unset (the metadata goes on the
/// `CheckResponse`).
#[allow(deprecated)]
fn ok_http_response(
    headers: Vec<HeaderValueOption>,
    headers_to_remove: Vec<String>,
    response_headers_to_add: Vec<HeaderValueOption>,
    query_parameters_to_set: Vec<QueryParameter>,
    query_parameters_to_remove: Vec<String>,
) -> OkHttpResponse {
    OkHttpResponse {
        headers,
        headers_to_remove,
        dynamic_metadata: None,
        response_headers_to_add,
        query_parameters_to_set,
        query_parameters_to_remove,
    }
}

/// A header as OPA-Envoy sends it: the key and value only (the deprecated `append` and
/// `append_action` left at their defaults, so Envoy's defaults for the message apply).
#[allow(deprecated)]
fn header_option(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: 0,
        keep_empty_value: false,
    }
}

/// The type Go names for a decoded JSON value in the plugin's messages (`%T`).
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "json.Number",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// `EvalResult.IsAllowed`.
fn is_allowed(decision: &Value) -> Result<bool, String> {
    match decision {
        Value::Bool(allowed) => Ok(*allowed),
        Value::Object(d) => match d.get("allowed") {
            None => Err(
                r#"unable to determine evaluation result due to missing "allowed" key"#.to_owned(),
            ),
            Some(Value::Bool(allowed)) => Ok(*allowed),
            Some(other) => Err(format!(
                "type assertion error, expected allowed to be of type 'boolean' but got '{}'",
                go_type(other)
            )),
        },
        other => Err(format!(
            "illegal value for policy evaluation result: {}",
            go_type(other)
        )),
    }
}

/// `headers` / `response_headers_to_add` (`transformAnyInputToHeadersBag`): an object
/// of string or string-list values, or a list of such objects; one header per value.
fn header_options(d: &Map<String, Value>, field: &str) -> Result<Vec<HeaderValueOption>, String> {
    let not_object = |v: &Value| {
        format!(
            "type assertion error, expected headers to be of type 'object' but got '{}'",
            go_type(v)
        )
    };
    let mut out = Vec::new();
    match d.get(field) {
        None => {}
        Some(Value::Object(headers)) => headers_from_object(headers, &mut out)?,
        Some(Value::Array(items)) => {
            for item in items {
                let Value::Object(headers) = item else {
                    return Err(not_object(item));
                };
                headers_from_object(headers, &mut out)?;
            }
        }
        Some(other) => return Err(not_object(other)),
    }
    Ok(out)
}

fn headers_from_object(
    headers: &Map<String, Value>,
    out: &mut Vec<HeaderValueOption>,
) -> Result<(), String> {
    for (key, value) in headers {
        match value {
            Value::String(v) => out.push(header_option(key, v)),
            Value::Array(values) => {
                for v in values {
                    let Value::String(v) = v else {
                        return Err(format!(
                            "invalid value type {} for header '{key}'",
                            go_type(v)
                        ));
                    };
                    out.push(header_option(key, v));
                }
            }
            _ => return Err(format!("type assertion error for header '{key}'")),
        }
    }
    Ok(())
}

/// `request_headers_to_remove` / `query_parameters_to_remove`: a list of strings.
fn string_list(d: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    let Some(value) = d.get(field) else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(format!(
            "type assertion error, expected {field} to be of type '[]string' but got '{}'",
            go_type(value)
        ));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!(
                "type assertion error, expected {field} value to be of type 'string' but got '{}'",
                go_type(other)
            )),
        })
        .collect()
}

/// `query_parameters_to_set`: an object of string or string-list values; one parameter
/// per value.
fn query_parameters_to_set(d: &Map<String, Value>) -> Result<Vec<QueryParameter>, String> {
    let Some(value) = d.get("query_parameters_to_set") else {
        return Ok(Vec::new());
    };
    let Value::Object(params) = value else {
        return Err(format!(
            "type assertion error, expected query_parameters_to_set to be a map but got '{}'",
            go_type(value)
        ));
    };
    let param = |key: &str, value: &str| QueryParameter {
        key: key.to_owned(),
        value: value.to_owned(),
    };
    let mut out = Vec::with_capacity(params.len());
    for (key, value) in params {
        match value {
            Value::String(v) => out.push(param(key, v)),
            Value::Array(items) => {
                for item in items {
                    let Value::String(v) = item else {
                        return Err(format!(
                            "type assertion error: expected array element to be string but got '{}'",
                            go_type(item)
                        ));
                    };
                    out.push(param(key, v));
                }
            }
            other => {
                return Err(format!(
                    "type assertion error, expected value to be string or array but got '{}'",
                    go_type(other)
                ));
            }
        }
    }
    Ok(out)
}

/// `dynamic_metadata`: an object, as a `google.protobuf.Struct`.
fn dynamic_metadata(d: &Map<String, Value>) -> Result<Option<pb::Struct>, String> {
    match d.get("dynamic_metadata") {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(json_struct(m))),
        Some(other) => Err(format!(
            "type assertion error, expected dynamic_metadata to be of type 'object' but got '{}'",
            go_type(other)
        )),
    }
}

fn json_struct(m: &Map<String, Value>) -> pb::Struct {
    pb::Struct {
        fields: m.iter().map(|(k, v)| (k.clone(), json_value(v))).collect(),
    }
}

fn json_value(v: &Value) -> pb::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(pb::NullValue::NullValue as i32),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(pb::ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(json_struct(m)),
    };
    pb::Value { kind: Some(kind) }
}

/// `body`: a string.
fn response_body(d: &Map<String, Value>) -> Result<String, String> {
    match d.get("body") {
        None => Ok(String::new()),
        Some(Value::String(body)) => Ok(body.clone()),
        Some(other) => Err(format!(
            "type assertion error, expected body to be of type 'string' but got '{}'",
            go_type(other)
        )),
    }
}

/// `http_status`: an integer that is an HTTP status Envoy's `StatusCode` names; 403 when
/// absent.
fn http_status(d: &Map<String, Value>) -> Result<i32, String> {
    let code = match d.get("http_status") {
        None => DEFAULT_DENIED_STATUS,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(code) => code,
            None => {
                let why = if n.is_u64() {
                    "value out of range"
                } else {
                    "invalid syntax"
                };
                return Err(format!(
                    "error converting JSON number to int: strconv.ParseInt: parsing {}: {why}",
                    go_quote(&n.to_string())
                ));
            }
        },
        Some(other) => {
            return Err(format!(
                "type assertion error, expected http_status to be of type 'number' but got '{}'",
                go_type(other)
            ));
        }
    };
    i32::try_from(code)
        .ok()
        .filter(|c| *c != 0 && StatusCode::try_from(*c).is_ok())
        .ok_or_else(|| format!("invalid HTTP status code {code}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::TlsSession;

    fn socket(address: &str, port: u32) -> Address {
        Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: address.to_owned(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A request with only its HTTP part set.
    fn http_request(http: HttpRequest) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    time: None,
                    http: Some(http),
                }),
                ..Default::default()
            }),
        }
    }

    fn post(content_type: &str, body: &str) -> CheckRequest {
        http_request(HttpRequest {
            method: "POST".to_owned(),
            path: "/people".to_owned(),
            headers: headers(&[(":method", "POST"), ("content-type", content_type)]),
            body: body.to_owned(),
            ..Default::default()
        })
    }

    fn parsed(req: &CheckRequest) -> (Value, Value) {
        let input = check_input(req, false).expect("input");
        (
            input["parsed_body"].clone(),
            input["truncated_body"].clone(),
        )
    }

    fn pb_string(s: &str) -> pb::Value {
        pb::Value {
            kind: Some(Kind::StringValue(s.to_owned())),
        }
    }

    fn pb_number(n: f64) -> pb::Value {
        pb::Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }

    #[test]
    fn get_request_maps_every_attribute_as_opa_envoy_does() {
        let jwt = pb::Struct {
            fields: [
                ("email".to_owned(), pb_string("alice@example.com")),
                ("exp".to_owned(), pb_number(1_569_026_124.0)),
                ("score".to_owned(), pb_number(0.5)),
                (
                    "roles".to_owned(),
                    pb::Value {
                        kind: Some(Kind::ListValue(pb::ListValue {
                            values: vec![pb_string("admin"), pb::Value { kind: None }],
                        })),
                    },
                ),
            ]
            .into_iter()
            .collect(),
        };
        let verified = pb::Struct {
            fields: [(
                "verified_jwt".to_owned(),
                pb::Value {
                    kind: Some(Kind::StructValue(jwt)),
                },
            )]
            .into_iter()
            .collect(),
        };
        let req = CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer {
                    address: Some(socket("172.17.0.1", 61402)),
                    principal: "spiffe://cluster.local/ns/default/sa/client".to_owned(),
                    labels: headers(&[("app", "client")]),
                    ..Default::default()
                }),
                destination: Some(Peer {
                    address: Some(socket("172.17.0.6", 8000)),
                    service: "people".to_owned(),
                    ..Default::default()
                }),
                request: Some(Request {
                    time: Some(pb::Timestamp {
                        seconds: 1_605_865_667,
                        nanos: 722_473_000,
                    }),
                    http: Some(HttpRequest {
                        id: "13519049518330544501".to_owned(),
                        method: "GET".to_owned(),
                        headers: headers(&[
                            (":authority", "example.com"),
                            (":method", "GET"),
                            (":path", "/people/al%20ice?lang=en&id=1&id=2&q=a+b"),
                            ("authorization", "Bearer abc"),
                        ]),
                        path: "/people/al%20ice?lang=en&id=1&id=2&q=a+b".to_owned(),
                        host: "example.com".to_owned(),
                        scheme: "https".to_owned(),
                        protocol: "HTTP/1.1".to_owned(),
                        ..Default::default()
                    }),
                }),
                context_extensions: headers(&[("virtual_host", "people")]),
                metadata_context: Some(Metadata {
                    filter_metadata: [("envoy.filters.http.jwt_authn".to_owned(), verified)]
                        .into_iter()
                        .collect(),
                    typed_filter_metadata: HashMap::new(),
                }),
                route_metadata_context: None,
                tls_session: Some(TlsSession {
                    sni: "example.com".to_owned(),
                }),
            }),
        };
        let input = check_input(&req, false).expect("input");
        assert_eq!(
            input,
            json!({
                "attributes": {
                    "source": {
                        "address": {"socketAddress": {"address": "172.17.0.1", "portValue": 61402}},
                        "principal": "spiffe://cluster.local/ns/default/sa/client",
                        "labels": {"app": "client"}
                    },
                    "destination": {
                        "address": {"socketAddress": {"address": "172.17.0.6", "portValue": 8000}},
                        "service": "people"
                    },
                    "request": {
                        "time": "2020-11-20T09:47:47.722473Z",
                        "http": {
                            "id": "13519049518330544501",
                            "method": "GET",
                            "headers": {
                                ":authority": "example.com",
                                ":method": "GET",
                                ":path": "/people/al%20ice?lang=en&id=1&id=2&q=a+b",
                                "authorization": "Bearer abc"
                            },
                            "path": "/people/al%20ice?lang=en&id=1&id=2&q=a+b",
                            "host": "example.com",
                            "scheme": "https",
                            "protocol": "HTTP/1.1"
                        }
                    },
                    "contextExtensions": {"virtual_host": "people"},
                    "metadataContext": {
                        "filterMetadata": {
                            "envoy.filters.http.jwt_authn": {
                                "verified_jwt": {
                                    "email": "alice@example.com",
                                    "exp": 1_569_026_124,
                                    "score": 0.5,
                                    "roles": ["admin", null]
                                }
                            }
                        }
                    },
                    "tlsSession": {"sni": "example.com"}
                },
                "parsed_path": ["people", "al ice"],
                "parsed_query": {"lang": ["en"], "id": ["1", "2"], "q": ["a b"]},
                "parsed_body": null,
                "truncated_body": false,
                "source_principal": "spiffe://cluster.local/ns/default/sa/client",
                "version": {"ext_authz": "v3", "encoding": "protojson"}
            })
        );
    }

    #[test]
    fn empty_and_default_fields_are_left_out() {
        let req = CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer::default()),
                request: Some(Request {
                    time: None,
                    http: Some(HttpRequest::default()),
                }),
                metadata_context: Some(Metadata::default()),
                ..Default::default()
            }),
        };
        let input = check_input(&req, false).expect("input");
        assert_eq!(
            input["attributes"],
            json!({"source": {}, "request": {"http": {}}, "metadataContext": {}})
        );
        assert_eq!(input["parsed_path"], json!([""]));
        assert_eq!(input["parsed_query"], json!({}));

        // No attributes at all: still the version, the parsed path and an empty body.
        let input = check_input(&CheckRequest::default(), false).expect("input");
        assert_eq!(
            input,
            json!({
                "version": {"ext_authz": "v3", "encoding": "protojson"},
                "parsed_path": [""],
                "parsed_query": {},
                "parsed_body": null,
                "truncated_body": false
            })
        );
    }

    #[test]
    fn other_addresses_sizes_raw_bodies_and_typed_metadata() {
        let req = CheckRequest {
            attributes: Some(AttributeContext {
                source: Some(Peer {
                    address: Some(Address {
                        address: Some(address::Address::Pipe(
                            envoy_types::pb::envoy::config::core::v3::Pipe {
                                path: "/run/envoy.sock".to_owned(),
                                mode: 0o600,
                            },
                        )),
                    }),
                    ..Default::default()
                }),
                destination: Some(Peer {
                    address: Some(Address {
                        address: Some(address::Address::SocketAddress(SocketAddress {
                            protocol: socket_address::Protocol::Udp as i32,
                            address: "::1".to_owned(),
                            port_specifier: Some(socket_address::PortSpecifier::NamedPort(
                                "dns".to_owned(),
                            )),
                            ipv4_compat: true,
                            ..Default::default()
                        })),
                    }),
                    ..Default::default()
                }),
                request: Some(Request {
                    time: Some(pb::Timestamp {
                        seconds: 0,
                        nanos: 0,
                    }),
                    http: Some(HttpRequest {
                        size: 7,
                        raw_body: br#"{"a":1}"#.to_vec(),
                        header_map: Some(HeaderMap {
                            headers: vec![HeaderValue {
                                key: "x-raw".to_owned(),
                                value: String::new(),
                                raw_value: b"\xff".to_vec(),
                            }],
                        }),
                        ..Default::default()
                    }),
                }),
                route_metadata_context: Some(Metadata {
                    filter_metadata: HashMap::new(),
                    typed_filter_metadata: [(
                        "typed".to_owned(),
                        pb::Any {
                            type_url: "type.googleapis.com/google.protobuf.Empty".to_owned(),
                            value: vec![1, 2],
                        },
                    )]
                    .into_iter()
                    .collect(),
                }),
                ..Default::default()
            }),
        };
        let input = check_input(&req, false).expect("input");
        assert_eq!(
            input["attributes"],
            json!({
                "source": {"address": {"pipe": {"path": "/run/envoy.sock", "mode": 384}}},
                "destination": {"address": {"socketAddress": {
                    "protocol": "UDP", "address": "::1", "namedPort": "dns", "ipv4Compat": true
                }}},
                "request": {
                    "time": "1970-01-01T00:00:00Z",
                    "http": {
                        "size": 7,
                        "rawBody": "eyJhIjoxfQ==",
                        "headerMap": {"headers": [{"key": "x-raw", "rawValue": "/w=="}]}
                    }
                },
                "routeMetadataContext": {"typedFilterMetadata": {"typed": {
                    "typeUrl": "type.googleapis.com/google.protobuf.Empty", "value": "AQI="
                }}}
            })
        );
    }

    #[test]
    fn timestamps_in_rfc3339() {
        let t = |seconds, nanos| timestamp_json(&pb::Timestamp { seconds, nanos });
        assert_eq!(t(951_868_799, 0), json!("2000-02-29T23:59:59Z"));
        assert_eq!(t(951_868_799, 5_000_000), json!("2000-02-29T23:59:59.005Z"));
        assert_eq!(t(951_868_799, 5_000), json!("2000-02-29T23:59:59.000005Z"));
        assert_eq!(t(951_868_799, 5), json!("2000-02-29T23:59:59.000000005Z"));
        assert_eq!(t(-1, 0), json!("1969-12-31T23:59:59Z"));
        assert_eq!(t(-62_135_596_800, 0), json!("0001-01-01T00:00:00Z"));
        assert_eq!(t(253_402_300_799, 0), json!("9999-12-31T23:59:59Z"));
        // Out of range: the fields, not a failure.
        assert_eq!(
            t(253_402_300_800, 0),
            json!({"seconds": 253_402_300_800_i64})
        );
        assert_eq!(t(1, -1), json!({"seconds": 1, "nanos": -1}));
        assert_eq!(
            t(i64::MIN, i32::MAX),
            json!({"seconds": i64::MIN, "nanos": i32::MAX})
        );
    }

    #[test]
    fn post_json_body_is_parsed() {
        let req = post(
            "application/json",
            r#"{"firstname": "Charlie", "lastname": "Opa"}"#,
        );
        assert_eq!(
            parsed(&req),
            (
                json!({"firstname": "Charlie", "lastname": "Opa"}),
                json!(false)
            )
        );
        // Any JSON value, and `application/json; charset=utf-8` too.
        let req = post("application/json; charset=utf-8", r#"["hello", 42, null]"#);
        assert_eq!(parsed(&req).0, json!(["hello", 42, null]));
        // From raw_body when body is empty (pack_as_bytes).
        let mut req = post("application/json", "");
        if let Some(http) = req
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            http.raw_body = br#"{"a": [1, 2]}"#.to_vec();
        }
        assert_eq!(parsed(&req), (json!({"a": [1, 2]}), json!(false)));
        // Empty: null, not an error.
        assert_eq!(
            parsed(&post("application/json", "")),
            (Value::Null, json!(false))
        );
    }

    #[test]
    fn a_body_that_claims_json_and_is_not_is_an_error() {
        let err =
            check_input(&post("application/json", r#"["foo" : 42}"#), false).expect_err("not JSON");
        assert!(!err.is_empty());
        assert!(check_input(&post("application/json", r#"{"a":1} x"#), false).is_err());
        // Not read when parsing is skipped.
        let input = check_input(&post("application/json", "{"), true).expect("skipped");
        assert!(input.get("parsed_body").is_none());
        assert!(input.get("truncated_body").is_none());
    }

    #[test]
    fn truncated_bodies_are_not_parsed() {
        // Shorter than its content-length.
        let mut req = post("application/json", "true");
        let set_header = |req: &mut CheckRequest, k: &str, v: &str| {
            if let Some(http) = req
                .attributes
                .as_mut()
                .and_then(|a| a.request.as_mut())
                .and_then(|r| r.http.as_mut())
            {
                http.headers.insert(k.to_owned(), v.to_owned());
            }
        };
        set_header(&mut req, "content-length", "1000");
        assert_eq!(parsed(&req), (Value::Null, json!(true)));
        // A content-length of -1 or the body's own length is not truncation.
        set_header(&mut req, "content-length", "-1");
        assert_eq!(parsed(&req), (json!(true), json!(false)));
        set_header(&mut req, "content-length", "4");
        assert_eq!(parsed(&req), (json!(true), json!(false)));
        // A content-length that is not a number fails as Go's strconv does.
        set_header(&mut req, "content-length", "abc");
        assert_eq!(
            check_input(&req, false),
            Err(r#"strconv.ParseInt: parsing "abc": invalid syntax"#.to_owned())
        );
        set_header(&mut req, "content-length", "99999999999999999999");
        assert_eq!(
            check_input(&req, false),
            Err(
                r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#
                    .to_owned()
            )
        );
        // Envoy's partial-body mark wins, whatever the body (even broken JSON).
        let mut req = post("application/json", r#"{"cut": "#);
        set_header(&mut req, "x-envoy-auth-partial-body", "true");
        assert_eq!(parsed(&req), (Value::Null, json!(true)));
        set_header(&mut req, "x-envoy-auth-partial-body", "false");
        assert!(check_input(&req, false).is_err());
        // Forms are checked the same way.
        let mut req = post("application/x-www-form-urlencoded", "a=1");
        set_header(&mut req, "content-length", "10");
        assert_eq!(parsed(&req), (Value::Null, json!(true)));
    }

    #[test]
    fn form_bodies_are_maps_of_lists() {
        let req = post(
            "application/x-www-form-urlencoded",
            "firstname=foo&lastname=bar&lastname=foo+bar%21&flag",
        );
        assert_eq!(
            parsed(&req),
            (
                json!({"firstname": ["foo"], "lastname": ["bar", "foo bar!"], "flag": [""]}),
                json!(false)
            )
        );
        assert_eq!(
            check_input(&post("application/x-www-form-urlencoded", "a=%zz"), false),
            Err(r#"invalid URL escape "%zz""#.to_owned())
        );
        assert_eq!(
            check_input(&post("application/x-www-form-urlencoded", "a=1;b=2"), false),
            Err("invalid semicolon separator in query".to_owned())
        );
    }

    #[test]
    fn multipart_bodies_are_maps_of_lists() {
        // The plugin's own example: LF line ends, a JSON part, text after the close.
        let body = "--foo\nContent-Disposition: form-data; name=\"foo\"\nContent-Type: text/plain\n\nbar\n--foo\nContent-Disposition: form-data; name=\"bar\"\nContent-Type: application/json;\n\n{\"name\": \"bar\"}\n--foo--\n\t\t\t\t";
        let req = post("multipart/form-data; boundary=foo", body);
        assert_eq!(
            parsed(&req),
            (
                json!({"foo": ["bar"], "bar": [{"name": "bar"}]}),
                json!(false)
            )
        );
        // CRLF, a preamble, a repeated name, a quoted boundary, a part without a name.
        let body = "preamble\r\n--b c\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx y\r\nz\r\n--b c\r\ncontent-disposition: form-data; name=a\r\n\r\n\r\n--b c\r\nContent-Disposition: attachment\r\n\r\nignored\r\n--b c--";
        let req = post("multipart/form-data; boundary=\"b c\"", body);
        assert_eq!(parsed(&req), (json!({"a": ["x y\r\nz", ""]}), json!(false)));
        // No parts; a part whose body is empty up to the closing boundary.
        let req = post("multipart/form-data; boundary=foo", "--foo--");
        assert_eq!(parsed(&req), (json!({}), json!(false)));
        let body = "--foo\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--foo--\r\n";
        let req = post("multipart/form-data; boundary=foo", body);
        assert_eq!(parsed(&req), (json!({"a": [""]}), json!(false)));
        // No boundary parameter: not parsed.
        assert_eq!(
            parsed(&post("multipart/form-data", "--x")),
            (Value::Null, json!(false))
        );
        // Broken bodies fail as Go's reader does.
        let cut = "--foo\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end";
        assert_eq!(
            check_input(&post("multipart/form-data; boundary=foo", cut), false),
            Err("unexpected EOF".to_owned())
        );
        assert_eq!(
            check_input(
                &post("multipart/form-data; boundary=foo", "no parts"),
                false
            ),
            Err("multipart: NextPart: EOF".to_owned())
        );
        assert_eq!(
            check_input(&post("multipart/form-data; boundary=\"foo", "x"), false),
            Err("mime: invalid media parameter".to_owned())
        );
        let bad_json = "--foo\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: application/json\r\n\r\n{\r\n--foo--\r\n";
        assert!(check_input(&post("multipart/form-data; boundary=foo", bad_json), false).is_err());
    }

    #[test]
    fn other_content_types_are_not_parsed() {
        for content_type in ["text/plain", "application/grpc", "Application/JSON"] {
            assert_eq!(
                parsed(&post(content_type, "{\"a\": 1}")),
                (Value::Null, json!(false)),
                "{content_type}"
            );
        }
        let mut req = post("text/plain", "x");
        if let Some(http) = req
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            http.headers.clear();
        }
        assert_eq!(parsed(&req), (Value::Null, json!(false)));
    }

    #[test]
    fn paths_are_decoded_then_split() {
        let path_of = |path: &str| {
            check_input(
                &http_request(HttpRequest {
                    path: path.to_owned(),
                    ..Default::default()
                }),
                true,
            )
        };
        let parsed_path = |path: &str| path_of(path).expect("path")["parsed_path"].clone();
        assert_eq!(parsed_path("/my/test/path"), json!(["my", "test", "path"]));
        assert_eq!(
            parsed_path("%2Fmy%2Ftest%2Fpath?a=1"),
            json!(["my", "test", "path"])
        );
        assert_eq!(parsed_path("//a//b/"), json!(["a", "", "b", ""]));
        assert_eq!(parsed_path("/"), json!([""]));
        assert_eq!(parsed_path("/a+b"), json!(["a+b"]));
        let input = path_of("/p?a=1&a=new%0aline&&b=&c").expect("query");
        assert_eq!(
            input["parsed_query"],
            json!({"a": ["1", "new\nline"], "b": [""], "c": [""]})
        );
        assert_eq!(
            path_of("/bad%zzpath"),
            Err(r#"invalid URL escape "%zz""#.to_owned())
        );
        assert_eq!(
            path_of("/p%4"),
            Err(r#"invalid URL escape "%4""#.to_owned())
        );
        assert_eq!(
            path_of("/p?a=1;b=2"),
            Err("invalid semicolon separator in query".to_owned())
        );
        assert_eq!(
            path_of("/p?a=%g1"),
            Err(r#"invalid URL escape "%g1""#.to_owned())
        );
    }

    #[test]
    fn undefined_is_an_error() {
        assert_eq!(check_response(None), Err("undefined decision".to_owned()));
    }

    #[test]
    fn boolean_decisions_set_only_the_status() {
        let outcome = check_response(Some(&json!(true))).expect("allowed");
        assert!(outcome.allowed);
        assert_eq!(
            outcome.response,
            CheckResponse {
                status: Some(rpc_status(0, "")),
                ..Default::default()
            }
        );
        let outcome = check_response(Some(&json!(false))).expect("denied");
        assert!(!outcome.allowed);
        assert_eq!(
            outcome.response,
            CheckResponse {
                status: Some(rpc_status(7, "")),
                ..Default::default()
            }
        );
    }

    #[test]
    fn allowed_object_fills_the_ok_response() {
        let decision = json!({
            "allowed": true,
            "headers": {"x-ext-auth-allow": "yes", "x-multi": ["a", "b"]},
            "request_headers_to_remove": ["one-auth-header", "another-auth-header"],
            "response_headers_to_add": [{"x-foo": "bar"}, {"x-foo": "baz"}],
            "query_parameters_to_set": {"user-role": "admin", "tags": ["main", "auth"]},
            "query_parameters_to_remove": ["token"],
            "dynamic_metadata": {"foo": "bar", "n": 2, "nested": {"list": [true, null]}},
            // Read only on denial: not checked here.
            "http_status": "not a number",
            "body": 12
        });
        let outcome = check_response(Some(&decision)).expect("allowed");
        assert!(outcome.allowed);
        let response = outcome.response;
        assert_eq!(response.status, Some(rpc_status(0, "")));
        let Some(HttpResponse::OkResponse(ok)) = response.http_response else {
            panic!("not an OK response");
        };
        assert_eq!(
            ok.headers,
            vec![
                header_option("x-ext-auth-allow", "yes"),
                header_option("x-multi", "a"),
                header_option("x-multi", "b"),
            ]
        );
        assert_eq!(
            ok.headers_to_remove,
            ["one-auth-header", "another-auth-header"]
        );
        assert_eq!(
            ok.response_headers_to_add,
            vec![header_option("x-foo", "bar"), header_option("x-foo", "baz")]
        );
        let param = |k: &str, v: &str| QueryParameter {
            key: k.to_owned(),
            value: v.to_owned(),
        };
        let mut set = ok.query_parameters_to_set.clone();
        set.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(
            set,
            vec![
                param("tags", "main"),
                param("tags", "auth"),
                param("user-role", "admin")
            ]
        );
        assert_eq!(ok.query_parameters_to_remove, ["token"]);
        let metadata = response.dynamic_metadata.expect("dynamic metadata");
        assert_eq!(metadata.fields.get("foo"), Some(&pb_string("bar")));
        assert_eq!(metadata.fields.get("n"), Some(&pb_number(2.0)));
        assert_eq!(
            struct_json(&metadata),
            json!({"foo": "bar", "n": 2, "nested": {"list": [true, null]}})
        );
    }

    #[test]
    fn denied_object_fills_the_denied_response() {
        let decision = json!({
            "allowed": false,
            "http_status": 401,
            "body": "Authentication Failed",
            "headers": [{"www-authenticate": "Bearer"}],
            // Read only when allowed: not checked here.
            "request_headers_to_remove": "not a list",
            "query_parameters_to_set": 1
        });
        let outcome = check_response(Some(&decision)).expect("denied");
        assert!(!outcome.allowed);
        assert_eq!(
            outcome.response,
            CheckResponse {
                status: Some(rpc_status(7, "")),
                dynamic_metadata: None,
                http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: 401 }),
                    headers: vec![header_option("www-authenticate", "Bearer")],
                    body: "Authentication Failed".to_owned(),
                })),
            }
        );
        // No status: 403 Forbidden, empty body.
        let outcome = check_response(Some(&json!({"allowed": false}))).expect("denied");
        assert_eq!(
            outcome.response.http_response,
            Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: 403 }),
                headers: Vec::new(),
                body: String::new(),
            }))
        );
    }

    #[test]
    fn wrong_types_fail_with_the_plugin_messages() {
        let err = |decision: Value| check_response(Some(&decision)).expect_err("wrong type");
        assert_eq!(
            err(json!({"allowed": "yes"})),
            "failed to get response status: type assertion error, expected allowed to be of type 'boolean' but got 'string'"
        );
        assert_eq!(
            err(json!({"headers": {}})),
            r#"failed to get response status: unable to determine evaluation result due to missing "allowed" key"#
        );
        assert_eq!(
            err(json!("allow")),
            "failed to get response status: illegal value for policy evaluation result: string"
        );
        assert_eq!(
            err(json!(null)),
            "failed to get response status: illegal value for policy evaluation result: <nil>"
        );
        assert_eq!(
            err(json!([true])),
            "failed to get response status: illegal value for policy evaluation result: []interface {}"
        );
        assert_eq!(
            err(json!({"allowed": false, "http_status": "401"})),
            "failed to get response http status: type assertion error, expected http_status to be of type 'number' but got 'string'"
        );
        assert_eq!(
            err(json!({"allowed": false, "http_status": 999})),
            "failed to get response http status: invalid HTTP status code 999"
        );
        assert_eq!(
            err(json!({"allowed": false, "http_status": 0})),
            "failed to get response http status: invalid HTTP status code 0"
        );
        assert_eq!(
            err(json!({"allowed": false, "http_status": 418})),
            "failed to get response http status: invalid HTTP status code 418"
        );
        assert_eq!(
            err(json!({"allowed": false, "http_status": 403.5})),
            r#"failed to get response http status: error converting JSON number to int: strconv.ParseInt: parsing "403.5": invalid syntax"#
        );
        assert_eq!(
            err(json!({"allowed": false, "http_status": 4_294_967_699_i64})),
            "failed to get response http status: invalid HTTP status code 4294967699"
        );
        assert_eq!(
            err(json!({"allowed": false, "body": 123})),
            "failed to get response body: type assertion error, expected body to be of type 'string' but got 'json.Number'"
        );
        assert_eq!(
            err(json!({"allowed": true, "headers": "x-a: b"})),
            "failed to get response headers: type assertion error, expected headers to be of type 'object' but got 'string'"
        );
        assert_eq!(
            err(json!({"allowed": false, "headers": [{"a": "b"}, "c"]})),
            "failed to get response headers: type assertion error, expected headers to be of type 'object' but got 'string'"
        );
        assert_eq!(
            err(json!({"allowed": true, "headers": {"x-a": 1}})),
            "failed to get response headers: type assertion error for header 'x-a'"
        );
        assert_eq!(
            err(json!({"allowed": true, "headers": {"x-a": ["b", 1]}})),
            "failed to get response headers: invalid value type json.Number for header 'x-a'"
        );
        assert_eq!(
            err(json!({"allowed": true, "dynamic_metadata": ["a"]})),
            "failed to get dynamic metadata: type assertion error, expected dynamic_metadata to be of type 'object' but got '[]interface {}'"
        );
        assert_eq!(
            err(json!({"allowed": true, "request_headers_to_remove": "x-a"})),
            "failed to get request headers to remove: type assertion error, expected request_headers_to_remove to be of type '[]string' but got 'string'"
        );
        assert_eq!(
            err(json!({"allowed": true, "request_headers_to_remove": ["x-a", true]})),
            "failed to get request headers to remove: type assertion error, expected request_headers_to_remove value to be of type 'string' but got 'bool'"
        );
        assert_eq!(
            err(json!({"allowed": true, "response_headers_to_add": 1})),
            "failed to get response headers to send to client: type assertion error, expected headers to be of type 'object' but got 'json.Number'"
        );
        assert_eq!(
            err(json!({"allowed": true, "query_parameters_to_remove": {"a": 1}})),
            "failed to get request query parameters to remove: type assertion error, expected query_parameters_to_remove to be of type '[]string' but got 'map[string]interface {}'"
        );
        assert_eq!(
            err(json!({"allowed": true, "query_parameters_to_set": ["a"]})),
            "failed to get request query parameters to set: type assertion error, expected query_parameters_to_set to be a map but got '[]interface {}'"
        );
        assert_eq!(
            err(json!({"allowed": true, "query_parameters_to_set": {"a": 1}})),
            "failed to get request query parameters to set: type assertion error, expected value to be string or array but got 'json.Number'"
        );
        assert_eq!(
            err(json!({"allowed": true, "query_parameters_to_set": {"a": [null]}})),
            "failed to get request query parameters to set: type assertion error: expected array element to be string but got '<nil>'"
        );
    }

    #[test]
    fn dry_run_answers_ok_and_keeps_the_decision() {
        let decision = json!({
            "allowed": false,
            "http_status": 401,
            "body": "no",
            "dynamic_metadata": {"reason": "token"}
        });
        let outcome = dry_run(check_response(Some(&decision)).expect("denied"));
        assert!(!outcome.allowed);
        assert_eq!(outcome.response.status, Some(rpc_status(0, "")));
        assert_eq!(
            outcome.response.http_response,
            Some(HttpResponse::OkResponse(ok_http_response(
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new(),
                Vec::new()
            )))
        );
        assert_eq!(
            outcome.response.dynamic_metadata.map(|m| struct_json(&m)),
            Some(json!({"reason": "token"}))
        );
        // An allowed answer is untouched.
        let allowed = check_response(Some(&json!({"allowed": true, "headers": {"a": "b"}})))
            .expect("allowed");
        assert_eq!(dry_run(allowed.clone()), allowed);
        // So is a denied boolean, which becomes OK.
        let outcome = dry_run(check_response(Some(&json!(false))).expect("denied"));
        assert!(!outcome.allowed);
        assert_eq!(outcome.response.status, Some(rpc_status(0, "")));
    }

    #[test]
    fn decision_id_goes_into_the_dynamic_metadata() {
        let mut response = check_response(Some(&json!(true)))
            .expect("allowed")
            .response;
        with_decision_id(&mut response, "c0ffee");
        assert_eq!(
            response.dynamic_metadata.as_ref().map(struct_json),
            Some(json!({"decision_id": "c0ffee"}))
        );
        let mut response = check_response(Some(
            &json!({"allowed": true, "dynamic_metadata": {"a": 1}}),
        ))
        .expect("allowed")
        .response;
        with_decision_id(&mut response, "c0ffee");
        assert_eq!(
            response.dynamic_metadata.as_ref().map(struct_json),
            Some(json!({"a": 1, "decision_id": "c0ffee"}))
        );
    }

    #[test]
    fn unreadable_requests_get_a_400() {
        let message = check_input(&post("application/json", "{"), false).expect_err("bad");
        let response = request_parse_error_response(&message);
        let text = format!("request_parse_error: {message}");
        assert_eq!(response.status, Some(rpc_status(7, &text)));
        assert_eq!(
            response.http_response,
            Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus { code: 400 }),
                headers: Vec::new(),
                body: text,
            }))
        );
        assert_eq!(response.dynamic_metadata, None);
    }

    #[test]
    fn struct_values_convert_both_ways() {
        assert_eq!(number_json(1.0), json!(1));
        assert_eq!(number_json(-0.0), json!(0));
        assert_eq!(number_json(1.5), json!(1.5));
        assert_eq!(number_json(1e300), json!(1e300));
        assert_eq!(number_json(f64::NAN), json!("NaN"));
        assert_eq!(number_json(f64::INFINITY), json!("Infinity"));
        assert_eq!(number_json(f64::NEG_INFINITY), json!("-Infinity"));
        let value = json!({"a": [1, "b", null, {"c": false}], "d": 2.5});
        let Value::Object(m) = &value else {
            unreachable!()
        };
        assert_eq!(struct_json(&json_struct(m)), value);
    }

    #[test]
    fn media_types_parse_as_go_does() {
        let (kind, params) =
            parse_media_type("Multipart/Form-Data; Boundary=\"a\\\"b\"; charset=utf-8;")
                .expect("ok");
        assert_eq!(kind, "multipart/form-data");
        assert_eq!(params.get("boundary").map(String::as_str), Some("a\"b"));
        assert_eq!(params.get("charset").map(String::as_str), Some("utf-8"));
        assert_eq!(parse_media_type(""), Err("mime: no media type".to_owned()));
        assert_eq!(
            parse_media_type("text/"),
            Err("mime: expected token after slash".to_owned())
        );
        assert_eq!(
            parse_media_type("a; b=1; b=2"),
            Err("mime: duplicate parameter name".to_owned())
        );
        assert_eq!(
            parse_media_type("a; b"),
            Err("mime: invalid media parameter".to_owned())
        );
    }
}
