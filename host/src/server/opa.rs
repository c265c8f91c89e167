//! OPA-compatible endpoints: `/v1/data`, `/v0/data`, `/v1/query`, `/v1/batch/data`.

use super::respond::{bad_json, body_rejected, eval_error, json_body, json_text, opa_error};
use super::{AppState, decide, resolve};
use crate::decide::{DecisionRequest, Door, PreparedInput};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Query parameters OPA's data API accepts. A flag given without a value is on.
#[derive(Debug, Default, Deserialize)]
pub struct DataParams {
    pretty: Option<String>,
    metrics: Option<String>,
    provenance: Option<String>,
    input: Option<String>,
    q: Option<String>,
}

/// OPA's boolean parameters: present without a value, or `true` in any case, is on.
pub(super) fn flag(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|v| v.is_empty() || v.eq_ignore_ascii_case("true") || v == "1")
}

/// The `{"input": …}` envelope of POST /v1/data.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputEnvelope {
    input: Option<Value>,
}

fn parse_envelope(body: &[u8]) -> Result<Option<Value>, Response> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let envelope: InputEnvelope = serde_json::from_slice(body).map_err(|e| bad_json(&e))?;
    Ok(envelope.input)
}

pub async fn post_data_root(
    State(state): State<Arc<AppState>>,
    Query(params): Query<DataParams>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    post_data_inner(state, String::new(), params, body)
}

pub async fn post_data(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    Query(params): Query<DataParams>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    post_data_inner(state, path, params, body)
}

fn post_data_inner(
    state: Arc<AppState>,
    path: String,
    params: DataParams,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_rejected(e),
    };
    let (input, prepared) =
        match state
            .service
            .prepare_body(Door::V1Data, &path, &body, parse_envelope)
        {
            Ok(i) => i,
            Err(r) => return r,
        };
    data_response(&state, &path, input, Some(&prepared), &params, received)
}

pub async fn get_data_root(
    State(state): State<Arc<AppState>>,
    Query(params): Query<DataParams>,
) -> Response {
    get_data_inner(state, String::new(), params)
}

pub async fn get_data(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    Query(params): Query<DataParams>,
) -> Response {
    get_data_inner(state, path, params)
}

fn get_data_inner(state: Arc<AppState>, path: String, params: DataParams) -> Response {
    let received = Instant::now();
    let input = match params.input.as_deref() {
        Some(text) => match serde_json::from_str(text) {
            Ok(v) => Some(v),
            Err(e) => return bad_json(&e),
        },
        None => None,
    };
    data_response(&state, &path, input, None, &params, received)
}

/// Decides `path` for `input` (or its `prepared` form) and answers in OPA's `/v1/data`
/// shape.
fn data_response(
    state: &Arc<AppState>,
    path: &str,
    input: Option<Value>,
    prepared: Option<&PreparedInput>,
    params: &DataParams,
    received: Instant,
) -> Response {
    let started = Instant::now();
    let entrypoint = if path.is_empty() { "data" } else { path };
    let mut req = DecisionRequest::new(entrypoint, input.as_ref()).received_at(received);
    if let Some(p) = prepared {
        req = req.with_prepared(p);
    }
    let answer = decide(state, &req);
    let decision = match answer.outcome {
        Ok(d) => Some(d),
        Err(e) => match eval_error(&e) {
            Some(resp) => {
                tracing::debug!(entrypoint, error = %e, "decision failed");
                return resp;
            }
            None => None,
        },
    };
    let decision_id = answer.decision_id;

    // OPA's members: `decision_id` with the decision log on, `result` unless undefined.
    let mut body = String::with_capacity(128);
    body.push('{');
    let member = |body: &mut String, name: &str| {
        if body.len() > 1 {
            body.push(',');
        }
        body.push('"');
        body.push_str(name);
        body.push_str("\":");
    };
    if let Some(id) = &decision_id {
        member(&mut body, "decision_id");
        body.push('"');
        body.push_str(id);
        body.push('"');
    }
    if let Some(result) = decision.as_ref().and_then(|d| d.result.as_deref()) {
        member(&mut body, "result");
        body.push_str(result);
    }
    if flag(&params.metrics) {
        let d = decision.as_ref();
        member(&mut body, "metrics");
        body.push_str(&format!(
            "{{\"timer_server_handler_ns\":{},\"timer_rego_query_eval_ns\":{},\"cache_hit\":{},\"shared_cache_hit\":{},\"implementation\":\"{}\"}}",
            started.elapsed().as_nanos(),
            d.map_or(0, |d| d.elapsed.as_nanos()),
            d.is_some_and(|d| d.cache_hit),
            d.is_some_and(|d| d.shared_cache_hit),
            d.map_or("none", |d| d.path.as_str()),
        ));
    }
    if flag(&params.provenance) {
        let active = state.service.active();
        let m = &active.manifest;
        let p = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "revision": m.revision,
            "bundles": {state.bundle_name(): {"revision": m.revision, "content_hash": m.content_hash}},
        });
        member(&mut body, "provenance");
        body.push_str(&p.to_string());
    }
    body.push('}');
    if flag(&params.pretty)
        && let Ok(v) = serde_json::from_str::<Value>(&body)
    {
        body = serde_json::to_string_pretty(&v).unwrap_or(body);
    }
    json_text(StatusCode::OK, body)
}

/// `POST /v0/data/{path}`: the body is the input; the response is the raw value, 404 when
/// undefined.
pub async fn post_v0_data(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    raw_value_response(&state, &path, body)
}

/// `POST /`: OPA's default decision (`default_decision`, `/system/main`): the body is the
/// input, the response the raw value; 404 `undefined_document` when it is undefined.
pub async fn post_default(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let path = state.config.default_decision.clone();
    raw_value_response(&state, &path, body)
}

/// The v0 shape: raw input in, raw value out. OPA tells a path nothing defines
/// (`document missing`) from a rule that is undefined for this input (`document undefined`).
fn raw_value_response(
    state: &AppState,
    path: &str,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_rejected(e),
    };
    let (input, prepared) =
        match state
            .service
            .prepare_body(Door::V0Data, path, &body, parse_raw_input)
        {
            Ok(i) => i,
            Err(r) => return r,
        };
    let answer = decide(
        state,
        &DecisionRequest::new(path, input.as_ref())
            .with_prepared(&prepared)
            .received_at(received),
    );
    let kind = match answer.outcome {
        Ok(d) => match d.result {
            Some(result) => return json_text(StatusCode::OK, result.to_string()),
            None => "document undefined",
        },
        Err(e) => match eval_error(&e) {
            Some(resp) => return resp,
            None => "document missing",
        },
    };
    opa_error(
        StatusCode::NOT_FOUND,
        "undefined_document",
        &format!("{kind}: {}", sark_guest::normalize_entrypoint(path)),
        vec![],
    )
}

/// The v0 body: the input document itself (none when the body is blank).
fn parse_raw_input(body: &[u8]) -> Result<Option<Value>, Response> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        opa_error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            &format!(
                "unexpected parse error for input: body contains malformed input document: {e}"
            ),
            vec![],
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    query: String,
    input: Option<Value>,
}

pub async fn post_query(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let q: QueryBody = match json_body(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    query_response(&state, &q.query, q.input.as_ref(), received)
}

pub async fn get_query(
    State(state): State<Arc<AppState>>,
    Query(params): Query<DataParams>,
) -> Response {
    let received = Instant::now();
    let Some(q) = params.q.as_deref() else {
        return opa_error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "missing parameter `q`",
            vec![],
        );
    };
    let input = match params.input.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => return bad_json(&e),
        None => None,
    };
    query_response(&state, q, input.as_ref(), received)
}

/// Runs an ad-hoc query (routed by the flags, never cached, not logged); answers
/// `{"result": [bindings, …]}` as OPA does.
fn query_response(
    state: &Arc<AppState>,
    query: &str,
    input: Option<&Value>,
    received: Instant,
) -> Response {
    let results = match resolve(
        &state.service,
        Some(&state.admission),
        &DecisionRequest::query(query, input).received_at(received),
        None,
    ) {
        Ok(d) => d.result.unwrap_or_else(|| "[]".into()),
        Err(e) => {
            return eval_error(&e).unwrap_or_else(|| {
                opa_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    &e.to_string(),
                    vec![],
                )
            });
        }
    };
    let parsed: Vec<Value> = serde_json::from_str(&results).unwrap_or_default();
    let bindings: Vec<Value> = parsed
        .into_iter()
        .map(|r| r.get("bindings").cloned().unwrap_or_else(|| json!({})))
        .collect();
    json_text(StatusCode::OK, json!({"result": bindings}).to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    inputs: BTreeMap<String, Value>,
}

/// `POST /v1/batch/data/{path}`: many inputs, one response per id (207 when some failed).
pub async fn post_batch(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let batch: BatchBody = match json_body(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut responses = serde_json::Map::new();
    let mut failed = false;
    for (id, input) in &batch.inputs {
        let answer = decide(&state, &DecisionRequest::new(&path, Some(input)));
        // `decision_id` with the decision log on, as in `/v1/data` answers.
        let mut e = serde_json::Map::new();
        if let Some(id) = answer.decision_id {
            e.insert("decision_id".into(), Value::String(id));
        }
        let entry = match answer.outcome {
            Ok(d) => {
                if let Some(r) = d.result.as_deref() {
                    e.insert(
                        "result".into(),
                        serde_json::from_str(r).unwrap_or(Value::Null),
                    );
                }
                Value::Object(e)
            }
            Err(err) if eval_error(&err).is_none() => Value::Object(e),
            Err(err) => {
                failed = true;
                json!({"code": "internal_error", "message": err.to_string(), "http_status_code": "500"})
            }
        };
        responses.insert(id.clone(), entry);
    }
    let status = if failed {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::OK
    };
    json_text(status, json!({"responses": responses}).to_string())
}
