//! Several `sark serve` instances sharing state through Redis: rollout features (a hash per
//! feature, changes announced on a pub/sub channel) and an optional second-level decision
//! cache, and the documents written through the data API (see [`data`]). Redis is never on the critical path: an instance that loses it keeps serving with
//! its last known rollout state and its local cache, reports `degraded`, and resyncs when
//! Redis is back.

mod data;
mod rollout;
mod shared_cache;

pub use shared_cache::RedisDecisionCache;

use crate::config::ClusterConfig;
use crate::flags::{Feature, RolloutFlags};
use crate::metrics::Metrics;
use crate::store::{DataStore, Write};
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bound on a rollout write (admin call) and on each connection attempt.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// First and longest wait between reconnection attempts of the subscriber.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The instance is not connected to Redis; nothing was written.
    #[error("not connected to redis ({0})")]
    Unavailable(String),
}

/// What `/health` shows about the cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// Connected and subscribed: rollout changes of other instances arrive.
    pub connected: bool,
    /// The Redis address (host and port only; never the password).
    pub redis: String,
    /// Why the connection was lost, while it is.
    pub last_error: Option<String>,
    /// Milliseconds since the last full resync, if any.
    pub last_sync_ms_ago: Option<u64>,
    /// Rollout changes applied from Redis since start.
    pub updates_applied: u64,
}

#[derive(Default)]
struct StatusInner {
    last_error: Option<String>,
    last_sync: Option<Instant>,
    updates_applied: u64,
}

/// The connection of one instance to the cluster's Redis.
pub struct Cluster {
    config: ClusterConfig,
    client: redis::Client,
    commands: ConnectionManager,
    flags: Arc<RolloutFlags>,
    metrics: Arc<Metrics>,
    connected: AtomicBool,
    status: Mutex<StatusInner>,
    redis_addr: String,
    /// The written documents this instance holds.
    data: Arc<DataStore>,
    /// Serializes catch-ups, so writes are applied in version order.
    data_catch_up: tokio::sync::Mutex<()>,
}

impl Cluster {
    /// Prepares the connections (lazily: Redis may be down at start). Call inside the tokio
    /// runtime, then [`Cluster::spawn`].
    pub fn new(
        config: &ClusterConfig,
        flags: Arc<RolloutFlags>,
        metrics: Arc<Metrics>,
        data: Arc<DataStore>,
    ) -> Result<Self, ClusterError> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let redis_addr = client.get_connection_info().addr().to_string();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(WRITE_TIMEOUT))
            .set_response_timeout(Some(WRITE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(BACKOFF.1);
        let commands = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        metrics.cluster_connected(false);
        Ok(Cluster {
            config: config.clone(),
            client,
            commands,
            flags,
            metrics,
            connected: AtomicBool::new(false),
            status: Mutex::new(StatusInner {
                last_error: Some("not connected yet".into()),
                ..Default::default()
            }),
            redis_addr,
            data,
            data_catch_up: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether the instance is connected and subscribed.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// The bound on a decision's wait for Redis.
    pub fn decision_timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    /// The key prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.config.key_prefix
    }

    /// The Redis client (for blocking connections).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A clone of the multiplexed command connection.
    pub(crate) fn commands(&self) -> ConnectionManager {
        self.commands.clone()
    }

    /// The metrics.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The state shown by `/health`.
    pub fn status(&self) -> ClusterStatus {
        let s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        ClusterStatus {
            connected: self.is_connected(),
            redis: self.redis_addr.clone(),
            last_error: s.last_error.clone(),
            last_sync_ms_ago: s.last_sync.map(|t| t.elapsed().as_millis() as u64),
            updates_applied: s.updates_applied,
        }
    }

    /// `Unavailable`, with why the connection was lost, unless connected and subscribed.
    fn require_connected(&self) -> Result<(), ClusterError> {
        if self.is_connected() {
            return Ok(());
        }
        let why = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error
            .clone()
            .unwrap_or_default();
        Err(ClusterError::Unavailable(why))
    }

    /// Writes rollout changes to Redis and announces them; every instance (this one
    /// included) applies them. Refused, with nothing written, while Redis is unreachable:
    /// a change that reached only some instances would split the users between paths.
    pub async fn publish(&self, changes: &BTreeMap<String, Feature>) -> Result<(), ClusterError> {
        self.require_connected()?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (name, feature) in changes {
            rollout::write(&mut pipe, self.prefix(), name, feature);
        }
        let mut conn = self.commands();
        tokio::time::timeout(WRITE_TIMEOUT, pipe.query_async::<()>(&mut conn))
            .await
            .map_err(|_| ClusterError::Timeout(WRITE_TIMEOUT))??;
        for (name, feature) in changes {
            self.apply(name, feature.clone(), "local");
        }
        Ok(())
    }

    /// Writes a data write to Redis (which gives it its version) and announces it; every
    /// instance applies it with [`Cluster::catch_up_data`]. Refused, with nothing written,
    /// while Redis is unreachable.
    pub async fn publish_data(&self, write: &Write) -> Result<u64, ClusterError> {
        self.require_connected()?;
        let mut conn = self.commands();
        let cmd = data::write_cmd(self.prefix(), write);
        let version: u64 = tokio::time::timeout(WRITE_TIMEOUT, cmd.query_async(&mut conn))
            .await
            .map_err(|_| ClusterError::Timeout(WRITE_TIMEOUT))??;
        Ok(version)
    }

    /// Reads every write newer than this instance's version from Redis and applies them in
    /// version order (each journaled to disk before it is applied).
    pub async fn catch_up_data(&self) -> Result<usize, ClusterError> {
        let _serial = self.data_catch_up.lock().await;
        let mut conn = self.commands();
        let cmd = data::read_cmd(self.prefix(), self.data.version());
        let reply: Vec<String> = tokio::time::timeout(WRITE_TIMEOUT, cmd.query_async(&mut conn))
            .await
            .map_err(|_| ClusterError::Timeout(WRITE_TIMEOUT))??;
        let writes = data::decode(reply).map_err(ClusterError::Unavailable)?;
        if writes.is_empty() {
            return Ok(0);
        }
        let store = self.data.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let mut applied = 0;
            for w in writes {
                match store.commit(w) {
                    Ok(Some(_)) => applied += 1,
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(applied)
        })
        .await
        .map_err(|e| ClusterError::Unavailable(e.to_string()))?
        .map_err(ClusterError::Unavailable)?;
        if applied > 0 {
            tracing::debug!(
                applied,
                version = self.data.version(),
                "data writes applied from the cluster"
            );
            self.metrics.cluster_data_applied(applied as u64);
        }
        Ok(applied)
    }

    /// Starts the subscriber: it keeps a pub/sub connection, applies announced changes,
    /// resyncs every feature on (re)connection and every `resync_ms`, and tracks health.
    pub fn spawn(self: &Arc<Self>) {
        let cluster = self.clone();
        tokio::spawn(async move { cluster.run().await });
    }

    async fn run(self: Arc<Self>) {
        let mut backoff = BACKOFF.0;
        loop {
            match self.session().await {
                Ok(()) => backoff = BACKOFF.0,
                Err(e) => self.set_down(&e.to_string()),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    /// One connected session: subscribe, resync, then follow the channel until it breaks.
    async fn session(&self) -> Result<(), ClusterError> {
        let channel = rollout::channel(self.prefix());
        let data_channel = data::channel(self.prefix());
        let mut pubsub = tokio::time::timeout(WRITE_TIMEOUT, async {
            let mut p = self.client.get_async_pubsub().await?;
            p.subscribe(&[&channel, &data_channel]).await?;
            Ok::<_, redis::RedisError>(p)
        })
        .await
        .map_err(|_| ClusterError::Timeout(WRITE_TIMEOUT))??;
        // Subscribed first, then read: a change made in between is seen by one or both.
        self.resync().await?;
        self.catch_up_data().await?;
        self.set_up();
        let mut messages = pubsub.on_message();
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.resync_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        return Err(ClusterError::Unavailable("the pub/sub connection closed".into()));
                    };
                    if msg.get_channel_name() == data_channel {
                        // The message is a version; what to apply is read from the log, so
                        // a lost message is made up by the next one or the resync.
                        self.catch_up_data().await?;
                        continue;
                    }
                    // The message names the feature; its state is read from the hash, so
                    // out-of-order or lost messages cannot leave an older state applied.
                    let name: String = msg.get_payload().unwrap_or_default();
                    self.fetch(&name).await?;
                }
                _ = tick.tick() => {
                    self.resync().await?;
                    self.catch_up_data().await?;
                }
            }
        }
    }

    /// Reads one feature from Redis and applies it.
    async fn fetch(&self, name: &str) -> Result<(), ClusterError> {
        let Some(local) = self.flags.get(name) else {
            tracing::warn!(
                feature = name,
                "cluster announced an unknown feature; ignored"
            );
            return Ok(());
        };
        let mut pipe = redis::pipe();
        rollout::read_or_seed(&mut pipe, self.prefix(), name, &local);
        let mut conn = self.commands();
        let (fields,): (BTreeMap<String, String>,) =
            tokio::time::timeout(WRITE_TIMEOUT, pipe.query_async(&mut conn))
                .await
                .map_err(|_| ClusterError::Timeout(WRITE_TIMEOUT))??;
        self.apply_fields(name, &fields, "pubsub");
        Ok(())
    }

    /// Reads every feature (writing this instance's state for any feature Redis lacks,
    /// e.g. after a Redis restart without persistence) and applies them.
    async fn resync(&self) -> Result<(), ClusterError> {
        let local = self.flags.all();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (name, feature) in &local {
            rollout::read_or_seed(&mut pipe, self.prefix(), name, feature);
        }
        let mut conn = self.commands();
        let all: Vec<BTreeMap<String, String>> =
            tokio::time::timeout(WRITE_TIMEOUT, pipe.query_async(&mut conn))
                .await
                .map_err(|_| ClusterError::Timeout(WRITE_TIMEOUT))??;
        for ((name, _), fields) in local.iter().zip(&all) {
            self.apply_fields(name, fields, "resync");
        }
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_sync = Some(Instant::now());
        Ok(())
    }

    fn apply_fields(&self, name: &str, fields: &BTreeMap<String, String>, source: &'static str) {
        match rollout::decode(fields) {
            Ok(feature) => self.apply(name, feature, source),
            Err(e) => {
                tracing::warn!(feature = name, error = %e, "invalid rollout state in redis; the local state stays")
            }
        }
    }

    fn apply(&self, name: &str, feature: Feature, source: &'static str) {
        match self.flags.apply(name, feature.clone()) {
            Ok(true) => {
                tracing::info!(
                    feature = name,
                    percentage = feature.rollout_percentage,
                    enabled = feature.enabled,
                    source,
                    "rollout state applied from the cluster"
                );
                self.metrics.cluster_rollout_applied(source);
                self.status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .updates_applied += 1;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(feature = name, error = %e, "cluster rollout state not applied")
            }
        }
    }

    fn set_up(&self) {
        if !self.connected.swap(true, Ordering::AcqRel) {
            tracing::info!(redis = %self.redis_addr, "cluster connected");
        }
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error = None;
        self.metrics.cluster_connected(true);
    }

    fn set_down(&self, why: &str) {
        if self.connected.swap(false, Ordering::AcqRel) {
            tracing::warn!(redis = %self.redis_addr, error = why, "cluster connection lost; serving with the last known rollout state");
        }
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error = Some(why.to_string());
        self.metrics.cluster_connected(false);
    }
}
