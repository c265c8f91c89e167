//! OPA's management endpoints: `GET /v1/config` (secrets redacted), `GET /v1/status`,
//! `/health` with OPA's `bundles`, `plugins` and `exclude-plugin` parameters, and the
//! compile API, which sark does not have (501).

use super::AppState;
use super::opa::flag;
use super::respond::{json_text, opa_error};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// OPA's zero time, for status timestamps of things that never happened (downloads).
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `GET /v1/config`: the active configuration with its defaults, as `{"result": …}`, with
/// OPA's `labels` and `default_decision`. Secrets are redacted: the admin token, and the
/// password of the cluster's Redis URL.
pub async fn config(State(state): State<Arc<AppState>>) -> Response {
    let mut config = serde_json::to_value(&state.config).unwrap_or_else(|_| json!({}));
    if let Some(server) = config.get_mut("server").and_then(Value::as_object_mut) {
        server.remove("admin_token");
    }
    if let Some(url) = config
        .pointer_mut("/cluster/redis_url")
        .and_then(|v| v.as_str().map(redact_url))
    {
        config["cluster"]["redis_url"] = Value::String(url);
    }
    // OPA removes credentials from the reported configuration; sark also hides header
    // values (often tokens) and key material.
    if let Some(services) = config.get_mut("services").and_then(Value::as_object_mut) {
        for service in services.values_mut() {
            if let Some(s) = service.as_object_mut() {
                s.remove("credentials");
                if let Some(h) = s.get_mut("headers").and_then(Value::as_object_mut) {
                    for v in h.values_mut() {
                        *v = json!("***");
                    }
                }
            }
        }
    }
    if let Some(keys) = config.get_mut("keys").and_then(Value::as_object_mut) {
        for key in keys.values_mut() {
            if let Some(k) = key.as_object_mut() {
                k.remove("key");
            }
        }
    }
    config["persistence_directory"] = json!(state.config.persistence_dir());
    config["labels"] = labels(&state);
    json_text(StatusCode::OK, json!({"result": config}).to_string())
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// OPA's `labels`: the configured ones, with this instance's `id` and `version`.
pub fn labels(state: &AppState) -> Value {
    crate::management::labels(&state.config.labels)
}

/// The state of each of sark's "plugins" in OPA's terms (`OK`, `NOT_READY`, `ERROR`):
/// `bundle` (the active bundle; `ERROR` after a refused reload, while the old one serves),
/// `decision_logs` when on, and `cluster` when configured.
fn plugins(state: &AppState) -> BTreeMap<&'static str, Value> {
    let mut plugins = BTreeMap::new();
    let reload = state.reloads.status();
    plugins.insert(
        "bundle",
        match (&reload.last_error, state.remote()) {
            // OPA: the bundle plugin is OK once its bundle was activated; later download
            // errors show in the bundle's status, not the plugin's state.
            (_, Some(_)) | (None, None) => json!({"state": "OK"}),
            (Some(e), None) => json!({"state": "ERROR", "message": e}),
        },
    );
    if state.service.logs_decisions() {
        plugins.insert("decision_logs", json!({"state": "OK"}));
    }
    if let Some(cluster) = state.service.cluster() {
        let status = cluster.status();
        plugins.insert(
            "cluster",
            if status.connected {
                json!({"state": "OK"})
            } else {
                json!({"state": "NOT_READY", "message": status.last_error})
            },
        );
    }
    plugins
}

/// `GET /v1/status`: OPA's status report ([`report`]).
pub async fn status(State(state): State<Arc<AppState>>) -> Response {
    json_text(
        StatusCode::OK,
        json!({"result": report(&state)}).to_string(),
    )
}

/// OPA's status report (`labels`, `bundles`, `plugins`, `decision_logs` when uploading)
/// for the active bundle, and sark's written data (`data`: version, bytes, generation):
/// what `GET /v1/status` answers and status uploads send.
pub fn report(state: &AppState) -> Value {
    let active = state.service.active();
    let m = &active.manifest;
    let reload = state.reloads.status();
    let activation = reload
        .last_activation
        .clone()
        .unwrap_or_else(|| ZERO_TIME.into());
    let mut bundle = match state.remote() {
        Some(remote) => serde_json::to_value(remote.status()).unwrap_or_else(|_| json!({})),
        None => json!({
            "name": state.bundle_name(),
            "active_revision": m.revision,
            "last_successful_download": ZERO_TIME,
            "last_successful_activation": activation,
            "last_request": ZERO_TIME,
            "last_successful_request": ZERO_TIME,
            "type": "snapshot",
        }),
    };
    bundle["content_hash"] = json!(m.content_hash);
    if let (Some(e), None) = (&reload.last_error, state.remote()) {
        bundle["code"] = json!("bundle_error");
        bundle["message"] = json!(e);
    }
    let data = state.service.data();
    let mut report = json!({
        "labels": labels(state),
        "bundles": {state.bundle_name(): bundle},
        "plugins": plugins(state),
        "data": {"version": data.version(), "generation": data.generation(), "bytes": data.bytes()},
    });
    if let Some(uploader) = state.service.log_uploader() {
        report["decision_logs"] = json!(uploader.status());
    }
    report
}

/// Starts status reports when the configuration has a `status` section: one now, then
/// one per change announced on `changes`, built by `build`.
pub fn spawn_status_reports(
    config: &crate::config::Config,
    build: impl Fn() -> Value + Send + 'static,
    changes: tokio::sync::watch::Receiver<u64>,
) -> anyhow::Result<()> {
    let Some(status) = &config.status else {
        return Ok(());
    };
    let client = match &status.service {
        Some(name) => {
            let service =
                config.services.0.get(name).ok_or_else(|| {
                    anyhow::anyhow!("status.service `{name}` is not in `services`")
                })?;
            Some(crate::management::ServiceClient::new(name, service)?)
        }
        None => None,
    };
    let reporter = crate::management::StatusReporter::new(client, status);
    tokio::spawn(reporter.run(build, changes));
    Ok(())
}

/// `/health` with any of OPA's parameters: 200 `{}`, or 500 with OPA's error. Without them,
/// `None`: the caller answers sark's detailed health.
pub fn opa_health(state: &AppState, params: &[(String, String)]) -> Option<Response> {
    let get = |name: &str| {
        let values: Vec<&(String, String)> = params.iter().filter(|(k, _)| k == name).collect();
        (!values.is_empty()).then(|| values.iter().any(|(_, v)| flag(&Some(v.clone()))))
    };
    let bundles = get("bundles").or_else(|| get("bundle"));
    let plugins_flag = get("plugins");
    let excluded: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "exclude-plugin")
        .map(|(_, v)| v.as_str())
        .collect();
    if bundles.is_none() && plugins_flag.is_none() && excluded.is_empty() {
        return None;
    }
    // A bundle is active whenever sark serves: it starts only with one.
    if plugins_flag == Some(true) {
        let down = plugins(state)
            .into_iter()
            .filter(|(name, _)| !excluded.contains(name))
            .any(|(_, s)| s["state"] != "OK");
        if down {
            return Some(json_text(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"one or more plugins are not up"}"#.into(),
            ));
        }
    }
    Some(json_text(StatusCode::OK, "{}".into()))
}

/// `/v1/compile` and `/v1/compile/{path}`: partial evaluation is not in Regorus, so the
/// compile API (and the SDKs' data filters) answer 501 with an OPA-shaped error.
pub async fn compile() -> Response {
    opa_error(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "the compile API (partial evaluation, data filters) is not supported by sark: its evaluator, Regorus, has no partial evaluation",
        vec![],
    )
}

/// Parses the query string into pairs (repeated keys kept), for `/health`.
pub type Pairs = Query<Vec<(String, String)>>;

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://u:pw@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert_eq!(redact_url("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
