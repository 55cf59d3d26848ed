//! Go's decoding leniency, for a type check done by a stricter decoder: kube-apiserver decodes a
//! body into Go structs, where a field that is absent or `null` is simply its zero value, and a
//! required field is only an error if validation says so. k8s-openapi's decoders refuse both.
//! [`with_zero_values`] makes the copy the strict decoder should see: `null` members dropped and
//! every required field that is missing filled with its zero value (by its schema's type), so
//! that what remains to refuse is a real type mismatch.

use serde_json::{Map, Value};

use crate::schemas::{self, resolve};

/// A copy of `object` (of `api_version`/`kind`) with `null` members removed and missing required
/// fields set to their zero values; `None` for a kind without a schema.
pub fn with_zero_values(api_version: &str, kind: &str, object: &Value) -> Option<Value> {
    let (defs, schema) = kind_schema(api_version, kind)?;
    let mut copy = object.clone();
    fill(defs, schema, &mut copy, 0);
    Some(copy)
}

/// The component schemas and the schema of `api_version`/`kind`, if it is served.
fn kind_schema(api_version: &str, kind: &str) -> Option<(&'static Map<String, Value>, &'static Value)> {
    let schemas = schemas::get();
    let (group, version) = frontdoor_resources::split_api_version(api_version);
    let schema = schemas.name_for(group, version, kind).and_then(|name| schemas.defs.get(name))?;
    Some((&schemas.defs, schema))
}

/// Turns, in place, every `null` that stands for a string in a map or a list (a label value, an
/// entry of `matchLabels`, `data` or `args`) into `""`, as Go's decoder makes it and Go's
/// encoder then writes it. Such a `null` stored as sent would be handed to every client, and
/// typed clients refuse it. `false` for a kind without a schema.
pub fn strings_not_null(api_version: &str, kind: &str, object: &mut Value) -> bool {
    let Some((defs, schema)) = kind_schema(api_version, kind) else { return false };
    empty_strings_for_nulls(defs, schema, object, 0);
    true
}

fn is_string_schema(defs: &Map<String, Value>, schema: &Value) -> bool {
    resolve(defs, schema).get("type").and_then(Value::as_str) == Some("string")
}

fn empty_strings_for_nulls(defs: &Map<String, Value>, schema: &Value, value: &mut Value, depth: usize) {
    if depth > MOST_DEPTH {
        return;
    }
    let schema = resolve(defs, schema);
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in fields.iter_mut() {
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(child_schema), _) => empty_strings_for_nulls(defs, child_schema, child, depth + 1),
                    (None, Some(values)) if child.is_null() && is_string_schema(defs, values) => {
                        *child = Value::from("")
                    }
                    (None, Some(values)) => empty_strings_for_nulls(defs, values, child, depth + 1),
                    (None, None) => {}
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else { return };
            let strings = is_string_schema(defs, item_schema);
            for item in items.iter_mut() {
                if item.is_null() && strings {
                    *item = Value::from("");
                } else {
                    empty_strings_for_nulls(defs, item_schema, item, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Deep enough for any Kubernetes object; a guard against self-referencing schemas.
const MOST_DEPTH: usize = 64;

fn fill(defs: &Map<String, Value>, schema: &Value, value: &mut Value, depth: usize) {
    if depth > MOST_DEPTH {
        return;
    }
    let schema = resolve(defs, schema);
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if properties.is_none() && additional.is_none() {
                return;
            }
            fields.retain(|_, v| !v.is_null());
            if let Some(properties) = properties {
                let required = schema.get("required").and_then(Value::as_array).into_iter().flatten();
                for name in required.filter_map(Value::as_str) {
                    if !fields.contains_key(name) {
                        if let Some(zero) = properties.get(name).and_then(|s| zero_value(defs, s, depth + 1)) {
                            fields.insert(name.to_string(), zero);
                        }
                    }
                }
            }
            for (key, child) in fields.iter_mut() {
                let child_schema = properties.and_then(|p| p.get(key)).or(additional);
                if let Some(child_schema) = child_schema {
                    fill(defs, child_schema, child, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items.iter_mut() {
                    fill(defs, item_schema, item, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// The zero value of a field of `schema`, as Go would have it (a time: the epoch, which is what a
/// zero `metav1.Time` stands for; an int-or-string: 0).
fn zero_value(defs: &Map<String, Value>, schema: &Value, depth: usize) -> Option<Value> {
    let schema = resolve(defs, schema);
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return Some(Value::from(0));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => Some(Value::from("1970-01-01T00:00:00Z")),
            _ => Some(Value::from("")),
        },
        Some("integer") | Some("number") => Some(Value::from(0)),
        Some("boolean") => Some(Value::from(false)),
        Some("array") => Some(Value::Array(Vec::new())),
        Some("object") | None if schema.get("properties").is_some() => {
            let mut object = Value::Object(Map::new());
            fill(defs, schema, &mut object, depth);
            Some(object)
        }
        Some("object") => Some(Value::Object(Map::new())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_strings_in_maps_and_lists_become_empty_strings() {
        let mut deployment = json!({
            "metadata": {"name": "d", "labels": {"a": null, "b": "x"}, "annotations": null},
            "spec": {"selector": {"matchLabels": {"app": "web", "x": null}}, "template": {"spec": {"containers": [{"name": "c", "args": ["a", null]}]}}},
        });
        assert!(strings_not_null("apps/v1", "Deployment", &mut deployment));
        assert_eq!(deployment["metadata"]["labels"], json!({"a": "", "b": "x"}));
        assert_eq!(deployment["metadata"]["annotations"], Value::Null, "a null map is left for the decoder");
        assert_eq!(deployment["spec"]["selector"]["matchLabels"], json!({"app": "web", "x": ""}));
        assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["args"], json!(["a", ""]));
    }

    #[test]
    fn nulls_go_and_missing_required_fields_get_zero_values() {
        let service = json!({
            "metadata": {"name": "s", "labels": null},
            "spec": {"ports": [{"port": 80, "name": null}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "R", "message": "m", "lastTransitionTime": null},
                {"type": "Other", "status": "False", "reason": "R", "message": "m"},
            ]},
        });
        let lenient = with_zero_values("v1", "Service", &service).unwrap();
        assert_eq!(lenient["metadata"], json!({"name": "s"}));
        assert_eq!(lenient["spec"]["ports"][0], json!({"port": 80}));
        for condition in lenient["status"]["conditions"].as_array().unwrap() {
            assert_eq!(condition["lastTransitionTime"], "1970-01-01T00:00:00Z");
        }
        // A type mismatch is left for the strict decoder to refuse.
        let wrong = json!({"spec": {"ports": [{"port": "eighty"}]}});
        assert_eq!(with_zero_values("v1", "Service", &wrong).unwrap()["spec"]["ports"][0]["port"], "eighty");
        assert!(with_zero_values("example.com/v1", "Nothing", &wrong).is_none());
    }
}
