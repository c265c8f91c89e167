//! OPA's output-argument call form for the builtins of this module.
//!
//! OPA accepts `f(a, b, out)` as a statement meaning `out = f(a, b)`. Regorus resolves that
//! form only for its own builtins (its scheduler looks arities up in a static table), so for
//! the extensions here the extra argument would be reported as an unsafe variable. Before a
//! module is compiled, such calls are rewritten with Regorus's own lexer to `out = f(a, b)`.
//! Strings, comments and line numbers are preserved; nothing else in the source changes.

use crate::tokens::{call, dotted, is_symbol, lex};
use regorus::unstable::TokenKind;

/// One rewrite: the byte range of the call and its replacement text.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// `source` with output-argument calls of the builtins `arity` knows rewritten, or `None`
/// when there is nothing to rewrite (or the source does not lex; the compiler then reports
/// the error on the original text).
pub(crate) fn output_arguments(
    path: &str,
    source: &str,
    arity: impl Fn(&str) -> Option<u8>,
) -> Option<String> {
    let lexed = lex(path, source);
    if !lexed.complete {
        return None;
    }
    let tokens = lexed.tokens;
    let mut edits = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts_ref =
            tokens[i].0 == TokenKind::Ident && (i == 0 || !is_symbol(&tokens[i - 1], "."));
        if !starts_ref {
            i += 1;
            continue;
        }
        let (name, j) = dotted(&tokens, i);
        let (Some(n), true) = (
            arity(&name),
            j + 1 < tokens.len() && is_symbol(&tokens[j + 1], "("),
        ) else {
            i = j + 1;
            continue;
        };
        let open = j + 1;
        let Some(c) = call(&tokens, open) else {
            break;
        };
        let (close, end, args) = (c.close, c.end(&tokens), c.arguments(open));
        let commas = c.commas;
        if args == usize::from(n) + 1 {
            let last_comma = *commas.last().expect("at least two arguments");
            let span = |k: usize| (tokens[k].1.start as usize, tokens[k].1.end as usize);
            let leading = &source[span(open).1..span(last_comma).0];
            let out = &source[span(last_comma).1..span(end).0];
            let text = format!("{} = {name}({})", out.trim(), leading.trim());
            // Newlines trimmed off the arguments go before the statement, so every line
            // after the call keeps its number.
            let lost =
                source[span(i).0..span(close).1].matches('\n').count() - text.matches('\n').count();
            edits.push(Edit {
                start: span(i).0,
                end: span(close).1,
                text: "\n".repeat(lost) + &text,
            });
            i = close + 1;
        } else {
            i = j + 1;
        }
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = source.to_string();
    for e in edits.iter().rev() {
        out.replace_range(e.start..e.end, &e.text);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::output_arguments;

    fn arity(name: &str) -> Option<u8> {
        (name == "net.cidr_merge" || name == "io.jwt.decode").then_some(1)
    }

    #[test]
    fn rewrites_only_output_argument_calls() {
        let src = "package p\nx if { net.cidr_merge([\"1.1.1.1\"], y)\n y == 1 }\nz := net.cidr_merge([\"a,b\"])\n";
        let out = output_arguments("p.rego", src, arity).expect("rewritten");
        assert_eq!(
            out,
            "package p\nx if { y = net.cidr_merge([\"1.1.1.1\"])\n y == 1 }\nz := net.cidr_merge([\"a,b\"])\n"
        );
    }

    #[test]
    fn keeps_line_numbers_of_multiline_calls() {
        let src = "package p\nx if {\n io.jwt.decode(\n  t,\n  [a, b, c])\n a }\n";
        let out = output_arguments("p.rego", src, arity).expect("rewritten");
        assert_eq!(out.lines().count(), src.lines().count());
        assert!(out.contains("\n\n[a, b, c] = io.jwt.decode(t)"), "{out}");
    }

    #[test]
    fn nested_calls_in_arguments() {
        let src = "package p\np = x {\n  net.cidr_merge(set(), y)\n  x = y\n}\n";
        let out = output_arguments("p.rego", src, arity).expect("rewritten");
        assert!(out.contains("  y = net.cidr_merge(set())\n"), "{out}");
    }

    #[test]
    fn leaves_other_sources_alone() {
        assert!(output_arguments("p.rego", "package p\nx := count([1], y)\n", arity).is_none());
        assert!(
            output_arguments(
                "p.rego",
                "package p\n# net.cidr_merge(a, b)\nx := \"net.cidr_merge(a, b)\"\n",
                arity
            )
            .is_none()
        );
    }
}
