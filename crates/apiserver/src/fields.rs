//! Unknown-field detection for `fieldValidation`, backed by the OpenAPI schemas.

use serde_json::Value;

use frontdoor_resources::ResourceType;

/// JSON paths of fields the kind's schema does not know. Strategic-merge directives
/// (`$patch`, `$setElementOrder/ports`, `$retainKeys`, …) are not fields and are skipped.
pub fn unknown_fields(resource: &ResourceType, object: &Value) -> Vec<String> {
    let without_directives = strip_directives(object);
    frontdoor_openapi::unknown_fields(&resource.api_version(), resource.kind, &without_directives)
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
