//! The bare evaluator component (no policies snapshotted in), for `sark conformance`: every
//! run loads its own payload into a fresh instance through the `loader` export.

use super::bindings::EvaluatorCore;
use super::engine::Ticker;
use super::{HostState, WasmRuntime};
use crate::evaluator::EvalError;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::InstancePre;

/// The evaluator component embedded in the binary, compiled and ready to instantiate.
pub struct BareEvaluator {
    pre: InstancePre<HostState>,
    /// Keeps the epoch ticker running (deadlines) while this can run.
    _ticker: Arc<Ticker>,
}

impl BareEvaluator {
    /// The evaluator `runtime` carries ([`crate::EVALUATOR_COMPONENT`], compiled once).
    pub fn new(runtime: &WasmRuntime) -> anyhow::Result<Self> {
        let (pre, _) = runtime
            .carried_evaluator()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(BareEvaluator {
            pre,
            _ticker: runtime.ticker(),
        })
    }

    /// Loads `payload_json` into a fresh instance and runs `query` with `input_json`: the
    /// result rows as JSON. The instance runs under `deadline_ticks` epoch ticks and at most
    /// `max_memory_bytes` of linear memory, and is dropped afterwards.
    pub fn load_and_query(
        &self,
        payload_json: &[u8],
        query: &str,
        input_json: &str,
        deadline_ticks: u64,
        max_memory_bytes: usize,
    ) -> Result<String, EvalError> {
        let mut store = Store::new(self.pre.engine(), HostState::new(max_memory_bytes));
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        store.set_epoch_deadline(deadline_ticks);
        let trap = |e: wasmtime::Error| EvalError::Trap(format!("{}", e.root_cause()));
        let instance = self.pre.instantiate(&mut store).map_err(trap)?;
        let core = EvaluatorCore::new(&mut store, &instance).map_err(trap)?;
        core.sark_policy_loader()
            .call_load(&mut store, payload_json)
            .map_err(trap)?
            .map_err(|e| EvalError::Policy(super::pool::from_wit(e)))?;
        core.sark_policy_evaluator()
            .call_query(&mut store, query, input_json)
            .map_err(trap)?
            .map_err(|e| EvalError::Policy(super::pool::from_wit(e)))
    }
}
