//! A bundle loaded on both paths, as the decision service holds it.

use crate::bundle::{Bundle, BundleManifest};
use crate::config::Limits;
use crate::evaluator::{Evaluator, PathKind};
use crate::native::NativePolicy;
use crate::runtime::{WasmPolicy, WasmRuntime};
use crate::store::DataStore;
use sark_guest::ModuleSource;
use std::sync::Arc;

/// A bundle loaded on both paths.
pub struct LoadedBundle {
    /// The verified bundle's manifest. The file's bytes are not kept: once both paths
    /// are loaded they are dead weight (about 10 MB for the example policies); the wasm path
    /// keeps only the payload it loads into new instances.
    pub manifest: BundleManifest,
    /// The component path.
    pub wasm: WasmPolicy,
    /// The native path.
    pub native: NativePolicy,
    /// Identity used in cache keys: `<revision>@<content hash>`.
    pub id: Arc<str>,
    /// Whether the compiled code came from the on-disk cache.
    pub code_cache_hit: bool,
    /// The key id of the bundle's sark signature (`sark build --signing-key`), when it has
    /// one.
    pub signing_key_id: Option<String>,
    /// When the bundle was loaded.
    pub loaded_at: std::time::Instant,
}

impl LoadedBundle {
    /// Loads `bundle` on both paths: the component on `runtime`, the payload natively under
    /// `limits`; each path keeps at most `pool_size` idle instances, and layers the documents
    /// written to `data` over the bundle's own; `policies` (put at run time) are compiled
    /// with the bundle's modules.
    pub fn load(
        runtime: &WasmRuntime,
        bundle: Bundle,
        limits: Limits,
        pool_size: usize,
        data: &Arc<DataStore>,
        policies: &[ModuleSource],
    ) -> anyhow::Result<Self> {
        let (mut wasm, code_cache_hit) = runtime
            .load_with(&bundle, pool_size, policies)
            .map_err(|e| anyhow::anyhow!("cannot load the bundle component: {e:#}"))?;
        let mut native = NativePolicy::load_with(&bundle, limits, pool_size, policies)?;
        wasm.attach_store(data.clone());
        native.attach_store(data.clone());
        let manifest = bundle.manifest().clone();
        let signing_key_id = bundle.signature().map(|s| s.key_id.clone());
        let mut id = format!("{}@{}", manifest.revision, manifest.content_hash);
        if !policies.is_empty() {
            // Decisions cached for the bundle alone must not answer for it with the policies.
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for m in policies {
                h.update(m.path.as_bytes());
                h.update([0]);
                h.update(m.source.as_bytes());
                h.update([0]);
            }
            id.push('+');
            id.push_str(&hex::encode(&h.finalize()[..8]));
        }
        let id = id.into();
        Ok(LoadedBundle {
            manifest,
            wasm,
            native,
            id,
            code_cache_hit,
            signing_key_id,
            loaded_at: std::time::Instant::now(),
        })
    }

    /// The evaluator of `path`.
    pub fn evaluator(&self, path: PathKind) -> &dyn Evaluator {
        match path {
            PathKind::Wasm => &self.wasm,
            PathKind::Native => &self.native,
        }
    }

    /// Applies the latest written documents to every idle instance and engine of both
    /// paths (off the request path, after a write).
    pub fn catch_up_idle(&self) -> usize {
        self.wasm.catch_up_idle() + self.native.catch_up_idle()
    }
}
