//! `Client`: one bundle behind the host's decision service, exactly as `sark serve` runs it
//! (the `wasm_engine` rollout, the native fallback, the decision cache, the policy canary,
//! the decision log, Redis when configured). Decisions release the GIL.

use crate::convert::{from_json, from_json_text, to_json};
use crate::errors::{bundle_error, eval_error};
use crate::flags::Flags;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use sark::PathKind;
use sark::bundle::Bundle;
use sark::config::Config;
use sark::decide::{Decision, DecisionRequest, DecisionService, Lookup, ServiceBuilder};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The decision service of one bundle.
#[pyclass(module = "sark_runtime._native", frozen, subclass)]
pub struct Client {
    service: Arc<DecisionService>,
    /// Runs the service's background tasks (cache sweeper, decision log, cluster); shared
    /// with the `RolloutFlags` handed out, which may outlive the client.
    runtime: Arc<tokio::runtime::Runtime>,
    bundle: Mutex<PathBuf>,
    key: Option<sark::bundle::signing::VerifyingKey>,
}

/// A configuration: `None` (the defaults), a YAML file path, or a dict in the YAML's shape.
pub fn config_of(config: Option<&Bound<'_, PyAny>>) -> PyResult<Config> {
    let Some(config) = config.filter(|c| !c.is_none()) else {
        return Ok(Config::default());
    };
    if config.cast::<PyDict>().is_ok() {
        let text = to_json(config)?.to_string();
        return Config::from_yaml(&text).map_err(|e| PyValueError::new_err(format!("config: {e}")));
    }
    let path: PathBuf = config.extract()?;
    Config::from_file(&path).map_err(|e| PyValueError::new_err(format!("{e:#}")))
}

fn path_of(path: Option<&str>) -> PyResult<Option<PathKind>> {
    match path {
        None => Ok(None),
        Some("wasm") => Ok(Some(PathKind::Wasm)),
        Some("native") => Ok(Some(PathKind::Native)),
        Some(other) => Err(PyValueError::new_err(format!(
            "path must be \"wasm\" or \"native\", got {other:?}"
        ))),
    }
}

/// How much of the server's record step a decision needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Id {
    /// A decision id always (`decide` returns it).
    Always,
    /// Only when the service writes a decision log.
    WhenLogged,
}

impl Client {
    /// One decision as `sark serve` makes it: lookup, evaluation on a miss, record (under a
    /// fresh decision id, which the decision log, when on, logs it under). The lookup never
    /// blocks, so a cache hit is answered holding the GIL; only an evaluation releases it.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        entrypoint: &str,
        input: Option<&Bound<'_, PyAny>>,
        user: Option<&str>,
        path: Option<&str>,
        bypass_cache: bool,
        id: Id,
    ) -> PyResult<(Option<String>, Decision)> {
        let input = input.filter(|i| !i.is_none()).map(to_json).transpose()?;
        let mut req = DecisionRequest::new(entrypoint, input.as_ref());
        req.user_key = user;
        req.force_path = path_of(path)?;
        req.bypass_cache = bypass_cache;
        let id = (id == Id::Always || self.service.logs_decisions())
            .then(|| uuid::Uuid::new_v4().to_string());
        // Inside the client's runtime, the record step hands a shadow evaluation (policy
        // canary, shadow mode) to its blocking pool instead of running it here.
        let decision = match self.service.lookup(&req) {
            Lookup::Hit(decided) => {
                let _runtime = self.runtime.enter();
                self.service.record(decided, id.as_deref())
            }
            Lookup::Miss(pending) => py.detach(|| {
                // The shared (Redis) cache is written from the runtime too.
                let _runtime = self.runtime.enter();
                let decided = self.service.evaluate(pending);
                self.service.record(decided, id.as_deref())
            }),
        };
        Ok((id, decision.map_err(eval_error)?))
    }
}

#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (bundle, config=None, verification_key=None))]
    fn new(
        py: Python<'_>,
        bundle: PathBuf,
        config: Option<&Bound<'_, PyAny>>,
        verification_key: Option<PathBuf>,
    ) -> PyResult<Self> {
        let config = config_of(config)?;
        let key = verification_key
            .map(|p| sark::bundle::signing::read_verification_key(&p))
            .transpose()
            .map_err(bundle_error)?;
        py.detach(|| {
            let loaded = Bundle::read_verified(&bundle, key.as_ref()).map_err(bundle_error)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("sark-runtime")
                .enable_all()
                .build()
                .map_err(|e| PyValueError::new_err(format!("cannot start the runtime: {e}")))?;
            let service = runtime
                .block_on(async {
                    ServiceBuilder::new(&config)
                        .state_file(config.server.state_file.clone())
                        .background(tokio::runtime::Handle::current())
                        .build(loaded)
                })
                .map_err(bundle_error)?;
            let service = Arc::new(service);
            // As `sark serve`: the bundle moves to its own snapshot once compiled.
            let settle = std::time::Duration::from_millis(config.server.snapshot_delay_ms);
            runtime.spawn(service.clone().adopt_snapshots_in_background(settle));
            Ok(Client {
                service,
                runtime: Arc::new(runtime),
                bundle: Mutex::new(bundle),
                key,
            })
        })
    }

    /// The entrypoint's value for `input`, or `None` when it is undefined.
    #[pyo3(signature = (entrypoint, input=None, *, user=None, path=None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        entrypoint: &str,
        input: Option<&Bound<'py, PyAny>>,
        user: Option<&str>,
        path: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (_, d) = self.run(py, entrypoint, input, user, path, false, Id::WhenLogged)?;
        match d.result.as_deref() {
            Some(text) => from_json_text(py, text),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// Values for many inputs (one decision each, the GIL released for all of them).
    #[pyo3(signature = (entrypoint, inputs, *, user=None, path=None))]
    fn evaluate_batch<'py>(
        &self,
        py: Python<'py>,
        entrypoint: &str,
        inputs: &Bound<'py, PyAny>,
        user: Option<&str>,
        path: Option<&str>,
    ) -> PyResult<Bound<'py, PyList>> {
        let inputs: Vec<serde_json::Value> = inputs
            .try_iter()?
            .map(|i| i.and_then(|i| to_json(&i)))
            .collect::<PyResult<_>>()?;
        let force_path = path_of(path)?;
        let logged = self.service.logs_decisions();
        let results = py.detach(|| {
            let _runtime = self.runtime.enter();
            inputs
                .iter()
                .map(|input| {
                    let mut req = DecisionRequest::new(entrypoint, Some(input));
                    req.user_key = user;
                    req.force_path = force_path;
                    let id = logged.then(|| uuid::Uuid::new_v4().to_string());
                    self.service
                        .decide_as(&req, id.as_deref())
                        .map(|d| d.result)
                })
                .collect::<Result<Vec<_>, _>>()
        });
        let list = PyList::empty(py);
        for r in results.map_err(eval_error)? {
            match r.as_deref() {
                Some(text) => list.append(from_json_text(py, text)?)?,
                None => list.append(py.None())?,
            }
        }
        Ok(list)
    }

    /// The decision with how it was made: `result` (None when undefined), `decision_id`
    /// (as in the decision log), `path`, `cache_hit`, `shared_cache_hit`, `fallback_from`,
    /// `canary`, `bundle`, `elapsed_us`.
    #[pyo3(signature = (entrypoint, input=None, *, user=None, path=None, bypass_cache=false))]
    fn decide<'py>(
        &self,
        py: Python<'py>,
        entrypoint: &str,
        input: Option<&Bound<'py, PyAny>>,
        user: Option<&str>,
        path: Option<&str>,
        bypass_cache: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (id, d) = self.run(py, entrypoint, input, user, path, bypass_cache, Id::Always)?;
        let out = PyDict::new(py);
        out.set_item("decision_id", id)?;
        match d.result.as_deref() {
            Some(text) => out.set_item("result", from_json_text(py, text)?)?,
            None => out.set_item("result", py.None())?,
        }
        out.set_item("path", d.path.to_string())?;
        out.set_item("cache_hit", d.cache_hit)?;
        out.set_item("shared_cache_hit", d.shared_cache_hit)?;
        out.set_item("fallback_from", d.fallback_from)?;
        out.set_item("canary", d.canary)?;
        out.set_item("bundle", &*d.bundle_id)?;
        out.set_item("elapsed_us", d.elapsed.as_secs_f64() * 1e6)?;
        Ok(out)
    }

    /// An ad-hoc Rego query (in the sandbox unless `path="native"`): the result rows.
    #[pyo3(signature = (query, input=None, *, path=None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        query: &str,
        input: Option<&Bound<'py, PyAny>>,
        path: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = input.filter(|i| !i.is_none()).map(to_json).transpose()?;
        let force_path = path_of(path)?;
        let d = py
            .detach(|| {
                let mut req = DecisionRequest::query(query, input.as_ref());
                req.force_path = force_path;
                self.service.decide(&req)
            })
            .map_err(eval_error)?;
        from_json_text(py, d.result.as_deref().unwrap_or("[]"))
    }

    /// Loads `bundle` (default: the same file again) and makes it the active bundle; the
    /// new revision. A bundle that does not verify or load leaves the active one in place.
    #[pyo3(signature = (bundle=None))]
    fn reload(&self, py: Python<'_>, bundle: Option<PathBuf>) -> PyResult<String> {
        // The lock is taken without the GIL: a second thread reloading meanwhile waits for
        // it without holding the GIL the first one needs back.
        py.detach(|| {
            let mut current = self.bundle.lock().unwrap_or_else(|p| p.into_inner());
            let path = bundle.unwrap_or_else(|| current.clone());
            let bundle = Bundle::read_verified(&path, self.key.as_ref()).map_err(bundle_error)?;
            let _runtime = self.runtime.enter();
            let loaded = self.service.load_bundle(bundle).map_err(bundle_error)?;
            let revision = loaded.manifest.revision.clone();
            self.service.swap_bundle(loaded);
            *current = path;
            Ok(revision)
        })
    }

    /// The active bundle: `revision`, `content_hash`, `id`, `entrypoints`, `roots`,
    /// `modules`, `regorus_version`, `signed`.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let active = self.service.active();
        let m = &active.manifest;
        let v = serde_json::json!({
            "revision": m.revision,
            "content_hash": m.content_hash,
            "id": &*active.id,
            "entrypoints": m.entrypoints,
            "roots": m.roots,
            "modules": m.modules.iter().map(|e| &e.path).collect::<Vec<_>>(),
            "regorus_version": m.regorus_version,
            "metadata": m.metadata,
        });
        from_json(py, &v)
    }

    /// The rollout flags the service decides with (changes apply to the next decision, and
    /// go through Redis when clustered).
    #[getter]
    fn flags(&self) -> Flags {
        Flags::of_service(self.service.clone(), self.runtime.clone())
    }

    /// Counters of the decision cache.
    fn cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stats = serde_json::to_value(self.service.cache().stats())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        from_json(py, &stats)
    }

    /// Prometheus text exposition of every metric (as `/metrics` serves it).
    fn metrics_text(&self) -> String {
        self.service.metrics_text()
    }
}
