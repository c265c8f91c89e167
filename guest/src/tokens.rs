//! Rego sources as Regorus's own tokens, for the checks and rewrites that run before a
//! module is parsed (nesting limits, recursion, output arguments). Using the real lexer
//! means strings and comments never look like code.

use regorus::Source;
use regorus::unstable::{Lexer, Token, TokenKind};

/// The tokens of a source, up to its end or its first lexing error.
pub(crate) struct Lexed {
    /// Tokens before the end (or the error), without the final `Eof`.
    pub tokens: Vec<Token>,
    /// Whether the whole source lexed.
    pub complete: bool,
}

/// Lexes `source` (named `path` in locations). Long lines are allowed: the column limit is
/// the parser's concern, not the pre-checks'.
pub(crate) fn lex(path: &str, source: &str) -> Lexed {
    let Ok(src) = Source::from_contents(path.to_string(), source.to_string()) else {
        return Lexed {
            tokens: Vec::new(),
            complete: false,
        };
    };
    let mut lexer = Lexer::new(&src);
    lexer.set_max_col(core::num::NonZeroU32::MAX);
    let mut tokens = Vec::new();
    loop {
        match lexer.next_token() {
            Ok(t) if t.0 == TokenKind::Eof => {
                return Lexed {
                    tokens,
                    complete: true,
                };
            }
            Ok(t) => tokens.push(t),
            Err(_) => {
                return Lexed {
                    tokens,
                    complete: false,
                };
            }
        }
    }
}

/// Whether `t` is `set(`, which Regorus's lexer reads as one token when `)` follows (the
/// empty set); the `)` is a token of its own.
pub(crate) fn is_empty_set(t: &Token) -> bool {
    t.0 == TokenKind::Ident && t.1.text() == "set("
}

/// A call's parenthesised argument list, as token indices.
pub(crate) struct Call {
    /// The closing `)`.
    pub close: usize,
    /// The top-level commas, without a trailing one.
    pub commas: Vec<usize>,
}

impl Call {
    /// The number of arguments (a trailing comma does not start another one).
    pub fn arguments(&self, open: usize) -> usize {
        if self.close == open + 1 {
            0
        } else {
            self.commas.len() + 1
        }
    }

    /// The token that ends the last argument: a trailing comma, or the `)`.
    pub fn end(&self, tokens: &[Token]) -> usize {
        if is_symbol(&tokens[self.close - 1], ",") {
            self.close - 1
        } else {
            self.close
        }
    }
}

/// The call whose `(` is `tokens[open]`: its matching `)` and top-level commas; `None` when
/// it does not close.
pub(crate) fn call(tokens: &[Token], open: usize) -> Option<Call> {
    let mut depth = 0usize;
    let mut commas = Vec::new();
    for (k, t) in tokens.iter().enumerate().skip(open) {
        if is_empty_set(t) {
            // `set(` is one token; its `)` follows.
            depth += 1;
            continue;
        }
        if t.0 != TokenKind::Symbol {
            continue;
        }
        match t.1.text() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    if commas.last() == Some(&(k - 1)) {
                        commas.pop();
                    }
                    return Some(Call { close: k, commas });
                }
            }
            "," if depth == 1 => commas.push(k),
            _ => {}
        }
    }
    None
}

/// Whether `t` is the symbol `s`.
pub(crate) fn is_symbol(t: &Token, s: &str) -> bool {
    t.0 == TokenKind::Symbol && t.1.text() == s
}

/// The dotted name starting at `tokens[i]` (`a.b.c`): its text and the index of its last
/// token.
pub(crate) fn dotted(tokens: &[Token], i: usize) -> (String, usize) {
    let mut name = tokens[i].1.text().to_string();
    let mut j = i;
    while j + 2 < tokens.len()
        && is_symbol(&tokens[j + 1], ".")
        && tokens[j + 2].0 == TokenKind::Ident
    {
        name.push('.');
        name.push_str(tokens[j + 2].1.text());
        j += 2;
    }
    (name, j)
}

#[cfg(test)]
mod tests {
    use super::{dotted, lex};

    #[test]
    fn strings_and_comments_are_single_tokens() {
        let lexed = lex("p.rego", "x := \"f(a, b)\" # g(c)\ny := data.a.b.c(1)\n");
        assert!(lexed.complete);
        let texts: Vec<&str> = lexed.tokens.iter().map(|t| t.1.text()).collect();
        assert!(!texts.contains(&"f"), "{texts:?}");
        assert!(!texts.contains(&"g"), "{texts:?}");
        let at = texts.iter().position(|t| *t == "data").unwrap();
        let (name, last) = dotted(&lexed.tokens, at);
        assert_eq!(name, "data.a.b.c");
        assert_eq!(lexed.tokens[last + 1].1.text(), "(");
    }

    #[test]
    fn a_lexing_error_keeps_the_tokens_before_it() {
        let lexed = lex("p.rego", "a := [[[\n b := \"unterminated\n");
        assert!(!lexed.complete);
        let brackets = lexed.tokens.iter().filter(|t| t.1.text() == "[").count();
        assert_eq!(brackets, 3);
    }
}
