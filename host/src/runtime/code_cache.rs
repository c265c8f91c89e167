//! On-disk cache of compiled components, keyed by the component's digest and the engine's
//! compatibility hash (wasmtime version, target, settings).

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of `<key>.cwasm` files. Files in it are trusted: they are native code
/// loaded without validation, so the directory must be writable only by the owner.
#[derive(Debug, Clone)]
pub struct CodeCache {
    dir: PathBuf,
}

impl CodeCache {
    /// Uses `dir`, creating it (mode 0700 on Unix) when missing.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { dir })
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
        let path = self
            .dir
            .join(format!("{}.cwasm", cache_key(engine, digest)));
        if path.is_file() {
            // SAFETY: the file was written by `Component::serialize` for an engine with the
            // same compatibility hash (part of the key), in a directory only we can write.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable compiled-code cache entry")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write compiled-code cache entry");
        }
        Ok((component, false))
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
