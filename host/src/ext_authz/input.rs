//! The policy's `input` for a `CheckRequest`, as OPA-Envoy builds it
//! (`envoyauth.RequestToInput`): `attributes` (the request in the protobuf JSON mapping:
//! lowerCamelCase names, zero values left out, bytes in base64, `request.time` in RFC 3339),
//! `version`, `parsed_path`, `parsed_query`, the body fields of [`super::body`], and
//! `source_principal` when the source peer has one.

use super::body;
use chrono::{DateTime, SecondsFormat};
use envoy_types::pb::envoy::config::core::v3::{
    Address, HeaderMap, Metadata, SocketAddress, address, envoy_internal_address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use envoy_types::pb::google::protobuf::{self as pb, value::Kind};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The policy's `input` for `req`. With `skip_body_parse` (`skip-request-body-parse:
/// true`), `parsed_body` and `truncated_body` are left out. `Err` carries the message for
/// a request that cannot be read (a query or form with a `;`, a body that claims JSON or
/// multipart and is not one, a `content-length` that is not a number, ...), which the
/// plugin answers with [`super::request_parse_error_response`].
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

    let (raw_path, raw_query) = path.split_once('?').unwrap_or((path, ""));
    input.insert("parsed_path".to_owned(), parsed_path(raw_path));
    input.insert(
        "parsed_query".to_owned(),
        Value::Object(form_values(raw_query.as_bytes())?),
    );

    if !skip_body_parse {
        let (parsed_body, truncated) = body::parsed_body(headers, body, raw_body)?;
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

/// `parsed_path`: the path (before `?`) percent-decoded, leading slashes trimmed, split on
/// `/` (so `%2F` splits too, and an empty path is `[""]`). Decoded bytes that are not
/// UTF-8 become U+FFFD; a `%` that starts no escape stays as it is.
fn parsed_path(raw_path: &str) -> Value {
    let decoded = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    Value::Array(
        decoded
            .trim_start_matches('/')
            .split('/')
            .map(Value::from)
            .collect(),
    )
}

/// A query string or form body (`application/x-www-form-urlencoded`) as a map of value
/// lists in order: `&`-separated `key=value` pairs, `+` a space, escapes decoded, bytes
/// that are not UTF-8 as U+FFFD, a `%` that starts no escape kept as it is. A `;` is
/// refused, as Go's `url.ParseQuery` refuses it ("invalid semicolon separator in query").
pub(super) fn form_values(encoded: &[u8]) -> Result<Map<String, Value>, String> {
    if encoded.contains(&b';') {
        return Err("invalid semicolon separator in query".to_owned());
    }
    let mut values = Map::new();
    for (key, value) in form_urlencoded::parse(encoded) {
        if let Value::Array(list) = values
            .entry(key.into_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            list.push(Value::String(value.into_owned()));
        }
    }
    Ok(values)
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
pub(super) fn struct_json(s: &pb::Struct) -> Value {
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
    const SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
    let time = u32::try_from(t.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000 && SECONDS.contains(&t.seconds))
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos));
    if let Some(time) = time {
        return Value::String(time.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
    let mut m = Map::new();
    if t.seconds != 0 {
        m.insert("seconds".to_owned(), Value::from(t.seconds));
    }
    if t.nanos != 0 {
        m.insert("nanos".to_owned(), Value::from(t.nanos));
    }
    Value::Object(m)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext_authz::test_values::{pb_number, pb_string};
    use envoy_types::pb::envoy::config::core::v3::HeaderValue;
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
        assert_eq!(t(0, 1_000_000_000), json!({"nanos": 1_000_000_000}));
        assert_eq!(
            t(i64::MIN, i32::MAX),
            json!({"seconds": i64::MIN, "nanos": i32::MAX})
        );
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
        assert_eq!(parsed_path("/caf%C3%A9/%FF"), json!(["café", "\u{fffd}"]));
        // A `%` that starts no escape stays as it is.
        assert_eq!(parsed_path("/bad%zzpath"), json!(["bad%zzpath"]));
        assert_eq!(parsed_path("/p%4"), json!(["p%4"]));
    }

    #[test]
    fn queries_are_maps_of_lists() {
        let query_of = |path: &str| {
            check_input(
                &http_request(HttpRequest {
                    path: path.to_owned(),
                    ..Default::default()
                }),
                true,
            )
            .map(|input| input["parsed_query"].clone())
        };
        assert_eq!(
            query_of("/p?a=1&a=new%0aline&&b=&c&q=a+b%2Bc&=v"),
            Ok(json!({"a": ["1", "new\nline"], "b": [""], "c": [""], "q": ["a b+c"], "": ["v"]}))
        );
        assert_eq!(query_of("/p"), Ok(json!({})));
        assert_eq!(query_of("/p?"), Ok(json!({})));
        // A `%` that starts no escape stays as it is.
        assert_eq!(
            query_of("/p?a=%g1&b%=%4"),
            Ok(json!({"a": ["%g1"], "b%": ["%4"]}))
        );
        // A `;` is refused, escaped or not elsewhere.
        assert_eq!(
            query_of("/p?a=1;b=2"),
            Err("invalid semicolon separator in query".to_owned())
        );
        assert_eq!(query_of("/p?a=1%3Bb"), Ok(json!({"a": ["1;b"]})));
    }

    #[test]
    fn body_fields_follow_the_skip_flag() {
        let mut req = http_request(HttpRequest {
            method: "POST".to_owned(),
            headers: headers(&[("content-type", "application/json")]),
            body: r#"{"a": 1}"#.to_owned(),
            ..Default::default()
        });
        let input = check_input(&req, false).expect("input");
        assert_eq!(input["parsed_body"], json!({"a": 1}));
        assert_eq!(input["truncated_body"], json!(false));
        // Not read when parsing is skipped, not even a body that does not parse.
        if let Some(http) = req
            .attributes
            .as_mut()
            .and_then(|a| a.request.as_mut())
            .and_then(|r| r.http.as_mut())
        {
            http.body = "{".to_owned();
        }
        assert!(check_input(&req, false).is_err());
        let input = check_input(&req, true).expect("skipped");
        assert!(input.get("parsed_body").is_none());
        assert!(input.get("truncated_body").is_none());
    }

    #[test]
    fn struct_numbers_print_as_go_prints_them() {
        assert_eq!(number_json(1.0), json!(1));
        assert_eq!(number_json(-0.0), json!(0));
        assert_eq!(number_json(1.5), json!(1.5));
        assert_eq!(number_json(1e300), json!(1e300));
        assert_eq!(number_json(f64::NAN), json!("NaN"));
        assert_eq!(number_json(f64::INFINITY), json!("Infinity"));
        assert_eq!(number_json(f64::NEG_INFINITY), json!("-Infinity"));
    }
}
