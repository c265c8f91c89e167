//! Pure helpers of a decision: the canonical input (cache keys, evaluator input), the rollout
//! key, and the fields of a decision document `decide` looks at.

use crate::metrics::Outcome;
use serde::Deserialize;

/// The fields of a decision document the service looks at.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DecisionMeta {
    allow: Option<bool>,
    /// The decision's own cache TTL in seconds (`0` = do not cache).
    pub(super) cache_ttl: Option<f64>,
}

/// The meta fields of a result; defaults unless it is an object that has them.
pub(super) fn meta_of(result: Option<&str>) -> DecisionMeta {
    match result {
        Some(s) if s.starts_with('{') => serde_json::from_str(s).unwrap_or_default(),
        _ => DecisionMeta::default(),
    }
}

/// How an evaluation ended, for `opa_evaluation_total{result}`.
pub(super) fn outcome_of(result: Option<&str>, meta: &DecisionMeta) -> Outcome {
    match (result, meta.allow) {
        (None, _) => Outcome::Undefined,
        (Some("true"), _) | (_, Some(true)) => Outcome::Allow,
        (Some("false"), _) | (_, Some(false)) => Outcome::Deny,
        _ => Outcome::Value,
    }
}

/// The default rollout key of a request: `input.user.id`, or `input.user` when it is a
/// string, else empty.
pub(super) fn user_key_of(input: Option<&serde_json::Value>) -> &str {
    let user = input.and_then(|i| i.get("user"));
    match user {
        Some(serde_json::Value::String(s)) => s,
        Some(u) => u.get("id").and_then(|v| v.as_str()).unwrap_or(""),
        None => "",
    }
}

/// Compact JSON with object keys sorted at every level, so key order never changes a cache
/// key (independent of serde_json's `preserve_order` feature).
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    fn write(v: &serde_json::Value, out: &mut Vec<u8>) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_unstable();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    // Serializing a string cannot fail.
                    let _ = serde_json::to_writer(&mut *out, k);
                    out.push(b':');
                    write(&map[k], out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => {
                let _ = serde_json::to_writer(&mut *out, scalar);
            }
        }
    }
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"s"}}"#).unwrap();
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            String::from_utf8(canonical_json(&a)).unwrap(),
            r#"{"a":{"x":"s","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
    }

    #[test]
    fn user_key_comes_from_the_input() {
        let v = serde_json::json!({"user": {"id": "alice", "role": "x"}});
        assert_eq!(user_key_of(Some(&v)), "alice");
        let v = serde_json::json!({"user": "bob"});
        assert_eq!(user_key_of(Some(&v)), "bob");
        assert_eq!(user_key_of(None), "");
    }

    #[test]
    fn outcomes_follow_allow() {
        let m = meta_of(Some(r#"{"allow":false,"cache_ttl":60}"#));
        assert_eq!(outcome_of(Some("{}"), &m), Outcome::Deny);
        assert_eq!(m.cache_ttl, Some(60.0));
        assert_eq!(
            outcome_of(Some("true"), &DecisionMeta::default()),
            Outcome::Allow
        );
        assert_eq!(
            outcome_of(None, &DecisionMeta::default()),
            Outcome::Undefined
        );
        assert_eq!(
            outcome_of(Some("3"), &DecisionMeta::default()),
            Outcome::Value
        );
    }
}
