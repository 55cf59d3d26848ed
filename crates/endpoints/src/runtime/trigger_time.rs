//! The time of the change that triggered an endpoints update, for the
//! `endpoints.kubernetes.io/last-change-trigger-time` annotation, as upstream's
//! `TriggerTimeTracker`: per Service, the earliest of the changes seen since the last write —
//! a pod whose Ready condition moved (its `lastTransitionTime`), or the Service itself when it
//! is new (its `creationTimestamp`). Service proxies measure network programming latency from it
//! (`kubeproxy_network_programming_duration_seconds`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Pod, Service};

use crate::service::ObjectKey;

#[derive(Default)]
pub struct TriggerTimes {
    seen: Mutex<HashMap<ObjectKey, Seen>>,
}

#[derive(Default)]
struct Seen {
    service: Option<String>,
    pods: HashMap<String, String>,
}

/// A time as the API writes it (RFC 3339).
fn text(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Option<String> {
    serde_json::to_value(time).ok()?.as_str().map(str::to_string)
}

fn pod_trigger(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    text(ready.last_transition_time.as_ref()?)
}

impl TriggerTimes {
    /// The earliest change to `service` or its `pods` since the last call for it (`None`: none
    /// with a time). Remembers what it saw.
    pub fn compute(&self, key: &ObjectKey, service: &Service, pods: &[&Pod]) -> Option<String> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let state = seen.entry(key.clone()).or_default();
        let mut earliest: Option<String> = None;
        let mut consider = |time: String| {
            if earliest.as_ref().is_none_or(|e| time < *e) {
                earliest = Some(time);
            }
        };
        let created = service.metadata.creation_timestamp.as_ref().and_then(text);
        if state.service.is_none() {
            if let Some(created) = &created {
                consider(created.clone());
            }
        }
        state.service = created;
        let mut pods_now = HashMap::new();
        for pod in pods {
            let Some(time) = pod_trigger(pod) else { continue };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if state.pods.get(&name) != Some(&time) {
                consider(time.clone());
            }
            pods_now.insert(name, time);
        }
        state.pods = pods_now;
        earliest
    }

    pub fn forget(&self, key: &ObjectKey) {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready_at: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]}}))
        .unwrap()
    }

    #[test]
    fn the_earliest_change_since_the_last_write() {
        let times = TriggerTimes::default();
        let key = ObjectKey::new("default", "web");
        let service: Service =
            serde_json::from_value(json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:05Z"}}))
                .unwrap();
        let a = pod("a", "2026-01-01T00:00:07Z");
        let b = pod("b", "2026-01-01T00:00:09Z");
        // New Service: its creation is the earliest change.
        assert_eq!(times.compute(&key, &service, &[&a, &b]).as_deref(), Some("2026-01-01T00:00:05Z"));
        // Nothing new.
        assert_eq!(times.compute(&key, &service, &[&a, &b]), None);
        // b flipped later, c appeared.
        let b2 = pod("b", "2026-01-01T00:01:00Z");
        let c = pod("c", "2026-01-01T00:00:50Z");
        assert_eq!(times.compute(&key, &service, &[&a, &b2, &c]).as_deref(), Some("2026-01-01T00:00:50Z"));
        times.forget(&key);
        assert_eq!(times.compute(&key, &service, &[&a]).as_deref(), Some("2026-01-01T00:00:05Z"));
    }
}
