//! Unknown-field detection for `fieldValidation=Strict|Warn`, against the component schemas.
//!
//! kube-apiserver finds unknown fields while decoding a request body into its Go type; the paths
//! it reports are built like `spec.template.spec.containers[0].foo` (fields joined by `.`, list
//! items as `[i]`, no leading dot) and listed in the order they appear in the body. This walks a
//! decoded JSON object against the kind's schema and reports the same paths.

use serde_json::{Map, Value};

use crate::schemas::{self, resolve};

/// The fields of `object` that the schema of `api_version`/`kind` does not declare, as
/// kube-apiserver lists them (`spec.foo`, `spec.ports[0].bar`), in document order.
///
/// Maps (`additionalProperties`: labels, annotations, data, resource lists) accept any key and
/// their values are checked against the value schema; `IntOrString`, `Quantity`, `FieldsV1`,
/// `RawExtension` and `x-kubernetes-preserve-unknown-fields` schemas accept anything. Type
/// mismatches are not this function's business and are ignored. A kind without a schema (not
/// served) yields no fields: nothing can be said about it.
pub fn unknown_fields(api_version: &str, kind: &str, object: &Value) -> Vec<String> {
    let schemas = schemas::get();
    let (group, version) = frontdoor_resources::split_api_version(api_version);
    let Some(schema) = schemas.name_for(group, version, kind).and_then(|name| schemas.defs.get(name)) else {
        return Vec::new();
    };
    let mut walker = Walker { defs: &schemas.defs, path: String::new(), found: Vec::new() };
    walker.walk(schema, object);
    walker.found
}

/// The message of kube-apiserver's 400 BadRequest for `fieldValidation=Strict`:
/// `strict decoding error: unknown field "spec.foo", unknown field "spec.ports[0].bar"`.
pub fn strict_decoding_error(fields: &[String]) -> String {
    let listed: Vec<String> = fields.iter().map(|f| unknown_field_warning(f)).collect();
    format!("strict decoding error: {}", listed.join(", "))
}

/// One unknown field as kube-apiserver words it, `unknown field "spec.foo"`: the text of each
/// `Warning` header for `fieldValidation=Warn` (sent as `299 - "unknown field \"spec.foo\""`).
pub fn unknown_field_warning(field: &str) -> String {
    format!("unknown field {}", go_quote(field))
}

struct Walker<'a> {
    defs: &'a Map<String, Value>,
    /// Path of the value being walked; grows and shrinks as the walk descends and returns.
    path: String,
    found: Vec<String>,
}

impl Walker<'_> {
    fn walk(&mut self, schema: &Value, value: &Value) {
        let schema = resolve(self.defs, schema);
        if schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true) {
            return;
        }
        match value {
            Value::Object(fields) => self.walk_object(schema, fields),
            Value::Array(items) => {
                let Some(item_schema) = schema.get("items") else { return };
                for (i, item) in items.iter().enumerate() {
                    let len = self.path.len();
                    self.path.push_str(&format!("[{i}]"));
                    self.walk(item_schema, item);
                    self.path.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn walk_object(&mut self, schema: &Value, fields: &Map<String, Value>) {
        let properties = schema.get("properties").and_then(Value::as_object);
        // `additionalProperties: true` (or a non-schema) means anything goes, like no schema.
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        if properties.is_none() && additional.is_none() {
            // A free-form object (FieldsV1, RawExtension), or a scalar schema given an object.
            return;
        }
        for (key, value) in fields {
            let len = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(key);
            match (properties.and_then(|p| p.get(key)), additional) {
                (Some(field_schema), _) => self.walk(field_schema, value),
                (None, Some(value_schema)) => self.walk(value_schema, value),
                (None, None) => self.found.push(self.path.clone()),
            }
            self.path.truncate(len);
        }
    }
}

/// Go's `%q` for the strings that occur in field paths: double quotes, `\"` and `\\` escaped,
/// control characters escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
