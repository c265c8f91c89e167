//! Prints gqlparser-shaped AST objects (what `graphql.parse_*` return) back to GraphQL text,
//! so the `graphql.*` builtins accept ASTs wherever OPA does.

use serde_json::Value as Json;

fn s<'a>(v: &'a Json, key: &str) -> &'a str {
    v.get(key).and_then(|x| x.as_str()).unwrap_or("")
}

fn items<'a>(v: &'a Json, key: &str) -> &'a [Json] {
    v.get(key)
        .and_then(|x| x.as_array())
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn ty(t: &Json) -> String {
    let inner = match t.get("Elem") {
        Some(elem) if !elem.is_null() => format!("[{}]", ty(elem)),
        _ => s(t, "NamedType").to_string(),
    };
    let bang = if t.get("NonNull").and_then(|b| b.as_bool()) == Some(true) {
        "!"
    } else {
        ""
    };
    format!("{inner}{bang}")
}

fn value(v: &Json) -> String {
    let raw = s(v, "Raw");
    match v.get("Kind").and_then(|k| k.as_u64()).unwrap_or(6) {
        0 => format!("${raw}"),
        3 | 4 => quote(raw),
        8 => format!(
            "[{}]",
            items(v, "Children")
                .iter()
                .map(|c| value(&c["Value"]))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        9 => format!(
            "{{{}}}",
            items(v, "Children")
                .iter()
                .map(|c| format!("{}: {}", s(c, "Name"), value(&c["Value"])))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => raw.to_string(),
    }
}

fn arguments(v: &Json) -> String {
    let args = items(v, "Arguments");
    if args.is_empty() {
        return String::new();
    }
    let list: Vec<String> = args
        .iter()
        .map(|a| format!("{}: {}", s(a, "Name"), value(&a["Value"])))
        .collect();
    format!("({})", list.join(", "))
}

fn directives(v: &Json) -> String {
    items(v, "Directives")
        .iter()
        .map(|d| format!(" @{}{}", s(d, "Name"), arguments(d)))
        .collect()
}

fn selection_set(v: &Json) -> String {
    let sel = items(v, "SelectionSet");
    if sel.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = sel
        .iter()
        .map(|f| {
            if f.get("Alias").is_some()
                || f.get("Arguments").is_some() && f.get("TypeCondition").is_none()
            {
                let alias = s(f, "Alias");
                let name = s(f, "Name");
                let prefix = if !alias.is_empty() && alias != name {
                    format!("{alias}: ")
                } else {
                    String::new()
                };
                format!(
                    "{prefix}{name}{}{}{}",
                    arguments(f),
                    directives(f),
                    selection_set(f)
                )
            } else if f.get("TypeCondition").is_some() || f.get("SelectionSet").is_some() {
                let cond = s(f, "TypeCondition");
                let on = if cond.is_empty() {
                    String::new()
                } else {
                    format!(" on {cond}")
                };
                format!("...{on}{}{}", directives(f), selection_set(f))
            } else {
                format!("...{}{}", s(f, "Name"), directives(f))
            }
        })
        .collect();
    format!(" {{ {} }}", parts.join(" "))
}

fn variables(v: &Json, key: &str) -> String {
    let vars = items(v, key);
    if vars.is_empty() {
        return String::new();
    }
    let list: Vec<String> = vars
        .iter()
        .map(|d| {
            let default = d
                .get("DefaultValue")
                .filter(|x| !x.is_null())
                .map(|x| format!(" = {}", value(x)))
                .unwrap_or_default();
            format!(
                "${}: {}{default}{}",
                s(d, "Variable"),
                ty(&d["Type"]),
                directives(d)
            )
        })
        .collect();
    format!("({})", list.join(", "))
}

/// GraphQL text of a `QueryDocument` object.
pub(super) fn query(doc: &Json) -> String {
    let mut out = String::new();
    for op in items(doc, "Operations") {
        let kind = match s(op, "Operation") {
            "" => "query",
            k => k,
        };
        out.push_str(&format!(
            "{kind} {}{}{}{}\n",
            s(op, "Name"),
            variables(op, "VariableDefinitions"),
            directives(op),
            selection_set(op)
        ));
    }
    for f in items(doc, "Fragments") {
        out.push_str(&format!(
            "fragment {} on {}{}{}\n",
            s(f, "Name"),
            s(f, "TypeCondition"),
            directives(f),
            selection_set(f)
        ));
    }
    out
}

fn description(v: &Json) -> String {
    match s(v, "Description") {
        "" => String::new(),
        d => format!("{} ", quote(d)),
    }
}

fn input_values(list: &[Json]) -> Vec<String> {
    list.iter()
        .map(|a| {
            let default = a
                .get("DefaultValue")
                .filter(|x| !x.is_null())
                .map(|x| format!(" = {}", value(x)))
                .unwrap_or_default();
            format!(
                "{}{}: {}{default}{}",
                description(a),
                s(a, "Name"),
                ty(&a["Type"]),
                directives(a)
            )
        })
        .collect()
}

fn definition(d: &Json, extend: bool) -> String {
    let prefix = if extend { "extend " } else { "" };
    let desc = if extend {
        String::new()
    } else {
        description(d)
    };
    let name = s(d, "Name");
    let dirs = directives(d);
    let interfaces: Vec<&str> = items(d, "Interfaces")
        .iter()
        .filter_map(|i| i.as_str())
        .collect();
    let implements = if interfaces.is_empty() {
        String::new()
    } else {
        format!(" implements {}", interfaces.join(" & "))
    };
    let fields = |input: bool| -> String {
        let list = items(d, "Fields");
        if list.is_empty() {
            return String::new();
        }
        let rendered: Vec<String> = if input {
            input_values(list)
        } else {
            list.iter()
                .map(|f| {
                    let args = input_values(items(f, "Arguments"));
                    let args = if args.is_empty() {
                        String::new()
                    } else {
                        format!("({})", args.join(", "))
                    };
                    format!(
                        "{}{}{args}: {}{}",
                        description(f),
                        s(f, "Name"),
                        ty(&f["Type"]),
                        directives(f)
                    )
                })
                .collect()
        };
        format!(" {{ {} }}", rendered.join(" "))
    };
    match s(d, "Kind") {
        "OBJECT" => format!(
            "{desc}{prefix}type {name}{implements}{dirs}{}",
            fields(false)
        ),
        "INTERFACE" => format!(
            "{desc}{prefix}interface {name}{implements}{dirs}{}",
            fields(false)
        ),
        "INPUT_OBJECT" => format!("{desc}{prefix}input {name}{dirs}{}", fields(true)),
        "UNION" => {
            let types: Vec<&str> = items(d, "Types")
                .iter()
                .filter_map(|t| t.as_str())
                .collect();
            let members = if types.is_empty() {
                String::new()
            } else {
                format!(" = {}", types.join(" | "))
            };
            format!("{desc}{prefix}union {name}{dirs}{members}")
        }
        "ENUM" => {
            let values: Vec<String> = items(d, "EnumValues")
                .iter()
                .map(|v| format!("{}{}{}", description(v), s(v, "Name"), directives(v)))
                .collect();
            let body = if values.is_empty() {
                String::new()
            } else {
                format!(" {{ {} }}", values.join(" "))
            };
            format!("{desc}{prefix}enum {name}{dirs}{body}")
        }
        _ => format!("{desc}{prefix}scalar {name}{dirs}"),
    }
}

fn schema_def(d: &Json, extend: bool) -> String {
    let ops: Vec<String> = items(d, "OperationTypes")
        .iter()
        .map(|o| format!("{}: {}", s(o, "Operation"), s(o, "Type")))
        .collect();
    let body = if ops.is_empty() {
        String::new()
    } else {
        format!(" {{ {} }}", ops.join(" "))
    };
    let prefix = if extend { "extend " } else { "" };
    format!("{prefix}schema{}{body}", directives(d))
}

/// GraphQL text of a `SchemaDocument` object.
pub(super) fn schema(doc: &Json) -> String {
    let mut out: Vec<String> = Vec::new();
    out.extend(items(doc, "Schema").iter().map(|d| schema_def(d, false)));
    out.extend(
        items(doc, "SchemaExtension")
            .iter()
            .map(|d| schema_def(d, true)),
    );
    for d in items(doc, "Directives") {
        let args = input_values(items(d, "Arguments"));
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        let repeatable = if d.get("IsRepeatable").and_then(|b| b.as_bool()) == Some(true) {
            " repeatable"
        } else {
            ""
        };
        let locations: Vec<&str> = items(d, "Locations")
            .iter()
            .filter_map(|l| l.as_str())
            .collect();
        out.push(format!(
            "{}directive @{}{args}{repeatable} on {}",
            description(d),
            s(d, "Name"),
            locations.join(" | ")
        ));
    }
    out.extend(
        items(doc, "Definitions")
            .iter()
            .map(|d| definition(d, false)),
    );
    out.extend(items(doc, "Extensions").iter().map(|d| definition(d, true)));
    out.join("\n")
}
