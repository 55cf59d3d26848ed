//! Template hashes: the `pod-template-hash` of a Deployment's ReplicaSets and the
//! `controller-revision-hash` of a StatefulSet's pods.
//!
//! Upstream hashes the Go value with FNV-32a (`hashutil.DeepHashObject`, a `spew` dump of the
//! Go struct), appends the collision count, and renders the decimal number with
//! `rand.SafeEncodeString`. FNV-32a, the collision count and the encoding are reproduced exactly;
//! the input is a canonical JSON rendering of the template (keys sorted, empty values dropped)
//! rather than a Go `spew` dump, so the same template yields a hash of the same shape and
//! stability but not the same characters as on a real cluster.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The alphabet of `k8s.io/apimachinery/pkg/util/rand`: no vowels, no confusable characters.
const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// FNV-1 (32-bit): Go's `fnv.New32`, which ControllerRevision hashes use.
pub fn fnv32(bytes: impl IntoIterator<Item = u8>) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash = hash.wrapping_mul(0x0100_0193);
        hash ^= u32::from(byte);
    }
    hash
}

/// Upstream's `rand.SafeEncodeString`: each byte becomes one character of the safe alphabet.
pub fn safe_encode(text: &str) -> String {
    text.bytes().map(|b| SAFE_ALPHANUMS[usize::from(b) % SAFE_ALPHANUMS.len()] as char).collect()
}

/// The hash of a pod template, as `controller.ComputeHash` shapes it.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    let mut bytes = canonical_json(&value).into_bytes();
    if let Some(count) = collision_count {
        // Upstream writes the count as 4 little-endian bytes into an 8-byte buffer.
        let mut buffer = [0u8; 8];
        buffer[..4].copy_from_slice(&(count as u32).to_le_bytes());
        bytes.extend_from_slice(&buffer);
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Compact JSON with sorted object keys, leaving out nulls and empty objects/arrays (upstream's
/// semantic equality treats nil and empty alike).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&normalize(value).unwrap_or(Value::Null), &mut out);
    out
}

/// Drops nulls, empty maps and empty lists recursively; `None` if nothing is left.
pub fn normalize(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let kept: serde_json::Map<String, Value> =
                map.iter().filter_map(|(k, v)| normalize(v).map(|v| (k.clone(), v))).collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            let kept: Vec<Value> =
                items.iter().map(|v| normalize(v).unwrap_or(Value::Object(Default::default()))).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => Some(other.clone()),
    }
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn fnv32a_matches_reference_vectors() {
        for (input, expected) in [("", 0x811c9dc5u32), ("a", 0xe40c292c), ("foobar", 0xbf9cf968)] {
            assert_eq!(fnv32a(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn fnv32_matches_reference_vectors() {
        for (input, expected) in [("", 0x811c9dc5u32), ("a", 0x050c5d7e), ("foobar", 0x31f0b262)] {
            assert_eq!(fnv32(input.bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn safe_encoding_of_decimal_digits_uses_upstreams_alphabet() {
        // '0'..'9' are bytes 48..57, which map to these characters in upstream's alphabet.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container { name: "web".into(), image: Some(image.into()), ..Default::default() }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn template_hash_is_stable_and_sensitive() {
        let a = template_hash(&template("nginx:1"), None);
        assert_eq!(a, template_hash(&template("nginx:1"), None));
        assert_ne!(a, template_hash(&template("nginx:2"), None));
        assert_ne!(a, template_hash(&template("nginx:1"), Some(1)));
        assert!(a.chars().all(|c| "456789bcdf".contains(c)), "{a}");
        assert!((1..=10).contains(&a.len()));
    }

    #[test]
    fn canonical_json_sorts_keys_and_ignores_empties() {
        let a = serde_json::json!({"b": 1, "a": {"y": [], "x": null, "z": "v"}});
        let b = serde_json::json!({"a": {"z": "v"}, "b": 1});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&b), r#"{"a":{"z":"v"},"b":1}"#);
    }
}
