//! `graphql.*`: parsing GraphQL schemas and queries, and validating queries against schemas.
//!
//! Parsing and validation use `apollo-compiler` (pure Rust, spec-complete). The ASTs are
//! returned in the shape OPA returns them: the JSON encoding of the `gqlparser` AST
//! (`Definitions`, `Operations`, `SelectionSet`, value `Kind` numbers …), without positions
//! and without empty lists. Schemas and queries are given as GraphQL text; the AST objects
//! these builtins return are accepted too (they are printed back to GraphQL text first).

use super::{Builtin, from_json, to_json, type_name};
use anyhow::{Result, anyhow, bail};
use apollo_compiler::ast::{self, Definition, Selection, Type};
use apollo_compiler::{ExecutableDocument, Node, Schema};
use regorus::Value;
use serde_json::{Map, Value as Json, json};

pub(super) const BUILTINS: &[Builtin] = &[
    ("graphql.parse_query", 1, parse_query),
    ("graphql.parse_schema", 1, parse_schema),
    ("graphql.parse", 2, parse),
    ("graphql.parse_and_verify", 2, parse_and_verify),
    ("graphql.is_valid", 2, is_valid),
    ("graphql.schema_is_valid", 1, schema_is_valid),
];

/// GraphQL text of operand `i`: a string, or an AST object printed back to text.
fn source_arg(args: &[Value], i: usize, schema: bool) -> Result<String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.to_string()),
        Some(v @ Value::Object(_)) => {
            let json = to_json(v)?;
            Ok(if schema {
                super::graphql_print::schema(&json)
            } else {
                super::graphql_print::query(&json)
            })
        }
        Some(other) => bail!(
            "operand {} must be a string or an object, got {}",
            i + 1,
            type_name(other)
        ),
        None => bail!("operand {} is missing", i + 1),
    }
}

fn parse_document(text: &str, what: &str) -> Result<ast::Document> {
    if text.trim().is_empty() {
        // An empty document (no definitions) parses, as in gqlparser.
        return Ok(ast::Document::new());
    }
    ast::Document::parse(text, what)
        .map_err(|e| anyhow!("{what} parse error: {}", first_error(&e.errors)))
}

fn first_error(errors: &apollo_compiler::validation::DiagnosticList) -> String {
    errors
        .iter()
        .next()
        .map(|d| d.error.to_string())
        .unwrap_or_else(|| "invalid document".into())
}

/// The schema, validated with gqlparser's (OPA's) leniencies: a schema needs no `Query`
/// type, and extending a type that is not defined defines it.
fn valid_schema(text: &str) -> Result<apollo_compiler::validation::Valid<Schema>> {
    let mut doc = parse_document(text, "schema")?;
    define_extended_types(&mut doc);
    match doc.to_schema_validate() {
        Ok(schema) => Ok(schema),
        Err(e) => {
            let fatal = e
                .errors
                .iter()
                .find(|d| d.error.unstable_error_name() != Some("QueryRootOperationType"));
            match fatal {
                None => Ok(apollo_compiler::validation::Valid::assume_valid(e.partial)),
                Some(d) => bail!("schema is invalid: {}", d.error),
            }
        }
    }
}

/// Turns the first extension of each type that has no definition into its definition.
fn define_extended_types(doc: &mut ast::Document) {
    use std::collections::HashSet;
    let mut defined: HashSet<String> = doc
        .definitions
        .iter()
        .filter(|d| !d.is_extension_definition())
        .filter_map(|d| d.name().map(|n| n.to_string()))
        .collect();
    for def in doc.definitions.iter_mut() {
        let Some(name) = def.name().map(|n| n.to_string()) else {
            continue;
        };
        if defined.contains(&name) {
            continue;
        }
        let replacement = match def {
            Definition::ObjectTypeExtension(e) => {
                Definition::ObjectTypeDefinition(Node::new(ast::ObjectTypeDefinition {
                    description: None,
                    name: e.name.clone(),
                    implements_interfaces: e.implements_interfaces.clone(),
                    directives: e.directives.clone(),
                    fields: e.fields.clone(),
                }))
            }
            Definition::InterfaceTypeExtension(e) => {
                Definition::InterfaceTypeDefinition(Node::new(ast::InterfaceTypeDefinition {
                    description: None,
                    name: e.name.clone(),
                    implements_interfaces: e.implements_interfaces.clone(),
                    directives: e.directives.clone(),
                    fields: e.fields.clone(),
                }))
            }
            Definition::UnionTypeExtension(e) => {
                Definition::UnionTypeDefinition(Node::new(ast::UnionTypeDefinition {
                    description: None,
                    name: e.name.clone(),
                    directives: e.directives.clone(),
                    members: e.members.clone(),
                }))
            }
            Definition::EnumTypeExtension(e) => {
                Definition::EnumTypeDefinition(Node::new(ast::EnumTypeDefinition {
                    description: None,
                    name: e.name.clone(),
                    directives: e.directives.clone(),
                    values: e.values.clone(),
                }))
            }
            Definition::InputObjectTypeExtension(e) => {
                Definition::InputObjectTypeDefinition(Node::new(ast::InputObjectTypeDefinition {
                    description: None,
                    name: e.name.clone(),
                    directives: e.directives.clone(),
                    fields: e.fields.clone(),
                }))
            }
            Definition::ScalarTypeExtension(e) => {
                Definition::ScalarTypeDefinition(Node::new(ast::ScalarTypeDefinition {
                    description: None,
                    name: e.name.clone(),
                    directives: e.directives.clone(),
                }))
            }
            _ => continue,
        };
        defined.insert(name);
        *def = replacement;
    }
}

/// Validates `query` against `schema`; an empty query document is valid, as in OPA.
fn validate(query: &str, schema: &str) -> Result<()> {
    let schema = valid_schema(schema)?;
    if query.trim().is_empty() {
        return Ok(());
    }
    ExecutableDocument::parse_and_validate(&schema, query, "query.graphql")
        .map(|_| ())
        .map_err(|e| anyhow!("query is invalid: {}", first_error(&e.errors)))
}

fn parse_query(args: &[Value]) -> Result<Value> {
    let text = source_arg(args, 0, false)?;
    let doc = parse_document(&text, "query")?;
    Ok(from_json(query_json(&doc, &text)))
}

fn parse_schema(args: &[Value]) -> Result<Value> {
    let text = source_arg(args, 0, true)?;
    let doc = parse_document(&text, "schema")?;
    Ok(from_json(schema_json(&doc, &text)))
}

fn parse(args: &[Value]) -> Result<Value> {
    let (query, schema) = (source_arg(args, 0, false)?, source_arg(args, 1, true)?);
    validate(&query, &schema)?;
    let q = parse_document(&query, "query")?;
    let s = parse_document(&schema, "schema")?;
    Ok(Value::from(vec![
        from_json(query_json(&q, &query)),
        from_json(schema_json(&s, &schema)),
    ]))
}

fn parse_and_verify(args: &[Value]) -> Result<Value> {
    let (query, schema) = (source_arg(args, 0, false)?, source_arg(args, 1, true)?);
    let parsed = validate(&query, &schema).and_then(|()| {
        Ok((
            parse_document(&query, "query")?,
            parse_document(&schema, "schema")?,
        ))
    });
    Ok(match parsed {
        Ok((q, s)) => Value::from(vec![
            Value::from(true),
            from_json(query_json(&q, &query)),
            from_json(schema_json(&s, &schema)),
        ]),
        Err(_) => Value::from(vec![
            Value::from(false),
            Value::new_object(),
            Value::new_object(),
        ]),
    })
}

fn is_valid(args: &[Value]) -> Result<Value> {
    let (query, schema) = (source_arg(args, 0, false)?, source_arg(args, 1, true)?);
    Ok(Value::from(validate(&query, &schema).is_ok()))
}

fn schema_is_valid(args: &[Value]) -> Result<Value> {
    let schema = source_arg(args, 0, true)?;
    Ok(Value::from(valid_schema(&schema).is_ok()))
}

/// Builds a JSON object, leaving out empty lists (Go's nil slices, which OPA drops).
struct Obj(Map<String, Json>);

impl Obj {
    fn new() -> Self {
        Obj(Map::new())
    }
    fn set(mut self, key: &str, v: impl Into<Json>) -> Self {
        self.0.insert(key.into(), v.into());
        self
    }
    fn list(mut self, key: &str, items: Vec<Json>) -> Self {
        if !items.is_empty() {
            self.0.insert(key.into(), Json::Array(items));
        }
        self
    }
    fn opt(mut self, key: &str, v: Option<Json>) -> Self {
        if let Some(v) = v {
            self.0.insert(key.into(), v);
        }
        self
    }
    fn done(self) -> Json {
        Json::Object(self.0)
    }
}

fn type_json(ty: &Type) -> Json {
    match ty {
        Type::Named(n) => json!({"NamedType": n.as_str(), "NonNull": false}),
        Type::NonNullNamed(n) => json!({"NamedType": n.as_str(), "NonNull": true}),
        Type::List(inner) => json!({"Elem": type_json(inner), "NamedType": "", "NonNull": false}),
        Type::NonNullList(inner) => {
            json!({"Elem": type_json(inner), "NamedType": "", "NonNull": true})
        }
    }
}

/// gqlparser's value kinds.
mod kind {
    pub const VARIABLE: u8 = 0;
    pub const INT: u8 = 1;
    pub const FLOAT: u8 = 2;
    pub const STRING: u8 = 3;
    pub const BLOCK: u8 = 4;
    pub const BOOLEAN: u8 = 5;
    pub const NULL: u8 = 6;
    pub const ENUM: u8 = 7;
    pub const LIST: u8 = 8;
    pub const OBJECT: u8 = 9;
}

fn value_json(v: &Node<ast::Value>, src: &str) -> Json {
    let (k, raw, children): (u8, String, Vec<Json>) = match v.as_ref() {
        ast::Value::Null => (kind::NULL, "null".into(), vec![]),
        ast::Value::Enum(n) => (kind::ENUM, n.to_string(), vec![]),
        ast::Value::Variable(n) => (kind::VARIABLE, n.to_string(), vec![]),
        ast::Value::String(s) => {
            let block = v
                .location()
                .and_then(|l| src.get(l.offset()..))
                .is_some_and(|rest| rest.starts_with("\"\"\""));
            (
                if block { kind::BLOCK } else { kind::STRING },
                s.clone(),
                vec![],
            )
        }
        ast::Value::Float(f) => (kind::FLOAT, f.as_str().to_string(), vec![]),
        ast::Value::Int(i) => (kind::INT, i.as_str().to_string(), vec![]),
        ast::Value::Boolean(b) => (kind::BOOLEAN, b.to_string(), vec![]),
        ast::Value::List(items) => (
            kind::LIST,
            String::new(),
            items
                .iter()
                .map(|i| json!({"Name": "", "Value": value_json(i, src)}))
                .collect(),
        ),
        ast::Value::Object(fields) => (
            kind::OBJECT,
            String::new(),
            fields
                .iter()
                .map(|(n, i)| json!({"Name": n.as_str(), "Value": value_json(i, src)}))
                .collect(),
        ),
    };
    Obj::new()
        .list("Children", children)
        .set("ExpectedTypeHasDefault", false)
        .set("Kind", k)
        .set("Raw", raw)
        .done()
}

fn arguments_json(args: &[Node<ast::Argument>], src: &str) -> Vec<Json> {
    args.iter()
        .map(|a| json!({"Name": a.name.as_str(), "Value": value_json(&a.value, src)}))
        .collect()
}

fn directives_json(dirs: &ast::DirectiveList, src: &str) -> Vec<Json> {
    dirs.0
        .iter()
        .map(|d| {
            Obj::new()
                .list("Arguments", arguments_json(&d.arguments, src))
                .set("Location", "")
                .set("Name", d.name.as_str())
                .done()
        })
        .collect()
}

fn selections_json(set: &[Selection], src: &str) -> Vec<Json> {
    set.iter()
        .map(|s| match s {
            Selection::Field(f) => Obj::new()
                .set("Alias", f.alias.as_ref().unwrap_or(&f.name).as_str())
                .list("Arguments", arguments_json(&f.arguments, src))
                .list("Directives", directives_json(&f.directives, src))
                .set("Name", f.name.as_str())
                .list("SelectionSet", selections_json(&f.selection_set, src))
                .done(),
            Selection::FragmentSpread(f) => Obj::new()
                .list("Directives", directives_json(&f.directives, src))
                .set("Name", f.fragment_name.as_str())
                .done(),
            Selection::InlineFragment(f) => Obj::new()
                .list("Directives", directives_json(&f.directives, src))
                .list("SelectionSet", selections_json(&f.selection_set, src))
                .set(
                    "TypeCondition",
                    f.type_condition.as_ref().map(|t| t.as_str()).unwrap_or(""),
                )
                .done(),
        })
        .collect()
}

fn variables_json(vars: &[Node<ast::VariableDefinition>], src: &str) -> Vec<Json> {
    vars.iter()
        .map(|v| {
            Obj::new()
                .opt(
                    "DefaultValue",
                    v.default_value.as_ref().map(|d| value_json(d, src)),
                )
                .list("Directives", directives_json(&v.directives, src))
                .set("Type", type_json(&v.ty))
                .set("Used", false)
                .set("Variable", v.name.as_str())
                .done()
        })
        .collect()
}

/// gqlparser's `QueryDocument`.
fn query_json(doc: &ast::Document, src: &str) -> Json {
    let mut operations = Vec::new();
    let mut fragments = Vec::new();
    for def in &doc.definitions {
        match def {
            Definition::OperationDefinition(op) => operations.push(
                Obj::new()
                    .list("Directives", directives_json(&op.directives, src))
                    .set("Name", op.name.as_ref().map(|n| n.as_str()).unwrap_or(""))
                    .set("Operation", op.operation_type.name())
                    .list("SelectionSet", selections_json(&op.selection_set, src))
                    .list("VariableDefinitions", variables_json(&op.variables, src))
                    .done(),
            ),
            Definition::FragmentDefinition(f) => fragments.push(
                Obj::new()
                    .list("Directives", directives_json(&f.directives, src))
                    .set("Name", f.name.as_str())
                    .list("SelectionSet", selections_json(&f.selection_set, src))
                    .set("TypeCondition", f.type_condition.as_str())
                    .done(),
            ),
            _ => {}
        }
    }
    Obj::new()
        .list("Fragments", fragments)
        .list("Operations", operations)
        .done()
}

fn description(d: &Option<Node<str>>) -> &str {
    d.as_deref().unwrap_or("")
}

fn input_values_json(values: &[Node<ast::InputValueDefinition>], src: &str) -> Vec<Json> {
    values
        .iter()
        .map(|v| {
            Obj::new()
                .opt(
                    "DefaultValue",
                    v.default_value.as_ref().map(|d| value_json(d, src)),
                )
                .set("Description", description(&v.description))
                .list("Directives", directives_json(&v.directives, src))
                .set("Name", v.name.as_str())
                .set("Type", type_json(&v.ty))
                .done()
        })
        .collect()
}

fn fields_json(fields: &[Node<ast::FieldDefinition>], src: &str) -> Vec<Json> {
    fields
        .iter()
        .map(|f| {
            Obj::new()
                .list("Arguments", input_values_json(&f.arguments, src))
                .set("Description", description(&f.description))
                .list("Directives", directives_json(&f.directives, src))
                .set("Name", f.name.as_str())
                .set("Type", type_json(&f.ty))
                .done()
        })
        .collect()
}

fn names(list: &[apollo_compiler::Name]) -> Vec<Json> {
    list.iter().map(|n| Json::from(n.as_str())).collect()
}

/// One gqlparser `Definition` (types and their extensions share the shape).
#[allow(clippy::too_many_arguments)]
fn type_def(
    kind: &str,
    desc: &str,
    name: &str,
    dirs: &ast::DirectiveList,
    interfaces: Vec<Json>,
    fields: Vec<Json>,
    types: Vec<Json>,
    enum_values: Vec<Json>,
    src: &str,
) -> Json {
    Obj::new()
        .set("BuiltIn", false)
        .set("Description", desc)
        .list("Directives", directives_json(dirs, src))
        .list("EnumValues", enum_values)
        .list("Fields", fields)
        .list("Interfaces", interfaces)
        .set("Kind", kind)
        .set("Name", name)
        .list("Types", types)
        .done()
}

fn enum_values_json(values: &[Node<ast::EnumValueDefinition>], src: &str) -> Vec<Json> {
    values
        .iter()
        .map(|v| {
            Obj::new()
                .set("Description", description(&v.description))
                .list("Directives", directives_json(&v.directives, src))
                .set("Name", v.value.as_str())
                .done()
        })
        .collect()
}

fn schema_def_json(
    desc: &str,
    dirs: &ast::DirectiveList,
    ops: &[Node<(ast::OperationType, ast::NamedType)>],
    src: &str,
) -> Json {
    Obj::new()
        .set("Description", desc)
        .list("Directives", directives_json(dirs, src))
        .list(
            "OperationTypes",
            ops.iter()
                .map(|op| json!({"Operation": op.0.name(), "Type": op.1.as_str()}))
                .collect(),
        )
        .done()
}

/// gqlparser's `SchemaDocument`.
fn schema_json(doc: &ast::Document, src: &str) -> Json {
    let (mut defs, mut exts, mut dirs, mut schema, mut schema_ext) =
        (vec![], vec![], vec![], vec![], vec![]);
    for def in &doc.definitions {
        match def {
            Definition::ObjectTypeDefinition(d) => defs.push(type_def(
                "OBJECT",
                description(&d.description),
                &d.name,
                &d.directives,
                names(&d.implements_interfaces),
                fields_json(&d.fields, src),
                vec![],
                vec![],
                src,
            )),
            Definition::InterfaceTypeDefinition(d) => defs.push(type_def(
                "INTERFACE",
                description(&d.description),
                &d.name,
                &d.directives,
                names(&d.implements_interfaces),
                fields_json(&d.fields, src),
                vec![],
                vec![],
                src,
            )),
            Definition::InputObjectTypeDefinition(d) => defs.push(type_def(
                "INPUT_OBJECT",
                description(&d.description),
                &d.name,
                &d.directives,
                vec![],
                input_values_json(&d.fields, src),
                vec![],
                vec![],
                src,
            )),
            Definition::UnionTypeDefinition(d) => defs.push(type_def(
                "UNION",
                description(&d.description),
                &d.name,
                &d.directives,
                vec![],
                vec![],
                names(&d.members),
                vec![],
                src,
            )),
            Definition::EnumTypeDefinition(d) => defs.push(type_def(
                "ENUM",
                description(&d.description),
                &d.name,
                &d.directives,
                vec![],
                vec![],
                vec![],
                enum_values_json(&d.values, src),
                src,
            )),
            Definition::ScalarTypeDefinition(d) => defs.push(type_def(
                "SCALAR",
                description(&d.description),
                &d.name,
                &d.directives,
                vec![],
                vec![],
                vec![],
                vec![],
                src,
            )),
            Definition::ObjectTypeExtension(d) => exts.push(type_def(
                "OBJECT",
                "",
                &d.name,
                &d.directives,
                names(&d.implements_interfaces),
                fields_json(&d.fields, src),
                vec![],
                vec![],
                src,
            )),
            Definition::InterfaceTypeExtension(d) => exts.push(type_def(
                "INTERFACE",
                "",
                &d.name,
                &d.directives,
                names(&d.implements_interfaces),
                fields_json(&d.fields, src),
                vec![],
                vec![],
                src,
            )),
            Definition::InputObjectTypeExtension(d) => exts.push(type_def(
                "INPUT_OBJECT",
                "",
                &d.name,
                &d.directives,
                vec![],
                input_values_json(&d.fields, src),
                vec![],
                vec![],
                src,
            )),
            Definition::UnionTypeExtension(d) => exts.push(type_def(
                "UNION",
                "",
                &d.name,
                &d.directives,
                vec![],
                vec![],
                names(&d.members),
                vec![],
                src,
            )),
            Definition::EnumTypeExtension(d) => exts.push(type_def(
                "ENUM",
                "",
                &d.name,
                &d.directives,
                vec![],
                vec![],
                vec![],
                enum_values_json(&d.values, src),
                src,
            )),
            Definition::ScalarTypeExtension(d) => exts.push(type_def(
                "SCALAR",
                "",
                &d.name,
                &d.directives,
                vec![],
                vec![],
                vec![],
                vec![],
                src,
            )),
            Definition::DirectiveDefinition(d) => dirs.push(
                Obj::new()
                    .list("Arguments", input_values_json(&d.arguments, src))
                    .set("Description", description(&d.description))
                    .set("IsRepeatable", d.repeatable)
                    .list(
                        "Locations",
                        d.locations.iter().map(|l| Json::from(l.name())).collect(),
                    )
                    .set("Name", d.name.as_str())
                    .done(),
            ),
            Definition::SchemaDefinition(d) => schema.push(schema_def_json(
                description(&d.description),
                &d.directives,
                &d.root_operations,
                src,
            )),
            Definition::SchemaExtension(d) => {
                schema_ext.push(schema_def_json("", &d.directives, &d.root_operations, src))
            }
            Definition::OperationDefinition(_) | Definition::FragmentDefinition(_) => {}
        }
    }
    Obj::new()
        .list("Definitions", defs)
        .list("Directives", dirs)
        .list("Extensions", exts)
        .list("Schema", schema)
        .list("SchemaExtension", schema_ext)
        .done()
}
