//! OPA builtins that Regorus 0.14.1 lacks (or gets wrong), added as Regorus extensions.
//!
//! Every function here is pure Rust and compiles to `wasm32-wasip2`, so the component and the
//! host's native path run the same code. Extensions are looked up before Regorus's own
//! builtins, which lets a few entries here replace a Regorus builtin whose behaviour differs
//! from OPA's (documented at each one).
//!
//! Errors follow Regorus's convention: a builtin given bad arguments fails the evaluation
//! with a message naming the builtin (OPA's `strict-builtin-errors` behaviour).

mod aws;
mod crypto;
mod deprecated;
mod globs;
mod graphql;
mod graphql_print;
mod interpolation;
mod jwt;
pub use jwt::{VerifiedJws, unverified_header, verify_compact};
mod keys;
mod misc;
mod net;
mod rewrite;
mod template;
mod x509;

use anyhow::{Result, anyhow, bail};
use regorus::{Engine, Value};

/// A builtin: its OPA name, its number of arguments and its implementation.
type Builtin = (&'static str, u8, fn(&[Value]) -> Result<Value>);

/// Every builtin this module provides, in registration order.
fn all() -> impl Iterator<Item = Builtin> {
    crypto::BUILTINS
        .iter()
        .chain(jwt::BUILTINS)
        .chain(x509::BUILTINS)
        .chain(net::BUILTINS)
        .chain(graphql::BUILTINS)
        .chain(aws::BUILTINS)
        .chain(template::BUILTINS)
        .chain(misc::BUILTINS)
        .chain(interpolation::BUILTINS)
        .copied()
}

/// Names of the builtins added to every engine (for `sark inspect` and the docs).
pub fn names() -> Vec<&'static str> {
    all().map(|(name, _, _)| name).collect()
}

/// Adds every builtin of this module to `engine`, and OPA's deprecated builtins when
/// `rego_v0` (a bundle with v0 modules). With `strict` false an error makes the call
/// undefined instead of failing the evaluation, as Regorus does for its own builtins.
pub(crate) fn register(engine: &mut Engine, strict: bool, rego_v0: bool) -> Result<()> {
    let deprecated = deprecated::BUILTINS.iter().copied().filter(|_| rego_v0);
    for (name, nargs, f) in all().chain(deprecated) {
        let ext = move |args: Vec<Value>| -> Result<Value> {
            match f(&args) {
                Ok(v) => Ok(v),
                Err(_) if !strict => Ok(Value::Undefined),
                Err(e) => Err(anyhow!("{name}: {e:#}")),
            }
        };
        engine
            .add_extension(name.to_string(), nargs, Box::new(ext))
            .map_err(|e| anyhow!("cannot add builtin {name}: {e:#}"))?;
    }
    Ok(())
}

/// `source` with OPA's output-argument calls (`f(x, out)`) of these builtins rewritten to
/// `out = f(x)`, which Regorus understands; `None` when nothing needs rewriting.
pub(crate) fn rewrite_output_arguments(path: &str, source: &str) -> Option<String> {
    rewrite::output_arguments(path, source, |name| {
        all()
            .chain(deprecated::BUILTINS.iter().copied())
            .find(|(n, _, _)| *n == name)
            .map(|(_, nargs, _)| nargs)
    })
}

/// The number of arguments of builtin `name` of this module (deprecated ones only with
/// `rego_v0`), for the arity check.
pub(crate) fn arity(name: &str, rego_v0: bool) -> Option<u8> {
    let deprecated = deprecated::BUILTINS.iter().copied().filter(|_| rego_v0);
    all()
        .chain(deprecated)
        .find(|(n, _, _)| *n == name)
        .map(|(_, nargs, _)| nargs)
}

/// The string argument `i`, or a type error.
fn string_arg(args: &[Value], i: usize) -> Result<&str> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => bail!(
            "operand {} must be a string, got {}",
            i + 1,
            type_name(other)
        ),
        None => bail!("operand {} is missing", i + 1),
    }
}

/// OPA's type name of a value, for error messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}

/// A Regorus value as JSON (sets become arrays).
fn to_json(v: &Value) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| anyhow!("value is not JSON: {e}"))
}

/// A JSON value as a Regorus value.
fn from_json(v: serde_json::Value) -> Value {
    Value::from(v)
}

/// Elements of an array or a set argument.
fn collection_items(v: &Value, i: usize) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a.iter().cloned().collect()),
        Value::Set(s) => Ok(s.iter().cloned().collect()),
        other => bail!(
            "operand {} must be an array or a set, got {}",
            i + 1,
            type_name(other)
        ),
    }
}
