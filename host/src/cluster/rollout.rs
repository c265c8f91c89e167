//! How rollout state is laid out in Redis: one hash per feature,
//! `<prefix>:rollout:<feature>` with the fields `enabled` (0/1), `rollout_percentage`
//! (0–100) and `fallback_on_error` (0/1); every change is announced by publishing the
//! feature's name on `<prefix>:rollout`.

use crate::flags::Feature;
use std::collections::BTreeMap;

/// The pub/sub channel of rollout changes.
pub(super) fn channel(prefix: &str) -> String {
    format!("{prefix}:rollout")
}

fn key(prefix: &str, feature: &str) -> String {
    format!("{prefix}:rollout:{feature}")
}

fn fields(f: &Feature) -> [(&'static str, String); 3] {
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    [
        ("enabled", flag(f.enabled)),
        ("rollout_percentage", f.rollout_percentage.to_string()),
        ("fallback_on_error", flag(f.fallback_on_error)),
    ]
}

/// Queues the write of `feature` and its announcement.
pub(super) fn write(pipe: &mut redis::Pipeline, prefix: &str, name: &str, feature: &Feature) {
    pipe.hset_multiple(key(prefix, name), &fields(feature))
        .ignore();
    pipe.publish(channel(prefix), name).ignore();
}

/// Queues: fill in any field Redis lacks with `local` (first writer wins), then read the
/// hash. The pipeline yields one map for this feature.
pub(super) fn read_or_seed(pipe: &mut redis::Pipeline, prefix: &str, name: &str, local: &Feature) {
    let key = key(prefix, name);
    for (field, value) in fields(local) {
        pipe.hset_nx(&key, field, value).ignore();
    }
    pipe.hgetall(key);
}

/// Parses a feature hash.
pub(super) fn decode(fields: &BTreeMap<String, String>) -> Result<Feature, String> {
    let get = |name: &str| {
        fields
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("field `{name}` is missing"))
    };
    let flag = |name: &str| match get(name)? {
        "1" => Ok(true),
        "0" => Ok(false),
        other => Err(format!("field `{name}` is `{other}`, not 0 or 1")),
    };
    let percentage = get("rollout_percentage")?;
    let rollout_percentage = percentage
        .parse::<u8>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("rollout_percentage `{percentage}` is not 0–100"))?;
    Ok(Feature {
        enabled: flag("enabled")?,
        rollout_percentage,
        fallback_on_error: flag("fallback_on_error")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_garbage_is_refused() {
        let f = Feature {
            enabled: true,
            rollout_percentage: 37,
            fallback_on_error: false,
        };
        let map: BTreeMap<String, String> = fields(&f)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(decode(&map).unwrap(), f);
        let mut bad = map.clone();
        bad.insert("rollout_percentage".into(), "101".into());
        assert!(decode(&bad).unwrap_err().contains("101"));
        let mut bad = map.clone();
        bad.insert("enabled".into(), "yes".into());
        assert!(decode(&bad).unwrap_err().contains("enabled"));
        let mut bad = map;
        bad.remove("fallback_on_error");
        assert!(decode(&bad).unwrap_err().contains("missing"));
    }
}
