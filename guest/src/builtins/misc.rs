//! Smaller builtins: `array.flatten`, `regex.globs_match`, and replacements for Regorus
//! builtins whose behaviour differs from OPA's.

use super::{Builtin, string_arg};
use anyhow::{Result, bail};
use regorus::Value;

pub(super) const BUILTINS: &[Builtin] = &[
    ("array.flatten", 1, array_flatten),
    ("strings.count", 2, strings_count),
    ("json.is_valid", 1, |a| {
        is_valid(a, |s| serde_json::from_str::<serde_json::Value>(s).is_ok())
    }),
    ("yaml.is_valid", 1, |a| {
        is_valid(a, |s| Value::from_yaml_str(s).is_ok())
    }),
    ("regex.globs_match", 2, super::globs::globs_match),
    ("strings.any_prefix_match", 2, |a| {
        any_match(a, |s, p| s.starts_with(p))
    }),
    ("strings.any_suffix_match", 2, |a| {
        any_match(a, |s, p| s.ends_with(p))
    }),
];

/// Strings of a string, array or set operand; `None` when any element is not a string.
fn strings_of(v: Option<&Value>) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.to_string()),
        _ => None,
    };
    match v? {
        Value::String(s) => Some(vec![s.to_string()]),
        Value::Array(a) => a.iter().map(one).collect(),
        Value::Set(s) => s.iter().map(one).collect(),
        _ => None,
    }
}

/// `strings.any_prefix_match` / `strings.any_suffix_match`. Replaces Regorus's version,
/// which fails on a non-string operand even in non-strict mode (OPA: undefined).
fn any_match(args: &[Value], matches: fn(&str, &str) -> bool) -> Result<Value> {
    let Some(search) = strings_of(args.first()) else {
        bail!("operand 1 must be a string or an array or set of strings");
    };
    let Some(base) = strings_of(args.get(1)) else {
        bail!("operand 2 must be a string or an array or set of strings");
    };
    Ok(Value::from(
        search.iter().any(|s| base.iter().any(|b| matches(s, b))),
    ))
}

/// `array.flatten(arr)`: one level of nested arrays spliced into the outer array.
fn array_flatten(args: &[Value]) -> Result<Value> {
    let Some(Value::Array(items)) = args.first() else {
        bail!("operand 1 must be an array");
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        match item {
            Value::Array(inner) => out.extend(inner.iter().cloned()),
            other => out.push(other.clone()),
        }
    }
    Ok(Value::from(out))
}

/// `strings.count(search, substring)`: non-overlapping occurrences, as Go's `strings.Count`
/// (an empty substring counts the characters plus one). Replaces Regorus's version, which
/// panics on an empty substring.
fn strings_count(args: &[Value]) -> Result<Value> {
    let (haystack, needle) = (string_arg(args, 0)?, string_arg(args, 1)?);
    let n = if needle.is_empty() {
        haystack.chars().count() + 1
    } else {
        haystack.matches(needle).count()
    };
    Ok(Value::from(n))
}

/// `json.is_valid` / `yaml.is_valid`: false for a non-string, as OPA (Regorus errors).
fn is_valid(args: &[Value], check: fn(&str) -> bool) -> Result<Value> {
    Ok(Value::from(match args.first() {
        Some(Value::String(s)) => check(s),
        _ => false,
    }))
}
