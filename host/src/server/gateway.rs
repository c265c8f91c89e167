//! The SARK gateway API: authorization of MCP tool calls and agent-to-agent calls. A policy
//! error or an undefined decision fails closed.

use super::respond::{json_body, json_text};
use super::{AppState, decide};
use crate::decide::DecisionRequest;
use crate::evaluator::EvalError;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// The body of `POST /api/v1/gateway/authorize`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AuthorizeRequest {
    action: Option<String>,
    server_name: Option<String>,
    tool_name: Option<String>,
    parameters: Value,
    gateway_metadata: Value,
    user: Value,
}

/// Builds the policy input: user, action, resource {server, tool, sensitivity},
/// parameters, context {timestamp, gateway metadata}.
fn gateway_input(r: AuthorizeRequest) -> Value {
    let sensitivity = r.gateway_metadata.get("sensitivity").cloned();
    let mut resource = json!({"server": r.server_name, "tool": r.tool_name});
    if let Some(s) = sensitivity {
        resource["sensitivity"] = s;
    }
    json!({
        "user": r.user,
        "action": r.action.unwrap_or_else(|| "tool:invoke".into()),
        "resource": resource,
        "parameters": if r.parameters.is_null() { json!({}) } else { r.parameters },
        "context": {
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "gateway_metadata": r.gateway_metadata,
        },
    })
}

pub async fn authorize(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let request: AuthorizeRequest = match json_body(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let input = gateway_input(request);
    let entrypoint = state.config.server.gateway_entrypoint.clone();
    decide_closed(&state, &entrypoint, input, received)
}

pub async fn authorize_a2a(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let input: Value = match json_body(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !input.is_object() {
        return super::respond::opa_error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "the body must be a JSON object",
            vec![],
        );
    }
    let entrypoint = state.config.server.a2a_entrypoint.clone();
    decide_closed(&state, &entrypoint, input, received)
}

/// Decides and answers `{allow, reason, filtered_parameters, audit_id, cache_ttl}`; any
/// failure answers `allow: false` with `cache_ttl: 0`.
fn decide_closed(
    state: &Arc<AppState>,
    entrypoint: &str,
    input: Value,
    received: Instant,
) -> Response {
    let answer = decide(
        state,
        &DecisionRequest::new(entrypoint, Some(&input)).received_at(received),
    );
    let audit_id = answer.id_or_new();
    let body = match &answer.outcome {
        Ok(d) => {
            let doc: Value = d
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(Value::Null);
            match doc.get("allow").and_then(Value::as_bool) {
                Some(allow) => {
                    let reason = match doc.get("reasons") {
                        Some(Value::Array(rs)) => rs
                            .iter()
                            .map(|r| r.as_str().map_or_else(|| r.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join("; "),
                        Some(Value::String(s)) => s.clone(),
                        _ => doc
                            .get("reason")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    };
                    json!({
                        "allow": allow,
                        "reason": reason,
                        "filtered_parameters": doc.get("filtered_parameters").cloned().unwrap_or_else(|| input.get("parameters").cloned().unwrap_or(json!({}))),
                        "audit_id": audit_id,
                        "cache_ttl": doc.get("cache_ttl").cloned().unwrap_or(json!(0)),
                    })
                }
                None => {
                    tracing::warn!(
                        entrypoint,
                        "gateway decision has no boolean `allow`; failing closed"
                    );
                    closed(&audit_id, "the policy returned no decision")
                }
            }
        }
        // Shed load: denied, and 503 with `Retry-After` so a client may retry elsewhere.
        Err(e @ EvalError::Overloaded { .. }) => {
            state
                .service
                .metrics()
                .fail_closed(entrypoint, "overloaded");
            let body = closed(&audit_id, &e.to_string()).to_string();
            return super::respond::overloaded(json_text(StatusCode::SERVICE_UNAVAILABLE, body));
        }
        Err(e) => {
            tracing::warn!(entrypoint, error = %e, "gateway decision failed; failing closed");
            state.service.metrics().fail_closed(entrypoint, "error");
            closed(&audit_id, &format!("policy error: {e}"))
        }
    };
    json_text(StatusCode::OK, body.to_string())
}

fn closed(audit_id: &str, reason: &str) -> Value {
    json!({
        "allow": false,
        "reason": reason,
        "filtered_parameters": {},
        "audit_id": audit_id,
        "cache_ttl": 0,
    })
}
