//! Status reports (OPA's `status` section): the same report as `GET /v1/status`, sent to
//! `POST <service>/status[/<partition_name>]` whenever something in it changes (a bundle
//! download attempt, an activation, a decision log upload), and printed when `console`.
//! As OPA, a failed report is not retried: the next change sends a fresh one.

use super::client::ServiceClient;
use super::config::StatusConfig;
use std::time::Duration;
use tokio::sync::watch;

/// Forwards every change of `from` to `to` (several sources into one reporter).
pub fn forward(mut from: watch::Receiver<u64>, to: watch::Sender<u64>) {
    tokio::spawn(async move {
        while from.changed().await.is_ok() {
            to.send_modify(|n| *n += 1);
        }
    });
}

/// Sends status reports.
pub struct StatusReporter {
    client: Option<ServiceClient>,
    resource: String,
    console: bool,
}

impl StatusReporter {
    /// A reporter to `client` (none: console only) under `config`.
    pub fn new(client: Option<ServiceClient>, config: &StatusConfig) -> Self {
        StatusReporter {
            client,
            resource: config.resource(),
            console: config.console,
        }
    }

    /// Reports once now, then after every change announced on `changes`, with the report
    /// `report` builds at that moment. Changes that arrive while a report is being sent
    /// are coalesced into the next one.
    pub async fn run(
        self,
        report: impl Fn() -> serde_json::Value + Send + 'static,
        mut changes: watch::Receiver<u64>,
    ) {
        loop {
            self.send(report()).await;
            if changes.changed().await.is_err() {
                return;
            }
            // Let a burst of changes settle into one report.
            tokio::time::sleep(Duration::from_millis(50)).await;
            changes.mark_unchanged();
        }
    }

    async fn send(&self, report: serde_json::Value) {
        if self.console {
            let line = serde_json::json!({
                "level": "info",
                "msg": "Status Log",
                "type": "openpolicyagent.org/status",
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                "status": report,
            });
            println!("{line}");
        }
        let Some(client) = &self.client else {
            return;
        };
        let req = match client.request(reqwest::Method::POST, &self.resource) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "status update failed");
                return;
            }
        };
        let sent = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(client.header_timeout() + Duration::from_secs(10))
            .body(report.to_string())
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => tracing::warn!(
                "status update failed, server replied with HTTP {} {}",
                resp.status().as_u16(),
                resp.status().canonical_reason().unwrap_or_default()
            ),
            Err(e) => tracing::warn!(error = %e, "status update failed"),
        }
    }
}
