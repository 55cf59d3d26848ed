//! Unknown-field detection for `fieldValidation`, backed by the OpenAPI schemas.

use serde_json::Value;

use frontdoor_resources::ResourceType;

/// JSON paths of fields the kind's schema does not know. Strategic-merge directives
/// (`$patch`, `$setElementOrder/ports`, `$retainKeys`, …) are not fields and are skipped.
pub fn unknown_fields(resource: &ResourceType, object: &Value) -> Vec<String> {
    if has_directives(object) {
        let without_directives = strip_directives(object);
        return frontdoor_openapi::unknown_fields(&resource.api_version(), resource.kind, &without_directives);
    }
    frontdoor_openapi::unknown_fields(&resource.api_version(), resource.kind, object)
}

fn has_directives(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k.starts_with('$') || has_directives(v)),
        Value::Array(items) => items.iter().any(has_directives),
        _ => false,
    }
}

fn strip_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k.clone(), strip_directives(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Upstream's `strict decoding error: unknown field "spec.foo", ...` message.
pub fn strict_decoding_error(fields: &[String]) -> String {
    frontdoor_openapi::strict_decoding_error(fields)
}
