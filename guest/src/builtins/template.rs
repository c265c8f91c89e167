//! `strings.render_template(template, vars)`: the part of Go's `text/template` that policies
//! use — `{{.field.path}}`, `{{$var}}`, `{{if}}`/`{{else}}`/`{{end}}`,
//! `{{range [$i,] [$v :=] pipeline}}`, comments and `{{-`/`-}}` trimming. A missing field
//! renders as `<undefined>`, as in OPA.

use super::{Builtin, string_arg, to_json};
use anyhow::{Context, Result, bail};
use regorus::Value;
use serde_json::Value as Json;
use std::collections::HashMap;

pub(super) const BUILTINS: &[Builtin] = &[("strings.render_template", 2, render_template)];

/// A reference: the dot or a variable, then fields.
#[derive(Debug, Clone)]
struct Path {
    var: Option<String>,
    fields: Vec<String>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Print(Path),
    If(Path, Vec<Node>, Vec<Node>),
    Range {
        key: Option<String>,
        value: Option<String>,
        over: Path,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

/// Splits the template into text and action tokens, applying trim markers.
fn lex(src: &str) -> Result<Vec<(bool, String)>> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut rest = src;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        let after = &rest[start + 2..];
        let trim_left = after.starts_with('-') && after[1..].starts_with(char::is_whitespace);
        let end = after.find("}}").context("unclosed action")?;
        let mut action = &after[..end];
        let trim_right =
            action.ends_with('-') && action[..action.len() - 1].ends_with(char::is_whitespace);
        if trim_left {
            action = &action[1..];
            text = text.trim_end().to_string();
        }
        if trim_right {
            action = &action[..action.len() - 1];
        }
        out.push((false, text));
        out.push((true, action.trim().to_string()));
        rest = &after[end + 2..];
        if trim_right {
            rest = rest.trim_start();
        }
    }
    out.push((false, rest.to_string()));
    Ok(out)
}

fn parse_path(s: &str) -> Result<Path> {
    let s = s.trim();
    let (var, rest) = if let Some(v) = s.strip_prefix('$') {
        let end = v.find('.').unwrap_or(v.len());
        (Some(v[..end].to_string()), &v[end..])
    } else if s.starts_with('.') {
        (None, s)
    } else {
        bail!("unsupported template expression {s:?}");
    };
    let fields = rest
        .split('.')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    Ok(Path { var, fields })
}

/// Parses nodes until `{{end}}` / `{{else}}` (returned as the terminator) or the end.
fn parse(tokens: &[(bool, String)], pos: &mut usize) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let (is_action, text) = &tokens[*pos];
        *pos += 1;
        if !is_action {
            if !text.is_empty() {
                nodes.push(Node::Text(text.clone()));
            }
            continue;
        }
        let action = text.as_str();
        if action.starts_with("/*") {
            continue;
        }
        if action == "end" || action == "else" {
            return Ok((nodes, Some(action.to_string())));
        }
        if let Some(cond) = action.strip_prefix("if ") {
            let cond = parse_path(cond)?;
            let (body, term) = parse(tokens, pos)?;
            let otherwise = if term.as_deref() == Some("else") {
                parse(tokens, pos)?.0
            } else {
                Vec::new()
            };
            nodes.push(Node::If(cond, body, otherwise));
        } else if let Some(spec) = action.strip_prefix("range ") {
            let (vars, over) = match spec.split_once(":=") {
                Some((vars, over)) => (vars.trim(), over),
                None => ("", spec),
            };
            let names: Vec<String> = vars
                .split(',')
                .map(|v| v.trim().trim_start_matches('$').to_string())
                .filter(|v| !v.is_empty())
                .collect();
            let (key, value) = match names.as_slice() {
                [] => (None, None),
                [v] => (None, Some(v.clone())),
                [k, v] => (Some(k.clone()), Some(v.clone())),
                _ => bail!("too many range variables"),
            };
            let over = parse_path(over)?;
            let (body, term) = parse(tokens, pos)?;
            let otherwise = if term.as_deref() == Some("else") {
                parse(tokens, pos)?.0
            } else {
                Vec::new()
            };
            nodes.push(Node::Range {
                key,
                value,
                over,
                body,
                otherwise,
            });
        } else {
            nodes.push(Node::Print(parse_path(action)?));
        }
    }
    Ok((nodes, None))
}

struct Scope<'a> {
    dot: Json,
    vars: &'a HashMap<String, Json>,
}

fn resolve(path: &Path, scope: &Scope<'_>) -> Option<Json> {
    let mut v = match &path.var {
        Some(name) => scope.vars.get(name)?.clone(),
        None => scope.dot.clone(),
    };
    for f in &path.fields {
        v = v.get(f)?.clone();
    }
    Some(v)
}

fn truthy(v: &Option<Json>) -> bool {
    match v {
        None | Some(Json::Null) | Some(Json::Bool(false)) => false,
        Some(Json::Number(n)) => n.as_f64() != Some(0.0),
        Some(Json::String(s)) => !s.is_empty(),
        Some(Json::Array(a)) => !a.is_empty(),
        Some(Json::Object(o)) => !o.is_empty(),
        Some(Json::Bool(true)) => true,
    }
}

/// Go's `fmt` rendering of a value.
fn show(v: &Json) -> String {
    match v {
        Json::Null => "<nil>".into(),
        Json::String(s) => s.clone(),
        Json::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(" ")),
        Json::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", show(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

fn exec(nodes: &[Node], scope: &Scope<'_>, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Print(p) => match resolve(p, scope) {
                Some(v) => out.push_str(&show(&v)),
                None => out.push_str("<undefined>"),
            },
            Node::If(cond, body, otherwise) => {
                let branch = if truthy(&resolve(cond, scope)) {
                    body
                } else {
                    otherwise
                };
                exec(branch, scope, out);
            }
            Node::Range {
                key,
                value,
                over,
                body,
                otherwise,
            } => {
                let items: Vec<(Json, Json)> = match resolve(over, scope) {
                    Some(Json::Array(a)) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Json::from(i), v))
                        .collect(),
                    Some(Json::Object(o)) => {
                        o.into_iter().map(|(k, v)| (Json::from(k), v)).collect()
                    }
                    _ => Vec::new(),
                };
                if items.is_empty() {
                    exec(otherwise, scope, out);
                }
                for (k, v) in items {
                    let mut vars = scope.vars.clone();
                    if let Some(name) = key {
                        vars.insert(name.clone(), k);
                    }
                    if let Some(name) = value {
                        vars.insert(name.clone(), v.clone());
                    }
                    exec(
                        body,
                        &Scope {
                            dot: v,
                            vars: &vars,
                        },
                        out,
                    );
                }
            }
        }
    }
}

fn render_template(args: &[Value]) -> Result<Value> {
    let template = string_arg(args, 0)?;
    let vars = to_json(args.get(1).context("operand 2 is missing")?)?;
    if !vars.is_object() {
        bail!("operand 2 must be an object");
    }
    let tokens = lex(template)?;
    let mut pos = 0;
    let (nodes, term) = parse(&tokens, &mut pos)?;
    if let Some(t) = term {
        bail!("unexpected {{{{{t}}}}} in template");
    }
    let mut out = String::new();
    let no_vars = HashMap::new();
    exec(
        &nodes,
        &Scope {
            dot: vars,
            vars: &no_vars,
        },
        &mut out,
    );
    Ok(Value::from(out))
}
