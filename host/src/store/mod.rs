//! Documents written at run time through OPA's data API (`PUT`, `PATCH` and `DELETE
//! /v1/data/{path}`; policies put through the policy API are in [`PolicyStore`]): the one tree of written documents every loaded bundle layers over its
//! own data, durable in the persistence directory and, in a cluster, shared through Redis.
//!
//! A write is planned here ([`DataStore::plan_put`], [`DataStore::plan_patch`],
//! [`DataStore::plan_delete`]: the resulting document at the write's path, checked against
//! the limits), then committed with a version ([`DataStore::commit`]): journaled and synced
//! to disk first, then applied. Every commit bumps the store's generation; each evaluator
//! instance remembers the generation it has applied and catches up, through the WIT
//! `store.write` export (or the same code natively), before its next evaluation
//! ([`DataStore::changes_since`]). Decision cache keys carry the generation, so a decision
//! computed with older data is never served.

mod journal;
mod policies;

use journal::Journal;
pub use policies::PolicyStore;
use serde_json::Value;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The keys of a document below `data`, e.g. `["users", "alice"]` for `data.users.alice`.
pub type DataPath = Vec<String>;

/// How many written paths are remembered for incremental catch-up; an instance further
/// behind receives every written document at once.
const CHANGE_LOG: usize = 256;

/// Bounds on written documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// Largest serialized size of one write's document, and of all written documents
    /// together, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of a written document (counted from `data`).
    pub max_depth: usize,
}

/// One committed write: the document now at `path`, or its removal.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// Where.
    pub path: DataPath,
    /// The whole document now at `path`; `None` removes it.
    pub value: Option<Value>,
    /// Its version: writes apply in version order, the last writer wins per path. Assigned
    /// by the cluster (Redis) or, on a single instance, by the store.
    pub version: u64,
}

/// Why a write was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `If-None-Match: *` and a document exists (OPA answers 304).
    #[error("the document exists")]
    Exists,
    /// The document (or a parent) does not exist (OPA's `resource_not_found`).
    #[error("storage_not_found_error: {0}")]
    NotFound(String),
    /// A parent is not an object, or the patch does not apply (answered 404
    /// `resource_conflict`, OPA's `storage_write_conflict_error`).
    #[error("{0}")]
    Invalid(String),
    /// Over a limit (size, depth).
    #[error("{0}")]
    TooLarge(String),
    /// The journal could not be written: the write is not durable and was not applied.
    #[error("cannot persist the write: {0}")]
    Persist(String),
}

/// What an instance at some generation must apply to catch up.
#[derive(Debug)]
pub struct Changes {
    /// The generation the instance is at after applying `writes`.
    pub generation: u64,
    /// `(path, document JSON or None)` in order; the empty path replaces every written
    /// document at once.
    pub writes: Vec<(DataPath, Option<Arc<str>>)>,
}

struct State {
    /// Every written document, as one object tree.
    doc: Value,
    generation: u64,
    /// Version of the last applied write.
    version: u64,
    /// The latest writes: generation, path and the document written (JSON), replayed in
    /// order by instances that are behind.
    changes: VecDeque<(u64, DataPath, Option<Arc<str>>)>,
    /// Bytes of the documents in `changes`.
    changes_bytes: usize,
    /// Serialized size of `doc`.
    bytes: usize,
    /// The whole tree serialized, for instances too far behind, made once per generation.
    full: Option<(u64, Arc<str>)>,
}

/// The written documents of one `sark serve` (or one embedding).
pub struct DataStore {
    state: RwLock<State>,
    generation: AtomicU64,
    /// Serializes commits; holds the journal when the store is durable.
    journal: Mutex<Option<Journal>>,
    limits: DataLimits,
    /// The generation, announced after every commit (see [`DataStore::subscribe`]).
    announce: tokio::sync::watch::Sender<u64>,
}

impl DataStore {
    /// An empty store in memory only (one-shot commands, tests, benchmarks).
    pub fn in_memory(limits: DataLimits) -> Self {
        Self::with_state(Value::Object(Default::default()), 0, None, limits)
    }

    /// The store persisted in `dir` (created if needed), restored from it.
    pub fn open(dir: &Path, limits: DataLimits) -> anyhow::Result<Self> {
        let (journal, doc, version) = Journal::open(dir)?;
        let store = Self::with_state(doc, version, Some(journal), limits);
        Ok(store)
    }

    fn with_state(doc: Value, version: u64, journal: Option<Journal>, limits: DataLimits) -> Self {
        let bytes = serialized_len(&doc);
        let empty = doc.as_object().is_none_or(|o| o.is_empty());
        // A restored store starts at generation 1 with no change log: every instance then
        // receives the whole tree once.
        let generation = u64::from(!empty);
        DataStore {
            state: RwLock::new(State {
                bytes,
                doc,
                generation,
                version,
                changes: VecDeque::new(),
                changes_bytes: 0,
                full: None,
            }),
            generation: AtomicU64::new(generation),
            journal: Mutex::new(journal),
            limits,
            announce: tokio::sync::watch::Sender::new(generation),
        }
    }

    /// A receiver that wakes after every commit (with the new generation).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.announce.subscribe()
    }

    /// The limits writes are checked against.
    pub fn limits(&self) -> DataLimits {
        self.limits
    }

    /// The generation: bumped by every commit. Cheap (one atomic load).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The version of the last applied write (0: none yet).
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// Number of bytes the written documents take serialized.
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.read().doc.as_object().is_none_or(|o| o.is_empty())
    }

    /// A copy of the written document at `path` (the empty path: every written document).
    pub fn get(&self, path: &[String]) -> Option<Value> {
        lookup(&self.read().doc, path).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// What an instance at `generation` applies to reach the current generation: the
    /// writes since, in order, when the log still holds them, else the whole tree at once.
    /// `keep` filters out paths the instance's bundle owns (they are never written to it).
    pub fn changes_since(&self, generation: u64, keep: &dyn Fn(&[String]) -> bool) -> Changes {
        {
            let s = self.read();
            if generation == s.generation {
                return Changes {
                    generation,
                    writes: Vec::new(),
                };
            }
            let oldest = s.changes.front().map_or(u64::MAX, |(g, _, _)| *g);
            if generation < s.generation && generation + 1 >= oldest {
                let writes = s
                    .changes
                    .iter()
                    .filter(|(g, path, _)| *g > generation && keep(path))
                    .map(|(_, path, text)| (path.clone(), text.clone()))
                    .collect();
                return Changes {
                    generation: s.generation,
                    writes,
                };
            }
            if let Some((g, text)) = &s.full
                && *g == s.generation
                && !has_owned(&s.doc, &mut Vec::new(), keep)
            {
                return Changes {
                    generation: s.generation,
                    writes: vec![(Vec::new(), Some(text.clone()))],
                };
            }
        }
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        let generation = s.generation;
        let mut doc = s.doc.clone();
        let pruned = prune(&mut doc, &mut Vec::new(), keep);
        let text: Arc<str> = doc.to_string().into();
        if !pruned {
            s.full = Some((generation, text.clone()));
        }
        Changes {
            generation,
            writes: vec![(Vec::new(), Some(text))],
        }
    }

    /// Plans `PUT /v1/data/{path}`: the document `value` at `path`. With `if_none_match`
    /// (`If-None-Match: *`) an existing document is [`StoreError::Exists`].
    pub fn plan_put(
        &self,
        path: DataPath,
        value: Value,
        if_none_match: bool,
    ) -> Result<Write, StoreError> {
        let s = self.read();
        if if_none_match && lookup(&s.doc, &path).is_some() {
            return Err(StoreError::Exists);
        }
        check_parents(&s.doc, &path)?;
        self.check_limits(&s, &path, &value)?;
        Ok(Write {
            path,
            value: Some(value),
            version: 0,
        })
    }

    /// Plans `PATCH /v1/data/{path}`: the RFC 6902 `patch` applied to the document at
    /// `path` (an absent document patches as `null` only through `add` of the whole path).
    /// A patch that fails leaves everything unchanged.
    pub fn plan_patch(
        &self,
        path: DataPath,
        patch: &json_patch::Patch,
    ) -> Result<Write, StoreError> {
        let s = self.read();
        check_parents(&s.doc, &path)?;
        let not_found = || StoreError::NotFound("document does not exist".into());
        let target = lookup(&s.doc, &path);
        if target.is_none() && !path.is_empty() {
            // A missing document can only be created whole (`add` at the patch's root),
            // inside an existing parent, as in OPA (a patch never creates parents).
            let creates = lookup(&s.doc, &path[..path.len() - 1]).is_some_and(Value::is_object)
                && matches!(patch.0.first(), Some(json_patch::PatchOperation::Add(op)) if op.path.is_root());
            if !creates {
                return Err(not_found());
            }
        }
        let empty = Value::Object(Default::default());
        let original = target.unwrap_or(if path.is_empty() {
            &empty
        } else {
            &Value::Null
        });
        // The write covers only what the patch touches — the deepest path every operation
        // is under — so a one-key patch of a large document copies, journals, shares and
        // applies that key, not the document. The operations are re-rooted there.
        let mut touched = common_prefix(patch.0.iter().flat_map(|op| touched_by(op, original)));
        // One removal of a member: the write is the removal itself.
        if let [json_patch::PatchOperation::Remove(r)] = patch.0.as_slice()
            && r.path.tokens().count() == touched.len()
            && !touched.is_empty()
        {
            if lookup(original, &touched).is_none() {
                return Err(not_found());
            }
            let mut full = path;
            full.extend(touched);
            return Ok(Write {
                path: full,
                value: None,
                version: 0,
            });
        }
        // Otherwise a removal is written at its parent (the patch removes a member of it).
        if patch.0.iter().any(|op| {
            matches!(op, json_patch::PatchOperation::Remove(r)
                if r.path.tokens().count() == touched.len())
        }) {
            touched.pop();
        }
        let ops = reroot(&patch.0, touched.len()).map_err(StoreError::Invalid)?;
        let mut doc = match lookup(original, &touched) {
            Some(v) => v.clone(),
            // Only an `add` creates a member.
            None if matches!(ops.first(), Some(json_patch::PatchOperation::Add(op)) if op.path.is_root()) => {
                Value::Null
            }
            None => return Err(not_found()),
        };
        json_patch::patch(&mut doc, &ops).map_err(|e| {
            if matches!(e.kind, json_patch::PatchErrorKind::InvalidPointer) {
                not_found()
            } else {
                StoreError::Invalid(format!("{}: {e}", display(&path)))
            }
        })?;
        if path.is_empty() && touched.is_empty() && !doc.is_object() {
            return Err(StoreError::Invalid(
                "the data document must stay an object".into(),
            ));
        }
        let mut full = path;
        full.extend(touched);
        self.check_limits(&s, &full, &doc)?;
        Ok(Write {
            path: full,
            value: Some(doc),
            version: 0,
        })
    }

    /// Plans `DELETE /v1/data/{path}`; a missing document is [`StoreError::NotFound`].
    pub fn plan_delete(&self, path: DataPath) -> Result<Write, StoreError> {
        let s = self.read();
        if lookup(&s.doc, &path).is_none() {
            return Err(StoreError::NotFound(format!(
                "{}: document does not exist",
                display(&path)
            )));
        }
        Ok(Write {
            path,
            value: None,
            version: 0,
        })
    }

    fn check_limits(&self, s: &State, path: &[String], value: &Value) -> Result<(), StoreError> {
        let depth = path.len() + depth_of(value, self.limits.max_depth + 1);
        if depth > self.limits.max_depth {
            return Err(StoreError::TooLarge(format!(
                "the document nests deeper than {} levels below data (limits.max_data_depth)",
                self.limits.max_depth
            )));
        }
        let size = serde_json::to_string(value).map_or(0, |t| t.len());
        let replaced =
            lookup(&s.doc, path).map_or(0, |v| serde_json::to_string(v).map_or(0, |t| t.len()));
        let total = s.bytes.saturating_sub(replaced).saturating_add(size);
        if size > self.limits.max_bytes || total > self.limits.max_bytes {
            return Err(StoreError::TooLarge(format!(
                "the written documents would take {total} bytes (this one {size}), over the limit of {} (limits.max_data_bytes)",
                self.limits.max_bytes
            )));
        }
        Ok(())
    }

    /// Journals (and syncs) then applies `write`. A `version` of 0 takes the next local
    /// version; a write whose version is not newer than the store's is already applied and
    /// skipped. Returns the version applied, or `None` when skipped.
    pub fn commit(&self, mut write: Write) -> Result<Option<u64>, StoreError> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.read().version;
        if write.version == 0 {
            write.version = current + 1;
        } else if write.version <= current {
            return Ok(None);
        }
        // Serialized once: the journal line and what lagging instances replay.
        let text: Option<Arc<str>> = write.value.as_ref().map(|v| v.to_string().into());
        if let Some(j) = journal.as_mut() {
            j.append(&write, text.as_deref())
                .map_err(|e| StoreError::Persist(format!("{e:#}")))?;
        }
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        let replaced = lookup(&s.doc, &write.path).map_or(0, serialized_len);
        let added = text.as_ref().map_or(0, |t| t.len());
        apply(&mut s.doc, &write.path, write.value);
        s.bytes = (s.bytes + added).saturating_sub(replaced);
        s.version = write.version;
        s.generation += 1;
        let generation = s.generation;
        s.changes_bytes += added;
        s.changes.push_back((generation, write.path, text));
        // The log is bounded in entries and in bytes (twice the data limit); an instance
        // further behind gets the whole tree.
        let max_bytes = self.limits.max_bytes.saturating_mul(2);
        while s.changes.len() > CHANGE_LOG || (s.changes_bytes > max_bytes && s.changes.len() > 1) {
            if let Some((_, _, t)) = s.changes.pop_front() {
                s.changes_bytes -= t.map_or(0, |t| t.len());
            }
        }
        s.full = None;
        self.generation.store(generation, Ordering::Release);
        drop(s);
        // Folding the journal serializes the tree: under the read lock, so instances keep
        // catching up meanwhile (commits wait on the journal).
        if let Some(j) = journal.as_mut() {
            let s = self.read();
            j.compact_if_needed(&s.doc, s.version);
        }
        self.announce.send_replace(generation);
        Ok(Some(write.version))
    }
}

/// The keys an operation writes, below the document patched (`original`, before the
/// patch): its pointer, cut where it enters an array (arrays are written whole) or below a
/// member `original` lacks. `test` writes nothing.
fn touched_by(op: &json_patch::PatchOperation, original: &Value) -> Vec<Vec<String>> {
    use json_patch::PatchOperation as Op;
    let pointers: Vec<&json_patch::jsonptr::Pointer> = match op {
        Op::Add(o) => vec![&o.path],
        Op::Remove(o) => vec![&o.path],
        Op::Replace(o) => vec![&o.path],
        Op::Move(o) => vec![&o.from, &o.path],
        Op::Copy(o) => vec![&o.path],
        Op::Test(_) => vec![],
    };
    pointers
        .into_iter()
        .map(|pointer| {
            let tokens: Vec<String> = pointer.tokens().map(|t| t.decoded().into_owned()).collect();
            let mut keys = Vec::new();
            let mut node = Some(original);
            for key in &tokens {
                // Members of objects only: an array is written whole, and below a missing
                // member the operation writes that member.
                let Some(object) = node.and_then(Value::as_object) else {
                    break;
                };
                keys.push(key.clone());
                node = object.get(key);
            }
            keys
        })
        .collect()
}

/// `ops` with the first `depth` keys of every pointer removed (they name the document the
/// patch is applied to).
fn reroot(
    ops: &[json_patch::PatchOperation],
    depth: usize,
) -> Result<Vec<json_patch::PatchOperation>, String> {
    if depth == 0 {
        return Ok(ops.to_vec());
    }
    let cut = |pointer: &Value| -> Value {
        let text = pointer.as_str().unwrap_or("");
        let rest: Vec<&str> = text.split('/').skip(1 + depth).collect();
        Value::String(rest.iter().map(|t| format!("/{t}")).collect())
    };
    ops.iter()
        .map(|op| {
            let mut v = serde_json::to_value(op).map_err(|e| e.to_string())?;
            for field in ["path", "from"] {
                if let Some(p) = v.get(field) {
                    let p = cut(p);
                    v[field] = p;
                }
            }
            serde_json::from_value(v).map_err(|e| e.to_string())
        })
        .collect()
}

/// The longest prefix shared by every path (empty when there are none).
fn common_prefix(paths: impl Iterator<Item = Vec<String>>) -> Vec<String> {
    let mut prefix: Option<Vec<String>> = None;
    for path in paths {
        prefix = Some(match prefix {
            None => path,
            Some(p) => p
                .into_iter()
                .zip(path)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    prefix.unwrap_or_default()
}

/// Length of `value` serialized as compact JSON, without building the text.
fn serialized_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// What an instance of a bundle with `roots` applies to go from `generation` to the
/// store's: the writes outside the bundle's roots. When a written path is an ancestor of a
/// root (written while another bundle was active), the whole tree is sent instead, pruned
/// of what the bundle owns, so the bundle's part is kept.
pub fn changes_for(store: &DataStore, roots: &[String], generation: u64) -> Changes {
    let keep = |path: &[String]| !sark_guest::owned_by_roots(roots, path);
    let changes = store.changes_since(generation, &keep);
    let above_a_root = changes
        .writes
        .iter()
        .any(|(path, _)| !path.is_empty() && sark_guest::ancestor_of_root(roots, path));
    if !above_a_root {
        return changes;
    }
    store.changes_since(u64::MAX, &keep)
}

fn display(path: &[String]) -> String {
    format!("/{}", path.join("/"))
}

/// The document at `path` in `doc`.
pub(crate) fn lookup<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(doc, |node, key| node.as_object()?.get(key))
}

/// Every existing parent of `path` must be an object.
fn check_parents(doc: &Value, path: &[String]) -> Result<(), StoreError> {
    let mut node = doc;
    for (i, key) in path.iter().enumerate().take(path.len().saturating_sub(1)) {
        match node.as_object() {
            Some(o) => match o.get(key) {
                Some(next) => node = next,
                None => return Ok(()),
            },
            None => {
                return Err(StoreError::Invalid(format!(
                    "{} is not an object",
                    display(&path[..i])
                )));
            }
        }
    }
    if !path.is_empty() && !node.is_object() {
        return Err(StoreError::Invalid(format!(
            "{} is not an object",
            display(&path[..path.len() - 1])
        )));
    }
    Ok(())
}

/// Sets (or removes) the document at `path`, creating parent objects.
pub(crate) fn apply(doc: &mut Value, path: &[String], value: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        *doc = value.unwrap_or_else(|| Value::Object(Default::default()));
        return;
    };
    let mut node = doc;
    for key in parents {
        if !node.is_object() {
            *node = Value::Object(Default::default());
        }
        let object = node.as_object_mut().expect("made an object");
        if value.is_none() && !object.contains_key(key) {
            return;
        }
        node = object
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    if !node.is_object() {
        *node = Value::Object(Default::default());
    }
    let object = node.as_object_mut().expect("made an object");
    match value {
        Some(v) => {
            object.insert(last.clone(), v);
        }
        None => {
            object.remove(last);
        }
    }
}

/// Removes from `doc` every member whose path `keep` refuses; true when any was.
fn prune(doc: &mut Value, path: &mut Vec<String>, keep: &dyn Fn(&[String]) -> bool) -> bool {
    let Some(object) = doc.as_object_mut() else {
        return false;
    };
    let keys: Vec<String> = object.keys().cloned().collect();
    let mut pruned = false;
    for key in keys {
        path.push(key.clone());
        if !keep(path) {
            object.remove(&key);
            pruned = true;
        } else if let Some(child) = object.get_mut(&key) {
            pruned |= prune(child, path, keep);
        }
        path.pop();
    }
    pruned
}

/// Whether `doc` has a member whose path `keep` refuses.
fn has_owned(doc: &Value, path: &mut Vec<String>, keep: &dyn Fn(&[String]) -> bool) -> bool {
    let Some(object) = doc.as_object() else {
        return false;
    };
    for (key, child) in object {
        path.push(key.clone());
        let owned = !keep(path) || has_owned(child, path, keep);
        path.pop();
        if owned {
            return true;
        }
    }
    false
}

/// Nesting depth of `value` (a scalar is 1), counted up to `cap`.
fn depth_of(value: &Value, cap: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    match value {
        Value::Object(o) => 1 + o.values().map(|v| depth_of(v, cap - 1)).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(|v| depth_of(v, cap - 1)).max().unwrap_or(0),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> DataLimits {
        DataLimits {
            max_bytes: 1 << 20,
            max_depth: 8,
        }
    }

    fn p(s: &str) -> DataPath {
        s.split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    fn all(_: &[String]) -> bool {
        true
    }

    #[test]
    fn writes_commit_in_version_order_and_catch_up_incrementally() {
        let store = DataStore::in_memory(limits());
        assert_eq!(store.generation(), 0);
        let w = store
            .plan_put(p("users"), json!({"alice": 1}), false)
            .unwrap();
        assert_eq!(store.commit(w).unwrap(), Some(1));
        let w = store.plan_put(p("users/bob"), json!(2), false).unwrap();
        store.commit(w).unwrap();
        assert_eq!(store.get(&p("users")), Some(json!({"alice": 1, "bob": 2})));
        let c = store.changes_since(0, &all);
        assert_eq!(c.generation, 2);
        assert_eq!(c.writes.len(), 2);
        assert_eq!(c.writes[1], (p("users/bob"), Some("2".into())));
        // Already applied: skipped.
        let stale = Write {
            path: p("users"),
            value: None,
            version: 2,
        };
        assert_eq!(store.commit(stale).unwrap(), None);
        let w = store.plan_delete(p("users/alice")).unwrap();
        store.commit(w).unwrap();
        assert!(matches!(
            store.plan_delete(p("users/alice")),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.get(&p("users")), Some(json!({"bob": 2})));
    }

    #[test]
    fn a_far_behind_instance_gets_the_whole_tree_without_owned_paths() {
        let store = DataStore::in_memory(limits());
        for i in 0..(CHANGE_LOG + 2) {
            let w = store
                .plan_put(p(&format!("k{i}")), json!(i), false)
                .unwrap();
            store.commit(w).unwrap();
        }
        let w = store.plan_put(p("app/x"), json!(1), false).unwrap();
        store.commit(w).unwrap();
        let c = store.changes_since(0, &|path: &[String]| {
            path.first().map(String::as_str) != Some("k0")
        });
        assert_eq!(c.writes.len(), 1);
        let (path, doc) = &c.writes[0];
        assert!(path.is_empty());
        let doc: Value = serde_json::from_str(doc.as_deref().unwrap()).unwrap();
        assert!(doc.get("k0").is_none());
        assert_eq!(doc["k1"], json!(1));
    }

    #[test]
    fn patches_apply_atomically() {
        let store = DataStore::in_memory(limits());
        store
            .commit(
                store
                    .plan_put(p("users"), json!({"a": [1]}), false)
                    .unwrap(),
            )
            .unwrap();
        let ok: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/a/-", "value": 2},
            {"op": "add", "path": "/b", "value": {}}
        ]))
        .unwrap();
        store
            .commit(store.plan_patch(p("users"), &ok).unwrap())
            .unwrap();
        assert_eq!(store.get(&p("users")), Some(json!({"a": [1, 2], "b": {}})));
        let bad: json_patch::Patch = serde_json::from_value(json!([
            {"op": "remove", "path": "/b"},
            {"op": "test", "path": "/a/0", "value": 9}
        ]))
        .unwrap();
        assert!(store.plan_patch(p("users"), &bad).is_err());
        assert_eq!(store.get(&p("users")), Some(json!({"a": [1, 2], "b": {}})));
        assert!(matches!(
            store.plan_patch(p("nobody"), &ok),
            Err(StoreError::NotFound(_))
        ));
        let create: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "", "value": [1]}])).unwrap();
        store
            .commit(store.plan_patch(p("users/c"), &create).unwrap())
            .unwrap();
        assert_eq!(store.get(&p("users/c")), Some(json!([1])));
        assert!(matches!(
            store.plan_patch(p("none/c"), &create),
            Err(StoreError::NotFound(_))
        ));
        // A patch writes only what it touches.
        let one: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/c~1d", "value": {"x": 1}},
            {"op": "add", "path": "/c~1d/y", "value": 2}
        ]))
        .unwrap();
        let w = store.plan_patch(p("users"), &one).unwrap();
        assert_eq!(w.path, vec!["users".to_string(), "c/d".to_string()]);
        assert_eq!(w.value, Some(json!({"x": 1, "y": 2})));
        store.commit(w).unwrap();
        let into_array: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/a/0", "value": 0}])).unwrap();
        let w = store.plan_patch(p("users"), &into_array).unwrap();
        assert_eq!(
            (&w.path, &w.value),
            (&p("users/a"), &Some(json!([0, 1, 2])))
        );
        let remove: json_patch::Patch =
            serde_json::from_value(json!([{"op": "remove", "path": "/b"}])).unwrap();
        let w = store.plan_patch(p("users"), &remove).unwrap();
        assert_eq!((&w.path, &w.value), (&p("users/b"), &None));
        store.commit(w).unwrap();
        assert!(matches!(
            store.plan_patch(p("users"), &remove),
            Err(StoreError::NotFound(_))
        ));
        let replace_missing: json_patch::Patch =
            serde_json::from_value(json!([{"op": "replace", "path": "/zz", "value": 1}])).unwrap();
        assert!(matches!(
            store.plan_patch(p("users"), &replace_missing),
            Err(StoreError::NotFound(_))
        ));
        let two: json_patch::Patch = serde_json::from_value(json!([
            {"op": "remove", "path": "/c~1d/x"},
            {"op": "replace", "path": "/c~1d/y", "value": 3}
        ]))
        .unwrap();
        let w = store.plan_patch(p("users"), &two).unwrap();
        assert_eq!(
            (&w.path, &w.value),
            (
                &vec!["users".to_string(), "c/d".to_string()],
                &Some(json!({"y": 3}))
            )
        );
        store.commit(w).unwrap();
        assert_eq!(
            store.get(&p("users")),
            Some(json!({"a": [1, 2], "c": [1], "c/d": {"y": 3}}))
        );
    }

    #[test]
    fn limits_and_parents_are_checked() {
        let store = DataStore::in_memory(DataLimits {
            max_bytes: 64,
            max_depth: 4,
        });
        assert!(matches!(
            store.plan_put(p("a"), json!({"b": {"c": {"d": 1}}}), false),
            Err(StoreError::TooLarge(_))
        ));
        assert!(matches!(
            store.plan_put(p("a"), json!("x".repeat(100)), false),
            Err(StoreError::TooLarge(_))
        ));
        store
            .commit(store.plan_put(p("a"), json!(1), false).unwrap())
            .unwrap();
        assert!(matches!(
            store.plan_put(p("a/b"), json!(1), false),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store.plan_put(p("a"), json!(2), true),
            Err(StoreError::Exists)
        ));
    }

    #[test]
    fn a_durable_store_restores_every_committed_write() {
        let dir = std::env::temp_dir().join(format!("sark-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = DataStore::open(&dir, limits()).unwrap();
            store
                .commit(store.plan_put(p("users"), json!({"a": 1}), false).unwrap())
                .unwrap();
            store
                .commit(store.plan_put(p("users/b"), json!(2), false).unwrap())
                .unwrap();
            store
                .commit(store.plan_delete(p("users/a")).unwrap())
                .unwrap();
            store
                .commit(store.plan_put(p("nothing"), Value::Null, false).unwrap())
                .unwrap();
        }
        let store = DataStore::open(&dir, limits()).unwrap();
        assert_eq!(store.get(&p("users")), Some(json!({"b": 2})));
        assert_eq!(
            store.get(&p("nothing")),
            Some(Value::Null),
            "a null document is not a removal"
        );
        assert_eq!(store.version(), 4);
        assert_eq!(store.generation(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
