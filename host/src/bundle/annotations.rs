//! Entrypoints declared with OPA `# METADATA` annotations (`entrypoint: true`).

use super::BuildError;

/// Returns the `data.` paths of rules and packages annotated with `entrypoint: true`.
pub fn entrypoints(file: &str, source: &str) -> Result<Vec<String>, BuildError> {
    let lines: Vec<&str> = source.lines().collect();
    let package = lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("package "))
        .map(|p| p.split('#').next().unwrap_or("").trim().to_string());
    let mut found = Vec::new();
    for block in sark_guest::metadata_blocks(source) {
        let start_row = block.row;
        let meta: yaml_serde::Value = yaml_serde::from_str(&block.yaml).map_err(|e| {
            BuildError::Source(format!("{file}:{start_row}: invalid METADATA block: {e}"))
        })?;
        if meta.get("entrypoint").and_then(|v| v.as_bool()) != Some(true) {
            continue;
        }
        let next = lines.get(block.target_line).map(|l| l.trim());
        let scope = meta.get("scope").and_then(|v| v.as_str());
        let Some(package) = package.as_deref() else {
            return Err(BuildError::Source(format!(
                "{file}: METADATA entrypoint without a package"
            )));
        };
        let path = match (scope, next) {
            (Some("package" | "subpackages"), _) => format!("data.{package}"),
            (_, Some(l)) if l.starts_with("package ") => format!("data.{package}"),
            (_, Some(l)) => {
                let head = l.strip_prefix("default ").unwrap_or(l);
                let name: String = head
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.is_empty() {
                    return Err(BuildError::Source(format!(
                        "{file}:{start_row}: METADATA entrypoint is not followed by a rule"
                    )));
                }
                format!("data.{package}.{name}")
            }
            (_, None) => {
                return Err(BuildError::Source(format!(
                    "{file}:{start_row}: METADATA entrypoint is not followed by a rule"
                )));
            }
        };
        if !found.contains(&path) {
            found.push(path);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rule_and_package_entrypoints() {
        let src = "# METADATA\n# title: pkg\n# entrypoint: true\npackage a.b\n\n# METADATA\n# entrypoint: true\ndefault allow := false\n\n# METADATA\n# title: not an entrypoint\nx := 1\n\n# METADATA\n# entrypoint: true\ndecision := {}\n";
        assert_eq!(
            entrypoints("f.rego", src).unwrap(),
            vec!["data.a.b", "data.a.b.allow", "data.a.b.decision"]
        );
    }

    #[test]
    fn bad_yaml_is_located() {
        let err = entrypoints("f.rego", "package a\n# METADATA\n# entrypoint: [\nx := 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.rego:2"), "{err}");
    }
}
