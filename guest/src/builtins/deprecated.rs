//! OPA's deprecated builtins, which Rego v0 policies may still call (OPA 1.x keeps them
//! for `--v0-compatible` and refuses them in v1 modules): `all`, `any`, `re_match`,
//! `set_diff`, `net.cidr_overlap` and the `cast_*` family. Registered only for a bundle
//! with v0 modules.

use super::{Builtin, collection_items, string_arg, type_name};
use anyhow::{Result, anyhow, bail};
use regorus::Value;
use std::collections::BTreeSet;

pub(super) const BUILTINS: &[Builtin] = &[
    ("all", 1, |a| every_element(a, true)),
    ("any", 1, |a| every_element(a, false)),
    ("re_match", 2, re_match),
    ("set_diff", 2, set_diff),
    ("net.cidr_overlap", 2, cidr_overlap),
    ("cast_array", 1, cast_array),
    ("cast_set", 1, cast_set),
    ("cast_string", 1, |a| {
        cast(a, "string", |v| matches!(v, Value::String(_)))
    }),
    ("cast_boolean", 1, |a| {
        cast(a, "boolean", |v| matches!(v, Value::Bool(_)))
    }),
    ("cast_null", 1, |a| {
        cast(a, "null", |v| matches!(v, Value::Null))
    }),
    ("cast_object", 1, |a| {
        cast(a, "object", |v| matches!(v, Value::Object(_)))
    }),
];

fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Undefined)
}

/// `all(c)`: every element of the array or set is `true`; `any(c)`: one is.
fn every_element(args: &[Value], all: bool) -> Result<Value> {
    let items = collection_items(arg(args, 0), 0)?;
    let is_true = |v: &Value| *v == Value::Bool(true);
    Ok(Value::from(if all {
        items.iter().all(is_true)
    } else {
        items.iter().any(is_true)
    }))
}

/// `re_match(pattern, value)`: `regex.match`.
fn re_match(args: &[Value]) -> Result<Value> {
    let pattern = string_arg(args, 0)?;
    let value = string_arg(args, 1)?;
    let re = regex::Regex::new(pattern).map_err(|e| anyhow!("invalid pattern: {e}"))?;
    Ok(Value::from(re.is_match(value)))
}

fn set_of(v: &Value, i: usize) -> Result<BTreeSet<Value>> {
    match v {
        Value::Set(s) => Ok(s.iter().cloned().collect()),
        other => bail!("operand {} must be a set, got {}", i + 1, type_name(other)),
    }
}

/// `set_diff(a, b)`: `a - b`.
fn set_diff(args: &[Value]) -> Result<Value> {
    let a = set_of(arg(args, 0), 0)?;
    let b = set_of(arg(args, 1), 1)?;
    Ok(Value::from(
        a.difference(&b).cloned().collect::<BTreeSet<_>>(),
    ))
}

/// `net.cidr_overlap(cidr, ip)`: `net.cidr_contains`.
fn cidr_overlap(args: &[Value]) -> Result<Value> {
    let cidr = string_arg(args, 0)?;
    let ip = string_arg(args, 1)?;
    let net = cidr
        .parse::<ipnet::IpNet>()
        .map_err(|_| anyhow!("invalid CIDR {cidr:?}"))?;
    let inner = match ip.parse::<ipnet::IpNet>() {
        Ok(n) => n,
        Err(_) => ip
            .parse::<std::net::IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| anyhow!("invalid CIDR or IP address {ip:?}"))?,
    };
    Ok(Value::from(net.contains(&inner)))
}

/// `cast_array(x)`: an array, or a set as a sorted array.
fn cast_array(args: &[Value]) -> Result<Value> {
    match arg(args, 0) {
        v @ Value::Array(_) => Ok(v.clone()),
        Value::Set(s) => Ok(Value::from(s.iter().cloned().collect::<Vec<_>>())),
        other => bail!(
            "operand 1 must be an array or a set, got {}",
            type_name(other)
        ),
    }
}

/// `cast_set(x)`: a set, or an array's elements as a set.
fn cast_set(args: &[Value]) -> Result<Value> {
    match arg(args, 0) {
        v @ Value::Set(_) => Ok(v.clone()),
        Value::Array(a) => Ok(Value::from(a.iter().cloned().collect::<BTreeSet<_>>())),
        other => bail!(
            "operand 1 must be an array or a set, got {}",
            type_name(other)
        ),
    }
}

/// `cast_string`, `cast_boolean`, `cast_null`, `cast_object`: the operand when it has the
/// type, else a type error.
fn cast(args: &[Value], want: &str, is: fn(&Value) -> bool) -> Result<Value> {
    let v = arg(args, 0);
    if is(v) {
        Ok(v.clone())
    } else {
        bail!("operand 1 must be {want}, got {}", type_name(v))
    }
}
