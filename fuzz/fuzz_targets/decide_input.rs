//! Input JSON → `decide()` on both paths: any bytes give a decision or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sark::PathKind;
use sark::decide::DecisionRequest;

fuzz_target!(
    // Build and compile the example bundle before the first input (it takes seconds).
    init: {
        sark_fuzz::service();
    },
    |data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let service = sark_fuzz::service();
    for entrypoint in ["mcp/gateway/decision", "mcp/a2a/decision"] {
        let mut answers = Vec::new();
        for path in [PathKind::Wasm, PathKind::Native] {
            let mut req = DecisionRequest::new(entrypoint, Some(&input));
            req.force_path = Some(path);
            req.bypass_cache = true;
            answers.push(service.decide(&req).map(|d| d.result));
        }
        // Both paths must agree whenever both produce a decision.
        if let (Ok(a), Ok(b)) = (&answers[0], &answers[1]) {
            assert_eq!(a, b, "wasm and native disagree on {input}");
        }
    }
    }
);
