//! Turning a [`SourceSet`] into the evaluator's [`Payload`]: manifest, merged data tree,
//! entrypoints.

use super::{BuildError, annotations, source::SourceSet};
use sark_guest::{ModuleSource, PAYLOAD_FORMAT, Payload, RegoVersion, normalize_entrypoint};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

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
    /// The bundle's Rego version (`0` or `1`); overrides `--v0-compatible`.
    #[serde(default)]
    rego_version: Option<i64>,
    /// Per-file Rego versions: path glob → `0` or `1`; overrides `rego_version`.
    #[serde(default)]
    file_rego_versions: BTreeMap<String, i64>,
}

/// How each module's Rego version is chosen, as OPA does: the first `file_rego_versions`
/// glob that matches the module's path, else the manifest's `rego_version`, else the
/// default of the command line (`--v0-compatible`).
struct RegoVersions {
    default: RegoVersion,
    files: Vec<(globset::GlobMatcher, RegoVersion)>,
}

impl RegoVersions {
    fn new(manifest: &OpaManifest, v0_compatible: bool) -> Result<Self, BuildError> {
        let version = |n: i64, what: &str| {
            u8::try_from(n)
                .map_err(|_| n.to_string())
                .and_then(RegoVersion::try_from)
                .map_err(|_| {
                    BuildError::Source(format!(
                        ".manifest: {what}: unsupported Rego version {n} (expected 0 or 1)"
                    ))
                })
        };
        let default = match manifest.rego_version {
            Some(n) => version(n, "rego_version")?,
            None if v0_compatible => RegoVersion::V0,
            None => RegoVersion::V1,
        };
        let mut files = Vec::new();
        for (pattern, n) in &manifest.file_rego_versions {
            let what = format!("file_rego_versions[{pattern:?}]");
            let glob = globset::GlobBuilder::new(pattern.trim_start_matches('/'))
                .literal_separator(true)
                .build()
                .map_err(|e| BuildError::Source(format!(".manifest: {what}: {e}")))?;
            files.push((glob.compile_matcher(), version(*n, &what)?));
        }
        Ok(RegoVersions { default, files })
    }

    fn of(&self, path: &str) -> RegoVersion {
        let path = path.trim_start_matches('/');
        self.files
            .iter()
            .find(|(glob, _)| glob.is_match(path))
            .map_or(self.default, |(_, v)| *v)
    }
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
    /// `--v0-compatible`: modules are Rego v0 unless the manifest says otherwise.
    pub v0_compatible: bool,
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
    let versions = RegoVersions::new(&manifest, options.v0_compatible)?;

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
            .map(|(path, source)| ModuleSource {
                rego_version: versions.of(&path),
                path,
                source,
            })
            .collect(),
        data,
        strict_builtin_errors: true,
        warm_up: true,
        rego_version: versions.default,
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
            ..Default::default()
        };
        let a = assemble(&s, &opts).unwrap();
        assert_eq!(a.payload.revision, "r7");
        assert_eq!(a.payload.roots, vec!["p"]);
        assert_eq!(a.payload.entrypoints, vec!["data.p.other", "data.p.allow"]);
        let opts = BuildOptions {
            revision: Some("cli".into()),
            ..Default::default()
        };
        assert_eq!(assemble(&s, &opts).unwrap().payload.revision, "cli");
    }

    #[test]
    fn rego_versions_follow_file_globs_then_manifest_then_flag() {
        let files = [
            ("a/old.rego", "package a\np { true }\n"),
            ("a/new.rego", "package a\nq if true\n"),
            ("b/x.rego", "package b\nr { true }\n"),
        ];
        let version_of = |manifest: Option<&str>, v0_compatible: bool| {
            let mut f: Vec<(&str, &str)> = files.to_vec();
            if let Some(m) = manifest {
                f.push((".manifest", m));
            }
            let opts = BuildOptions {
                v0_compatible,
                ..Default::default()
            };
            let a = assemble(&set(&f), &opts).unwrap();
            let versions: Vec<(String, RegoVersion)> = a
                .payload
                .modules
                .iter()
                .map(|m| (m.path.clone(), m.rego_version))
                .collect();
            (versions, a.payload.rego_version)
        };
        use RegoVersion::{V0, V1};
        let (v, default) = version_of(None, false);
        assert!(v.iter().all(|(_, v)| *v == V1) && default == V1);
        let (v, default) = version_of(None, true);
        assert!(v.iter().all(|(_, v)| *v == V0) && default == V0);
        let manifest = r#"{"rego_version": 1, "file_rego_versions": {"/a/old.rego": 0, "b/*": 0}}"#;
        let (v, default) = version_of(Some(manifest), true);
        assert_eq!(default, V1, "the manifest overrides --v0-compatible");
        assert_eq!(
            v,
            vec![
                ("a/new.rego".to_string(), V1),
                ("a/old.rego".to_string(), V0),
                ("b/x.rego".to_string(), V0),
            ]
        );
        // `*` does not cross `/`; `**` does.
        let (v, _) = version_of(Some(r#"{"file_rego_versions": {"*.rego": 0}}"#), false);
        assert!(v.iter().all(|(_, v)| *v == V1), "{v:?}");
        let (v, _) = version_of(Some(r#"{"file_rego_versions": {"**/*.rego": 0}}"#), false);
        assert!(v.iter().all(|(_, v)| *v == V0), "{v:?}");
    }

    #[test]
    fn a_bad_rego_version_is_refused_with_its_place() {
        for (manifest, place) in [
            (
                r#"{"rego_version": 2}"#,
                "rego_version: unsupported Rego version 2",
            ),
            (
                r#"{"file_rego_versions": {"a/*.rego": -1}}"#,
                "file_rego_versions[\"a/*.rego\"]: unsupported Rego version -1",
            ),
            (r#"{"rego_version": "0"}"#, "invalid JSON"),
        ] {
            let s = set(&[("p.rego", "package p\n"), (".manifest", manifest)]);
            let err = assemble(&s, &BuildOptions::default())
                .err()
                .expect("refused")
                .to_string();
            assert!(err.contains(place), "{manifest}: {err}");
        }
    }
}
