//! `rego.metadata.rule()` and `rego.metadata.chain()`: the `# METADATA` annotations of the
//! calling rule, resolved before parsing. Which rule calls them is fixed by where the call is
//! written, and annotations are comments, so each call is replaced by its value as a literal
//! (JSON is Rego): the rule's own annotations, or the chain rule → document → package →
//! subpackages, nearest first, as OPA builds it. Annotations are normalised as OPA does
//! (`scope` filled in, `authors` and `related_resources` strings expanded).

use crate::tokens::{dotted, is_symbol, lex};
use regorus::unstable::TokenKind;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Package-, subpackage- and document-scoped annotations of every module of a bundle, by
/// path (`["a", "b"]` for `data.a.b`).
#[derive(Default)]
pub(crate) struct Annotations {
    packages: BTreeMap<Vec<String>, Value>,
    subpackages: BTreeMap<Vec<String>, Value>,
    documents: BTreeMap<Vec<String>, Value>,
}

/// One `# METADATA` block: its annotations and what follows it.
struct Block {
    annotations: Map<String, Value>,
    /// 0-based line of the package declaration or rule head the block annotates.
    target_line: usize,
}

/// Whether `source` calls `rego.metadata.*` at all (cheap; strings may give false hits).
pub(crate) fn mentioned(source: &str) -> bool {
    source.contains("rego.metadata.")
}

/// One `# METADATA` comment block of a Rego source, before its YAML is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBlock {
    /// 1-based row of the `# METADATA` line.
    pub row: usize,
    /// The block's YAML: the comment lines after the marker, `#` and one space removed.
    pub yaml: String,
    /// 0-based line of what the block annotates: the next non-blank line (may be past the
    /// end).
    pub target_line: usize,
}

/// Every `# METADATA` block of `source`, in order (OPA's annotation syntax).
pub fn metadata_blocks(source: &str) -> Vec<MetadataBlock> {
    let lines: Vec<&str> = source.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "# METADATA" {
            i += 1;
            continue;
        }
        let row = i + 1;
        i += 1;
        let mut yaml = String::new();
        while i < lines.len() && lines[i].trim_start().starts_with('#') {
            let body = lines[i].trim_start().trim_start_matches('#');
            yaml.push_str(body.strip_prefix(' ').unwrap_or(body));
            yaml.push('\n');
            i += 1;
        }
        while i < lines.len() && lines[i].trim().is_empty() {
            i += 1;
        }
        out.push(MetadataBlock {
            row,
            yaml,
            target_line: i,
        });
    }
    out
}

fn blocks(source: &str) -> Vec<Block> {
    let mut out = Vec::new();
    for b in metadata_blocks(source) {
        let parsed = regorus::Value::from_yaml_str(&b.yaml)
            .ok()
            .and_then(|v| serde_json::to_value(&v).ok());
        if let Some(Value::Object(annotations)) = parsed {
            out.push(Block {
                annotations,
                target_line: b.target_line,
            });
        }
    }
    out
}

/// The package path of a module (`package a.b` → `["a", "b"]`).
fn package_of(source: &str) -> Option<Vec<String>> {
    let line = source
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("package "))?;
    let name = line.split('#').next()?.split_whitespace().next()?;
    Some(name.split('.').map(str::to_string).collect())
}

/// The path of the rule whose head is `line` (`default p := 1`, `a.b[x] if …` → `a.b`).
fn rule_path(package: &[String], line: &str) -> Option<Vec<String>> {
    let line = line.trim_start();
    let head = line.strip_prefix("default ").unwrap_or(line).trim_start();
    let name: String = head
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let name = name.trim_end_matches('.');
    if name.is_empty() {
        return None;
    }
    let mut path = package.to_vec();
    path.extend(name.split('.').map(str::to_string));
    Some(path)
}

/// OPA's normal form of an annotation block, with `scope` defaulting to `default`.
fn normalise(mut a: Map<String, Value>, default: &str) -> Map<String, Value> {
    a.entry("scope").or_insert_with(|| json!(default));
    if let Some(Value::Array(authors)) = a.get_mut("authors") {
        for author in authors.iter_mut() {
            if let Value::String(s) = author {
                *author = match s.trim().rsplit_once('<') {
                    Some((name, email)) if email.ends_with('>') => {
                        let mut o = Map::new();
                        if !name.trim().is_empty() {
                            o.insert("name".into(), json!(name.trim()));
                        }
                        o.insert("email".into(), json!(email.trim_end_matches('>')));
                        Value::Object(o)
                    }
                    _ => json!({"name": s.trim()}),
                };
            }
        }
    }
    if let Some(Value::Array(resources)) = a.get_mut("related_resources") {
        for r in resources.iter_mut() {
            if let Value::String(s) = r {
                *r = json!({"ref": s});
            }
        }
    }
    a
}

/// Collects the annotations calls may refer to across `modules` (`(path, source)`).
pub(crate) fn collect<'a>(modules: impl Iterator<Item = &'a str>) -> Annotations {
    let mut all = Annotations::default();
    for source in modules {
        let Some(package) = package_of(source) else {
            continue;
        };
        let lines: Vec<&str> = source.lines().collect();
        for block in blocks(source) {
            let target = lines.get(block.target_line).copied().unwrap_or("");
            let on_package = target.trim_start().starts_with("package ");
            let a = normalise(
                block.annotations,
                if on_package { "package" } else { "rule" },
            );
            match a.get("scope").and_then(Value::as_str) {
                Some("package") => {
                    all.packages
                        .entry(package.clone())
                        .or_insert(Value::Object(a));
                }
                Some("subpackages") => {
                    all.subpackages
                        .entry(package.clone())
                        .or_insert(Value::Object(a));
                }
                Some("document") => {
                    if let Some(path) = rule_path(&package, target) {
                        all.documents.entry(path).or_insert(Value::Object(a));
                    }
                }
                _ => {}
            }
        }
    }
    all
}

/// `source` with its `rego.metadata.rule()` / `rego.metadata.chain()` calls replaced by
/// their values, or `None` when it has none.
pub(crate) fn desugar(path: &str, source: &str, all: &Annotations) -> Option<String> {
    let package = package_of(source)?;
    let tokens = lex(path, source).tokens;
    let lines: Vec<&str> = source.lines().collect();
    let own_blocks = blocks(source);
    let mut edits = Vec::new();
    for i in 0..tokens.len() {
        if !(tokens[i].0 == TokenKind::Ident && tokens[i].1.text() == "rego") {
            continue;
        }
        let (name, j) = dotted(&tokens, i);
        let kind = match name.as_str() {
            "rego.metadata.rule" => "rule",
            "rego.metadata.chain" => "chain",
            _ => continue,
        };
        let (Some(open), Some(close)) = (tokens.get(j + 1), tokens.get(j + 2)) else {
            continue;
        };
        if !is_symbol(open, "(") || !is_symbol(close, ")") {
            continue;
        }
        // The rule the call is written in: the last head at column 1 before it.
        let Some(head) = tokens[..i]
            .iter()
            .rev()
            .find(|t| t.1.col == 1 && t.0 == TokenKind::Ident && t.1.text() != "else")
        else {
            continue;
        };
        let head_line = head.1.line as usize - 1;
        let Some(rule) = rule_path(&package, lines.get(head_line).copied().unwrap_or("")) else {
            continue;
        };
        let own = own_blocks
            .iter()
            .find(|b| b.target_line == head_line)
            .map(|b| normalise(b.annotations.clone(), "rule"))
            .filter(|a| a.get("scope").and_then(Value::as_str) == Some("rule"));
        let value = if kind == "rule" {
            Value::Object(own.unwrap_or_default())
        } else {
            chain(all, &package, &rule, own)
        };
        edits.push((
            tokens[i].1.start as usize,
            close.1.end as usize,
            value.to_string(),
        ));
    }
    if edits.is_empty() {
        return None;
    }
    let mut out = source.to_string();
    for (start, end, text) in edits.into_iter().rev() {
        out.replace_range(start..end, &text);
    }
    Some(out)
}

fn chain(
    all: &Annotations,
    package: &[String],
    rule: &[String],
    own: Option<Map<String, Value>>,
) -> Value {
    let entry = |path: &[String], a: Option<&Value>| {
        let mut e = Map::new();
        e.insert("path".into(), json!(path));
        if let Some(a) = a {
            e.insert("annotations".into(), a.clone());
        }
        Value::Object(e)
    };
    let own = own.map(Value::Object);
    let mut out = vec![entry(rule, own.as_ref())];
    if let Some(doc) = all.documents.get(rule) {
        out.push(entry(rule, Some(doc)));
    }
    if let Some(p) = all.packages.get(package) {
        out.push(entry(package, Some(p)));
    }
    for n in (1..=package.len()).rev() {
        if let Some(s) = all.subpackages.get(&package[..n]) {
            out.push(entry(&package[..n], Some(s)));
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_become_the_calling_rules_annotations() {
        let pkg = "# METADATA\n# description: suite\npackage t\n";
        let src = "package t\n\n# METADATA\n# title: T\n# authors:\n# - Ann <ann@x.io>\np := x if {\n\tx := rego.metadata.chain()\n}\n\nq := rego.metadata.rule()\n";
        let all = collect([pkg, src].into_iter());
        let out = desugar("p.rego", src, &all).expect("rewritten");
        let chain = r#"[{"annotations":{"authors":[{"email":"ann@x.io","name":"Ann"}],"scope":"rule","title":"T"},"path":["t","p"]},{"annotations":{"description":"suite","scope":"package"},"path":["t"]}]"#;
        assert!(out.contains(&format!("x := {chain}\n")), "{out}");
        assert!(out.ends_with("q := {}\n"), "{out}");
        assert_eq!(out.lines().count(), src.lines().count());
    }
}
