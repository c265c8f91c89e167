//! Runs a bundle's Rego unit tests (`test_*` rules), as `opa test` does.

use crate::error::PolicyError;
use crate::policy::PolicySet;
use regorus::Value;
use std::time::Instant;

/// The outcome of one test rule; mirrors the WIT `test-result` record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TestOutcome {
    /// `data.`-prefixed package of the test.
    pub package: String,
    /// Rule name, `test_…`.
    pub name: String,
    /// Module the rule is defined in.
    pub file: String,
    /// True when the rule evaluated to `true`.
    pub passed: bool,
    /// Why it failed: undefined, another value, or an evaluation error.
    pub message: Option<String>,
    /// Wall time of the evaluation in nanoseconds.
    pub duration_ns: u64,
}

/// Line coverage of one module after running tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileCoverage {
    /// Module path.
    pub path: String,
    /// Lines evaluated at least once.
    pub covered: Vec<u32>,
    /// Lines holding expressions that were never evaluated.
    pub not_covered: Vec<u32>,
}

impl PolicySet {
    /// Runs the tests like [`PolicySet::run_tests`] and reports Regorus's line coverage.
    pub fn run_tests_with_coverage(
        &mut self,
        filter: Option<&str>,
    ) -> Result<(Vec<TestOutcome>, Vec<FileCoverage>), PolicyError> {
        self.engine_mut().set_enable_coverage(true);
        self.engine_mut().clear_coverage_data();
        let outcomes = self.run_tests(filter);
        let report = self.engine_mut().get_coverage_report();
        self.engine_mut().set_enable_coverage(false);
        let report =
            report.map_err(|e| PolicyError::Evaluation(format!("coverage report: {e:#}")))?;
        let files = report
            .files
            .into_iter()
            .map(|f| FileCoverage {
                path: f.path,
                covered: f.covered.into_iter().collect(),
                not_covered: f.not_covered.into_iter().collect(),
            })
            .collect();
        Ok((outcomes?, files))
    }

    /// Runs every `test_*` rule whose `package.rule` name matches the regular expression
    /// `filter` (all when `None`), as `opa test --run`. Each test runs without input; `with`
    /// mocking inside the test works as in OPA.
    pub fn run_tests(&mut self, filter: Option<&str>) -> Result<Vec<TestOutcome>, PolicyError> {
        let filter = filter
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| PolicyError::InvalidInput(format!("invalid --run pattern: {e}")))?;
        let mut found: Vec<(String, String, String)> = Vec::new();
        for module in &self.modules {
            let Some(package) = package_of(&module.source) else {
                continue;
            };
            for name in test_rules(&module.source) {
                let entry = (package.clone(), name, module.path.clone());
                if !found.iter().any(|f| f.0 == entry.0 && f.1 == entry.1) {
                    found.push(entry);
                }
            }
        }
        let mut outcomes = Vec::new();
        for (package, name, file) in found {
            let full = format!("{package}.{name}");
            if let Some(f) = &filter
                && !f.is_match(&full)
            {
                continue;
            }
            let engine = self.engine_mut();
            engine.set_input(Value::Undefined);
            let start = Instant::now();
            let result = engine.eval_rule(full.clone());
            let duration_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let (passed, message) = match result {
                Ok(Value::Bool(true)) => (true, None),
                Ok(Value::Undefined) => (false, Some("test rule is undefined".to_string())),
                Ok(other) => (
                    false,
                    Some(format!(
                        "test rule evaluated to {}",
                        serde_json::to_string(&other).unwrap_or_default()
                    )),
                ),
                Err(e) => (false, Some(format!("error: {e:#}"))),
            };
            outcomes.push(TestOutcome {
                package,
                name,
                file,
                passed,
                message,
                duration_ns,
            });
        }
        Ok(outcomes)
    }
}

/// The `data.`-prefixed package of a module, from its `package` line.
fn package_of(source: &str) -> Option<String> {
    source.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("package ")?;
        let name = rest.split('#').next()?.trim();
        Some(format!("data.{name}"))
    })
}

/// Names of rules that start a line with `test_` (rule heads sit at column 1 in Rego style).
fn test_rules(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in source.lines() {
        if !line.starts_with("test_") {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_packages_and_test_rules() {
        let src = "package mcp.gateway_test # tests\n\ntest_a if { true }\ntest_b if true\ntest_a if { 1 == 1 }\nnot_test if true\n";
        assert_eq!(package_of(src).as_deref(), Some("data.mcp.gateway_test"));
        assert_eq!(test_rules(src), vec!["test_a", "test_b"]);
    }
}
