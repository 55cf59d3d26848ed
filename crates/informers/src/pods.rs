//! What every component needs to know about a Pod's state.

use k8s_openapi::api::core::v1::Pod;

/// The pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The pod has finished for good (phase `Succeeded` or `Failed`).
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// The pod is being deleted (has a `deletionTimestamp`).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// `status.phase`, empty when unset.
pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// `spec.nodeName`, empty while unscheduled.
pub fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn readiness_termination_and_phase() {
        let cases = [
            (json!({}), false, false, false),
            (json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}), true, false, false),
            (json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}), false, false, false),
            (json!({"status": {"phase": "Succeeded"}}), false, true, false),
            (json!({"status": {"phase": "Failed"}}), false, true, false),
            (json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}), false, false, true),
        ];
        for (value, ready, terminal, terminating) in cases {
            let p = pod(value.clone());
            assert_eq!((is_ready(&p), is_terminal(&p), is_terminating(&p)), (ready, terminal, terminating), "{value}");
        }
        assert_eq!(node_name(&pod(json!({"spec": {"containers": [], "nodeName": "n1"}}))), "n1");
    }
}
