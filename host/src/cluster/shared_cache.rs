//! The second-level decision cache in Redis: `<prefix>:decision:<bundle id>:<sha-256>`
//! holding `u` (undefined) or `v<result JSON>`, with the decision's TTL as the key's expiry.
//! Bundle identity is part of the key, so entries of another revision are never served.
//!
//! Lookups run on the thread that evaluates (a blocking thread), over plain blocking
//! connections with socket timeouts: going through the async client from there costs two
//! cross-thread hand-offs per lookup, which measured more than the Redis round trip itself.
//! Writes are async and off the response path.

use super::{Cluster, WRITE_TIMEOUT};
use crate::cache::{CachedValue, SharedCache, SharedKey};
use crate::idle_pool::IdlePool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Most shared-cache writes in flight; beyond it writes are dropped (and counted) rather
/// than queued behind a slow Redis.
const MAX_PENDING_WRITES: usize = 1024;

/// Most idle blocking connections kept for lookups.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// [`SharedCache`] on the cluster's Redis.
pub struct RedisDecisionCache {
    cluster: Arc<Cluster>,
    writes: Arc<Semaphore>,
    lookups: IdlePool<redis::Connection>,
}

impl RedisDecisionCache {
    /// A shared cache on `cluster`'s connection.
    pub fn new(cluster: Arc<Cluster>) -> Self {
        RedisDecisionCache {
            cluster,
            writes: Arc::new(Semaphore::new(MAX_PENDING_WRITES)),
            lookups: IdlePool::new(MAX_IDLE_CONNECTIONS),
        }
    }

    /// An idle lookup connection, or a new one (connecting under `timeout`). Check it back
    /// in after a successful command, discard it after an error.
    fn connection(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        self.lookups.checkout(|| {
            let conn = self.cluster.client().get_connection_with_timeout(timeout)?;
            conn.set_read_timeout(Some(timeout))?;
            conn.set_write_timeout(Some(timeout))?;
            Ok(conn)
        })
    }

    fn redis_key(&self, key: &SharedKey) -> String {
        format!("{}:decision:{}", self.cluster.prefix(), key.as_str())
    }
}

fn encode(value: &CachedValue) -> String {
    match value {
        None => "u".into(),
        Some(v) => format!("v{v}"),
    }
}

fn decode(text: &str) -> Option<CachedValue> {
    match text.split_at_checked(1)? {
        ("u", "") => Some(None),
        ("v", json) if !json.is_empty() => Some(Some(Arc::from(json))),
        _ => None,
    }
}

impl SharedCache for RedisDecisionCache {
    fn get(&self, key: &SharedKey) -> Option<(CachedValue, Duration)> {
        let metrics = self.cluster.metrics();
        if !self.cluster.is_connected() {
            metrics.shared_cache_get(Duration::ZERO, "unavailable");
            return None;
        }
        let timeout = self.cluster.decision_timeout();
        let redis_key = self.redis_key(key);
        let started = Instant::now();
        let answer = self.connection(timeout).and_then(|mut conn| {
            let answer = redis::pipe()
                .get(&redis_key)
                .pttl(&redis_key)
                .query::<(Option<String>, i64)>(&mut conn);
            // After an error (a timeout included) the connection's state is unknown: drop it.
            if answer.is_ok() {
                self.lookups.checkin(conn);
            } else {
                self.lookups.discard();
            }
            answer
        });
        let elapsed = started.elapsed();
        match answer {
            Ok((Some(text), ttl_ms)) => match decode(&text) {
                Some(value) if ttl_ms > 0 => {
                    metrics.shared_cache_get(elapsed, "hit");
                    Some((value, Duration::from_millis(ttl_ms as u64)))
                }
                Some(_) => {
                    metrics.shared_cache_get(elapsed, "miss");
                    None
                }
                None => {
                    tracing::warn!(key = redis_key, "unreadable shared cache entry; ignored");
                    metrics.shared_cache_get(elapsed, "error");
                    None
                }
            },
            Ok((None, _)) => {
                metrics.shared_cache_get(elapsed, "miss");
                None
            }
            Err(e) if e.is_timeout() => {
                metrics.shared_cache_get(elapsed, "timeout");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "shared cache lookup failed; evaluating");
                metrics.shared_cache_get(elapsed, "error");
                None
            }
        }
    }

    fn put(&self, key: SharedKey, value: CachedValue, ttl: Duration) {
        let ttl_ms = ttl.as_millis().min(u128::from(u64::MAX)) as u64;
        if ttl_ms == 0 || !self.cluster.is_connected() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let metrics = self.cluster.metrics().clone();
        let Ok(permit) = self.writes.clone().try_acquire_owned() else {
            metrics.shared_cache_set("dropped");
            return;
        };
        let redis_key = self.redis_key(&key);
        let mut conn = self.cluster.commands();
        handle.spawn(async move {
            let _permit = permit;
            let mut set = redis::cmd("SET");
            set.arg(&redis_key)
                .arg(encode(&value))
                .arg("PX")
                .arg(ttl_ms);
            let write = set.query_async::<()>(&mut conn);
            let result = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => "ok",
                Ok(Err(_)) => "error",
                Err(_) => "timeout",
            };
            metrics.shared_cache_set(result);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_garbage_is_not_a_decision() {
        assert_eq!(decode(&encode(&None)), Some(None));
        let v: CachedValue = Some(Arc::from(r#"{"allow":true}"#));
        assert_eq!(decode(&encode(&v)), Some(v));
        for bad in ["", "x", "v", "uu", "é"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
