//! The OpenID AuthZEN Authorization API 1.0 over HTTP: `POST /access/v1/evaluation`,
//! `/access/v1/evaluations`, `/access/v1/search/{subject,resource,action}` and
//! `GET /.well-known/authzen-configuration`. Every evaluation goes through `decide()`.
//! Errors are the specification's: 400 or 500 with a message string; `X-Request-ID` is
//! echoed on every answer.

use super::{AppState, decide};
use crate::authzen::{self, AuthzenError, Batch, Policy, SearchKind};
use crate::decide::DecisionRequest;
use crate::evaluator::EvalError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

/// The request id header the specification recommends.
const REQUEST_ID: &str = "x-request-id";

/// `POST /access/v1/evaluation`.
pub async fn evaluation(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&headers, || {
        let body = parse(&headers, body)?;
        let evaluation =
            authzen::request::evaluation(object(&body)?).map_err(AuthzenError::BadRequest)?;
        policy(&state).evaluate(&mut decider(&state), &evaluation)
    })
}

/// `POST /access/v1/evaluations`.
pub async fn evaluations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&headers, || {
        let body = parse(&headers, body)?;
        let max = state.config.authzen.max_evaluations;
        let batch =
            authzen::request::evaluations(object(&body)?, max).map_err(AuthzenError::BadRequest)?;
        let policy = policy(&state);
        let mut decide = decider(&state);
        match batch {
            Batch::Single(e) => policy.evaluate(&mut decide, &e),
            Batch::Many { items, semantic } => tokio::task::block_in_place(|| {
                Ok(policy.evaluate_batch(&mut decide, &items, semantic))
            }),
        }
    })
}

/// `POST /access/v1/search/{subject,resource,action}`.
pub async fn search(
    State(state): State<Arc<AppState>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let kind = match kind.as_str() {
        "subject" => SearchKind::Subject,
        "resource" => SearchKind::Resource,
        "action" => SearchKind::Action,
        _ => {
            return answer(&headers, || {
                Err(AuthzenError::NotFound(format!(
                    "no search of `{kind}`: subject, resource or action"
                )))
            });
        }
    };
    answer(&headers, || {
        let mut body = parse(&headers, body)?;
        let search =
            authzen::request::search(object(&body)?, kind).map_err(AuthzenError::BadRequest)?;
        // The request a page token belongs to: everything but the token.
        if let Some(page) = body.get_mut("page").and_then(Value::as_object_mut) {
            page.remove("token");
        }
        let identity = crate::decide::canonical_json(&body);
        tokio::task::block_in_place(|| {
            policy(&state).search(&mut decider(&state), &search, &identity)
        })
    })
}

/// `GET /.well-known/authzen-configuration`: the endpoints under this PDP's identifier
/// (`authzen.policy_decision_point`, else `http://` and the request's `Host`).
pub async fn configuration(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    answer(&headers, || {
        let base = match &state.config.authzen.policy_decision_point {
            Some(base) => base.trim_end_matches('/').to_string(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| {
                        AuthzenError::BadRequest("the request has no Host header".into())
                    })?;
                format!("http://{host}")
            }
        };
        Ok(authzen::metadata(&base))
    })
}

/// The policy the configuration names.
fn policy(state: &AppState) -> Policy {
    let config = &state.config.authzen;
    Policy {
        entrypoint: config.entrypoint.clone(),
        candidates: config
            .candidates_entrypoint
            .clone()
            .unwrap_or_else(|| authzen::default_candidates(&config.entrypoint)),
        max_candidates: config.max_candidates,
    }
}

/// Decisions through the server's one door: an id, the cache, the flags (bucketed by the
/// subject's id), the canary, the metrics and the decision log.
fn decider(
    state: &AppState,
) -> impl FnMut(&str, &Value, &str) -> Result<Option<Value>, AuthzenError> {
    move |entrypoint, input, user_key| {
        let mut req = DecisionRequest::new(entrypoint, Some(input));
        req.user_key = Some(user_key);
        let decision = decide(state, &req).outcome.map_err(|e| match e {
            EvalError::Overloaded { .. } => AuthzenError::Unavailable(e.to_string()),
            e => AuthzenError::Internal(e.to_string()),
        })?;
        match decision.result.as_deref() {
            None => Ok(None),
            Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
                AuthzenError::Internal(format!("the policy's result is not JSON: {e}"))
            }),
        }
    }
}

/// The body: `Content-Type: application/json`, not empty, a JSON document.
fn parse(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Value, AuthzenError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(AuthzenError::BadRequest(format!(
            "Content-Type must be application/json, not `{content_type}`"
        )));
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AuthzenError::TooLarge("the request body exceeds the size limit".into())
        } else {
            AuthzenError::BadRequest(e.body_text())
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AuthzenError::BadRequest("the request body is empty".into()));
    }
    serde_json::from_slice(&body)
        .map_err(|e| AuthzenError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

fn object(body: &Value) -> Result<&serde_json::Map<String, Value>, AuthzenError> {
    authzen::request::object(body).map_err(AuthzenError::BadRequest)
}

/// Runs `f` and answers: 200 with the JSON, or 400/500 with the message; the request's
/// `X-Request-ID` echoed either way.
fn answer(headers: &HeaderMap, f: impl FnOnce() -> Result<Value, AuthzenError>) -> Response {
    let mut response = match f() {
        Ok(body) => super::respond::json_text(StatusCode::OK, body.to_string()),
        Err(AuthzenError::BadRequest(m)) => text(StatusCode::BAD_REQUEST, m),
        Err(AuthzenError::TooLarge(m)) => text(StatusCode::PAYLOAD_TOO_LARGE, m),
        Err(AuthzenError::NotFound(m)) => text(StatusCode::NOT_FOUND, m),
        Err(AuthzenError::Unavailable(m)) => {
            super::respond::overloaded(text(StatusCode::SERVICE_UNAVAILABLE, m))
        }
        Err(AuthzenError::Internal(m)) => {
            tracing::warn!(error = %m, "AuthZEN evaluation failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, m)
        }
    };
    if let Some(id) = headers.get(REQUEST_ID) {
        response
            .headers_mut()
            .insert(REQUEST_ID, HeaderValue::clone(id));
    }
    response
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}
