//! Health, metrics and the admin API (bearer token, compared in constant time): features
//! and rollouts, the live comparison and its time series, the policy canary, the bundle.

use super::respond::{json_text, opa_error};
use super::{AppState, resolve};
use crate::config::CanaryMode;
use crate::decide::{DecisionRequest, FeatureChangeError, LoadedBundle};
use crate::evaluator::PathKind;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Checks one path of the active bundle: the evaluator answers a trivial query. Deliberately
/// not a policy entrypoint: an unauthenticated health probe must not cost a policy's worth
/// of CPU, and a slow entrypoint is a policy problem, not an unhealthy process.
fn path_health(state: &AppState, path: PathKind) -> Result<(), String> {
    let mut probe = DecisionRequest::query("true", None);
    probe.force_path = Some(path);
    // Not admitted: a probe must answer when the server sheds load.
    match resolve(&state.service, None, &probe, None) {
        Err(e) if e.is_component_failure() => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// `GET /health`: 200 only when the bundle is loaded and the component evaluates. With
/// OPA's parameters (`bundles`, `plugins`, `exclude-plugin`) it answers as OPA does.
pub async fn health(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(params): super::management::Pairs,
) -> Response {
    if path_health(&state, PathKind::Wasm).is_ok()
        && let Some(resp) = super::management::opa_health(&state, &params)
    {
        return resp;
    }
    let wasm = path_health(&state, PathKind::Wasm);
    let native = path_health(&state, PathKind::Native);
    let active = state.service.active();
    let m = &active.manifest;
    let reload = state.reloads.status();
    let healthy = wasm.is_ok();
    let cluster = state.service.cluster().map(|c| c.status());
    // Without Redis an instance still decides (last known rollout state, local cache):
    // `degraded` is reported with a 200 so load balancers keep sending traffic.
    let degraded = cluster.as_ref().is_some_and(|c| !c.connected);
    let status = |r: &Result<(), String>| match r {
        Ok(()) => json!("ok"),
        Err(e) => json!({"error": e}),
    };
    let body = json!({
        "status": match (healthy, degraded) {
            (false, _) => "unhealthy",
            (true, true) => "degraded",
            (true, false) => "ok",
        },
        "cluster": cluster,
        "bundle": {"revision": m.revision, "content_hash": m.content_hash, "entrypoints": m.entrypoints},
        "candidate": state.service.candidate().map(|c| c.id.to_string()),
        "paths": {"wasm": status(&wasm), "native": status(&native)},
        "reload": reload,
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_text(code, body.to_string())
}

/// `GET /health/live`: the process answers.
pub async fn live() -> Response {
    json_text(StatusCode::OK, r#"{"status":"alive"}"#.into())
}

/// `GET /health/ready`: a bundle is loaded and the component evaluates.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match path_health(&state, PathKind::Wasm) {
        Ok(()) => json_text(StatusCode::OK, r#"{"status":"ready"}"#.into()),
        Err(e) => json_text(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not ready", "error": e}).to_string(),
        ),
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.service.metrics_text(),
    )
        .into_response()
}

/// Checks the bearer token; `Err` is the response to send (404 while the admin API is off,
/// 401 for a missing or wrong token).
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(expected) = &state.admin_token else {
        return Err(opa_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the admin API is off: set server.admin_token or SARK_ADMIN_TOKEN",
            vec![],
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare digests so neither the content nor the length leaks through timing.
    let ok: bool = Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(expected.as_bytes()))
        .into();
    if !given.is_empty() && ok {
        Ok(())
    } else {
        Err(opa_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
            vec![],
        ))
    }
}

macro_rules! guard {
    ($state:expr, $headers:expr) => {
        if let Err(resp) = authorize(&$state, &$headers) {
            return resp;
        }
    };
}

fn features_body(state: &AppState) -> serde_json::Value {
    json!({
        "features": state.service.flags().all(),
        "policy_canary_mode": state.service.canary_mode(),
        "bucketing": "XXH3_64(seed 0, \"<feature>:<user key>\") mod 100 < rollout_percentage",
    })
}

pub async fn features(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    guard!(state, headers);
    json_text(StatusCode::OK, features_body(&state).to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutUpdate {
    feature: String,
    percentage: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutFeature {
    feature: String,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| super::respond::bad_json(&e))
}

fn flag_error(e: &crate::flags::FlagError) -> Response {
    match e {
        crate::flags::FlagError::Persist { .. } => opa_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            &e.to_string(),
            vec![],
        ),
        _ => opa_error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            &e.to_string(),
            vec![],
        ),
    }
}

/// Applies planned feature states: through Redis (every instance, this one included) in a
/// cluster, else locally. Answers with every feature's state.
async fn change_features(
    state: &AppState,
    planned: Result<BTreeMap<String, crate::flags::Feature>, crate::flags::FlagError>,
) -> Response {
    let planned = match planned {
        Ok(p) => p,
        Err(e) => return flag_error(&e),
    };
    match state.service.change_features(&planned).await {
        Ok(()) => json_text(StatusCode::OK, features_body(state).to_string()),
        Err(FeatureChangeError::Flag(e)) => flag_error(&e),
        Err(e @ FeatureChangeError::Cluster(_)) => opa_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            &e.to_string(),
            vec![],
        ),
    }
}

fn one(
    name: &str,
    feature: Result<crate::flags::Feature, crate::flags::FlagError>,
) -> Result<BTreeMap<String, crate::flags::Feature>, crate::flags::FlagError> {
    feature.map(|f| BTreeMap::from([(name.to_string(), f)]))
}

pub async fn rollout_update(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    guard!(state, headers);
    let u: RolloutUpdate = match parse(&body) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let planned = state
        .service
        .flags()
        .plan_percentage(&u.feature, u.percentage);
    let resp = change_features(&state, one(&u.feature, planned)).await;
    tracing::info!(
        feature = u.feature,
        percentage = u.percentage,
        status = resp.status().as_u16(),
        "rollout update"
    );
    resp
}

pub async fn rollout_rollback(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    guard!(state, headers);
    let f: RolloutFeature = match parse(&body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let planned = state.service.flags().plan_percentage(&f.feature, 0);
    let resp = change_features(&state, one(&f.feature, planned)).await;
    tracing::warn!(
        feature = f.feature,
        status = resp.status().as_u16(),
        "rollout rollback"
    );
    resp
}

pub async fn rollout_rollback_all(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    guard!(state, headers);
    let planned = state.service.flags().plan_rollback_all();
    let resp = change_features(&state, Ok(planned)).await;
    tracing::warn!(
        status = resp.status().as_u16(),
        "rollout rollback of every feature"
    );
    resp
}

pub async fn comparison(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let body = json!({
        "implementations": state.service.metrics().comparison(),
        "cache": state.service.cache().stats(),
    });
    json_text(StatusCode::OK, body.to_string())
}

/// `GET /admin/timeseries[?since=<unix ms>]`: the sampled time series of the live
/// comparison, oldest point first; with `since`, only the points whose interval ended after
/// it.
pub async fn timeseries(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    axum::extract::Query(params): super::management::Pairs,
) -> Response {
    guard!(state, headers);
    let since = match params.iter().find(|(k, _)| k == "since") {
        None => None,
        Some((_, v)) => match v.parse::<u64>() {
            Ok(ms) => Some(ms),
            Err(_) => {
                return opa_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    &format!("since must be a unix time in milliseconds, got `{v}`"),
                    vec![],
                );
            }
        },
    };
    let series = &state.series;
    let body = json!({
        "interval_ms": u64::try_from(series.interval().as_millis()).unwrap_or(u64::MAX),
        "capacity": series.capacity(),
        "points": series.since(since),
    });
    json_text(StatusCode::OK, body.to_string())
}

/// What the admin API shows of a loaded bundle.
fn bundle_summary(bundle: &LoadedBundle) -> serde_json::Value {
    let m = &bundle.manifest;
    json!({
        "id": bundle.id.to_string(),
        "revision": m.revision,
        "content_hash": m.content_hash,
        "signing_key_id": bundle.signing_key_id,
        "entrypoints": m.entrypoints,
        "sark_version": m.sark_version,
        "regorus_version": m.regorus_version,
        // Where a new wasm instance comes from: the bundle's snapshot (copy-on-write, in
        // microseconds) or the payload loaded into the carried evaluator (until the
        // snapshot is compiled and adopted).
        "instances": if bundle.wasm.loads_payload() { "payload" } else { "snapshot" },
    })
}

/// `GET /admin/canary`: the policy canary's mode, candidate and share, its shadow
/// comparisons and disagreements, and the most recent disagreements (masked as in the
/// decision log).
pub async fn canary(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let service = &state.service;
    let mode = service.canary_mode();
    let candidate = service.candidate();
    let feature = service.flags().get(crate::flags::POLICY_CANARY);
    let routed = match (&feature, mode, &candidate) {
        (Some(f), CanaryMode::Route, Some(_)) if f.enabled => f.rollout_percentage,
        _ => 0,
    };
    let shadowed = if mode == CanaryMode::Shadow && candidate.is_some() {
        100
    } else {
        0
    };
    let disagreements = service.disagreements();
    let body = json!({
        "mode": mode,
        "candidate": candidate.as_deref().map(bundle_summary),
        "feature": feature,
        "routed_percentage": routed,
        "shadowed_percentage": shadowed,
        "compared": disagreements.compared_total(),
        "disagreements": disagreements.disagreed_total(),
        "recent": disagreements.recent(),
        "recent_capacity": crate::decide::RECENT_DISAGREEMENTS,
        "mask": state.config.decision_log.mask,
    });
    json_text(StatusCode::OK, body.to_string())
}

/// `GET /admin/bundle`: the active bundle and the candidate (revision, content hash,
/// signing key id), the verification key, the last reloads and their errors, and the
/// cluster's Redis connection when clustered.
pub async fn bundle(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    guard!(state, headers);
    let service = &state.service;
    let body = json!({
        "name": state.bundle_name(),
        "origin": state.origin.to_string(),
        "active": bundle_summary(&service.active()),
        "candidate": service.candidate().as_deref().map(bundle_summary),
        "verification_key_id": state
            .verification_key
            .as_ref()
            .map(crate::bundle::signing::key_id),
        "reload": state.reloads.status(),
        "reloads": state.reloads.history(),
        "cluster": service.cluster().map(|c| c.status()),
    });
    json_text(StatusCode::OK, body.to_string())
}

pub async fn bundle_reload(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    guard!(state, headers);
    match super::reload::reload(&state, "admin API").await {
        Ok(revision) => json_text(
            StatusCode::OK,
            json!({"reloaded": true, "revision": revision}).to_string(),
        ),
        Err(e) => {
            let active = state.service.active();
            opa_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bundle_refused",
                &format!(
                    "the new bundle was refused; revision {} stays active: {e}",
                    active.manifest.revision
                ),
                vec![],
            )
        }
    }
}
