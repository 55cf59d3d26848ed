//! Unknown-field detection for `fieldValidation`, backed by the OpenAPI schemas.

use serde_json::Value;

use frontdoor_resources::ResourceType;

/// JSON paths of fields the kind's schema does not know.
pub fn unknown_fields(resource: &ResourceType, object: &Value) -> Vec<String> {
    frontdoor_openapi::unknown_fields(&resource.api_version(), resource.kind, object)
}

/// Upstream's `strict decoding error: unknown field "spec.foo", ...` message.
pub fn strict_decoding_error(fields: &[String]) -> String {
    frontdoor_openapi::strict_decoding_error(fields)
}
