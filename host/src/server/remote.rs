//! A server whose bundle comes from a bundle service (OPA's `bundles` section). It listens
//! at once; until the first bundle is active (persisted, or downloaded) its health is not
//! ready (OPA's `/health?bundles` 500), `/v1/status` shows the download, and every other
//! route answers 503 with OPA's error shape. Then the [`Door`] switches every connection,
//! keep-alive ones included, to the full router, and each later delivery is activated like
//! a reload.

use super::respond::{json_text, opa_error};
use super::{AppState, BundleOrigin, connections, reload, router};
use crate::bundle::Bundle;
use crate::config::Config;
use crate::decide::DecisionService;
use crate::management::{Arrival, RemoteBundle};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Everything a server fed by a bundle service starts from.
pub struct RemoteStart {
    /// The downloader.
    pub remote: Arc<RemoteBundle>,
    /// The persisted bundle to start with, when there is one.
    pub initial: Option<Bundle>,
    /// The configuration.
    pub config: Config,
    /// `--verification-key`.
    pub verification_key: Option<ed25519_dalek::VerifyingKey>,
    /// Builds the decision service around the first bundle.
    pub build: Box<dyn FnMut(Bundle) -> anyhow::Result<DecisionService> + Send>,
}

/// The router every request goes to, switchable while connections stay open.
pub struct Door(RwLock<Router>);

impl Door {
    fn current(&self) -> Router {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn open(&self, router: Router) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = router;
    }
}

/// [`Door`] as the service of each connection.
#[derive(Clone)]
struct DoorService(Arc<Door>);

impl tower_service::Service<Request<hyper::body::Incoming>> for DoorService {
    type Response = Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<hyper::body::Incoming>) -> Self::Future {
        let mut router = self.0.current();
        tower_service::Service::call(&mut router, req)
    }
}

/// Serves decisions from the bundle service's bundles until SIGTERM or ctrl-c.
pub async fn serve_remote(mut start: RemoteStart, addr: SocketAddr) -> anyhow::Result<()> {
    let remote = start.remote.clone();
    let origin = BundleOrigin::Remote(remote.clone());
    // A persisted bundle is loaded before the address is announced: the server answers
    // from it from its first request.
    let mut built = None;
    if let Some(bundle) = start.initial.take() {
        match tokio::task::block_in_place(|| (start.build)(bundle.clone())) {
            Ok(service) => {
                remote.activated(&bundle.manifest().revision);
                built = Some((service, bundle));
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the persisted bundle cannot be loaded")
            }
        }
    }
    let (listener, shutdown, ext_authz, hangup) =
        super::listen(addr, &origin, &start.config).await?;
    // SIGHUP asks the service now, from the start (its handler was installed before the
    // address was announced).
    #[cfg(not(unix))]
    let () = hangup;
    #[cfg(unix)]
    {
        let mut hup = hangup;
        let remote = remote.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!(bundle = %remote.name(), "SIGHUP: polling the bundle service now");
                remote.poll_now();
            }
        });
    }
    let waiting = Arc::new(Waiting {
        remote: remote.clone(),
        labels: start.config.labels.clone(),
    });
    // Status reports from the start: the download's state before there is a server state.
    let serving: Arc<OnceLock<Arc<AppState>>> = Arc::default();
    let (changes, reports) = tokio::sync::watch::channel(0);
    crate::management::status::forward(remote.subscribe(), changes.clone());
    {
        let serving = serving.clone();
        let waiting = waiting.clone();
        super::management::spawn_status_reports(
            &start.config,
            move || match serving.get() {
                Some(state) => super::management::report(state),
                None => report(&waiting),
            },
            reports,
        )?;
    }
    let (deliveries, mut arrivals) = mpsc::channel::<Arrival>(1);
    tokio::spawn(remote.clone().run(deliveries));
    let door = Arc::new(Door(RwLock::new(waiting_router(waiting))));
    let server_config = start.config.server.clone();
    let service = DoorService(door.clone());
    let mut accept = tokio::spawn(async move {
        connections::serve(listener, service, &server_config, shutdown).await
    });
    // The first bundle: the persisted one, else the first delivery the service builds.
    let (service, first) = loop {
        if let Some(ready) = built.take() {
            break ready;
        }
        let (bundle, reply) = tokio::select! {
            arrival = arrivals.recv() => match arrival {
                Some(a) => (a.bundle, a.reply),
                None => anyhow::bail!("the bundle downloader stopped"),
            },
            ended = &mut accept => return ended?,
        };
        let revision = bundle.manifest().revision.clone();
        match tokio::task::block_in_place(|| (start.build)(bundle.clone())) {
            Ok(service) => {
                let _ = reply.send(Ok(revision));
                built = Some((service, bundle));
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::error!(error = %message, "the bundle cannot be loaded");
                let _ = reply.send(Err(message));
            }
        }
    };
    eprintln!(
        "bundle {}: revision {:?} active",
        remote.name(),
        first.manifest().revision
    );
    let state = Arc::new(AppState::new(
        service,
        start.config,
        origin,
        start.verification_key,
    ));
    state.reloads.set_downloaded(first);
    let _ = serving.set(state.clone());
    super::start_background(&state, &changes)?;
    door.open(router(state.clone()));
    let grpc = ext_authz.start(&state);
    loop {
        tokio::select! {
            arrival = arrivals.recv() => {
                let Some(Arrival { bundle, reply }) = arrival else { break };
                let _ = reply.send(reload::activate_downloaded(&state, bundle).await);
            }
            ended = &mut accept => {
                ended??;
                break;
            }
        }
    }
    grpc.finish().await?;
    super::finish(&state).await;
    Ok(())
}

/// What the routes of a server with no active bundle know.
struct Waiting {
    remote: Arc<RemoteBundle>,
    labels: std::collections::BTreeMap<String, String>,
}

/// The routes of a server with no active bundle yet.
fn waiting_router(waiting: Arc<Waiting>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(super::admin::live))
        .route("/health/ready", get(not_ready_health))
        .route("/v1/status", get(status))
        .fallback(not_ready)
        .with_state(waiting)
}

/// The status report before activation: the download's state, the plugin not ready.
fn report(waiting: &Waiting) -> serde_json::Value {
    let remote = &waiting.remote;
    json!({
        "labels": crate::management::labels(&waiting.labels),
        "bundles": {remote.name(): remote.status()},
        "plugins": {"bundle": {"state": "NOT_READY"}},
    })
}

async fn status(State(waiting): State<Arc<Waiting>>) -> Response {
    json_text(
        StatusCode::OK,
        json!({"result": report(&waiting)}).to_string(),
    )
}

/// `/health`: with OPA's `bundles` or `plugins` parameters, OPA's 500; without, sark's
/// 503 `starting` with the download's state.
async fn health(
    State(waiting): State<Arc<Waiting>>,
    axum::extract::Query(params): super::management::Pairs,
) -> Response {
    let has = |name: &str| params.iter().any(|(k, _)| k == name);
    if has("bundles") || has("bundle") {
        return json_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"one or more bundles are not activated"}"#.into(),
        );
    }
    if has("plugins") {
        return json_text(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"one or more plugins are not up"}"#.into(),
        );
    }
    json_text(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "starting", "bundle": waiting.remote.status()}).to_string(),
    )
}

async fn not_ready_health(State(waiting): State<Arc<Waiting>>) -> Response {
    json_text(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "not ready", "error": why(&waiting.remote)}).to_string(),
    )
}

fn why(remote: &RemoteBundle) -> String {
    let status = remote.status();
    let mut message = format!(
        "no bundle is active yet: bundle \"{}\" has not been downloaded and activated",
        remote.name()
    );
    if let Some(e) = status.message {
        message.push_str(&format!(" (last attempt: {e})"));
    }
    message
}

/// Every other route before activation: 503 with OPA's error shape and `Retry-After`.
async fn not_ready(State(waiting): State<Arc<Waiting>>) -> Response {
    let mut response = opa_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "internal_error",
        &why(&waiting.remote),
        vec![],
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
