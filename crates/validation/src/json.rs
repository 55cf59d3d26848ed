//! Defensive readers over JSON objects: a missing key, `null` or a wrongly typed value reads as
//! absent, never as a panic.

use serde_json::Value;

/// A string field, `None` when absent, `null` or not a string.
pub(crate) fn opt_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

/// A string field, `""` when absent (Go's zero value).
pub(crate) fn str_or_empty<'a>(v: &'a Value, key: &str) -> &'a str {
    opt_str(v, key).unwrap_or("")
}

/// An integer from a JSON number; huge or fractional numbers saturate/truncate (the server
/// type-checks before validation, so this only keeps odd input from panicking).
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_u64().map(|_| i64::MAX)).or_else(|| v.as_f64().map(|f| f as i64))
}

/// An integer field, `0` when absent (Go's zero value).
pub(crate) fn int_or_zero(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(as_int).unwrap_or(0)
}

/// An array field as a slice, empty when absent or not an array.
pub(crate) fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A list of strings, `None` when absent or not an array; non-string items read as `""`.
pub(crate) fn opt_strings(v: &Value, key: &str) -> Option<Vec<String>> {
    let items = v.get(key)?.as_array()?;
    Some(items.iter().map(|i| i.as_str().unwrap_or("").to_string()).collect())
}

/// A map of strings (labels, annotations); non-string values read as `""`.
pub(crate) fn string_map(v: &Value, key: &str) -> Vec<(String, String)> {
    v.get(key)
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default()
}
