//! The native path: the same evaluator code ([`PolicySet`]) linked into the host, loaded
//! from the bundle's payload section, with the entrypoints precompiled to RVM programs as in
//! the component (and the interpreter where the RVM cannot run one). No sandbox; Regorus's
//! execution timer bounds each call. It is the fallback and the reference the component is
//! compared with.

use crate::bundle::{Bundle, BundleError};
use crate::config::Limits;
use crate::evaluator::{EvalError, Evaluator, Footprint, PathKind, check_input_size, per_instance};
use crate::idle_pool::IdlePool;
use crate::store::DataStore;
use sark_guest::{BundleInfo, PolicyError, PolicySet, TestOutcome};
use std::sync::{Arc, Mutex};

/// A bundle loaded natively. `Send + Sync`: each call takes an idle engine clone (or clones
/// the loaded template) and returns it afterwards; at most `max_idle` are kept.
pub struct NativePolicy {
    /// The loaded engine new ones are cloned from, with the data generation it has applied.
    template: Mutex<(PolicySet, u64)>,
    idle: IdlePool<(PolicySet, u64)>,
    info: BundleInfo,
    limits: Limits,
    /// The documents written at run time, applied to each engine before it evaluates.
    store: Option<Arc<DataStore>>,
}

/// Why a bundle could not be loaded natively.
#[derive(Debug, thiserror::Error)]
pub enum NativeLoadError {
    /// The bundle's payload section could not be read.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The policies did not load (cannot happen for a bundle `sark build` produced).
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl NativePolicy {
    /// Loads the bundle's payload into a native Regorus engine, without the load-time
    /// warm-up: the bundle was validated when it was built, and here nothing could stop an
    /// entrypoint that takes long to evaluate (a builtin call is not interruptible).
    pub fn load(bundle: &Bundle, limits: Limits, max_idle: usize) -> Result<Self, NativeLoadError> {
        Self::load_with(bundle, limits, max_idle, &[])
    }

    /// [`Self::load`], with `extra` modules (policies put at run time) compiled with the
    /// bundle's.
    pub fn load_with(
        bundle: &Bundle,
        limits: Limits,
        max_idle: usize,
        extra: &[sark_guest::ModuleSource],
    ) -> Result<Self, NativeLoadError> {
        Self::load_inner(bundle, limits, max_idle, extra, true)
    }

    /// [`Self::load`] on Regorus's interpreter only, without RVM programs: the reference
    /// `sark bench` reports as `native-interpreter`.
    pub fn load_interpreter(
        bundle: &Bundle,
        limits: Limits,
        max_idle: usize,
    ) -> Result<Self, NativeLoadError> {
        Self::load_inner(bundle, limits, max_idle, &[], false)
    }

    fn load_inner(
        bundle: &Bundle,
        limits: Limits,
        max_idle: usize,
        extra: &[sark_guest::ModuleSource],
        compiled: bool,
    ) -> Result<Self, NativeLoadError> {
        let mut payload = bundle.payload()?;
        payload.warm_up = false;
        payload.modules.extend_from_slice(extra);
        let limit = std::time::Duration::from_millis(limits.native_timeout_ms);
        let set = if compiled {
            PolicySet::load_compiled_with_time_limit(payload, limit)?
        } else {
            PolicySet::load_with_time_limit(payload, limit)?
        };
        let info = set.info().clone();
        Ok(NativePolicy {
            template: Mutex::new((set, 0)),
            idle: IdlePool::new(max_idle),
            info,
            limits,
            store: None,
        })
    }

    /// Layers the documents of `store` over the bundle's data, from the next evaluation on.
    pub fn attach_store(&mut self, store: Arc<DataStore>) {
        self.store = Some(store);
    }

    /// The modules loaded (the bundle's and any put at run time), with their sources.
    pub fn modules(&self) -> Vec<sark_guest::ModuleSource> {
        self.template
            .lock()
            .map(|t| t.0.modules().to_vec())
            .unwrap_or_default()
    }

    /// What an engine clone holds: `n` clones of the template, each after one evaluation
    /// of `entrypoint`, held at once (`sark bench`). The heap figure is glibc's count of
    /// allocated bytes, so memory freed earlier and reused is still counted.
    pub fn footprint(
        &self,
        n: usize,
        entrypoint: &str,
        input_json: &str,
    ) -> Result<Footprint, EvalError> {
        let template = self
            .template
            .lock()
            .map_err(|_| EvalError::Instance("native policy template is poisoned".into()))?
            .0
            .clone();
        let heap_before = crate::allocator::heap_in_use_bytes();
        let resident_before = crate::allocator::resident_bytes();
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            let mut set = template.clone();
            set.evaluate(entrypoint, input_json)
                .map_err(EvalError::Policy)?;
            held.push(set);
        }
        let heap_after = crate::allocator::heap_in_use_bytes();
        let resident_after = crate::allocator::resident_bytes();
        Ok(Footprint {
            instances: n,
            bytes: per_instance(heap_before, heap_after, n),
            resident_bytes: per_instance(resident_before, resident_after, n),
        })
    }

    /// Policy packages of the bundle (`data.`-prefixed), for checks of data writes.
    pub fn packages(&self) -> Vec<String> {
        self.template
            .lock()
            .map(|t| t.0.packages().to_vec())
            .unwrap_or_default()
    }

    /// Brings the template and every idle engine to the store's generation, off the
    /// request path (after a write). Returns how many engines applied something.
    pub fn catch_up_idle(&self) -> usize {
        if self.store.is_none() {
            return 0;
        }
        if let Ok(mut template) = self.template.lock() {
            let (t, g) = &mut *template;
            if let Err(e) = self.catch_up(t, g) {
                tracing::warn!(error = %e, "the native template did not apply the written data");
            }
        }
        let mut applied = 0;
        for _ in 0..self.idle.len() {
            let Some((mut set, mut generation)) = self.idle.checkout_oldest() else {
                break;
            };
            let before = generation;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.catch_up(&mut set, &mut generation)
            }));
            match outcome {
                Ok(Ok(())) => {
                    applied += usize::from(generation != before);
                    self.idle.checkin((set, generation));
                }
                _ => self.idle.discard(),
            }
        }
        applied
    }

    /// Brings `set` from `generation` to the store's current generation.
    fn catch_up(&self, set: &mut PolicySet, generation: &mut u64) -> Result<(), EvalError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if *generation == store.generation() {
            return Ok(());
        }
        let changes = crate::store::changes_for(store, &self.info.roots, *generation);
        for (path, json) in &changes.writes {
            set.write_data(path, json.as_deref()).map_err(|e| {
                EvalError::Instance(format!(
                    "cannot apply the written document /{}: {e}",
                    path.join("/")
                ))
            })?;
        }
        *generation = changes.generation;
        Ok(())
    }

    fn with_set<T>(
        &self,
        f: impl FnOnce(&mut PolicySet) -> Result<T, PolicyError>,
    ) -> Result<T, EvalError> {
        let (mut set, mut generation) = self.idle.checkout(|| {
            let mut template = self
                .template
                .lock()
                .map_err(|_| EvalError::Instance("native policy template is poisoned".into()))?;
            // The template follows the store, so a new engine starts from recent data.
            let (t, g) = &mut *template;
            self.catch_up(t, g)?;
            Ok::<_, EvalError>((t.clone(), *g))
        })?;
        // Regorus can panic on some inputs; on this path a panic must not take the host
        // down. The engine that panicked may be inconsistent, so it is dropped.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.catch_up(&mut set, &mut generation)
                .map_err(|e| PolicyError::Bundle(e.to_string()))?;
            f(&mut set)
        }));
        let result = match outcome {
            Ok(result) => result,
            Err(panic) => {
                self.idle.discard();
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                return Err(EvalError::Trap(format!(
                    "the native evaluator panicked: {msg}"
                )));
            }
        };
        self.idle.checkin((set, generation));
        result.map_err(EvalError::Policy)
    }
}

impl Evaluator for NativePolicy {
    fn path(&self) -> PathKind {
        PathKind::Native
    }

    fn info(&self) -> &BundleInfo {
        &self.info
    }

    fn evaluate(&self, entrypoint: &str, input_json: &str) -> Result<Option<String>, EvalError> {
        self.evaluate_within(
            entrypoint,
            input_json,
            std::time::Duration::from_millis(self.limits.native_timeout_ms),
        )
    }

    fn evaluate_within(
        &self,
        entrypoint: &str,
        input_json: &str,
        budget: std::time::Duration,
    ) -> Result<Option<String>, EvalError> {
        check_input_size(&self.limits, input_json)?;
        let limit = budget
            .min(std::time::Duration::from_millis(
                self.limits.native_timeout_ms,
            ))
            .max(std::time::Duration::from_millis(1));
        // One deadline for the whole call: taking an engine and reading the input count
        // against it, not only the interpreter's steps.
        let deadline = std::time::Instant::now() + limit;
        self.with_set(|s| s.evaluate_until(entrypoint, input_json, deadline))
    }

    fn query(&self, query: &str, input_json: &str) -> Result<String, EvalError> {
        check_input_size(&self.limits, input_json)?;
        let limit = std::time::Duration::from_millis(self.limits.native_timeout_ms);
        self.with_set(|s| {
            s.set_time_limit(limit);
            s.query(query, input_json)
        })
    }

    fn run_tests(&self, filter: Option<&str>) -> Result<Vec<TestOutcome>, EvalError> {
        let limit = std::time::Duration::from_millis(self.limits.native_timeout_ms);
        self.with_set(|s| {
            s.set_time_limit(limit);
            s.run_tests(filter)
        })
    }
}
