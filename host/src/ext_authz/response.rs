//! The policy's decision as the `CheckResponse` for Envoy, as OPA-Envoy reads it
//! (`internal.check` with `envoyauth.EvalResult`), and the plugin's last touches: dry-run,
//! the decision id, and the answer to a request that cannot be read. Failures carry the
//! plugin's own messages, Go type names (`%T`) and `strconv` wording included.

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption, QueryParameter};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::{HttpStatus, StatusCode};
use envoy_types::pb::google::protobuf::{self as pb, value::Kind};
use envoy_types::pb::google::rpc::Status;
use serde_json::{Map, Value};

/// `google.rpc.Code.OK`.
const GRPC_OK: i32 = 0;
/// `google.rpc.Code.PERMISSION_DENIED`.
const GRPC_PERMISSION_DENIED: i32 = 7;
/// The HTTP status of a denial whose decision names none (403 Forbidden).
const DEFAULT_DENIED_STATUS: i64 = 403;

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

/// OPA-Envoy's answer to a request [`super::check_input`] refused: `PERMISSION_DENIED` with the
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
                    "error converting JSON number to int: strconv.ParseInt: parsing {:?}: {why}",
                    n.to_string()
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
    use crate::ext_authz::input::struct_json;
    use crate::ext_authz::test_values::{pb_number, pb_string};
    use serde_json::json;

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
        let message = "EOF while parsing an object at line 1 column 1";
        let response = request_parse_error_response(message);
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
    fn decisions_convert_to_structs() {
        let value = json!({"a": [1, "b", null, {"c": false}], "d": 2.5});
        let Value::Object(m) = &value else {
            unreachable!()
        };
        assert_eq!(struct_json(&json_struct(m)), value);
    }
}
