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

/// 404 for routes that do not exist.
pub async fn not_found() -> Response {
    opa_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
        vec![],
    )
}
