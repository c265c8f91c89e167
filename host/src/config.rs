//! The YAML configuration (`--config sark.yaml`). Every key is optional; unknown keys are
//! rejected with a message that names them. Defaults live here and nowhere else.

use crate::management::config::{
    BundleSource, DecisionLogsConfig, KeyConfig, Management, Services, StatusConfig,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Rollout features (`wasm_engine`, `decision_cache`).
    pub features: Features,
    /// Per-evaluation limits of the component.
    pub limits: Limits,
    /// `sark serve` settings.
    pub server: ServerConfig,
    /// The decision log of `sark serve`.
    pub decision_log: DecisionLogConfig,
    /// Shared state of several `sark serve` instances through Redis. Absent (the default):
    /// a single instance with file-backed rollout state.
    pub cluster: Option<ClusterConfig>,
    /// OPA's `default_decision`: the rule `POST /` answers. Default `/system/main`.
    pub default_decision: String,
    /// OPA's `persistence_directory`: where `sark serve` keeps the documents written through
    /// the data API and the policies put through the policy API. Default `.sark` in the
    /// working directory.
    pub persistence_directory: Option<std::path::PathBuf>,
    /// OPA's `services`: bundle services and log and status collectors.
    pub services: Services,
    /// OPA's `bundles`: the bundle downloaded from a service (sark serves one).
    pub bundles: BTreeMap<String, BundleSource>,
    /// OPA's `keys`: the keys bundle signatures are verified with.
    pub keys: BTreeMap<String, KeyConfig>,
    /// OPA's `decision_logs`: decision events uploaded to a service and/or printed.
    pub decision_logs: Option<DecisionLogsConfig>,
    /// OPA's `status`: status reports uploaded to a service.
    pub status: Option<StatusConfig>,
    /// OPA's `labels`: added to this instance's labels (status, decision events).
    pub labels: BTreeMap<String, String>,
    /// The OpenID AuthZEN Authorization API (`/access/v1/...`).
    pub authzen: AuthzenConfig,
    /// Envoy's external authorization (gRPC `Check`) on a port of its own; absent: off.
    pub ext_authz: Option<ExtAuthzConfig>,
    /// OPA's `default_authorization_decision`: the rule `server.authorization: basic` asks
    /// about every request. Default `/system/authz/allow`.
    pub default_authorization_decision: String,
}

/// The OpenID AuthZEN Authorization API 1.0 of `sark serve`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthzenConfig {
    /// The rule an evaluation asks, with input `{subject, action, resource, context}`; it
    /// returns a boolean or `{decision, context}`. Default `data.authzen.decision`.
    pub entrypoint: String,
    /// The rule a search asks for its candidates. Default: the entrypoint's sibling
    /// `candidates` (`data.authzen.candidates`).
    pub candidates_entrypoint: Option<String>,
    /// This PDP's identifier in the metadata (`https://pdp.example.com`), as clients reach
    /// it. Default: `http://` and the request's `Host` (sark serves plain HTTP; behind a TLS
    /// proxy, set this).
    pub policy_decision_point: Option<String>,
    /// Most evaluations in one Access Evaluations request. Default 1,000: a PEP boxcars a
    /// page of a UI or a list of tools, not a data set; each costs a decision.
    pub max_evaluations: usize,
    /// Most candidates one search evaluates. Default 10,000: every candidate costs a
    /// decision (tens of microseconds), so a search stays well under a second.
    pub max_candidates: usize,
}

impl Default for AuthzenConfig {
    fn default() -> Self {
        Self {
            entrypoint: "data.authzen.decision".into(),
            candidates_entrypoint: None,
            policy_decision_point: None,
            max_evaluations: 1000,
            max_candidates: 10_000,
        }
    }
}

/// Envoy's external authorization (`envoy.service.auth.v3.Authorization/Check`), as
/// opa-envoy-plugin serves it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtAuthzConfig {
    /// The gRPC listen address. Default `:9191` (opa-envoy-plugin's), on every interface;
    /// `127.0.0.1:9191` for loopback only.
    pub addr: String,
    /// The rule `Check` asks (opa-envoy-plugin's `path`). Default `envoy/authz/allow`.
    pub path: String,
    /// Answer every `Check` with OK whatever the decision (the decision is still made,
    /// logged and counted). Default false.
    pub dry_run: bool,
    /// Do not parse the request body into `input.parsed_body`. Default false.
    pub skip_request_body_parse: bool,
    /// The request header whose value is the rollout bucket key (the user). Default
    /// `x-user-id`; without it, every request shares the anonymous bucket.
    pub user_header: String,
}

impl Default for ExtAuthzConfig {
    fn default() -> Self {
        Self {
            addr: ":9191".into(),
            path: "envoy/authz/allow".into(),
            dry_run: false,
            skip_request_body_parse: false,
            user_header: "x-user-id".into(),
        }
    }
}

impl ExtAuthzConfig {
    /// The listen address: `:port` means every interface.
    pub fn socket_addr(&self) -> Result<std::net::SocketAddr, String> {
        let addr = match self.addr.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => self.addr.clone(),
        };
        addr.parse()
            .map_err(|e| format!("ext_authz.addr `{}` is not host:port: {e}", self.addr))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            features: Default::default(),
            limits: Default::default(),
            server: Default::default(),
            decision_log: Default::default(),
            cluster: None,
            default_decision: "/system/main".into(),
            persistence_directory: None,
            services: Services::default(),
            bundles: BTreeMap::new(),
            keys: BTreeMap::new(),
            decision_logs: None,
            status: None,
            labels: BTreeMap::new(),
            authzen: AuthzenConfig::default(),
            ext_authz: None,
            default_authorization_decision: "/system/authz/allow".into(),
        }
    }
}

impl Config {
    /// The bounds on written documents.
    pub fn data_limits(&self) -> crate::store::DataLimits {
        crate::store::DataLimits {
            max_bytes: self.limits.max_data_bytes,
            max_depth: self.limits.max_data_depth,
        }
    }

    /// OPA's management sections, to check or to start the management plane from.
    pub fn management(&self) -> Management<'_> {
        Management {
            services: &self.services,
            bundles: &self.bundles,
            keys: &self.keys,
            decision_logs: self.decision_logs.as_ref(),
            status: self.status.as_ref(),
        }
    }

    /// The persistence directory (`persistence_directory`, default `.sark`).
    pub fn persistence_dir(&self) -> std::path::PathBuf {
        self.persistence_directory
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from(".sark"))
    }
}

/// Several instances behind a load balancer: rollout state (and optionally a second-level
/// decision cache) in Redis, changes pushed to every instance over pub/sub.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]`. Required. Never logged with its password.
    pub redis_url: String,
    /// Prefix of every key and channel, so several clusters can share one Redis. Default
    /// `sark`.
    pub key_prefix: String,
    /// Longest a shared-cache lookup waits on each socket operation (connect when no pooled
    /// connection is idle, write, read), in ms; past it the decision goes on as a miss.
    /// Default 20.
    pub timeout_ms: u64,
    /// Period of the full resync of rollout state from Redis, in ms: a safety net behind
    /// pub/sub, and how soon a lost Redis is noticed on an idle instance. Default 5,000.
    pub resync_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            key_prefix: "sark".into(),
            timeout_ms: 20,
            resync_ms: 5000,
        }
    }
}

/// Settings of `sark serve`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address. Default `127.0.0.1:8181` (OPA's port); `--addr` overrides it.
    pub addr: String,
    /// Bearer token of the admin API. Default none: the admin routes are off unless this or
    /// `SARK_ADMIN_TOKEN` is set.
    pub admin_token: Option<String>,
    /// File the rollout state is persisted to. Default none (state lives in memory).
    pub state_file: Option<std::path::PathBuf>,
    /// How often the bundle file is checked for changes, in ms. Default 1,000; 0 = never.
    pub reload_poll_ms: u64,
    /// How long a bundle on the carried evaluator serves before its own snapshot is compiled
    /// in the background and adopted, in ms. Default 5,000: a revision replaced sooner (an
    /// edit loop) costs no compilation, a settled one soon gets instances that start in
    /// microseconds. 0 = never: bundles built by this `sark` stay on the carried evaluator,
    /// each new instance loading the payload (a snapshot in the code cache is not used
    /// either).
    pub snapshot_delay_ms: u64,
    /// Entrypoint of `/api/v1/gateway/authorize`. Default `data.mcp.gateway.decision`.
    pub gateway_entrypoint: String,
    /// Entrypoint of `/api/v1/gateway/authorize-a2a`. Default `data.mcp.a2a.decision`.
    pub a2a_entrypoint: String,
    /// Longest wait for a request's head, counted from the connection's start or from the
    /// previous response (so it is also the idle keep-alive timeout), in ms. Default 10,000:
    /// a client sends its head at once; a connection that trickles it (slowloris) or sits idle
    /// is closed after this and frees its slot.
    pub header_timeout_ms: u64,
    /// Longest wait for a request's whole body once its head arrived, in ms; past it, 408.
    /// Default 10,000: a 1 MiB input arrives in milliseconds on any working network.
    pub body_timeout_ms: u64,
    /// Connections served at once; one more is closed on accept. Default 10,000: far below
    /// the file descriptors a production process is given, far above what a gateway's pool
    /// of keep-alive connections needs.
    pub max_connections: usize,
    /// Evaluations run at once (cache hits are not evaluations). Default one more than the
    /// cores: evaluations are CPU-bound, so with one per core (and one to cover the moments a
    /// thread is between steps) the cores stay busy, and the async workers that read requests
    /// and shed the excess still get CPU; more of them only make every one slower.
    pub max_concurrent_evaluations: Option<usize>,
    /// Evaluations that may wait for a slot, in arrival order; one more is refused at once
    /// with 503 and `Retry-After`. Default twice `max_concurrent_evaluations`: a short queue
    /// absorbs a burst, and the wait it adds stays a couple of evaluations long.
    pub max_queued_evaluations: Option<usize>,
    /// Longest wait in that queue, in ms; past it, 503. Default 100: a request the server
    /// cannot start within this is better retried on another instance.
    pub queue_timeout_ms: u64,
    /// TLS: the server's certificate chain (PEM), as OPA's `--tls-cert-file`. With
    /// `tls_private_key_file`, the HTTP port serves HTTPS only.
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// TLS: the certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1), as OPA's
    /// `--tls-private-key-file`.
    pub tls_private_key_file: Option<std::path::PathBuf>,
    /// TLS: the CA certificates (PEM) client certificates must chain to, as OPA's
    /// `--tls-ca-cert-file`; required by `authentication: tls`.
    pub tls_ca_cert_file: Option<std::path::PathBuf>,
    /// How often the TLS files are read again, in ms: a change (of their content) applies to
    /// the next connection, a broken file keeps the last good ones. Default 1,000 (OPA
    /// watches the files; `--tls-cert-refresh-period` polls them instead).
    pub tls_refresh_ms: u64,
    /// Lowest TLS version accepted: `1.2` (default, OPA's) or `1.3`.
    pub min_tls_version: String,
    /// Who the client is, as OPA's `--authentication`: `off` (default), `token` (the
    /// `Authorization: Bearer` token becomes `input.identity` of the authorization policy)
    /// or `tls` (a client certificate verified against `tls_ca_cert_file` is required; its
    /// subject becomes `input.identity`).
    pub authentication: Authentication,
    /// Whether each request is allowed, as OPA's `--authorization`: `off` (default) or
    /// `basic` (the rule `default_authorization_decision` decides; 401 unless it is true).
    pub authorization: Authorization,
    /// How often the live comparison is sampled into the time series of `/admin/timeseries`
    /// and the console's charts, in ms. Default 5,000: the last 720 points are kept, an
    /// hour at this interval, and a rollout is watched in minutes, not milliseconds.
    pub timeseries_interval_ms: u64,
}

/// OPA's `--authentication`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Authentication {
    /// No identity.
    #[default]
    Off,
    /// The bearer token.
    Token,
    /// The client certificate.
    Tls,
}

/// OPA's `--authorization`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Authorization {
    /// Every request is allowed.
    #[default]
    Off,
    /// The authorization policy decides.
    Basic,
}

impl ServerConfig {
    /// `max_concurrent_evaluations`, or its default (one more than the cores).
    pub fn concurrent_evaluations(&self) -> usize {
        self.max_concurrent_evaluations.unwrap_or_else(|| {
            1 + std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        })
    }

    /// Checks that the TLS and authentication settings fit together.
    pub fn validate_security(&self) -> Result<(), String> {
        match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(
                    "server.tls_cert_file and server.tls_private_key_file go together (--tls-cert-file, --tls-private-key-file)"
                        .into(),
                );
            }
            _ => {}
        }
        if !matches!(self.min_tls_version.as_str(), "1.2" | "1.3") {
            return Err(format!(
                "server.min_tls_version must be 1.2 or 1.3, got `{}`",
                self.min_tls_version
            ));
        }
        if self.authentication == Authentication::Tls
            && (self.tls_cert_file.is_none() || self.tls_ca_cert_file.is_none())
        {
            return Err(
                "authentication tls needs a server certificate and the CA of the client certificates (--tls-cert-file, --tls-private-key-file, --tls-ca-cert-file)"
                    .into(),
            );
        }
        Ok(())
    }

    /// `max_queued_evaluations`, or its default (twice the concurrent evaluations).
    pub fn queued_evaluations(&self) -> usize {
        self.max_queued_evaluations
            .unwrap_or_else(|| 2 * self.concurrent_evaluations())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8181".into(),
            admin_token: None,
            state_file: None,
            reload_poll_ms: 1000,
            snapshot_delay_ms: 5000,
            gateway_entrypoint: "data.mcp.gateway.decision".into(),
            a2a_entrypoint: "data.mcp.a2a.decision".into(),
            header_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            max_connections: 10_000,
            max_concurrent_evaluations: None,
            max_queued_evaluations: None,
            queue_timeout_ms: 100,
            tls_cert_file: None,
            tls_private_key_file: None,
            tls_ca_cert_file: None,
            tls_refresh_ms: 1000,
            min_tls_version: "1.2".into(),
            authentication: Authentication::Off,
            authorization: Authorization::Off,
            timeseries_interval_ms: 5000,
        }
    }
}

/// The decision log: one JSON line per decision.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionLogConfig {
    /// Default false.
    pub enabled: bool,
    /// `stdout` (the default) or a file path (appended to).
    pub output: String,
    /// JSON pointers into each record removed before it is written, e.g.
    /// `/input/parameters/password`; the record lists them under `erased`, as OPA does.
    pub mask: Vec<String>,
    /// Records buffered between the request path and the writer. When full, records are
    /// dropped and counted (`decision_log_dropped_total`), never blocking a response.
    /// Default 10,000.
    pub queue_size: usize,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            output: "stdout".into(),
            mask: Vec::new(),
            queue_size: 10_000,
        }
    }
}

/// Built-in rollout features.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Features {
    /// Routes users to the component (in) or the native path (out).
    pub wasm_engine: WasmEngineFeature,
    /// Enables the decision cache for users in the rollout.
    pub decision_cache: DecisionCacheFeature,
    /// Sends users to the candidate bundle (`sark serve --candidate-bundle`).
    pub policy_canary: PolicyCanaryFeature,
}

/// How the candidate bundle is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CanaryMode {
    /// Every decision is also evaluated on the candidate, off the response path; the
    /// responses never change; disagreements are counted and logged.
    #[default]
    Shadow,
    /// Users in the rollout get the candidate's decision.
    Route,
}

/// The `policy_canary` feature.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyCanaryFeature {
    /// Default true (it does nothing without a candidate bundle).
    pub enabled: bool,
    /// Share of users routed to the candidate in `route` mode. Default 0.
    pub rollout_percentage: u8,
    /// `shadow` (default) or `route`.
    pub mode: CanaryMode,
}

impl Default for PolicyCanaryFeature {
    fn default() -> Self {
        Self {
            enabled: true,
            rollout_percentage: 0,
            mode: CanaryMode::Shadow,
        }
    }
}

/// The `wasm_engine` feature.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasmEngineFeature {
    /// Default true.
    pub enabled: bool,
    /// Share of users on the component, 0–100. Default 100.
    pub rollout_percentage: u8,
    /// Evaluate on the native path when the component fails. Default true.
    pub fallback_on_error: bool,
}

impl Default for WasmEngineFeature {
    fn default() -> Self {
        Self {
            enabled: true,
            rollout_percentage: 100,
            fallback_on_error: true,
        }
    }
}

/// The `decision_cache` feature.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionCacheFeature {
    /// Default true.
    pub enabled: bool,
    /// Share of users whose decisions are cached, 0–100. Default 100.
    pub rollout_percentage: u8,
    /// Maximum number of cached decisions. Default 10,000.
    pub max_size: usize,
    /// Default time to live of a decision in seconds. Default 300 (5 minutes).
    pub ttl_seconds: u64,
    /// Second-level cache in Redis (needs `cluster`): a local miss looks there before
    /// evaluating, and every evaluated decision is stored there with the same key and TTL.
    /// Default false.
    pub shared: bool,
}

impl Default for DecisionCacheFeature {
    fn default() -> Self {
        Self {
            enabled: true,
            rollout_percentage: 100,
            max_size: 10_000,
            ttl_seconds: 300,
            shared: false,
        }
    }
}

/// Limits of one evaluation in the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Deadline of one evaluation, enforced by epoch interruption. Default 100 ms: an
    /// authorization decision that takes longer is a policy bug, and a gateway's own
    /// request timeout is usually a few hundred ms.
    pub eval_timeout_ms: u64,
    /// Cap on one instance's linear memory. Default 64 MiB: room for the snapshotted heap of
    /// a typical bundle plus per-evaluation garbage, and the cap bounds the host's memory at
    /// pool size × cap.
    pub max_memory_mb: u64,
    /// Largest accepted input document. Default 1 MiB, as OPA's default body limit.
    pub max_input_bytes: usize,
    /// Longest accepted string in an input (bytes of its JSON text, escapes included).
    /// Default 64 KiB: tokens, certificates and prompts fit; a string meant to make a
    /// policy's string builtins slow does not.
    pub max_string_bytes: usize,
    /// Time limit of one evaluation on the native path (Regorus's execution timer), which
    /// also bounds a fallback after the component failed. Default 1,000 ms: the native
    /// interpreter is several times slower than the component's precompiled programs, so it
    /// gets more room than `eval_timeout_ms`.
    pub native_timeout_ms: u64,
    /// The budget of one decision, in ms, from its lookup to its answer: the component's
    /// deadline and a native fallback after it share it (the fallback gets only what is
    /// left), and a decision routed to the native path gets at most this. Default 500: a
    /// decision costs at most half a second of CPU whatever it meets, and a slow policy's
    /// fallback still gets 400 ms after the component's 100.
    pub request_timeout_ms: u64,
    /// Largest serialized size of the documents written through the data API (`PUT`/`PATCH
    /// /v1/data`): of one write's document, and of all of them together. Default 64 MiB:
    /// role assignments and tool registries of a large organisation fit; every instance
    /// holds the documents in memory.
    pub max_data_bytes: usize,
    /// Deepest nesting of a written document, counted from `data`. Default 64 (JSON
    /// parsers, Regorus's included, refuse deeper documents at 128).
    pub max_data_depth: usize,
}

impl Limits {
    /// Linear memory a component instance may use beyond `max_memory_mb` for the written
    /// documents: 16 bytes per byte of JSON (Regorus values are larger than their text),
    /// within wasm32's 4 GiB.
    pub fn data_memory_bytes(&self) -> usize {
        self.max_data_bytes.saturating_mul(16).min(
            (4usize << 30).saturating_sub(usize::try_from(self.max_memory_mb).unwrap_or(0) << 20),
        )
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            eval_timeout_ms: 100,
            max_memory_mb: 64,
            max_input_bytes: 1 << 20,
            max_string_bytes: 64 << 10,
            native_timeout_ms: 1000,
            request_timeout_ms: 500,
            max_data_bytes: 64 << 20,
            max_data_depth: 64,
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error (in the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// The YAML is malformed or has unknown keys or bad values.
    #[error("invalid config {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::from_yaml(&text).map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            yaml_serde::from_str(text).map_err(|e| e.to_string())?
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        for (name, pct) in [
            (
                "features.wasm_engine.rollout_percentage",
                self.features.wasm_engine.rollout_percentage,
            ),
            (
                "features.decision_cache.rollout_percentage",
                self.features.decision_cache.rollout_percentage,
            ),
        ] {
            if pct > 100 {
                return Err(format!("{name} must be between 0 and 100, got {pct}"));
            }
        }
        self.server.validate_security()?;
        if self.server.max_concurrent_evaluations == Some(0) {
            return Err("server.max_concurrent_evaluations must be at least 1".into());
        }
        if self.limits.eval_timeout_ms == 0 {
            return Err("limits.eval_timeout_ms must be at least 1".into());
        }
        if self.limits.max_string_bytes == 0 {
            return Err("limits.max_string_bytes must be at least 1".into());
        }
        if self.limits.request_timeout_ms == 0 {
            return Err("limits.request_timeout_ms must be at least 1".into());
        }
        if self.limits.native_timeout_ms == 0 {
            return Err("limits.native_timeout_ms must be at least 1".into());
        }
        for (name, v) in [
            ("server.header_timeout_ms", self.server.header_timeout_ms),
            ("server.body_timeout_ms", self.server.body_timeout_ms),
            ("server.max_connections", self.server.max_connections as u64),
        ] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if self.limits.max_data_bytes == 0 {
            return Err("limits.max_data_bytes must be at least 1".into());
        }
        if !(100..=600_000).contains(&self.server.timeseries_interval_ms) {
            return Err(format!(
                "server.timeseries_interval_ms must be between 100 and 600000, got {}",
                self.server.timeseries_interval_ms
            ));
        }
        if !(1..=100).contains(&self.limits.max_data_depth) {
            return Err(format!(
                "limits.max_data_depth must be between 1 and 100, got {}",
                self.limits.max_data_depth
            ));
        }
        if self.default_decision.trim_matches('/').is_empty() {
            return Err("default_decision must name a rule, e.g. /system/main".into());
        }
        if self.limits.max_memory_mb < 16 {
            return Err("limits.max_memory_mb must be at least 16".into());
        }
        if self.decision_log.queue_size == 0 {
            return Err("decision_log.queue_size must be at least 1".into());
        }
        for pointer in &self.decision_log.mask {
            if !pointer.starts_with('/') {
                return Err(format!(
                    "decision_log.mask entry `{pointer}` is not a JSON pointer (it must start with /)"
                ));
            }
        }
        if self.limits.max_memory_mb > 4096 {
            return Err("limits.max_memory_mb must be at most 4096".into());
        }
        self.management().validate()?;
        for (name, v) in [
            ("authzen.max_evaluations", self.authzen.max_evaluations),
            ("authzen.max_candidates", self.authzen.max_candidates),
        ] {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if let Some(base) = &self.authzen.policy_decision_point
            && !(base.starts_with("https://") || base.starts_with("http://"))
        {
            return Err(format!(
                "authzen.policy_decision_point `{base}` must be an http(s) URL"
            ));
        }
        if let Some(ext) = &self.ext_authz {
            ext.socket_addr()?;
            if ext.path.trim_matches('/').is_empty() {
                return Err("ext_authz.path must name a rule, e.g. envoy/authz/allow".into());
            }
        }
        match &self.cluster {
            None if self.features.decision_cache.shared => {
                return Err(
                    "features.decision_cache.shared needs a `cluster` section (redis_url)".into(),
                );
            }
            None => {}
            Some(c) => {
                if c.redis_url.is_empty() {
                    return Err("cluster.redis_url is required".into());
                }
                if let Err(e) = redis::Client::open(c.redis_url.as_str()) {
                    return Err(format!("cluster.redis_url is not a usable Redis URL: {e}"));
                }
                if c.key_prefix.is_empty() || c.key_prefix.contains(char::is_whitespace) {
                    return Err("cluster.key_prefix must be non-empty, without spaces".into());
                }
                if !(1..=10_000).contains(&c.timeout_ms) {
                    return Err("cluster.timeout_ms must be between 1 and 10000".into());
                }
                if c.resync_ms < 100 {
                    return Err("cluster.resync_ms must be at least 100".into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_all_defaults() {
        assert_eq!(Config::from_yaml("").unwrap(), Config::default());
        assert_eq!(Config::default().limits.eval_timeout_ms, 100);
    }

    #[test]
    fn documented_shape_parses() {
        let c = Config::from_yaml(
            "features:\n  wasm_engine: { enabled: true, rollout_percentage: 25, fallback_on_error: false }\n  decision_cache: { max_size: 5, ttl_seconds: 1 }\nlimits: { eval_timeout_ms: 50 }\n",
        )
        .unwrap();
        assert_eq!(c.features.wasm_engine.rollout_percentage, 25);
        assert!(!c.features.wasm_engine.fallback_on_error);
        assert_eq!(c.features.decision_cache.max_size, 5);
        assert_eq!(c.limits.eval_timeout_ms, 50);
        assert_eq!(c.limits.max_memory_mb, 64);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_yaml("limits: { eval_timeout: 5 }").unwrap_err();
        assert!(err.contains("eval_timeout"), "{err}");
        let err = Config::from_yaml("featurez: {}").unwrap_err();
        assert!(err.contains("featurez"), "{err}");
    }

    #[test]
    fn cluster_section_is_validated() {
        let c = Config::from_yaml(
            "cluster: { redis_url: 'redis://127.0.0.1:6379' }\nfeatures: { decision_cache: { shared: true } }",
        )
        .unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.key_prefix, "sark");
        assert_eq!(cluster.timeout_ms, 20);
        assert!(c.features.decision_cache.shared);
        let err = Config::from_yaml("features: { decision_cache: { shared: true } }").unwrap_err();
        assert!(err.contains("cluster"), "{err}");
        let err = Config::from_yaml("cluster: { redis_url: 'http://x' }").unwrap_err();
        assert!(err.contains("redis_url"), "{err}");
        let err = Config::from_yaml("cluster: { key_prefix: p }").unwrap_err();
        assert!(err.contains("required"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(
            Config::from_yaml("features: { wasm_engine: { rollout_percentage: 101 } }").is_err()
        );
        assert!(Config::from_yaml("limits: { eval_timeout_ms: 0 }").is_err());
        let err = Config::from_yaml("server: { timeseries_interval_ms: 10 }").unwrap_err();
        assert!(err.contains("timeseries_interval_ms"), "{err}");
        let c = Config::from_yaml("server: { timeseries_interval_ms: 1000 }").unwrap();
        assert_eq!(c.server.timeseries_interval_ms, 1000);
    }
}
