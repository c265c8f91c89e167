//! `internal.template_string(parts)`, what template strings (`$"…{expr}…"`) desugar to
//! (see `desugar::interpolation`): literal parts are strings, each expression part is the
//! array of its values. As in OPA, an expression without a value prints `<undefined>`, a
//! string value prints as is, any other value prints as a Rego term (`[1, "a"]`, `{1}`,
//! `set()`, `{"k": 2}`), and an expression with several values is an error.

use super::{Builtin, type_name};
use anyhow::{Result, bail};
use regorus::Value;

pub(super) const BUILTINS: &[Builtin] = &[(crate::desugar::TEMPLATE_BUILTIN, 1, template_string)];

fn template_string(args: &[Value]) -> Result<Value> {
    let Some(Value::Array(parts)) = args.first() else {
        bail!("operand 1 must be an array");
    };
    let mut out = String::new();
    for part in parts.iter() {
        match part {
            Value::String(s) => out.push_str(s),
            Value::Array(values) => match values.to_vec().as_slice() {
                [] => out.push_str("<undefined>"),
                [Value::String(s)] => out.push_str(s),
                [v] => term(v, &mut out)?,
                _ => bail!(
                    "template expression produced {} values; it must produce one",
                    values.len()
                ),
            },
            other => bail!("unexpected template part of type {}", type_name(other)),
        }
    }
    Ok(Value::from(out))
}

/// Appends `v` as Rego prints a term.
fn term(v: &Value, out: &mut String) -> Result<()> {
    let list = |items: &mut dyn Iterator<Item = &Value>, out: &mut String| -> Result<()> {
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            term(item, out)?;
        }
        Ok(())
    };
    match v {
        Value::Array(a) => {
            out.push('[');
            list(&mut a.iter(), out)?;
            out.push(']');
        }
        Value::Set(s) if s.is_empty() => out.push_str("set()"),
        Value::Set(s) => {
            out.push('{');
            list(&mut s.iter(), out)?;
            out.push('}');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, v)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                term(k, out)?;
                out.push_str(": ");
                term(v, out)?;
            }
            out.push('}');
        }
        Value::Undefined => out.push_str("<undefined>"),
        scalar => out.push_str(&serde_json::to_string(scalar)?),
    }
    Ok(())
}
