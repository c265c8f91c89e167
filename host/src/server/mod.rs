//! `sark serve`: the policy decision point over HTTP — OPA-compatible data and query API,
//! the SARK gateway API, health, metrics, the admin API and the rollout console — with hot
//! reload, policy canaries and a decision log.

// Handlers return `Result<_, Response>` to short-circuit with a finished HTTP response; the
// size of `Response` is axum's, and these are cold error paths.
#![allow(clippy::result_large_err)]

mod admin;
mod admission;
mod authz;
mod authzen;
mod client_cert;
mod connections;
mod console;
mod data_api;
mod ext_authz;
mod gateway;
mod management;
mod opa;
mod policy_api;
mod reload;
mod remote;
mod respond;
mod tls;

pub use reload::{ReloadEvent, ReloadStatus};
pub use remote::{RemoteStart, serve_remote};
pub use tls::PeerCertificates;

use crate::config::Config;
use crate::decide::{Decision, DecisionRequest, DecisionService, Lookup};
use crate::evaluator::EvalError;
use crate::management::RemoteBundle;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post, put};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything the handlers share.
pub struct AppState {
    /// The one door to decisions.
    pub service: Arc<DecisionService>,
    /// The configuration the server started with.
    pub config: Config,
    /// The admin bearer token; `None` turns the admin API off.
    pub admin_token: Option<String>,
    /// Where the bundle comes from: the file reloads read, or the bundle service.
    pub origin: BundleOrigin,
    /// When set, every bundle (and every reload) must be signed by this key.
    pub verification_key: Option<ed25519_dalek::VerifyingKey>,
    /// Reload bookkeeping (serializes reloads, remembers the last outcome).
    pub reloads: reload::Reloader,
    /// This instance's id (OPA's `labels.id`), new at every start.
    pub instance_id: String,
    /// Serializes data writes on this instance, from planning to commit.
    pub data_writes: tokio::sync::Mutex<()>,
    /// The bound on concurrent evaluations (`server.max_concurrent_evaluations`).
    pub admission: admission::Admission,
    /// The sampled time series of the live comparison (`/admin/timeseries`, the console).
    pub series: crate::metrics::TimeSeries,
}

impl AppState {
    /// The server's state around `service` (built with [`crate::decide::ServiceBuilder`]).
    /// The admin token is `server.admin_token`, else `$SARK_ADMIN_TOKEN`; empty means off.
    pub fn new(
        service: DecisionService,
        config: Config,
        origin: BundleOrigin,
        verification_key: Option<ed25519_dalek::VerifyingKey>,
    ) -> Self {
        let admin_token = config
            .server
            .admin_token
            .clone()
            .or_else(|| std::env::var("SARK_ADMIN_TOKEN").ok())
            .filter(|t| !t.is_empty());
        let reloads = reload::Reloader::default();
        reloads.started(&service.active());
        let admission = admission::Admission::new(&config.server);
        let series = crate::metrics::TimeSeries::new(std::time::Duration::from_millis(
            config.server.timeseries_interval_ms,
        ));
        AppState {
            service: Arc::new(service),
            config,
            admin_token,
            origin,
            verification_key,
            reloads,
            instance_id: crate::management::instance_id().to_string(),
            data_writes: tokio::sync::Mutex::new(()),
            admission,
            series,
        }
    }

    /// The bundle's name in OPA's terms (policy ids, status, provenance): the name of its
    /// `bundles` entry, or the bundle file's name without its extension.
    pub fn bundle_name(&self) -> String {
        self.origin.name()
    }

    /// The bundle service's downloader, when the bundle comes from one.
    pub fn remote(&self) -> Option<&Arc<RemoteBundle>> {
        match &self.origin {
            BundleOrigin::Remote(r) => Some(r),
            BundleOrigin::File(_) => None,
        }
    }
}

/// Where `sark serve`'s bundle comes from.
pub enum BundleOrigin {
    /// A bundle file (`--bundle`), reloaded when it changes.
    File(PathBuf),
    /// A bundle service (OPA's `bundles` section), polled by the downloader.
    Remote(Arc<RemoteBundle>),
}

impl BundleOrigin {
    /// The bundle's name in OPA's terms: the `bundles` entry's name, or the file's name
    /// without its extension.
    pub fn name(&self) -> String {
        match self {
            BundleOrigin::Remote(remote) => remote.name().to_string(),
            BundleOrigin::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "sark".into()),
        }
    }
}

impl std::fmt::Display for BundleOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleOrigin::File(p) => write!(f, "{}", p.display()),
            BundleOrigin::Remote(r) => write!(f, "bundle service ({})", r.name()),
        }
    }
}

/// Builds the router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state
        .config
        .limits
        .max_input_bytes
        .saturating_add(64 * 1024);
    // Data writes carry documents up to `limits.max_data_bytes`, not an input's size.
    let write_limit = state.config.limits.max_data_bytes.saturating_add(64 * 1024);
    let writes = |r: MethodRouter<Arc<AppState>>| r.layer(DefaultBodyLimit::max(write_limit));
    // Bodies are read within the body timeout, up to the limit of their kind: only the
    // writes (`PUT`, `PATCH`) carry documents larger than an input.
    let body_timeout = std::time::Duration::from_millis(state.config.server.body_timeout_ms);
    let body_cap = move |method: &axum::http::Method| match *method {
        axum::http::Method::PUT | axum::http::Method::PATCH => write_limit.max(body_limit),
        _ => body_limit,
    };
    let router = Router::new()
        .route("/", post(opa::post_default))
        .route(
            "/v1/data",
            post(opa::post_data_root)
                .get(opa::get_data_root)
                .merge(writes(put(data_api::put_root).patch(data_api::patch_root))),
        )
        .route(
            "/v1/data/{*path}",
            post(opa::post_data)
                .get(opa::get_data)
                .delete(data_api::delete_path)
                .merge(writes(put(data_api::put_path).patch(data_api::patch_path))),
        )
        .route("/v1/policies", get(policy_api::list))
        .route(
            "/v1/policies/{*id}",
            get(policy_api::get)
                .put(policy_api::put)
                .delete(policy_api::delete),
        )
        .route("/v1/config", get(management::config))
        .route("/v1/status", get(management::status))
        .route("/v1/compile", post(management::compile))
        .route(
            "/v1/compile/{*path}",
            post(management::compile).get(management::compile),
        )
        .route("/v0/data/{*path}", post(opa::post_v0_data))
        .route("/v1/query", post(opa::post_query).get(opa::get_query))
        .route("/v1/batch/data/{*path}", post(opa::post_batch))
        .route("/api/v1/gateway/authorize", post(gateway::authorize))
        .route(
            "/api/v1/gateway/authorize-a2a",
            post(gateway::authorize_a2a),
        )
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route("/access/v1/search/{kind}", post(authzen::search))
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::configuration),
        )
        .route("/health", get(admin::health))
        .route("/health/live", get(admin::live))
        .route("/health/ready", get(admin::ready))
        .route("/metrics", get(admin::metrics))
        .route("/admin/features", get(admin::features))
        .route("/admin/rollout/update", post(admin::rollout_update))
        .route("/admin/rollout/rollback", post(admin::rollout_rollback))
        .route(
            "/admin/rollout/rollback-all",
            post(admin::rollout_rollback_all),
        )
        .route("/admin/metrics/comparison", get(admin::comparison))
        .route("/admin/timeseries", get(admin::timeseries))
        .route("/admin/canary", get(admin::canary))
        .route("/admin/bundle", get(admin::bundle))
        .route("/admin/bundle/reload", post(admin::bundle_reload))
        .route("/console", get(console::page))
        .route("/console/{asset}", get(console::asset))
        .fallback(respond::not_found)
        .method_not_allowed_fallback(respond::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit));
    let router = match state.config.server.authorization {
        crate::config::Authorization::Basic => router.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authz::check,
        )),
        crate::config::Authorization::Off => router,
    };
    router
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next| {
                let cap = body_cap(req.method());
                connections::body_deadline(body_timeout, cap, req, next)
            },
        ))
        .layer(axum::middleware::from_fn(respond::opa_paths))
        .with_state(state)
}

/// Serves until SIGTERM or ctrl-c, then finishes in-flight requests.
pub async fn serve(state: Arc<AppState>, addr: SocketAddr) -> anyhow::Result<()> {
    let (listener, shutdown, ext_authz, hangup) =
        listen(addr, &state.origin, &state.config).await?;
    let (changes, reports) = tokio::sync::watch::channel(0);
    let reported = state.clone();
    management::spawn_status_reports(
        &state.config,
        move || management::report(&reported),
        reports,
    )?;
    start_background(&state, &changes)?;
    reload::spawn_watchers(state.clone(), hangup)?;
    let grpc = ext_authz.start(&state);
    let config = state.config.server.clone();
    connections::serve(listener, router(state.clone()), &config, shutdown).await?;
    grpc.finish().await?;
    finish(&state).await;
    Ok(())
}

/// The ext_authz gRPC server, bound at start and served once there is a state.
pub(crate) struct ExtAuthzStart {
    bound: Option<(tokio::net::TcpListener, tokio::sync::watch::Receiver<bool>)>,
}

/// The ext_authz gRPC server while it runs.
pub(crate) struct ExtAuthzRunning(Option<tokio::task::JoinHandle<anyhow::Result<()>>>);

impl ExtAuthzStart {
    /// Serves `Check` over `state` until the shared shutdown.
    pub(crate) fn start(self, state: &Arc<AppState>) -> ExtAuthzRunning {
        ExtAuthzRunning(self.bound.map(|(listener, mut stop)| {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::spawn(ext_authz::serve(state.clone(), listener, stopped))
        }))
    }
}

impl ExtAuthzRunning {
    /// Waits for the gRPC server to finish its in-flight calls after the shutdown.
    pub(crate) async fn finish(self) -> anyhow::Result<()> {
        match self.0 {
            Some(task) => task
                .await
                .map_err(|e| anyhow::anyhow!("ext_authz server task: {e}"))?,
            None => Ok(()),
        }
    }
}

/// Binds the ext_authz port when configured, and shares `shutdown` between the HTTP
/// server (the returned future) and the gRPC server.
async fn with_ext_authz(
    config: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(
    impl std::future::Future<Output = ()> + Send + 'static,
    ExtAuthzStart,
)> {
    let listener = match &config.ext_authz {
        Some(c) => Some(ext_authz::bind(c).await?),
        None => None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    Ok((
        shutdown,
        ExtAuthzStart {
            bound: listener.map(|l| (l, stopped)),
        },
    ))
}

/// How long shutdown waits for the decision log uploader to send what is buffered.
const LOG_FLUSH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// After the last request: flushes the decision log (uploads included).
async fn finish(state: &AppState) {
    if !state.service.flush_decision_logs(LOG_FLUSH_DEADLINE).await {
        tracing::warn!(
            deadline = ?LOG_FLUSH_DEADLINE,
            "shutdown: decision events possibly still in the upload buffer"
        );
    }
    tracing::info!("sark serve stopped");
}

/// Binds `addr`, installs the signal handlers and announces the address. Signal handlers
/// are installed before the address is announced: a supervisor that sends SIGHUP or
/// SIGTERM as soon as the server is up must never hit the default action (which
/// terminates the process).
/// The ext_authz port (when configured) is bound and announced before the HTTP address, so
/// a client that read the HTTP address finds both; SIGHUP's handler is installed before it
/// too (its default action ends the process) and handed back for the caller to serve.
async fn listen(
    addr: SocketAddr,
    origin: &BundleOrigin,
    config: &Config,
) -> anyhow::Result<(
    connections::Listener,
    impl std::future::Future<Output = ()> + Send + 'static,
    ExtAuthzStart,
    Hangup,
)> {
    let tls = tls::Tls::from_config(&config.server)?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = tcp.local_addr()?;
    let shutdown = shutdown_signal()?;
    let hangup = hangup_signal()?;
    let (shutdown, ext_authz) = with_ext_authz(config, shutdown).await?;
    if let Some(tls) = &tls {
        tls.spawn_refresh(std::time::Duration::from_millis(
            config.server.tls_refresh_ms,
        ));
    }
    warn_about_security(&config.server);
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Scripts and tests read this line to learn the port.
    println!("listening on {scheme}://{local}");
    tracing::info!(%local, bundle = %origin, "sark serve started");
    Ok((
        connections::Listener { tcp, tls },
        shutdown,
        ext_authz,
        hangup,
    ))
}

/// Says at start what OPA says of settings that protect nothing.
fn warn_about_security(server: &crate::config::ServerConfig) {
    use crate::config::{Authentication, Authorization};
    if server.authentication == Authentication::Token && server.authorization == Authorization::Off
    {
        eprintln!(
            "warning: token authentication without authorization (server.authorization: basic) rejects nothing"
        );
    }
    if server.authentication != Authentication::Off && server.tls_cert_file.is_none() {
        eprintln!("warning: authentication over plain HTTP: credentials travel in clear text");
    }
}

/// SIGHUP, installed (so a SIGHUP reloads rather than ends the process) but not yet served.
#[cfg(unix)]
pub(crate) type Hangup = tokio::signal::unix::Signal;
/// No SIGHUP off Unix.
#[cfg(not(unix))]
pub(crate) type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> anyhow::Result<Hangup> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| anyhow::anyhow!("cannot install the SIGHUP handler: {e}"))
}

#[cfg(not(unix))]
fn hangup_signal() -> anyhow::Result<Hangup> {
    Ok(())
}

/// How often the server checks for instances lost to traps and replaces them.
const REPLENISH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// The longest wait between attempts while replacements keep failing.
const REPLENISH_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// The server's background tasks: reload triggers, memory release, replacing instances lost
/// to traps, data catch-up, the time
/// series sampler; and the changes status reports follow (reloads, decision log uploads)
/// forwarded to `changes`.
fn start_background(
    state: &Arc<AppState>,
    changes: &tokio::sync::watch::Sender<u64>,
) -> anyhow::Result<()> {
    crate::management::status::forward(state.reloads.changed.subscribe(), changes.clone());
    if let Some(uploader) = state.service.log_uploader() {
        crate::management::status::forward(uploader.subscribe(), changes.clone());
    }
    if state.admin_token.is_none() {
        eprintln!("admin API off: no server.admin_token or SARK_ADMIN_TOKEN");
    }
    // Hostile or heavy decisions on the native path allocate and free a lot between reloads;
    // hand the free pages back every 10 s so resident memory tracks what is in use.
    tokio::spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(crate::allocator::release_free_memory).await;
        }
    });
    // An instance that trapped is dropped; its replacement is made here, off the request
    // path, so the decisions after a hostile one do not pay for loading the payload. When
    // replacements fail (no free instance slot, written documents that do not apply), the
    // checks back off to REPLENISH_MAX_BACKOFF rather than instantiate every tick.
    let pools = state.service.clone();
    tokio::spawn(async move {
        let mut wait = REPLENISH_INTERVAL;
        loop {
            tokio::time::sleep(wait).await;
            if pools.missing_instances() == 0 {
                wait = REPLENISH_INTERVAL;
                continue;
            }
            let worker = pools.clone();
            let refilled = tokio::task::spawn_blocking(move || {
                worker.replenish_pools();
                worker.missing_instances() == 0
            })
            .await
            .unwrap_or(false);
            if refilled {
                wait = REPLENISH_INTERVAL;
            } else {
                if wait == REPLENISH_INTERVAL {
                    tracing::warn!(
                        "instances lost to traps could not all be replaced; retrying with backoff"
                    );
                }
                wait = (wait * 2).min(REPLENISH_MAX_BACKOFF);
            }
        }
    });
    // Bundles on the carried evaluator move to their own snapshots once compiled.
    let settle = std::time::Duration::from_millis(state.config.server.snapshot_delay_ms);
    tokio::spawn(state.service.clone().adopt_snapshots_in_background(settle));
    // The time series of the console and `/admin/timeseries`: the baseline now, before the
    // first request is served, then the point of each interval.
    let sampled = state.clone();
    sampled
        .series
        .sample(state.service.metrics(), state.service.cache().stats());
    tokio::spawn(async move {
        let period = sampled.series.interval();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let service = &sampled.service;
            sampled
                .series
                .sample(service.metrics(), service.cache().stats());
        }
    });
    // After a write, idle instances apply it in the background, so decisions do not pay
    // for applying a large document.
    let warm = state.service.clone();
    let mut written = warm.data().subscribe();
    tokio::spawn(async move {
        while written.changed().await.is_ok() {
            let service = warm.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let bundles = std::iter::once(service.active()).chain(service.candidate());
                bundles.map(|b| b.catch_up_idle()).sum::<usize>()
            })
            .await;
        }
    });
    Ok(())
}

/// Installs the SIGTERM and SIGINT (ctrl-c) handlers now; the returned future ends on either.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| anyhow::anyhow!("cannot install the {name} handler: {e}"))
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

/// Ends on ctrl-c (registered when first polled).
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

/// A decision as a front door gets it: its id and the decision, or why it failed.
pub(crate) struct Answer {
    /// The decision id under which the decision log recorded it (OPA's `decision_id`); none
    /// while the decision log is off, as OPA answers without one then.
    pub decision_id: Option<String>,
    /// The decision, or why it failed.
    pub outcome: Result<Decision, EvalError>,
}

impl Answer {
    /// The decision id, or a new one when the decision was not logged (for the doors that
    /// always carry one: the gateway's `audit_id`, ext_authz's dynamic metadata).
    pub fn id_or_new(&self) -> String {
        self.decision_id.clone().unwrap_or_else(new_decision_id)
    }
}

/// A new decision id (a random UUID).
fn new_decision_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The sequence every decision handler shares: a decision id when the decision log is on,
/// the decision, the record (decision log under that id, shadow, live metrics).
pub(crate) fn decide(state: &AppState, req: &DecisionRequest<'_>) -> Answer {
    let decision_id = state.service.logs_decisions().then(new_decision_id);
    let outcome = resolve(
        &state.service,
        Some(&state.admission),
        req,
        decision_id.as_deref(),
    );
    Answer {
        decision_id,
        outcome,
    }
}

/// Runs `req` through the service's three steps. A cache hit is answered on the async
/// worker; a miss evaluates under [`tokio::task::block_in_place`], so a slow or hostile
/// policy (held up to its deadline) never stalls the other requests queued on that worker,
/// once `admission` (when given) has a slot for it; a refused miss is
/// [`EvalError::Overloaded`].
pub(crate) fn resolve(
    service: &DecisionService,
    admission: Option<&admission::Admission>,
    req: &DecisionRequest<'_>,
    decision_id: Option<&str>,
) -> Result<Decision, EvalError> {
    let decided = match service.lookup(req) {
        Lookup::Hit(decided) => decided,
        Lookup::Miss(pending) => {
            // A free slot or a refusal is known without leaving the async worker; only a
            // wait in the queue and the evaluation block.
            let slot = match admission {
                Some(a) => Some(a.try_admit(service.metrics()).map(|s| (a, s))?),
                None => None,
            };
            tokio::task::block_in_place(|| {
                let _slot = match slot {
                    Some((_, Some(admitted))) => Some(admitted),
                    Some((a, None)) => Some(a.wait(service.metrics())?),
                    None => None,
                };
                Ok::<_, EvalError>(service.evaluate(pending))
            })?
        }
    };
    service.record(decided, decision_id)
}
