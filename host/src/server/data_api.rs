//! OPA's data API writes: `PUT`, `PATCH` and `DELETE /v1/data/{path}`, with OPA's status
//! codes and errors. Writes outside the bundle's roots are committed through the decision
//! service (journaled, and shared when clustered) before the 204.

use super::AppState;
use super::respond::{body_rejected, opa_error};
use crate::decide::DataWriteError;
use crate::evaluator::Evaluator;
use crate::store::{DataPath, StoreError, Write};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// The keys of a `/v1/data/{path}` path.
pub(super) fn data_path(path: &str) -> DataPath {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn bad_request(message: &str) -> Response {
    opa_error(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        message,
        vec![],
    )
}

/// OPA's bundle scope check: a path a bundle owns (a root, below one, or above one) is
/// refused with 400 `invalid_parameter`, as is any path when a bundle has no roots. Also
/// refused (beyond OPA, which would report a compile conflict): a path overlapping a policy
/// package, whose rules the document would collide with.
pub(super) fn check_scope(state: &AppState, path: &[String]) -> Result<(), Response> {
    let name = state.bundle_name();
    if path.is_empty() {
        return Err(bad_request(
            "can't write to document root with bundle roots configured",
        ));
    }
    let bundles = std::iter::once(state.service.active()).chain(state.service.candidate());
    for bundle in bundles {
        let roots = &bundle.wasm.info().roots;
        if roots.is_empty() || roots.iter().any(|r| r.trim_matches('/').is_empty()) {
            return Err(bad_request(&format!("all paths owned by bundle {name:?}")));
        }
        if sark_guest::owned_by_roots(roots, path) || sark_guest::ancestor_of_root(roots, path) {
            return Err(bad_request(&format!(
                "path {} is owned by bundle {name:?}",
                path.join("/")
            )));
        }
        for package in bundle.native.packages() {
            let keys: Vec<&str> = package.split('.').skip(1).collect();
            let n = keys.len().min(path.len());
            if keys[..n].iter().zip(&path[..n]).all(|(k, p)| k == p) {
                return Err(bad_request(&format!(
                    "path {} overlaps the policy package {package}: the document would conflict with its rules",
                    path.join("/")
                )));
            }
        }
    }
    Ok(())
}

/// Parses a write's JSON body; OPA answers a malformed one with 400 and the decoder's error.
fn json_value(body: Result<Bytes, BytesRejection>) -> Result<Value, Response> {
    let body = body.map_err(body_rejected)?;
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(bad_request("EOF"));
    }
    serde_json::from_slice(&body).map_err(|e| bad_request(&e.to_string()))
}

fn store_error(err: StoreError) -> Response {
    match err {
        StoreError::Exists => StatusCode::NOT_MODIFIED.into_response(),
        StoreError::NotFound(m) => opa_error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            &format!("storage_not_found_error: {m}"),
            vec![],
        ),
        StoreError::Invalid(m) => opa_error(
            StatusCode::NOT_FOUND,
            "resource_conflict",
            &format!("storage_write_conflict_error: {m}"),
            vec![],
        ),
        StoreError::TooLarge(m) => bad_request(&m),
        StoreError::Persist(m) => opa_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            &format!("the write was not applied: cannot persist it: {m}"),
            vec![],
        ),
    }
}

/// Counts a write's answer by operation and result (`ok`, `refused`, `error`).
fn counted(state: &AppState, operation: &str, response: Response) -> Response {
    let result = match response.status().as_u16() {
        200..=399 => "ok",
        400..=499 => "refused",
        _ => "error",
    };
    state.service.metrics().data_write(operation, result);
    response
}

async fn commit(state: &AppState, write: Result<Write, StoreError>) -> Response {
    let write = match write {
        Ok(w) => w,
        Err(e) => return store_error(e),
    };
    match state.service.commit_data(write).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(DataWriteError::Store(e)) => store_error(e),
        // Nothing was applied here; when Redis timed out it may still have run the write,
        // which then reaches every instance (the client retries an idempotent PUT).
        Err(DataWriteError::Cluster(e)) => opa_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_error",
            &format!("the cluster did not confirm the write: {e}"),
            vec![],
        ),
        Err(e @ DataWriteError::NotYetApplied(_)) => opa_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            &e.to_string(),
            vec![],
        ),
    }
}

/// `PUT /v1/data`: the document root is the bundle's; always refused while one is active.
pub async fn put_root(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let response = put(state.clone(), String::new(), headers, body).await;
    counted(&state, "put", response)
}

/// `PUT /v1/data/{path}`: creates or replaces the document (204); with `If-None-Match: *`
/// an existing document is left alone (304).
pub async fn put_path(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let response = put(state.clone(), path, headers, body).await;
    counted(&state, "put", response)
}

async fn put(
    state: Arc<AppState>,
    path: String,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let value = match json_value(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let path = data_path(&path);
    if let Err(r) = check_scope(&state, &path) {
        return r;
    }
    let if_none_match = headers
        .get("if-none-match")
        .is_some_and(|v| v.as_bytes() == b"*");
    // Planned and committed under one lock: on this instance a write is planned on the
    // documents every earlier write left (no lost update between two patches).
    let _serial = state.data_writes.lock().await;
    let write = state.service.data().plan_put(path, value, if_none_match);
    commit(&state, write).await
}

/// One operation of OPA's `PATCH` body (OPA accepts `add`, `remove` and `replace`).
#[derive(Deserialize)]
struct PatchOp {
    op: String,
    path: String,
    #[serde(default)]
    value: Option<Value>,
}

/// `PATCH /v1/data`: refused like `PUT /v1/data`.
pub async fn patch_root(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let response = patch(state.clone(), String::new(), body).await;
    counted(&state, "patch", response)
}

/// `PATCH /v1/data/{path}`: a JSON Patch applied to the document, all or nothing (204).
pub async fn patch_path(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let response = patch(state.clone(), path, body).await;
    counted(&state, "patch", response)
}

async fn patch(
    state: Arc<AppState>,
    path: String,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let value = match json_value(body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ops: Vec<PatchOp> = match serde_json::from_value(value) {
        Ok(ops) => ops,
        Err(e) => return bad_request(&format!("cannot decode the patch: {e}")),
    };
    let mut patch = Vec::with_capacity(ops.len());
    for op in ops {
        if !matches!(op.op.as_str(), "add" | "remove" | "replace") {
            return bad_request(&format!("bad patch operation: {}", op.op));
        }
        if !(op.path.is_empty() || op.path.starts_with('/')) {
            return bad_request(&format!("bad patch path: {}", op.path));
        }
        // OPA reads `/` as the document at the URL's path itself.
        let pointer = if op.path == "/" { "" } else { op.path.as_str() };
        let mut entry = serde_json::json!({"op": op.op, "path": pointer});
        if op.op != "remove" {
            entry["value"] = op.value.unwrap_or(Value::Null);
        }
        patch.push(entry);
    }
    let patch: json_patch::Patch = match serde_json::from_value(Value::Array(patch)) {
        Ok(p) => p,
        Err(e) => return bad_request(&format!("bad patch: {e}")),
    };
    let path = data_path(&path);
    if let Err(r) = check_scope(&state, &path) {
        return r;
    }
    // Planned and committed under one lock: on this instance a write is planned on the
    // documents every earlier write left (no lost update between two patches).
    let _serial = state.data_writes.lock().await;
    let write = state.service.data().plan_patch(path, &patch);
    commit(&state, write).await
}

/// `DELETE /v1/data/{path}`: removes the document (204; 404 when missing).
pub async fn delete_path(State(state): State<Arc<AppState>>, Path(path): Path<String>) -> Response {
    let response = delete(&state, &path).await;
    counted(&state, "delete", response)
}

async fn delete(state: &AppState, path: &str) -> Response {
    let path = data_path(path);
    if let Err(r) = check_scope(state, &path) {
        return r;
    }
    // Planned and committed under one lock, like every write on this instance.
    let _serial = state.data_writes.lock().await;
    let write = state.service.data().plan_delete(path);
    commit(state, write).await
}
