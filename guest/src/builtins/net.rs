//! `net.cidr_merge`, `net.cidr_intersects` and `net.cidr_contains_matches`.

use super::{Builtin, collection_items, string_arg, type_name};
use anyhow::{Result, anyhow, bail};
use ipnet::IpNet;
use regorus::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;

pub(super) const BUILTINS: &[Builtin] = &[
    ("net.cidr_merge", 1, cidr_merge),
    ("net.cidr_intersects", 2, cidr_intersects),
    ("net.cidr_contains_matches", 2, cidr_contains_matches),
];

fn parse_cidr(s: &str) -> Result<IpNet> {
    s.parse::<IpNet>()
        .map_err(|_| anyhow!("invalid CIDR {s:?}"))
}

/// A CIDR or an address (a host network), as `net.cidr_contains` accepts.
fn parse_cidr_or_ip(s: &str) -> Result<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net);
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| anyhow!("invalid CIDR or IP address {s:?}"))
}

/// `net.cidr_merge(addrs)`: the smallest set of CIDRs covering `addrs`. An IPv4 address
/// without a prefix takes its classful network (Go's `DefaultMask`), and an IPv6 address
/// needs its prefix, as in OPA.
fn cidr_merge(args: &[Value]) -> Result<Value> {
    let items = collection_items(args.first().unwrap_or(&Value::Undefined), 0)?;
    let mut nets = Vec::with_capacity(items.len());
    for item in &items {
        let s = item
            .as_string()
            .map_err(|_| anyhow!("element must be a string, got {}", type_name(item)))?;
        let net = if s.contains('/') {
            parse_cidr(s)?
        } else {
            match s.parse::<IpAddr>() {
                // Go's classful default mask, which OPA applies to a bare IPv4 address.
                Ok(IpAddr::V4(v4)) => {
                    let prefix = match v4.octets()[0] {
                        0..=127 => 8,
                        128..=191 => 16,
                        192..=223 => 24,
                        _ => 32,
                    };
                    IpNet::from(
                        ipnet::Ipv4Net::new(v4, prefix)
                            .expect("prefix <= 32")
                            .trunc(),
                    )
                }
                Ok(IpAddr::V6(_)) => bail!("IPv6 invalid: needs prefix length"),
                Err(_) => bail!("invalid IP address {s:?}"),
            }
        };
        nets.push(net);
    }
    let merged: BTreeSet<Value> = IpNet::aggregate(&nets)
        .into_iter()
        .map(|n| Value::from(n.to_string()))
        .collect();
    Ok(Value::from(merged))
}

/// `net.cidr_intersects(a, b)`: whether two CIDRs share an address.
fn cidr_intersects(args: &[Value]) -> Result<Value> {
    let a = parse_cidr(string_arg(args, 0)?)?;
    let b = parse_cidr(string_arg(args, 1)?)?;
    let overlap = a.contains(&b.network()) || b.contains(&a.network());
    Ok(Value::from(overlap))
}

/// The `(key, cidr)` pairs of a `net.cidr_contains_matches` operand: a string (its own key),
/// an array (keys are indexes), a set (keys are the elements) or an object. An element is a
/// string or a non-empty array whose first element is the string.
fn keyed_cidrs(v: &Value, operand: usize) -> Result<Vec<(Value, IpNet)>> {
    let entry = |key: Value, elem: &Value| -> Result<(Value, IpNet)> {
        let s = match elem {
            Value::String(s) => s.clone(),
            Value::Array(a) => match a.first() {
                Some(Value::String(s)) => s.clone(),
                _ => bail!("operand {operand}: element must be string or non-empty array"),
            },
            _ => bail!("operand {operand}: element must be string or non-empty array"),
        };
        Ok((key, parse_cidr_or_ip(&s)?))
    };
    match v {
        Value::String(s) => Ok(vec![(v.clone(), parse_cidr_or_ip(s)?)]),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, e)| entry(Value::from(i), e))
            .collect(),
        Value::Set(s) => s.iter().map(|e| entry(e.clone(), e)).collect(),
        Value::Object(o) => o.iter().map(|(k, e)| entry(k.clone(), e)).collect(),
        other => bail!(
            "operand {operand} must be a string, array, set or object, got {}",
            type_name(other)
        ),
    }
}

/// `net.cidr_contains_matches(cidrs, cidrs_or_ips)`: the set of `[i, j]` key pairs where
/// CIDR `i` of the first operand contains CIDR or address `j` of the second.
fn cidr_contains_matches(args: &[Value]) -> Result<Value> {
    let outer = keyed_cidrs(args.first().unwrap_or(&Value::Undefined), 1)?;
    let inner = keyed_cidrs(args.get(1).unwrap_or(&Value::Undefined), 2)?;
    let mut pairs = BTreeSet::new();
    for (ki, a) in &outer {
        for (kj, b) in &inner {
            if a.contains(b) {
                pairs.insert(Value::from(vec![ki.clone(), kj.clone()]));
            }
        }
    }
    Ok(Value::from(pairs))
}
