//! OpenID AuthZEN Authorization API 1.0 on Rego: Access Evaluation, Access Evaluations
//! (with the three evaluation semantics), Subject / Resource / Action Search (with
//! pagination) and the PDP metadata, independent of the transport. The server hands every
//! evaluation to its decision function (`decide()`: cache, flags, canary, metrics,
//! decision log).
//!
//! The convention that maps AuthZEN onto any Rego policy (see `docs/authzen.md`):
//! - the configured entrypoint gets `{subject, action, resource, context}` and returns a
//!   boolean, or an object `{decision: bool, context?: object}`; undefined is a deny;
//! - a search first asks the candidates rule (the sibling `candidates` of the entrypoint, or
//!   `authzen.candidates_entrypoint`) with `{search, subject, action?, resource, context}`
//!   for the entities that may qualify, then evaluates the entrypoint for each of them and
//!   returns those permitted.

mod page;
pub mod request;

pub use request::{Batch, Evaluation, Search, SearchKind, Semantic};

use serde_json::{Map, Value, json};

/// Why a request could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzenError {
    /// The request is malformed (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// The policy failed or answered something that is not a decision (HTTP 500).
    #[error("{0}")]
    Internal(String),
    /// No such endpoint (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The body exceeds the size limit (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// The server sheds load: retry later (HTTP 503 with `Retry-After`).
    #[error("{0}")]
    Unavailable(String),
}

impl AuthzenError {
    /// The HTTP status the specification gives this error.
    pub fn status(&self) -> u16 {
        match self {
            AuthzenError::BadRequest(_) => 400,
            AuthzenError::Internal(_) => 500,
            AuthzenError::NotFound(_) => 404,
            AuthzenError::TooLarge(_) => 413,
            AuthzenError::Unavailable(_) => 503,
        }
    }
}

/// A decision function: evaluates `entrypoint` on `input` with `user_key` for the rollout
/// buckets, and returns the result (`None`: undefined) or why it failed (a policy error is
/// [`AuthzenError::Internal`], shed load [`AuthzenError::Unavailable`]).
pub trait Decide {
    /// One decision.
    fn decide(
        &mut self,
        entrypoint: &str,
        input: &Value,
        user_key: &str,
    ) -> Result<Option<Value>, AuthzenError>;
}

impl<F> Decide for F
where
    F: FnMut(&str, &Value, &str) -> Result<Option<Value>, AuthzenError>,
{
    fn decide(
        &mut self,
        entrypoint: &str,
        input: &Value,
        user_key: &str,
    ) -> Result<Option<Value>, AuthzenError> {
        self(entrypoint, input, user_key)
    }
}

/// Where the policy is: the decision entrypoint, the candidates rule, the bounds.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The decision entrypoint.
    pub entrypoint: String,
    /// The rule that lists search candidates.
    pub candidates: String,
    /// Most candidates one search evaluates.
    pub max_candidates: usize,
}

impl Policy {
    /// The entrypoint's decision for `evaluation` as an AuthZEN decision object
    /// `{decision, context?}`.
    pub fn evaluate(
        &self,
        decide: &mut impl Decide,
        evaluation: &Evaluation,
    ) -> Result<Value, AuthzenError> {
        let result = decide.decide(&self.entrypoint, &evaluation.input(), evaluation.user_key())?;
        decision_of(result.as_ref()).map_err(AuthzenError::Internal)
    }

    /// The `evaluations` response of a batch: the items in order, cut short by the
    /// semantic; a failed item (malformed or a policy error) is a deny with the error in
    /// its context.
    pub fn evaluate_batch(
        &self,
        decide: &mut impl Decide,
        items: &[Result<Evaluation, String>],
        semantic: Semantic,
    ) -> Value {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let decision = match item {
                Ok(e) => self
                    .evaluate(decide, e)
                    .unwrap_or_else(|err| failed(err.status(), &err.to_string())),
                Err(message) => failed(400, message),
            };
            let permitted = decision["decision"] == Value::Bool(true);
            out.push(decision);
            match semantic {
                Semantic::DenyOnFirstDeny if !permitted => break,
                Semantic::PermitOnFirstPermit if permitted => break,
                _ => {}
            }
        }
        json!({ "evaluations": out })
    }

    /// The search response: the permitted candidates, paged by `page.limit` and
    /// `page.token`; `page` in the response when the request has one.
    pub fn search(
        &self,
        decide: &mut impl Decide,
        search: &Search,
        identity: &[u8],
    ) -> Result<Value, AuthzenError> {
        let offset = match &search.token {
            Some(token) => page::offset(token, identity).map_err(AuthzenError::BadRequest)?,
            None => 0,
        };
        let listed = decide.decide(
            &self.candidates,
            &search.candidates_input(),
            user_key_of(search),
        )?;
        let candidates = self.candidates_of(search, listed)?;
        let mut results = Vec::new();
        for candidate in candidates {
            let evaluation = search.evaluation_of(&candidate);
            if self.evaluate(decide, &evaluation)?["decision"] == Value::Bool(true) {
                results.push(result_entity(search.kind, &candidate, search));
            }
        }
        let total = results.len();
        let paged = search.limit.is_some() || search.token.is_some();
        let start = offset.min(total);
        let end = search
            .limit
            .map_or(total, |l| start.saturating_add(l).min(total));
        let page_results: Vec<Value> = results.drain(start..end).collect();
        let mut body = Map::new();
        if paged {
            let next = if end < total {
                page::token(end, identity)
            } else {
                String::new()
            };
            body.insert(
                "page".into(),
                json!({"next_token": next, "count": page_results.len(), "total": total}),
            );
        }
        body.insert("results".into(), Value::Array(page_results));
        Ok(Value::Object(body))
    }

    /// The candidates the rule listed: entities of the searched type (names for an action
    /// search), each once, in the rule's order.
    fn candidates_of(
        &self,
        search: &Search,
        listed: Option<Value>,
    ) -> Result<Vec<Value>, AuthzenError> {
        let items = match listed {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(AuthzenError::Internal(format!(
                    "`{}` must be an array of candidate entities, not {}",
                    self.candidates,
                    kind_of(&other)
                )));
            }
        };
        if items.len() > self.max_candidates {
            return Err(AuthzenError::Internal(format!(
                "`{}` listed {} candidates; at most {} are evaluated in one search \
                 (authzen.max_candidates)",
                self.candidates,
                items.len(),
                self.max_candidates
            )));
        }
        let wanted_type = search.searched_type();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let candidate = match (search.kind, item) {
                (SearchKind::Action, Value::String(name)) => json!({ "name": name }),
                (_, item @ Value::Object(_)) => item,
                (_, other) => {
                    return Err(AuthzenError::Internal(format!(
                        "`{}` listed {} where an entity object was expected",
                        self.candidates,
                        kind_of(&other)
                    )));
                }
            };
            let key = match search.kind {
                SearchKind::Action => candidate.get("name").and_then(Value::as_str),
                _ => candidate.get("id").and_then(Value::as_str),
            };
            let Some(key) = key.map(str::to_string) else {
                return Err(AuthzenError::Internal(format!(
                    "`{}` listed an entity without a string `{}`",
                    self.candidates,
                    if search.kind == SearchKind::Action {
                        "name"
                    } else {
                        "id"
                    }
                )));
            };
            let candidate_type = candidate.get("type").and_then(Value::as_str);
            if let (Some(want), Some(have)) = (wanted_type, candidate_type)
                && want != have
            {
                continue;
            }
            if seen.insert(key) {
                out.push(candidate);
            }
        }
        Ok(out)
    }
}

/// The bucket key of a search: the input subject's id (none for a subject search).
fn user_key_of(search: &Search) -> &str {
    search
        .subject
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A result entity: `{type, id}` for subjects and resources, `{name}` for actions.
fn result_entity(kind: SearchKind, candidate: &Value, search: &Search) -> Value {
    match kind {
        SearchKind::Action => json!({"name": candidate["name"]}),
        _ => {
            let t = candidate
                .get("type")
                .cloned()
                .or_else(|| search.searched_type().map(Value::from))
                .unwrap_or(Value::Null);
            json!({"type": t, "id": candidate["id"]})
        }
    }
}

/// Reads a policy result as a decision: `true`/`false`, or `{decision, context?}`;
/// undefined is a deny.
pub fn decision_of(result: Option<&Value>) -> Result<Value, String> {
    match result {
        None => Ok(json!({"decision": false})),
        Some(Value::Bool(b)) => Ok(json!({ "decision": b })),
        Some(Value::Object(o)) => {
            let decision = match o.get("decision") {
                Some(Value::Bool(b)) => *b,
                None => return Err("the policy's decision object has no `decision`".into()),
                Some(other) => {
                    return Err(format!(
                        "the policy's `decision` must be a boolean, not {}",
                        kind_of(other)
                    ));
                }
            };
            let mut out = json!({ "decision": decision });
            match o.get("context") {
                None | Some(Value::Null) => {}
                Some(c @ Value::Object(_)) => out["context"] = c.clone(),
                Some(other) => {
                    return Err(format!(
                        "the policy's decision `context` must be an object, not {}",
                        kind_of(other)
                    ));
                }
            }
            Ok(out)
        }
        Some(other) => Err(format!(
            "the policy's decision must be a boolean or an object with a boolean `decision`, \
             not {}",
            kind_of(other)
        )),
    }
}

/// A failed batch item: closed, with the error in its context.
fn failed(status: u16, message: &str) -> Value {
    json!({"decision": false, "context": {"error": {"status": status, "message": message}}})
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The PDP metadata (`/.well-known/authzen-configuration`) of the PDP at `base` (its
/// identifier: scheme, host and any path, no trailing slash).
pub fn metadata(base: &str) -> Value {
    json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
        "search_action_endpoint": format!("{base}/access/v1/search/action"),
    })
}

/// The candidates rule of `entrypoint` by default: its sibling `candidates`
/// (`data.authzen.decision` → `data.authzen.candidates`).
pub fn default_candidates(entrypoint: &str) -> String {
    let normalized = sark_guest::normalize_entrypoint(entrypoint);
    match normalized.rsplit_once('.') {
        Some((package, _)) => format!("{package}.candidates"),
        None => "data.candidates".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_read_as_decisions() {
        assert_eq!(decision_of(None).unwrap(), json!({"decision": false}));
        assert_eq!(
            decision_of(Some(&json!(true))).unwrap(),
            json!({"decision": true})
        );
        let d = decision_of(Some(&json!({"decision": false, "context": {"r": 1}}))).unwrap();
        assert_eq!(d, json!({"decision": false, "context": {"r": 1}}));
        assert!(decision_of(Some(&json!("yes"))).is_err());
        assert!(decision_of(Some(&json!({"decision": 1}))).is_err());
        assert!(decision_of(Some(&json!({"decision": true, "context": []}))).is_err());
    }

    #[test]
    fn candidates_rule_is_the_entrypoints_sibling() {
        assert_eq!(
            default_candidates("authzen/cert/decision"),
            "data.authzen.cert.candidates"
        );
        assert_eq!(
            default_candidates("data.authzen.decision"),
            "data.authzen.candidates"
        );
    }
}
