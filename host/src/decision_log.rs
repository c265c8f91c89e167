//! The decision log: records queued by the request path (never blocking; a full queue
//! drops the record and counts it) and handled by one background task, which masks them and
//! hands them to the configured sinks: sark's JSON lines (`decision_log`, stdout or a
//! file), and OPA's decision events (`decision_logs`: printed on the console and/or
//! uploaded to a collector by [`crate::management::LogUploader`]).

use crate::config::DecisionLogConfig;
use crate::decide::Decision;
use crate::evaluator::EvalError;
use crate::management::LogUploader;
use crate::metrics::Metrics;
use sark_guest::PolicyError;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Handle to the decision log writer.
pub struct DecisionLog {
    tx: mpsc::Sender<Message>,
    metrics: Arc<Metrics>,
}

/// What the writer task receives.
enum Message {
    Record(Value),
    /// Everything queued before has been handed to the sinks; reply when the uploader has
    /// sent it (or the deadline passed).
    Flush(std::time::Duration, tokio::sync::oneshot::Sender<bool>),
}

/// Where OPA-shaped decision events go (`decision_logs`), and what they carry.
#[derive(Default)]
pub struct OpaEvents {
    /// `decision_logs.console`: one JSON line per event on stdout.
    pub console: bool,
    /// `decision_logs.service`: the uploader.
    pub upload: Option<Arc<LogUploader>>,
    /// The bundle's name (OPA's `bundles` key of each event).
    pub bundle_name: String,
    /// OPA's `labels` of each event.
    pub labels: Value,
}

impl DecisionLog {
    /// Opens sark's output when `config.enabled`, and starts the writer feeding it and
    /// `events` on a thread of its own (`sark-decision-log`, with the uploader's loop): the
    /// masking, encoding and compression of records never run on the request workers.
    pub fn start(
        config: &DecisionLogConfig,
        events: OpaEvents,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the decision log's runtime: {e}"))?;
        let (tx, mut rx) = mpsc::channel::<Message>(config.queue_size);
        let mut out: Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> = if !config.enabled {
            None
        } else if config.output == "stdout" {
            Some(Box::new(tokio::io::stdout()))
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&config.output)
                .map_err(|e| anyhow::anyhow!("cannot open decision log {}: {e}", config.output))?;
            Some(Box::new(tokio::fs::File::from_std(file)))
        };
        let mask = config.mask.clone();
        let writer = async move {
            if let Some(u) = &events.upload {
                tokio::spawn(u.clone().run());
            }
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut console = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                let mut flush = None;
                // Batch whatever else is already queued before writing.
                while let Some(message) = next.take() {
                    match message {
                        Message::Record(mut record) => {
                            apply_mask(&mut record, &mask);
                            if out.is_some() {
                                let _ = serde_json::to_writer(&mut buf, &record);
                                buf.push(b'\n');
                            }
                            if events.console || events.upload.is_some() {
                                // The record is not needed after this: its fields move.
                                let event = opa_event(record, &events);
                                if events.console {
                                    console_line(&mut console, &event);
                                }
                                if let Some(u) = &events.upload {
                                    u.push(serde_json::to_vec(&event).unwrap_or_default());
                                }
                            }
                        }
                        Message::Flush(deadline, reply) => {
                            flush = Some((deadline, reply));
                            break;
                        }
                    }
                    if buf.len() < 256 * 1024 {
                        next = rx.try_recv().ok();
                    }
                }
                if let Some(out) = &mut out
                    && !buf.is_empty()
                {
                    if let Err(e) = out.write_all(&buf).await {
                        tracing::error!(error = %e, "decision log write failed");
                    }
                    let _ = out.flush().await;
                }
                buf.clear();
                if !console.is_empty() {
                    let mut stdout = tokio::io::stdout();
                    let _ = stdout.write_all(&console).await;
                    let _ = stdout.flush().await;
                    console.clear();
                }
                if let Some((deadline, reply)) = flush {
                    let sent = match &events.upload {
                        Some(u) => u.flush(deadline).await,
                        None => true,
                    };
                    let _ = reply.send(sent);
                }
            }
        };
        std::thread::Builder::new()
            .name("sark-decision-log".into())
            .spawn(move || runtime.block_on(writer))
            .map_err(|e| anyhow::anyhow!("cannot start the decision log thread: {e}"))?;
        Ok(DecisionLog { tx, metrics })
    }

    /// Hands every queued record to the sinks and waits (up to `deadline`) until the
    /// uploader has sent them: graceful shutdown. Returns whether all were sent.
    pub async fn flush(&self, deadline: std::time::Duration) -> bool {
        let (reply, done) = tokio::sync::oneshot::channel();
        if self.tx.send(Message::Flush(deadline, reply)).await.is_err() {
            return false;
        }
        done.await.unwrap_or(false)
    }

    /// Queues a record of one decision; never blocks. A failed decision is recorded without
    /// `result` and with `error` (an unknown entrypoint is undefined, as the data API answers).
    pub fn record(
        &self,
        decision_id: &str,
        path: &str,
        input: Option<&Value>,
        outcome: &Result<Decision, EvalError>,
    ) {
        let decision = outcome.as_ref().ok();
        let result = decision
            .and_then(|d| d.result.as_deref())
            .and_then(|r| serde_json::from_str::<Value>(r).ok());
        let mut record = json!({
            "decision_id": decision_id,
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "path": sark_guest::normalize_entrypoint(path),
            "input": input.cloned().unwrap_or(Value::Null),
        });
        if let Some(r) = result {
            record["result"] = r;
        }
        if let Some(d) = decision {
            record["bundle"] = json!(d.bundle_id.to_string());
            record["implementation"] = json!(d.path.as_str());
            record["cache_hit"] = json!(d.cache_hit);
            record["canary"] = json!(d.canary);
            record["latency_us"] = json!(d.elapsed.as_secs_f64() * 1e6);
            if let Some(f) = d.fallback_from {
                record["fallback_from"] = json!(f);
            }
        }
        if let Err(e) = outcome
            && !matches!(e, EvalError::Policy(PolicyError::UnknownEntrypoint(_)))
        {
            record["error"] = json!({"code": e.kind(), "message": e.to_string()});
        }
        if self.tx.try_send(Message::Record(record)).is_err() {
            self.metrics.decision_log_dropped();
        }
    }
}

/// The OPA decision event of a (masked) sark record: OPA's fields (`labels`,
/// `decision_id`, `bundles`, `path` in OPA's `a/b` form, `input`, `result`, `erased`,
/// `timestamp`, `metrics`, `error`) and sark's own (`implementation`, `cache_hit`,
/// `canary`, `fallback_from`).
fn opa_event(record: Value, events: &OpaEvents) -> Value {
    let Value::Object(mut record) = record else {
        return Value::Null;
    };
    let mut event = serde_json::Map::new();
    event.insert("labels".into(), events.labels.clone());
    for key in [
        "decision_id",
        "input",
        "result",
        "erased",
        "timestamp",
        "error",
    ] {
        if let Some(v) = record.remove(key) {
            event.insert(key.into(), v);
        }
    }
    if let Some(p) = record.get("path").and_then(Value::as_str) {
        event.insert("path".into(), Value::String(slash_path(p)));
    }
    if let Some(id) = record.get("bundle").and_then(Value::as_str) {
        // The bundle id is `<revision>@<content hash>`.
        let revision = id.rsplit_once('@').map_or(id, |(r, _)| r);
        event.insert(
            "bundles".into(),
            json!({events.bundle_name.as_str(): {"revision": revision}}),
        );
    }
    if let Some(us) = record.get("latency_us").and_then(Value::as_f64) {
        event.insert(
            "metrics".into(),
            json!({"timer_server_handler_ns": (us * 1000.0) as u64}),
        );
    }
    for key in ["implementation", "cache_hit", "canary", "fallback_from"] {
        if let Some(v) = record.remove(key) {
            event.insert(key.into(), v);
        }
    }
    Value::Object(event)
}

/// OPA's console line of an event: its fields with `level`, `msg`, `time` and `type`.
fn console_line(out: &mut Vec<u8>, event: &Value) {
    let mut line = event.clone();
    line["level"] = json!("info");
    line["msg"] = json!("Decision Log");
    line["time"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    line["type"] = json!("openpolicyagent.org/decision_logs");
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}

/// `data.a.b["c-d"]` → `a/b/c-d` (OPA's event path).
fn slash_path(normalized: &str) -> String {
    let rest = normalized.strip_prefix("data").unwrap_or(normalized);
    let mut segments = Vec::new();
    let mut chars = rest;
    while !chars.is_empty() {
        if let Some(r) = chars.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            segments.push(r[..end].to_string());
            chars = &r[end..];
        } else if let Some(r) = chars.strip_prefix('[') {
            // A JSON string in brackets.
            let mut de = serde_json::Deserializer::from_str(r).into_iter::<String>();
            match de.next() {
                Some(Ok(seg)) => {
                    let used = de.byte_offset();
                    segments.push(seg);
                    chars = r[used..].strip_prefix(']').unwrap_or(&r[used..]);
                }
                _ => return normalized.to_string(),
            }
        } else {
            return normalized.to_string();
        }
    }
    segments.join("/")
}

/// Removes the fields at the JSON `pointers` and lists the removed ones under `erased`.
pub fn apply_mask(record: &mut Value, pointers: &[String]) {
    let mut erased = Vec::new();
    for pointer in pointers {
        let Some((parent, last)) = pointer.rsplit_once('/') else {
            continue;
        };
        let key = last.replace("~1", "/").replace("~0", "~");
        let target = if parent.is_empty() {
            Some(&mut *record)
        } else {
            record.pointer_mut(parent)
        };
        if let Some(Value::Object(map)) = target
            && map.remove(&key).is_some()
        {
            erased.push(Value::String(pointer.clone()));
        }
    }
    if !erased.is_empty() {
        record["erased"] = Value::Array(erased);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_paths_are_opa_paths() {
        assert_eq!(
            slash_path("data.mcp.gateway.decision"),
            "mcp/gateway/decision"
        );
        assert_eq!(slash_path(r#"data.a["b-c"].d"#), "a/b-c/d");
        assert_eq!(slash_path("data"), "");
    }

    #[test]
    fn opa_events_carry_opa_fields() {
        let record = json!({"decision_id": "x", "path": "data.a.b", "input": {"u": 1},
            "result": true, "bundle": "r1@abc", "latency_us": 2.5, "timestamp": "t",
            "cache_hit": false, "erased": ["/input/p"]});
        let events = OpaEvents {
            bundle_name: "authz".into(),
            labels: json!({"id": "i"}),
            ..Default::default()
        };
        let e = opa_event(record, &events);
        assert_eq!(e["path"], "a/b");
        assert_eq!(e["bundles"], json!({"authz": {"revision": "r1"}}));
        assert_eq!(e["labels"], json!({"id": "i"}));
        assert_eq!(e["metrics"]["timer_server_handler_ns"], 2500);
        assert_eq!(e["erased"], json!(["/input/p"]));
        assert_eq!(e["result"], true);
    }

    #[test]
    fn masks_nested_fields_and_lists_them() {
        let mut r = json!({"input": {"parameters": {"password": "p", "db": {"token": "t", "name": "n"}}, "user": "u"}});
        apply_mask(
            &mut r,
            &[
                "/input/parameters/password".into(),
                "/input/parameters/db/token".into(),
                "/input/absent".into(),
            ],
        );
        assert_eq!(
            r["input"],
            json!({"parameters": {"db": {"name": "n"}}, "user": "u"})
        );
        assert_eq!(
            r["erased"],
            json!(["/input/parameters/password", "/input/parameters/db/token"])
        );
    }
}
