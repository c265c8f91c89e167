//! The per-store host state: a locked-down WASI context and the memory cap.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Most table elements an instance may have; the evaluator needs a few hundred.
const MAX_TABLE_ELEMENTS: usize = 1 << 16;

/// State owned by each store: WASI (no files, no network, no environment, no stdio) and a
/// memory cap that records when it was hit, so the trap can be reported as `MemoryCap`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Cap on linear memory growth in bytes.
    pub(crate) max_memory_bytes: usize,
    /// Set when the guest tried to grow past the cap.
    pub(crate) memory_cap_hit: bool,
    /// Linear memory of the instance in bytes, all its memories together.
    pub(crate) memory_bytes: usize,
}

impl HostState {
    /// A state for evaluation: WASI with real clocks and randomness and nothing else.
    pub fn new(max_memory_bytes: usize) -> Self {
        Self::with_wasi(
            wasmtime_wasi::WasiCtxBuilder::new().build(),
            max_memory_bytes,
        )
    }

    /// A state around a prepared WASI context (the builder uses a deterministic one).
    pub fn with_wasi(wasi: WasiCtx, max_memory_bytes: usize) -> Self {
        HostState {
            wasi,
            table: ResourceTable::new(),
            max_memory_bytes,
            memory_cap_hit: false,
            memory_bytes: 0,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_cap_hit = true;
            wasmtime::bail!(
                "memory cap of {} bytes exceeded (wanted {desired})",
                self.max_memory_bytes
            );
        }
        self.memory_bytes += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
