//! The policy canary's recent disagreements: in shadow mode, the last decisions the
//! candidate bundle answered differently from the active one, each with its input and both
//! results masked as the decision log masks its records (`decision_log.mask`), for
//! `/admin/canary` and the console. A bounded ring: the newest replaces the oldest.

use crate::decision_log::apply_mask;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Disagreements kept (the most recent).
pub const RECENT_DISAGREEMENTS: usize = 32;

/// Largest input or result (JSON text) kept with a disagreement; a larger one is left out
/// and named in `omitted`: 32 inputs of the 1 MiB an input may have would hold 32 MiB.
const MAX_KEPT_BYTES: usize = 16 * 1024;

/// One decision on which the candidate disagreed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disagreement {
    /// When the shadow evaluation ran (RFC 3339, UTC).
    pub timestamp: String,
    /// The entrypoint, normalized (`data.a.b`).
    pub entrypoint: String,
    /// The input with the masked fields removed; `null` when left out (see `omitted`).
    pub input: Value,
    /// The masked fields that were present (JSON pointers, as the decision log's `erased`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<String>,
    /// Parts left out because they are larger than 16 KiB: `input`, `active.result`,
    /// `candidate.result`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub omitted: Vec<&'static str>,
    /// What the active bundle answered (and the client got).
    pub active: Side,
    /// What the candidate answered.
    pub candidate: Side,
}

/// One bundle's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// The bundle's identity (`<revision>@<content hash>`).
    pub bundle: String,
    /// The result; absent when undefined, failed or left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the evaluation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An answer to record: the bundle and its result (JSON text, `None` when undefined) or
/// its error.
pub struct Answer<'a> {
    /// The bundle's identity.
    pub bundle: &'a str,
    /// The result as JSON text, or the error message.
    pub result: Result<Option<&'a str>, &'a str>,
}

/// The counts of shadow comparisons and disagreements, and the recent disagreements.
pub struct Disagreements {
    mask: Vec<String>,
    compared: AtomicU64,
    disagreed: AtomicU64,
    recent: Mutex<VecDeque<Disagreement>>,
}

impl Disagreements {
    /// An empty record that masks inputs and results with `mask` (`decision_log.mask`).
    pub fn new(mask: Vec<String>) -> Self {
        Disagreements {
            mask,
            compared: AtomicU64::new(0),
            disagreed: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Counts one shadow comparison.
    pub fn compared(&self) {
        self.compared.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a disagreement on `entrypoint` for the canonical input `input_json`.
    pub fn record(
        &self,
        entrypoint: &str,
        input_json: &str,
        active: Answer<'_>,
        candidate: Answer<'_>,
    ) {
        self.disagreed.fetch_add(1, Ordering::Relaxed);
        let mut omitted = Vec::new();
        let input = kept(input_json, "input", &mut omitted);
        let active_result = match active.result {
            Ok(Some(text)) => kept(text, "active.result", &mut omitted),
            _ => None,
        };
        let candidate_result = match candidate.result {
            Ok(Some(text)) => kept(text, "candidate.result", &mut omitted),
            _ => None,
        };
        // The decision log masks pointers into its record, `{input, result, …}`: the same
        // pointers apply to the input with each side's result.
        let mut erased = Vec::new();
        let mut record = json!({ "input": input.unwrap_or(Value::Null) });
        if let Some(r) = active_result {
            record["result"] = r;
        }
        let mut record = self.masked(record, &mut erased);
        let candidate_result = candidate_result.and_then(|r| {
            let mut record = self.masked(json!({ "result": r }), &mut erased);
            take(&mut record, "result")
        });
        let entry = Disagreement {
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            entrypoint: sark_guest::normalize_entrypoint(entrypoint),
            input: take(&mut record, "input").unwrap_or(Value::Null),
            erased,
            omitted,
            active: Side {
                bundle: active.bundle.to_string(),
                result: take(&mut record, "result"),
                error: active.result.err().map(str::to_string),
            },
            candidate: Side {
                bundle: candidate.bundle.to_string(),
                result: candidate_result,
                error: candidate.result.err().map(str::to_string),
            },
        };
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_DISAGREEMENTS {
            recent.pop_front();
        }
        recent.push_back(entry);
    }

    /// Applies the mask to `record`, adding the pointers it removed to `erased`.
    fn masked(&self, mut record: Value, erased: &mut Vec<String>) -> Value {
        apply_mask(&mut record, &self.mask);
        if let Some(Value::Array(removed)) = record.as_object_mut().and_then(|m| m.remove("erased"))
        {
            for pointer in removed {
                if let Value::String(p) = pointer
                    && !erased.contains(&p)
                {
                    erased.push(p);
                }
            }
        }
        record
    }

    /// Shadow comparisons since start.
    pub fn compared_total(&self) -> u64 {
        self.compared.load(Ordering::Relaxed)
    }

    /// Disagreements since start.
    pub fn disagreed_total(&self) -> u64 {
        self.disagreed.load(Ordering::Relaxed)
    }

    /// The recent disagreements, newest first.
    pub fn recent(&self) -> Vec<Disagreement> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().rev().cloned().collect()
    }
}

/// The JSON of `text`, unless it is empty or larger than [`MAX_KEPT_BYTES`] (then `part`
/// is added to `omitted`).
fn kept(text: &str, part: &'static str, omitted: &mut Vec<&'static str>) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    if text.len() > MAX_KEPT_BYTES {
        omitted.push(part);
        return None;
    }
    serde_json::from_str(text).ok()
}

/// Removes `key` from the object `record`.
fn take(record: &mut Value, key: &str) -> Option<Value> {
    record.as_object_mut().and_then(|m| m.remove(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer<'a>(bundle: &'a str, result: Result<Option<&'a str>, &'a str>) -> Answer<'a> {
        Answer { bundle, result }
    }

    #[test]
    fn inputs_and_results_are_masked_as_in_the_decision_log() {
        let d = Disagreements::new(vec![
            "/input/parameters/password".into(),
            "/result/token".into(),
            "/input/absent".into(),
        ]);
        d.compared();
        d.compared();
        d.record(
            "mcp/gateway/decision",
            r#"{"parameters":{"password":"hunter2","service":"api"},"user":{"id":"ada"}}"#,
            answer("r1@a", Ok(Some(r#"{"allow":false,"token":"t1"}"#))),
            answer("r2@b", Ok(Some(r#"{"allow":true,"token":"t2"}"#))),
        );
        assert_eq!((d.compared_total(), d.disagreed_total()), (2, 1));
        let recent = d.recent();
        let e = &recent[0];
        assert_eq!(e.entrypoint, "data.mcp.gateway.decision");
        assert_eq!(
            e.input,
            json!({"parameters": {"service": "api"}, "user": {"id": "ada"}})
        );
        assert_eq!(e.erased, ["/input/parameters/password", "/result/token"]);
        assert_eq!(e.active.result, Some(json!({"allow": false})));
        assert_eq!(e.candidate.result, Some(json!({"allow": true})));
        assert_eq!(e.candidate.bundle, "r2@b");
        let text = serde_json::to_string(&recent).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("t1") && !text.contains("t2"));
    }

    #[test]
    fn errors_undefined_and_large_parts_are_shown_as_such() {
        let d = Disagreements::new(vec![]);
        let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_KEPT_BYTES));
        d.record(
            "data.t.allow",
            &big,
            answer("a", Ok(None)),
            answer("b", Err("eval_builtin_error: boom")),
        );
        let recent = d.recent();
        let e = &recent[0];
        assert_eq!(e.input, Value::Null);
        assert_eq!(e.omitted, ["input"]);
        assert_eq!(e.active.result, None);
        assert_eq!(e.active.error, None);
        assert_eq!(
            e.candidate.error.as_deref(),
            Some("eval_builtin_error: boom")
        );
        let v = serde_json::to_value(e).unwrap();
        assert!(
            v["active"].get("result").is_none(),
            "undefined has no result"
        );
    }

    #[test]
    fn only_the_most_recent_are_kept() {
        let d = Disagreements::new(vec![]);
        for n in 0..RECENT_DISAGREEMENTS + 5 {
            let input = format!(r#"{{"n":{n}}}"#);
            d.record(
                "data.t.allow",
                &input,
                answer("a", Ok(Some("true"))),
                answer("b", Ok(Some("false"))),
            );
        }
        let recent = d.recent();
        assert_eq!(recent.len(), RECENT_DISAGREEMENTS);
        assert_eq!(
            recent[0].input,
            json!({"n": RECENT_DISAGREEMENTS + 4}),
            "newest first"
        );
        assert_eq!(d.disagreed_total(), (RECENT_DISAGREEMENTS + 5) as u64);
    }
}
