//! `sark conformance`: OPA's compliance cases (YAML) through the component (or the native
//! path), with a skip list and per-folder counts.
//!
//! Each case loads its own modules and data into a fresh instance of the bare evaluator
//! component (`loader.load`, see [`BareEvaluator`]), then runs the case's query through
//! `evaluator.query`; on the native path, into a fresh [`PolicySet`].

use crate::evaluator::{EvalError, PathKind};
use crate::runtime::{BareEvaluator, WasmRuntime};
use sark_guest::{ModuleSource, PAYLOAD_FORMAT, Payload, PolicyError, PolicySet, RegoVersion};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Deadline of one case on the wasm path: generous, some cases are heavy.
const CASE_TIMEOUT_TICKS: u64 = 10_000;
/// Memory cap of one case's instance.
const CASE_MEMORY_BYTES: usize = 1 << 30;

#[derive(Debug, Deserialize)]
struct CaseFile {
    cases: Vec<Case>,
}

/// One compliance case (see `../shared/conformance/README.md`).
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// `folder/name`.
    pub note: String,
    query: String,
    #[serde(default)]
    modules: Vec<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    input_term: Option<String>,
    #[serde(default)]
    want_result: Option<Vec<BTreeMap<String, Value>>>,
    #[serde(default)]
    sort_bindings: bool,
    #[serde(default)]
    want_error: Option<String>,
    #[serde(default)]
    want_error_code: Option<String>,
    /// Builtin errors fail the evaluation (OPA's `--strict-builtin-errors`); OPA's default,
    /// and so the case's, is non-strict.
    #[serde(default)]
    strict_error: bool,
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The result (or the expected error) matched.
    Pass,
    /// Listed in the skip file, with its reason.
    Skip(String),
    /// Wrong result, unexpected error or a trap; the one-line reason.
    Fail(String),
}

/// Reads every case under `dir` (recursively), sorted by note.
pub fn load_cases(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(p);
            }
        }
    }
    let mut cases = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let file: CaseFile =
            yaml_serde::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        cases.extend(file.cases);
    }
    cases.sort_by(|a, b| a.note.cmp(&b.note));
    Ok(cases)
}

/// Reads a skip list: one `note  # reason` per line; blank lines and `#` lines are ignored.
/// Every entry must give a reason.
pub fn load_skips(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut skips = BTreeMap::new();
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (note, reason) = line
            .split_once('#')
            .map(|(n, r)| (n.trim(), r.trim()))
            .filter(|(_, r)| !r.is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!("{}:{}: a skip needs `# reason`", path.display(), i + 1)
            })?;
        skips.insert(note.to_string(), reason.to_string());
    }
    Ok(skips)
}

/// Runs cases on one path.
pub struct Runner {
    path: PathKind,
    wasm: Option<BareEvaluator>,
    rego_version: RegoVersion,
}

impl Runner {
    /// Prepares the path (compiles the bare evaluator component on `runtime` for `wasm`);
    /// the cases' modules and queries are parsed as `rego_version`.
    pub fn new(
        path: PathKind,
        runtime: &WasmRuntime,
        rego_version: RegoVersion,
    ) -> anyhow::Result<Self> {
        let wasm = match path {
            PathKind::Native => None,
            PathKind::Wasm => Some(BareEvaluator::new(runtime)?),
        };
        Ok(Runner {
            path,
            wasm,
            rego_version,
        })
    }

    /// Loads the case's policies and data and runs its query; the result rows as JSON.
    fn run_query(
        &self,
        modules: &[String],
        data: &Value,
        query: &str,
        input: &str,
        strict: bool,
    ) -> Result<String, EvalError> {
        let payload = Payload {
            format: PAYLOAD_FORMAT,
            revision: String::new(),
            roots: vec![],
            entrypoints: vec![],
            content_hash: String::new(),
            modules: modules
                .iter()
                .enumerate()
                .map(|(i, source)| ModuleSource {
                    path: format!("mod{i}.rego"),
                    source: source.clone(),
                    rego_version: self.rego_version,
                })
                .collect(),
            data: data.clone(),
            strict_builtin_errors: strict,
            warm_up: true,
            rego_version: self.rego_version,
        };
        match &self.wasm {
            None => {
                let run = || -> Result<String, PolicyError> {
                    PolicySet::load(payload)?.query(query, input)
                };
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                    .map_err(|_| EvalError::Trap("the native evaluator panicked".into()))?
                    .map_err(EvalError::Policy)
            }
            Some(bare) => {
                let bytes =
                    serde_json::to_vec(&payload).map_err(|e| EvalError::Trap(e.to_string()))?;
                bare.load_and_query(&bytes, query, input, CASE_TIMEOUT_TICKS, CASE_MEMORY_BYTES)
            }
        }
    }

    /// Runs one case.
    pub fn run(&self, case: &Case) -> Verdict {
        let data = case
            .data
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let input = match (&case.input, &case.input_term) {
            (Some(v), _) => v.to_string(),
            (None, Some(term)) => {
                // Sets become arrays: JSON is how input crosses the WIT boundary.
                let query = format!("input_term_value := {term}");
                let empty = Value::Object(Default::default());
                let value = self
                    .run_query(&[], &empty, &query, "", case.strict_error)
                    .ok()
                    .and_then(|rows| serde_json::from_str::<Value>(&rows).ok())
                    .map(|rows| rows[0]["bindings"]["input_term_value"].clone())
                    .filter(|v| !v.is_null());
                match value {
                    Some(v) => v.to_string(),
                    None => return Verdict::Fail(format!("input_term `{term}` has no value")),
                }
            }
            (None, None) => String::new(),
        };
        let outcome = self.run_query(&case.modules, &data, &case.query, &input, case.strict_error);
        let wants_error = case.want_error.is_some() || case.want_error_code.is_some();
        match outcome {
            Err(
                e @ (EvalError::Trap(_)
                | EvalError::Deadline { .. }
                | EvalError::MemoryCap { .. }
                | EvalError::Instance(_)),
            ) => Verdict::Fail(format!("trap: {e}")),
            Err(_) if wants_error => Verdict::Pass,
            Err(e) => Verdict::Fail(one_line(&format!("unexpected error: {e}"))),
            Ok(_) if wants_error => Verdict::Fail(format!(
                "expected error {}",
                case.want_error_code
                    .as_deref()
                    .or(case.want_error.as_deref())
                    .unwrap_or("")
            )),
            Ok(rows) => compare(case, &rows),
        }
    }
}

/// One line of at most 240 characters; for Regorus diagnostics, the `error: …` line with
/// the location in front.
fn one_line(s: &str) -> String {
    let what = s
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "));
    let at = s.lines().find_map(|l| l.trim().strip_prefix("--> "));
    let s = match (what, at) {
        (Some(w), Some(a)) => format!("{} at {a}: {w}", s.lines().next().unwrap_or("").trim()),
        _ => s.to_string(),
    };
    let line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    line.chars().take(240).collect()
}

/// Compares result rows with `want_result`: bindings of user variables, arrays sorted with
/// `sort_bindings`, rows compared as a multiset.
fn compare(case: &Case, rows: &str) -> Verdict {
    let Some(want) = &case.want_result else {
        return Verdict::Pass;
    };
    let parsed: Vec<Value> = serde_json::from_str(rows).unwrap_or_default();
    let normalize = |v: &Value| -> Value {
        if case.sort_bindings {
            sort_arrays(v)
        } else {
            v.clone()
        }
    };
    let mut got: Vec<String> = parsed
        .iter()
        .map(|r| {
            let mut b = BTreeMap::new();
            if let Some(Value::Object(map)) = r.get("bindings") {
                for (k, v) in map {
                    if !k.starts_with('$') && !k.starts_with("__") {
                        b.insert(k.clone(), normalize(v));
                    }
                }
            }
            serde_json::to_string(&b).unwrap_or_default()
        })
        .collect();
    let mut expected: Vec<String> = want
        .iter()
        .map(|row| {
            let b: BTreeMap<String, Value> =
                row.iter().map(|(k, v)| (k.clone(), normalize(v))).collect();
            serde_json::to_string(&b).unwrap_or_default()
        })
        .collect();
    got.sort();
    expected.sort();
    if got == expected {
        Verdict::Pass
    } else {
        Verdict::Fail(one_line(&format!(
            "want {}, got {}",
            expected.join(" "),
            got.join(" ")
        )))
    }
}

fn sort_arrays(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(sort_arrays).collect();
            items.sort_by_key(|x| x.to_string());
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), sort_arrays(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Counts of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Passed cases.
    pub passed: usize,
    /// Failed cases.
    pub failed: usize,
    /// Skipped cases.
    pub skipped: usize,
    /// Failures that were traps (must stay zero).
    pub traps: usize,
}

/// Runs `cases` (optionally only `folders`), printing per-folder counts and, with
/// `verbose`, each failure with its reason. Returns the totals.
pub fn run_all(
    runner: &Runner,
    cases: &[Case],
    skips: &BTreeMap<String, String>,
    folders: &[String],
    verbose: bool,
) -> Totals {
    let mut per_folder: BTreeMap<String, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    let wanted: BTreeSet<&str> = folders.iter().map(String::as_str).collect();
    for case in cases {
        let folder = case.note.split('/').next().unwrap_or("").to_string();
        if !wanted.is_empty() && !wanted.contains(folder.as_str()) {
            continue;
        }
        let verdict = match skips.get(&case.note) {
            Some(reason) => Verdict::Skip(reason.clone()),
            None => runner.run(case),
        };
        let t = per_folder.entry(folder).or_default();
        match &verdict {
            Verdict::Pass => {
                t.passed += 1;
                total.passed += 1;
            }
            Verdict::Skip(_) => {
                t.skipped += 1;
                total.skipped += 1;
            }
            Verdict::Fail(reason) => {
                t.failed += 1;
                total.failed += 1;
                if reason.starts_with("trap") {
                    t.traps += 1;
                    total.traps += 1;
                }
                if verbose {
                    println!("FAIL {}: {reason}", case.note);
                }
            }
        }
    }
    for (folder, t) in &per_folder {
        println!(
            "{folder:<40} {:>4} passed {:>4} failed {:>4} skipped",
            t.passed, t.failed, t.skipped
        );
    }
    println!("path: {}", runner.path);
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(yaml: &str) -> Case {
        yaml_serde::from_str(yaml).unwrap()
    }

    #[test]
    fn rows_compare_as_sorted_bindings() {
        let c = case(
            "note: a/b\nquery: data.x.p = x\nwant_result:\n- x: [3, 1]\nsort_bindings: true\n",
        );
        assert_eq!(
            compare(&c, r#"[{"expressions":[],"bindings":{"x":[1,3]}}]"#),
            Verdict::Pass
        );
        assert!(matches!(
            compare(&c, r#"[{"bindings":{"x":[1]}}]"#),
            Verdict::Fail(_)
        ));
        assert!(matches!(compare(&c, "[]"), Verdict::Fail(_)));
        let undefined = case("note: a/c\nquery: data.x.p = x\nwant_result: []\n");
        assert_eq!(compare(&undefined, "[]"), Verdict::Pass);
    }

    #[test]
    fn skips_need_a_reason() {
        let dir = std::env::temp_dir().join(format!("sark-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("ok.txt");
        std::fs::write(
            &ok,
            "# header\n\na/b  # interpolation is not parsed by Regorus\n",
        )
        .unwrap();
        assert_eq!(
            load_skips(&ok).unwrap()["a/b"],
            "interpolation is not parsed by Regorus"
        );
        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "a/b\n").unwrap();
        assert!(load_skips(&bad).is_err());
    }
}
