//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`)
//! for the built-in kinds frontdoor serves, applied the way kube-apiserver
//! applies it (k8s.io/apimachinery `pkg/util/strategicpatch`).
//!
//! This crate owns:
//! - the patch metadata of the built-in kinds (which lists merge, by which
//!   key), as a small static type graph ([`schema`]);
//! - the merge itself: recursive map merge with `null` deletion, list merge
//!   by key or as a set, and the directives `$patch` (`replace`, `delete`),
//!   `$retainKeys`, `$setElementOrder/<field>` and
//!   `$deleteFromPrimitiveList/<field>`;
//! - the fallback to JSON merge patch (RFC 7386) for kinds without metadata.
//!
//! It works on plain [`serde_json::Value`]s, does no I/O and keeps no state.
//! Validating the result against the kind's schema, defaulting and storing it
//! are the caller's business.
//!
//! ```
//! use serde_json::json;
//! let service = json!({"apiVersion": "v1", "kind": "Service",
//!     "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "name": "http"}]}});
//! let patch = json!({"spec": {"$setElementOrder/ports": [{"port": 80}],
//!     "ports": [{"port": 80, "targetPort": 9090}]}});
//! let patched = frontdoor_strategic_merge::apply_patch("v1", "Service", &service, &patch).unwrap();
//! assert_eq!(patched["spec"]["ports"],
//!     json!([{"port": 80, "targetPort": 9090, "protocol": "TCP", "name": "http"}]));
//! ```

#![forbid(unsafe_code)]

mod directives;
mod error;
mod json_merge;
mod list;
mod schema;
mod strategic;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use error::PatchError;

/// Applies a strategic merge patch to `original` (an object of kind `kind` in
/// `api_version`), returning the patched object.
///
/// For a kind this crate has no patch metadata for, the patch is applied as a
/// JSON merge patch (RFC 7386), the semantics upstream falls back to for
/// unstructured objects. Both `original` and `patch` must be JSON objects.
pub fn apply_patch(api_version: &str, kind: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::PatchNotAnObject);
    };
    let Value::Object(original) = original else {
        return Err(PatchError::OriginalNotAnObject);
    };
    match schema::root_type(api_version, kind) {
        Some(root) => {
            strategic::merge_map(original.clone(), patch.clone(), Some(root), &error::Path::Root).map(Value::Object)
        }
        None => Ok(json_merge::merge_patch(Value::Object(original.clone()), &Value::Object(patch.clone()))),
    }
}

/// Whether this crate knows the patch metadata of `kind` in `api_version`.
///
/// When it does not, [`apply_patch`] falls back to JSON merge patch. A server
/// that wants upstream's exact behaviour for custom resources (refusing
/// strategic merge patches with `415 Unsupported Media Type`) can ask first.
pub fn supports_strategic_merge(api_version: &str, kind: &str) -> bool {
    schema::root_type(api_version, kind).is_some()
}
