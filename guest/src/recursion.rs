//! Rejects recursive functions at load time, as OPA's compiler does (`rego_recursion_error`).
//!
//! Regorus detects a rule that depends on itself while evaluating, but not a function that
//! calls itself: such a policy recurses until the stack runs out. In the component that is a
//! trap; on the native path it would abort the host. Rule heads start at column 1 (the Rego
//! style `opa fmt` enforces, which the test runner relies on too); a function head is a name
//! followed by `(`. Calls are found with Regorus's own lexer, so strings and comments never
//! count.

use crate::error::{Location, PolicyError};
use crate::tokens::{dotted, is_symbol as sym, lex};
use regorus::unstable::TokenKind;
use std::collections::{BTreeMap, BTreeSet};

struct Function {
    location: Location,
    calls: BTreeSet<String>,
}

fn functions_of(path: &str, source: &str, out: &mut BTreeMap<String, Function>) {
    let tokens = lex(path, source).tokens;
    let mut package = String::new();
    let mut current: Option<String> = None;
    let qualify = |package: &str, name: &str| {
        if name.starts_with("data.") {
            name.to_string()
        } else {
            format!("data.{package}.{name}")
        }
    };
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if t.1.col == 1 && t.0 == TokenKind::Ident {
            if t.1.text() == "package" && i + 1 < tokens.len() {
                let (name, j) = dotted(&tokens, i + 1);
                package = name;
                current = None;
                i = j + 1;
                continue;
            }
            let (name, j) = dotted(&tokens, i);
            current = None;
            if j + 1 < tokens.len()
                && sym(&tokens[j + 1], "(")
                && !["import", "default"].contains(&t.1.text())
            {
                let full = qualify(&package, &name);
                out.entry(full.clone()).or_insert_with(|| Function {
                    location: Location {
                        file: path.to_string(),
                        row: t.1.line,
                        col: t.1.col,
                    },
                    calls: BTreeSet::new(),
                });
                current = Some(full);
            }
            // Skip the head's own name so it is not read as a call.
            i = j + 1;
            continue;
        }
        if t.0 == TokenKind::Ident && (i == 0 || !sym(&tokens[i - 1], ".")) {
            let (name, j) = dotted(&tokens, i);
            if let Some(f) = &current
                && j + 1 < tokens.len()
                && sym(&tokens[j + 1], "(")
            {
                let callee = qualify(&package, &name);
                if let Some(func) = out.get_mut(f) {
                    func.calls.insert(callee);
                }
            }
            i = j + 1;
            continue;
        }
        i += 1;
    }
}

/// Fails with a located `rego_recursion_error` when some function calls itself, directly or
/// through other functions.
pub(crate) fn check(modules: &[(String, String)]) -> Result<(), PolicyError> {
    let mut functions = BTreeMap::new();
    for (path, source) in modules {
        functions_of(path, source, &mut functions);
    }
    // Depth-first search for a cycle among the user's functions.
    fn visit(
        name: &str,
        functions: &BTreeMap<String, Function>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| s == name) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(name.to_string());
            return Some(cycle);
        }
        if done.contains(name) {
            return None;
        }
        stack.push(name.to_string());
        for callee in &functions[name].calls {
            if functions.contains_key(callee)
                && let Some(cycle) = visit(callee, functions, stack, done)
            {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(name.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for name in functions.keys() {
        if let Some(cycle) = visit(name, &functions, &mut Vec::new(), &mut done) {
            let f = &functions[&cycle[0]];
            return Err(PolicyError::Compile {
                message: format!(
                    "rego_recursion_error: function {} is recursive: {}",
                    cycle[0],
                    cycle.join(" -> ")
                ),
                location: Some(f.location.clone()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    fn one(src: &str) -> Result<(), crate::PolicyError> {
        check(&[("p.rego".to_string(), src.to_string())])
    }

    #[test]
    fn direct_and_mutual_recursion_are_refused() {
        let err = one("package p\n\nf(n) := x if {\n\tx := f(n - 1)\n}\n").unwrap_err();
        assert!(err.to_string().contains("data.p.f -> data.p.f"), "{err}");
        let err = one("package p\n\na(n) := b(n)\n\nb(n) := data.p.a(n)\n").unwrap_err();
        assert!(err.to_string().contains("rego_recursion_error"), "{err}");
    }

    #[test]
    fn ordinary_functions_pass() {
        one("package p\n\nf(x) := g(x) + 1\n\ng(x) := count(x)\n\n# f(x) calls f in a comment\ns := \"f(1)\"\n").unwrap();
        // Calling a function of the same name in another package is not recursion.
        one("package p\n\nf(x) := data.q.f(x)\n").unwrap();
    }
}
