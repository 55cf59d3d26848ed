//! The four patch types kubectl sends, applied to a JSON object.

use serde_json::Value;

use crate::errors::{ApiError, ApiResult};

pub const JSON: &str = "application/json-patch+json";
pub const MERGE: &str = "application/merge-patch+json";
pub const STRATEGIC: &str = "application/strategic-merge-patch+json";
pub const APPLY: &str = "application/apply-patch+yaml";

/// Applies `patch` of media type `content_type` to `original`.
///
/// Server-side apply (`application/apply-patch+yaml`) is accepted with apply semantics for the
/// fields it names (they are merged like a strategic merge patch); field ownership
/// (`managedFields`) is not tracked yet, so fields dropped from an applied configuration are kept.
pub fn apply(content_type: &str, api_version: &str, kind: &str, original: Value, patch: &Value) -> ApiResult<Value> {
    match content_type {
        JSON => {
            let operations: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            // `target` is our own copy, dropped on failure: nothing to undo. (json-patch's `patch`
            // undoes a failed patch and panics when the undo fails, as it can for a `move`.)
            let mut target = original;
            json_patch::patch_unsafe(&mut target, &operations).map_err(|e| {
                ApiError::new(
                    http::StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
            Ok(target)
        }
        MERGE => {
            let mut target = original;
            json_patch::merge(&mut target, patch);
            Ok(target)
        }
        STRATEGIC | APPLY => frontdoor_strategic_merge::apply_patch(api_version, kind, &original, patch)
            .map_err(|e| ApiError::bad_request(e.to_string())),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}
