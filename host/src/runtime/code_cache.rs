//! On-disk cache of compiled components, keyed by the component's digest and the engine's
//! compatibility hash (wasmtime version, target, settings), bounded in size: the least
//! recently used entries go first.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Default bound on the cache's total size: 1 GiB. One compiled evaluator is about 20 MB,
/// and every bundle built by this `sark` shares one (plus one instrumented copy for
/// `sark build`), so the bound is reached only by bundles of many other `sark` versions.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// A directory of `<key>.cwasm` files. Files in it are trusted: they are native code
/// loaded without validation, so the directory must be writable only by the owner.
#[derive(Debug, Clone)]
pub struct CodeCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl CodeCache {
    /// Uses `dir`, creating it (mode 0700 on Unix) when missing, bounded by
    /// `$SARK_CACHE_MAX_MB` (MiB) or else [`DEFAULT_MAX_BYTES`].
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let max_bytes = std::env::var("SARK_CACHE_MAX_MB")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_MAX_BYTES, |mb| mb.saturating_mul(1 << 20));
        Ok(Self { dir, max_bytes })
    }

    /// The cache in [`CodeCache::default_dir`], or none when that directory cannot be made
    /// (then everything is compiled in memory).
    pub fn open_default() -> Option<Self> {
        Self::new(Self::default_dir()).ok()
    }

    /// The same directory with another size bound.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Size in bytes of the cached compiled code of `digest` for `engine`, if cached.
    pub fn entry_bytes(&self, engine: &Engine, digest: &str) -> Option<u64> {
        std::fs::metadata(self.entry(engine, digest))
            .ok()
            .map(|m| m.len())
    }

    fn entry(&self, engine: &Engine, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{}.cwasm", cache_key(engine, digest)))
    }

    /// The default location: `$SARK_CACHE_DIR`, else `$XDG_CACHE_HOME/sark`, else
    /// `$HOME/.cache/sark`, else `<tmp>/sark-cache`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("SARK_CACHE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("sark");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".cache").join("sark");
        }
        std::env::temp_dir().join("sark-cache")
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the compiled component for `wasm` (whose hex sha-256 is `digest`), from the
    /// cache when present, otherwise compiling it and storing the result. The flag says
    /// whether the cache was hit. A corrupt cache entry is recompiled.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.entry(engine, digest);
        if path.is_file() {
            // SAFETY: the file was written by `Component::serialize` for an engine with the
            // same compatibility hash (part of the key), in a directory only we can write.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    // The modification time is the entry's last use, for the size bound.
                    let _ = std::fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_modified(SystemTime::now()));
                    return Ok((component, true));
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable compiled-code cache entry")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled-code cache entry");
        }
        self.evict(&path);
        Ok((component, false))
    }

    /// Removes the least recently used entries (oldest modification time) until the cache
    /// fits its bound; `keep`, the entry just written, stays whatever its size.
    fn evict(&self, keep: &Path) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|p| {
                let m = std::fs::metadata(&p).ok()?;
                Some((m.modified().ok()?, m.len(), p))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    tracing::debug!(path = %path.display(), bytes = len, "evicted a compiled-code cache entry");
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot evict a compiled-code cache entry")
                }
            }
        }
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        let bytes = component.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

fn cache_key(engine: &Engine, digest: &str) -> String {
    // DefaultHasher::new() uses fixed keys, so this is stable across processes.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let mut d = Sha256::new();
    d.update(h.finish().to_le_bytes());
    d.update(digest.as_bytes());
    hex::encode(&d.finalize()[..20])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entries_go_first() {
        let dir = std::env::temp_dir().join(format!("sark-cc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = CodeCache::new(&dir).unwrap().with_max_bytes(250);
        let t0 = SystemTime::now() - std::time::Duration::from_secs(100);
        for (i, name) in ["old", "mid", "new"].iter().enumerate() {
            let p = dir.join(format!("{name}.cwasm"));
            std::fs::write(&p, [0u8; 100]).unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(10 * i as u64))
                .unwrap();
        }
        std::fs::write(dir.join("unrelated.txt"), [0u8; 1000]).unwrap();
        // 300 bytes of entries over a bound of 250: the oldest goes, `keep` stays.
        cache.evict(&dir.join("new.cwasm"));
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["mid.cwasm", "new.cwasm", "unrelated.txt"]);
        // Even when `keep` alone is over the bound, it stays.
        let cache = cache.with_max_bytes(10);
        cache.evict(&dir.join("new.cwasm"));
        assert!(dir.join("new.cwasm").exists() && !dir.join("mid.cwasm").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
