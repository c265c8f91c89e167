//! The written documents on disk, in the persistence directory: `data/snapshot.json` (the
//! whole tree and the version it is at) and `data/journal.jsonl` (one line per write after
//! it). A write is appended and synced before it is applied, so a write the server
//! acknowledged survives `kill -9`. The journal is folded into a new snapshot (written to a
//! temporary file, synced, renamed, directory synced) once it outgrows the snapshot.

use super::Write;
use anyhow::{Context, bail};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};

/// The journal is compacted once it is larger than this and than the snapshot.
const COMPACT_MIN_BYTES: u64 = 4 << 20;

/// The open journal of a persistence directory.
pub(super) struct Journal {
    dir: PathBuf,
    file: File,
    bytes: u64,
    snapshot_bytes: u64,
}

/// One journal line: the document written at `path` (`value`, which may be `null`), or its
/// removal (`delete`).
#[derive(serde::Deserialize)]
struct Record {
    path: Vec<String>,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    delete: bool,
    version: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    version: u64,
    doc: Value,
}

impl Journal {
    /// Opens (creating) `<dir>/data` and restores the tree: the snapshot, then every
    /// journaled write after it. A torn last line (a crash in the middle of an append, never
    /// acknowledged) is cut off; any other damage is an error, so nothing accepted is
    /// silently lost.
    pub(super) fn open(dir: &Path) -> anyhow::Result<(Self, Value, u64)> {
        let dir = dir.join("data");
        std::fs::create_dir_all(&dir).with_context(|| {
            format!("cannot create the persistence directory {}", dir.display())
        })?;
        let snapshot_path = dir.join("snapshot.json");
        let (mut doc, mut version, snapshot_bytes) = match std::fs::read(&snapshot_path) {
            Ok(bytes) => {
                let s: Snapshot = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is damaged", snapshot_path.display()))?;
                (s.doc, s.version, bytes.len() as u64)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (Value::Object(Default::default()), 0, 0)
            }
            Err(e) => return Err(e).context(format!("cannot read {}", snapshot_path.display())),
        };
        let journal_path = dir.join("journal.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&journal_path)
            .with_context(|| format!("cannot open {}", journal_path.display()))?;
        let mut good: u64 = 0;
        let mut reader = BufReader::new(&file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", journal_path.display()))?;
            if n == 0 {
                break;
            }
            let complete = line.ends_with(b"\n");
            match serde_json::from_slice::<Record>(&line) {
                Ok(r) if complete => {
                    if r.version > version {
                        let value = (!r.delete).then_some(r.value);
                        super::apply(&mut doc, &r.path, value);
                        version = r.version;
                    }
                    good += n as u64;
                }
                _ if !complete => {
                    tracing::warn!(
                        journal = %journal_path.display(),
                        bytes = n,
                        "cut off a torn last write (never acknowledged)"
                    );
                    break;
                }
                Ok(_) | Err(_) => bail!(
                    "{} is damaged at byte {good}: refusing to start without the writes after it",
                    journal_path.display()
                ),
            }
        }
        file.set_len(good)
            .with_context(|| format!("cannot truncate {}", journal_path.display()))?;
        // The journal's directory entry must be durable before the first acknowledged write.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
        Ok((
            Journal {
                dir,
                file,
                bytes: good,
                snapshot_bytes,
            },
            doc,
            version,
        ))
    }

    /// Appends `write` (its document already serialized as `text`) and syncs it to disk.
    pub(super) fn append(&mut self, write: &Write, text: Option<&str>) -> anyhow::Result<()> {
        // The shape of `Write`, with the document's text spliced in.
        let mut line = Vec::with_capacity(text.map_or(0, str::len) + 128);
        line.extend_from_slice(b"{\"path\":");
        serde_json::to_writer(&mut line, &write.path).context("cannot serialize the path")?;
        match text {
            Some(text) => {
                line.extend_from_slice(b",\"value\":");
                line.extend_from_slice(text.as_bytes());
            }
            None => line.extend_from_slice(b",\"delete\":true"),
        }
        line.extend_from_slice(format!(",\"version\":{}}}\n", write.version).as_bytes());
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .context("cannot append to the data journal")?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Folds the journal into a new snapshot of `doc` at `version` once the journal
    /// outgrows it. Best effort: on failure the journal stays and is retried next time.
    pub(super) fn compact_if_needed(&mut self, doc: &Value, version: u64) {
        if self.bytes < COMPACT_MIN_BYTES || self.bytes < self.snapshot_bytes {
            return;
        }
        match self.compact(doc, version) {
            Ok(bytes) => {
                self.snapshot_bytes = bytes;
                self.bytes = 0;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot compact the data journal; it keeps growing")
            }
        }
    }

    fn compact(&mut self, doc: &Value, version: u64) -> anyhow::Result<u64> {
        let bytes = serde_json::to_vec(&Snapshot {
            version,
            doc: doc.clone(),
        })?;
        let tmp = self.dir.join("snapshot.json.tmp");
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("snapshot.json"))?;
        File::open(&self.dir)?.sync_all()?;
        // The snapshot holds every journaled write now; a crash before this truncation only
        // replays writes the snapshot already has (skipped by version).
        self.file.set_len(0)?;
        self.file.sync_all()?;
        Ok(bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sark-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn write(j: &mut Journal, key: &str, v: u64) {
        let w = Write {
            path: vec![key.into()],
            value: Some(json!(v)),
            version: v,
        };
        j.append(&w, Some(&v.to_string())).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_other_damage_refuses_to_start() {
        let d = dir("torn");
        let (mut j, _, _) = Journal::open(&d).unwrap();
        write(&mut j, "a", 1);
        write(&mut j, "b", 2);
        drop(j);
        let path = d.join("data/journal.jsonl");
        // A crash in the middle of the third append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"path":["c"],"val"#).unwrap();
        drop(f);
        let (j, doc, version) = Journal::open(&d).unwrap();
        assert_eq!((doc, version), (json!({"a": 1, "b": 2}), 2));
        drop(j);
        // The torn line is gone: the next append starts on a fresh line.
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
        // Damage before the last line: refuse rather than drop acknowledged writes.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replacen("\"a\"", "\"a", 1);
        std::fs::write(&path, text).unwrap();
        let err = Journal::open(&d)
            .err()
            .expect("a damaged journal is refused");
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn compaction_folds_the_journal_into_the_snapshot() {
        let d = dir("compact");
        let (mut j, _, _) = Journal::open(&d).unwrap();
        write(&mut j, "a", 1);
        j.bytes = COMPACT_MIN_BYTES;
        j.compact_if_needed(&json!({"a": 1}), 1);
        assert_eq!(j.bytes, 0);
        write(&mut j, "b", 2);
        drop(j);
        let (_, doc, version) = Journal::open(&d).unwrap();
        assert_eq!((doc, version), (json!({"a": 1, "b": 2}), 2));
        let _ = std::fs::remove_dir_all(&d);
    }
}
