//! OPA's policy API: `GET /v1/policies` and `GET`, `PUT`, `DELETE /v1/policies/{id}`.
//!
//! The bundle's modules are listed as `<bundle name>/<path in the bundle>` and cannot be
//! changed (their packages are inside the bundle's roots: 400, as OPA). A module put at run
//! time must have its package outside the roots; it is compiled with the bundle's modules
//! on both paths, persisted, and swapped in like a reload, so the next decision sees it.
//! `ast` carries what sark can produce faithfully: the package path and each rule's name.

use super::respond::{json_text, opa_error};
use super::{AppState, reload};
use crate::PolicyError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// OPA's module AST, reduced to the package path and the rules' head names.
fn ast(id: &str, raw: &str, version: sark_guest::RegoVersion) -> Value {
    match sark_guest::outline(id, raw, version) {
        Ok(o) => {
            let mut path = vec![json!({"type": "var", "value": "data"})];
            path.extend(
                o.package
                    .iter()
                    .map(|k| json!({"type": "string", "value": k})),
            );
            let rules: Vec<Value> = o
                .rules
                .iter()
                .map(|name| json!({"head": {"name": name}}))
                .collect();
            json!({"package": {"path": path}, "rules": rules})
        }
        Err(_) => json!({}),
    }
}

fn policy(id: &str, raw: &str, version: sark_guest::RegoVersion) -> Value {
    json!({"id": id, "raw": raw, "ast": ast(id, raw, version)})
}

/// Every policy: the bundle's modules, then those put at run time.
fn all(state: &AppState) -> Vec<Value> {
    let name = state.bundle_name();
    let active = state.service.active();
    let put = state.service.policies().list();
    let mut out: Vec<Value> = active
        .native
        .modules()
        .iter()
        .filter(|m| !put.iter().any(|(id, _)| *id == m.path))
        .map(|m| policy(&format!("{name}/{}", m.path), &m.source, m.rego_version))
        .collect();
    out.extend(
        put.iter()
            .map(|(id, raw)| policy(id, raw, sark_guest::RegoVersion::V1)),
    );
    out
}

/// `GET /v1/policies`.
pub async fn list(State(state): State<Arc<AppState>>) -> Response {
    json_text(StatusCode::OK, json!({"result": all(&state)}).to_string())
}

fn not_found(id: &str) -> Response {
    opa_error(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        &format!("storage_not_found_error: policy id {id:?}"),
        vec![],
    )
}

/// `GET /v1/policies/{id}`.
pub async fn get(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match all(&state).into_iter().find(|p| p["id"] == id.as_str()) {
        Some(p) => json_text(StatusCode::OK, json!({"result": p}).to_string()),
        None => not_found(&id),
    }
}

/// The bundle module behind `id`, when it is one.
/// (Its id is `<bundle name>/<path>`; the bare path is refused as well, since a module put
/// under it would shadow the bundle's.)
fn bundle_module(state: &AppState, id: &str) -> Option<sark_guest::ModuleSource> {
    let prefixed = id.strip_prefix(&format!("{}/", state.bundle_name()));
    state
        .service
        .active()
        .native
        .modules()
        .into_iter()
        .find(|m| {
            (prefixed == Some(m.path.as_str()) || m.path == id)
                && state.service.policies().get(&m.path).is_none()
        })
}

/// The refusal of a change to a bundle module: its package is the bundle's.
fn refuse_bundle_module(state: &AppState, id: &str) -> Option<Response> {
    let m = bundle_module(state, id)?;
    let package = sark_guest::outline(&m.path, &m.source, m.rego_version)
        .map(|o| o.package)
        .unwrap_or_default();
    Some(owned(state, &package))
}

/// The answer to a change of the run-time policies: 200 `{}`, a compile error of the whole
/// set as 400 `compile_code`, anything else 500.
fn rebuilt(outcome: Result<(), reload::RebuildError>, compile_code: &str) -> Response {
    match outcome {
        Ok(()) => json_text(StatusCode::OK, "{}".into()),
        Err(reload::RebuildError::Compile(message)) => compile_errors(
            &PolicyError::Compile {
                message,
                location: None,
            },
            StatusCode::BAD_REQUEST,
            compile_code,
        ),
        Err(reload::RebuildError::Other(m)) => opa_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            &m,
            vec![],
        ),
    }
}

fn owned(state: &AppState, package: &[String]) -> Response {
    opa_error(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        &format!(
            "path {} is owned by bundle {:?}",
            package.join("/"),
            state.bundle_name()
        ),
        vec![],
    )
}

fn compile_errors(e: &PolicyError, status: StatusCode, code: &str) -> Response {
    let mut error = json!({"code": "rego_parse_error", "message": e.to_string()});
    if let PolicyError::Compile {
        message,
        location: Some(l),
    } = e
    {
        error = json!({"code": "rego_parse_error", "message": message,
            "location": {"file": l.file, "row": l.row, "col": l.col}});
    }
    opa_error(
        status,
        code,
        "error(s) occurred while compiling module(s)",
        vec![error],
    )
}

/// Whether a loaded bundle (the active one, or the canary's candidate) owns `package` (keys
/// below `data`): inside or above one of its roots.
fn package_owned(state: &AppState, package: &[String]) -> bool {
    use crate::evaluator::Evaluator;
    std::iter::once(state.service.active())
        .chain(state.service.candidate())
        .any(|b| {
            let roots = &b.wasm.info().roots;
            roots.is_empty()
                || sark_guest::owned_by_roots(roots, package)
                || sark_guest::ancestor_of_root(roots, package)
        })
}

/// A written document at, below or above `package`, whose keys its rules would collide with.
fn data_overlap(state: &AppState, package: &[String]) -> Option<String> {
    let data = state.service.data();
    (0..=package.len())
        .map(|n| &package[..n])
        .find(|prefix| {
            !prefix.is_empty()
                && match data.get(prefix) {
                    Some(serde_json::Value::Object(_)) => prefix.len() == package.len(),
                    Some(_) => true,
                    None => false,
                }
        })
        .map(|p| p.join("/"))
}

/// `PUT /v1/policies/{id}`: creates or replaces a module (200 `{}`).
pub async fn put(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return super::respond::body_rejected(e),
    };
    let Ok(raw) = String::from_utf8(body.to_vec()) else {
        return opa_error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "the module is not UTF-8 text",
            vec![],
        );
    };
    if raw.trim().is_empty() {
        return opa_error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "empty module",
            vec![],
        );
    }
    if let Some(refused) = refuse_bundle_module(&state, &id) {
        return refused;
    }
    let outline = match sark_guest::outline(&id, &raw, sark_guest::RegoVersion::V1) {
        Ok(o) => o,
        Err(e) => return compile_errors(&e, StatusCode::BAD_REQUEST, "invalid_parameter"),
    };
    if package_owned(&state, &outline.package) {
        return owned(&state, &outline.package);
    }
    if let Some(path) = data_overlap(&state, &outline.package) {
        return opa_error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            &format!(
                "package {} conflicts with the document written at /{path}",
                outline.package.join(".")
            ),
            vec![],
        );
    }
    if state.service.policies().get(&id).as_deref() == Some(raw.as_str()) {
        return json_text(StatusCode::OK, "{}".into());
    }
    let modules = state
        .service
        .policies()
        .modules_with(Some((&id, Some(&raw))));
    let store = state.service.policies().clone();
    let (id2, raw2) = (id.clone(), raw.clone());
    let outcome = reload::rebuild(&state, modules, move || store.put(&id2, &raw2)).await;
    rebuilt(outcome, "invalid_parameter")
}

/// `DELETE /v1/policies/{id}`: removes a module put at run time (200 `{}`).
pub async fn delete(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if let Some(refused) = refuse_bundle_module(&state, &id) {
        return refused;
    }
    if state.service.policies().get(&id).is_none() {
        return not_found(&id);
    }
    let modules = state.service.policies().modules_with(Some((&id, None)));
    let store = state.service.policies().clone();
    let id2 = id.clone();
    let outcome = reload::rebuild(&state, modules, move || store.remove(&id2).map(drop)).await;
    // A compile error: the remaining modules do not compile without it (one depends on it).
    rebuilt(outcome, "invalid_operation")
}
