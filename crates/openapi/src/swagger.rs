//! The Swagger 2.0 (OpenAPI v2) document: every group-version's paths and schemas in one
//! document, converted from the OpenAPI v3 ones the way kube-apiserver's two publishers differ.
//!
//! kubectl up to 1.27 reads this document (as protobuf, see [`crate::gnostic`]) through
//! kube-openapi's `pkg/util/proto`, which is strict: a definition it cannot parse fails the whole
//! document, and with it `kubectl apply`, `diff` and `explain`. So besides translating, this module
//! keeps every schema within what that parser accepts:
//! - a `$ref` stands alone (a description, a default and `x-` extensions may sit beside it; a type
//!   or properties may not) and names an existing definition;
//! - a `type` is one of the six JSON schema types, given once (no `null`, no lists of types);
//! - an `array` has exactly one `items` schema;
//! - `oneOf`/`anyOf`/`not` do not exist in Swagger 2.0: a union of scalars becomes `string`
//!   (upstream publishes `IntOrString` as `type: string, format: int-or-string` and `Quantity` as
//!   `type: string`), anything else an unconstrained schema.

use serde_json::{json, Map, Value};

use crate::documents::KUBERNETES_VERSION;
use crate::paths;
use crate::schemas::{self, Schemas};

const V3_PREFIX: &str = "#/components/schemas/";
const V2_PREFIX: &str = "#/definitions/";

/// The whole Swagger 2.0 document as JSON, paths in catalogue order, definitions sorted by name.
pub(crate) fn document() -> Value {
    let schemas = schemas::get();
    let mut paths = Map::new();
    for (group, versions) in frontdoor_resources::groups() {
        for version in versions {
            for (path, item) in paths::for_group_version(schemas, group, version) {
                paths.insert(path, path_item(schemas, &item));
            }
        }
    }
    let definitions: Map<String, Value> =
        schemas.defs.iter().map(|(name, schema)| (name.clone(), convert_schema(schemas, schema))).collect();
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

fn path_item(schemas: &Schemas, item: &Value) -> Value {
    let mut out = Map::new();
    let Some(item) = item.as_object() else { return Value::Object(out) };
    for (key, value) in item {
        if key == "parameters" {
            out.insert(key.clone(), parameters(value));
        } else if METHODS.contains(&key.as_str()) {
            out.insert(key.clone(), operation(schemas, value));
        } else if key.starts_with("x-") {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// One operation: the v3 request body becomes a `body` parameter (first, as upstream lists it)
/// and the media types of body and responses become `consumes` and `produces`.
fn operation(schemas: &Schemas, op: &Value) -> Value {
    let mut out = Map::new();
    let Some(op) = op.as_object() else { return Value::Object(out) };
    let request = op.get("requestBody").and_then(|b| b.get("content")).and_then(Value::as_object);
    if let Some(content) = request {
        out.insert("consumes".into(), json!(content.keys().collect::<Vec<_>>()));
    }
    for key in ["description", "operationId"] {
        if let Some(v) = op.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut params = Vec::new();
    if let Some(content) = request {
        let schema = content.values().find_map(|m| m.get("schema")).cloned().unwrap_or_else(|| json!({}));
        params.push(json!({
            "in": "body",
            "name": "body",
            "required": true,
            "schema": convert_schema(schemas, &schema),
        }));
    }
    if let Some(Value::Array(own)) = op.get("parameters").map(parameters) {
        params.extend(own);
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    for (code, response) in op.get("responses").and_then(Value::as_object).into_iter().flatten() {
        let mut r = Map::new();
        r.insert("description".into(), response.get("description").cloned().unwrap_or_else(|| json!("")));
        if let Some(content) = response.get("content").and_then(Value::as_object) {
            for media in content.keys() {
                if !produces.contains(media) {
                    produces.push(media.clone());
                }
            }
            if let Some(schema) = content.values().find_map(|m| m.get("schema")) {
                r.insert("schema".into(), convert_schema(schemas, schema));
            }
        }
        responses.insert(code.clone(), Value::Object(r));
    }
    if !produces.is_empty() {
        out.insert("produces".into(), json!(produces));
    }
    out.insert("responses".into(), Value::Object(responses));
    out.insert("schemes".into(), json!(["https"]));
    if let Some(tags) = op.get("tags") {
        out.insert("tags".into(), tags.clone());
    }
    for (key, value) in op {
        if key.starts_with("x-") {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// v3 parameters carry their type in a `schema`; v2 non-body parameters carry it inline.
fn parameters(params: &Value) -> Value {
    let converted = params.as_array().into_iter().flatten().map(|p| {
        let mut out = Map::new();
        for key in ["description", "in", "name", "required"] {
            if let Some(v) = p.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        let ty = p.pointer("/schema/type").and_then(Value::as_str).filter(|t| is_primitive(t)).unwrap_or("string");
        out.insert("type".into(), json!(ty));
        if let Some(format) = p.pointer("/schema/format") {
            out.insert("format".into(), format.clone());
        }
        Value::Object(out)
    });
    Value::Array(converted.collect())
}

fn is_primitive(ty: &str) -> bool {
    matches!(ty, "string" | "integer" | "number" | "boolean")
}

fn is_type(ty: &str) -> bool {
    is_primitive(ty) || matches!(ty, "object" | "array")
}

/// A v3 schema as a v2 one (see the module docs for what changes and why).
pub(crate) fn convert_schema(schemas: &Schemas, schema: &Value) -> Value {
    let Some(map) = schema.as_object() else { return json!({}) };

    // `$ref`, or upstream's v3 `allOf: [{$ref}]` wrapping of a reference with a description.
    let wrapped = match map.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        Some([only]) => only.get("$ref"),
        _ => None,
    };
    if let Some(target) = map.get("$ref").or(wrapped).and_then(Value::as_str) {
        let mut out = Map::new();
        let name = target.strip_prefix(V3_PREFIX).unwrap_or(target);
        if schemas.defs.contains_key(name) {
            out.insert("$ref".into(), json!(format!("{V2_PREFIX}{name}")));
        }
        for (key, value) in map {
            if key == "description" || key == "default" || key.starts_with("x-") {
                out.insert(key.clone(), value.clone());
            }
        }
        return Value::Object(out);
    }

    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "type" => {
                let ty = match value {
                    Value::String(t) => Some(t.as_str()),
                    Value::Array(ts) => {
                        let ts: Vec<&str> = ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect();
                        match ts.as_slice() {
                            [one] => Some(*one),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let Some(ty) = ty.filter(|t| is_type(t)) {
                    out.insert("type".into(), json!(ty));
                }
            }
            "properties" => {
                let props: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), convert_schema(schemas, s)))
                    .collect();
                out.insert(key.clone(), Value::Object(props));
            }
            "items" => {
                // Swagger 2.0 allows a list of item schemas, kube-openapi exactly one.
                let item = match value {
                    Value::Array(items) => items.first().cloned().unwrap_or_else(|| json!({})),
                    other => other.clone(),
                };
                out.insert(key.clone(), convert_schema(schemas, &item));
            }
            "additionalProperties" => {
                let converted = match value {
                    Value::Bool(b) => Value::Bool(*b),
                    other => convert_schema(schemas, other),
                };
                out.insert(key.clone(), converted);
            }
            "allOf" => {
                let all: Vec<Value> =
                    value.as_array().into_iter().flatten().map(|s| convert_schema(schemas, s)).collect();
                out.insert(key.clone(), Value::Array(all));
            }
            // No Swagger 2.0 counterpart.
            "oneOf" | "anyOf" | "not" | "nullable" | "writeOnly" | "deprecated" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }

    if !out.contains_key("type") {
        if let Some(ty) = union_type(map) {
            out.insert("type".into(), json!(ty));
        }
    }
    match out.get("type").and_then(Value::as_str) {
        Some("array") if !out.contains_key("items") => {
            out.insert("items".into(), json!({}));
        }
        Some(ty) if ty != "object" => {
            // Properties beside a scalar or array type are rejected by kube-openapi.
            out.remove("properties");
        }
        _ => {}
    }
    Value::Object(out)
}

/// `string` for a `oneOf`/`anyOf` of scalar types that includes strings (`IntOrString`,
/// `Quantity`): upstream's Swagger 2.0 spelling of such values.
fn union_type(map: &Map<String, Value>) -> Option<&'static str> {
    let members = map.get("oneOf").or_else(|| map.get("anyOf"))?.as_array()?;
    let types: Vec<&str> = members.iter().filter_map(|m| m.get("type").and_then(Value::as_str)).collect();
    let all_scalar = types.len() == members.len() && types.iter().all(|t| is_primitive(t));
    (all_scalar && types.contains(&"string")).then_some("string")
}
