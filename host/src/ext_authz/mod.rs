//! Envoy's external authorization (ext_authz v3) on Rego, as opa-envoy-plugin does it: a
//! `CheckRequest` becomes the policy input (`attributes`, `parsed_path`, `parsed_query`,
//! `parsed_body`, `version`), and the decision (a boolean, or an object with `allowed`,
//! `headers`, `body`, `http_status`, …) becomes the `CheckResponse`. The gRPC server is
//! `server::ext_authz`.

mod mapping;

pub use mapping::{
    CheckOutcome, check_input, check_response, dry_run, request_parse_error_response,
    with_decision_id,
};
