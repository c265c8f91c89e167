//! Source shapes that Regorus's parser cannot handle in bounded time.
//!
//! Found by fuzzing the loader: for some shapes (arrays in arrays, `input.u[[[…`) the
//! parser's time doubles with each level of bracket nesting (20 levels take about 1.5 s, 24
//! about 35 s, 150 do not finish), so a few hundred bytes of policy could stall `sark build`
//! or the loader. Policies rarely nest brackets deeply (the deepest of OPA's 2,067
//! compliance cases nests 17 levels; large documents belong in data), so a module nesting
//! deeper than [`MAX_NESTING`] is refused with its location before it is parsed.

use crate::error::{Location, PolicyError};
use crate::tokens::lex;
use regorus::unstable::TokenKind;

/// Deepest bracket nesting accepted in a module.
pub const MAX_NESTING: usize = 20;

/// Fails with a located `Compile` error when `source` nests brackets deeper than
/// [`MAX_NESTING`]. Sources that do not lex are left to the parser's own error.
pub(crate) fn check(path: &str, source: &str) -> Result<(), PolicyError> {
    let mut depth = 0usize;
    // Up to the first lexing error: the parser reads that far before it reports it.
    for t in lex(path, source).tokens {
        match (t.0, t.1.text()) {
            (TokenKind::Symbol, "[" | "{" | "(") | (TokenKind::Ident, "set(") => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(PolicyError::Compile {
                        message: format!(
                            "brackets nest deeper than {MAX_NESTING} levels; move large \
                             documents to data"
                        ),
                        location: Some(Location {
                            file: path.to_string(),
                            row: t.1.line,
                            col: t.1.col,
                        }),
                    });
                }
            }
            (TokenKind::Symbol, "]" | "}" | ")") => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MAX_NESTING, check};

    #[test]
    fn deep_nesting_is_refused_quickly() {
        // 150 unclosed brackets: the fuzzer's input, which Regorus does not finish parsing.
        let src = format!("package p\n\nallow if input.u{}ser == 1\n", "[".repeat(150));
        let err = check("p.rego", &src).unwrap_err();
        assert!(err.to_string().contains("nest deeper than 20"), "{err}");
        let at_limit = format!(
            "package p\n\nx := {}1{}\n",
            "[".repeat(MAX_NESTING - 1),
            "]".repeat(MAX_NESTING - 1)
        );
        check("p.rego", &at_limit).unwrap();
        // Brackets in strings and comments do not count.
        let quoted = format!(
            "package p\n\n# {}\nx := \"{}\"\n",
            "[".repeat(40),
            "{".repeat(40)
        );
        check("p.rego", &quoted).unwrap();
    }
}
