//! Step 3 of a decision, the observer: the live comparison of the implementations, the
//! decision log, and the policy canary's shadow evaluation (off the response path).

use super::disagreements::{Answer, Disagreements};
use super::request::{Decided, Decision, Route, Target};
use super::{DecisionService, LoadedBundle, run};
use crate::config::CanaryMode;
use crate::evaluator::{EvalError, PathKind};
use crate::metrics::Metrics;
use std::sync::Arc;

impl DecisionService {
    /// Step 3: records the decision (or its failure) for the live comparison, writes it to
    /// the decision log when a `decision_id` is given and the log is on, and in shadow mode
    /// has the candidate bundle decide the same request, off the response path. Returns the
    /// decision.
    pub fn record(
        &self,
        decided: Decided<'_>,
        decision_id: Option<&str>,
    ) -> Result<Decision, EvalError> {
        let Decided { route, outcome } = decided;
        match &outcome {
            Ok(d) => {
                self.metrics.decision(d.path, d.elapsed, d.cache_hit);
                if d.fallback_from.is_some() {
                    self.metrics.decision_fallback(route.path);
                }
            }
            Err(_) => self.metrics.decision_error(route.path),
        }
        if let (Some(log), Some(id)) = (&self.log, decision_id) {
            log.record(id, route.req.target.as_str(), route.req.input, &outcome);
        }
        if let Ok(served) = &outcome
            && let Some(shadow) = self.shadow_of(route, served)
        {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn_blocking(move || shadow.run())),
                // Outside a server (tests, one-shot commands) there is no response to protect.
                Err(_) => shadow.run(),
            }
        }
        outcome
    }

    /// The shadow evaluation of a served decision: in shadow mode, with a candidate, for an
    /// entrypoint the active bundle decided.
    fn shadow_of(&self, route: Route<'_>, served: &Decision) -> Option<Shadow> {
        if self.canary_mode != CanaryMode::Shadow || served.canary {
            return None;
        }
        let Target::Entrypoint(entrypoint) = route.req.target else {
            return None;
        };
        Some(Shadow {
            candidate: self.candidate()?,
            metrics: self.metrics.clone(),
            disagreements: self.disagreements.clone(),
            entrypoint: entrypoint.to_string(),
            input_json: String::from_utf8(route.canonical.to_vec()).unwrap_or_default(),
            served: served.result.clone(),
            served_bundle: served.bundle_id.clone(),
        })
    }
}

/// A decision to repeat on the candidate bundle and compare.
struct Shadow {
    candidate: Arc<LoadedBundle>,
    metrics: Arc<Metrics>,
    disagreements: Arc<Disagreements>,
    entrypoint: String,
    input_json: String,
    served: Option<Arc<str>>,
    served_bundle: Arc<str>,
}

impl Shadow {
    /// Evaluates on the candidate's component; a different result (or an error) is counted in
    /// `policy_canary_disagreements_total`, kept with the recent disagreements (masked) and
    /// logged.
    fn run(self) {
        let target = Target::Entrypoint(&self.entrypoint);
        let shadow = run(
            None,
            &self.candidate,
            PathKind::Wasm,
            target,
            &self.input_json,
            None,
        )
        .map(|(result, _)| result)
        .map_err(|e| e.to_string());
        self.disagreements.compared();
        if matches!(&shadow, Ok(r) if r.as_deref() == self.served.as_deref()) {
            return;
        }
        self.metrics
            .canary_disagreement(&sark_guest::normalize_entrypoint(&self.entrypoint));
        self.disagreements.record(
            &self.entrypoint,
            &self.input_json,
            Answer {
                bundle: &self.served_bundle,
                result: Ok(self.served.as_deref()),
            },
            Answer {
                bundle: &self.candidate.id,
                result: match &shadow {
                    Ok(r) => Ok(r.as_deref()),
                    Err(e) => Err(e.as_str()),
                },
            },
        );
        tracing::warn!(
            entrypoint = self.entrypoint,
            active = self.served.as_deref().unwrap_or("<undefined>"),
            candidate = ?shadow,
            active_bundle = %self.served_bundle,
            candidate_bundle = %self.candidate.id,
            "policy canary disagreement"
        );
    }
}
