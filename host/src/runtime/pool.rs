//! A loaded bundle on the wasm path: an `InstancePre` plus a bounded pool of reusable
//! instances, each evaluation under a deadline and a memory cap.
//!
//! The `InstancePre` is either the bundle's own snapshotted component, or the evaluator the
//! host carries (compiled once per `sark` version, whatever the bundle): then each new
//! instance loads the bundle's payload through the `loader` export — the same evaluator
//! code and the same payload the snapshot was taken from, so the same decisions. A policy
//! that starts on the carried evaluator may later adopt the bundle's snapshot
//! ([`WasmPolicy::adopt_snapshot`]), once it is compiled: new instances then start in
//! microseconds from its copy-on-write memory image instead of loading the payload.

use super::HostState;
use super::bindings::sark::policy::types as wit;
use super::bindings::{EvaluatorCore, EvaluatorCorePre};
use super::engine::Ticker;
use crate::config::Limits;
use crate::evaluator::{EvalError, Evaluator, Footprint, PathKind, check_input_size, per_instance};
use crate::idle_pool::IdlePool;
use crate::store::DataStore;
use sark_guest::{BundleInfo, Location, PolicyError, TestOutcome};
use std::sync::{Arc, Mutex, RwLock};
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap};

/// The default number of idle instances (and native engines) kept per bundle: two per
/// core, so every worker thread finds one ready even while another is being replaced.
pub fn default_pool_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

/// One live instance with its own store.
struct PolicyInstance {
    store: Store<HostState>,
    bindings: EvaluatorCore,
    /// Linear memory size right after instantiation.
    initial_memory_bytes: usize,
    /// The data store generation this instance has applied (0: the bundle's data only).
    data_generation: u64,
    /// Linear memory the written documents took when they were applied: the instance may
    /// hold it beyond the evaluation cap and the retain bound.
    data_memory_bytes: usize,
}

impl PolicyInstance {
    /// Whether the instance is small enough to keep (see [`RETAIN_GROWTH_BYTES`]).
    fn worth_keeping(&self) -> bool {
        self.store.data().memory_bytes
            <= self.initial_memory_bytes + self.data_memory_bytes + RETAIN_GROWTH_BYTES
    }
}

/// Linear memory an instance may grow by, beyond its size after instantiation, and still
/// go back to the pool. Linear memory never shrinks, so an instance that one large input
/// grew to the memory cap would otherwise hold that memory for the bundle's lifetime;
/// dropping it returns the pages to the system and the next one starts from the image.
const RETAIN_GROWTH_BYTES: usize = 16 << 20;

/// Deadline of loading a bundle into an instance (the payload into the carried evaluator,
/// or the first instantiation and `info()` call of a snapshot), in epoch ticks (10 s at
/// 1 ms ticks). Loading is not an evaluation: a tight `eval_timeout_ms` must not fail it.
const LOAD_DEADLINE_TICKS: u64 = 10_000;

/// Length of an epoch tick in ms, for messages.
const EPOCH_TICK_MS: u64 = super::EPOCH_TICK.as_millis() as u64;

/// How long an evaluation on the carried evaluator waits for a busy instance to come back
/// before it makes another. Making one loads the payload (milliseconds, not microseconds):
/// without the wait, a burst of concurrent misses would make instances only to drop them
/// past the idle bound, and pay the load again on the next burst.
const INSTANCE_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// A bundle ready to evaluate in the sandbox. `Send + Sync`: any number of threads may
/// evaluate at once; each call takes an idle instance (or creates one) and returns it
/// afterwards. At most `max_idle` instances are kept; an instance that trapped is dropped.
pub struct WasmPolicy {
    /// Where new instances come from, and the idle ones. Replaced whole when the policy
    /// adopts its snapshot; an evaluation holds the one it started on.
    instances: RwLock<Arc<Instances>>,
    /// Prepares the bundle's own snapshot, while the policy runs on the carried evaluator
    /// and has not adopted it yet.
    snapshot: Mutex<Option<PrepareSnapshot>>,
    max_idle: usize,
    limits: Limits,
    info: BundleInfo,
    /// The documents written at run time, applied to each instance before it evaluates.
    store: Option<Arc<DataStore>>,
    /// Keeps the epoch ticker running while this policy can evaluate.
    _ticker: Arc<Ticker>,
}

/// Compiles (or reads from the code cache) a bundle's own snapshotted component and
/// prepares it for instantiation: slow (seconds) unless the cache has it.
pub(crate) type PrepareSnapshot =
    Box<dyn FnOnce() -> wasmtime::Result<InstancePre<HostState>> + Send>;

/// One source of instances: the prepared component, the payload each new instance loads
/// (on the carried evaluator), and the pool of idle instances made from them.
struct Instances {
    pre: EvaluatorCorePre<HostState>,
    payload: Option<Arc<[u8]>>,
    idle: IdlePool<PolicyInstance>,
}

impl Instances {
    fn new(pre: EvaluatorCorePre<HostState>, payload: Option<Arc<[u8]>>, max_idle: usize) -> Self {
        // On the carried evaluator, at most `max_idle` instances are out at once (beyond
        // that an evaluation waits briefly): instances are dear to make. A snapshot's are
        // cheap (copy-on-write of its memory image), so its pool only bounds the idle ones.
        let idle = match &payload {
            Some(_) => IdlePool::bounded(max_idle, max_idle, INSTANCE_WAIT),
            None => IdlePool::new(max_idle),
        };
        Instances { pre, payload, idle }
    }
}

impl WasmPolicy {
    /// A policy on `pre`: a snapshotted bundle (`payload` `None`), or the carried evaluator
    /// with the bundle's `payload` to load into each new instance.
    pub(crate) fn new(
        pre: InstancePre<HostState>,
        payload: Option<Arc<[u8]>>,
        limits: Limits,
        max_idle: usize,
        ticker: Arc<Ticker>,
    ) -> wasmtime::Result<Self> {
        let max_idle = max_idle.max(1);
        let instances = Instances::new(EvaluatorCorePre::new(pre)?, payload, max_idle);
        let mut policy = WasmPolicy {
            instances: RwLock::new(Arc::new(instances)),
            snapshot: Mutex::new(None),
            max_idle,
            limits,
            store: None,
            _ticker: ticker,
            info: BundleInfo {
                revision: String::new(),
                entrypoints: vec![],
                roots: vec![],
                content_hash: String::new(),
                regorus_version: String::new(),
                modules: vec![],
            },
        };
        let info = {
            let source = policy.current();
            let mut instance = policy
                .first_instance(&source)
                .map_err(|e| wasmtime::format_err!("{e}"))?;
            let info = policy
                .describe(&mut instance)
                .map_err(|e| wasmtime::format_err!("{e}"))?;
            source.idle.add(instance);
            info
        };
        policy.info = info;
        Ok(policy)
    }

    /// The source new instances come from now.
    fn current(&self) -> Arc<Instances> {
        self.instances
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The first instance of `source`, under the load deadline (with the payload's load), so
    /// a tight `eval_timeout_ms` cannot fail a healthy bundle's load.
    fn first_instance(&self, source: &Instances) -> Result<PolicyInstance, EvalError> {
        let load_ticks = self.deadline_ticks().max(LOAD_DEADLINE_TICKS);
        self.instantiate_with_deadline(source, load_ticks)
            .map_err(|e| EvalError::Instance(format!("the bundle does not describe itself: {e}")))
    }

    /// What the bundle in `instance` says it is (`info()`), under the load deadline.
    fn describe(&self, instance: &mut PolicyInstance) -> Result<BundleInfo, EvalError> {
        let describe = |e: &dyn std::fmt::Display| {
            EvalError::Instance(format!("the bundle does not describe itself: {e}"))
        };
        let load_ticks = self.deadline_ticks().max(LOAD_DEADLINE_TICKS);
        instance.store.set_epoch_deadline(load_ticks);
        let info = instance
            .bindings
            .sark_policy_evaluator()
            .call_info(&mut instance.store)
            .map_err(|e| describe(&describe_trap(&e)))?
            .map_err(|e| describe(&from_wit(e)))?;
        Ok(BundleInfo {
            revision: info.revision,
            entrypoints: info.entrypoints,
            roots: info.roots,
            content_hash: info.content_hash,
            regorus_version: info.regorus_version,
            modules: info.modules,
        })
    }

    /// Offers the bundle's own snapshot to a policy on the carried evaluator, for
    /// [`Self::adopt_snapshot`].
    pub(crate) fn offer_snapshot(&mut self, prepare: PrepareSnapshot) {
        *self.snapshot.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(prepare);
    }

    /// Whether the policy runs on the carried evaluator and may still adopt its bundle's
    /// snapshot ([`Self::adopt_snapshot`]).
    pub fn snapshot_pending(&self) -> bool {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Moves the policy from the carried evaluator to its bundle's own snapshot: compiles
    /// the snapshot (or reads it from the code cache), checks that it is the same bundle,
    /// fills a pool of its instances with the written documents applied, and swaps it in.
    /// Evaluations under way finish on the instances they took; from then on new instances
    /// start from the snapshot's memory image instead of loading the payload (40–75 ms and
    /// several MiB of private memory each, for the example policies). The decisions are
    /// the same: same evaluator, same payload. Slow (a compilation, seconds) unless the
    /// code cache has the snapshot: call it off the request path. `Ok(false)` when there
    /// is nothing to adopt (already on a snapshot, or adopted); after an error the policy
    /// stays on the carried evaluator and does not try again.
    pub fn adopt_snapshot(&self) -> Result<bool, EvalError> {
        let prepare = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(prepare) = prepare else {
            return Ok(false);
        };
        let failed = |e: &dyn std::fmt::Display| {
            EvalError::Instance(format!("cannot adopt the bundle's snapshot: {e}"))
        };
        let prepared = prepare().map_err(|e| failed(&format_args!("{e:#}")))?;
        let pre =
            EvaluatorCorePre::new(prepared.clone()).map_err(|e| failed(&format_args!("{e:#}")))?;
        let next = Instances::new(pre, None, self.max_idle);
        let mut first = match self.first_instance(&next) {
            Ok(first) => first,
            Err(e) => {
                // No free instance slot, say: the compiled snapshot is offered again, so a
                // later call tries once more without compiling.
                self.offer_prepared(prepared);
                return Err(failed(&e));
            }
        };
        let info = self.describe(&mut first).map_err(|e| failed(&e))?;
        if info != self.info {
            return Err(failed(&format_args!(
                "it describes revision {:?} ({}), not the loaded {:?} ({})",
                info.revision, info.content_hash, self.info.revision, self.info.content_hash
            )));
        }
        if let Err(e) = self.catch_up(&mut first) {
            self.offer_prepared(prepared);
            return Err(failed(&e));
        }
        next.idle.add(first);
        // Swapped in with one instance, then filled: the old pool's idle instances are freed
        // first, so the move never needs two pools' worth of instance slots.
        let next = Arc::new(next);
        *self.instances.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        self.fill(
            &next,
            || next.idle.len() < next.idle.max_idle(),
            "filling the snapshot's pool",
        );
        // A write committed while the pool was made may have reached the old pool only.
        self.catch_up_idle();
        tracing::info!(
            revision = %self.info.revision,
            "new instances start from the bundle's snapshot"
        );
        Ok(true)
    }

    /// Offers an already prepared snapshot again, after an adoption that could not finish.
    fn offer_prepared(&self, prepared: InstancePre<HostState>) {
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Box::new(move || Ok(prepared)));
    }

    fn instantiate(&self, source: &Instances) -> Result<PolicyInstance, EvalError> {
        self.instantiate_with_deadline(source, self.deadline_ticks())
    }

    fn instantiate_with_deadline(
        &self,
        source: &Instances,
        ticks: u64,
    ) -> Result<PolicyInstance, EvalError> {
        let max_memory = usize::try_from(self.limits.max_memory_mb).unwrap_or(usize::MAX) << 20;
        let mut store = Store::new(source.pre.engine(), HostState::new(max_memory));
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        store.set_epoch_deadline(ticks);
        let bindings = source
            .pre
            .instantiate(&mut store)
            .map_err(|e| EvalError::Instance(format!("{e:#}")))?;
        if let Some(payload) = &source.payload {
            store.set_epoch_deadline(ticks.max(LOAD_DEADLINE_TICKS));
            let loaded = bindings.sark_policy_loader().call_load(&mut store, payload);
            match loaded {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(EvalError::Instance(format!(
                        "the bundle's payload does not load: {}",
                        from_wit(e)
                    )));
                }
                Err(trap) => {
                    return Err(match self.trap_error(&store, &trap) {
                        EvalError::Deadline { .. } => EvalError::Instance(format!(
                            "loading the bundle's payload exceeded the load deadline of {} ms",
                            LOAD_DEADLINE_TICKS * EPOCH_TICK_MS
                        )),
                        other => other,
                    });
                }
            }
            store.set_epoch_deadline(ticks);
        }
        let initial_memory_bytes = store.data().memory_bytes;
        Ok(PolicyInstance {
            store,
            bindings,
            initial_memory_bytes,
            data_generation: 0,
            data_memory_bytes: 0,
        })
    }

    /// Layers the documents of `store` over the bundle's data in every instance, from the
    /// next evaluation on (instances made before catch up like any other).
    pub fn attach_store(&mut self, store: Arc<DataStore>) {
        self.store = Some(store);
    }

    /// Brings every idle instance to the store's generation, off the request path (after a
    /// write), so decisions do not pay for applying a large document. Returns how many
    /// instances applied something.
    pub fn catch_up_idle(&self) -> usize {
        let Some(store) = &self.store else {
            return 0;
        };
        let source = self.current();
        let mut applied = 0;
        for _ in 0..source.idle.len() {
            let Some(mut instance) = source.idle.checkout_oldest() else {
                break;
            };
            if instance.data_generation == store.generation() {
                source.idle.checkin(instance);
                continue;
            }
            match self.catch_up(&mut instance) {
                Ok(()) => {
                    applied += 1;
                    source.idle.checkin(instance);
                }
                Err(e) => {
                    source.idle.discard();
                    tracing::warn!(error = %e, "policy instance discarded: the written data did not apply");
                }
            }
        }
        applied
    }

    /// Brings `instance` to the store's current generation through the `store.write` export.
    fn catch_up(&self, instance: &mut PolicyInstance) -> Result<(), EvalError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        if instance.data_generation == store.generation() {
            return Ok(());
        }
        let changes = crate::store::changes_for(store, &self.info.roots, instance.data_generation);
        // Applying a large document takes longer than an evaluation: it gets the load
        // deadline, and the memory the written documents may take beyond the cap.
        instance
            .store
            .set_epoch_deadline(self.deadline_ticks().max(LOAD_DEADLINE_TICKS));
        let eval_cap = usize::try_from(self.limits.max_memory_mb).unwrap_or(usize::MAX) << 20;
        let before = instance.store.data().memory_bytes;
        instance.store.data_mut().max_memory_bytes =
            eval_cap.saturating_add(self.limits.data_memory_bytes());
        for (path, json) in &changes.writes {
            let written = instance.bindings.sark_policy_store().call_write(
                &mut instance.store,
                path,
                json.as_deref(),
            );
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(EvalError::Instance(format!(
                        "cannot apply the written document /{}: {}",
                        path.join("/"),
                        from_wit(e)
                    )));
                }
                Err(trap) => return Err(self.trap_error(&instance.store, &trap)),
            }
        }
        instance.data_generation = changes.generation;
        let grown = instance.store.data().memory_bytes.saturating_sub(before);
        instance.data_memory_bytes += grown;
        instance.store.data_mut().max_memory_bytes =
            eval_cap.saturating_add(instance.data_memory_bytes);
        Ok(())
    }

    /// Makes the instances the pool lost since it was filled (to traps, or to growing too
    /// large), with the written documents applied. The server calls it in the background,
    /// so that the decisions after a trap find an instance ready instead of paying for the
    /// payload's load on the request path. Returns how many it added.
    pub fn replenish(&self) -> usize {
        let source = self.current();
        self.fill(
            &source,
            || source.idle.missing() > 0,
            "replacing lost instances",
        )
    }

    /// Instances the pool lost since it was filled (see [`Self::replenish`]).
    pub fn missing_instances(&self) -> usize {
        self.current().idle.missing()
    }

    /// The evaluation deadline in epoch ticks.
    fn deadline_ticks(&self) -> u64 {
        ticks_of(self.limits.eval_timeout_ms)
    }

    /// Fills the idle pool to its bound with new instances, so that the first evaluations
    /// (after a reload, say) find them ready instead of making them on the request path.
    /// Best effort: it stops at the first instance that cannot be made (the engine's instance
    /// slots are shared by every bundle loaded at once), and returns how many it added.
    pub fn prewarm(&self) -> usize {
        let source = self.current();
        self.fill(
            &source,
            || source.idle.len() < source.idle.max_idle(),
            "filling the instance pool",
        )
    }

    /// Adds new instances of `source`, with the written documents applied, while `short()`
    /// says its pool needs one; stops at the first that cannot be made, or when the pool is
    /// full.
    fn fill(&self, source: &Instances, short: impl Fn() -> bool, doing: &str) -> usize {
        let ticks = self.deadline_ticks().max(LOAD_DEADLINE_TICKS);
        let mut added = 0;
        while short() {
            let made = self
                .instantiate_with_deadline(source, ticks)
                .and_then(|mut instance| {
                    self.catch_up(&mut instance)?;
                    Ok(instance)
                });
            match made {
                Ok(instance) => {
                    if !source.idle.add(instance) {
                        break;
                    }
                    added += 1;
                }
                Err(e) => {
                    tracing::debug!(error = %e, added, "stopped {doing}");
                    break;
                }
            }
        }
        added
    }

    /// Whether new instances load the payload into the carried evaluator (rather than start
    /// from the bundle's snapshot).
    pub fn loads_payload(&self) -> bool {
        self.current().payload.is_some()
    }

    /// What a pooled instance holds: `n` fresh instances, each after one evaluation of
    /// `entrypoint`, held at once (`sark bench`).
    pub fn footprint(
        &self,
        n: usize,
        entrypoint: &str,
        input_json: &str,
    ) -> Result<Footprint, EvalError> {
        let resident_before = crate::allocator::resident_bytes();
        let mut held = Vec::with_capacity(n);
        let mut linear = 0;
        for _ in 0..n {
            let (instance, result) = self.evaluate_fresh(entrypoint, input_json)?;
            result?;
            linear += instance.store.data().memory_bytes;
            held.push(instance);
        }
        let resident_after = crate::allocator::resident_bytes();
        Ok(Footprint {
            instances: n,
            bytes: Some(linear / n.max(1)),
            resident_bytes: per_instance(resident_before, resident_after, n),
        })
    }

    /// Creates and drops one instance; used by `sark bench` to time instantiation.
    pub fn instantiate_once(&self) -> Result<(), EvalError> {
        self.instantiate(&self.current()).map(drop)
    }

    /// Evaluates once on a brand-new instance (not pooled, dropped afterwards); used by
    /// `sark bench` to measure the first evaluation on a replaced instance (it pays the
    /// payload's load, or the copy-on-write faults of a snapshot's memory image).
    pub fn evaluate_on_fresh_instance(
        &self,
        entrypoint: &str,
        input_json: &str,
    ) -> Result<Option<String>, EvalError> {
        self.evaluate_fresh(entrypoint, input_json)?.1
    }

    /// A new instance (not pooled) and the result of evaluating once on it.
    fn evaluate_fresh(
        &self,
        entrypoint: &str,
        input_json: &str,
    ) -> Result<(PolicyInstance, Result<Option<String>, EvalError>), EvalError> {
        let mut instance = self.instantiate(&self.current())?;
        self.catch_up(&mut instance)?;
        instance.store.set_epoch_deadline(self.deadline_ticks());
        let result = instance
            .bindings
            .sark_policy_evaluator()
            .call_evaluate(&mut instance.store, entrypoint, input_json)
            .map_err(|e| EvalError::Trap(describe_trap(&e)))?
            .map_err(|e| EvalError::Policy(from_wit(e)));
        Ok((instance, result))
    }

    /// Number of idle instances in the pool.
    pub fn idle_instances(&self) -> usize {
        self.current().idle.len()
    }

    /// Runs `call` on an instance under the deadline and memory cap. A trap drops the
    /// instance and becomes `Deadline`, `MemoryCap` or `Trap`.
    fn with_instance<T>(
        &self,
        call: impl FnOnce(
            &mut Store<HostState>,
            &EvaluatorCore,
        ) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, EvalError> {
        self.with_instance_within(self.limits.eval_timeout_ms, call)
    }

    /// [`Self::with_instance`] under a deadline of `timeout_ms` (at most the configured one).
    fn with_instance_within<T>(
        &self,
        timeout_ms: u64,
        call: impl FnOnce(
            &mut Store<HostState>,
            &EvaluatorCore,
        ) -> wasmtime::Result<Result<T, wit::Error>>,
    ) -> Result<T, EvalError> {
        let source = self.current();
        let mut instance = source.idle.checkout(|| self.instantiate(&source))?;
        instance.store.data_mut().memory_cap_hit = false;
        if let Err(e) = self.catch_up(&mut instance) {
            source.idle.discard();
            tracing::warn!(error = %e, "policy instance discarded: the written data did not apply");
            return Err(e);
        }
        let timeout_ms = timeout_ms.clamp(1, self.limits.eval_timeout_ms);
        instance
            .store
            .set_epoch_deadline(ticks_of(timeout_ms).min(self.deadline_ticks()));
        let outcome = call(&mut instance.store, &instance.bindings);
        match outcome {
            Ok(result) => {
                if instance.worth_keeping() {
                    source.idle.checkin(instance);
                } else {
                    source.idle.discard();
                    tracing::debug!(
                        memory_bytes = instance.store.data().memory_bytes,
                        "policy instance grew too large to keep; dropped"
                    );
                }
                result.map_err(|e| EvalError::Policy(from_wit(e)))
            }
            Err(trap) => {
                source.idle.discard();
                let err = match self.trap_error(&instance.store, &trap) {
                    EvalError::Deadline { .. } => EvalError::Deadline { timeout_ms },
                    other => other,
                };
                tracing::warn!(error = %err, "policy instance discarded after a trap");
                Err(err)
            }
        }
    }

    /// The typed error of a trap in `store`: `MemoryCap`, `Deadline`, `StackOverflow` or
    /// `Trap`.
    fn trap_error(&self, store: &Store<HostState>, trap: &wasmtime::Error) -> EvalError {
        if store.data().memory_cap_hit {
            EvalError::MemoryCap {
                max_mb: self.limits.max_memory_mb,
            }
        } else if trap.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            EvalError::Deadline {
                timeout_ms: self.limits.eval_timeout_ms,
            }
        } else if trap.downcast_ref::<Trap>() == Some(&Trap::StackOverflow) {
            EvalError::StackOverflow
        } else {
            EvalError::Trap(describe_trap(trap))
        }
    }
}

impl Evaluator for WasmPolicy {
    fn path(&self) -> PathKind {
        PathKind::Wasm
    }

    fn info(&self) -> &BundleInfo {
        &self.info
    }

    fn evaluate(&self, entrypoint: &str, input_json: &str) -> Result<Option<String>, EvalError> {
        let deadline = std::time::Duration::from_millis(self.limits.eval_timeout_ms);
        self.evaluate_within(entrypoint, input_json, deadline)
    }

    fn evaluate_within(
        &self,
        entrypoint: &str,
        input_json: &str,
        budget: std::time::Duration,
    ) -> Result<Option<String>, EvalError> {
        check_input_size(&self.limits, input_json)?;
        let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        self.with_instance_within(ms, |store, b| {
            b.sark_policy_evaluator()
                .call_evaluate(store, entrypoint, input_json)
        })
    }

    fn query(&self, query: &str, input_json: &str) -> Result<String, EvalError> {
        check_input_size(&self.limits, input_json)?;
        self.with_instance(|store, b| {
            b.sark_policy_evaluator()
                .call_query(store, query, input_json)
        })
    }

    fn run_tests(&self, filter: Option<&str>) -> Result<Vec<TestOutcome>, EvalError> {
        let results =
            self.with_instance(|store, b| b.sark_policy_evaluator().call_run_tests(store, filter))?;
        Ok(results
            .into_iter()
            .map(|t| TestOutcome {
                package: t.package,
                name: t.name,
                file: t.file,
                passed: t.passed,
                message: t.message,
                duration_ns: t.duration_ns,
            })
            .collect())
    }
}

/// `ms` in epoch ticks, rounded up.
fn ticks_of(ms: u64) -> u64 {
    let tick_ms = u64::try_from(super::EPOCH_TICK.as_millis())
        .unwrap_or(1)
        .max(1);
    ms.div_ceil(tick_ms)
}

/// One line for a trap: its cause, and the innermost evaluator function when known
/// (the full wasm backtrace goes to the debug log only).
fn describe_trap(trap: &wasmtime::Error) -> String {
    tracing::debug!(error = ?trap, "component trap");
    let cause = trap.root_cause().to_string();
    let panicked = format!("{trap:?}").contains("rust_panic");
    let frame = trap
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .and_then(|bt| {
            bt.frames()
                .iter()
                .filter_map(|f| f.func_name())
                .find(|n| n.contains("regorus") || n.contains("sark_guest"))
                .map(str::to_string)
        });
    match (panicked, frame) {
        (true, Some(f)) => format!("{cause} (the evaluator panicked in {f})"),
        (true, None) => format!("{cause} (the evaluator panicked)"),
        (false, Some(f)) => format!("{cause} (in {f})"),
        (false, None) => cause,
    }
}

/// Maps the WIT error variant to the shared [`PolicyError`].
pub(crate) fn from_wit(e: wit::Error) -> PolicyError {
    match e {
        wit::Error::Compile(c) => PolicyError::Compile {
            message: c.message,
            location: c.location.map(|l| Location {
                file: l.file,
                row: l.row,
                col: l.col,
            }),
        },
        wit::Error::UnknownEntrypoint(m) => PolicyError::UnknownEntrypoint(m),
        wit::Error::InvalidInput(m) => PolicyError::InvalidInput(m),
        wit::Error::Evaluation(m) => PolicyError::Evaluation(m),
        wit::Error::LimitExceeded(m) => PolicyError::LimitExceeded(m),
        wit::Error::Bundle(m) => PolicyError::Bundle(m),
    }
}
