//! The API writes controllers make, and how their errors read. Every write that depends on
//! what a controller saw carries a precondition (a UID or a resourceVersion), so acting on a
//! stale cache fails with a conflict instead of undoing someone else's change.

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::Api;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;

pub use frontdoor_informers::errors::{is_already_exists, is_not_found};

/// The API server's message for an API error, the error's text otherwise.
pub fn message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// Now, at the second precision API timestamps have.
pub fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Deletes `name` only if it still has `uid` (another object may have taken the name).
pub async fn delete_with_uid<K: Clone + DeserializeOwned + Debug>(
    api: &Api<K>,
    name: &str,
    uid: &str,
) -> Result<(), kube::Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A JSON merge patch of the object.
pub async fn merge_patch<K: Clone + DeserializeOwned + Debug>(
    api: &Api<K>,
    name: &str,
    patch: &Value,
) -> Result<K, kube::Error> {
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await
}

/// Replaces `status` through the status subresource: a merge patch in which every field of
/// `status` that `fields` lists and the new status lacks is sent as `null` (removed).
pub async fn write_status<K: Clone + DeserializeOwned + Debug>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
    fields: &[&str],
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({ "status": status_with_nulls(status, fields) });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
}

pub fn status_with_nulls(status: &impl serde::Serialize, fields: &[&str]) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        for field in fields {
            map.entry(field.to_string()).or_insert(Value::Null);
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;

    #[test]
    fn absent_status_fields_become_nulls() {
        let status = ReplicaSetStatus { replicas: 2, ready_replicas: Some(1), ..Default::default() };
        let value = status_with_nulls(&status, &["readyReplicas", "availableReplicas"]);
        assert_eq!(value, serde_json::json!({"replicas": 2, "readyReplicas": 1, "availableReplicas": null}));
    }
}
