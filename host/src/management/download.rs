//! The bundle downloader (OPA's bundle plugin): polls `services.<s>.url` + `resource` with
//! `If-None-Match` (a 304 keeps the active bundle and transfers no body), jittered between
//! `min_delay_seconds` and `max_delay_seconds`, long polling (`Prefer: wait=N`) when the
//! service answers with OPA's bundle content type, exponential backoff on errors. A new
//! artifact is verified and built off the async workers, handed to the server to activate
//! ([`Arrival`]), and persisted when `persist: true`. Every step shows in [`BundleStatus`].

use super::artifact::{ArtifactKind, Verifier};
use super::client::ServiceClient;
use super::config::BundleSource;
use crate::bundle::Bundle;
use rand::RngExt;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// The content type a long-polling bundle service answers with (OPA's).
pub const LONG_POLLING_CONTENT_TYPE: &str = "application/vnd.openpolicyagent.bundles";

/// OPA's zero time, for things that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Shortest wait before a retry after an error (OPA's 100 ms).
const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The state of a downloaded bundle, in OPA's status shape (`/v1/status`, status uploads).
#[derive(Debug, Clone, Serialize)]
pub struct BundleStatus {
    /// The bundle's name (`bundles.<name>`).
    pub name: String,
    /// Revision of the active bundle; empty before the first activation.
    pub active_revision: String,
    /// When the last bundle was activated (RFC 3339), or OPA's zero time.
    pub last_successful_activation: String,
    /// When a bundle was last downloaded in full.
    pub last_successful_download: String,
    /// When the service last answered 200 or 304.
    pub last_successful_request: String,
    /// When the service was last asked.
    pub last_request: String,
    /// Always `snapshot`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Size in bytes of the last downloaded artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `bundle_error` while the last download or activation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The HTTP status of a failed request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_code: Option<u16>,
    /// The failure's details (OPA's `errors`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl BundleStatus {
    fn new(name: &str) -> Self {
        BundleStatus {
            name: name.to_string(),
            active_revision: String::new(),
            last_successful_activation: ZERO_TIME.into(),
            last_successful_download: ZERO_TIME.into(),
            last_successful_request: ZERO_TIME.into(),
            last_request: ZERO_TIME.into(),
            kind: "snapshot",
            size: None,
            code: None,
            message: None,
            http_code: None,
            errors: Vec::new(),
        }
    }

    fn fail(&mut self, message: String, http_code: Option<u16>) {
        self.code = Some("bundle_error".into());
        self.errors = vec![message.clone()];
        self.message = Some(message);
        self.http_code = http_code;
    }

    fn clear_error(&mut self) {
        self.code = None;
        self.message = None;
        self.http_code = None;
        self.errors.clear();
    }

    /// Whether a bundle has been activated.
    pub fn activated(&self) -> bool {
        self.last_successful_activation != ZERO_TIME
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// A verified, built bundle handed to the server; `reply` says whether it was activated.
pub struct Arrival {
    /// The bundle, ready to load.
    pub bundle: Bundle,
    /// The activation's outcome (the revision, or why it was refused).
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// How a bundle is fetched: from a bundle service over HTTP, or from an OCI registry.
pub enum Transport {
    /// A bundle service (`GET <url>/<resource>` with ETags).
    Http(ServiceClient),
    /// An OCI registry (`services.<n>.type: oci`; the manifest digest is the ETag).
    Oci(super::oci::OciRegistry),
}

/// A bundle downloaded from a service.
pub struct RemoteBundle {
    name: String,
    source: BundleSource,
    transport: Transport,
    verifier: Verifier,
    persist_dir: Option<PathBuf>,
    status: Mutex<BundleStatus>,
    poll_now: Notify,
    changed: watch::Sender<u64>,
}

/// What one request to the service gave.
enum Fetched {
    /// 304, with the service's ETag when it sent one.
    NotModified(Option<String>),
    New {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
}

/// A failed request: why, and the HTTP status when there was one.
struct FetchError {
    message: String,
    http_code: Option<u16>,
}

impl RemoteBundle {
    /// A downloader of bundle `name` through `transport`; persisted under
    /// `persistence_dir` when `source.persist`.
    pub fn new(
        name: &str,
        source: BundleSource,
        transport: Transport,
        verifier: Verifier,
        persistence_dir: &std::path::Path,
    ) -> Self {
        let persist_dir = source
            .persist
            .then(|| persistence_dir.join("bundles").join(name));
        RemoteBundle {
            name: name.to_string(),
            source,
            transport,
            verifier,
            persist_dir,
            status: Mutex::new(BundleStatus::new(name)),
            poll_now: Notify::new(),
            changed: watch::channel(0).0,
        }
    }

    /// The downloader of `config`'s `bundles` entry, when it has one: over HTTP from a
    /// bundle service, or from an OCI registry (`type: oci`); `sark_key` is
    /// `--verification-key`.
    pub fn from_config(
        config: &crate::config::Config,
        sark_key: Option<crate::bundle::signing::VerifyingKey>,
    ) -> anyhow::Result<Option<Arc<Self>>> {
        use anyhow::Context;
        let Some((name, source)) = config.bundles.iter().next() else {
            return Ok(None);
        };
        let service = config
            .services
            .0
            .get(&source.service)
            .with_context(|| format!("bundles.{name}.service"))?;
        let transport = if service.kind.as_deref() == Some("oci") {
            let bearer = service
                .credentials
                .bearer
                .as_ref()
                .map(|b| b.token())
                .transpose()
                .map_err(|e| anyhow::anyhow!("services.{}: {e}", source.service))?;
            let timeout = Duration::from_secs(
                service
                    .response_header_timeout_seconds
                    .unwrap_or(10)
                    .max(30),
            );
            Transport::Oci(
                super::oci::OciRegistry::new(
                    source.resource.as_deref().unwrap_or_default(),
                    service.url.starts_with("http://"),
                    bearer,
                    timeout,
                )
                .map_err(|e| anyhow::anyhow!("bundles.{name}: {e}"))?,
            )
        } else {
            Transport::Http(ServiceClient::new(&source.service, service)?)
        };
        let verifier = Verifier {
            signing: source.signing.clone(),
            keys: config.keys.clone(),
            sark_key,
        };
        Ok(Some(Arc::new(RemoteBundle::new(
            name,
            source.clone(),
            transport,
            verifier,
            &config.persistence_dir(),
        ))))
    }

    /// The bundle's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current status.
    pub fn status(&self) -> BundleStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ticks at every status change (for status uploads).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Asks for a poll now (SIGHUP, the admin reload).
    pub fn poll_now(&self) {
        self.poll_now.notify_one();
    }

    fn update(&self, f: impl FnOnce(&mut BundleStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.send_modify(|n| *n += 1);
    }

    /// The persisted bundle, verified and built again, when `persist` is on and one was
    /// written. A persisted file that no longer verifies is refused (and logged).
    pub fn load_persisted(&self) -> Option<Bundle> {
        let dir = self.persist_dir.as_ref()?;
        for kind in [ArtifactKind::Wasm, ArtifactKind::Tarball] {
            let path = dir.join(kind.file_name());
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            match self.verifier.prepare(bytes) {
                Ok(bundle) => {
                    tracing::info!(bundle = %self.name, path = %path.display(), "starting from the persisted bundle");
                    return Some(bundle);
                }
                Err(e) => {
                    tracing::error!(bundle = %self.name, path = %path.display(), error = %e, "the persisted bundle is refused");
                }
            }
        }
        None
    }

    /// Records that the server activated `revision` (at start from a persisted bundle).
    pub fn activated(&self, revision: &str) {
        let revision = revision.to_string();
        self.update(|s| {
            s.active_revision = revision;
            s.last_successful_activation = now();
        });
    }

    /// Polls forever, handing new bundles to `arrivals`. Ends when the receiver is gone.
    pub async fn run(self: Arc<Self>, arrivals: mpsc::Sender<Arrival>) {
        let (min, max) = self.source.polling.delays();
        let long_poll = self.source.polling.long_polling_timeout_seconds;
        let mut etag: Option<String> = None;
        let mut failures: u32 = 0;
        loop {
            self.update(|s| s.last_request = now());
            let mut long_polling = false;
            match self
                .fetch(etag.as_deref(), long_poll, &mut long_polling)
                .await
            {
                Ok(Fetched::NotModified(new_etag)) => {
                    failures = 0;
                    if new_etag.is_some() {
                        etag = new_etag;
                    }
                    // A 304 means the service holds the active bundle: whatever failed
                    // before (a request, a newer bundle's activation) is over, as in OPA.
                    self.update(|s| {
                        s.last_successful_request = now();
                        s.clear_error();
                    });
                }
                Ok(Fetched::New {
                    bytes,
                    etag: new_etag,
                }) => {
                    let size = bytes.len() as u64;
                    self.update(|s| {
                        s.last_successful_request = now();
                        s.last_successful_download = now();
                        s.size = Some(size);
                    });
                    match self.activate(bytes, &arrivals).await {
                        Ok(revision) => {
                            failures = 0;
                            etag = new_etag;
                            self.update(|s| {
                                s.clear_error();
                                s.active_revision = revision;
                                s.last_successful_activation = now();
                            });
                        }
                        Err(Closed) if arrivals.is_closed() => return,
                        Err(_) => failures += 1,
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(bundle = %self.name, error = %e.message, "bundle download failed; the active bundle stays");
                    self.update(|s| s.fail(e.message, e.http_code));
                }
            }
            let delay = if failures > 0 {
                backoff(MIN_RETRY_DELAY, Duration::from_secs(max), failures)
            } else if long_polling {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(rand::rng().random_range(min as f64..=max as f64))
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.poll_now.notified() => {}
                () = arrivals.closed() => return,
            }
        }
    }

    /// Verifies and builds `bytes`, hands the bundle over and waits for its activation;
    /// persists it once active. Failures are recorded in the status.
    async fn activate(
        &self,
        bytes: Vec<u8>,
        arrivals: &mpsc::Sender<Arrival>,
    ) -> Result<String, Closed> {
        let verifier = self.verifier.clone();
        let persisted = self.persist_dir.as_ref().map(|_| bytes.clone());
        let prepared = tokio::task::spawn_blocking(move || verifier.prepare(bytes))
            .await
            .unwrap_or_else(|e| Err(format!("the bundle build ended abnormally: {e}")));
        let bundle = match prepared {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(bundle = %self.name, error = %e, "downloaded bundle refused; the active bundle stays");
                self.update(|s| s.fail(e, None));
                return Err(Closed);
            }
        };
        let (reply, outcome) = oneshot::channel();
        if arrivals.send(Arrival { bundle, reply }).await.is_err() {
            return Err(Closed);
        }
        match outcome.await {
            Ok(Ok(revision)) => {
                if let (Some(dir), Some(bytes)) = (&self.persist_dir, persisted) {
                    let dir = dir.clone();
                    let name = self.name.clone();
                    let written = tokio::task::spawn_blocking(move || persist(&dir, &bytes)).await;
                    if let Ok(Err(e)) | Err(e) = written.map_err(|e| e.to_string()) {
                        tracing::error!(bundle = %name, error = %e, "cannot persist the bundle");
                    }
                }
                Ok(revision)
            }
            Ok(Err(e)) => {
                self.update(|s| s.fail(e, None));
                Err(Closed)
            }
            Err(_) => Err(Closed),
        }
    }

    async fn fetch(
        &self,
        etag: Option<&str>,
        long_poll: Option<u64>,
        long_polling: &mut bool,
    ) -> Result<Fetched, FetchError> {
        let plain = |message: String| FetchError {
            message,
            http_code: None,
        };
        let client = match &self.transport {
            Transport::Http(client) => client,
            Transport::Oci(registry) => {
                let limit = self.source.size_limit();
                let budget = Duration::from_secs(120);
                return match tokio::time::timeout(budget, registry.pull(etag, limit)).await {
                    Ok(Ok(super::oci::Pulled::Unchanged)) => Ok(Fetched::NotModified(None)),
                    Ok(Ok(super::oci::Pulled::New { bytes, digest })) => Ok(Fetched::New {
                        bytes,
                        etag: Some(digest),
                    }),
                    Ok(Err(message)) => Err(plain(message)),
                    Err(_) => Err(plain(format!(
                        "the pull did not finish within {} s",
                        budget.as_secs()
                    ))),
                };
            }
        };
        let resource = self.source.resource_for(&self.name);
        let mut req = client
            .request(reqwest::Method::GET, &resource)
            .map_err(plain)?;
        if let Some(etag) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        // The whole exchange is bounded: a long poll's wait, then a minute for the body.
        let mut budget = Duration::from_secs(60) + client.header_timeout();
        // OPA's preference header; sark takes snapshot bundles only.
        match long_poll {
            Some(wait) => {
                req = req.header("Prefer", format!("modes=snapshot;wait={wait}"));
                budget += Duration::from_secs(wait);
            }
            None => req = req.header("Prefer", "modes=snapshot"),
        }
        let exchange = async {
            let resp = req.send().await.map_err(|e| {
                plain(format!(
                    "request to {} failed: {}",
                    client.name(),
                    error_chain(&e)
                ))
            })?;
            let status = resp.status();
            *long_polling = long_poll.is_some()
                && resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|t| t.starts_with(LONG_POLLING_CONTENT_TYPE));
            if status == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(Fetched::NotModified(etag_of(&resp)));
            }
            if !status.is_success() {
                return Err(FetchError {
                    message: format!(
                        "server replied with {}",
                        status.canonical_reason().unwrap_or(status.as_str())
                    ),
                    http_code: Some(status.as_u16()),
                });
            }
            let new_etag = etag_of(&resp);
            let limit = self.source.size_limit();
            if resp.content_length().is_some_and(|n| n > limit) {
                return Err(plain(format!(
                    "bundle exceeds the size limit of {limit} bytes (size_limit_bytes)"
                )));
            }
            let mut bytes = Vec::new();
            let mut resp = resp;
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| plain(format!("reading the bundle failed: {}", error_chain(&e))))?
            {
                if bytes.len() as u64 + chunk.len() as u64 > limit {
                    return Err(plain(format!(
                        "bundle exceeds the size limit of {limit} bytes (size_limit_bytes)"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(Fetched::New {
                bytes,
                etag: new_etag,
            })
        };
        tokio::time::timeout(budget, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(plain(format!(
                    "the download did not finish within {} s",
                    budget.as_secs()
                )))
            })
    }
}

fn etag_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The receiving side is gone, or the arrival was refused (already recorded).
struct Closed;

/// Writes `bytes` atomically as the persisted bundle in `dir`, removing the other kind.
fn persist(dir: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    let kind = ArtifactKind::sniff(bytes)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(kind.file_name());
    let tmp = dir.join(format!("{}.tmp", kind.file_name()));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    for other in [ArtifactKind::Wasm, ArtifactKind::Tarball] {
        if other != kind {
            let _ = std::fs::remove_file(dir.join(other.file_name()));
        }
    }
    Ok(())
}

/// The error with its causes (reqwest's own message is terse: "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// OPA's default backoff: `base` × 1.6^retries, at most `max`, jittered by ±20 %.
pub fn backoff(base: Duration, max: Duration, retries: u32) -> Duration {
    let raw = base.as_secs_f64() * 1.6f64.powi(retries.min(64) as i32);
    let capped = raw.min(max.as_secs_f64());
    let jitter = rand::rng().random_range(0.8..=1.2);
    Duration::from_secs_f64((capped * jitter).min(max.as_secs_f64()).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let max = Duration::from_secs(5);
        let first = backoff(MIN_RETRY_DELAY, max, 1);
        assert!(first >= Duration::from_millis(120) && first <= Duration::from_millis(200));
        for _ in 0..100 {
            let late = backoff(MIN_RETRY_DELAY, max, 40);
            assert!(late <= max && late >= Duration::from_secs(4), "{late:?}");
        }
    }

    #[test]
    fn artifacts_are_sniffed() {
        assert_eq!(
            ArtifactKind::sniff(b"\0asm\x0d\0\x01\0").unwrap(),
            ArtifactKind::Wasm
        );
        assert_eq!(
            ArtifactKind::sniff(&[0x1f, 0x8b, 8]).unwrap(),
            ArtifactKind::Tarball
        );
        assert!(ArtifactKind::sniff(b"<html>").is_err());
    }

    #[test]
    fn persisting_replaces_the_other_kind() {
        let dir = std::env::temp_dir().join(format!("sark-persist-{}", uuid::Uuid::new_v4()));
        persist(&dir, &[0x1f, 0x8b, 1]).unwrap();
        persist(&dir, b"\0asm\x0d\0\x01\0").unwrap();
        assert!(dir.join("bundle.wasm").exists());
        assert!(!dir.join("bundle.tar.gz").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
