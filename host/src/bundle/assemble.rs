//! Turning a [`SourceSet`] into the evaluator's [`Payload`]: manifest, merged data tree,
//! entrypoints.

use super::{BuildError, annotations, source::SourceSet};
use sark_guest::{ModuleSource, PAYLOAD_FORMAT, Payload, normalize_entrypoint};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The part of an OPA `.manifest` that SARK uses.
#[derive(Debug, Clone, Default, Deserialize)]
struct OpaManifest {
    #[serde(default)]
    revision: String,
    #[serde(default)]
    roots: Option<Vec<String>>,
    #[serde(default)]
    metadata: Option<Value>,
    /// OPA's place for entrypoints (`"wasm": [{"entrypoint": "a/b", "module": …}]`).
    #[serde(default)]
    wasm: Vec<OpaWasmEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct OpaWasmEntry {
    #[serde(default)]
    entrypoint: Option<String>,
}

/// Options of `sark build` that change the payload.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Entrypoints from `--entrypoint` (added to the annotated ones).
    pub entrypoints: Vec<String>,
    /// Revision from `--revision` (overrides the manifest's).
    pub revision: Option<String>,
}

/// The assembled payload plus the manifest metadata, which the payload does not carry.
pub struct Assembled {
    /// What the evaluator loads.
    pub payload: Payload,
    /// The manifest's `metadata` object (null when absent).
    pub metadata: Value,
}

/// Builds the payload: modules, merged data, manifest revision/roots and entrypoints.
pub fn assemble(sources: &SourceSet, options: &BuildOptions) -> Result<Assembled, BuildError> {
    let manifest: OpaManifest = match sources.files.get(".manifest") {
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| BuildError::Source(format!(".manifest: invalid JSON: {e}")))?,
        None => OpaManifest::default(),
    };
    let modules = sources.rego_modules()?;
    if modules.is_empty() {
        return Err(BuildError::Source("no .rego files found".into()));
    }

    let mut entrypoints: Vec<String> = Vec::new();
    let mut push = |e: String| {
        if !entrypoints.contains(&e) {
            entrypoints.push(e);
        }
    };
    for e in &options.entrypoints {
        push(normalize_entrypoint(e));
    }
    // From the manifest: OPA's `wasm[].entrypoint` and `metadata.entrypoints`.
    for e in manifest.wasm.iter().filter_map(|w| w.entrypoint.as_deref()) {
        push(normalize_entrypoint(e));
    }
    let listed = manifest
        .metadata
        .as_ref()
        .and_then(|m| m.get("entrypoints"))
        .and_then(Value::as_array);
    for e in listed.into_iter().flatten() {
        let e = e.as_str().ok_or_else(|| {
            BuildError::Source(".manifest: metadata.entrypoints must be strings".into())
        })?;
        push(normalize_entrypoint(e));
    }
    for (path, source) in &modules {
        for e in annotations::entrypoints(path, source)? {
            push(e);
        }
    }

    let mut data = Value::Object(Map::new());
    for (path, bytes) in &sources.files {
        let name = path.rsplit('/').next().unwrap_or(path);
        let value: Value = match name {
            "data.json" => serde_json::from_slice(bytes)
                .map_err(|e| BuildError::Source(format!("{path}: invalid JSON: {e}")))?,
            "data.yaml" | "data.yml" => yaml_serde::from_slice(bytes)
                .map_err(|e| BuildError::Source(format!("{path}: invalid YAML: {e}")))?,
            _ => continue,
        };
        let dir: Vec<&str> = path.split('/').collect();
        let dir = &dir[..dir.len() - 1];
        merge_at(&mut data, dir, value, path)?;
    }

    let payload = Payload {
        format: PAYLOAD_FORMAT,
        revision: options.revision.clone().unwrap_or(manifest.revision),
        roots: manifest.roots.unwrap_or_default(),
        entrypoints,
        content_hash: sources.content_hash(),
        modules: modules
            .into_iter()
            .map(|(path, source)| ModuleSource { path, source })
            .collect(),
        data,
        strict_builtin_errors: true,
        warm_up: true,
    };
    Ok(Assembled {
        payload,
        metadata: manifest.metadata.unwrap_or(Value::Null),
    })
}

/// Places `value` at `dir` inside `data`, merging objects; a conflicting leaf is an error.
fn merge_at(data: &mut Value, dir: &[&str], value: Value, file: &str) -> Result<(), BuildError> {
    let mut node = data;
    for key in dir {
        let obj = node
            .as_object_mut()
            .ok_or_else(|| BuildError::Source(format!("{file}: data conflict at {key}")))?;
        node = obj
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    merge(node, value, &dir.join("."), file)
}

fn merge(into: &mut Value, value: Value, at: &str, file: &str) -> Result<(), BuildError> {
    match (into, value) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                let at = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v, &at, file)?,
                    None => {
                        a.insert(k, v);
                    }
                }
            }
            Ok(())
        }
        (slot @ Value::Object(_), v)
            if slot.as_object().is_some_and(|o| o.is_empty()) && !at.is_empty() =>
        {
            *slot = v;
            Ok(())
        }
        _ => Err(BuildError::Source(format!(
            "{file}: data conflict at data.{at} (merged from several data files)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &str)]) -> SourceSet {
        let mut s = SourceSet::default();
        for (p, c) in files {
            s.files.insert(p.to_string(), c.as_bytes().to_vec());
        }
        s
    }

    #[test]
    fn data_files_land_at_their_directory() {
        let s = set(&[
            ("p.rego", "package p\nx := 1\n"),
            ("data.json", r#"{"top": 1}"#),
            ("a/b/data.json", r#"{"c": 2}"#),
            ("a/data.yaml", "d: 3\n"),
        ]);
        let a = assemble(&s, &BuildOptions::default()).unwrap();
        assert_eq!(
            a.payload.data,
            serde_json::json!({"top": 1, "a": {"b": {"c": 2}, "d": 3}})
        );
    }

    #[test]
    fn conflicting_data_is_refused() {
        let s = set(&[
            ("p.rego", "package p\n"),
            ("data.json", r#"{"a": {"b": 1}}"#),
            ("a/data.json", r#"{"b": 2}"#),
        ]);
        let err = assemble(&s, &BuildOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("data conflict at data.a.b"), "{err}");
    }

    #[test]
    fn manifest_and_flags_set_revision_and_entrypoints() {
        let s = set(&[
            (
                "p.rego",
                "package p\n# METADATA\n# entrypoint: true\nallow := true\n",
            ),
            (".manifest", r#"{"revision": "r7", "roots": ["p"]}"#),
        ]);
        let opts = BuildOptions {
            entrypoints: vec!["p/other".into()],
            revision: None,
        };
        let a = assemble(&s, &opts).unwrap();
        assert_eq!(a.payload.revision, "r7");
        assert_eq!(a.payload.roots, vec!["p"]);
        assert_eq!(a.payload.entrypoints, vec!["data.p.other", "data.p.allow"]);
        let opts = BuildOptions {
            entrypoints: vec![],
            revision: Some("cli".into()),
        };
        assert_eq!(assemble(&s, &opts).unwrap().payload.revision, "cli");
    }
}
