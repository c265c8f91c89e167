//! `RolloutFlags`: named features with a percentage and stable per-user buckets, the host's
//! own flags: standalone, or those a `Client` decides with.

use crate::convert::from_json;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use sark::decide::DecisionService;
use sark::flags::{Feature, RolloutFlags};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the flags live, and so how a change is applied.
enum Owner {
    /// Standalone flags: changes apply here (persisted first when there is a state file).
    Own(Arc<RolloutFlags>),
    /// A client's service: changes go through it (through Redis when clustered), on the
    /// client's runtime (kept alive here: the flags may outlive the client).
    Service(Arc<DecisionService>, Arc<tokio::runtime::Runtime>),
}

/// Rollout flags.
#[pyclass(module = "sark_runtime._native", name = "RolloutFlags", frozen)]
pub struct Flags {
    owner: Owner,
}

impl Flags {
    /// The flags of a client's service.
    pub fn of_service(
        service: Arc<DecisionService>,
        runtime: Arc<tokio::runtime::Runtime>,
    ) -> Self {
        Flags {
            owner: Owner::Service(service, runtime),
        }
    }

    fn flags(&self) -> &RolloutFlags {
        match &self.owner {
            Owner::Own(f) => f,
            Owner::Service(s, _) => s.flags(),
        }
    }

    fn apply(&self, py: Python<'_>, planned: BTreeMap<String, Feature>) -> PyResult<()> {
        py.detach(|| match &self.owner {
            Owner::Own(f) => planned
                .iter()
                .try_for_each(|(name, state)| f.apply(name, state.clone()).map(drop))
                .map_err(|e| e.to_string()),
            Owner::Service(s, runtime) => runtime
                .block_on(s.change_features(&planned))
                .map_err(|e| e.to_string()),
        })
        .map_err(PyValueError::new_err)
    }
}

fn feature_json<'py>(py: Python<'py>, f: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(f).map_err(|e| PyValueError::new_err(e.to_string()))?;
    from_json(py, &v)
}

#[pymethods]
impl Flags {
    /// Standalone flags from a configuration (None, a YAML path or a dict: its `features`),
    /// with an optional state file that keeps changes across restarts.
    #[new]
    #[pyo3(signature = (config=None, state_file=None))]
    fn new(config: Option<&Bound<'_, PyAny>>, state_file: Option<PathBuf>) -> PyResult<Self> {
        let config = crate::client::config_of(config)?;
        let flags = RolloutFlags::new(&config, state_file)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Flags {
            owner: Owner::Own(Arc::new(flags)),
        })
    }

    /// Whether `user` is in `feature`'s rollout (false for an unknown feature).
    fn is_enabled(&self, feature: &str, user: &str) -> bool {
        self.flags().is_on(feature, user)
    }

    /// The user's bucket for `feature`, 0–99 (see `sark_runtime.bucket`).
    #[staticmethod]
    fn bucket(feature: &str, user: &str) -> u8 {
        sark::flags::bucket(feature, user)
    }

    /// Sets `feature`'s percentage (enabling it above 0); its new state.
    fn set_percentage<'py>(
        &self,
        py: Python<'py>,
        feature: &str,
        percentage: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let next = self
            .flags()
            .plan_percentage(feature, percentage)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        self.apply(py, BTreeMap::from([(feature.to_string(), next.clone())]))?;
        feature_json(py, &next)
    }

    /// Rolls `feature` back to 0%; its new state.
    fn rollback<'py>(&self, py: Python<'py>, feature: &str) -> PyResult<Bound<'py, PyAny>> {
        self.set_percentage(py, feature, 0)
    }

    /// Rolls every feature back to 0%; every feature's new state.
    fn rollback_all<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let planned = self.flags().plan_rollback_all();
        self.apply(py, planned)?;
        feature_json(py, &self.flags().all())
    }

    /// One feature's state (`enabled`, `rollout_percentage`, `fallback_on_error`), or None.
    fn get<'py>(&self, py: Python<'py>, feature: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.flags().get(feature) {
            Some(f) => feature_json(py, &f),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// Every feature's state, by name.
    fn features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        feature_json(py, &self.flags().all())
    }
}

/// The user's bucket for a feature, 0–99: XXH3-64 (seed 0) of `"<feature>:<user>"` modulo
/// 100, the same on every instance and in every language.
#[pyfunction]
pub fn bucket(feature: &str, user: &str) -> u8 {
    sark::flags::bucket(feature, user)
}
