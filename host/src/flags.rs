//! Rollout flags: named features with a rollout percentage and stable per-user buckets.
//!
//! **Bucketing algorithm** (stable across processes, restarts, machines and languages):
//! `bucket = XXH3-64(seed 0) of the UTF-8 bytes "<feature>:<user key>", modulo 100`.
//! A user is in a feature's rollout when the feature is enabled and `bucket < percentage`,
//! so raising the percentage only moves users in and lowering it only moves users out.

use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Routes users to the component (in the rollout) or to the native path.
pub const WASM_ENGINE: &str = "wasm_engine";
/// Caches decisions for users in the rollout.
pub const DECISION_CACHE: &str = "decision_cache";
/// Sends users to the candidate bundle (route mode).
pub const POLICY_CANARY: &str = "policy_canary";

/// The state of one feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// Off means nobody is in the rollout, whatever the percentage.
    pub enabled: bool,
    /// Share of users in the rollout, 0–100.
    pub rollout_percentage: u8,
    /// For `wasm_engine`: evaluate on the native path when the component fails.
    pub fallback_on_error: bool,
}

/// Why a flag change was refused.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// No feature of that name exists.
    #[error("unknown feature `{0}` (known: {1})")]
    Unknown(String, String),
    /// The percentage is out of range.
    #[error("rollout percentage must be between 0 and 100, got {0}")]
    Percentage(u32),
    /// The state file could not be written; the change was not applied.
    #[error("cannot persist rollout state to {path}: {error}")]
    Persist {
        /// The state file.
        path: String,
        /// The I/O error (in the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// The state file exists but cannot be used.
    #[error("cannot load rollout state from {path}: {message}")]
    Load {
        /// The state file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Returns the user's bucket (0–99) for a feature. See the module docs.
pub fn bucket(feature: &str, user_key: &str) -> u8 {
    let mut buf = Vec::with_capacity(feature.len() + 1 + user_key.len());
    buf.extend_from_slice(feature.as_bytes());
    buf.push(b':');
    buf.extend_from_slice(user_key.as_bytes());
    (xxhash_rust::xxh3::xxh3_64(&buf) % 100) as u8
}

/// The feature set, readable from any thread; changes are persisted before they apply.
pub struct RolloutFlags {
    features: RwLock<BTreeMap<String, Feature>>,
    state_file: Option<PathBuf>,
}

impl RolloutFlags {
    /// Features from the config, overridden by the state file when it exists.
    pub fn new(config: &Config, state_file: Option<PathBuf>) -> Result<Self, FlagError> {
        let mut features = BTreeMap::new();
        let w = &config.features.wasm_engine;
        features.insert(
            WASM_ENGINE.to_string(),
            Feature {
                enabled: w.enabled,
                rollout_percentage: w.rollout_percentage,
                fallback_on_error: w.fallback_on_error,
            },
        );
        let c = &config.features.decision_cache;
        features.insert(
            DECISION_CACHE.to_string(),
            Feature {
                enabled: c.enabled,
                rollout_percentage: c.rollout_percentage,
                fallback_on_error: false,
            },
        );
        let p = &config.features.policy_canary;
        features.insert(
            POLICY_CANARY.to_string(),
            Feature {
                enabled: p.enabled,
                rollout_percentage: p.rollout_percentage,
                fallback_on_error: false,
            },
        );
        if let Some(path) = &state_file
            && path.exists()
        {
            let saved = load_state(path)?;
            for (name, feature) in saved {
                // Features that no longer exist are ignored; known ones take the saved state.
                if let Some(slot) = features.get_mut(&name) {
                    *slot = feature;
                }
            }
        }
        Ok(RolloutFlags {
            features: RwLock::new(features),
            state_file,
        })
    }

    /// Whether `user_key` is in the rollout of `feature` (false for unknown features).
    pub fn is_on(&self, feature: &str, user_key: &str) -> bool {
        let features = self.features.read().unwrap_or_else(|p| p.into_inner());
        match features.get(feature) {
            Some(f) if f.enabled => bucket(feature, user_key) < f.rollout_percentage,
            _ => false,
        }
    }

    /// A copy of one feature.
    pub fn get(&self, feature: &str) -> Option<Feature> {
        self.features
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(feature)
            .cloned()
    }

    /// A copy of every feature.
    pub fn all(&self) -> BTreeMap<String, Feature> {
        self.features
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The state `feature` would have at `percentage` (enabled when above 0), without
    /// applying it: the cluster writes it to Redis first, then every instance applies it.
    pub fn plan_percentage(&self, feature: &str, percentage: u32) -> Result<Feature, FlagError> {
        if percentage > 100 {
            return Err(FlagError::Percentage(percentage));
        }
        let mut next = {
            let features = self.features.read().unwrap_or_else(|p| p.into_inner());
            features
                .get(feature)
                .cloned()
                .ok_or_else(|| unknown(&features, feature))?
        };
        next.rollout_percentage = percentage as u8;
        if percentage > 0 {
            next.enabled = true;
        }
        Ok(next)
    }

    /// Sets a feature's percentage (and enables it when above 0). Persisted first; applies
    /// to the next decision.
    pub fn set_percentage(&self, feature: &str, percentage: u32) -> Result<Feature, FlagError> {
        let next = self.plan_percentage(feature, percentage)?;
        self.apply(feature, next.clone())?;
        Ok(next)
    }

    /// Rolls a feature back to 0%.
    pub fn rollback(&self, feature: &str) -> Result<Feature, FlagError> {
        self.set_percentage(feature, 0)
    }

    /// Every feature at 0%, without applying it (see [`Self::plan_percentage`]).
    pub fn plan_rollback_all(&self) -> BTreeMap<String, Feature> {
        let mut next = self.all();
        for f in next.values_mut() {
            f.rollout_percentage = 0;
        }
        next
    }

    /// Replaces the state of a known feature (persisted first). Returns whether it changed.
    /// A percentage over 100 is refused, wherever the state came from.
    pub fn apply(&self, feature: &str, state: Feature) -> Result<bool, FlagError> {
        if state.rollout_percentage > 100 {
            return Err(FlagError::Percentage(state.rollout_percentage.into()));
        }
        let mut features = self.features.write().unwrap_or_else(|p| p.into_inner());
        let Some(current) = features.get(feature) else {
            return Err(unknown(&features, feature));
        };
        if *current == state {
            return Ok(false);
        }
        let mut next = features.clone();
        next.insert(feature.to_string(), state);
        self.persist(&next)?;
        *features = next;
        Ok(true)
    }

    /// Writes the state atomically: a temporary file, fsync, rename.
    fn persist(&self, features: &BTreeMap<String, Feature>) -> Result<(), FlagError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let err = |error| FlagError::Persist {
            path: path.display().to_string(),
            error,
        };
        let json = serde_json::to_vec_pretty(features).map_err(|e| err(e.into()))?;
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            f.write_all(&json).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)?;
        Ok(())
    }
}

/// The error for a feature that is not in `features`, naming the known ones.
fn unknown(features: &BTreeMap<String, Feature>, feature: &str) -> FlagError {
    let known = features.keys().cloned().collect::<Vec<_>>().join(", ");
    FlagError::Unknown(feature.to_string(), known)
}

fn load_state(path: &Path) -> Result<BTreeMap<String, Feature>, FlagError> {
    let err = |message: String| FlagError::Load {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let state: BTreeMap<String, Feature> =
        serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
    for (name, f) in &state {
        if f.rollout_percentage > 100 {
            return Err(err(format!(
                "{name}: rollout_percentage {} is over 100",
                f.rollout_percentage
            )));
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_pinned() {
        // Golden values: changing the algorithm moves users between paths. Do not update
        // these without a migration note.
        let golden: Vec<u8> = ["alice", "bob", "carol", "user-1", "user-2", "", "ünïcode"]
            .iter()
            .map(|u| bucket(WASM_ENGINE, u))
            .collect();
        assert_eq!(golden, GOLDEN_WASM_ENGINE_BUCKETS);
    }

    // Cross-checked with Python: `xxhash.xxh3_64_intdigest(b"wasm_engine:alice") % 100`.
    const GOLDEN_WASM_ENGINE_BUCKETS: [u8; 7] = [53, 56, 86, 76, 45, 69, 5];

    #[test]
    fn buckets_are_uniform() {
        let n = 100_000;
        let inside = (0..n)
            .filter(|i| bucket(WASM_ENGINE, &format!("user-{i}")) < 25)
            .count();
        let share = inside as f64 / n as f64;
        assert!((share - 0.25).abs() <= 0.01, "share {share}");
    }

    #[test]
    fn raising_only_moves_users_in() {
        let flags = RolloutFlags::new(&Config::default(), None).unwrap();
        flags.set_percentage(WASM_ENGINE, 10).unwrap();
        let users: Vec<String> = (0..2000).map(|i| format!("u{i}")).collect();
        let at10: Vec<bool> = users.iter().map(|u| flags.is_on(WASM_ENGINE, u)).collect();
        flags.set_percentage(WASM_ENGINE, 30).unwrap();
        let at30: Vec<bool> = users.iter().map(|u| flags.is_on(WASM_ENGINE, u)).collect();
        assert!(
            at10.iter().zip(&at30).all(|(a, b)| !a || *b),
            "nobody left when raising"
        );
        assert!(at30.iter().filter(|x| **x).count() > at10.iter().filter(|x| **x).count());
        flags.rollback(WASM_ENGINE).unwrap();
        assert!(users.iter().all(|u| !flags.is_on(WASM_ENGINE, u)));
    }

    #[test]
    fn unknown_feature_and_bad_percentage_are_refused() {
        let flags = RolloutFlags::new(&Config::default(), None).unwrap();
        assert!(matches!(
            flags.set_percentage("nope", 5),
            Err(FlagError::Unknown(..))
        ));
        assert!(matches!(
            flags.set_percentage(WASM_ENGINE, 101),
            Err(FlagError::Percentage(101))
        ));
        assert_eq!(
            flags.get(WASM_ENGINE).unwrap().rollout_percentage,
            100,
            "unchanged"
        );
    }

    #[test]
    fn planned_states_apply_only_when_asked() {
        let flags = RolloutFlags::new(&Config::default(), None).unwrap();
        let planned = flags.plan_percentage(WASM_ENGINE, 7).unwrap();
        assert_eq!(planned.rollout_percentage, 7);
        assert_eq!(flags.get(WASM_ENGINE).unwrap().rollout_percentage, 100);
        assert!(flags.apply(WASM_ENGINE, planned.clone()).unwrap());
        assert!(!flags.apply(WASM_ENGINE, planned).unwrap(), "no change");
        assert_eq!(flags.get(WASM_ENGINE).unwrap().rollout_percentage, 7);
        let all = flags.plan_rollback_all();
        assert!(all.values().all(|f| f.rollout_percentage == 0));
        assert_eq!(flags.get(DECISION_CACHE).unwrap().rollout_percentage, 100);
        let bad = Feature {
            enabled: true,
            rollout_percentage: 101,
            fallback_on_error: false,
        };
        assert!(matches!(
            flags.apply(WASM_ENGINE, bad.clone()),
            Err(FlagError::Percentage(101))
        ));
        let fine = Feature {
            rollout_percentage: 5,
            ..bad
        };
        assert!(matches!(
            flags.apply("nope", fine),
            Err(FlagError::Unknown(..))
        ));
        assert_eq!(flags.get(WASM_ENGINE).unwrap().rollout_percentage, 7);
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("sark-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let _ = std::fs::remove_file(&path);
        let flags = RolloutFlags::new(&Config::default(), Some(path.clone())).unwrap();
        flags.set_percentage(WASM_ENGINE, 42).unwrap();
        flags.rollback(DECISION_CACHE).unwrap();
        drop(flags);
        let again = RolloutFlags::new(&Config::default(), Some(path.clone())).unwrap();
        assert_eq!(again.get(WASM_ENGINE).unwrap().rollout_percentage, 42);
        assert_eq!(again.get(DECISION_CACHE).unwrap().rollout_percentage, 0);
        std::fs::write(&path, "{broken").unwrap();
        assert!(matches!(
            RolloutFlags::new(&Config::default(), Some(path)),
            Err(FlagError::Load { .. })
        ));
    }

    #[test]
    fn disabled_feature_includes_nobody() {
        let mut config = Config::default();
        config.features.decision_cache.enabled = false;
        let flags = RolloutFlags::new(&config, None).unwrap();
        assert!(!flags.is_on(DECISION_CACHE, "alice"));
        assert!(flags.is_on(WASM_ENGINE, "alice"));
        assert!(!flags.is_on("unknown", "alice"));
    }
}
