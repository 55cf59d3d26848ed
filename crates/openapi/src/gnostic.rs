//! The Swagger 2.0 document in protobuf: gnostic's `openapi.v2.Document`
//! (github.com/google/gnostic-models, `openapiv2/OpenAPIv2.proto`), the body kube-apiserver
//! serves for `GET /openapi/v2` with
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and kubectl up to 1.27
//! decodes with `proto.Unmarshal`.
//!
//! The encoder is written out by hand rather than generated: the document is only ever written,
//! the wire format needed is four encodings (varint, 64-bit, length-delimited, and nesting), and
//! the message layouts below name their field numbers next to the proto's field names. It reads
//! the Swagger 2.0 JSON of [`crate::swagger`] the way gnostic's own compiler reads a JSON
//! document into these messages: known keys to fields, `x-` keys to `vendor_extension` entries
//! whose `Any.yaml` holds the value (as JSON, which is YAML), everything else dropped.
//!
//! Fields holding their proto3 default (empty string, zero, false) are left out, as Go's
//! `proto.Marshal` does; a present sub-message is always written, even when empty, because
//! presence is what kube-openapi looks at (`properties: {}` makes an object a kind).

use serde_json::{Map, Value};

/// A message being written: its fields, encoded, in the order written.
#[derive(Default)]
struct Message(Vec<u8>);

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LENGTH_DELIMITED: u32 = 2;

impl Message {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u32) {
        self.varint(u64::from(field << 3 | wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LENGTH_DELIMITED);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, value: &str) {
        if !value.is_empty() {
            self.bytes(field, value.as_bytes());
        }
    }

    /// A `string` field from a JSON string (other JSON values are not strings and are skipped).
    fn string_of(&mut self, field: u32, value: Option<&Value>) {
        if let Some(s) = value.and_then(Value::as_str) {
            self.string(field, s);
        }
    }

    /// A `repeated string` field from a JSON array of strings. Unlike a singular string, an empty
    /// element is kept: it is an element.
    fn strings_of(&mut self, field: u32, value: Option<&Value>) {
        for s in value.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            self.bytes(field, s.as_bytes());
        }
    }

    fn bool_of(&mut self, field: u32, value: Option<&Value>) {
        if value.and_then(Value::as_bool) == Some(true) {
            self.key(field, VARINT);
            self.varint(1);
        }
    }

    fn int64_of(&mut self, field: u32, value: Option<&Value>) {
        if let Some(v) = value.and_then(Value::as_i64).filter(|v| *v != 0) {
            self.key(field, VARINT);
            // int64 (not sint64): negative numbers are their ten-byte two's complement.
            self.varint(v as u64);
        }
    }

    fn double_of(&mut self, field: u32, value: Option<&Value>) {
        if let Some(v) = value.and_then(Value::as_f64).filter(|v| *v != 0.0) {
            self.key(field, FIXED64);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn message(&mut self, field: u32, message: Message) {
        self.bytes(field, &message.0);
    }

    /// `repeated NamedAny vendor_extension`: the `x-` keys of `object`, in order.
    fn vendor_extensions(&mut self, field: u32, object: &Map<String, Value>) {
        for (name, value) in object.iter().filter(|(k, _)| k.starts_with("x-")) {
            let mut named = Message::default();
            named.string(1, name); // NamedAny.name
            named.message(2, any(value)); // NamedAny.value
            self.message(field, named);
        }
    }

    /// A field of type `Any` (defaults, examples), if the key is present.
    fn any_of(&mut self, field: u32, value: Option<&Value>) {
        if let Some(v) = value {
            self.message(field, any(v));
        }
    }

    /// `repeated Any` (enums).
    fn anys_of(&mut self, field: u32, value: Option<&Value>) {
        for v in value.and_then(Value::as_array).into_iter().flatten() {
            self.message(field, any(v));
        }
    }
}

/// `Any { string yaml = 2; }`. JSON is YAML, and kube-openapi and client-go parse this text with
/// YAML parsers (`x-kubernetes-group-version-kind` becomes a list of maps, a strategy a string).
fn any(value: &Value) -> Message {
    let mut m = Message::default();
    let yaml = serde_json::to_string(value).expect("a serde_json::Value always serializes");
    m.string(2, &yaml);
    m
}

fn object(value: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    value.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// `Document` from a Swagger 2.0 JSON document.
pub(crate) fn encode(doc: &Value) -> Vec<u8> {
    let d = object(doc);
    let mut m = Message::default();
    m.string_of(1, d.get("swagger"));
    if let Some(i) = d.get("info") {
        m.message(2, info(object(i)));
    }
    m.string_of(3, d.get("host"));
    m.string_of(4, d.get("basePath"));
    m.strings_of(5, d.get("schemes"));
    m.strings_of(6, d.get("consumes"));
    m.strings_of(7, d.get("produces"));
    if let Some(p) = d.get("paths") {
        m.message(8, paths(object(p)));
    }
    if let Some(defs) = d.get("definitions") {
        // Definitions { repeated NamedSchema additional_properties = 1; }
        let mut definitions = Message::default();
        for (name, s) in object(defs) {
            definitions.message(1, named(name, schema(object(s))));
        }
        m.message(9, definitions);
    }
    for requirement in d.get("security").and_then(Value::as_array).into_iter().flatten() {
        m.message(12, security_requirement(object(requirement)));
    }
    if let Some(defs) = d.get("securityDefinitions") {
        m.message(13, security_definitions(object(defs)));
    }
    m.vendor_extensions(16, d);
    m.0
}

/// `NamedX { string name = 1; X value = 2; }`, the shape of every map entry.
fn named(name: &str, value: Message) -> Message {
    let mut m = Message::default();
    m.string(1, name);
    m.message(2, value);
    m
}

fn info(i: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    m.string_of(1, i.get("title"));
    m.string_of(2, i.get("version"));
    m.string_of(3, i.get("description"));
    m.string_of(4, i.get("termsOfService"));
    m.vendor_extensions(7, i);
    m
}

/// `Paths { repeated NamedAny vendor_extension = 1; repeated NamedPathItem path = 2; }`
fn paths(p: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    m.vendor_extensions(1, p);
    for (path, item) in p.iter().filter(|(k, _)| k.starts_with('/')) {
        m.message(2, named(path, path_item(object(item))));
    }
    m
}

/// `PathItem`: `_ref` 1, operations get 2, put 3, post 4, delete 5, options 6, head 7, patch 8,
/// `parameters` 9, `vendor_extension` 10.
fn path_item(p: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    m.string_of(1, p.get("$ref"));
    const OPERATIONS: [(u32, &str); 7] =
        [(2, "get"), (3, "put"), (4, "post"), (5, "delete"), (6, "options"), (7, "head"), (8, "patch")];
    for (field, method) in OPERATIONS {
        if let Some(op) = p.get(method) {
            m.message(field, operation(object(op)));
        }
    }
    for param in p.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        m.message(9, parameters_item(object(param)));
    }
    m.vendor_extensions(10, p);
    m
}

fn operation(o: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    m.strings_of(1, o.get("tags"));
    m.string_of(2, o.get("summary"));
    m.string_of(3, o.get("description"));
    m.string_of(5, o.get("operationId"));
    m.strings_of(6, o.get("produces"));
    m.strings_of(7, o.get("consumes"));
    for param in o.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        m.message(8, parameters_item(object(param)));
    }
    if let Some(r) = o.get("responses") {
        m.message(9, responses(object(r)));
    }
    m.strings_of(10, o.get("schemes"));
    m.bool_of(11, o.get("deprecated"));
    m.vendor_extensions(13, o);
    m
}

/// `ParametersItem { oneof { Parameter parameter = 1; JsonReference json_reference = 2; } }`
fn parameters_item(p: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    if let Some(reference) = p.get("$ref") {
        let mut r = Message::default();
        r.string_of(1, Some(reference)); // JsonReference._ref
        r.string_of(2, p.get("description"));
        m.message(2, r);
        return m;
    }
    // Parameter { oneof { BodyParameter body_parameter = 1; NonBodyParameter non_body_parameter = 2; } }
    let mut parameter = Message::default();
    let location = p.get("in").and_then(Value::as_str).unwrap_or_default();
    if location == "body" {
        let mut body = Message::default();
        body.string_of(1, p.get("description"));
        body.string_of(2, p.get("name"));
        body.string_of(3, p.get("in"));
        body.bool_of(4, p.get("required"));
        if let Some(s) = p.get("schema") {
            body.message(5, schema(object(s)));
        }
        body.vendor_extensions(6, p);
        parameter.message(1, body);
    } else {
        // NonBodyParameter { oneof { header 1; form_data 2; query 3; path 4 } }. Query and
        // formData sub-schemas have `allow_empty_value` as field 5, which shifts the rest by one.
        let (field, allows_empty) = match location {
            "header" => (1, false),
            "formData" => (2, true),
            "path" => (4, false),
            _ => (3, true),
        };
        let shift = u32::from(allows_empty);
        let mut sub = Message::default();
        sub.bool_of(1, p.get("required"));
        sub.string_of(2, p.get("in"));
        sub.string_of(3, p.get("description"));
        sub.string_of(4, p.get("name"));
        if allows_empty {
            sub.bool_of(5, p.get("allowEmptyValue"));
        }
        sub.string_of(5 + shift, p.get("type"));
        sub.string_of(6 + shift, p.get("format"));
        sub.string_of(8 + shift, p.get("collectionFormat"));
        sub.any_of(9 + shift, p.get("default"));
        sub.bool_of(19 + shift, p.get("uniqueItems"));
        sub.anys_of(20 + shift, p.get("enum"));
        sub.vendor_extensions(22 + shift, p);
        let mut non_body = Message::default();
        non_body.message(field, sub);
        parameter.message(2, non_body);
    }
    m.message(1, parameter);
    m
}

/// `Responses { repeated NamedResponseValue response_code = 1; repeated NamedAny vendor_extension = 2; }`
fn responses(r: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    for (code, response) in r.iter().filter(|(k, _)| !k.starts_with("x-")) {
        let response = object(response);
        // ResponseValue { oneof { Response response = 1; JsonReference json_reference = 2; } }
        let mut value = Message::default();
        if let Some(reference) = response.get("$ref") {
            let mut j = Message::default();
            j.string_of(1, Some(reference));
            value.message(2, j);
        } else {
            // Response { description 1; SchemaItem schema 2; ...; vendor_extension 5 }
            let mut resp = Message::default();
            resp.string_of(1, response.get("description"));
            if let Some(s) = response.get("schema") {
                // SchemaItem { oneof { Schema schema = 1; FileSchema file_schema = 2; } }
                let mut item = Message::default();
                item.message(1, schema(object(s)));
                resp.message(2, item);
            }
            resp.vendor_extensions(5, response);
            value.message(1, resp);
        }
        m.message(1, named(code, value));
    }
    m.vendor_extensions(2, r);
    m
}

/// `Schema`, fields in the proto's numbering.
fn schema(s: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    m.string_of(1, s.get("$ref"));
    m.string_of(2, s.get("format"));
    m.string_of(3, s.get("title"));
    m.string_of(4, s.get("description"));
    m.any_of(5, s.get("default"));
    m.double_of(6, s.get("multipleOf"));
    m.double_of(7, s.get("maximum"));
    m.bool_of(8, s.get("exclusiveMaximum"));
    m.double_of(9, s.get("minimum"));
    m.bool_of(10, s.get("exclusiveMinimum"));
    m.int64_of(11, s.get("maxLength"));
    m.int64_of(12, s.get("minLength"));
    m.string_of(13, s.get("pattern"));
    m.int64_of(14, s.get("maxItems"));
    m.int64_of(15, s.get("minItems"));
    m.bool_of(16, s.get("uniqueItems"));
    m.int64_of(17, s.get("maxProperties"));
    m.int64_of(18, s.get("minProperties"));
    m.strings_of(19, s.get("required"));
    m.anys_of(20, s.get("enum"));
    match s.get("additionalProperties") {
        // AdditionalPropertiesItem { oneof { Schema schema = 1; bool boolean = 2; } }: a oneof
        // member is written even when false.
        Some(Value::Bool(b)) => {
            let mut a = Message::default();
            a.key(2, VARINT);
            a.varint(u64::from(*b));
            m.message(21, a);
        }
        Some(Value::Object(additional)) => {
            let mut a = Message::default();
            a.message(1, schema(additional));
            m.message(21, a);
        }
        _ => {}
    }
    match s.get("type") {
        // TypeItem { repeated string value = 1; }
        Some(Value::String(t)) => {
            let mut t_item = Message::default();
            t_item.string(1, t);
            m.message(22, t_item);
        }
        Some(types @ Value::Array(_)) => {
            let mut t_item = Message::default();
            t_item.strings_of(1, Some(types));
            m.message(22, t_item);
        }
        _ => {}
    }
    match s.get("items") {
        // ItemsItem { repeated Schema schema = 1; }
        Some(Value::Object(item)) => {
            let mut items = Message::default();
            items.message(1, schema(item));
            m.message(23, items);
        }
        Some(Value::Array(list)) => {
            let mut items = Message::default();
            for item in list {
                items.message(1, schema(object(item)));
            }
            m.message(23, items);
        }
        _ => {}
    }
    for member in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        m.message(24, schema(object(member)));
    }
    if let Some(props) = s.get("properties") {
        // Properties { repeated NamedSchema additional_properties = 1; }
        let mut properties = Message::default();
        for (name, p) in object(props) {
            properties.message(1, named(name, schema(object(p))));
        }
        m.message(25, properties);
    }
    m.string_of(26, s.get("discriminator"));
    m.bool_of(27, s.get("readOnly"));
    m.any_of(30, s.get("example"));
    m.vendor_extensions(31, s);
    m
}

/// `SecurityRequirement { repeated NamedStringArray additional_properties = 1; }`, each a scheme
/// name and its scopes (`StringArray { repeated string value = 1; }`).
fn security_requirement(r: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    for (name, scopes) in r {
        let mut array = Message::default();
        array.strings_of(1, Some(scopes));
        m.message(1, named(name, array));
    }
    m
}

/// `SecurityDefinitions`: API-key and basic schemes (the kinds kube-apiserver declares).
fn security_definitions(d: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    for (name, def) in d {
        let def = object(def);
        // SecurityDefinitionsItem { oneof { basic_authentication_security 1; api_key_security 2; … } }
        let mut item = Message::default();
        match def.get("type").and_then(Value::as_str) {
            Some("apiKey") => {
                let mut key = Message::default();
                key.string_of(1, def.get("type"));
                key.string_of(2, def.get("name"));
                key.string_of(3, def.get("in"));
                key.string_of(4, def.get("description"));
                key.vendor_extensions(5, def);
                item.message(2, key);
            }
            Some("basic") => {
                let mut basic = Message::default();
                basic.string_of(1, def.get("type"));
                basic.string_of(2, def.get("description"));
                basic.vendor_extensions(3, def);
                item.message(1, basic);
            }
            _ => continue,
        }
        m.message(1, named(name, item));
    }
    m
}

/// A reader for the protobuf wire format, to check what [`encode`] wrote.
#[cfg(test)]
pub(crate) mod read {
    /// One field of a message as it appears on the wire.
    #[derive(Debug, Clone, Copy)]
    pub enum Field<'a> {
        Varint(u64),
        Fixed64(u64),
        /// No gnostic message has a 32-bit field; skipped, value dropped.
        Fixed32,
        Bytes(&'a [u8]),
    }

    /// A decoded message: its fields in wire order.
    #[derive(Debug, Clone)]
    pub struct Msg<'a>(pub Vec<(u32, Field<'a>)>);

    fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *buf.get(*pos).ok_or("truncated varint")?;
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than ten bytes".into())
    }

    pub fn parse(buf: &[u8]) -> Result<Msg<'_>, String> {
        let mut fields = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            let key = varint(buf, &mut pos)?;
            let field = u32::try_from(key >> 3).map_err(|e| e.to_string())?;
            if field == 0 {
                return Err("field number 0".into());
            }
            let value = match key & 7 {
                0 => Field::Varint(varint(buf, &mut pos)?),
                1 => {
                    let bytes = buf.get(pos..pos + 8).ok_or("truncated fixed64")?;
                    pos += 8;
                    Field::Fixed64(u64::from_le_bytes(bytes.try_into().unwrap()))
                }
                2 => {
                    let len = usize::try_from(varint(buf, &mut pos)?).map_err(|e| e.to_string())?;
                    let bytes = buf.get(pos..pos + len).ok_or("truncated length-delimited field")?;
                    pos += len;
                    Field::Bytes(bytes)
                }
                5 => {
                    buf.get(pos..pos + 4).ok_or("truncated fixed32")?;
                    pos += 4;
                    Field::Fixed32
                }
                other => return Err(format!("unsupported wire type {other}")),
            };
            fields.push((field, value));
        }
        Ok(Msg(fields))
    }

    impl<'a> Msg<'a> {
        pub fn all_bytes(&self, field: u32) -> impl Iterator<Item = &'a [u8]> + '_ {
            self.0.iter().filter(move |(f, _)| *f == field).map(move |(_, v)| match v {
                Field::Bytes(b) => *b,
                other => panic!("field {field} is {other:?}, not length-delimited"),
            })
        }

        /// Every occurrence of a message field.
        pub fn msgs(&self, field: u32) -> Vec<Msg<'a>> {
            self.all_bytes(field).map(|b| parse(b).expect("a nested message parses")).collect()
        }

        /// The message field (the last occurrence wins, as in protobuf).
        pub fn msg(&self, field: u32) -> Option<Msg<'a>> {
            self.msgs(field).pop()
        }

        pub fn string(&self, field: u32) -> &'a str {
            self.all_bytes(field).last().map_or("", |b| std::str::from_utf8(b).expect("UTF-8"))
        }

        pub fn strings(&self, field: u32) -> Vec<&'a str> {
            self.all_bytes(field).map(|b| std::str::from_utf8(b).expect("UTF-8")).collect()
        }

        pub fn varint(&self, field: u32) -> Option<u64> {
            self.0.iter().rev().find(|(f, _)| *f == field).map(|(_, v)| match v {
                Field::Varint(v) => *v,
                other => panic!("field {field} is {other:?}, not a varint"),
            })
        }

        /// A `double` field.
        pub fn double(&self, field: u32) -> Option<f64> {
            self.0.iter().rev().find(|(f, _)| *f == field).map(|(_, v)| match v {
                Field::Fixed64(v) => f64::from_bits(*v),
                other => panic!("field {field} is {other:?}, not 64-bit"),
            })
        }

        /// A `repeated NamedX` field as (name, value message) pairs.
        pub fn named(&self, field: u32) -> Vec<(&'a str, Msg<'a>)> {
            self.msgs(field).into_iter().map(|n| (n.string(1), n.msg(2).unwrap_or(Msg(Vec::new())))).collect()
        }

        /// `repeated NamedAny vendor_extension` at `field`, as (name, yaml) pairs.
        pub fn extensions(&self, field: u32) -> Vec<(&'a str, &'a str)> {
            self.named(field).into_iter().map(|(name, any)| (name, any.string(2))).collect()
        }
    }
}
