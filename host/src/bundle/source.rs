//! Collecting a policy set's files from a directory or an OPA bundle `.tar.gz`.

use super::BuildError;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path};

/// Largest single file accepted into a bundle (policies and data).
const MAX_FILE_BYTES: u64 = 256 << 20;

/// The files of a policy set, keyed by `/`-separated path relative to the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSet {
    /// `*.rego`, `data.json`, `data.yaml`/`data.yml` and `.manifest`, by path.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl SourceSet {
    /// Reads a directory tree or an OPA bundle `.tar.gz`.
    pub fn read(path: &Path) -> Result<Self, BuildError> {
        let meta = std::fs::metadata(path).map_err(|e| BuildError::io(path, e))?;
        if meta.is_dir() {
            Self::read_dir(path)
        } else {
            Self::read_tar_gz(path)
        }
    }

    fn read_dir(root: &Path) -> Result<Self, BuildError> {
        let canonical_root = root.canonicalize().map_err(|e| BuildError::io(root, e))?;
        let mut set = SourceSet::default();
        let mut stack = vec![canonical_root.clone()];
        let mut visited = std::collections::HashSet::new();
        while let Some(dir) = stack.pop() {
            // A symlink back to an ancestor would loop forever: visit each directory once.
            let real = dir.canonicalize().map_err(|e| BuildError::io(&dir, e))?;
            if !visited.insert(real) {
                continue;
            }
            let mut entries = std::fs::read_dir(&dir)
                .map_err(|e| BuildError::io(&dir, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| BuildError::io(&dir, e))?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let path = entry.path();
                // Follow symlinks only when they stay inside the policy directory.
                let target = path.canonicalize().map_err(|e| BuildError::io(&path, e))?;
                if !target.starts_with(&canonical_root) {
                    return Err(BuildError::Source(format!(
                        "{} points outside the policy directory",
                        path.display()
                    )));
                }
                let rel = relative(&canonical_root, &path)?;
                if target.is_dir() {
                    if !is_hidden(&rel) {
                        stack.push(path);
                    }
                } else if wanted(&rel) {
                    let meta = target.metadata().map_err(|e| BuildError::io(&path, e))?;
                    if meta.len() > MAX_FILE_BYTES {
                        return Err(BuildError::Source(format!(
                            "{rel} is larger than {MAX_FILE_BYTES} bytes"
                        )));
                    }
                    let bytes = std::fs::read(&target).map_err(|e| BuildError::io(&path, e))?;
                    set.files.insert(rel, bytes);
                }
            }
        }
        Ok(set)
    }

    fn read_tar_gz(path: &Path) -> Result<Self, BuildError> {
        let file = std::fs::File::open(path).map_err(|e| BuildError::io(path, e))?;
        let files = tar_gz_files(file, MAX_FILE_BYTES)
            .map_err(|e| BuildError::Source(format!("{}: {e}", path.display())))?;
        Ok(Self::from_files(files))
    }

    /// The policy set among `files` (every file of an OPA bundle, by path): its policies,
    /// data and manifest, without hidden directories.
    pub fn from_files(files: BTreeMap<String, Vec<u8>>) -> Self {
        SourceSet {
            files: files
                .into_iter()
                .filter(|(rel, _)| wanted(rel) && !is_hidden(parent_of(rel)))
                .collect(),
        }
    }

    /// Hex sha-256 over every file in path order: for each, the path's UTF-8 bytes, a zero
    /// byte, the content length as u64 little-endian, and the content.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        for (path, bytes) in &self.files {
            h.update(path.as_bytes());
            h.update([0u8]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        hex::encode(h.finalize())
    }

    /// The Rego modules, as (path, source) in path order.
    pub fn rego_modules(&self) -> Result<Vec<(String, String)>, BuildError> {
        self.files
            .iter()
            .filter(|(p, _)| p.ends_with(".rego"))
            .map(|(p, b)| {
                String::from_utf8(b.clone())
                    .map(|s| (p.clone(), s))
                    .map_err(|_| BuildError::Source(format!("{p} is not valid UTF-8")))
            })
            .collect()
    }
}

/// Every regular file of an OPA bundle `.tar.gz` read from `reader`, by `/`-separated path
/// relative to the bundle root (a leading `/` or `./` is dropped). Refuses entries that
/// escape the root, files larger than `max_file_bytes`, and a corrupt archive.
pub fn tar_gz_files(
    reader: impl Read,
    max_file_bytes: u64,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut files = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("not a .tar.gz bundle: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("corrupt archive: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| format!("bad entry name: {e}"))?
            .into_owned();
        let mut parts = Vec::new();
        for c in name.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir | Component::RootDir => {}
                _ => return Err(format!("entry {} escapes the bundle root", name.display())),
            }
        }
        let rel = parts.join("/");
        if entry.size() > max_file_bytes {
            return Err(format!("{rel} is larger than {max_file_bytes} bytes"));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading {rel}: {e}"))?;
        if files.insert(rel.clone(), bytes).is_some() {
            return Err(format!("{rel} appears twice in the archive"));
        }
    }
    Ok(files)
}

include!(concat!(env!("OUT_DIR"), "/example_policies.rs"));

/// The example MCP policies of `policies/`, embedded in the binary.
pub fn example_policies() -> SourceSet {
    SourceSet {
        files: EXAMPLE_POLICY_FILES
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect(),
    }
}

fn relative(root: &Path, path: &Path) -> Result<String, BuildError> {
    let rel = path.strip_prefix(root).map_err(|_| {
        BuildError::Source(format!(
            "{} is outside the policy directory",
            path.display()
        ))
    })?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}

fn parent_of(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(d, _)| d)
}

/// Hidden directories (`.git`, `.opa`) are skipped, as `opa build` does.
fn is_hidden(rel_dir: &str) -> bool {
    rel_dir
        .split('/')
        .any(|p| p.starts_with('.') && p.len() > 1)
}

fn wanted(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.ends_with(".rego")
        || matches!(name, "data.json" | "data.yaml" | "data.yml")
        || rel == ".manifest"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_depends_on_paths_and_bytes() {
        let mut a = SourceSet::default();
        a.files.insert("x.rego".into(), b"package x".to_vec());
        let mut b = a.clone();
        assert_eq!(a.content_hash(), b.content_hash());
        b.files.insert("x.rego".into(), b"package y".to_vec());
        assert_ne!(a.content_hash(), b.content_hash());
        let mut c = SourceSet::default();
        c.files.insert("y.rego".into(), b"package x".to_vec());
        assert_ne!(a.content_hash(), c.content_hash());
    }

    #[test]
    fn selects_bundle_files() {
        assert!(wanted("a/b/data.json"));
        assert!(wanted(".manifest"));
        assert!(wanted("p/policy.rego"));
        assert!(!wanted("samples/input.json"));
        assert!(!wanted("a/.manifest"));
        assert!(is_hidden(".git/objects"));
        assert!(!is_hidden("mcp/gateway"));
    }
}
