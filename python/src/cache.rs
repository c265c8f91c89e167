//! `PolicyCache`: a key-value cache with a size bound and per-entry TTL on the host's
//! decision cache (DashMap, CLOCK eviction). Values are JSON values.

use crate::convert::{from_json_text, to_json};
use pyo3::prelude::*;
use sark::cache::{CacheKey, DecisionCache};
use std::sync::Arc;
use std::time::Duration;

/// A bounded cache of JSON values with a TTL per entry.
#[pyclass(module = "sark_runtime._native", frozen, subclass)]
pub struct PolicyCache {
    cache: DecisionCache,
    namespace: Arc<str>,
}

/// A TTL in seconds; longer than the cache's bound (a century) is clamped to it.
fn ttl_of(seconds: f64) -> PyResult<Duration> {
    if seconds.is_nan() || seconds < 0.0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "ttl must be a number of seconds >= 0",
        ));
    }
    Ok(Duration::try_from_secs_f64(seconds)
        .unwrap_or(sark::cache::MAX_TTL)
        .min(sark::cache::MAX_TTL))
}

impl PolicyCache {
    fn key(&self, key: &str) -> CacheKey {
        CacheKey::new(
            self.namespace.clone(),
            self.namespace.clone(),
            key.as_bytes(),
        )
    }
}

#[pymethods]
impl PolicyCache {
    #[new]
    #[pyo3(signature = (max_size=10_000, ttl_seconds=300.0))]
    fn new(max_size: usize, ttl_seconds: f64) -> PyResult<Self> {
        Ok(PolicyCache {
            cache: DecisionCache::new(max_size, ttl_of(ttl_seconds)?),
            namespace: Arc::from(""),
        })
    }

    /// The value under `key`, or `default` when absent or expired.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.cache.get(&self.key(key), key.as_bytes()) {
            Some(Some(text)) => from_json_text(py, &text),
            _ => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// Stores `value` (anything JSON can hold) for `ttl` seconds (default: the cache's).
    #[pyo3(signature = (key, value, ttl=None))]
    fn set(&self, key: &str, value: &Bound<'_, PyAny>, ttl: Option<f64>) -> PyResult<()> {
        let text: Arc<str> = Arc::from(to_json(value)?.to_string());
        let ttl = ttl.map(ttl_of).transpose()?;
        if ttl.is_some_and(|t| t.is_zero()) {
            // Nothing is stored for no time, and nothing older may be served either.
            self.cache.remove(&self.key(key));
            return Ok(());
        }
        self.cache
            .insert(self.key(key), key.as_bytes(), Some(text), ttl);
        Ok(())
    }

    /// Removes `key`; whether it was there.
    fn delete(&self, key: &str) -> bool {
        self.cache.remove(&self.key(key))
    }

    /// Removes every entry.
    fn clear(&self) {
        self.cache.clear();
    }

    /// `hits`, `misses`, `evictions`, `expirations`, `size` (live entries), `max_size`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.cache.sweep_expired();
        let mut v = serde_json::to_value(self.cache.stats())
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        v["max_size"] = self.cache.max_size().into();
        crate::convert::from_json(py, &v)
    }

    /// Live (unexpired) entries.
    fn __len__(&self) -> usize {
        self.cache.sweep_expired();
        self.cache.stats().size
    }

    fn __contains__(&self, key: &str) -> bool {
        matches!(
            self.cache.get(&self.key(key), key.as_bytes()),
            Some(Some(_))
        )
    }
}
