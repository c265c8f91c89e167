//! A loaded policy set: the Regorus engine with the bundle's modules and data.

use crate::error::PolicyError;
use crate::payload::{BundleInfo, PAYLOAD_FORMAT, Payload, RegoVersion};
use core::num::{NonZeroU32, NonZeroUsize};
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::RegoVM;
use regorus::rvm::program::Program;
use regorus::{CompiledPolicy, Engine, PolicyLengthConfig, Rc, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Policy size limits. Regorus's defaults (1,024 columns) reject valid OPA policies that
/// embed JWTs or certificates on one line; OPA has no such limits, so ours are generous and
/// only guard against pathological sources.
const MAX_POLICY_COLUMNS: u32 = 1 << 20;
const MAX_POLICY_FILE_BYTES: usize = 64 << 20;
const MAX_POLICY_LINES: usize = 1 << 20;

/// The policies and data of one bundle, ready to evaluate.
///
/// ```
/// use sark_guest::{Payload, PolicySet};
/// let payload = Payload {
///     format: 1,
///     revision: "r1".into(),
///     roots: vec![],
///     entrypoints: vec!["data.demo.allow".into()],
///     content_hash: String::new(),
///     modules: vec![sark_guest::ModuleSource {
///         path: "demo.rego".into(),
///         source: "package demo\nallow if input.user == \"alice\"\n".into(),
///         rego_version: Default::default(),
///     }],
///     data: serde_json::json!({}),
///     strict_builtin_errors: true,
///     warm_up: true,
///     rego_version: Default::default(),
/// };
/// let mut set = PolicySet::load(payload).unwrap();
/// assert_eq!(set.evaluate("demo/allow", r#"{"user":"alice"}"#).unwrap().as_deref(), Some("true"));
/// assert_eq!(set.evaluate("demo/allow", r#"{"user":"bob"}"#).unwrap(), None);
/// ```
pub struct PolicySet {
    engine: Engine,
    /// Entrypoints precompiled to RVM programs (only with [`PolicySet::load_compiled`]).
    programs: BTreeMap<String, CompiledEntrypoint>,
    info: BundleInfo,
    /// `data.`-prefixed package paths of the modules.
    packages: Vec<String>,
    /// The data document (for resolving data paths): the bundle's data and the documents
    /// written at run time.
    data: Value,
    /// The bundle's own data, as loaded (what [`PolicySet::write_data`] layers over).
    base_data: Value,
    /// Module sources, for the unit-test runner.
    pub(crate) modules: Vec<crate::ModuleSource>,
}

/// One entrypoint's RVM program, with the VM that runs it. The program and the compiled
/// policy are shared, so a clone of the set gets its own VM without compiling again.
struct CompiledEntrypoint {
    vm: RegoVM,
    policy: CompiledPolicy,
    program: Arc<Program>,
}

impl CompiledEntrypoint {
    fn new(policy: CompiledPolicy, program: Arc<Program>, data: &Value) -> Option<Self> {
        let mut vm = RegoVM::new_with_policy(policy.clone());
        vm.load_program(program.clone());
        vm.set_data(data.clone()).ok()?;
        Some(CompiledEntrypoint {
            vm,
            policy,
            program,
        })
    }
}

impl PolicySet {
    /// Parses and compiles a payload. Fails with a located `Compile` error on a bad module
    /// and `UnknownEntrypoint` when a declared entrypoint names nothing in the bundle.
    pub fn load(payload: Payload) -> Result<Self, PolicyError> {
        Self::load_with(payload, false, None)
    }

    /// Like [`PolicySet::load`], with Regorus's execution timer set to `limit` from the start:
    /// loading evaluates every entrypoint once, so without a limit a slow policy would stall
    /// the load itself (a server's reload), not just its decisions.
    pub fn load_with_time_limit(
        payload: Payload,
        limit: std::time::Duration,
    ) -> Result<Self, PolicyError> {
        Self::load_with(payload, false, Some(limit))
    }

    /// Like [`PolicySet::load`], and also compiles every entrypoint to a Regorus VM (RVM)
    /// program, which evaluates faster than the interpreter. Entrypoints the RVM compiler
    /// cannot handle stay on the interpreter.
    pub fn load_compiled(payload: Payload) -> Result<Self, PolicyError> {
        Self::load_with(payload, true, None)
    }

    /// [`PolicySet::load_compiled`] with the execution timer of
    /// [`PolicySet::load_with_time_limit`] (the host's native path).
    pub fn load_compiled_with_time_limit(
        payload: Payload,
        limit: std::time::Duration,
    ) -> Result<Self, PolicyError> {
        Self::load_with(payload, true, Some(limit))
    }

    fn load_with(
        payload: Payload,
        compile: bool,
        time_limit: Option<std::time::Duration>,
    ) -> Result<Self, PolicyError> {
        if payload.format != PAYLOAD_FORMAT {
            return Err(PolicyError::Bundle(format!(
                "payload format {} is not supported (expected {PAYLOAD_FORMAT})",
                payload.format
            )));
        }
        let payload_warm_up = payload.warm_up;
        let mut engine = Engine::new();
        engine.set_policy_length_config(policy_length_config());
        engine.set_strict_builtin_errors(payload.strict_builtin_errors);
        let any_v0 = payload
            .modules
            .iter()
            .any(|m| m.rego_version == RegoVersion::V0);
        crate::builtins::register(&mut engine, payload.strict_builtin_errors, any_v0)
            .map_err(|e| PolicyError::Bundle(format!("cannot register builtins: {e:#}")))?;
        // What Regorus parses: each module after the source rewrites. The checks below see
        // the same text.
        let mut sources: Vec<(String, String)> = Vec::with_capacity(payload.modules.len());
        let mut versions = Vec::with_capacity(payload.modules.len());
        let annotations = if payload
            .modules
            .iter()
            .any(|m| crate::desugar::mentions_metadata(&m.source))
        {
            crate::desugar::collect_annotations(payload.modules.iter().map(|m| m.source.as_str()))
        } else {
            Default::default()
        };
        for m in &payload.modules {
            // Checked after the rewrites: they never nest less than the original.
            for (path, source) in crate::desugar::module(&m.path, &m.source, &annotations)? {
                crate::source_limits::check(&path, &source)?;
                sources.push((path, source));
                versions.push(m.rego_version);
            }
        }
        crate::recursion::check(&sources)?;
        crate::arity::check(&sources, |name| crate::builtins::arity(name, any_v0))?;
        let mut packages = Vec::new();
        for (version, (path, source)) in versions.into_iter().zip(sources) {
            // Regorus reads the syntax version when a module is added, so v0 and v1 modules
            // can live in one engine.
            engine.set_rego_v0(version == RegoVersion::V0);
            let package = engine
                .add_policy(path, source)
                .map_err(|e| PolicyError::compile(&e))?;
            if !packages.contains(&package) {
                packages.push(package);
            }
        }
        // Ad-hoc queries are parsed in the bundle's default syntax.
        engine.set_rego_v0(payload.rego_version == RegoVersion::V0);
        let data_keys = match &payload.data {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            serde_json::Value::Null => Vec::new(),
            _ => {
                return Err(PolicyError::Bundle(
                    "the data document must be a JSON object".into(),
                ));
            }
        };
        if !data_keys.is_empty() {
            let data = Value::from_json_str(&payload.data.to_string())
                .map_err(|e| PolicyError::Bundle(format!("invalid data document: {e:#}")))?;
            engine
                .add_data(data)
                .map_err(|e| PolicyError::Bundle(format!("cannot add data: {e:#}")))?;
        }
        // Force Regorus's analysis and scheduling now, so a compile error surfaces at build time.
        engine
            .eval_query("true".to_string(), false)
            .map_err(|e| PolicyError::compile(&e))?;

        let mut entrypoints = Vec::with_capacity(payload.entrypoints.len());
        for ep in &payload.entrypoints {
            let path = normalize_entrypoint(ep);
            if !entrypoints.contains(&path) {
                entrypoints.push(path);
            }
        }
        let data_value = engine.get_data();
        let mut set = PolicySet {
            programs: BTreeMap::new(),
            engine,
            info: BundleInfo {
                revision: payload.revision,
                entrypoints,
                roots: payload.roots,
                content_hash: payload.content_hash,
                regorus_version: crate::REGORUS_VERSION.to_string(),
                modules: payload.modules.iter().map(|m| m.path.clone()).collect(),
            },
            packages,
            data: data_value.clone(),
            base_data: data_value.clone(),
            modules: payload.modules,
        };
        if let Some(limit) = time_limit {
            set.set_time_limit(limit);
        }
        // Every entrypoint must name something; checked without evaluating.
        for ep in set.info.entrypoints.clone() {
            set.check_entrypoint(&ep)?;
        }
        // Warm the engine's caches with an empty input. Only a warm-up: an evaluation error
        // here is the policy's answer to no input, not a fault of the bundle.
        if payload_warm_up {
            for ep in set.info.entrypoints.clone() {
                let _ = set.evaluate(&ep, "");
            }
        }
        if compile {
            for ep in set.info.entrypoints.clone() {
                if let Some(compiled) = set.compile_entrypoint(&ep, &data_value) {
                    set.programs.insert(ep, compiled);
                }
            }
        }
        Ok(set)
    }

    /// Fails with `UnknownEntrypoint` when `path` (a normalized entrypoint) names nothing
    /// [`PolicySet::evaluate`] could evaluate: a rule, a package or an ancestor of one, a data
    /// document, or a path inside a rule's value. Nothing is evaluated.
    fn check_entrypoint(&mut self, path: &str) -> Result<(), PolicyError> {
        if self.is_rule(path) || self.is_package_or_above(path) || self.data_has(path) {
            return Ok(());
        }
        let parts: Vec<&str> = path.split('.').collect();
        if !path.contains('[') && (2..parts.len()).any(|n| self.is_rule(&parts[..n].join("."))) {
            return Ok(());
        }
        Err(PolicyError::UnknownEntrypoint(path.to_string()))
    }

    /// Whether `path` is a rule path the interpreter knows (without evaluating it).
    fn is_rule(&mut self, path: &str) -> bool {
        match self.engine.compile_with_entrypoint(&Rc::from(path)) {
            Ok(_) => true,
            Err(e) => !format!("{e}").contains("not a valid rule path"),
        }
    }

    /// Whether `path` is `data`, a package, or a prefix of a package.
    fn is_package_or_above(&self, path: &str) -> bool {
        let is_prefix_of = |prefix: &str, p: &str| {
            p == prefix || (p.starts_with(prefix) && p[prefix.len()..].starts_with(['.', '[']))
        };
        path == "data" || self.packages.iter().any(|pkg| is_prefix_of(path, pkg))
    }

    /// Compiles one entrypoint to an RVM program with the bundle's data loaded.
    fn compile_entrypoint(&mut self, entrypoint: &str, data: &Value) -> Option<CompiledEntrypoint> {
        let rule: Rc<str> = Rc::from(entrypoint);
        let compiled = self.engine.compile_with_entrypoint(&rule).ok()?;
        let program = Compiler::compile_from_policy(&compiled, &[entrypoint]).ok()?;
        CompiledEntrypoint::new(compiled, program, data)
    }

    /// Stops interpreter evaluations that run longer than `limit` with a
    /// `LimitExceeded` error (Regorus's execution timer, checked every few hundred steps).
    /// The host's native path uses it; in the component the host's deadline applies.
    pub fn set_time_limit(&mut self, limit: std::time::Duration) {
        self.engine.set_execution_timer_config(timer_config(limit));
    }

    /// True when `entrypoint` runs as a precompiled RVM program.
    pub fn is_compiled(&self, entrypoint: &str) -> bool {
        self.programs
            .contains_key(&normalize_entrypoint(entrypoint))
    }

    /// Description of the bundle.
    pub fn info(&self) -> &BundleInfo {
        &self.info
    }

    /// Evaluates an entrypoint (`data.a.b` or `a/b`) with `input_json` as input (an empty
    /// string means no input). `Ok(None)` is OPA's undefined.
    pub fn evaluate(
        &mut self,
        entrypoint: &str,
        input_json: &str,
    ) -> Result<Option<String>, PolicyError> {
        let input = parse_input(input_json)?;
        self.evaluate_value(entrypoint, input, None)
    }

    /// [`Self::evaluate`] that ends by `deadline`: reading the input counts against it and
    /// the interpreter's timer gets what is left, so a large input cannot stretch the time
    /// limit (the host's native path; in the component the host's epoch deadline applies).
    pub fn evaluate_until(
        &mut self,
        entrypoint: &str,
        input_json: &str,
        deadline: std::time::Instant,
    ) -> Result<Option<String>, PolicyError> {
        let started = std::time::Instant::now();
        let input = parse_input(input_json)?;
        time_left(deadline, started, "reading the input")?;
        self.evaluate_value(entrypoint, input, Some((deadline, started)))
    }

    /// Evaluates the parsed `input`: on the entrypoint's RVM program when it has one, on
    /// the interpreter otherwise or when the program fails. With `deadline` (and when the
    /// call started), each engine's timer gets what is left of it.
    fn evaluate_value(
        &mut self,
        entrypoint: &str,
        input: Value,
        deadline: Option<(std::time::Instant, std::time::Instant)>,
    ) -> Result<Option<String>, PolicyError> {
        let path = normalize_entrypoint(entrypoint);
        if let Some(compiled) = self.programs.get_mut(&path) {
            if let Some((deadline, started)) = deadline {
                let left = time_left(deadline, started, "starting the evaluation")?;
                compiled
                    .vm
                    .set_execution_timer_config(Some(timer_config(left)));
            }
            compiled.vm.set_input(input.clone());
            // An RVM failure is re-run on the interpreter, so the RVM never reports an
            // error the interpreter would not; the interpreter's error is the one returned
            // (after a time limit it gets what is left, so it stops at once).
            if let Ok(value) = compiled.vm.execute_entry_point_by_name(&path) {
                return Ok(to_json(value));
            }
        }
        if let Some((deadline, started)) = deadline {
            let left = time_left(deadline, started, "evaluating")?;
            self.set_time_limit(left);
        }
        self.engine.set_input(input);
        match self.engine.eval_rule(path.clone()) {
            Ok(value) => Ok(to_json(value)),
            Err(e) if format!("{e}").contains("not a valid rule path") => {
                self.evaluate_document(&path)
            }
            Err(e) => Err(PolicyError::evaluation(&e)),
        }
    }

    /// Evaluates a path that is not a single rule: a package (or an ancestor of one), a
    /// data document, or a path inside a rule's value (`pkg/decision/allow`). Anything else
    /// is an unknown entrypoint.
    fn evaluate_document(&mut self, path: &str) -> Result<Option<String>, PolicyError> {
        if !self.is_package_or_above(path) && !self.data_has(path) {
            return self.evaluate_inside_rule(path);
        }
        let results = self
            .engine
            .eval_query(path.to_string(), false)
            .map_err(|e| PolicyError::evaluation(&e))?;
        let value = results
            .result
            .into_iter()
            .next()
            .and_then(|r| r.expressions.into_iter().next())
            .map(|e| e.value)
            .unwrap_or(Value::Undefined);
        Ok(to_json(value))
    }

    /// True when the data document has a value at dotted `path` (`data.a.b`).
    fn data_has(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix("data.") else {
            return false;
        };
        if rest.contains('[') {
            return false;
        }
        let mut node = &self.data;
        for key in rest.split('.') {
            node = &node[&Value::from(key)];
            if *node == Value::Undefined {
                return false;
            }
        }
        true
    }

    /// Resolves `data.pkg.rule.a.b` as field `a.b` of rule `data.pkg.rule`.
    fn evaluate_inside_rule(&mut self, path: &str) -> Result<Option<String>, PolicyError> {
        let unknown = || PolicyError::UnknownEntrypoint(path.to_string());
        if path.contains('[') {
            return Err(unknown());
        }
        let parts: Vec<&str> = path.split('.').collect();
        for split in (2..parts.len()).rev() {
            match self.engine.eval_rule(parts[..split].join(".")) {
                Ok(mut value) => {
                    for key in &parts[split..] {
                        value = value[&Value::from(*key)].clone();
                    }
                    return Ok(to_json(value));
                }
                Err(e) if format!("{e}").contains("not a valid rule path") => continue,
                Err(e) => return Err(PolicyError::evaluation(&e)),
            }
        }
        Err(unknown())
    }

    /// Evaluates an ad-hoc Rego query; returns OPA `opa eval`-shaped results as JSON.
    pub fn query(&mut self, query: &str, input_json: &str) -> Result<String, PolicyError> {
        let query = crate::desugar::query("<query>", query)?;
        crate::source_limits::check("<query>", &query)?;
        let input = parse_input(input_json)?;
        self.engine.set_input(input);
        let results = self.engine.eval_query(query, false).map_err(|e| {
            let msg = format!("{e:#}");
            if msg.contains("-->") && msg.contains("<query") {
                PolicyError::compile(&e)
            } else {
                PolicyError::evaluation(&e)
            }
        })?;
        serde_json::to_string(&results.result)
            .map_err(|e| PolicyError::Evaluation(format!("cannot serialize results: {e}")))
    }

    /// The bundle's module sources, as loaded.
    pub fn modules(&self) -> &[crate::ModuleSource] {
        &self.modules
    }

    /// `data.`-prefixed package paths of the bundle's modules.
    pub fn packages(&self) -> &[String] {
        &self.packages
    }

    /// The data document: the bundle's data and the documents written at run time.
    pub(crate) fn data(&self) -> &Value {
        &self.data
    }

    /// The bundle's own data.
    pub(crate) fn base_data(&self) -> &Value {
        &self.base_data
    }

    /// Makes `data` the data document of the interpreter and of every compiled program. A
    /// document that conflicts with a rule is refused and nothing changes.
    pub(crate) fn replace_data(&mut self, data: Value) -> Result<(), PolicyError> {
        for compiled in self.programs.values_mut() {
            if let Err(e) = compiled.vm.set_data(data.clone()) {
                let old = self.data.clone();
                for compiled in self.programs.values_mut() {
                    let _ = compiled.vm.set_data(old.clone());
                }
                return Err(PolicyError::Evaluation(format!(
                    "the document conflicts with a rule of the bundle: {e}"
                )));
            }
        }
        self.engine.clear_data();
        if let Err(e) = self.engine.add_data(data.clone()) {
            let _ = self.engine.add_data(self.data.clone());
            for compiled in self.programs.values_mut() {
                let _ = compiled.vm.set_data(self.data.clone());
            }
            return Err(PolicyError::Evaluation(format!(
                "cannot set the data document: {e:#}"
            )));
        }
        self.data = data;
        Ok(())
    }

    /// Mutable access to the engine for the unit-test runner.
    pub(crate) fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
}

impl Clone for PolicySet {
    /// Clones the interpreter state; each RVM program gets a VM of its own (the program
    /// and the compiled policy are shared, nothing is compiled again).
    fn clone(&self) -> Self {
        let programs = self
            .programs
            .iter()
            .filter_map(|(ep, c)| {
                let vm = CompiledEntrypoint::new(c.policy.clone(), c.program.clone(), &self.data)?;
                Some((ep.clone(), vm))
            })
            .collect();
        PolicySet {
            engine: self.engine.clone(),
            programs,
            info: self.info.clone(),
            packages: self.packages.clone(),
            data: self.data.clone(),
            base_data: self.base_data.clone(),
            modules: self.modules.clone(),
        }
    }
}

pub(crate) fn policy_length_config() -> PolicyLengthConfig {
    PolicyLengthConfig {
        max_col: NonZeroU32::new(MAX_POLICY_COLUMNS).expect("non-zero constant"),
        max_file_bytes: NonZeroUsize::new(MAX_POLICY_FILE_BYTES).expect("non-zero constant"),
        max_lines: NonZeroUsize::new(MAX_POLICY_LINES).expect("non-zero constant"),
    }
}

/// Regorus's execution timer for `limit`, checked every 64 steps.
fn timer_config(limit: std::time::Duration) -> regorus::utils::limits::ExecutionTimerConfig {
    regorus::utils::limits::ExecutionTimerConfig {
        limit,
        check_interval: core::num::NonZeroU32::new(64).expect("non-zero constant"),
    }
}

/// What is left until `deadline`, or the time-limit error (`doing` says where it ran out,
/// counted from `started`).
fn time_left(
    deadline: std::time::Instant,
    started: std::time::Instant,
    doing: &str,
) -> Result<std::time::Duration, PolicyError> {
    let now = std::time::Instant::now();
    let left = deadline.saturating_duration_since(now);
    if left.is_zero() {
        return Err(PolicyError::LimitExceeded(format!(
            "execution exceeded time limit {doing} (after {} ms)",
            now.duration_since(started).as_millis()
        )));
    }
    Ok(left)
}

fn parse_input(input_json: &str) -> Result<Value, PolicyError> {
    if input_json.trim().is_empty() {
        return Ok(Value::Undefined);
    }
    Value::from_json_str(input_json).map_err(|e| PolicyError::InvalidInput(format!("{e:#}")))
}

fn to_json(value: Value) -> Option<String> {
    match value {
        Value::Undefined => None,
        v => Some(serde_json::to_string(&v).unwrap_or_else(|_| "null".to_string())),
    }
}

/// Turns `mcp/gateway/allow`, `/mcp/gateway/allow` or `data.mcp.gateway.allow` into the
/// `data.`-rooted dotted rule path Regorus evaluates. Path segments that are not Rego
/// identifiers become bracketed strings (`a/1.0/b` → `data.a["1.0"].b`).
pub fn normalize_entrypoint(entrypoint: &str) -> String {
    let e = entrypoint.trim();
    if e == "data" || e.starts_with("data.") || e.starts_with("data[") {
        return e.to_string();
    }
    let e = e.trim_start_matches('/');
    // `data/x/y` names the same document as `x/y`.
    let e = e
        .strip_prefix("data/")
        .unwrap_or(if e == "data" { "" } else { e });
    let mut path = String::from("data");
    for seg in e.split('/').filter(|s| !s.is_empty()) {
        if is_identifier(seg) {
            path.push('.');
            path.push_str(seg);
        } else {
            path.push('[');
            path.push_str(&serde_json::Value::String(seg.to_string()).to_string());
            path.push(']');
        }
    }
    path
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoints_normalize_to_data_paths() {
        assert_eq!(
            normalize_entrypoint("mcp/gateway/allow"),
            "data.mcp.gateway.allow"
        );
        assert_eq!(normalize_entrypoint("/mcp/gateway"), "data.mcp.gateway");
        assert_eq!(
            normalize_entrypoint("data.mcp.gateway.allow"),
            "data.mcp.gateway.allow"
        );
        assert_eq!(normalize_entrypoint("data/mcp/x"), "data.mcp.x");
        assert_eq!(normalize_entrypoint("a/1.0/b"), "data.a[\"1.0\"].b");
        assert_eq!(normalize_entrypoint(""), "data");
    }
}

#[cfg(test)]
mod deadline_tests {
    use super::*;
    use crate::ModuleSource;
    use std::time::{Duration, Instant};

    /// A policy whose entrypoint walks the input, so its cost grows with the input;
    /// precompiled, with the native path's time limit when `limit` is given.
    fn set(limit: Option<Duration>) -> PolicySet {
        let payload = Payload {
            format: PAYLOAD_FORMAT,
            revision: "r".into(),
            roots: vec![],
            entrypoints: vec!["data.app.allow".into()],
            content_hash: String::new(),
            modules: vec![ModuleSource {
                path: "app.rego".into(),
                source: "package app\nallow if {\n  input.user == \"alice\"\n  count([k | some k, _ in input.params; startswith(k, \"x\")]) == 0\n}\n".into(),
                rego_version: Default::default(),
            }],
            data: serde_json::json!({}),
            strict_builtin_errors: true,
            warm_up: false,
            rego_version: Default::default(),
        };
        match limit {
            Some(limit) => PolicySet::load_compiled_with_time_limit(payload, limit),
            None => PolicySet::load_compiled(payload),
        }
        .unwrap()
    }

    #[test]
    fn a_clone_runs_the_compiled_program_with_the_same_decisions() {
        let mut original = set(Some(Duration::from_secs(1)));
        let mut clone = original.clone();
        assert!(original.is_compiled("app/allow") && clone.is_compiled("app/allow"));
        for input in [
            r#"{"user":"alice","params":{"a":1}}"#,
            r#"{"user":"alice","params":{"xa":1}}"#,
            r#"{"user":"bob","params":{}}"#,
        ] {
            assert_eq!(
                original.evaluate("app/allow", input).unwrap(),
                clone.evaluate("app/allow", input).unwrap(),
                "{input}"
            );
        }
        assert_eq!(
            clone
                .evaluate("app/allow", r#"{"user":"alice","params":{}}"#)
                .unwrap()
                .as_deref(),
            Some("true")
        );
    }

    #[test]
    fn a_deadline_counts_reading_the_input_and_bounds_the_evaluation() {
        let mut s = set(Some(Duration::from_secs(1)));
        let input = r#"{"user":"alice","params":{"a":1}}"#;
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            s.evaluate_until("app/allow", input, later).unwrap(),
            s.evaluate("app/allow", input).unwrap()
        );
        // A deadline already past: refused as a time limit, whatever the input.
        let err = s
            .evaluate_until("app/allow", input, Instant::now())
            .unwrap_err();
        assert!(matches!(err, PolicyError::LimitExceeded(_)), "{err:?}");

        // A large input the policy decides when given the time; a 5 ms deadline stops it.
        let params: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\":{i}")).collect();
        let big = format!(r#"{{"user":"alice","params":{{{}}}}}"#, params.join(","));
        let err = s
            .evaluate_until("app/allow", &big, Instant::now() + Duration::from_millis(5))
            .unwrap_err();
        assert!(matches!(err, PolicyError::LimitExceeded(_)), "{err:?}");
        assert_eq!(
            set(None).evaluate("app/allow", &big).unwrap().as_deref(),
            Some("true")
        );
    }
}
