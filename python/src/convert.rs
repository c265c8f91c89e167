//! Python values <-> JSON values, both ways, without a detour through text.

use crate::errors::InvalidInput;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted from Python (the evaluator refuses deeper inputs anyway).
const MAX_DEPTH: usize = 256;

/// `obj` as JSON: `None`, `bool`, `int`, `float`, `str`, `dict` (string keys), `list`,
/// `tuple`, `set`. Anything else is an `InvalidInput`.
pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(obj, 0)
}

fn to_json_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(InvalidInput::new_err(format!(
            "input nests deeper than {MAX_DEPTH} levels"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(v.into());
        }
        if let Ok(v) = i.extract::<u64>() {
            return Ok(v.into());
        }
        return Err(InvalidInput::new_err(format!(
            "integer {i} does not fit in 64 bits"
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| InvalidInput::new_err("NaN and infinity are not JSON"));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.extract::<String>()?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let Ok(key) = k.cast::<PyString>() else {
                return Err(InvalidInput::new_err(format!(
                    "object keys must be strings, got {}",
                    k.get_type().name()?
                )));
            };
            map.insert(key.extract::<String>()?, to_json_at(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    let items = |it: Vec<Bound<'_, PyAny>>| -> PyResult<Value> {
        it.iter()
            .map(|x| to_json_at(x, depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array)
    };
    if let Ok(l) = obj.cast::<PyList>() {
        return items(l.iter().collect());
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return items(t.iter().collect());
    }
    if let Ok(s) = obj.cast::<PySet>() {
        return items(s.iter().collect());
    }
    if let Ok(s) = obj.cast::<PyFrozenSet>() {
        return items(s.iter().collect());
    }
    Err(InvalidInput::new_err(format!(
        "cannot pass a {} as JSON",
        obj.get_type().name()?
    )))
}

/// A JSON value as Python: `dict`, `list`, `str`, `int` or `float`, `bool`, `None`.
pub fn from_json<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for x in a {
                list.append(from_json(py, x)?)?;
            }
            list.into_any()
        }
        Value::Object(o) => {
            let dict = PyDict::new(py);
            for (k, x) in o {
                dict.set_item(k, from_json(py, x)?)?;
            }
            dict.into_any()
        }
    })
}

/// JSON text (a decision's result) as Python.
pub fn from_json_text<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| crate::errors::EvaluationError::new_err(format!("result is not JSON: {e}")))?;
    from_json(py, &v)
}
