//! Response shapes: OPA's error format, raw-JSON result bodies, errors from decisions.

use crate::EvalError;
use crate::PolicyError;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A JSON body from already-serialized text.
pub fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// OPA's error shape: `{"code", "message", "errors": [{code, message, location}]}`.
pub fn opa_error(
    status: StatusCode,
    code: &str,
    message: &str,
    errors: Vec<serde_json::Value>,
) -> Response {
    let mut body = json!({"code": code, "message": message});
    if !errors.is_empty() {
        body["errors"] = serde_json::Value::Array(errors);
    }
    json_text(status, body.to_string())
}

/// 400 for a body that is not JSON (or too deeply nested).
pub fn bad_json(err: &serde_json::Error) -> Response {
    opa_error(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        &format!("body is not valid JSON: {err}"),
        vec![],
    )
}

/// Reads a request body and parses it as JSON, answering 413/400 in OPA's shape when it is
/// too large, unreadable or malformed.
pub fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T, Response> {
    let body = body.map_err(body_rejected)?;
    serde_json::from_slice(&body).map_err(|e| bad_json(&e))
}

/// Maps a rejected body (too large, unreadable) to OPA's shape.
pub fn body_rejected(err: axum::extract::rejection::BytesRejection) -> Response {
    let status = err.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        opa_error(
            status,
            "request_too_large",
            "request body exceeds the size limit",
            vec![],
        )
    } else {
        opa_error(status, "invalid_parameter", &err.body_text(), vec![])
    }
}

/// Maps a decision error to a status and OPA's error shape. `None` means "undefined"
/// (an unknown path answers 200 without a result, as OPA does).
pub fn eval_error(err: &EvalError) -> Option<Response> {
    if let EvalError::Overloaded { .. } = err {
        return Some(overloaded(opa_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_overloaded",
            &err.to_string(),
            vec![],
        )));
    }
    let (status, code, detail) = match err {
        EvalError::Policy(PolicyError::UnknownEntrypoint(_)) => return None,
        EvalError::Policy(PolicyError::InvalidInput(m)) => {
            (StatusCode::BAD_REQUEST, "invalid_parameter", m.clone())
        }
        EvalError::InputRefused(m) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            m.clone(),
        ),
        EvalError::Policy(PolicyError::Compile { message, .. }) => (
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            message.clone(),
        ),
        other => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            other.to_string(),
        ),
    };
    let sub_code = match err {
        EvalError::Policy(PolicyError::Evaluation(m)) if m.contains("conflict") => {
            "eval_conflict_error"
        }
        EvalError::Policy(PolicyError::Evaluation(_)) => "eval_builtin_error",
        EvalError::Policy(PolicyError::Compile { .. }) => "rego_parse_error",
        EvalError::Policy(PolicyError::LimitExceeded(_))
        | EvalError::Deadline { .. }
        | EvalError::MemoryCap { .. }
        | EvalError::StackOverflow => "eval_cancel_error",
        _ => err.kind(),
    };
    let location = match err {
        EvalError::Policy(PolicyError::Compile {
            location: Some(l), ..
        }) => {
            json!({"file": l.file, "row": l.row, "col": l.col})
        }
        _ => serde_json::Value::Null,
    };
    let mut e = json!({"code": sub_code, "message": detail});
    if !location.is_null() {
        e["location"] = location;
    }
    Some(opa_error(status, code, &detail, vec![e]))
}

/// `response` with `Retry-After`, for an evaluation the server shed.
pub fn overloaded(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        super::admission::RETRY_AFTER_SECONDS.into(),
    );
    response
}

/// 405 for a method a route does not have, with a JSON body (clients parse every error).
pub async fn method_not_allowed() -> Response {
    opa_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
        vec![],
    )
}

/// OPA's path rules ahead of routing: a path ending in `/` is redirected (301) to the path
/// without it, as OPA does (clients rely on it: `GET /v1/policies/`), and `HEAD` is 405.
pub async fn opa_paths(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if req.method() == axum::http::Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED).into_response();
    }
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let target = path.trim_end_matches('/');
        let target = if target.is_empty() { "/" } else { target };
        return (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, target.to_string())],
        )
            .into_response();
    }
    next.run(req).await
}

/// 404 for routes that do not exist.
pub async fn not_found() -> Response {
    opa_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
        vec![],
    )
}
