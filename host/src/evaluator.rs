//! The interface both evaluation paths (component and native) implement.

use sark_guest::{BundleInfo, PolicyError, TestOutcome};
use std::fmt;

/// Which implementation evaluated a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// The policy component inside wasmtime.
    Wasm,
    /// Regorus linked into the host.
    Native,
}

impl PathKind {
    /// The label used in metrics and output (`wasm`, `native`).
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Wasm => "wasm",
            PathKind::Native => "native",
        }
    }
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PathKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wasm" => Ok(PathKind::Wasm),
            "native" => Ok(PathKind::Native),
            other => Err(format!("unknown path `{other}` (expected wasm or native)")),
        }
    }
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The policy itself reported an error; it would fail the same way on either path.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The component ran past its deadline and was interrupted.
    #[error("evaluation exceeded the deadline of {timeout_ms} ms")]
    Deadline {
        /// The configured deadline.
        timeout_ms: u64,
    },
    /// The component tried to grow its memory past the cap.
    #[error("evaluation exceeded the memory cap of {max_mb} MiB")]
    MemoryCap {
        /// The configured cap.
        max_mb: u64,
    },
    /// The component exhausted its call stack (deep recursion through functions).
    #[error("evaluation exceeded the call stack limit (recursion too deep)")]
    StackOverflow,
    /// The component trapped for another reason (a bug in the evaluator).
    #[error("the policy component trapped: {0}")]
    Trap(String),
    /// No instance could be created for the evaluation.
    #[error("cannot instantiate the policy component: {0}")]
    Instance(String),
    /// The input was refused before evaluation (size limit).
    #[error("input refused: {0}")]
    InputRefused(String),
    /// The server refused to start the evaluation: its bound on concurrent evaluations was
    /// reached and its queue was full, or the wait in the queue ran out. Retryable.
    #[error(
        "server overloaded: {limit} evaluations running (server.max_concurrent_evaluations) and {reason}; retry later"
    )]
    Overloaded {
        /// The configured bound.
        limit: usize,
        /// `the queue is full` or `the wait in the queue ran out`.
        reason: &'static str,
    },
}

impl EvalError {
    /// Short label for metrics and logs: `timeout`, `memory`, `trap`, `instance`, or the
    /// policy error's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            EvalError::Policy(p) => p.kind(),
            EvalError::Deadline { .. } => "timeout",
            EvalError::MemoryCap { .. } => "memory",
            EvalError::StackOverflow => "stack",
            EvalError::Trap(_) => "trap",
            EvalError::Instance(_) => "instance",
            EvalError::InputRefused(_) => "input_refused",
            EvalError::Overloaded { .. } => "overloaded",
        }
    }

    /// True when the failure is the sandbox's (deadline, memory, trap, instance), so the
    /// native path may still produce the decision.
    pub fn is_component_failure(&self) -> bool {
        matches!(
            self,
            EvalError::Deadline { .. }
                | EvalError::MemoryCap { .. }
                | EvalError::StackOverflow
                | EvalError::Trap(_)
                | EvalError::Instance(_)
        )
    }

    /// True when the native path may retry the decision: the deadline (the native path has
    /// its own, usually longer, time limit) or a lost instance. Not a resource limit: the
    /// native path has neither a memory cap nor a stack guard (a stack overflow aborts the
    /// process), so a policy that exhausted the sandbox must not run again in the host. Not
    /// a panic either: the same evaluator code panics the same way natively, and some panics
    /// (a range of a billion numbers) would first try to allocate gigabytes in the host.
    pub fn allows_fallback(&self) -> bool {
        matches!(self, EvalError::Deadline { .. } | EvalError::Instance(_))
    }
}

/// What one evaluator instance holds, measured by `sark bench` with several held at once
/// (after one evaluation each, as a pooled instance has run).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Footprint {
    /// Instances measured together.
    pub instances: usize,
    /// Per instance: a component instance's linear memory, or the heap a native engine
    /// clone allocated (glibc's statistics; `None` under another allocator).
    pub bytes: Option<usize>,
    /// Per instance: the resident memory the instances added to the process.
    pub resident_bytes: Option<usize>,
}

/// Per-instance share of the growth from `before` to `after`, when both were read.
pub(crate) fn per_instance(before: Option<usize>, after: Option<usize>, n: usize) -> Option<usize> {
    Some(after?.saturating_sub(before?) / n.max(1))
}

/// A loaded policy bundle that can evaluate decisions. Implementations are `Send + Sync`
/// and can be shared by any number of threads or tokio tasks.
pub trait Evaluator: Send + Sync {
    /// Which path this is.
    fn path(&self) -> PathKind;
    /// Description of the loaded bundle.
    fn info(&self) -> &BundleInfo;
    /// Evaluates an entrypoint with a JSON input; `Ok(None)` is undefined.
    fn evaluate(&self, entrypoint: &str, input_json: &str) -> Result<Option<String>, EvalError>;
    /// [`Self::evaluate`] in at most `budget` (what is left of the request's budget): a
    /// time limit shorter than the path's own applies.
    fn evaluate_within(
        &self,
        entrypoint: &str,
        input_json: &str,
        budget: std::time::Duration,
    ) -> Result<Option<String>, EvalError>;
    /// Evaluates an ad-hoc query; returns the result set as JSON.
    fn query(&self, query: &str, input_json: &str) -> Result<String, EvalError>;
    /// Runs the bundle's `test_*` rules.
    fn run_tests(&self, filter: Option<&str>) -> Result<Vec<TestOutcome>, EvalError>;
}

/// Refuses an input larger than `limits.max_input_bytes` before it reaches an evaluator.
pub fn check_input_size(limits: &crate::config::Limits, input_json: &str) -> Result<(), EvalError> {
    if input_json.len() > limits.max_input_bytes {
        return Err(EvalError::InputRefused(format!(
            "input of {} bytes exceeds the limit of {} bytes",
            input_json.len(),
            limits.max_input_bytes
        )));
    }
    let longest = longest_string(input_json.as_bytes());
    if longest > limits.max_string_bytes {
        return Err(EvalError::InputRefused(format!(
            "input holds a string of {longest} bytes, over the limit of {} bytes",
            limits.max_string_bytes
        )));
    }
    Ok(())
}

/// Length in bytes of the longest string literal in JSON text (escapes counted as written).
fn longest_string(json: &[u8]) -> usize {
    let (mut longest, mut start, mut in_string, mut escaped) = (0, 0, false, false);
    for (i, &b) in json.iter().enumerate() {
        if !in_string {
            if b == b'"' {
                in_string = true;
                start = i + 1;
            }
        } else if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_string = false;
            longest = longest.max(i - start);
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::longest_string;

    #[test]
    fn longest_string_skips_escaped_quotes() {
        assert_eq!(longest_string(br#"{"a":"xy","bb":"q\"uote"}"#), 7);
        assert_eq!(longest_string(b"[1,2,3]"), 0);
    }
}
