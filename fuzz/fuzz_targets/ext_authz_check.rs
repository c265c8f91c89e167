//! Protobuf bytes → Envoy's `CheckRequest` → the policy input (`check_input`, with and
//! without body parsing) → a decision of `mcp/gateway/allow` (a boolean) and
//! `mcp/gateway/decision` (an object without `allowed`; the example policies have no Envoy
//! policy) → the `CheckResponse` (`check_response`, `dry_run`, `with_decision_id`), as the
//! gRPC server does it. A decode error, a request that cannot be read, a failed or
//! malformed decision are designed outcomes; a panic is not. Asserted: skipping the body
//! parse only leaves out `parsed_body` and `truncated_body` (and never adds a failure); a
//! response is OK exactly when allowed, and OK under dry-run.
#![no_main]

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use sark::config::ExtAuthzConfig;
use sark::decide::DecisionRequest;
use sark::ext_authz::{
    check_input, check_response, dry_run, request_parse_error_response, with_decision_id,
};
use serde_json::Value;
use std::sync::OnceLock;

/// `google.rpc.Code.OK`.
const GRPC_OK: i32 = 0;
/// `google.rpc.Code.PERMISSION_DENIED`.
const GRPC_PERMISSION_DENIED: i32 = 7;

const ENTRYPOINTS: &[&str] = &["mcp/gateway/allow", "mcp/gateway/decision"];

/// The request header the rollout bucket comes from (`ext_authz.user_header`'s default).
fn user_header() -> &'static str {
    static HEADER: OnceLock<String> = OnceLock::new();
    HEADER.get_or_init(|| ExtAuthzConfig::default().user_header)
}

fn status_code(response: &CheckResponse) -> Option<i32> {
    response.status.as_ref().map(|s| s.code)
}

fuzz_target!(
    // Build and compile the example bundle before the first input (it takes seconds).
    init: {
        sark_fuzz::service();
    },
    |data: &[u8]| {
    let Ok(request) = CheckRequest::decode(data) else {
        return;
    };
    let skipped = check_input(&request, true);
    let input = match check_input(&request, false) {
        Ok(input) => input,
        Err(message) => {
            // As the server answers it: denied, 400, the message in the body.
            let response = request_parse_error_response(&message);
            assert_eq!(status_code(&response), Some(GRPC_PERMISSION_DENIED));
            let _ = response.encode_to_vec();
            return;
        }
    };
    // Without the body parse, the same input less the body fields.
    let skipped = skipped.expect("skipping the body parse adds a failure");
    let mut without_body = input.clone();
    if let Value::Object(m) = &mut without_body {
        m.remove("parsed_body");
        m.remove("truncated_body");
    }
    assert_eq!(skipped, without_body, "skip_request_body_parse changed more than the body");

    let user = request
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
        .and_then(|h| h.headers.get(user_header()))
        .map(String::as_str)
        .unwrap_or("");
    let service = sark_fuzz::service();
    for entrypoint in ENTRYPOINTS {
        let mut req = DecisionRequest::new(entrypoint, Some(&input));
        req.user_key = Some(user);
        // A failed evaluation is the call's gRPC error.
        let Ok(decision) = service.decide(&req) else {
            continue;
        };
        let result = match decision.result.as_deref() {
            None => None,
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(v) => Some(v),
                Err(_) => continue,
            },
        };
        // An undefined or malformed decision is the call's gRPC error too.
        let Ok(outcome) = check_response(result.as_ref()) else {
            continue;
        };
        let expected = if outcome.allowed {
            GRPC_OK
        } else {
            GRPC_PERMISSION_DENIED
        };
        assert_eq!(status_code(&outcome.response), Some(expected), "{entrypoint}");
        let dry = dry_run(outcome.clone());
        assert_eq!(dry.allowed, outcome.allowed);
        assert_eq!(status_code(&dry.response), Some(GRPC_OK), "dry-run of {entrypoint}");
        for mut response in [outcome.response, dry.response] {
            with_decision_id(&mut response, "fuzz-decision");
            assert!(
                response
                    .dynamic_metadata
                    .as_ref()
                    .is_some_and(|m| m.fields.contains_key("decision_id")),
                "no decision_id in the answer of {entrypoint}"
            );
            let _ = response.encode_to_vec();
        }
    }
    }
);
