//! Keywords as the first term of a reference (`if.foo`, `else.bar(1)`, `true.x := 1`), which
//! OPA 1.x accepts and Regorus 0.14 refuses ("unexpected keyword"). Regorus does accept
//! keywords after a dot and in package and import paths, so:
//!
//! - a body reference `if.foo` (in package `p`) becomes `K0.foo`, an alias of the same length
//!   imported on the package line (`import data.p.if as K0`);
//! - a rule whose head starts with a keyword (`if.foo := 1`, `default if.foo(_) := 42`) moves
//!   to a module of its own, `package p.if`, at the same rows, with the root replaced by
//!   spaces (`   foo := 1`). That module imports what the original one did, the aliases, and
//!   the original module's rules (`import data.p.q`), so its bodies see the same names. Its
//!   path is the original's with `#if` appended, which is where its errors point.
//!
//! Rule heads are recognised at column 1, as `opa fmt` writes them.

use crate::tokens::{is_symbol, lex};
use regorus::unstable::{Token, TokenKind};
use std::collections::{BTreeMap, BTreeSet};

/// Words Regorus refuses as the root of a reference in Rego v1.
const KEYWORDS: &[&str] = &[
    "as", "contains", "default", "else", "every", "false", "if", "import", "in", "not", "null",
    "package", "some", "true", "with",
];

fn is_keyword(t: &Token) -> bool {
    t.0 == TokenKind::Ident && KEYWORDS.contains(&t.1.text())
}

/// Whether `tokens[i]` is immediately followed by `.` and a name: the root of a reference.
fn is_root(tokens: &[Token], i: usize) -> bool {
    let (Some(dot), Some(field)) = (tokens.get(i + 1), tokens.get(i + 2)) else {
        return false;
    };
    is_symbol(dot, ".")
        && dot.1.start == tokens[i].1.end
        && field.0 == TokenKind::Ident
        && field.1.start == dot.1.end
        && (i == 0 || !is_symbol(&tokens[i - 1], "."))
}

/// Byte range of a token; a string's includes its quotes (Regorus's span does not).
fn span(t: &Token) -> (usize, usize) {
    let quoted = matches!(t.0, TokenKind::String | TokenKind::RawString);
    let q = usize::from(quoted);
    (t.1.start as usize - q, t.1.end as usize + q)
}

/// Blanks `text`: every character but a newline becomes as many spaces as it has bytes, so
/// byte offsets into the text stay valid (and rows with them).
fn blank(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' {
            out.push('\n');
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    out
}

/// The module rewritten, plus the modules for keyword-rooted rules as `(path, source)`;
/// `None` when there is nothing to rewrite (or the source does not lex: the parser reports).
pub(crate) fn desugar(path: &str, source: &str) -> Option<(String, Vec<(String, String)>)> {
    let lexed = lex(path, source);
    if !lexed.complete {
        return None;
    }
    let tokens = lexed.tokens;
    if !tokens
        .iter()
        .enumerate()
        .any(|(i, t)| is_keyword(t) && is_root(&tokens, i))
    {
        return None;
    }
    // The package declaration.
    let pkg = tokens.iter().position(|t| t.1.text() == "package")?;
    let mut pkg_last = pkg + 1;
    while pkg_last + 2 < tokens.len() && is_symbol(&tokens[pkg_last + 1], ".") {
        pkg_last += 2;
    }
    let package = source[span(tokens.get(pkg + 1)?).0..span(tokens.get(pkg_last)?).1].to_string();
    let pkg_end = span(&tokens[pkg_last]).1;

    // Statements at column 1: imports and rules, as token index ranges.
    let starts: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            *i > pkg_last
                && t.1.col == 1
                && t.0 == TokenKind::Ident
                && (t.1.text() != "else" || is_root(&tokens, *i))
        })
        .map(|(i, _)| i)
        .collect();
    let mut imports = Vec::new();
    let mut import_names = BTreeSet::new();
    let mut rules = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(tokens.len()) - 1;
        if tokens[s].1.text() == "import" && !is_root(&tokens, s) {
            let text = &source[span(&tokens[s]).0..span(&tokens[end]).1];
            imports.push(text.split_whitespace().collect::<Vec<_>>().join(" "));
            let name = tokens[end].1.text();
            import_names.insert(name.to_string());
        } else {
            rules.push((s, end));
        }
    }

    // Rules whose head is rooted at a keyword, by keyword; the other rules' names.
    let mut moved: BTreeMap<String, Vec<(usize, usize, usize)>> = BTreeMap::new();
    let mut names = BTreeSet::new();
    for &(s, end) in &rules {
        let h = if tokens[s].1.text() == "default" && !is_root(&tokens, s) {
            s + 1
        } else {
            s
        };
        if h > end || h >= tokens.len() {
            continue;
        }
        if is_keyword(&tokens[h]) && is_root(&tokens, h) {
            moved
                .entry(tokens[h].1.text().to_string())
                .or_default()
                .push((s, h, end));
        } else if tokens[h].0 == TokenKind::Ident {
            names.insert(tokens[h].1.text().to_string());
        }
    }
    let heads: BTreeSet<usize> = moved.values().flatten().map(|&(_, h, _)| h).collect();

    // Body references rooted at a keyword, each renamed to an alias of its length.
    let used: BTreeSet<&str> = tokens
        .iter()
        .filter(|t| t.0 == TokenKind::Ident)
        .map(|t| t.1.text())
        .collect();
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    let mut renames = Vec::new();
    for (i, t) in tokens.iter().enumerate().skip(pkg_last + 1) {
        if !is_keyword(t) || !is_root(&tokens, i) || heads.contains(&i) || t.1.col == 1 {
            continue;
        }
        let kw = t.1.text().to_string();
        let taken: BTreeSet<String> = aliases.values().cloned().collect();
        let alias = match aliases.get(&kw) {
            Some(a) => a.clone(),
            None => {
                // No free identifier of that length: leave the module to the parser.
                let a = alias_for(&kw, &used, &taken)?;
                aliases.insert(kw.clone(), a.clone());
                a
            }
        };
        renames.push((span(t), alias));
    }
    let alias_imports: Vec<String> = aliases
        .iter()
        .map(|(kw, alias)| format!("import data.{package}.{kw} as {alias}"))
        .collect();

    // The module itself: aliases in, moved rules blanked out, alias imports on its
    // package line.
    let mut renamed = source.to_string();
    for ((start, end), alias) in renames.iter().rev() {
        renamed.replace_range(*start..*end, alias);
    }
    let mut main = renamed.clone();
    for &(s, _, end) in moved.values().flatten() {
        let (a, b) = (span(&tokens[s]).0, span(&tokens[end]).1);
        let blanked = blank(&main[a..b]);
        main.replace_range(a..b, &blanked);
    }
    let mut header_imports = String::new();
    for i in &alias_imports {
        header_imports.push(' ');
        header_imports.push_str(i);
    }
    main.insert_str(pkg_end, &header_imports);

    // One module per keyword for the rules rooted at it.
    let mut extra = Vec::new();
    for (kw, rules_of_kw) in &moved {
        let mut text = blank(&renamed);
        let own: BTreeSet<&str> = rules_of_kw
            .iter()
            .map(|&(_, h, _)| tokens[h + 2].1.text())
            .collect();
        for &(s, h, end) in rules_of_kw {
            let (a, b) = (span(&tokens[s]).0, span(&tokens[end]).1);
            text.replace_range(a..b, &renamed[a..b]);
            // The keyword root and its dot become spaces.
            let (ra, rb) = (span(&tokens[h]).0, span(&tokens[h + 1]).1);
            text.replace_range(ra..rb, &" ".repeat(rb - ra));
        }
        let mut header = format!("package {package}.{kw}");
        for i in imports.iter().chain(&alias_imports) {
            header.push(' ');
            header.push_str(i);
        }
        for name in names.iter().filter(|n| {
            !own.contains(n.as_str())
                && !import_names.contains(*n)
                && !KEYWORDS.contains(&n.as_str())
        }) {
            header.push_str(&format!(" import data.{package}.{name}"));
        }
        let pkg_start = span(&tokens[pkg]).0;
        text.replace_range(pkg_start..pkg_end, &header);
        extra.push((format!("{path}#{kw}"), text));
    }
    Some((main, extra))
}

/// An identifier as long as `kw` that the module does not use and that is not taken: an
/// upper-case letter, then letters and digits; `None` when every one is used.
fn alias_for(kw: &str, used: &BTreeSet<&str>, taken: &BTreeSet<String>) -> Option<String> {
    const FIRST: &[u8] = b"KQXZJVWYUPRSTOLMNHIGFEDCBA";
    const REST: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let len = kw.len();
    let tail_len = len - 1;
    let tails = REST
        .len()
        .checked_pow(tail_len as u32)
        .unwrap_or(usize::MAX);
    for &first in FIRST {
        for n in 0..tails.min(1 << 16) {
            let mut name = String::with_capacity(len);
            name.push(first as char);
            let mut rest = n;
            for _ in 0..tail_len {
                name.push(REST[rest % REST.len()] as char);
                rest /= REST.len();
            }
            if !used.contains(name.as_str()) && !taken.contains(&name) {
                return Some(name);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::desugar;

    #[test]
    fn body_refs_use_an_alias_of_the_same_length() {
        let src = "package test\n\np if {\n  if.foo == 1\n  x.if == 2\n}\n";
        let (main, extra) = desugar("p.rego", src).expect("rewritten");
        assert!(extra.is_empty());
        assert_eq!(
            main,
            "package test import data.test.if as K0\n\np if {\n  K0.foo == 1\n  x.if == 2\n}\n"
        );
    }

    #[test]
    fn keyword_rooted_rules_move_to_their_own_package() {
        let src = "package test\nimport rego.v1\n\np if if.foo == 1\n\nq := 2\n\ndefault if.foo := 0\nif.foo := 1 if {\n  q == 2\n} else := 3\n";
        let (main, extra) = desugar("p.rego", src).expect("rewritten");
        assert_eq!(main.lines().count(), src.lines().count());
        assert!(!main.contains(":= 1 if"), "{main}");
        assert!(main.contains("q := 2"), "{main}");
        let [(path, moved)] = extra.as_slice() else {
            panic!("{extra:?}")
        };
        assert_eq!(path, "p.rego#if");
        assert_eq!(moved.lines().count(), src.lines().count());
        let first = moved.lines().next().unwrap();
        assert_eq!(
            first,
            "package test.if import rego.v1 import data.test.if as K0 import data.test.p import data.test.q"
        );
        assert!(
            moved.contains("\ndefault    foo := 0\n   foo := 1 if {\n  q == 2\n} else := 3\n"),
            "{moved}"
        );
        assert!(!moved.contains("q := 2"), "{moved}");
    }

    #[test]
    fn rules_ending_in_strings_and_else_rooted_rules_move_whole() {
        let src = "package t\n\np if else.foo == {\"a\"}\n\nelse.foo contains \"a\"\n";
        let (main, extra) = desugar("p.rego", src).expect("rewritten");
        assert!(!main.contains('"') || main.contains("{\"a\"}"), "{main}");
        assert!(!main.contains("contains"), "{main}");
        assert!(
            extra[0].1.ends_with("\n     foo contains \"a\"\n"),
            "{:?}",
            extra[0].1
        );
    }

    #[test]
    fn multi_byte_characters_before_a_moved_rule_keep_offsets() {
        let src = "package t\n\n# © naïve\nx := \"é\"\n\np if if.foo == 1\n\nif.foo := 1\n";
        let (main, extra) = desugar("p.rego", src).expect("rewritten");
        assert_eq!(main.len(), src.len() + " import data.t.if as K0".len());
        assert!(main.contains("x := \"é\""), "{main}");
        assert!(extra[0].1.ends_with("\n   foo := 1\n"), "{:?}", extra[0].1);
        // Truncated sources do not panic.
        let _ = desugar("p.rego", "package t\np if if.x\ndefault");
        let _ = desugar("p.rego", "package if.x");
        assert!(desugar("p.rego", "p if if.x\n").is_none());
    }

    #[test]
    fn other_sources_are_left_alone() {
        assert!(
            desugar(
                "p.rego",
                "package p\ndefault allow := false\nx := \"if.foo\" # if.x\n"
            )
            .is_none()
        );
        assert!(
            desugar(
                "p.rego",
                "package p.if.q\nimport data.a.if as b\nx := b.y\n"
            )
            .is_none()
        );
    }
}
