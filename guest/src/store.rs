//! Documents written at run time (the WIT `store` interface, OPA's data API), layered over
//! the bundle's own data. Both paths apply writes through [`PolicySet::write_data`], so a
//! written document reads the same in the sandbox and natively.

use crate::error::PolicyError;
use crate::policy::PolicySet;
use regorus::Value;

/// Whether a bundle with `roots` owns `path` (keys below `data`): the path is a root or
/// below one. A bundle without roots owns the whole tree, as in OPA; so does a root `""`.
pub fn owned_by_roots(roots: &[String], path: &[String]) -> bool {
    if roots.is_empty() {
        return true;
    }
    roots.iter().any(|root| {
        let root = root_segments(root);
        root.len() <= path.len() && root.iter().zip(path).all(|(r, p)| r == p)
    })
}

/// Whether `path` is a strict ancestor of one of `roots` (writing it whole would replace
/// documents the bundle owns).
pub fn ancestor_of_root(roots: &[String], path: &[String]) -> bool {
    roots.iter().any(|root| {
        let root = root_segments(root);
        root.len() > path.len() && root.iter().zip(path).all(|(r, p)| r == p)
    })
}

fn root_segments(root: &str) -> Vec<&str> {
    root.split('/').filter(|s| !s.is_empty()).collect()
}

/// Checks that writing `value` (or removing, when `None`) at `path` touches nothing the
/// bundle owns: a document at an ancestor of a root is allowed only as an object whose
/// members are themselves writable (the bundle's part is kept).
fn check_writable(
    roots: &[String],
    path: &mut Vec<String>,
    value: Option<&Value>,
) -> Result<(), PolicyError> {
    let display = || format!("/{}", path.join("/"));
    if owned_by_roots(roots, path) {
        return Err(PolicyError::Bundle(format!(
            "path {} is owned by the bundle (roots {:?})",
            display(),
            roots
        )));
    }
    if !ancestor_of_root(roots, path) {
        return Ok(());
    }
    match value {
        Some(Value::Object(members)) => {
            for (key, member) in members.iter() {
                let Value::String(key) = key else { continue };
                path.push(key.to_string());
                let r = check_writable(roots, path, Some(member));
                path.pop();
                r?;
            }
            Ok(())
        }
        _ => Err(PolicyError::Bundle(format!(
            "path {} contains documents owned by the bundle (roots {:?})",
            display(),
            roots
        ))),
    }
}

impl PolicySet {
    /// Writes the document at `path` (the keys below `data`) to `json`, or removes it when
    /// `json` is `None`; the empty path replaces every written document at once (see the
    /// WIT `store.write`). Atomic: on any error the data is unchanged.
    pub fn write_data(&mut self, path: &[String], json: Option<&str>) -> Result<(), PolicyError> {
        let value = match json {
            Some(text) => Some(Value::from_json_str(text).map_err(|e| {
                PolicyError::InvalidInput(format!("the document is not valid JSON: {e:#}"))
            })?),
            None => None,
        };
        let roots = self.info().roots.clone();
        if path.is_empty() {
            if let Some(v) = &value {
                if v.as_object().is_err() {
                    return Err(PolicyError::InvalidInput(
                        "the documents written at the root must be an object".into(),
                    ));
                }
                // The root is an ancestor of every root: each member is checked on its own.
                check_writable(&roots, &mut Vec::new(), Some(v))?;
            }
            let mut data = self.base_data().clone();
            if let Some(v) = value {
                merge_into(&mut data, v)?;
            }
            return self.replace_data(data);
        }
        // Below the root a write replaces the whole document at `path`, so it may not be a
        // root, below one, or above one.
        if ancestor_of_root(&roots, path) {
            return Err(PolicyError::Bundle(format!(
                "path /{} contains documents owned by the bundle (roots {:?})",
                path.join("/"),
                roots
            )));
        }
        check_writable(&roots, &mut path.to_vec(), value.as_ref())?;
        let mut data = self.data().clone();
        let (last, parents) = path.split_last().expect("path is not empty");
        let mut node = &mut data;
        for (depth, key) in parents.iter().enumerate() {
            let not_object = || {
                PolicyError::InvalidInput(format!(
                    "/{} is not an object",
                    parents[..=depth].join("/")
                ))
            };
            let object = node.as_object_mut().map_err(|_| not_object())?;
            let key = Value::from(key.as_str());
            if value.is_none() && !object.contains_key(&key) {
                // Removing below a missing document removes nothing.
                return Ok(());
            }
            node = object.get_or_insert_with(key, Value::new_object);
            if value.is_some() && node.as_object().is_err() {
                return Err(not_object());
            }
        }
        let object = node.as_object_mut().map_err(|_| {
            PolicyError::InvalidInput(format!("/{} is not an object", parents.join("/")))
        })?;
        match value {
            Some(v) => {
                object.insert(Value::from(last.as_str()), v);
            }
            None => {
                if object.remove(&Value::from(last.as_str())).is_none() {
                    return Ok(());
                }
            }
        }
        self.replace_data(data)
    }
}

/// Deep-merges the object `from` into the object `into` (bundle data and written documents
/// live under different keys; where both have objects they are merged).
fn merge_into(into: &mut Value, from: Value) -> Result<(), PolicyError> {
    let Value::Object(from) = from else {
        return Err(PolicyError::InvalidInput("expected an object".into()));
    };
    let target = into
        .as_object_mut()
        .map_err(|_| PolicyError::InvalidInput("the data document is not an object".into()))?;
    for (key, value) in from.iter() {
        match target.get_mut(key) {
            Some(existing) if existing.as_object().is_ok() && value.as_object().is_ok() => {
                merge_into(existing, value.clone())?;
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModuleSource, Payload};

    fn set(roots: &[&str]) -> PolicySet {
        PolicySet::load_compiled(Payload {
            format: 1,
            revision: "r".into(),
            roots: roots.iter().map(|s| s.to_string()).collect(),
            entrypoints: vec!["data.app.allow".into()],
            content_hash: String::new(),
            modules: vec![ModuleSource {
                path: "app.rego".into(),
                source: "package app\nallow if input.user in data.users.admins\nn := count(object.get(data, [\"users\", \"admins\"], []))\n".into(),
                rego_version: Default::default(),
            }],
            data: serde_json::json!({"app": {"limit": 3}}),
            strict_builtin_errors: true,
            warm_up: true,
            rego_version: Default::default(),
        })
        .unwrap()
    }

    fn p(s: &str) -> Vec<String> {
        s.split('/').map(str::to_string).collect()
    }

    #[test]
    fn written_documents_are_seen_by_the_next_evaluation() {
        let mut s = set(&["app"]);
        assert_eq!(s.evaluate("app/allow", r#"{"user":"a"}"#).unwrap(), None);
        s.write_data(&p("users"), Some(r#"{"admins":["a"]}"#))
            .unwrap();
        assert_eq!(
            s.evaluate("app/allow", r#"{"user":"a"}"#)
                .unwrap()
                .as_deref(),
            Some("true")
        );
        s.write_data(&p("users/admins"), Some(r#"["b"]"#)).unwrap();
        assert_eq!(s.evaluate("app/allow", r#"{"user":"a"}"#).unwrap(), None);
        assert_eq!(
            s.evaluate("app/allow", r#"{"user":"b"}"#)
                .unwrap()
                .as_deref(),
            Some("true")
        );
        s.write_data(&p("users"), None).unwrap();
        assert_eq!(s.evaluate("app/n", "{}").unwrap().as_deref(), Some("0"));
        // The bundle's own data is untouched.
        assert_eq!(s.evaluate("app/limit", "{}").unwrap().as_deref(), Some("3"));
    }

    #[test]
    fn the_root_replaces_every_written_document() {
        let mut s = set(&["app"]);
        s.write_data(&p("users"), Some(r#"{"admins":["a"]}"#))
            .unwrap();
        s.write_data(&p("other"), Some("1")).unwrap();
        s.write_data(&[], Some(r#"{"users":{"admins":["c"]}}"#))
            .unwrap();
        assert_eq!(
            s.evaluate("app/allow", r#"{"user":"c"}"#)
                .unwrap()
                .as_deref(),
            Some("true")
        );
        assert_eq!(
            s.evaluate("other", "{}").unwrap_err().kind(),
            "unknown_entrypoint"
        );
        s.write_data(&[], None).unwrap();
        assert_eq!(s.evaluate("app/n", "{}").unwrap().as_deref(), Some("0"));
        assert_eq!(s.evaluate("app/limit", "{}").unwrap().as_deref(), Some("3"));
    }

    #[test]
    fn writes_inside_the_roots_are_refused_and_change_nothing() {
        let mut s = set(&["app"]);
        for path in ["app", "app/limit", "app/x/y"] {
            let e = s.write_data(&p(path), Some("1")).unwrap_err();
            assert_eq!(e.kind(), "bundle_error", "{path}: {e}");
        }
        assert_eq!(
            s.write_data(&[], Some(r#"{"app":1}"#)).unwrap_err().kind(),
            "bundle_error"
        );
        assert_eq!(s.evaluate("app/limit", "{}").unwrap().as_deref(), Some("3"));
        // No roots: the bundle owns everything.
        let mut all = set(&[]);
        assert_eq!(
            all.write_data(&p("users"), Some("1")).unwrap_err().kind(),
            "bundle_error"
        );
        // A nested root: its ancestor may be written around it.
        let mut nested = set(&["app/limit"]);
        nested.write_data(&p("app/users"), Some("[]")).unwrap();
        assert!(nested.write_data(&p("app"), Some("{}")).is_err());
        assert!(nested.write_data(&p("app"), None).is_err());
        // At the root, a document beside the nested root is kept with the bundle's.
        nested
            .write_data(&[], Some(r#"{"app":{"users":[1]}}"#))
            .unwrap();
        assert_eq!(
            nested.evaluate("app/users", "{}").unwrap().as_deref(),
            Some("[1]")
        );
        assert!(
            nested
                .write_data(&[], Some(r#"{"app":{"limit":1}}"#))
                .is_err()
        );
    }

    #[test]
    fn bad_documents_are_refused() {
        let mut s = set(&["app"]);
        assert_eq!(
            s.write_data(&p("users"), Some("{")).unwrap_err().kind(),
            "invalid_input"
        );
        s.write_data(&p("users"), Some("1")).unwrap();
        assert_eq!(
            s.write_data(&p("users/x"), Some("1")).unwrap_err().kind(),
            "invalid_input"
        );
        assert_eq!(
            s.write_data(&[], Some("[]")).unwrap_err().kind(),
            "invalid_input"
        );
        // Removing what is not there is not an error.
        s.write_data(&p("nothing/here"), None).unwrap();
    }
}
