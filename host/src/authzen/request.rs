//! AuthZEN request bodies checked and turned into policy inputs: required fields and their
//! types (a missing or mistyped field is a 400), unknown fields ignored, the Access
//! Evaluations defaults (top-level `subject`, `action`, `resource`, `context` inherited
//! whole by each evaluation), and the search requests (the searched-for entity without its
//! `id`).

use serde_json::{Map, Value};

/// The entities of an evaluation, each checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// `{type, id, properties?}`.
    pub subject: Value,
    /// `{name, properties?}`.
    pub action: Value,
    /// `{type, id, properties?}`.
    pub resource: Value,
    /// An object; `{}` when the request has none.
    pub context: Value,
}

impl Evaluation {
    /// The policy input: `{subject, action, resource, context}`.
    pub fn input(&self) -> Value {
        let mut input = Map::with_capacity(4);
        input.insert("subject".into(), self.subject.clone());
        input.insert("action".into(), self.action.clone());
        input.insert("resource".into(), self.resource.clone());
        input.insert("context".into(), self.context.clone());
        Value::Object(input)
    }

    /// The key rollout buckets use: the subject's id.
    pub fn user_key(&self) -> &str {
        self.subject.get("id").and_then(Value::as_str).unwrap_or("")
    }
}

/// How an Access Evaluations request is executed (`options.evaluations_semantic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    /// Every evaluation, every result (the default).
    ExecuteAll,
    /// Stop after the first deny (or failure), which is the last result.
    DenyOnFirstDeny,
    /// Stop after the first permit, which is the last result.
    PermitOnFirstPermit,
}

/// An Access Evaluations request: its evaluations (each checked on its own: a bad one is
/// a failed item, not a bad request) or, without `evaluations`, a single evaluation.
#[derive(Debug)]
pub enum Batch {
    /// No `evaluations` array, or an empty one: answered as an Access Evaluation.
    Single(Evaluation),
    /// The items in request order, with the semantic to run them by.
    Many {
        /// Each item with the defaults applied, or why it cannot be evaluated.
        items: Vec<Result<Evaluation, String>>,
        /// `options.evaluations_semantic`.
        semantic: Semantic,
    },
}

/// Which entity a search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// `POST /access/v1/search/subject`.
    Subject,
    /// `POST /access/v1/search/resource`.
    Resource,
    /// `POST /access/v1/search/action`.
    Action,
}

impl SearchKind {
    /// The name the candidates rule sees in `input.search` and the key of the searched
    /// entity in the request.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchKind::Subject => "subject",
            SearchKind::Resource => "resource",
            SearchKind::Action => "action",
        }
    }
}

/// A search request, checked: the input entities fully identified, the searched-for one
/// without its `id` (ignored when sent, as the specification requires).
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// What is searched for.
    pub kind: SearchKind,
    /// The subject (for a subject search: `{type, properties?}`).
    pub subject: Value,
    /// The action; `None` for an action search.
    pub action: Option<Value>,
    /// The resource (for a resource search: `{type, properties?}`).
    pub resource: Value,
    /// An object; `{}` when the request has none.
    pub context: Value,
    /// `page.limit`: the most results in one response.
    pub limit: Option<usize>,
    /// `page.token`: where the previous page ended.
    pub token: Option<String>,
}

impl Search {
    /// The input of the candidates rule: `{search, subject, action?, resource, context}`.
    pub fn candidates_input(&self) -> Value {
        let mut input = Map::with_capacity(5);
        input.insert("search".into(), Value::from(self.kind.as_str()));
        input.insert("subject".into(), self.subject.clone());
        if let Some(action) = &self.action {
            input.insert("action".into(), action.clone());
        }
        input.insert("resource".into(), self.resource.clone());
        input.insert("context".into(), self.context.clone());
        Value::Object(input)
    }

    /// The type searched for (`None` for an action search).
    pub fn searched_type(&self) -> Option<&str> {
        let entity = match self.kind {
            SearchKind::Subject => &self.subject,
            SearchKind::Resource => &self.resource,
            SearchKind::Action => return None,
        };
        entity.get("type").and_then(Value::as_str)
    }

    /// The evaluation of one candidate: the searched entity replaced by `candidate`, whose
    /// `properties` are laid over those the request sent for that entity.
    pub fn evaluation_of(&self, candidate: &Value) -> Evaluation {
        let overlay = |requested: &Value| -> Value {
            let mut entity = candidate.as_object().cloned().unwrap_or_default();
            let sent = requested.get("properties").and_then(Value::as_object);
            let own = candidate.get("properties").and_then(Value::as_object);
            if sent.is_some() || own.is_some() {
                let mut properties = sent.cloned().unwrap_or_default();
                properties.extend(own.cloned().unwrap_or_default());
                entity.insert("properties".into(), Value::Object(properties));
            }
            if let (Some(t), SearchKind::Subject | SearchKind::Resource) =
                (requested.get("type"), self.kind)
            {
                entity.entry("type").or_insert_with(|| t.clone());
            }
            Value::Object(entity)
        };
        let no_action = Value::Object(Map::new());
        let (subject, action, resource) = match self.kind {
            SearchKind::Subject => (
                overlay(&self.subject),
                self.action.clone().unwrap_or_default(),
                self.resource.clone(),
            ),
            SearchKind::Resource => (
                self.subject.clone(),
                self.action.clone().unwrap_or_default(),
                overlay(&self.resource),
            ),
            SearchKind::Action => (
                self.subject.clone(),
                overlay(self.action.as_ref().unwrap_or(&no_action)),
                self.resource.clone(),
            ),
        };
        Evaluation {
            subject,
            action,
            resource,
            context: self.context.clone(),
        }
    }
}

/// The body as a JSON object (the specification's top-level element).
pub fn object(body: &Value) -> Result<&Map<String, Value>, String> {
    body.as_object()
        .ok_or_else(|| "the request body must be a JSON object".to_string())
}

/// An Access Evaluation request.
pub fn evaluation(body: &Map<String, Value>) -> Result<Evaluation, String> {
    Ok(Evaluation {
        subject: entity(body, "subject", Need::Id)?,
        action: action(body)?,
        resource: entity(body, "resource", Need::Id)?,
        context: context(body)?,
    })
}

/// An Access Evaluations request, with the top-level defaults applied to each item.
pub fn evaluations(body: &Map<String, Value>, max: usize) -> Result<Batch, String> {
    let items = match body.get("evaluations") {
        None | Some(Value::Null) => return evaluation(body).map(Batch::Single),
        Some(Value::Array(items)) if items.is_empty() => {
            return evaluation(body).map(Batch::Single);
        }
        Some(Value::Array(items)) => items,
        Some(_) => return Err("`evaluations` must be an array".into()),
    };
    if items.len() > max {
        return Err(format!(
            "`evaluations` has {} items; at most {max} are evaluated in one request \
             (authzen.max_evaluations)",
            items.len()
        ));
    }
    let semantic = semantic(body)?;
    // The defaults must themselves be well formed when present: a bad default is an error
    // of the whole payload, not of an item.
    for key in ["subject", "resource"] {
        if body.contains_key(key) {
            entity(body, key, Need::Id)?;
        }
    }
    if body.contains_key("action") {
        action(body)?;
    }
    context(body)?;
    let items = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item = item
                .as_object()
                .ok_or_else(|| format!("evaluations[{i}] must be an object"))?;
            let mut merged = body.clone();
            merged.remove("evaluations");
            for (k, v) in item {
                merged.insert(k.clone(), v.clone());
            }
            evaluation(&merged).map_err(|e| format!("evaluations[{i}]: {e}"))
        })
        .collect();
    Ok(Batch::Many { items, semantic })
}

/// A search request of `kind`.
pub fn search(body: &Map<String, Value>, kind: SearchKind) -> Result<Search, String> {
    let searched = |key: &str| -> Result<Value, String> {
        let mut e = entity(body, key, Need::Type)?;
        if let Some(o) = e.as_object_mut() {
            o.remove("id");
        }
        Ok(e)
    };
    let (subject, resource) = match kind {
        SearchKind::Subject => (searched("subject")?, entity(body, "resource", Need::Id)?),
        SearchKind::Resource => (entity(body, "subject", Need::Id)?, searched("resource")?),
        SearchKind::Action => (
            entity(body, "subject", Need::Id)?,
            entity(body, "resource", Need::Id)?,
        ),
    };
    let action = match kind {
        SearchKind::Action => None,
        _ => Some(action(body)?),
    };
    let (limit, token) = page(body)?;
    Ok(Search {
        kind,
        subject,
        action,
        resource,
        context: context(body)?,
        limit,
        token,
    })
}

/// What an entity must carry.
#[derive(Clone, Copy, PartialEq)]
enum Need {
    /// `type` and `id` (an input entity).
    Id,
    /// `type` only (the entity a search looks for).
    Type,
}

/// A subject or resource: an object with a string `type` and (unless searched for) a
/// string `id`; `properties`, when present, an object.
fn entity(body: &Map<String, Value>, key: &str, need: Need) -> Result<Value, String> {
    let value = body
        .get(key)
        .ok_or_else(|| format!("`{key}` is required"))?;
    let object = value
        .as_object()
        .ok_or_else(|| format!("`{key}` must be an object"))?;
    string_field(object, key, "type", true)?;
    string_field(object, key, "id", need == Need::Id)?;
    properties(object, key)?;
    Ok(value.clone())
}

/// The action: an object with a string `name`; `properties`, when present, an object.
fn action(body: &Map<String, Value>) -> Result<Value, String> {
    let value = body
        .get("action")
        .ok_or_else(|| "`action` is required".to_string())?;
    let object = value
        .as_object()
        .ok_or_else(|| "`action` must be an object".to_string())?;
    string_field(object, "action", "name", true)?;
    properties(object, "action")?;
    Ok(value.clone())
}

/// `context`: an object when present, `{}` when not.
fn context(body: &Map<String, Value>) -> Result<Value, String> {
    match body.get("context") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err("`context` must be an object".into()),
    }
}

fn string_field(
    object: &Map<String, Value>,
    entity: &str,
    field: &str,
    required: bool,
) -> Result<(), String> {
    match object.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(()),
        Some(Value::String(_)) => Err(format!("`{entity}.{field}` must not be empty")),
        None if !required => Ok(()),
        None => Err(format!("`{entity}.{field}` is required")),
        Some(_) => Err(format!("`{entity}.{field}` must be a string")),
    }
}

fn properties(object: &Map<String, Value>, entity: &str) -> Result<(), String> {
    match object.get("properties") {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(format!("`{entity}.properties` must be an object")),
    }
}

fn semantic(body: &Map<String, Value>) -> Result<Semantic, String> {
    let options = match body.get("options") {
        None | Some(Value::Null) => return Ok(Semantic::ExecuteAll),
        Some(Value::Object(o)) => o,
        Some(_) => return Err("`options` must be an object".into()),
    };
    match options.get("evaluations_semantic") {
        None | Some(Value::Null) => Ok(Semantic::ExecuteAll),
        Some(Value::String(s)) => match s.as_str() {
            "execute_all" => Ok(Semantic::ExecuteAll),
            "deny_on_first_deny" => Ok(Semantic::DenyOnFirstDeny),
            "permit_on_first_permit" => Ok(Semantic::PermitOnFirstPermit),
            other => Err(format!(
                "`options.evaluations_semantic` must be execute_all, deny_on_first_deny or \
                 permit_on_first_permit, not `{other}`"
            )),
        },
        Some(_) => Err("`options.evaluations_semantic` must be a string".into()),
    }
}

/// `page.limit` and `page.token`.
fn page(body: &Map<String, Value>) -> Result<(Option<usize>, Option<String>), String> {
    let page = match body.get("page") {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::Object(p)) => p,
        Some(_) => return Err("`page` must be an object".into()),
    };
    let limit = match page.get("limit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| "`page.limit` must be a non-negative integer".to_string())?,
        ),
    };
    let token = match page.get("token") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.is_empty() => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err("`page.token` must be a string".into()),
    };
    Ok((limit, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn required_fields_and_types_are_named() {
        let ok = json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
                        "resource": {"type": "record", "id": "r1"}, "foo": 1});
        let e = evaluation(&body(ok.clone())).unwrap();
        assert_eq!(e.context, json!({}));
        assert_eq!(e.user_key(), "alice");
        for (remove, field, want) in [
            ("subject", None, "`subject` is required"),
            ("subject", Some("type"), "`subject.type` is required"),
            ("resource", Some("id"), "`resource.id` is required"),
            ("action", Some("name"), "`action.name` is required"),
        ] {
            let mut b = body(ok.clone());
            match field {
                None => {
                    b.remove(remove);
                }
                Some(f) => {
                    b.get_mut(remove)
                        .unwrap()
                        .as_object_mut()
                        .unwrap()
                        .remove(f);
                }
            }
            assert_eq!(evaluation(&b).unwrap_err(), want);
        }
        let mut b = body(ok.clone());
        b.insert("subject".into(), json!("alice"));
        assert_eq!(evaluation(&b).unwrap_err(), "`subject` must be an object");
        let mut b = body(ok);
        b.insert("action".into(), json!({"name": 123}));
        assert_eq!(
            evaluation(&b).unwrap_err(),
            "`action.name` must be a string"
        );
    }

    #[test]
    fn batch_items_inherit_whole_defaults_and_fail_alone() {
        let b = body(json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "write"},
            "resource": {"type": "record", "id": "r1", "properties": {"status": "active"}},
            "context": {"t": 1},
            "evaluations": [{}, {"resource": {"type": "record", "id": "r2"}, "context": {"t": 2}}, {"action": {}}],
            "options": {"evaluations_semantic": "deny_on_first_deny"}
        }));
        let Batch::Many { items, semantic } = evaluations(&b, 10).unwrap() else {
            panic!("a batch")
        };
        assert_eq!(semantic, Semantic::DenyOnFirstDeny);
        let first = items[0].as_ref().unwrap();
        assert_eq!(first.resource["properties"]["status"], "active");
        let second = items[1].as_ref().unwrap();
        // Whole-object replacement: no properties merged from the default.
        assert_eq!(second.resource, json!({"type": "record", "id": "r2"}));
        assert_eq!(second.context, json!({"t": 2}));
        assert!(items[2].as_ref().unwrap_err().contains("action.name"));
        assert!(evaluations(&b, 2).unwrap_err().contains("max_evaluations"));
    }

    #[test]
    fn search_drops_the_searched_id_and_overlays_candidates() {
        let b = body(json!({
            "subject": {"type": "user", "id": "alice", "properties": {"dept": "x"}},
            "action": {"name": "read"},
            "resource": {"type": "record", "id": "r1"},
            "page": {"limit": 1}
        }));
        let s = search(&b, SearchKind::Subject).unwrap();
        assert_eq!(
            s.subject,
            json!({"type": "user", "properties": {"dept": "x"}})
        );
        assert_eq!(s.limit, Some(1));
        let e = s.evaluation_of(&json!({"id": "bob", "properties": {"role": "admin"}}));
        assert_eq!(
            e.subject,
            json!({"type": "user", "id": "bob", "properties": {"dept": "x", "role": "admin"}})
        );
        // The input entities of a search must be identified.
        let b = body(
            json!({"subject": {"type": "user"}, "action": {"name": "read"},
                            "resource": {"type": "record"}}),
        );
        assert!(
            search(&b, SearchKind::Subject)
                .unwrap_err()
                .contains("resource.id")
        );
        assert!(
            search(&b, SearchKind::Resource)
                .unwrap_err()
                .contains("subject.id")
        );
        let b = body(json!({"subject": {"type": "user", "id": "a"}}));
        assert!(
            search(&b, SearchKind::Action)
                .unwrap_err()
                .contains("`resource`")
        );
    }
}
