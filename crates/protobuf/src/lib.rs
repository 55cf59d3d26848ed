//! Decodes Kubernetes protobuf request bodies into the JSON form of the objects they carry.
//!
//! Typed clients of client-go 1.32 and later (so `kubectl create …`, `kubectl auth can-i`, kwok)
//! send `Content-Type: application/vnd.kubernetes.protobuf` bodies: the four magic bytes `k8s\0`,
//! then a `runtime.Unknown` envelope `{typeMeta{apiVersion, kind}, raw, contentEncoding,
//! contentType}` whose `raw` is the object's own protobuf encoding. [`decode`] turns such a body
//! into exactly the `serde_json::Value` that Go's `encoding/json` would have produced for the same
//! object: camelCase field names, `kind`/`apiVersion` first, int-or-string as a bare number or
//! string, quantities as strings, times as RFC 3339, `[]byte` as base64, and zero values of
//! `omitempty` fields left out.
//!
//! This crate owns the wire-format reader and the schema of the built-in kinds (generated from
//! upstream's `generated.proto` and Go types by `tools/gen_schema.py` into `src/schema.rs`). It
//! is pure: no I/O, no knowledge of HTTP or storage. Encoding responses as protobuf is not done
//! here; the server answers JSON, which clients accept.
#![forbid(unsafe_code)]

#[rustfmt::skip]
mod schema;
mod schema_types;
mod wire;

use base64::Engine as _;
use serde_json::{Map, Value};

use schema_types::{Field, Label, Message, Ty, INLINE, KEEP_ZERO, OMIT_ZERO};
use wire::{Reader, WireType};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Nested messages deeper than this are refused (no built-in kind comes close).
const MAX_DEPTH: usize = 100;

/// Seconds of Go's zero `time.Time` (January 1, year 1, UTC) since the Unix epoch.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a Kubernetes protobuf body: it does not start with the magic bytes \"k8s\\x00\"")]
    NotProtobuf,
    #[error("the protobuf envelope names no apiVersion and kind")]
    MissingTypeMeta,
    #[error("no protobuf decoding is known for kind {kind:?} in {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("unsupported contentEncoding {0:?} in the protobuf envelope")]
    UnsupportedEncoding(String),
    #[error("unsupported contentType {0:?} in the protobuf envelope")]
    UnsupportedContentType(String),
    #[error("malformed protobuf{}: {reason}", if path.is_empty() { String::new() } else { format!(" at {path}") })]
    Malformed {
        /// Where in the object, e.g. `spec.template.spec.containers[0].ports[1]`.
        path: String,
        reason: String,
    },
    #[error("protobuf messages nested more than {MAX_DEPTH} deep")]
    TooDeep,
}

impl DecodeError {
    fn malformed(reason: impl Into<String>) -> Self {
        DecodeError::Malformed { path: String::new(), reason: reason.into() }
    }

    /// Prefixes the path of a `Malformed` error with the field (or `[index]`) it happened in.
    fn within(self, segment: &str) -> Self {
        match self {
            DecodeError::Malformed { path, reason } => {
                let path = if path.is_empty() {
                    segment.to_string()
                } else if path.starts_with('[') {
                    format!("{segment}{path}")
                } else {
                    format!("{segment}.{path}")
                };
                DecodeError::Malformed { path, reason }
            }
            other => other,
        }
    }
}

/// Decodes a Kubernetes protobuf request body (with the `k8s\0` envelope) into the JSON form of
/// the object.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    decode_envelope(body, 0)
}

/// Whether [`decode`] knows the object `kind` of `apiVersion`.
pub fn supports(api_version: &str, kind: &str) -> bool {
    root(api_version, kind).is_some()
}

/// Every `(apiVersion, kind)` that [`decode`] knows, in sorted order.
pub fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    schema::ROOTS.iter().map(|&(api_version, kind, _)| (api_version, kind))
}

fn root(api_version: &str, kind: &str) -> Option<&'static Message> {
    let roots = schema::ROOTS;
    if let Ok(i) = roots.binary_search_by(|&(v, k, _)| (v, k).cmp(&(api_version, kind))) {
        return Some(roots[i].2);
    }
    // metav1 registers DeleteOptions into every group version.
    if kind == "DeleteOptions" {
        return root("meta.k8s.io/v1", kind);
    }
    None
}

/// The fields of a `runtime.Unknown`.
#[derive(Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

fn decode_envelope(body: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let Some(rest) = body.strip_prefix(MAGIC.as_slice()) else {
        return Err(DecodeError::NotProtobuf);
    };
    let envelope = parse_envelope(rest)?;
    if !envelope.content_encoding.is_empty() {
        return Err(DecodeError::UnsupportedEncoding(envelope.content_encoding));
    }
    match envelope.content_type.as_str() {
        "" | MEDIA_TYPE => {}
        "application/json" => {
            return serde_json::from_slice(envelope.raw)
                .map_err(|e| DecodeError::malformed(format!("the envelope's JSON object is invalid: {e}")));
        }
        _ => return Err(DecodeError::UnsupportedContentType(envelope.content_type)),
    }
    if envelope.api_version.is_empty() || envelope.kind.is_empty() {
        return Err(DecodeError::MissingTypeMeta);
    }
    let Some(message) = root(&envelope.api_version, &envelope.kind) else {
        return Err(DecodeError::UnknownKind { api_version: envelope.api_version, kind: envelope.kind });
    };
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(envelope.kind));
    object.insert("apiVersion".into(), Value::String(envelope.api_version));
    decode_into(envelope.raw, message, &mut object, depth + 1)?;
    Ok(Value::Object(object))
}

fn parse_envelope(bytes: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let mut envelope = Envelope::default();
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key()?;
        match (number, wire_type) {
            (1, WireType::Len) => {
                let mut type_meta = Reader::new(reader.len_delimited()?);
                while !type_meta.is_empty() {
                    match type_meta.key()? {
                        (1, WireType::Len) => envelope.api_version = utf8(type_meta.len_delimited()?),
                        (2, WireType::Len) => envelope.kind = utf8(type_meta.len_delimited()?),
                        (_, other) => type_meta.skip(other)?,
                    }
                }
            }
            (2, WireType::Len) => envelope.raw = reader.len_delimited()?,
            (3, WireType::Len) => envelope.content_encoding = utf8(reader.len_delimited()?),
            (4, WireType::Len) => envelope.content_type = utf8(reader.len_delimited()?),
            (1..=4, other) => {
                return Err(DecodeError::malformed(format!(
                    "envelope field {number} is {}, expected length-delimited",
                    other.describe()
                )))
            }
            (_, other) => reader.skip(other)?,
        }
    }
    Ok(envelope)
}

/// Go's protobuf strings are not validated; its JSON encoder replaces invalid UTF-8 with U+FFFD.
fn utf8(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes the fields of `message` from `bytes` into `object` (merging, as protobuf does when a
/// message field occurs twice).
fn decode_into(
    bytes: &[u8],
    message: &'static Message,
    object: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key()?;
        match message.field(number) {
            Some(field) => {
                decode_field(&mut reader, wire_type, field, object, depth).map_err(|e| e.within(field.name))?
            }
            // Unknown fields (from a newer client) are skipped, as Go does.
            None => reader.skip(wire_type)?,
        }
    }
    Ok(())
}

fn decode_field(
    reader: &mut Reader<'_>,
    wire_type: WireType,
    field: &'static Field,
    object: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    match field.label {
        Label::Single => {
            if let Ty::Message(message) = field.ty {
                let bytes = expect_len(reader, wire_type)?;
                if field.has(INLINE) {
                    return decode_into(bytes, message, object, depth + 1);
                }
                let slot = object.entry(field.name).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(child) = slot {
                    decode_into(bytes, message, child, depth + 1)?;
                }
                return Ok(());
            }
            let value = decode_value(reader, wire_type, field.ty, depth)?;
            if omitted(field, &value) {
                object.remove(field.name);
            } else {
                object.insert(field.name.into(), value);
            }
        }
        Label::Repeated => {
            let slot = object.entry(field.name).or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            let Value::Array(items) = slot else {
                return Ok(());
            };
            let packable = matches!(field.ty, Ty::Bool | Ty::Int32 | Ty::Int64);
            if packable && wire_type == WireType::Len {
                let mut packed = Reader::new(reader.len_delimited()?);
                while !packed.is_empty() {
                    let index = format!("[{}]", items.len());
                    items.push(
                        decode_value(&mut packed, WireType::Varint, field.ty, depth).map_err(|e| e.within(&index))?,
                    );
                }
            } else {
                let index = format!("[{}]", items.len());
                items.push(decode_value(reader, wire_type, field.ty, depth).map_err(|e| e.within(&index))?);
            }
        }
        Label::Map => {
            let (key, value) = decode_map_entry(expect_len(reader, wire_type)?, field.ty, depth)?;
            let slot = object.entry(field.name).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(map) = slot {
                map.insert(key, value);
            }
        }
    }
    Ok(())
}

/// Whether Go's JSON encoder would have left this value of `field` out.
fn omitted(field: &Field, value: &Value) -> bool {
    match field.ty {
        Ty::Time | Ty::MicroTime => field.has(OMIT_ZERO) && value.is_null(),
        Ty::String | Ty::Bytes | Ty::Bool | Ty::Int32 | Ty::Int64 => {
            !field.has(KEEP_ZERO)
                && match value {
                    Value::String(s) => s.is_empty(),
                    Value::Bool(b) => !b,
                    Value::Number(n) => n.as_i64() == Some(0),
                    _ => false,
                }
        }
        _ => false,
    }
}

fn expect_len<'a>(reader: &mut Reader<'a>, wire_type: WireType) -> Result<&'a [u8], DecodeError> {
    if wire_type != WireType::Len {
        return Err(DecodeError::malformed(format!(
            "expected a length-delimited value, found {}",
            wire_type.describe()
        )));
    }
    reader.len_delimited()
}

fn expect_varint(reader: &mut Reader<'_>, wire_type: WireType) -> Result<u64, DecodeError> {
    if wire_type != WireType::Varint {
        return Err(DecodeError::malformed(format!("expected a varint, found {}", wire_type.describe())));
    }
    reader.varint()
}

/// Decodes one value of type `ty` (not a repeated or map field as a whole).
fn decode_value(reader: &mut Reader<'_>, wire_type: WireType, ty: Ty, depth: usize) -> Result<Value, DecodeError> {
    Ok(match ty {
        Ty::String => Value::String(utf8(expect_len(reader, wire_type)?)),
        Ty::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(expect_len(reader, wire_type)?)),
        Ty::Bool => Value::Bool(expect_varint(reader, wire_type)? != 0),
        // Go truncates varints to the field's width, as `as` does.
        Ty::Int32 => Value::from(expect_varint(reader, wire_type)? as i32),
        Ty::Int64 => Value::from(expect_varint(reader, wire_type)? as i64),
        Ty::Message(message) => {
            let mut object = Map::new();
            decode_into(expect_len(reader, wire_type)?, message, &mut object, depth + 1)?;
            Value::Object(object)
        }
        Ty::Time => time(expect_len(reader, wire_type)?, false)?,
        Ty::MicroTime => time(expect_len(reader, wire_type)?, true)?,
        Ty::Duration => duration(expect_len(reader, wire_type)?)?,
        Ty::FieldsV1 => fields_v1(expect_len(reader, wire_type)?)?,
        Ty::RawExtension => raw_extension(expect_len(reader, wire_type)?, depth)?,
        Ty::IntOrString => int_or_string(expect_len(reader, wire_type)?)?,
        Ty::Quantity => {
            let mut value = String::from("0");
            for_each_field(expect_len(reader, wire_type)?, |number, wire_type, reader| {
                if number == 1 {
                    value = utf8(expect_len(reader, wire_type)?);
                } else {
                    reader.skip(wire_type)?;
                }
                Ok(())
            })?;
            Value::String(value)
        }
        Ty::StringList => {
            let mut items = Vec::new();
            for_each_field(expect_len(reader, wire_type)?, |number, wire_type, reader| {
                if number == 1 {
                    items.push(Value::String(utf8(expect_len(reader, wire_type)?)));
                } else {
                    reader.skip(wire_type)?;
                }
                Ok(())
            })?;
            Value::Array(items)
        }
    })
}

/// Calls `visit` with each field of the message in `bytes`.
fn for_each_field(
    bytes: &[u8],
    mut visit: impl FnMut(u32, WireType, &mut Reader<'_>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key()?;
        visit(number, wire_type, &mut reader)?;
    }
    Ok(())
}

/// A map entry `{1: key, 2: value}`; a missing value is the type's zero value, as in Go.
fn decode_map_entry(bytes: &[u8], ty: Ty, depth: usize) -> Result<(String, Value), DecodeError> {
    let mut key = String::new();
    let mut value = None;
    for_each_field(bytes, |number, wire_type, reader| {
        match number {
            1 => key = utf8(expect_len(reader, wire_type)?),
            2 => value = Some(decode_value(reader, wire_type, ty, depth)?),
            _ => reader.skip(wire_type)?,
        }
        Ok(())
    })?;
    let value = value.unwrap_or_else(|| zero_value(ty));
    Ok((key, value))
}

/// The JSON of a Go zero value of `ty`.
fn zero_value(ty: Ty) -> Value {
    match ty {
        Ty::String | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Int32 | Ty::Int64 | Ty::IntOrString => Value::from(0),
        Ty::Message(_) => Value::Object(Map::new()),
        Ty::Duration => Value::String("0s".into()),
        Ty::Quantity => Value::String("0".into()),
        Ty::Time | Ty::MicroTime | Ty::FieldsV1 | Ty::RawExtension | Ty::StringList => Value::Null,
    }
}

/// `metav1.Time` / `metav1.MicroTime`, encoded as a `Timestamp{seconds = 1, nanos = 2}`; empty
/// when zero. `Time` drops the nanoseconds (as Go's unmarshaller does), `MicroTime` keeps
/// microseconds.
fn time(bytes: &[u8], micro: bool) -> Result<Value, DecodeError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let (mut seconds, mut nanos) = (0i64, 0i64);
    for_each_field(bytes, |number, wire_type, reader| {
        match number {
            1 => seconds = expect_varint(reader, wire_type)? as i64,
            2 => nanos = i64::from(expect_varint(reader, wire_type)? as i32),
            _ => reader.skip(wire_type)?,
        }
        Ok(())
    })?;
    if !micro {
        nanos = 0;
    }
    // Like Go's time.Unix, out-of-range nanoseconds carry into the seconds.
    let seconds = seconds
        .checked_add(nanos.div_euclid(1_000_000_000))
        .ok_or_else(|| DecodeError::malformed("timestamp out of range"))?;
    let nanos = nanos.rem_euclid(1_000_000_000);
    let nanos = nanos - nanos % 1_000;
    if seconds == GO_ZERO_TIME_SECONDS && nanos == 0 {
        return Ok(Value::Null);
    }
    let Some(time) = chrono::DateTime::from_timestamp(seconds, nanos as u32) else {
        return Err(DecodeError::malformed("timestamp out of range"));
    };
    let format = if micro { "%Y-%m-%dT%H:%M:%S%.6fZ" } else { "%Y-%m-%dT%H:%M:%SZ" };
    Ok(Value::String(time.format(format).to_string()))
}

/// `metav1.Duration{duration = 1}` (nanoseconds) as Go's `time.Duration.String()`.
fn duration(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut nanos = 0i64;
    for_each_field(bytes, |number, wire_type, reader| {
        if number == 1 {
            nanos = expect_varint(reader, wire_type)? as i64;
        } else {
            reader.skip(wire_type)?;
        }
        Ok(())
    })?;
    Ok(Value::String(go_duration(nanos)))
}

/// Formats nanoseconds the way Go's `time.Duration.String` does: `1h2m3.5s`, `1.5ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    // `whole.frac` with `digits` fractional digits, trailing zeros trimmed.
    let fraction = |value: u64, unit: u64, digits: usize| {
        let (whole, frac) = (value / unit, value % unit);
        if frac == 0 {
            whole.to_string()
        } else {
            let frac = format!("{frac:0digits$}");
            format!("{whole}.{}", frac.trim_end_matches('0'))
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", fraction(n, 1_000, 3));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(n, 1_000_000, 6));
    }
    let total_seconds = n / 1_000_000_000;
    let (hours, minutes) = (total_seconds / 3600, total_seconds / 60 % 60);
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000, 9);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// `metav1.FieldsV1{Raw = 1}`: the managed-fields JSON itself; `null` when empty.
fn fields_v1(bytes: &[u8]) -> Result<Value, DecodeError> {
    let raw = raw_bytes(bytes)?;
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(raw).map_err(|e| DecodeError::malformed(format!("fieldsV1 is not JSON: {e}")))
}

/// `runtime.RawExtension{raw = 1}`: JSON bytes, or a nested protobuf object with its own envelope.
fn raw_extension(bytes: &[u8], depth: usize) -> Result<Value, DecodeError> {
    let raw = raw_bytes(bytes)?;
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if raw.starts_with(MAGIC) {
        if depth + 1 > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        return decode_envelope(raw, depth + 1);
    }
    serde_json::from_slice(raw)
        .map_err(|e| DecodeError::malformed(format!("embedded object is neither protobuf nor JSON: {e}")))
}

/// Field 1 of a `{bytes raw = 1}` wrapper.
fn raw_bytes(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let mut raw: &[u8] = &[];
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire_type) = reader.key()?;
        if number == 1 {
            raw = expect_len(&mut reader, wire_type)?;
        } else {
            reader.skip(wire_type)?;
        }
    }
    Ok(raw)
}

/// `intstr.IntOrString{type = 1, intVal = 2, strVal = 3}`.
fn int_or_string(bytes: &[u8]) -> Result<Value, DecodeError> {
    let (mut kind, mut int_val, mut str_val) = (0i64, 0i32, String::new());
    for_each_field(bytes, |number, wire_type, reader| {
        match number {
            1 => kind = expect_varint(reader, wire_type)? as i64,
            2 => int_val = expect_varint(reader, wire_type)? as i32,
            3 => str_val = utf8(expect_len(reader, wire_type)?),
            _ => reader.skip(wire_type)?,
        }
        Ok(())
    })?;
    match kind {
        0 => Ok(Value::from(int_val)),
        1 => Ok(Value::String(str_val)),
        other => Err(DecodeError::malformed(format!("IntOrString has impossible type {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_sorted_and_unique() {
        let roots = schema::ROOTS;
        for pair in roots.windows(2) {
            assert!((pair[0].0, pair[0].1) < (pair[1].0, pair[1].1), "{:?} / {:?}", pair[0].1, pair[1].1);
        }
    }

    #[test]
    fn fields_are_sorted_by_number() {
        fn check(message: &'static Message, seen: &mut Vec<&'static str>) {
            if seen.contains(&message.name) {
                return;
            }
            seen.push(message.name);
            for pair in message.fields.windows(2) {
                assert!(pair[0].number < pair[1].number, "{}", message.name);
            }
            for field in message.fields {
                if let Ty::Message(child) = field.ty {
                    check(child, seen);
                }
            }
        }
        let mut seen = Vec::new();
        for &(_, _, message) in schema::ROOTS {
            check(message, &mut seen);
        }
    }

    #[test]
    fn go_durations() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_000_000_001, "1h2m3.000000001s"),
            (-5_000_000_000, "-5s"),
        ];
        for (nanos, want) in cases {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn times() {
        // {seconds: 1795314310}
        let bytes = [0x08, 0x86, 0xa5, 0x89, 0xd8, 0x06];
        assert_eq!(time(&bytes, false).unwrap(), "2026-11-22T02:25:10Z");
        assert_eq!(time(&[], false).unwrap(), Value::Null);
        // {seconds: 1795314310, nanos: 123456789}
        let mut micro = bytes.to_vec();
        micro.extend([0x10, 0x95, 0x9a, 0xef, 0x3a]);
        assert_eq!(time(&micro, true).unwrap(), "2026-11-22T02:25:10.123456Z");
        assert_eq!(time(&micro, false).unwrap(), "2026-11-22T02:25:10Z");
    }
}
