//! The WIT exports of the evaluator component (`world evaluator-core` in `wit/policy.wit`).

use crate::{BundleInfo, Payload, PolicyError, PolicySet, TestOutcome};
use std::cell::RefCell;

wit_bindgen::generate!({
    world: "evaluator-core",
    path: "../wit",
});

use exports::sark::policy::{evaluator, loader, store};
use sark::policy::types as wit;

thread_local! {
    /// The loaded policy set. Filled once by `loader.load` (at build time, before the
    /// snapshot), read by every evaluation afterwards.
    static POLICY: RefCell<Option<PolicySet>> = const { RefCell::new(None) };
}

struct Component;

fn with_policy<T>(
    f: impl FnOnce(&mut PolicySet) -> Result<T, PolicyError>,
) -> Result<T, wit::Error> {
    POLICY.with(|cell| match cell.borrow_mut().as_mut() {
        Some(policy) => f(policy).map_err(to_wit),
        None => Err(wit::Error::Bundle("no policy payload is loaded".into())),
    })
}

fn to_wit(err: PolicyError) -> wit::Error {
    match err {
        PolicyError::Compile { message, location } => wit::Error::Compile(wit::CompileError {
            message,
            location: location.map(|l| wit::Location {
                file: l.file,
                row: l.row,
                col: l.col,
            }),
        }),
        PolicyError::UnknownEntrypoint(m) => wit::Error::UnknownEntrypoint(m),
        PolicyError::InvalidInput(m) => wit::Error::InvalidInput(m),
        PolicyError::Evaluation(m) => wit::Error::Evaluation(m),
        PolicyError::LimitExceeded(m) => wit::Error::LimitExceeded(m),
        PolicyError::Bundle(m) => wit::Error::Bundle(m),
    }
}

fn info_to_wit(info: &BundleInfo) -> wit::BundleInfo {
    wit::BundleInfo {
        revision: info.revision.clone(),
        entrypoints: info.entrypoints.clone(),
        roots: info.roots.clone(),
        content_hash: info.content_hash.clone(),
        regorus_version: info.regorus_version.clone(),
        modules: info.modules.clone(),
    }
}

fn outcome_to_wit(t: TestOutcome) -> wit::TestResult {
    wit::TestResult {
        package: t.package,
        name: t.name,
        file: t.file,
        passed: t.passed,
        message: t.message,
        duration_ns: t.duration_ns,
    }
}

impl evaluator::Guest for Component {
    fn info() -> Result<wit::BundleInfo, wit::Error> {
        with_policy(|p| Ok(info_to_wit(p.info())))
    }

    fn evaluate(entrypoint: String, input_json: String) -> Result<Option<String>, wit::Error> {
        with_policy(|p| p.evaluate(&entrypoint, &input_json))
    }

    fn query(query: String, input_json: String) -> Result<String, wit::Error> {
        with_policy(|p| p.query(&query, &input_json))
    }

    fn run_tests(filter: Option<String>) -> Result<Vec<wit::TestResult>, wit::Error> {
        with_policy(|p| {
            p.run_tests(filter.as_deref())
                .map(|v| v.into_iter().map(outcome_to_wit).collect())
        })
    }
}

impl store::Guest for Component {
    fn write(path: Vec<String>, json: Option<String>) -> Result<(), wit::Error> {
        with_policy(|p| p.write_data(&path, json.as_deref()))
    }
}

impl loader::Guest for Component {
    fn load(payload: Vec<u8>) -> Result<wit::BundleInfo, wit::Error> {
        if POLICY.with(|cell| cell.borrow().is_some()) {
            return Err(wit::Error::Bundle(
                "a policy payload is already loaded".into(),
            ));
        }
        let payload: Payload = serde_json::from_slice(&payload)
            .map_err(|e| wit::Error::Bundle(format!("malformed payload: {e}")))?;
        let policy = PolicySet::load_compiled(payload).map_err(to_wit)?;
        let info = info_to_wit(policy.info());
        POLICY.with(|cell| *cell.borrow_mut() = Some(policy));
        Ok(info)
    }
}

export!(Component);
