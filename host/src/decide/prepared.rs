//! Inputs prepared once: the canonical form and the rollout key a lookup needs, and the
//! memo that remembers them by the raw request body, so a repeated request (the common case
//! of a cache hit) is answered without parsing its body again.
//!
//! The memo maps what the client sent to what the lookup computes from it; neither depends
//! on the bundle, the flags or the written documents, so it never holds a stale entry and is
//! not cleared on a bundle swap. It is bounded by entries and by bytes: when either bound is
//! reached it starts over empty (the next requests fill it again), which keeps a changing set
//! of inputs from pinning memory while costing a repeated request one parse at most. The
//! bounds are approximate under concurrency: a put racing a `clear` may survive it uncounted,
//! until the next `clear`.

use super::canonical::{canonical_json, user_key_of};
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An input in the form [`super::DecisionService::lookup`] uses: its canonical JSON (the
/// cache key's source and the evaluators' input text; empty without input) and its default
/// rollout key (`input.user.id`, or `input.user` when it is a string).
#[derive(Debug)]
pub struct PreparedInput {
    canonical: Arc<[u8]>,
    user: Box<str>,
}

impl PreparedInput {
    /// Prepares `input` (`None`: no input).
    pub fn of(input: Option<&serde_json::Value>) -> Self {
        PreparedInput {
            canonical: input.map(canonical_json).unwrap_or_default().into(),
            user: user_key_of(input).into(),
        }
    }

    /// The canonical JSON of the input (empty without input).
    pub fn canonical(&self) -> &Arc<[u8]> {
        &self.canonical
    }

    /// The default rollout key.
    pub fn user_key(&self) -> &str {
        &self.user
    }

    fn bytes(&self) -> usize {
        self.canonical.len() + self.user.len()
    }
}

/// The front door a body came in through: the same bytes are a different input on
/// another door (`/v1/data` takes `{"input": …}`, `/v0/data` the input itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `POST /v1/data/{path}`: the `{"input": …}` envelope.
    V1Data,
    /// `POST /v0/data/{path}` and `POST /`: the body is the input.
    V0Data,
}

struct Remembered {
    door: Door,
    path: Box<str>,
    body: Box<[u8]>,
    prepared: Arc<PreparedInput>,
}

impl Remembered {
    /// What the entry counts against [`MEMO_MAX_BYTES`].
    fn size(&self) -> usize {
        self.body.len() + self.path.len() + self.prepared.bytes() + ENTRY_OVERHEAD_BYTES
    }
}

/// Bodies larger than this are parsed every time: they are rare, and remembering them
/// would let a few large inputs take the memo's byte budget.
pub const MEMO_MAX_BODY_BYTES: usize = 16 * 1024;

/// The memo's byte bound (bodies, paths and prepared inputs, plus [`ENTRY_OVERHEAD_BYTES`]
/// per entry).
pub const MEMO_MAX_BYTES: usize = 64 << 20;

/// What an entry costs besides its bytes (its allocations and its map slot), counted in the
/// byte bound so that many small entries cannot go far past it.
const ENTRY_OVERHEAD_BYTES: usize = 192;

/// Prepared inputs by front door, path and raw body (see the module documentation).
pub struct InputMemo {
    map: DashMap<u128, Arc<Remembered>>,
    max_entries: usize,
    entries: AtomicUsize,
    bytes: AtomicUsize,
}

impl InputMemo {
    /// A memo of at most `max_entries` bodies (0 remembers nothing) and
    /// [`MEMO_MAX_BYTES`].
    pub fn new(max_entries: usize) -> Self {
        InputMemo {
            map: DashMap::new(),
            max_entries,
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }

    fn key(door: Door, path: &str, body: &[u8]) -> u128 {
        let seed = xxhash_rust::xxh3::xxh3_64(path.as_bytes()) ^ door as u64;
        xxhash_rust::xxh3::xxh3_128_with_seed(body, seed)
    }

    /// Whether a body of this size is remembered at all.
    fn takes(&self, body: &[u8]) -> bool {
        self.max_entries > 0 && body.len() <= MEMO_MAX_BODY_BYTES
    }

    /// The input prepared earlier for exactly this body on this door and path.
    pub fn get(&self, door: Door, path: &str, body: &[u8]) -> Option<Arc<PreparedInput>> {
        if !self.takes(body) {
            return None;
        }
        let found = self.map.get(&Self::key(door, path, body))?;
        // The whole key is compared, so a hash collision is a miss, never another input.
        (found.door == door && *found.path == *path && *found.body == *body)
            .then(|| found.prepared.clone())
    }

    /// Remembers `prepared` for this body (nothing when the body is too large).
    pub fn put(&self, door: Door, path: &str, body: &[u8], prepared: Arc<PreparedInput>) {
        if !self.takes(body) {
            return;
        }
        let entry = Arc::new(Remembered {
            door,
            path: path.into(),
            body: body.into(),
            prepared,
        });
        let size = entry.size();
        if self.entries.load(Ordering::Relaxed) >= self.max_entries
            || self.bytes.load(Ordering::Relaxed) + size > MEMO_MAX_BYTES
        {
            self.clear();
        }
        match self.map.insert(Self::key(door, path, body), entry) {
            Some(old) => {
                let old = old.size();
                // Saturating: a concurrent `clear` may have reset the count meanwhile.
                let _ = self
                    .bytes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                        Some((b + size).saturating_sub(old))
                    });
            }
            None => {
                self.entries.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(size, Ordering::Relaxed);
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.map.clear();
        self.entries.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Bodies remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is remembered (by the entry count, without locking the map).
    pub fn is_empty(&self) -> bool {
        self.entries.load(Ordering::Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prepared_input_is_canonical_with_the_rollout_key() {
        let input = json!({"user": {"id": "dana"}, "b": 1, "a": [2, {"z": 1, "y": 2}]});
        let p = PreparedInput::of(Some(&input));
        assert_eq!(
            &**p.canonical(),
            br#"{"a":[2,{"y":2,"z":1}],"b":1,"user":{"id":"dana"}}"#
        );
        assert_eq!(p.user_key(), "dana");
        let none = PreparedInput::of(None);
        assert!(none.canonical().is_empty() && none.user_key().is_empty());
    }

    #[test]
    fn memo_answers_only_the_same_door_path_and_body() {
        let memo = InputMemo::new(10);
        let body = br#"{"input": {"user": "ana"}}"#;
        let p = Arc::new(PreparedInput::of(Some(&json!({"user": "ana"}))));
        memo.put(Door::V1Data, "a/b", body, p.clone());
        let got = memo.get(Door::V1Data, "a/b", body).expect("remembered");
        assert!(Arc::ptr_eq(&got, &p));
        assert!(
            memo.get(Door::V0Data, "a/b", body).is_none(),
            "another door"
        );
        assert!(
            memo.get(Door::V1Data, "a/c", body).is_none(),
            "another path"
        );
        assert!(
            memo.get(Door::V1Data, "a/b", br#"{"input": {"user": "bob"}}"#)
                .is_none()
        );
    }

    #[test]
    fn memo_is_bounded_by_entries_and_body_size() {
        let memo = InputMemo::new(3);
        for i in 0..10 {
            let body = format!("{{\"input\": {i}}}");
            memo.put(
                Door::V1Data,
                "p",
                body.as_bytes(),
                Arc::new(PreparedInput::of(None)),
            );
            assert!(memo.len() <= 3, "{} entries", memo.len());
        }
        // The latest body is always remembered (the memo started over to make room).
        assert!(memo.get(Door::V1Data, "p", b"{\"input\": 9}").is_some());
        let big = vec![b' '; MEMO_MAX_BODY_BYTES + 1];
        memo.put(Door::V1Data, "p", &big, Arc::new(PreparedInput::of(None)));
        assert!(memo.get(Door::V1Data, "p", &big).is_none());
        let off = InputMemo::new(0);
        off.put(Door::V1Data, "p", b"{}", Arc::new(PreparedInput::of(None)));
        assert!(off.is_empty());
    }
}
