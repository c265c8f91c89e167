//! What goes into a decision, what comes out, and the values that carry a decision from
//! one step to the next (`lookup` → `evaluate` → `record`).

use super::LoadedBundle;
use super::prepared::PreparedInput;
use crate::cache::CacheKey;
use crate::evaluator::{EvalError, PathKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An entrypoint, a rule path, a package or a data document (`data.a.b` or `a/b`).
    Entrypoint(&'a str),
    /// An ad-hoc Rego query, answered with OPA's result rows (JSON); never cached.
    Query(&'a str),
}

impl<'a> Target<'a> {
    /// The entrypoint or the query text.
    pub fn as_str(&self) -> &'a str {
        match self {
            Target::Entrypoint(s) | Target::Query(s) => s,
        }
    }
}

/// One decision to make.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRequest<'a> {
    /// What to evaluate.
    pub target: Target<'a>,
    /// The input document; `None` evaluates without input (unless `prepared` has one).
    pub input: Option<&'a serde_json::Value>,
    /// The input already prepared (canonical form and rollout key), used instead of
    /// preparing `input` again: a front door that remembered this body passes it with no
    /// `input` (see [`super::InputMemo`]).
    pub prepared: Option<&'a PreparedInput>,
    /// Key for rollout buckets; default: `input.user.id` (or `input.user` when it is a
    /// string), else the empty key shared by all anonymous requests.
    pub user_key: Option<&'a str>,
    /// Evaluate on this path, ignoring `wasm_engine` and never falling back.
    pub force_path: Option<PathKind>,
    /// Skip the decision cache (lookup and store).
    pub bypass_cache: bool,
    /// When the front door had the request's body and began reading its input: the
    /// decision's budget (`limits.request_timeout_ms`) counts from here, so parsing the
    /// input and waiting for an evaluation slot are part of it. `None`: from the lookup
    /// (items of a batch, where each decision has its own budget).
    pub received: Option<Instant>,
}

impl<'a> DecisionRequest<'a> {
    /// A decision of `entrypoint`, routed by the flags, with the cache.
    pub fn new(entrypoint: &'a str, input: Option<&'a serde_json::Value>) -> Self {
        Self::of(Target::Entrypoint(entrypoint), input)
    }

    /// An ad-hoc query: in the component unless a path is forced, never falling back, never
    /// cached.
    pub fn query(query: &'a str, input: Option<&'a serde_json::Value>) -> Self {
        Self::of(Target::Query(query), input)
    }

    fn of(target: Target<'a>, input: Option<&'a serde_json::Value>) -> Self {
        DecisionRequest {
            target,
            input,
            prepared: None,
            user_key: None,
            force_path: None,
            bypass_cache: false,
            received: None,
        }
    }

    /// This request with its input already prepared (see [`Self::prepared`]).
    pub fn with_prepared(mut self, prepared: &'a PreparedInput) -> Self {
        self.prepared = Some(prepared);
        self
    }

    /// This request, its budget counting from `at` (see [`Self::received`]).
    pub fn received_at(mut self, at: Instant) -> Self {
        self.received = Some(at);
        self
    }
}

/// A decision and how it was made.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The result as JSON, `None` when undefined (for a query: the result rows).
    pub result: Option<Arc<str>>,
    /// The implementation that produced it (after a fallback: native).
    pub path: PathKind,
    /// Served from the decision cache (local or shared).
    pub cache_hit: bool,
    /// Served from the shared (second-level) cache after a local miss.
    pub shared_cache_hit: bool,
    /// Decided by the candidate bundle (policy canary, route mode).
    pub canary: bool,
    /// The component failure that caused a fallback to the native path.
    pub fallback_from: Option<&'static str>,
    /// Identity of the bundle that decided.
    pub bundle_id: Arc<str>,
    /// Time from the lookup to the decision.
    pub elapsed: Duration,
}

/// What [`super::DecisionService::lookup`] found.
pub enum Lookup<'r> {
    /// The local decision cache answered; hand it to `record`.
    Hit(Decided<'r>),
    /// Evaluation is needed: hand it to `evaluate`, which may block up to the deadline.
    Miss(Pending<'r>),
}

/// What the lookup worked out, carried through the later steps so nothing is computed
/// twice: the bundle and path chosen, and the canonical input (the cache key's source and
/// the evaluators' input text).
pub(super) struct Route<'r> {
    pub(super) req: DecisionRequest<'r>,
    pub(super) bundle: Arc<LoadedBundle>,
    pub(super) path: PathKind,
    pub(super) canary: bool,
    pub(super) canonical: Arc<[u8]>,
    pub(super) started: Instant,
    /// When the decision's budget ends.
    pub(super) deadline: Instant,
}

impl Route<'_> {
    /// A decision made on this route.
    pub(super) fn decision(
        &self,
        result: Option<Arc<str>>,
        path: PathKind,
        cached: Cached,
        fallback_from: Option<&'static str>,
    ) -> Decision {
        Decision {
            result,
            path,
            cache_hit: cached != Cached::No,
            shared_cache_hit: cached == Cached::Shared,
            canary: self.canary,
            fallback_from,
            bundle_id: self.bundle.id.clone(),
            elapsed: self.started.elapsed(),
        }
    }
}

/// Where a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cached {
    /// Evaluated.
    No,
    /// The local cache.
    Local,
    /// The shared cache, after a local miss.
    Shared,
}

/// A decision that missed the local cache.
pub struct Pending<'r> {
    pub(super) route: Route<'r>,
    /// The local cache key and the normalized entrypoint, when the decision is cached.
    pub(super) cache: Option<(CacheKey, Arc<str>)>,
}

/// A decision made (or failed), not yet recorded.
pub struct Decided<'r> {
    pub(super) route: Route<'r>,
    pub(super) outcome: Result<Decision, EvalError>,
}
