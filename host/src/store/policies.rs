//! Policies put at run time through OPA's policy API (`PUT /v1/policies/{id}`): modules
//! outside the bundle's roots, compiled together with the bundle's, each persisted (atomic
//! write, synced) in `<persistence directory>/policies/` before it is acknowledged.

use anyhow::Context;
use sark_guest::ModuleSource;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The policies put at run time, by id.
pub struct PolicyStore {
    modules: RwLock<BTreeMap<String, String>>,
    dir: Option<PathBuf>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    id: String,
    raw: String,
}

impl PolicyStore {
    /// An empty store in memory only.
    pub fn in_memory() -> Self {
        PolicyStore {
            modules: RwLock::new(BTreeMap::new()),
            dir: None,
        }
    }

    /// The store persisted in `<dir>/policies`, restored from it.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let dir = dir.join("policies");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut modules = BTreeMap::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let stored: Stored = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is damaged", path.display()))?;
            modules.insert(stored.id, stored.raw);
        }
        Ok(PolicyStore {
            modules: RwLock::new(modules),
            dir: Some(dir),
        })
    }

    /// `(id, source)` of every policy, sorted by id.
    pub fn list(&self) -> Vec<(String, String)> {
        self.read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The source of policy `id`.
    pub fn get(&self, id: &str) -> Option<String> {
        self.read().get(id).cloned()
    }

    /// The policies as modules to compile with a bundle's (module path = id), with
    /// `replace` applied: `(id, Some(source))` puts, `(id, None)` removes.
    pub fn modules_with(&self, replace: Option<(&str, Option<&str>)>) -> Vec<ModuleSource> {
        let mut all = self.read().clone();
        match replace {
            Some((id, Some(source))) => {
                all.insert(id.to_string(), source.to_string());
            }
            Some((id, None)) => {
                all.remove(id);
            }
            None => {}
        }
        all.into_iter()
            .map(|(path, source)| ModuleSource {
                path,
                source,
                rego_version: Default::default(),
            })
            .collect()
    }

    /// Persists (when durable) then records policy `id`.
    pub fn put(&self, id: &str, source: &str) -> anyhow::Result<()> {
        if let Some(dir) = &self.dir {
            let bytes = serde_json::to_vec(&Stored {
                id: id.to_string(),
                raw: source.to_string(),
            })?;
            let path = file_of(dir, id);
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.modules
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), source.to_string());
        Ok(())
    }

    /// Removes policy `id` (from disk first); false when there was none.
    pub fn remove(&self, id: &str) -> anyhow::Result<bool> {
        if self.get(id).is_none() {
            return Ok(false);
        }
        if let Some(dir) = &self.dir {
            let path = file_of(dir, id);
            match std::fs::remove_file(&path) {
                Ok(()) => std::fs::File::open(dir)?.sync_all()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context(format!("cannot remove {}", path.display())),
            }
        }
        self.modules
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(true)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, String>> {
        self.modules.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A policy's file: named by the hash of its id (ids hold `/` and any character).
fn file_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!(
        "{}.json",
        hex::encode(Sha256::digest(id.as_bytes()))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("sark-policies-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = PolicyStore::open(&dir).unwrap();
        store.put("extra/a.rego", "package extra.a\n").unwrap();
        store.put("b", "package b\n").unwrap();
        assert!(store.remove("b").unwrap());
        assert!(!store.remove("b").unwrap());
        let again = PolicyStore::open(&dir).unwrap();
        assert_eq!(
            again.list(),
            vec![("extra/a.rego".into(), "package extra.a\n".into())]
        );
        let with = again.modules_with(Some(("c", Some("package c\n"))));
        assert_eq!(with.len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
