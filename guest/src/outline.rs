//! The outline of one module — its package and the names of its rules — for OPA's policy
//! API (`GET /v1/policies`: `ast.package.path` and `ast.rules[].head.name`). Parsed by
//! Regorus after the same source rewrites the evaluator applies.

use crate::error::PolicyError;
use crate::payload::RegoVersion;
use regorus::Engine;
use regorus::unstable::{Expr, Rule, RuleHead};

/// A module's package and rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outline {
    /// The package's keys below `data`, e.g. `["example", "authz"]`.
    pub package: Vec<String>,
    /// The names of the rules the module defines (first key of each rule's head), in
    /// source order, each once.
    pub rules: Vec<String>,
}

/// Parses `source` (a module at `path`, in `version` syntax) into its outline; a module that
/// does not parse is a located `Compile` error.
pub fn outline(path: &str, source: &str, version: RegoVersion) -> Result<Outline, PolicyError> {
    let sources = crate::desugar::module(path, source, &Default::default())?;
    let (path, source) = sources
        .into_iter()
        .next()
        .ok_or_else(|| PolicyError::Bundle("empty module".into()))?;
    let mut engine = Engine::new();
    engine.set_policy_length_config(crate::policy::policy_length_config());
    engine.set_rego_v0(version == RegoVersion::V0);
    let package = engine
        .add_policy(path, source)
        .map_err(|e| PolicyError::compile(&e))?;
    let mut rules: Vec<String> = Vec::new();
    if let Some(module) = engine.get_modules().last() {
        for rule in &module.policy {
            let head = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. }
                    | RuleHead::Set { refr, .. }
                    | RuleHead::Func { refr, .. } => name_of(refr),
                },
                Rule::Default { refr, .. } => name_of(refr),
            };
            if let Some(name) = head.filter(|n| !rules.contains(n)) {
                rules.push(name);
            }
        }
    }
    Ok(Outline {
        package: package
            .strip_prefix("data.")
            .unwrap_or(&package)
            .split('.')
            .map(str::to_string)
            .collect(),
        rules,
    })
}

fn name_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Var { span, .. } => Some(span.text().to_string()),
        Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => name_of(refr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_and_rule_names() {
        let o = outline(
            "a.rego",
            "package example.authz\n\ndefault allow := false\nallow if input.x\nroles contains r if some r in input.r\nf(x) := x\na.b.c := 1\n",
            RegoVersion::V1,
        )
        .unwrap();
        assert_eq!(o.package, vec!["example", "authz"]);
        assert_eq!(o.rules, vec!["allow", "roles", "f", "a"]);
        let v0 = outline("b.rego", "package p\nallow { true }\n", RegoVersion::V0).unwrap();
        assert_eq!(v0.rules, vec!["allow"]);
        let e = outline("c.rego", "package p\nallow { true }\n", RegoVersion::V1).unwrap_err();
        assert_eq!(e.kind(), "compile_error");
    }
}
