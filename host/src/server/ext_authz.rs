//! Envoy's external authorization over gRPC (`envoy.service.auth.v3.Authorization/Check`)
//! on a port of its own (`ext_authz.addr`), with the gRPC health service beside it. Each
//! `Check` is one decision through `decide()`: cache, flags, canary, metrics, decision log.

use super::{AppState, decide};
use crate::config::ExtAuthzConfig;
use crate::decide::DecisionRequest;
use crate::evaluator::EvalError;
use crate::ext_authz::{
    check_input, check_response, dry_run, request_parse_error_response, with_decision_id,
};
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse,
};
use std::sync::Arc;

/// The `Authorization` service over the server's state.
struct Check {
    state: Arc<AppState>,
    config: ExtAuthzConfig,
}

#[tonic::async_trait]
impl Authorization for Check {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let received = std::time::Instant::now();
        let request = request.into_inner();
        let input = match check_input(&request, self.config.skip_request_body_parse) {
            Ok(input) => input,
            // As opa-envoy-plugin: a denied answer (400) saying why, no decision.
            Err(message) => {
                tracing::debug!(error = %message, "ext_authz: the request cannot be read");
                return Ok(tonic::Response::new(request_parse_error_response(&message)));
            }
        };
        let user = request
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .and_then(|h| h.headers.get(&self.config.user_header))
            .map(String::as_str)
            .unwrap_or("");
        let mut req = DecisionRequest::new(&self.config.path, Some(&input)).received_at(received);
        req.user_key = Some(user);
        let answer = decide(&self.state, &req);
        let decision_id = answer.id_or_new();
        // Shed load is retryable: `UNAVAILABLE`, which Envoy's retry policy knows.
        if let Err(e @ EvalError::Overloaded { .. }) = &answer.outcome {
            return Err(tonic::Status::unavailable(e.to_string()));
        }
        let outcome = answer.outcome.map_err(|e| e.to_string()).and_then(|d| {
            let result = match d.result.as_deref() {
                None => None,
                Some(text) => Some(
                    serde_json::from_str(text)
                        .map_err(|e| format!("the policy's result is not JSON: {e}"))?,
                ),
            };
            check_response(result.as_ref())
        });
        match outcome {
            Ok(outcome) => {
                let outcome = if self.config.dry_run {
                    dry_run(outcome)
                } else {
                    outcome
                };
                let mut response = outcome.response;
                with_decision_id(&mut response, &decision_id);
                Ok(tonic::Response::new(response))
            }
            // An undefined or malformed decision, or a failed evaluation, is the call's
            // error (`UNKNOWN`), as opa-envoy-plugin answers it, dry-run or not: Envoy's
            // `failure_mode_allow` decides.
            Err(message) => {
                tracing::warn!(
                    decision_id = %decision_id,
                    error = %message,
                    "ext_authz decision failed"
                );
                Err(tonic::Status::unknown(message))
            }
        }
    }
}

/// Binds `ext_authz.addr` and announces it (`ext_authz listening on <addr>`), so a port
/// in use fails the start rather than a later request.
pub async fn bind(config: &ExtAuthzConfig) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = config.socket_addr().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("ext_authz: cannot listen on {addr}: {e}"))?;
    // Scripts and tests read this line to learn the port.
    println!("ext_authz listening on {}", listener.local_addr()?);
    Ok(listener)
}

/// Serves `Check` and the gRPC health service on `listener` until `shutdown`.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = state.config.ext_authz.clone().unwrap_or_default();
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AuthorizationServer<Check>>().await;
    let max_message = state
        .config
        .limits
        .max_input_bytes
        .saturating_add(64 * 1024);
    let check =
        AuthorizationServer::new(Check { state, config }).max_decoding_message_size(max_message);
    // Small messages on long-lived HTTP/2 connections: never wait to coalesce them.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |conn| {
            if let Ok(stream) = &conn {
                let _ = stream.set_nodelay(true);
            }
            conn
        },
    );
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(check)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("ext_authz server: {e}"))
}
