//! Bundle bytes → the bundle reader, and payload bytes → the evaluator's loader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        // A bundle file: verified sections, manifest and digests, or a typed error.
        if let Ok(bundle) = sark::Bundle::from_bytes(rest.to_vec()) {
            let _ = bundle.payload();
            let _ = bundle.imports();
        }
    } else if let Ok(payload) = serde_json::from_slice::<sark_guest::Payload>(rest) {
        // The loader the component exports, run natively (same code).
        if let Ok(mut set) = sark_guest::PolicySet::load(payload) {
            let entrypoints = set.info().entrypoints.clone();
            for ep in entrypoints {
                let _ = set.evaluate(&ep, "{}");
            }
        }
    }
});
