//! Shared setup of the fuzz targets: the example bundle loaded once per process.

use sark::bundle::{BuildOptions, SourceSet};
use sark::config::Config;
use sark::decide::{DecisionService, LoadedBundle};
use sark::flags::RolloutFlags;
use sark::runtime::WasmRuntime;
use std::sync::{Arc, OnceLock};

/// A decision service over the example policies (both paths, small limits so hostile
/// inputs finish quickly).
pub fn service() -> &'static Arc<DecisionService> {
    static SERVICE: OnceLock<Arc<DecisionService>> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let mut config = Config::default();
        config.limits.eval_timeout_ms = 50;
        config.limits.native_timeout_ms = 200;
        let sources: SourceSet = sark::bundle::source::example_policies();
        let bytes = sark::bundle::build(
            &sources,
            &BuildOptions::default(),
            sark::EVALUATOR_COMPONENT,
            None,
        )
        .expect("example bundle builds");
        let bundle = sark::Bundle::from_bytes(bytes).expect("example bundle reads");
        let runtime = WasmRuntime::new(config.limits, None).expect("runtime");
        let loaded = LoadedBundle::load(&runtime, bundle, &config, 2).expect("bundle loads");
        let flags = Arc::new(RolloutFlags::new(&config, None).expect("flags"));
        Arc::new(DecisionService::new(runtime, loaded, &config, flags))
    })
}
