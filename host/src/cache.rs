//! The decision cache: a concurrent map (DashMap) with a size bound, TTL per entry, and
//! eviction of the least recently used entries, approximated with CLOCK (second chance).
//!
//! Eviction is amortized O(1): a FIFO queue holds every entry once with the access stamp it
//! was queued with. The evictor pops the front; an entry used since it was queued gets a
//! second chance (re-queued with a new stamp), otherwise it is evicted. Each re-queue pays
//! for one access, so no eviction ever scans the map. Inserts make room and insert under
//! the queue lock, so concurrent inserts can never overshoot `max_size`; lookups are
//! lock-free apart from DashMap's shard read locks.

use dashmap::DashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Identifies a cached decision: bundle, entrypoint and a 128-bit hash of the canonical
/// input. The entry also keeps the canonical input, compared on every hit, so a hash
/// collision can never return another input's decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    bundle: Arc<str>,
    entrypoint: Arc<str>,
    input_hash: u128,
    /// Generation of the written documents the decision was computed with.
    data_generation: u64,
}

impl CacheKey {
    /// A key for `entrypoint` of the bundle identified by `bundle` (revision and content
    /// hash) with `canonical_input` (compact JSON with sorted object keys).
    pub fn new(bundle: Arc<str>, entrypoint: Arc<str>, canonical_input: &[u8]) -> Self {
        CacheKey {
            bundle,
            entrypoint,
            input_hash: xxhash_rust::xxh3::xxh3_128(canonical_input),
            data_generation: 0,
        }
    }

    /// The key of a decision computed with the written documents at `generation` (see
    /// [`crate::store::DataStore::generation`]): after a write, older decisions miss.
    pub fn with_data_generation(mut self, generation: u64) -> Self {
        self.data_generation = generation;
        self
    }
}

/// The longest TTL an entry gets (a century): longer ones, including a policy's
/// `cache_ttl: 1e20`, are clamped to it.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A cached decision: the result JSON, or `None` for undefined.
pub type CachedValue = Option<Arc<str>>;

struct Entry {
    value: CachedValue,
    input: Arc<[u8]>,
    expires_at: Instant,
    /// Logical time of the last hit (or the insert).
    last_access: AtomicU64,
    /// Unique per insert, so a stale queue slot never evicts a newer entry.
    id: u64,
}

/// Counters of the cache since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Lookups that returned a decision.
    pub hits: u64,
    /// Lookups that found nothing usable (absent or expired).
    pub misses: u64,
    /// Entries removed to respect `max_size`.
    pub evictions: u64,
    /// Entries removed because their TTL passed.
    pub expirations: u64,
    /// Entries currently held.
    pub size: usize,
}

/// The concurrent decision cache. Share it behind an `Arc`.
pub struct DecisionCache {
    map: DashMap<CacheKey, Entry>,
    queue: Mutex<VecDeque<(CacheKey, u64, u64)>>,
    len: AtomicUsize,
    max_size: usize,
    default_ttl: Duration,
    clock: AtomicU64,
    next_id: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

impl DecisionCache {
    /// A cache of at most `max_size` entries whose entries live `default_ttl` unless the
    /// insert gives another TTL. `max_size` 0 caches nothing.
    pub fn new(max_size: usize, default_ttl: Duration) -> Self {
        DecisionCache {
            map: DashMap::with_capacity(max_size.min(1 << 20)),
            queue: Mutex::new(VecDeque::with_capacity(max_size.min(1 << 20))),
            len: AtomicUsize::new(0),
            max_size,
            default_ttl,
            clock: AtomicU64::new(1),
            next_id: AtomicU64::new(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
        }
    }

    /// The default TTL.
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// The size bound.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Returns the cached decision for `key` if present, unexpired and for the same
    /// canonical input. `Some(None)` is a cached undefined.
    pub fn get(&self, key: &CacheKey, canonical_input: &[u8]) -> Option<CachedValue> {
        let now = Instant::now();
        let expired = match self.map.get(key) {
            Some(entry) if entry.expires_at > now && &*entry.input == canonical_input => {
                let tick = self.clock.fetch_add(1, Ordering::Relaxed);
                entry.last_access.store(tick, Ordering::Relaxed);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Some(entry.value.clone());
            }
            Some(entry) => entry.expires_at <= now,
            None => false,
        };
        if expired
            && self
                .map
                .remove_if(key, |_, e| e.expires_at <= now)
                .is_some()
        {
            self.len.fetch_sub(1, Ordering::AcqRel);
            self.expirations.fetch_add(1, Ordering::Relaxed);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Stores a decision for `ttl` (the default TTL when `None`). A zero TTL stores nothing.
    ///
    /// Inserts take the queue lock once: room is made (evicting while full), the entry is
    /// stored and queued in one critical section, so the bound holds whatever the number of
    /// concurrent writers. Lookups never take this lock.
    pub fn insert(
        &self,
        key: CacheKey,
        canonical_input: &[u8],
        value: CachedValue,
        ttl: Option<Duration>,
    ) {
        let ttl = ttl.unwrap_or(self.default_ttl).min(MAX_TTL);
        if ttl.is_zero() || self.max_size == 0 {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            value,
            input: canonical_input.into(),
            expires_at: Instant::now()
                .checked_add(ttl)
                .unwrap_or_else(|| Instant::now() + MAX_TTL),
            last_access: AtomicU64::new(tick),
            id,
        };
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        // Only inserts (all under this lock) raise `len`; removals elsewhere only lower it.
        while self.len.load(Ordering::Acquire) >= self.max_size {
            if !self.evict_one(&mut queue) {
                break;
            }
        }
        if self.map.insert(key.clone(), entry).is_none() {
            self.len.fetch_add(1, Ordering::AcqRel);
        }
        queue.push_back((key, id, tick));
        if queue.len() > 2 * self.max_size.max(16) {
            // Drop slots of replaced or expired entries; amortized over the inserts that
            // made the queue grow.
            queue.retain(|(k, id, _)| self.map.get(k).is_some_and(|e| e.id == *id));
        }
    }

    /// Evicts the least recently used entry (CLOCK); false when nothing is left to evict.
    fn evict_one(&self, queue: &mut VecDeque<(CacheKey, u64, u64)>) -> bool {
        while let Some((key, id, stamp)) = queue.pop_front() {
            let (used_since, current) = match self.map.get(&key) {
                Some(e) if e.id == id => (e.last_access.load(Ordering::Relaxed) > stamp, true),
                _ => (false, false),
            };
            if !current {
                continue;
            }
            if used_since {
                let tick = self.clock.fetch_add(1, Ordering::Relaxed);
                queue.push_back((key, id, tick));
                continue;
            }
            if self.map.remove_if(&key, |_, e| e.id == id).is_some() {
                self.len.fetch_sub(1, Ordering::AcqRel);
                self.evictions.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Removes every expired entry; returns how many. Run periodically by
    /// [`DecisionCache::spawn_sweeper`].
    pub fn sweep_expired(&self) -> usize {
        let now = Instant::now();
        let mut removed = 0;
        self.map.retain(|_, e| {
            let keep = e.expires_at > now;
            removed += usize::from(!keep);
            keep
        });
        if removed > 0 {
            self.len.fetch_sub(removed, Ordering::AcqRel);
            self.expirations
                .fetch_add(removed as u64, Ordering::Relaxed);
        }
        removed
    }

    /// Spawns a tokio task that sweeps expired entries every `interval` until the cache is
    /// dropped.
    pub fn spawn_sweeper(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(cache) => {
                        cache.sweep_expired();
                    }
                    None => return,
                }
            }
        })
    }

    /// Removes the entry of `key`; whether there was one. Its queue slot goes stale and is
    /// skipped by the evictor.
    pub fn remove(&self, key: &CacheKey) -> bool {
        if self.map.remove(key).is_some() {
            self.len.fetch_sub(1, Ordering::AcqRel);
            true
        } else {
            false
        }
    }

    /// Drops every entry (on a bundle change).
    pub fn clear(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let mut removed = 0;
        self.map.retain(|_, _| {
            removed += 1;
            false
        });
        queue.clear();
        self.len.fetch_sub(removed, Ordering::AcqRel);
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            expirations: self.expirations.load(Ordering::Relaxed),
            size: self.map.len(),
        }
    }
}

/// The key of a decision in a shared (second-level) cache: bundle identity, entrypoint and
/// the SHA-256 of the canonical input. Entries written by one instance are served by all
/// without comparing inputs, so the hash must be collision-resistant (unlike the local
/// cache's XXH3, which is backed by an input comparison).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedKey(String);

impl SharedKey {
    /// The key of `entrypoint` (normalized) of bundle `bundle` for `canonical_input`.
    pub fn new(bundle: &str, entrypoint: &str, canonical_input: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(entrypoint.as_bytes())
            .chain_update([0u8])
            .chain_update(canonical_input)
            .finalize();
        SharedKey(format!("{bundle}:{}", hex::encode(digest)))
    }

    /// The key text (without any store prefix).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A second-level decision cache shared by several instances (Redis in a cluster).
/// Lookups are bounded by the implementation's timeout; any failure is a miss.
pub trait SharedCache: Send + Sync {
    /// The decision stored under `key` and its remaining time to live.
    fn get(&self, key: &SharedKey) -> Option<(CachedValue, Duration)>;
    /// Stores a decision for `ttl`, off the caller's path (a zero TTL stores nothing).
    fn put(&self, key: SharedKey, value: CachedValue, ttl: Duration);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> (CacheKey, Vec<u8>) {
        let input = format!("{{\"i\":{i}}}").into_bytes();
        (CacheKey::new("b".into(), "e".into(), &input), input)
    }

    #[test]
    fn hit_miss_and_undefined() {
        let c = DecisionCache::new(10, Duration::from_secs(60));
        let (k, i) = key(1);
        assert_eq!(c.get(&k, &i), None);
        c.insert(k.clone(), &i, Some("true".into()), None);
        assert_eq!(c.get(&k, &i), Some(Some("true".into())));
        let (k2, i2) = key(2);
        c.insert(k2.clone(), &i2, None, None);
        assert_eq!(c.get(&k2, &i2), Some(None), "undefined is cached as such");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.size), (2, 1, 2));
    }

    #[test]
    fn a_colliding_key_with_another_input_is_a_miss() {
        let c = DecisionCache::new(10, Duration::from_secs(60));
        let (k, i) = key(1);
        c.insert(k.clone(), &i, Some("true".into()), None);
        assert_eq!(c.get(&k, b"{\"i\":2}"), None);
    }

    #[test]
    fn expired_entries_are_never_returned() {
        let c = DecisionCache::new(10, Duration::from_secs(60));
        let (k, i) = key(1);
        c.insert(
            k.clone(),
            &i,
            Some("1".into()),
            Some(Duration::from_millis(20)),
        );
        assert!(c.get(&k, &i).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.get(&k, &i), None);
        assert_eq!(c.stats().expirations, 1);
        assert_eq!(c.stats().size, 0);
        let (k2, i2) = key(2);
        c.insert(k2, &i2, Some("1".into()), Some(Duration::from_millis(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.sweep_expired(), 1);
        assert_eq!(c.stats().size, 0);
    }

    #[test]
    fn zero_ttl_is_not_cached() {
        let c = DecisionCache::new(10, Duration::from_secs(60));
        let (k, i) = key(1);
        c.insert(k.clone(), &i, Some("1".into()), Some(Duration::ZERO));
        assert_eq!(c.get(&k, &i), None);
    }

    #[test]
    fn eviction_keeps_recently_used_entries() {
        let c = DecisionCache::new(3, Duration::from_secs(60));
        for n in 0..3 {
            let (k, i) = key(n);
            c.insert(k, &i, Some("x".into()), None);
        }
        // Touch 0 and 2; inserting 3 must evict 1, the least recently used.
        let (k0, i0) = key(0);
        let (k2, i2) = key(2);
        assert!(c.get(&k0, &i0).is_some());
        assert!(c.get(&k2, &i2).is_some());
        let (k3, i3) = key(3);
        c.insert(k3.clone(), &i3, Some("x".into()), None);
        let (k1, i1) = key(1);
        assert_eq!(c.get(&k1, &i1), None);
        assert!(c.get(&k0, &i0).is_some());
        assert!(c.get(&k3, &i3).is_some());
        assert_eq!(c.stats().evictions, 1);
        assert_eq!(c.stats().size, 3);
    }

    #[test]
    fn size_bound_holds_under_concurrent_inserts() {
        let c = Arc::new(DecisionCache::new(100, Duration::from_secs(60)));
        let max_seen = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for t in 0..4u32 {
                let c = c.clone();
                let max_seen = max_seen.clone();
                s.spawn(move || {
                    for n in 0..5_000u32 {
                        let (k, i) = key(t * 100_000 + n);
                        c.insert(k, &i, Some("x".into()), None);
                        // `len` counts held entries; DashMap::len sums shards
                        // non-atomically, so it is only checked once the threads are done.
                        max_seen.fetch_max(c.len.load(Ordering::Acquire), Ordering::Relaxed);
                    }
                });
            }
        });
        assert!(
            max_seen.load(Ordering::Relaxed) <= 100,
            "saw {}",
            max_seen.load(Ordering::Relaxed)
        );
        assert_eq!(c.stats().size, 100);
        assert_eq!(c.map.len(), 100);
        assert_eq!(c.stats().evictions, 20_000 - 100);
        assert!(c.queue.lock().unwrap().len() <= 2 * 100 + 1);
    }

    #[test]
    fn replacing_an_entry_does_not_leak_slots() {
        let c = DecisionCache::new(2, Duration::from_secs(60));
        let (k, i) = key(1);
        for _ in 0..100 {
            c.insert(k.clone(), &i, Some("x".into()), None);
        }
        assert_eq!(c.stats().size, 1);
        assert_eq!(c.stats().evictions, 0);
        let (k2, i2) = key(2);
        c.insert(k2.clone(), &i2, Some("y".into()), None);
        assert!(c.get(&k, &i).is_some() && c.get(&k2, &i2).is_some());
    }
}
