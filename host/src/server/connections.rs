//! The accept loop: connection hygiene `axum::serve` does not offer. At most
//! `server.max_connections` connections are served at once (one more is closed on accept);
//! a request's head must arrive within `server.header_timeout_ms` of the connection's start
//! or of the previous response (slowloris and idle keep-alive connections are closed); its
//! body within `server.body_timeout_ms` ([`body_deadline`]). On shutdown, in-flight requests
//! finish and idle connections close.

use super::respond::opa_error;
use crate::config::ServerConfig;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long shutdown waits for in-flight requests before it gives up on them.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` (the router, or a [`super::remote`] door in front of it) on `listener`
/// until `shutdown` ends, under the limits of `config`.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    config: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()>
where
    S: tower_service::Service<
            Request<hyper::body::Incoming>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_timeout_ms));
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: back off a little instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    max_connections = config.max_connections,
                    refused,
                    "connection limit reached: new connections are closed"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!(after = ?DRAIN, "shutdown: some requests did not finish");
        }
    }
    Ok(())
}

/// Reads a request's whole body within `timeout` (408 past it) before the handler runs;
/// `cap` bounds what is read (the routes' own limits then apply as before).
pub async fn body_deadline(timeout: Duration, cap: usize, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, cap)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => opa_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "request body exceeds the size limit",
            vec![],
        ),
        Err(_) => {
            let mut r = opa_error(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                &format!(
                    "the request body did not arrive within {} ms (server.body_timeout_ms)",
                    timeout.as_millis()
                ),
                vec![],
            );
            // The rest of the body is not read: the connection cannot carry another request.
            r.headers_mut().insert(
                axum::http::header::CONNECTION,
                "close".parse().expect("valid header"),
            );
            r.into_response()
        }
    }
}
