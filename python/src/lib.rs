//! `sark_runtime._native`: the Python extension module. Every class is a thin wrapper over
//! the host library (`sark`): [`client::Client`] over the decision service,
//! [`cache::PolicyCache`] over the decision cache, [`flags::Flags`] over the rollout flags.
//! Nothing is implemented twice; the Python package (`python/sark_runtime`) adds the async
//! methods and the typed surface.

mod cache;
mod client;
mod convert;
mod errors;
mod flags;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<client::Client>()?;
    m.add_class::<cache::PolicyCache>()?;
    m.add_class::<flags::Flags>()?;
    m.add_function(wrap_pyfunction!(flags::bucket, m)?)?;
    m.add("SarkError", py.get_type::<errors::SarkError>())?;
    m.add(
        "UnknownEntrypoint",
        py.get_type::<errors::UnknownEntrypoint>(),
    )?;
    m.add("InvalidInput", py.get_type::<errors::InvalidInput>())?;
    m.add("EvaluationError", py.get_type::<errors::EvaluationError>())?;
    m.add("LimitExceeded", py.get_type::<errors::LimitExceeded>())?;
    m.add("BundleError", py.get_type::<errors::BundleError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
