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

/// JSON text (a decision's result) as Python, built while parsing (no intermediate tree).
pub fn from_json_text<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    let mut de = serde_json::Deserializer::from_str(text);
    match serde::de::DeserializeSeed::deserialize(Builder(py), &mut de)
        .and_then(|v| de.end().map(|()| v))
    {
        Ok(value) => Ok(value),
        // Past serde_json's nesting limit (128): Python's own parser, which goes deeper.
        Err(e) if e.to_string().contains("recursion limit") => {
            py.import("json")?.call_method1("loads", (text,))
        }
        Err(e) => Err(crate::errors::EvaluationError::new_err(format!(
            "result is not JSON: {e}"
        ))),
    }
}

/// Builds Python objects from serde events.
#[derive(Clone, Copy)]
struct Builder<'py>(Python<'py>);

fn py_err<E: serde::de::Error>(e: PyErr) -> E {
    E::custom(e)
}

impl<'de, 'py> serde::de::DeserializeSeed<'de> for Builder<'py> {
    type Value = Bound<'py, PyAny>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'py> serde::de::Visitor<'de> for Builder<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.0, v).to_owned().into_any())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.0, v).into_any())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, v).into_any())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let list = PyList::empty(self.0);
        while let Some(v) = seq.next_element_seed(self)? {
            list.append(v).map_err(py_err::<A::Error>)?;
        }
        Ok(list.into_any())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.0);
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let v = map.next_value_seed(self)?;
            dict.set_item(&*k, v).map_err(py_err::<A::Error>)?;
        }
        Ok(dict.into_any())
    }
}
