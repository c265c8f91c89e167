//! Hot reload: a new bundle (file change, SIGHUP, admin call) is read, verified and loaded
//! off the request path, then swapped in; a broken bundle is refused and the old one stays.

use super::AppState;
use crate::bundle::Bundle;
use crate::decide::LoadedBundle;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Activations and refused reloads kept for `/admin/bundle` and the console (the most
/// recent).
pub const RELOAD_HISTORY: usize = 20;

/// One activation of a bundle, or one refused reload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadEvent {
    /// When (RFC 3339, UTC).
    pub time: String,
    /// What asked for it: `start`, `bundle file changed`, `SIGHUP`, `admin API`, `bundle
    /// service`, `policy API`.
    pub reason: String,
    /// `success` or `failure`.
    pub result: &'static str,
    /// The revision activated (a success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Its content hash (a success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// Why the bundle was refused (a failure); the previous one stayed active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReloadEvent {
    fn success(reason: &str, bundle: &LoadedBundle) -> Self {
        ReloadEvent {
            time: now_rfc3339(),
            reason: reason.to_string(),
            result: "success",
            revision: Some(bundle.manifest.revision.clone()),
            content_hash: Some(bundle.manifest.content_hash.clone()),
            error: None,
        }
    }

    fn failure(reason: &str, error: &str) -> Self {
        ReloadEvent {
            time: now_rfc3339(),
            reason: reason.to_string(),
            result: "failure",
            revision: None,
            content_hash: None,
            error: Some(error.to_string()),
        }
    }
}

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// Reload attempts since start.
    pub attempts: u64,
    /// Successful reloads since start.
    pub successes: u64,
    /// Why the last attempt failed, when it did (cleared by a success).
    pub last_error: Option<String>,
    /// Revision of the bundle loaded by the last success.
    pub last_revision: Option<String>,
    /// When the active bundle was activated (RFC 3339, UTC): at start or by the last
    /// successful reload.
    pub last_activation: Option<String>,
}

/// Now, in OPA's timestamp format.
pub(super) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Serializes reloads and remembers their outcome.
pub struct Reloader {
    lock: tokio::sync::Mutex<()>,
    status: std::sync::Mutex<ReloadStatus>,
    /// The last activations and refused reloads, oldest first.
    history: std::sync::Mutex<VecDeque<ReloadEvent>>,
    /// The active bundle as it arrived from a bundle service (rebuilds start from it; a
    /// file origin re-reads its file instead).
    downloaded: std::sync::Mutex<Option<Bundle>>,
    /// Ticks after every reload attempt (status reports).
    pub(super) changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Reloader {
    fn default() -> Self {
        Reloader {
            lock: Default::default(),
            status: Default::default(),
            history: Default::default(),
            downloaded: Default::default(),
            changed: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Reloader {
    /// Records the activation of the bundle the server started with.
    pub(super) fn started(&self, bundle: &LoadedBundle) {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_activation = Some(now_rfc3339());
        self.remember(ReloadEvent::success("start", bundle));
    }

    /// Adds `event` to the history, dropping the oldest beyond [`RELOAD_HISTORY`].
    fn remember(&self, event: ReloadEvent) {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == RELOAD_HISTORY {
            history.pop_front();
        }
        history.push_back(event);
    }

    /// The last activations and refused reloads, oldest first.
    pub fn history(&self) -> Vec<ReloadEvent> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Remembers the bundle a service delivered, which the server started with.
    pub(super) fn set_downloaded(&self, bundle: Bundle) {
        *self.downloaded.lock().unwrap_or_else(|p| p.into_inner()) = Some(bundle);
    }

    /// The last outcome.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Reloads the bundle file; returns the new revision or why it was refused.
pub async fn reload(state: &Arc<AppState>, reason: &str) -> Result<String, String> {
    if let Some(remote) = state.remote() {
        // The bundle comes from a service: ask it now; the downloader activates what it
        // delivers. The answer is the revision active now.
        remote.poll_now();
        tracing::info!(reason, bundle = %remote.name(), "polling the bundle service now");
        return Ok(state.service.active().manifest.revision.clone());
    }
    let _guard = state.reloads.lock.lock().await;
    let loaded = load_off_the_request_path(state, None, None).await;
    record(state, reason, loaded)
}

/// Activates a bundle delivered by the bundle service; returns its revision or why it
/// was refused (the active bundle then stays).
pub async fn activate_downloaded(state: &Arc<AppState>, bundle: Bundle) -> Result<String, String> {
    let _guard = state.reloads.lock.lock().await;
    let loaded = load_off_the_request_path(state, Some(bundle.clone()), None).await;
    let outcome = record(state, "bundle service", loaded);
    if outcome.is_ok() {
        state.reloads.set_downloaded(bundle);
    }
    outcome
}

/// Swaps in a loaded bundle, or records why it was refused.
fn record(
    state: &Arc<AppState>,
    reason: &str,
    loaded: Result<LoadedBundle, String>,
) -> Result<String, String> {
    state.reloads.changed.send_modify(|n| *n += 1);
    let mut status = state
        .reloads
        .status
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    status.attempts += 1;
    match loaded {
        Ok(bundle) => {
            let revision = bundle.manifest.revision.clone();
            let id = bundle.id.clone();
            state
                .reloads
                .remember(ReloadEvent::success(reason, &bundle));
            activate(state, bundle);
            state.service.metrics().reload("success");
            status.successes += 1;
            status.last_error = None;
            status.last_revision = Some(revision.clone());
            status.last_activation = Some(now_rfc3339());
            tracing::info!(reason, bundle = %id, "bundle reloaded");
            Ok(revision)
        }
        Err(e) => {
            tokio::task::spawn_blocking(crate::allocator::release_free_memory);
            state.service.metrics().reload("failure");
            state.reloads.remember(ReloadEvent::failure(reason, &e));
            status.last_error = Some(e.clone());
            tracing::error!(reason, error = %e, "bundle reload refused; the previous bundle stays active");
            Err(e)
        }
    }
}

/// Why the policies put at run time could not be changed. Nothing changed.
#[derive(Debug)]
pub enum RebuildError {
    /// The bundle's modules and the new set of policies do not compile together.
    Compile(String),
    /// The bundle file could not be read, or the change not persisted.
    Other(String),
}

/// Recompiles the active bundle's file with `policies` (the run-time policies after a
/// change) off the request path, persists the change with `persist` once it compiles,
/// then swaps the result in, like a reload.
pub async fn rebuild(
    state: &Arc<AppState>,
    policies: Vec<sark_guest::ModuleSource>,
    persist: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> Result<(), RebuildError> {
    let _guard = state.reloads.lock.lock().await;
    let loaded = load_off_the_request_path(state, None, Some(policies))
        .await
        .map_err(RebuildError::Compile)?;
    tokio::task::spawn_blocking(persist)
        .await
        .map_err(|e| RebuildError::Other(e.to_string()))?
        .map_err(|e| RebuildError::Other(format!("cannot persist the policy: {e:#}")))?;
    tracing::info!(bundle = %loaded.id, "policies changed through the policy API");
    state
        .reloads
        .remember(ReloadEvent::success("policy API", &loaded));
    activate(state, loaded);
    Ok(())
}

/// Swaps `bundle` in; the old one is freed once its last in-flight decision ends.
fn activate(state: &AppState, bundle: LoadedBundle) {
    let old = state.service.swap_bundle(bundle);
    // The old bundle (pools, engines, compiled code) is freed once its last
    // in-flight decision ends; then the allocator's free memory goes back.
    tokio::task::spawn_blocking(move || {
        drop(old);
        crate::allocator::release_free_memory();
    });
}

/// Loads `bundle`, or else the origin's bundle (the file read and verified again, or the
/// last one the service delivered), with `policies` instead of the policy store's when
/// given, on a low-priority thread.
async fn load_off_the_request_path(
    state: &Arc<AppState>,
    bundle: Option<Bundle>,
    policies: Option<Vec<sark_guest::ModuleSource>>,
) -> Result<LoadedBundle, String> {
    let source = match (bundle, &state.origin) {
        (Some(b), _) => Ok(b),
        (None, super::BundleOrigin::File(path)) => Err(path.clone()),
        (None, super::BundleOrigin::Remote(_)) => state
            .reloads
            .downloaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(Ok)
            .ok_or_else(|| "no bundle has been delivered by the bundle service".to_string())?,
    };
    let service = state.service.clone();
    let key = state.verification_key;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let loader = std::thread::Builder::new()
        .name("sark-reload".into())
        .spawn(move || {
            // The load competes with the requests for the same cores: it yields to them.
            lower_this_threads_priority();
            let load = || -> Result<LoadedBundle, String> {
                let bundle = match source {
                    Ok(bundle) => bundle,
                    Err(path) => {
                        Bundle::read_verified(&path, key.as_ref()).map_err(|e| e.to_string())?
                    }
                };
                match &policies {
                    Some(p) => service.load_bundle_with(bundle, p),
                    None => service.load_bundle(bundle),
                }
                .map_err(|e| format!("{e:#}"))
            };
            let _ = tx.send(load());
        });
    match loader {
        Ok(_) => rx
            .await
            .unwrap_or_else(|_| Err("the reload thread ended without an answer".into())),
        Err(e) => Err(format!("cannot start the reload thread: {e}")),
    }
}

fn fingerprint(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Starts the file watcher (polling) and serves SIGHUP (`hangup`, installed before the
/// address was announced, so a SIGHUP sent right after start reloads rather than kills).
pub fn spawn_watchers(state: Arc<AppState>, hangup: super::Hangup) -> anyhow::Result<()> {
    let poll = state.config.server.reload_poll_ms;
    if let (true, super::BundleOrigin::File(path)) = (poll > 0, &state.origin) {
        let path = path.clone();
        let state = state.clone();
        let mut last = fingerprint(&path);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(poll));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = fingerprint(&path);
                if now.is_some() && now != last {
                    last = now;
                    let _ = reload(&state, "bundle file changed").await;
                }
            }
        });
    }
    #[cfg(not(unix))]
    let () = hangup;
    #[cfg(unix)]
    {
        let mut hup = hangup;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = reload(&state, "SIGHUP").await;
            }
        });
    }
    Ok(())
}

/// Nice value of the reload thread: the lowest priority, so that loading a bundle (parsing,
/// compiling, filling the instance pool) takes only the CPU the requests leave.
#[cfg(target_os = "linux")]
const RELOAD_NICE: std::ffi::c_int = 19;

/// Gives the calling thread the lowest CPU priority (Linux: the nice value is per thread).
#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    unsafe extern "C" {
        fn setpriority(
            which: std::ffi::c_int,
            who: std::ffi::c_uint,
            prio: std::ffi::c_int,
        ) -> std::ffi::c_int;
    }
    const PRIO_PROCESS: std::ffi::c_int = 0;
    // SAFETY: setpriority only reads its integer arguments; `who` 0 is the calling thread.
    if unsafe { setpriority(PRIO_PROCESS, 0, RELOAD_NICE) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the reload thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_keeps_the_most_recent_events() {
        let reloads = Reloader::default();
        for n in 0..RELOAD_HISTORY + 3 {
            reloads.remember(ReloadEvent::failure("SIGHUP", &format!("broken {n}")));
        }
        let history = reloads.history();
        assert_eq!(history.len(), RELOAD_HISTORY);
        assert_eq!(
            history[0].error.as_deref(),
            Some("broken 3"),
            "oldest first"
        );
        assert_eq!(
            history[RELOAD_HISTORY - 1].error.as_deref(),
            Some(format!("broken {}", RELOAD_HISTORY + 2).as_str())
        );
        let json = serde_json::to_value(&history[0]).unwrap();
        assert_eq!(json["result"], "failure");
        assert!(json.get("revision").is_none());
    }
}
