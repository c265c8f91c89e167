//! String interpolation, `$"… {expr} …"` and `` $`… {expr} …` `` (OPA 1.12), which Regorus
//! 0.14 does not parse, desugared before parsing into a call of the evaluator's
//! `internal.template_string` builtin:
//!
//! ```text
//! $"user {input.name} is {count(x)}"
//! internal.template_string(["user ", [__sark_tpl0 | __sark_tpl0 := input.name], " is ", [__sark_tpl1 | __sark_tpl1 := count(x)]])
//! ```
//!
//! Each expression becomes an array comprehension, so an undefined expression yields `[]`
//! (printed `<undefined>`, as OPA does) instead of making the whole string undefined, and
//! an error inside it still fails the evaluation. Literal parts keep their escapes (`\{` is a
//! literal `{`); a multi-line template's parts become raw strings with the same newlines,
//! so every line keeps its number. Tokens after a template on its own last line move right.

/// Name of the builtin the desugared form calls.
pub(crate) const TEMPLATE_BUILTIN: &str = "internal.template_string";

/// A template string that does not end: its 1-based row and column and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unterminated {
    pub row: u32,
    pub col: u32,
    pub message: &'static str,
}

/// `source` with every template string desugared, or `None` when it has none. Strings,
/// raw strings and comments are skipped, so `"$\"…"` or `# $"…"` are left alone.
pub(crate) fn desugar(source: &str) -> Result<Option<String>, Unterminated> {
    if !source.contains("$\"") && !source.contains("$`") {
        return Ok(None);
    }
    let mut s = Scanner {
        src: source,
        i: 0,
        counter: 0,
        found: false,
        depth: 0,
    };
    let out = s.code(None)?;
    Ok(s.found.then_some(out))
}

struct Scanner<'a> {
    src: &'a str,
    i: usize,
    counter: usize,
    found: bool,
    /// Templates open around the current position (the scanner recurses per template).
    depth: usize,
}

impl Scanner<'_> {
    fn byte(&self, i: usize) -> Option<u8> {
        self.src.as_bytes().get(i).copied()
    }

    /// Row and column (1-based, in characters) of byte offset `at`.
    fn position(&self, at: usize) -> (u32, u32) {
        let before = &self.src[..at];
        let row = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let col = before[line_start..].chars().count() + 1;
        (row as u32, col as u32)
    }

    fn error(&self, at: usize, message: &'static str) -> Unterminated {
        let (row, col) = self.position(at);
        Unterminated { row, col, message }
    }

    /// Copies code from the current position, desugaring templates, up to the end of the
    /// source or, inside a template expression (`expr_start` is its `{`), up to the
    /// unmatched `}` (left unconsumed).
    fn code(&mut self, expr_start: Option<usize>) -> Result<String, Unterminated> {
        let mut out = String::new();
        let mut start = self.i;
        let mut depth = 0usize;
        while let Some(c) = self.byte(self.i) {
            match c {
                b'#' => {
                    while self.byte(self.i).is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                    continue;
                }
                b'"' => {
                    self.i += 1;
                    while let Some(c) = self.byte(self.i) {
                        self.i += if c == b'\\' { 2 } else { 1 };
                        if c == b'"' || c == b'\n' {
                            break;
                        }
                    }
                    continue;
                }
                b'`' => {
                    self.i += 1;
                    while self.byte(self.i).is_some_and(|c| c != b'`') {
                        self.i += 1;
                    }
                    self.i += 1;
                    continue;
                }
                b'$' if matches!(self.byte(self.i + 1), Some(b'"' | b'`')) => {
                    out.push_str(&self.src[start..self.i]);
                    let desugared = self.template()?;
                    out.push_str(&desugared);
                    start = self.i;
                    continue;
                }
                b'{' => depth += 1,
                b'}' if depth == 0 && expr_start.is_some() => {
                    out.push_str(&self.src[start..self.i]);
                    return Ok(out);
                }
                b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            self.i += 1;
        }
        if let Some(at) = expr_start {
            return Err(self.error(at, "template expression is missing its `}`"));
        }
        out.push_str(&self.src[start.min(self.src.len())..]);
        Ok(out)
    }

    /// Desugars the template string at the current `$`.
    fn template(&mut self) -> Result<String, Unterminated> {
        self.found = true;
        let dollar = self.i;
        if self.depth >= crate::source_limits::MAX_NESTING {
            return Err(self.error(dollar, "template strings nest too deeply"));
        }
        self.depth += 1;
        let out = self.template_body(dollar);
        self.depth -= 1;
        out
    }

    /// The template string whose `$` is at `dollar` (the current position).
    fn template_body(&mut self, dollar: usize) -> Result<String, Unterminated> {
        let quote = self.byte(self.i + 1).expect("checked by the caller");
        self.i += 2;
        let literal = |chunk: &str| {
            let q = quote as char;
            format!("{q}{chunk}{q}")
        };
        let mut parts: Vec<String> = Vec::new();
        let mut chunk = String::new();
        loop {
            let Some(c) = self.byte(self.i) else {
                return Err(self.error(dollar, "template string is not terminated"));
            };
            match c {
                _ if c == quote => {
                    self.i += 1;
                    break;
                }
                b'\n' if quote == b'"' => {
                    return Err(self.error(dollar, "template string is not terminated"));
                }
                b'\\' if self.byte(self.i + 1) == Some(b'{') => {
                    chunk.push('{');
                    self.i += 2;
                }
                b'\\' if quote == b'"' => {
                    // Other escapes stay as they are: the part is a string literal.
                    let next = self.src[self.i + 1..].chars().next();
                    chunk.push('\\');
                    self.i += 1;
                    if let Some(n) = next {
                        chunk.push(n);
                        self.i += n.len_utf8();
                    }
                }
                b'{' => {
                    if !chunk.is_empty() {
                        parts.push(literal(&chunk));
                        chunk.clear();
                    }
                    let open = self.i;
                    self.i += 1;
                    let expr = self.code(Some(open))?;
                    self.i += 1; // the `}`
                    let var = format!("__sark_tpl{}", self.counter);
                    self.counter += 1;
                    parts.push(format!("[{var} | {var} := {expr}]"));
                }
                _ => {
                    let ch = self.src[self.i..].chars().next().expect("in bounds");
                    chunk.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
        if !chunk.is_empty() {
            parts.push(literal(&chunk));
        }
        Ok(format!("{TEMPLATE_BUILTIN}([{}])", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::desugar;

    #[test]
    fn expressions_become_comprehensions() {
        let out = desugar("p := $\"a {x} b \\{c} {\"}\"}\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "p := internal.template_string([\"a \", [__sark_tpl0 | __sark_tpl0 := x], \" b {c} \", [__sark_tpl1 | __sark_tpl1 := \"}\"]])\n"
        );
    }

    #[test]
    fn nested_templates_and_comprehensions() {
        let out = desugar("p := $\"{$\"{a}\"} {{k: v | some k, v in o}}\"")
            .unwrap()
            .unwrap();
        assert!(out.contains("[__sark_tpl1 | __sark_tpl1 := internal.template_string([[__sark_tpl0 | __sark_tpl0 := a]])]"), "{out}");
        assert!(out.contains(":= {k: v | some k, v in o}]"), "{out}");
    }

    #[test]
    fn multi_line_templates_keep_their_lines() {
        let src = "p := $`{42},\n{true}\n`\nq := 1\n";
        let out = desugar(src).unwrap().unwrap();
        assert_eq!(out.lines().count(), src.lines().count());
        assert!(out.ends_with("\nq := 1\n"), "{out}");
        assert!(out.contains("`,\n`"), "{out}");
    }

    #[test]
    fn strings_and_comments_are_not_templates() {
        assert_eq!(desugar("p := \"$\\\"{x}\" # $\"{y}\"\n").unwrap(), None);
        assert_eq!(desugar("p := `$\"{x}`\n").unwrap(), None);
    }

    #[test]
    fn deeply_nested_templates_are_refused_not_overflowed() {
        let src = format!("x := {}{}", "$\"{".repeat(100_000), "}\"".repeat(100_000));
        let e = desugar(&src).unwrap_err();
        assert_eq!(e.message, "template strings nest too deeply");
    }

    #[test]
    fn unterminated_templates_are_located() {
        let e = desugar("package p\nx := $\"abc {y}\n").unwrap_err();
        assert_eq!((e.row, e.col), (2, 6));
        let e = desugar("package p\nx := $\"abc {y\"").unwrap_err();
        assert_eq!((e.row, e.col), (2, 12));
    }
}
