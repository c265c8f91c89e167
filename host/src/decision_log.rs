//! The decision log: JSON lines written by a background task. The request path only
//! enqueues (never blocks); a full queue drops the record and counts it.

use crate::config::DecisionLogConfig;
use crate::decide::Decision;
use crate::evaluator::EvalError;
use crate::metrics::Metrics;
use sark_guest::PolicyError;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Handle to the decision log writer.
pub struct DecisionLog {
    tx: mpsc::Sender<Value>,
    metrics: Arc<Metrics>,
}

impl DecisionLog {
    /// Opens the output and starts the writer task on `runtime`.
    pub fn start(
        config: &DecisionLogConfig,
        metrics: Arc<Metrics>,
        runtime: &tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Value>(config.queue_size);
        let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if config.output == "stdout" {
            Box::new(tokio::io::stdout())
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&config.output)
                .map_err(|e| anyhow::anyhow!("cannot open decision log {}: {e}", config.output))?;
            Box::new(tokio::fs::File::from_std(file))
        };
        let mask = config.mask.clone();
        runtime.spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            while let Some(mut record) = rx.recv().await {
                apply_mask(&mut record, &mask);
                let _ = serde_json::to_writer(&mut buf, &record);
                buf.push(b'\n');
                // Batch whatever else is already queued before writing.
                while buf.len() < 256 * 1024 {
                    match rx.try_recv() {
                        Ok(mut r) => {
                            apply_mask(&mut r, &mask);
                            let _ = serde_json::to_writer(&mut buf, &r);
                            buf.push(b'\n');
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = out.write_all(&buf).await {
                    tracing::error!(error = %e, "decision log write failed");
                }
                let _ = out.flush().await;
                buf.clear();
            }
        });
        Ok(DecisionLog { tx, metrics })
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
        if self.tx.try_send(record).is_err() {
            self.metrics.decision_log_dropped();
        }
    }
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
