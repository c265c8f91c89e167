//! Decision cache latency against moka and a `Mutex<lru::LruCache>`, with 1 and 2 threads.
//! Each operation is timed on its own, so the report has medians and p99s.
//! Run with `make bench` or `cargo bench -p sark-benches --bench cache`.

use sark::cache::{CacheKey, DecisionCache};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ENTRIES: u32 = 10_000;
const OPS_PER_THREAD: u32 = 200_000;

type Value = (Arc<[u8]>, Option<Arc<str>>);

trait Bench: Sync {
    fn get(&self, key: &CacheKey, input: &[u8]) -> bool;
    fn set(&self, key: CacheKey, input: &[u8]);
}

impl Bench for DecisionCache {
    fn get(&self, key: &CacheKey, input: &[u8]) -> bool {
        DecisionCache::get(self, key, input).is_some()
    }
    fn set(&self, key: CacheKey, input: &[u8]) {
        self.insert(key, input, Some("{\"allow\":true}".into()), None);
    }
}

struct Moka(moka::sync::Cache<CacheKey, Value>);

impl Bench for Moka {
    fn get(&self, key: &CacheKey, input: &[u8]) -> bool {
        self.0.get(key).is_some_and(|(i, _)| &*i == input)
    }
    fn set(&self, key: CacheKey, input: &[u8]) {
        self.0
            .insert(key, (input.into(), Some("{\"allow\":true}".into())));
    }
}

struct MutexLru(Mutex<lru::LruCache<CacheKey, Value>>);

impl Bench for MutexLru {
    fn get(&self, key: &CacheKey, input: &[u8]) -> bool {
        self.0
            .lock()
            .unwrap()
            .get(key)
            .is_some_and(|(i, _)| &**i == input)
    }
    fn set(&self, key: CacheKey, input: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .put(key, (input.into(), Some("{\"allow\":true}".into())));
    }
}

fn input(i: u32) -> Vec<u8> {
    format!(
        "{{\"user\":{{\"id\":\"user-{i}\",\"role\":\"developer\"}},\"action\":\"tool:invoke\"}}"
    )
    .into_bytes()
}

fn key(input: &[u8]) -> CacheKey {
    CacheKey::new("rev@hash".into(), "data.mcp.gateway.decision".into(), input)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((p * sorted.len() as f64) as usize).min(sorted.len() - 1)]
}

/// Runs `op` on `threads` threads; returns (median, p99) in ns over all operations.
fn run(threads: u32, op: impl Fn(u32, u32) + Sync) -> (u64, u64) {
    let mut all: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                s.spawn(move || {
                    let mut samples = Vec::with_capacity(OPS_PER_THREAD as usize);
                    for n in 0..OPS_PER_THREAD {
                        let start = Instant::now();
                        op(t, n);
                        samples.push(start.elapsed().as_nanos() as u64);
                    }
                    samples
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    all.sort_unstable();
    (percentile(&all, 0.5), percentile(&all, 0.99))
}

fn bench(name: &str, cache: &dyn Bench) {
    let inputs: Vec<Vec<u8>> = (0..ENTRIES).map(input).collect();
    let keys: Vec<CacheKey> = inputs.iter().map(|i| key(i)).collect();
    for (k, i) in keys.iter().zip(&inputs) {
        cache.set(k.clone(), i);
    }
    for threads in [1, 2] {
        let (get_med, get_p99) = run(threads, |t, n| {
            let idx = ((n.wrapping_mul(7919) + t * 13) % ENTRIES) as usize;
            black_box(cache.get(&keys[idx], &inputs[idx]));
        });
        // Inserts of new keys: every one evicts once the cache is full.
        let fresh: Vec<Vec<u8>> = (0..OPS_PER_THREAD * threads)
            .map(|i| input(1_000_000 + i))
            .collect();
        let fresh_keys: Vec<CacheKey> = fresh.iter().map(|i| key(i)).collect();
        let (set_med, set_p99) = run(threads, |t, n| {
            let idx = (t * OPS_PER_THREAD + n) as usize;
            cache.set(fresh_keys[idx].clone(), &fresh[idx]);
        });
        println!(
            "{name:<18} threads={threads}  get median {get_med:>5} ns  p99 {get_p99:>6} ns   set median {set_med:>5} ns  p99 {set_p99:>6} ns"
        );
        // Refill with the hot keys for the next round.
        for (k, i) in keys.iter().zip(&inputs) {
            cache.set(k.clone(), i);
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let ttl = Duration::from_secs(300);
    bench(
        "sark DecisionCache",
        &DecisionCache::new(ENTRIES as usize, ttl),
    );
    let moka = moka::sync::Cache::builder()
        .max_capacity(u64::from(ENTRIES))
        .time_to_live(ttl)
        .build();
    bench("moka", &Moka(moka));
    let lru = lru::LruCache::new(NonZeroUsize::new(ENTRIES as usize).unwrap());
    bench("Mutex<LruCache>", &MutexLru(Mutex::new(lru)));
}
