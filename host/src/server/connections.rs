//! The accept loop: connection hygiene `axum::serve` does not offer. At most
//! `server.max_connections` connections are served at once (one more is closed on accept);
//! a request's head must arrive within `server.header_timeout_ms` of the connection's start
//! or of the previous response (slowloris and idle keep-alive connections are closed); its
//! body within `server.body_timeout_ms` ([`body_deadline`]). With TLS, the handshake is
//! part of the header timeout. On shutdown, in-flight requests finish and idle connections
//! close.

use super::respond::opa_error;
use super::tls::{PeerCertificates, Tls};
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

/// The bound HTTP port, and its TLS settings when it serves HTTPS.
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// HTTPS (`server.tls_cert_file`): handshakes on this port's connections.
    pub tls: Option<Arc<Tls>>,
}

/// Serves `app` (the router, or a [`super::remote`] door in front of it) on `listener`
/// until `shutdown` ends, under the limits of `config`. A TLS handshake counts towards the
/// header timeout.
pub async fn serve<S>(
    listener: Listener,
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
    let header_timeout = Duration::from_millis(config.header_timeout_ms);
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.tcp.accept() => accepted,
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
        let app = app.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        match &listener.tls {
            None => {
                tokio::spawn(async move {
                    connection(&http, watcher, TokioIo::new(stream), app).await;
                    drop(slot);
                });
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let peer = stream.get_ref().1.peer_certificates().map(|c| {
                                PeerCertificates(c.iter().map(|c| c.clone().into_owned()).collect())
                            });
                            let app = WithPeer { inner: app, peer };
                            connection(&http, watcher, TokioIo::new(stream), app).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                    drop(slot);
                });
            }
        }
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!(after = ?DRAIN, "shutdown: some requests did not finish");
        }
    }
    Ok(())
}

/// Serves one connection until it closes (or shutdown closes it when idle).
async fn connection<I, S>(
    http: &hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    app: S,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: tower_service::Service<
            Request<hyper::body::Incoming>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let service = TowerToHyperService::new(app);
    if let Err(e) = watcher.watch(http.serve_connection(io, service)).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A connection's service that hands each request the client's certificates.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: Option<PeerCertificates>,
}

impl<S, B> tower_service::Service<Request<B>> for WithPeer<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(peer) = &self.peer {
            req.extensions_mut().insert(peer.clone());
        }
        self.inner.call(req)
    }
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
