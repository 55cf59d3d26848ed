//! Recording core/v1 Events about pods, as the kubelet and scheduler do (what `kubectl describe`
//! shows under Events). Recording is best effort: a failure is logged, never fatal.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

pub async fn record(client: &kube::Client, pod: &Pod, kind: &str, reason: &str, message: &str, component: &str) {
    record_for(client, pod, None, kind, reason, message, component).await
}

/// An event about a pod, optionally about one of its containers (`spec.containers{name}`).
pub async fn record_for(
    client: &kube::Client,
    pod: &Pod,
    container: Option<&str>,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = chrono::Utc::now();
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut involved = json!({
        "kind": "Pod", "namespace": namespace, "name": name, "apiVersion": "v1",
        "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version,
    });
    if let Some(container) = container {
        involved["fieldPath"] = json!(format!("spec.containers{{{container}}}"));
    }
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": null,
        "count": 1,
    });
    let Ok(event) = serde_json::from_value::<Event>(event) else { return };
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    // Written in the background: an event never delays the work it reports.
    let reason = reason.to_string();
    tokio::spawn(async move {
        if let Err(error) = events.create(&PostParams::default(), &event).await {
            tracing::debug!(%error, reason, "recording an event failed");
        }
    });
}
