//! Python exceptions mirroring the WIT `error` variant, and the mapping from the host's
//! errors.

use pyo3::PyErr;
use pyo3::exceptions::PyException;
use sark::{EvalError, PolicyError};

pyo3::create_exception!(
    _native,
    SarkError,
    PyException,
    "Base class of every error of the SARK runtime."
);
pyo3::create_exception!(
    _native,
    UnknownEntrypoint,
    SarkError,
    "The entrypoint names no rule, package or document of the bundle."
);
pyo3::create_exception!(
    _native,
    InvalidInput,
    SarkError,
    "The input is not JSON (or a value JSON cannot hold), or it exceeds a limit."
);
pyo3::create_exception!(
    _native,
    EvaluationError,
    SarkError,
    "The policy failed while evaluating (a conflict, a builtin error, a trap)."
);
pyo3::create_exception!(
    _native,
    LimitExceeded,
    SarkError,
    "The evaluation ran past its deadline or memory cap."
);
pyo3::create_exception!(
    _native,
    BundleError,
    SarkError,
    "The bundle could not be read, verified or loaded."
);

/// The Python exception of a decision's error.
pub fn eval_error(e: EvalError) -> PyErr {
    let message = e.to_string();
    match e {
        EvalError::Policy(PolicyError::UnknownEntrypoint(_)) => UnknownEntrypoint::new_err(message),
        EvalError::Policy(PolicyError::InvalidInput(_)) | EvalError::InputRefused(_) => {
            InvalidInput::new_err(message)
        }
        EvalError::Policy(PolicyError::LimitExceeded(_))
        | EvalError::Deadline { .. }
        | EvalError::MemoryCap { .. }
        | EvalError::StackOverflow
        | EvalError::Overloaded { .. } => LimitExceeded::new_err(message),
        EvalError::Policy(PolicyError::Bundle(_)) => BundleError::new_err(message),
        EvalError::Policy(PolicyError::Compile { .. } | PolicyError::Evaluation(_))
        | EvalError::Trap(_)
        | EvalError::Instance(_) => EvaluationError::new_err(message),
    }
}

/// A `BundleError` with the error chain.
pub fn bundle_error(e: impl std::fmt::Display) -> PyErr {
    BundleError::new_err(format!("{e:#}"))
}
