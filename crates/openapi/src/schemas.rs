//! Component schemas: k8s-openapi's `schemars` output, reshaped the way upstream publishes it.
//!
//! Generated once per process. The generator's OpenAPI 3.0 settings already name schemas as
//! upstream does (`io.k8s.api.core.v1.Service`), reference them as `#/components/schemas/<name>`
//! and wrap a `$ref` that has a description beside it in `allOf`. On top of that this module adds
//! what k8s-openapi does not carry: `x-kubernetes-group-version-kind` on kinds, the `…List`
//! schemas, upstream's shapes for `IntOrString` and `Quantity`, and the list-merge extensions of
//! [`crate::patch_meta`].

use std::collections::HashMap;
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::kinds::{self, Kind};
use crate::patch_meta;

/// Every schema the documents use, and how to find a kind's.
pub(crate) struct Schemas {
    /// By upstream name, sorted.
    pub defs: Map<String, Value>,
    /// The kinds registered in [`kinds::register`], in its order.
    pub kinds: Vec<Kind>,
    /// (group, version, kind) → schema name, for every schema carrying a group-version-kind.
    by_gvk: HashMap<(String, String, String), String>,
}

impl Schemas {
    /// The schema name for a group, version and kind (`""`, `v1`, `Service`).
    pub fn name_for(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.by_gvk.get(&(group.to_string(), version.to_string(), kind.to_string())).map(String::as_str)
    }

    /// The registered kind with this group, version and kind.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.group == group && k.version == version && k.kind == kind)
    }
}

/// The process-wide schemas, generated on first use.
pub(crate) fn get() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(build)
}

fn build() -> Schemas {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let kinds = kinds::register(&mut generator);
    kinds::register_common(&mut generator);
    let mut defs = generator.take_definitions(true);

    for kind in &kinds {
        mark_kind(&mut defs, kind);
        if let Some(list_name) = kind.list_schema() {
            let list = list_schema(&defs, kind);
            defs.insert(list_name, list);
        }
    }
    // DeleteOptions is sent to every group-version, and upstream tags it with each of them.
    let served = frontdoor_resources::groups()
        .into_iter()
        .flat_map(|(group, versions)| versions.into_iter().map(move |version| gvk(group, version, "DeleteOptions")));
    if let Some(Value::Object(delete_options)) = defs.get_mut(kinds::DELETE_OPTIONS) {
        delete_options.insert("x-kubernetes-group-version-kind".into(), Value::Array(served.collect()));
    }
    reshape_scalars(&mut defs);
    patch_meta::apply(&mut defs);

    let mut sorted: Vec<(String, Value)> = defs.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let defs: Map<String, Value> = sorted.into_iter().collect();
    let by_gvk = index_by_gvk(&defs);
    Schemas { defs, kinds, by_gvk }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

/// Tags a kind's schema with its group-version-kind and drops the `metadata` requirement that
/// k8s-openapi adds (upstream does not require it; a name can come from `generateName`).
fn mark_kind(defs: &mut Map<String, Value>, kind: &Kind) {
    let Some(Value::Object(schema)) = defs.get_mut(&kind.schema) else { return };
    schema.insert("x-kubernetes-group-version-kind".into(), json!([gvk(kind.group, kind.version, kind.kind)]));
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.retain(|r| r != "metadata");
        if required.is_empty() {
            schema.remove("required");
        }
    }
}

/// `ServiceList`: the shape upstream gives every list kind.
fn list_schema(defs: &Map<String, Value>, kind: &Kind) -> Value {
    let list_kind = kind.list_kind.unwrap_or_default();
    let type_meta = |field: &str| {
        defs.get(&kind.schema)
            .and_then(|s| s.pointer(&format!("/properties/{field}")))
            .cloned()
            .unwrap_or_else(|| json!({ "type": "string" }))
    };
    json!({
        "description": format!("{list_kind} is a list of {} objects.", kind.kind),
        "properties": {
            "apiVersion": type_meta("apiVersion"),
            "items": {
                "description": format!("The {} objects in the list.", kind.kind),
                "items": { "$ref": format!("#/components/schemas/{}", kind.schema) },
                "type": "array",
            },
            "kind": type_meta("kind"),
            "metadata": {
                "allOf": [{ "$ref": format!("#/components/schemas/{}", kinds::LIST_META) }],
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [gvk(kind.group, kind.version, list_kind)],
    })
}

/// k8s-openapi marks `IntOrString` and `Quantity` with `x-kubernetes-int-or-string` (the CRD
/// dialect); upstream's OpenAPI v3 spells them as `oneOf`, `IntOrString` with
/// `format: int-or-string`.
fn reshape_scalars(defs: &mut Map<String, Value>) {
    let reshape = |schema: &mut Map<String, Value>, one_of: Value, format: Option<&str>| {
        schema.remove("x-kubernetes-int-or-string");
        if let Some(format) = format {
            schema.insert("format".into(), json!(format));
        }
        schema.insert("oneOf".into(), one_of);
    };
    if let Some(Value::Object(s)) = defs.get_mut(kinds::INT_OR_STRING) {
        reshape(s, json!([{ "type": "integer" }, { "type": "string" }]), Some("int-or-string"));
    }
    if let Some(Value::Object(s)) = defs.get_mut(kinds::QUANTITY) {
        reshape(s, json!([{ "type": "string" }, { "type": "number" }]), None);
    }
}

fn index_by_gvk(defs: &Map<String, Value>) -> HashMap<(String, String, String), String> {
    let mut index = HashMap::new();
    for (name, schema) in defs {
        let Some(Value::Array(gvks)) = schema.get("x-kubernetes-group-version-kind") else { continue };
        for gvk in gvks {
            let field = |f: &str| gvk.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
            index.insert((field("group"), field("version"), field("kind")), name.clone());
        }
    }
    index
}

/// Follows `$ref` (and upstream's `allOf: [{$ref}]` wrapping) to the schema it names. Gives up
/// after a few hops so a malformed reference cycle cannot hang a caller.
pub(crate) fn resolve<'a>(defs: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let target = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => r,
            None => match schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                Some([only]) => match only.get("$ref").and_then(Value::as_str) {
                    Some(r) => r,
                    None => return schema,
                },
                _ => return schema,
            },
        };
        match target.strip_prefix("#/components/schemas/").and_then(|n| defs.get(n)) {
            Some(next) => schema = next,
            None => return schema,
        }
    }
    schema
}

/// Every schema name `value` references, directly.
pub(crate) fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            out.push(name.to_string());
                        }
                    }
                    _ => references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}
