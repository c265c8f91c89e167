//! OPA's authorization of API requests (`--authorization=basic`): before any route, the
//! rule `default_authorization_decision` (`/system/authz/allow`) of the loaded bundle gets
//! `{identity?, method, path, params, headers, body?, client_certificates?}` and the request
//! goes on only when the result is `true` (or `{"allowed": true}`); otherwise 401. The
//! identity comes from `--authentication`: the bearer token (`token`) or the verified client
//! certificate's subject (`tls`). As in OPA, no route is exempt, and the decisions are not
//! decision-logged (they are counted in the metrics like any evaluation).

use super::respond::opa_error;
use super::tls::PeerCertificates;
use super::{AppState, resolve};
use crate::config::Authentication;
use crate::decide::DecisionRequest;
use crate::evaluator::EvalError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// OPA ignores `Authorization` values longer than this.
const MAX_TOKEN_HEADER: usize = 8192;

/// The middleware: asks the authorization policy about `req`, then runs it or answers 401.
pub async fn check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    // The body was read whole (within its limit) by the body deadline ahead of this.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return opa_error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                &format!("cannot read the request body: {e}"),
                vec![],
            );
        }
    };
    let input = match input(&state, &parts, &bytes) {
        Ok(input) => input,
        Err(message) => {
            return opa_error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                &message,
                vec![],
            );
        }
    };
    let rule = &state.config.default_authorization_decision;
    let mut probe = DecisionRequest::new(rule, Some(&input));
    // Every request's input differs (headers, path): caching them would only evict
    // decisions.
    probe.bypass_cache = true;
    // A miss evaluates under `block_in_place`, admitted like any evaluation.
    let decision = resolve(&state.service, Some(&state.admission), &probe, None);
    let verdict = match decision {
        Ok(d) => match d.result.as_deref().map(serde_json::from_str::<Value>) {
            None => Err(internal("authorization policy missing or undefined")),
            Some(Err(e)) => Err(internal(&format!(
                "the authorization policy's result is not JSON: {e}"
            ))),
            Some(Ok(result)) => verdict(&result),
        },
        Err(e @ EvalError::Overloaded { .. }) => {
            Err(super::respond::eval_error(&e).unwrap_or_else(|| internal(&e.to_string())))
        }
        Err(EvalError::Policy(crate::PolicyError::UnknownEntrypoint(_))) => {
            Err(internal("authorization policy missing or undefined"))
        }
        Err(e) => Err(internal(&e.to_string())),
    };
    match verdict {
        Ok(()) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(response) => {
            tracing::debug!(method = %parts.method, path = %parts.uri.path(), "request rejected by the authorization policy");
            response
        }
    }
}

/// `true`, or an object whose `allowed` is `true`, lets the request through; an object
/// without `allowed` is a policy error; anything else is 401 (with the policy's `reason`).
fn verdict(result: &Value) -> Result<(), Response> {
    let denied = |reason: Option<&str>| {
        opa_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            reason.unwrap_or("request rejected by administrative policy"),
            vec![],
        )
    };
    match result {
        Value::Bool(true) => Ok(()),
        Value::Object(o) => match o.get("allowed") {
            Some(Value::Bool(true)) => Ok(()),
            Some(_) => Err(denied(o.get("reason").and_then(Value::as_str))),
            None => Err(internal(
                "authorization policy document missing or undefined",
            )),
        },
        _ => Err(denied(None)),
    }
}

fn internal(message: &str) -> Response {
    opa_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        message,
        vec![],
    )
}

/// The authorization policy's input for a request.
fn input(state: &AppState, parts: &Parts, body: &[u8]) -> Result<Value, String> {
    let mut input = Map::new();
    if let Some(identity) = identity(state.config.server.authentication, parts) {
        input.insert("identity".into(), Value::String(identity));
    }
    input.insert(
        "method".into(),
        Value::String(parts.method.as_str().to_uppercase()),
    );
    input.insert("path".into(), path(parts.uri.path())?);
    input.insert("params".into(), params(parts.uri.query()));
    input.insert("headers".into(), headers(&parts.headers));
    if carries_input(&parts.method, parts.uri.path()) && !body.iter().all(u8::is_ascii_whitespace) {
        let parsed: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
        input.insert("body".into(), parsed);
    }
    if state.config.server.authentication == Authentication::Tls
        && let Some(PeerCertificates(chain)) = parts.extensions.get::<PeerCertificates>()
    {
        let certs = chain
            .iter()
            .map(|c| super::client_cert::to_json(c))
            .collect();
        input.insert("client_certificates".into(), Value::Array(certs));
    }
    Ok(Value::Object(input))
}

/// Who the client is: the bearer token, or the client certificate's subject.
fn identity(authentication: Authentication, parts: &Parts) -> Option<String> {
    match authentication {
        Authentication::Off => None,
        Authentication::Token => bearer(parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?),
        Authentication::Tls => {
            let PeerCertificates(chain) = parts.extensions.get::<PeerCertificates>()?;
            super::client_cert::subject(chain.first()?)
        }
    }
}

/// OPA's `^Bearer\s+(\S+)$` (the word `Bearer` is case-sensitive).
fn bearer(value: &str) -> Option<String> {
    if value.len() > MAX_TOKEN_HEADER {
        return None;
    }
    let rest = value.strip_prefix("Bearer")?;
    let token = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let separated = token.len() < rest.len();
    (separated && !token.is_empty() && !token.contains(|c: char| c.is_ascii_whitespace()))
        .then(|| token.to_string())
}

/// The path's segments, percent-decoded; `/` is `[""]`.
fn path(raw: &str) -> Result<Value, String> {
    raw.trim_matches('/')
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .map(|s| Value::String(s.into_owned()))
                .map_err(|_| format!("invalid path escape in `{segment}`"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// The query string as `{name: [values]}`.
fn params(query: Option<&str>) -> Value {
    let mut out: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let values = out.entry(k.into_owned()).or_insert_with(|| json!([]));
        if let Value::Array(a) = values {
            a.push(Value::String(v.into_owned()));
        }
    }
    Value::Object(out)
}

/// The headers as `{Canonical-Name: [values]}`, without `Host` (as Go's server gives them).
fn headers(headers: &HeaderMap) -> Value {
    let mut out: Map<String, Value> = Map::new();
    for (name, value) in headers {
        if name == header::HOST {
            continue;
        }
        let values = out
            .entry(canonical(name.as_str()))
            .or_insert_with(|| json!([]));
        if let Value::Array(a) = values {
            a.push(Value::String(
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
    }
    Value::Object(out)
}

/// Go's canonical header key: the first letter and each letter after `-` upper-cased.
fn canonical(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// OPA hands the parsed body to the policy for the routes whose body is an input.
fn carries_input(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && (path == "/" || path.starts_with("/v0/data") || path.starts_with("/v1/data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_as_opa_reads_them() {
        assert_eq!(bearer("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(bearer("Bearer \t abc").as_deref(), Some("abc"));
        assert_eq!(bearer("bearer abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
        assert_eq!(bearer("Bearer a b"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer(&format!("Bearer {}", "x".repeat(9000))), None);
    }

    #[test]
    fn path_params_and_headers_in_opa_shapes() {
        assert_eq!(path("/").unwrap(), json!([""]));
        assert_eq!(
            path("/v1/data/a%20b/c").unwrap(),
            json!(["v1", "data", "a b", "c"])
        );
        assert!(path("/v1/%ff").is_err());
        assert_eq!(
            params(Some("a=1&a=2&b=x%20y")),
            json!({"a": ["1", "2"], "b": ["x y"]})
        );
        assert_eq!(params(None), json!({}));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        h.append("x-forwarded-for", "5.6.7.8".parse().unwrap());
        h.insert("host", "example".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        assert_eq!(
            headers(&h),
            json!({"X-Forwarded-For": ["1.2.3.4", "5.6.7.8"], "Content-Type": ["application/json"]})
        );
    }

    #[test]
    fn verdicts() {
        assert!(verdict(&json!(true)).is_ok());
        assert!(verdict(&json!({"allowed": true})).is_ok());
        assert_eq!(verdict(&json!(false)).unwrap_err().status(), 401);
        assert_eq!(verdict(&json!("yes")).unwrap_err().status(), 401);
        assert_eq!(
            verdict(&json!({"allowed": false, "reason": "no"}))
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(verdict(&json!({"x": 1})).unwrap_err().status(), 500);
    }
}
