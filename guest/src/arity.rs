//! Builtin calls with the wrong number of arguments, refused when a bundle is built, as
//! OPA's type checker does (`rego_type_error: count: arity mismatch`). Regorus checks the
//! arity only when a call is evaluated, so without this a typo in a rarely taken branch
//! would pass `sark build` and fail in production.
//!
//! Calls are found with Regorus's lexer; a call is checked when its name is a builtin
//! (Regorus's own or this crate's) and its first segment is not a rule, function or import
//! of the bundle. The output-argument form (one argument more, `count(xs, n)`) is accepted.

use crate::error::{Location, PolicyError};
use crate::tokens::{call, dotted, is_symbol, lex};
use regorus::unstable::TokenKind;
use std::collections::BTreeSet;

/// Fails with a located `rego_type_error` at the first builtin call of `sources` whose
/// argument count is not the builtin's. `arity` gives the builtins of this crate.
pub(crate) fn check(
    sources: &[(String, String)],
    arity: impl Fn(&str) -> Option<u8>,
) -> Result<(), PolicyError> {
    let lexed: Vec<_> = sources.iter().map(|(p, s)| lex(p, s)).collect();
    // Names the bundle defines at the top of a module: a call rooted there is not a builtin.
    let mut defined: BTreeSet<String> = ["data", "input"].iter().map(|s| s.to_string()).collect();
    for l in &lexed {
        let t = &l.tokens;
        // `name(args) :=` / `=` / `if` / `{` at any column: a function definition (also an
        // indented one, or one the keyword pass moved).
        for (i, tok) in t.iter().enumerate() {
            if tok.0 != TokenKind::Ident || (i > 0 && is_symbol(&t[i - 1], ".")) {
                continue;
            }
            let (name, j) = dotted(t, i);
            let called = j + 1 < t.len() && is_symbol(&t[j + 1], "(");
            if called
                && let Some(close) = call(t, j + 1).map(|c| c.close)
                && matches!(
                    t.get(close + 1).map(|n| n.1.text()),
                    Some(":=" | "=" | "if" | "{")
                )
            {
                defined.insert(name.split('.').next().unwrap_or("").to_string());
            }
        }
        for (i, tok) in t.iter().enumerate() {
            if tok.1.col != 1 || tok.0 != TokenKind::Ident {
                continue;
            }
            match tok.1.text() {
                "package" => {}
                "import" => {
                    // The alias: the statement's last name.
                    let mut j = i + 1;
                    while j + 1 < t.len() && t[j + 1].1.col != 1 {
                        j += 1;
                    }
                    defined.insert(t[j].1.text().to_string());
                }
                "default" if i + 1 < t.len() => {
                    defined.insert(t[i + 1].1.text().to_string());
                }
                name => {
                    defined.insert(name.to_string());
                }
            }
        }
    }
    for ((path, _), l) in sources.iter().zip(&lexed) {
        if !l.complete {
            continue; // the parser reports the lexing error
        }
        let t = &l.tokens;
        let mut i = 0;
        while i < t.len() {
            let starts = t[i].0 == TokenKind::Ident
                && (i == 0 || !is_symbol(&t[i - 1], "."))
                && t[i].1.col != 1;
            if !starts {
                i += 1;
                continue;
            }
            let start = i;
            let (name, j) = dotted(t, i);
            i = j + 1;
            let root = name.split('.').next().unwrap_or("");
            if defined.contains(root) || !(j + 1 < t.len() && is_symbol(&t[j + 1], "(")) {
                continue;
            }
            let Some(want) = arity(&name).or_else(|| {
                regorus::unstable::BUILTINS
                    .get(name.as_str())
                    .map(|(_, n)| *n)
            }) else {
                continue;
            };
            let Some(got) = call(t, j + 1).map(|c| c.arguments(j + 1)) else {
                continue;
            };
            if got != usize::from(want) && got != usize::from(want) + 1 {
                return Err(PolicyError::Compile {
                    message: format!(
                        "rego_type_error: {name}: arity mismatch: takes {want} argument{}, \
                         called with {got}",
                        if want == 1 { "" } else { "s" }
                    ),
                    location: Some(Location {
                        file: path.clone(),
                        row: t[start].1.line,
                        col: t[start].1.col,
                    }),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    fn run(src: &str) -> Result<(), String> {
        check(&[("p.rego".to_string(), src.to_string())], |_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn wrong_arity_is_a_located_type_error() {
        let err = run("package p\n\nx := count([1], [2], [3])\n").unwrap_err();
        assert!(err.contains("p.rego:3:6"), "{err}");
        assert!(
            err.contains("rego_type_error: count: arity mismatch: takes 1 argument, called with 3"),
            "{err}"
        );
        let err = run("package p\n\nx if {\n  time.clock()\n}\n").unwrap_err();
        assert!(
            err.contains("p.rego:4:3") && err.contains("time.clock"),
            "{err}"
        );
    }

    #[test]
    fn right_arity_output_arguments_and_own_functions_pass() {
        run("package p\n\nx := count([1])\ny if { count([1], n); n == 1 }\nz := sprintf(\"%v\", [set()])\n").unwrap();
        run("package p\n\ncount(a, b) := 1\n\nx := count(1, 2)\n").unwrap();
        run("package p\n\n  concat(x) := x\n\ny := concat(1)\n").unwrap();
        run("package p\n\nimport data.lib.time\n\nx := time.clock(1, 2, 3)\n").unwrap();
        run("package p\n\nx := \"count(1, 2, 3)\" # count(1,2,3)\n").unwrap();
    }
}
