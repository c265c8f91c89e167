//! Shared setup of the fuzz targets: the example bundle loaded once per process, assembled
//! by the same `ServiceBuilder` the binary uses.

use sark::bundle::BuildOptions;
use sark::config::Config;
use sark::decide::{DecisionService, ServiceBuilder};
use std::sync::{Arc, OnceLock};

/// The configuration of the fuzzed service: small limits, so hostile inputs finish quickly.
pub fn config() -> Config {
    let mut config = Config::default();
    config.limits.eval_timeout_ms = 50;
    config.limits.native_timeout_ms = 200;
    config.server.admin_token = Some("fuzz".into());
    // The AuthZEN routes ask the example Todo policy (the default `data.authzen.decision`
    // is not in the example bundle); its sibling `candidates` answers the searches.
    config.authzen.entrypoint = "data.authzen.todo.decision".into();
    config
}

fn build() -> DecisionService {
    let bytes = sark::runtime::build_bundle(
        &sark::bundle::source::example_policies(),
        &BuildOptions::default(),
        sark::EVALUATOR_COMPONENT,
        None,
    )
    .expect("example bundle builds");
    let bundle = sark::Bundle::from_bytes(bytes).expect("example bundle reads");
    ServiceBuilder::new(&config())
        .code_cache(None)
        .pool_size(2)
        .build(bundle)
        .expect("bundle loads")
}

/// A decision service over the example policies (both paths).
pub fn service() -> &'static Arc<DecisionService> {
    static SERVICE: OnceLock<Arc<DecisionService>> = OnceLock::new();
    SERVICE.get_or_init(|| Arc::new(build()))
}

/// The server state `sark serve` would build around the same service.
pub fn app_state() -> &'static Arc<sark::server::AppState> {
    static STATE: OnceLock<Arc<sark::server::AppState>> = OnceLock::new();
    STATE.get_or_init(|| {
        Arc::new(sark::server::AppState::new(
            build(),
            config(),
            sark::server::BundleOrigin::File("/nonexistent".into()),
            None,
        ))
    })
}
