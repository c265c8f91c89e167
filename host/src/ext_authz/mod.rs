//! Envoy's external authorization (ext_authz v3) on Rego, as opa-envoy-plugin does it: a
//! `CheckRequest` becomes the policy input (`attributes`, `parsed_path`, `parsed_query`,
//! `parsed_body`, `version`), and the decision (a boolean, or an object with `allowed`,
//! `headers`, `body`, `http_status`, …) becomes the `CheckResponse`. The gRPC server is
//! `server::ext_authz`.
//!
//! [`check_input`] builds the input (`input`; its body fields in `body`),
//! [`check_response`] reads the decision, and [`dry_run`], [`with_decision_id`] and
//! [`request_parse_error_response`] are the plugin's last touches (`response`).

mod body;
mod input;
mod response;

pub use input::check_input;
pub use response::{
    CheckOutcome, check_response, dry_run, request_parse_error_response, with_decision_id,
};

/// Protobuf values for the unit tests of the modules.
#[cfg(test)]
mod test_values {
    use envoy_types::pb::google::protobuf::{self as pb, value::Kind};

    pub(super) fn pb_string(s: &str) -> pb::Value {
        pb::Value {
            kind: Some(Kind::StringValue(s.to_owned())),
        }
    }

    pub(super) fn pb_number(n: f64) -> pb::Value {
        pb::Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }
}
