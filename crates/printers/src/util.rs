//! Tolerant JSON accessors and the small formatting helpers shared by the printers.
//!
//! Every accessor treats a missing field, `null` or a value of the wrong JSON type as absent, so
//! the printers never panic and fall back to the zero value upstream's Go structs would hold.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::duration::human_duration;

/// The value at `path` (object keys), if every step exists and is not `null`.
pub(crate) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// The string at `path`, if present and a string.
pub(crate) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path)?.as_str()
}

/// The string at `path`, or `""` (Go's zero value).
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    opt_str(v, path).unwrap_or("")
}

/// The integer at `path`, if present and an integer.
pub(crate) fn opt_i64(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path)?.as_i64()
}

/// The integer at `path`, or 0.
pub(crate) fn i64_at(v: &Value, path: &[&str]) -> i64 {
    opt_i64(v, path).unwrap_or(0)
}

/// The boolean at `path`, or `false`.
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(crate) fn array_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The object at `path`, if present and an object.
pub(crate) fn object_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a serde_json::Map<String, Value>> {
    get(v, path)?.as_object()
}

/// Number of keys of the object at `path` (0 when absent).
pub(crate) fn object_len(v: &Value, path: &[&str]) -> usize {
    object_at(v, path).map_or(0, serde_json::Map::len)
}

/// The RFC 3339 timestamp (`metav1.Time` or `metav1.MicroTime`) at `path`, if present and valid.
pub(crate) fn time_at(v: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    let s = opt_str(v, path)?;
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// upstream `translateTimestampSince`: HumanDuration since `t`, `<unknown>` for a zero time.
pub(crate) fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) => human_duration(now.signed_duration_since(t)),
        None => "<unknown>".to_string(),
    }
}

/// The `Name` cell: `metadata.name`.
pub(crate) fn name_cell(obj: &Value) -> Value {
    Value::from(str_at(obj, &["metadata", "name"]))
}

/// The `Age` cell: HumanDuration since `metadata.creationTimestamp`.
pub(crate) fn age_cell(obj: &Value, now: DateTime<Utc>) -> Value {
    Value::from(since(time_at(obj, &["metadata", "creationTimestamp"]), now))
}

/// upstream `listWithMoreString`: the first `max` items joined by `,`, then ` + N more...`
/// where N = `count - max`; `<unset>` for an empty list.
pub(crate) fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let joined = list.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

/// Go's `net.JoinHostPort`: brackets hosts containing a colon (IPv6).
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// upstream `layoutContainerCells`: container names and images, each joined by `,`.
pub(crate) fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// Upstream applies API defaulting before printing; a replica count left unset means 1.
pub(crate) fn replicas_or_default(obj: &Value) -> i64 {
    opt_i64(obj, &["spec", "replicas"]).unwrap_or(1)
}
