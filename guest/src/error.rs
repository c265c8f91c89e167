//! Typed errors of policy loading and evaluation, mapped from Regorus's diagnostics.

use std::fmt;

/// A position in a policy source file (1-based).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// Path of the module inside the bundle.
    pub file: String,
    /// 1-based line.
    pub row: u32,
    /// 1-based column.
    pub col: u32,
}

/// Every way loading or evaluating a policy can fail; mirrors the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// A module failed to parse or compile.
    Compile {
        /// Full diagnostic with the offending source line.
        message: String,
        /// Position of the error when Regorus reported one.
        location: Option<Location>,
    },
    /// The entrypoint is not a rule, package or data path of the bundle.
    UnknownEntrypoint(String),
    /// The input is not valid JSON or exceeds a limit.
    InvalidInput(String),
    /// Evaluation failed (conflict, builtin error, ...).
    Evaluation(String),
    /// Evaluation exceeded a time, memory or size limit.
    LimitExceeded(String),
    /// The payload is malformed, missing, or a second load was attempted.
    Bundle(String),
}

impl PolicyError {
    /// Short machine-readable kind, used in metrics labels and CLI output.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::Compile { .. } => "compile_error",
            PolicyError::UnknownEntrypoint(_) => "unknown_entrypoint",
            PolicyError::InvalidInput(_) => "invalid_input",
            PolicyError::Evaluation(_) => "evaluation_error",
            PolicyError::LimitExceeded(_) => "limit_exceeded",
            PolicyError::Bundle(_) => "bundle_error",
        }
    }

    /// Builds a compile error from a Regorus diagnostic, extracting `--> file:row:col`.
    pub fn compile(err: &anyhow::Error) -> Self {
        let message = format!("{err:#}");
        let location = parse_location(&message);
        PolicyError::Compile { message, location }
    }

    /// Classifies an evaluation failure: limits become `LimitExceeded`, the rest `Evaluation`.
    pub fn evaluation(err: &anyhow::Error) -> Self {
        let message = format!("{err:#}");
        if err.downcast_ref::<regorus::LimitError>().is_some()
            || message.contains("limit exceeded")
            || message.contains("exceeded time limit")
            || message.contains("exceeded the maximum")
        {
            PolicyError::LimitExceeded(message)
        } else {
            PolicyError::Evaluation(message)
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Compile { message, location } => {
                // Regorus puts the snippet first and `error: <what>` last.
                let what = message
                    .lines()
                    .rev()
                    .find_map(|l| l.trim().strip_prefix("error: "))
                    .unwrap_or(message.trim());
                match location {
                    Some(l) => write!(f, "{}:{}:{}: {what}", l.file, l.row, l.col)?,
                    None => write!(f, "policy compile error: {what}")?,
                }
                if message.contains("-->") {
                    let snippet: Vec<&str> = message
                        .lines()
                        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("-->"))
                        .filter(|l| !l.trim_start().starts_with("error: "))
                        .collect();
                    if !snippet.is_empty() {
                        write!(f, "\n{}", snippet.join("\n"))?;
                    }
                }
                Ok(())
            }
            PolicyError::UnknownEntrypoint(e) => write!(f, "unknown entrypoint `{e}`"),
            PolicyError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            PolicyError::Evaluation(m) => write!(f, "evaluation error: {m}"),
            PolicyError::LimitExceeded(m) => write!(f, "limit exceeded: {m}"),
            PolicyError::Bundle(m) => write!(f, "bundle error: {m}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Finds the first `--> file:row:col` marker that Regorus puts in its diagnostics.
fn parse_location(message: &str) -> Option<Location> {
    let start = message.find("--> ")? + 4;
    let line = message[start..].lines().next()?.trim();
    let mut parts = line.rsplitn(3, ':');
    let col = parts.next()?.parse().ok()?;
    let row = parts.next()?.parse().ok()?;
    let file = parts.next()?.to_string();
    Some(Location { file, row, col })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_parsed_from_regorus_diagnostic() {
        let msg = "\n--> mcp/gateway.rego:12:7\n   |\n12 | allow if {\n   |       ^\nerror: x";
        assert_eq!(
            parse_location(msg),
            Some(Location {
                file: "mcp/gateway.rego".into(),
                row: 12,
                col: 7
            })
        );
        assert_eq!(parse_location("no marker"), None);
    }
}
