//! Decision log upload (OPA's `decision_logs.service`): events are held in a bounded buffer
//! (`reporting.buffer_size_limit_bytes`, in bytes of their JSON; when full, the oldest are
//! dropped and counted in `decision_logs_dropped_total`) and uploaded as gzip-compressed
//! JSON arrays of at most `upload_size_limit_bytes`, every `min_delay_seconds` to
//! `max_delay_seconds` (and as soon as half the buffer is used). A failed upload keeps its
//! events, in order, and is retried with backoff; shutdown flushes what is left.

use super::client::ServiceClient;
use super::config::DecisionLogsConfig;
use super::download::backoff;
use crate::metrics::Metrics;
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::RngExt;
use serde::Serialize;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The state of the uploads, in OPA's status shape (`decision_logs` of a status report).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UploadStatus {
    /// `decision_log_error` after a failed upload; absent after a success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The collector's HTTP status of a failed upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_code: Option<u16>,
}

/// Events waiting for upload, oldest first, and their total size.
#[derive(Default)]
struct Buffer {
    events: VecDeque<Vec<u8>>,
    bytes: u64,
}

/// The decision log uploader.
pub struct LogUploader {
    client: ServiceClient,
    resource: String,
    config: DecisionLogsConfig,
    buffer: Mutex<Buffer>,
    /// Wakes the upload loop early (half-full buffer, shutdown).
    wake: Notify,
    metrics: Arc<Metrics>,
    status: Mutex<UploadStatus>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl LogUploader {
    /// An uploader to `client` under `config`.
    pub fn new(client: ServiceClient, config: &DecisionLogsConfig, metrics: Arc<Metrics>) -> Self {
        LogUploader {
            client,
            resource: config.resource(),
            config: config.clone(),
            buffer: Mutex::new(Buffer::default()),
            wake: Notify::new(),
            metrics,
            status: Mutex::new(UploadStatus::default()),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    /// The last upload's outcome.
    pub fn status(&self) -> UploadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Ticks after every upload attempt (for status reports).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Events waiting, and their bytes.
    pub fn pending(&self) -> (usize, u64) {
        let b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        (b.events.len(), b.bytes)
    }

    /// Buffers one event (its JSON). Beyond the buffer's bound the oldest events are
    /// dropped and counted; nothing is dropped while there is room.
    pub fn push(&self, event: Vec<u8>) {
        let limit = self.config.reporting.buffer_limit();
        let max_events = self
            .config
            .reporting
            .buffer_size_limit_events
            .unwrap_or(u64::MAX);
        let len = event.len() as u64;
        let mut dropped = 0u64;
        let half_full = {
            let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
            while !b.events.is_empty()
                && (b.bytes + len > limit || b.events.len() as u64 >= max_events)
            {
                if let Some(old) = b.events.pop_front() {
                    b.bytes -= old.len() as u64;
                    dropped += 1;
                }
            }
            if len > limit {
                dropped += 1;
            } else {
                b.bytes += len;
                b.events.push_back(event);
            }
            b.bytes * 2 >= limit || b.events.len() as u64 * 2 >= max_events
        };
        if dropped > 0 {
            self.metrics.decision_logs_dropped(dropped);
        }
        if half_full {
            self.wake.notify_one();
        }
    }

    /// Uploads forever: after each delay (jittered between the reporting delays, backoff
    /// after a failure), or when woken early.
    pub async fn run(self: Arc<Self>) {
        let (min, max) = self.config.reporting.delays();
        let mut failures = 0u32;
        loop {
            let delay = if failures > 0 {
                backoff(
                    Duration::from_millis(100),
                    Duration::from_secs(max),
                    failures,
                )
            } else {
                Duration::from_secs_f64(rand::rng().random_range(min as f64..=max as f64))
            };
            if failures > 0 {
                // Backing off: a full buffer does not hurry a collector that is down.
                tokio::time::sleep(delay).await;
            } else {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.wake.notified() => {}
                }
            }
            match self.upload_all().await {
                Ok(()) => failures = 0,
                Err(()) => failures = failures.saturating_add(1),
            }
        }
    }

    /// Uploads until the buffer is empty or `deadline` passes (graceful shutdown). Returns
    /// whether everything went.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if self.pending().0 == 0 {
                return true;
            }
            let attempt = tokio::time::timeout_at(until, self.upload_all()).await;
            match attempt {
                Ok(Ok(())) => {}
                Ok(Err(())) => {
                    if tokio::time::timeout_at(until, tokio::time::sleep(Duration::from_secs(1)))
                        .await
                        .is_err()
                    {
                        return self.pending().0 == 0;
                    }
                }
                Err(_) => return self.pending().0 == 0,
            }
        }
    }

    /// Sends every buffered event, chunk after chunk; stops at the first failure, which
    /// puts its chunk back at the front of the buffer.
    async fn upload_all(&self) -> Result<(), ()> {
        loop {
            let Some((events, body)) = self.next_chunk() else {
                self.changed.send_modify(|n| *n += 1);
                return Ok(());
            };
            match self.send(body).await {
                Ok(()) => {
                    *self.status.lock().unwrap_or_else(|p| p.into_inner()) =
                        UploadStatus::default();
                }
                Err(status) => {
                    tracing::warn!(
                        error = status.message.as_deref().unwrap_or_default(),
                        events = events.len(),
                        "decision log upload failed; the events stay buffered"
                    );
                    self.requeue(events);
                    *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
                    self.changed.send_modify(|n| *n += 1);
                    return Err(());
                }
            }
        }
    }

    /// Takes the oldest events that fit one upload, and their gzip body. An event that does
    /// not fit alone is dropped and counted.
    fn next_chunk(&self) -> Option<(Vec<Vec<u8>>, Vec<u8>)> {
        let limit = self.config.reporting.upload_limit() as usize;
        loop {
            let mut taken = Vec::new();
            {
                let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
                // A first guess in uncompressed bytes: JSON events compress well.
                let mut budget = limit.saturating_mul(4);
                while let Some(front) = b.events.front() {
                    if !taken.is_empty() && front.len() + 1 > budget {
                        break;
                    }
                    budget = budget.saturating_sub(front.len() + 1);
                    let e = b.events.pop_front().expect("front exists");
                    b.bytes -= e.len() as u64;
                    taken.push(e);
                }
            }
            if taken.is_empty() {
                return None;
            }
            // Halve the chunk until its compressed form fits.
            let mut cut = taken.len();
            loop {
                let body = encode(&taken[..cut]);
                if body.len() <= limit {
                    let rest = taken.split_off(cut);
                    self.requeue(rest);
                    return Some((taken, body));
                }
                if cut == 1 {
                    tracing::warn!(
                        bytes = taken[0].len(),
                        limit,
                        "a decision event does not fit one upload (upload_size_limit_bytes); dropped"
                    );
                    self.metrics.decision_logs_dropped(1);
                    let rest = taken.split_off(1);
                    self.requeue(rest);
                    break;
                }
                cut /= 2;
            }
        }
    }

    /// Puts `events` back at the front of the buffer, in order.
    fn requeue(&self, events: Vec<Vec<u8>>) {
        if events.is_empty() {
            return;
        }
        let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        for e in events.into_iter().rev() {
            b.bytes += e.len() as u64;
            b.events.push_front(e);
        }
    }

    async fn send(&self, body: Vec<u8>) -> Result<(), UploadStatus> {
        let failed = |message: String, http_code: Option<u16>| UploadStatus {
            code: Some("decision_log_error".into()),
            message: Some(message),
            http_code,
        };
        let req = self
            .client
            .request(reqwest::Method::POST, &self.resource)
            .map_err(|e| failed(e, None))?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .timeout(self.client.header_timeout() + Duration::from_secs(30))
            .body(body);
        let resp = req
            .send()
            .await
            .map_err(|e| failed(format!("log upload failed: {e}"), None))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(failed(
                format!(
                    "log upload failed, server replied with HTTP {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or_default()
                ),
                Some(status.as_u16()),
            ))
        }
    }
}

/// A gzip-compressed JSON array of `events`.
fn encode(events: &[Vec<u8>]) -> Vec<u8> {
    // gzip's fastest level: a decision point spends its CPU on decisions (JSON events still
    // compress about 10×).
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    let mut write = || -> std::io::Result<()> {
        gz.write_all(b"[")?;
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                gz.write_all(b",")?;
            }
            gz.write_all(e)?;
        }
        gz.write_all(b"]")
    };
    write().expect("writing to memory");
    gz.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn chunks_are_gzip_json_arrays() {
        let body = encode(&[br#"{"a":1}"#.to_vec(), br#"{"b":2}"#.to_vec()]);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, r#"[{"a":1},{"b":2}]"#);
    }
}
