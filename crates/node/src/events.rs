//! Recording core/v1 Events about pods, as the kubelet and scheduler do (what `kubectl describe`
//! shows under Events). Recording is best effort: a failure is logged, never fatal.
//!
//! As upstream's event broadcaster, a [`Recorder`] queues events and one task writes them in
//! order: an event never delays the work it reports, and in a burst (a hundred pods starting)
//! the events trail behind the work instead of competing with it.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

/// Upstream's event broadcaster queue length; events beyond it are dropped (and logged).
const QUEUE: usize = 1000;

/// Records events for one component (`kubelet`, `default-scheduler`).
#[derive(Debug, Clone)]
pub struct Recorder {
    component: &'static str,
    queue: mpsc::Sender<Event>,
}

impl Recorder {
    /// Starts the writer task (on the current tokio runtime); it ends when every clone of the
    /// recorder is gone and the queue is written.
    pub fn new(client: kube::Client, component: &'static str) -> Recorder {
        let (queue, mut pending) = mpsc::channel::<Event>(QUEUE);
        tokio::spawn(async move {
            while let Some(event) = pending.recv().await {
                let namespace = event.metadata.namespace.clone().unwrap_or_else(|| "default".into());
                let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
                if let Err(error) = events.create(&PostParams::default(), &event).await {
                    tracing::debug!(%error, reason = event.reason.as_deref().unwrap_or(""), "recording an event failed");
                }
            }
        });
        Recorder { component, queue }
    }

    /// An event about a pod, optionally about one of its containers (`spec.containers{name}`).
    pub fn record(&self, pod: &Pod, container: Option<&str>, kind: &str, reason: &str, message: &str) {
        let Some(event) = pod_event(pod, container, kind, reason, message, self.component) else { return };
        if self.queue.try_send(event).is_err() {
            tracing::debug!(reason, "event queue full or closed; event dropped");
        }
    }
}

fn pod_event(pod: &Pod, container: Option<&str>, kind: &str, reason: &str, message: &str, component: &str) -> Option<Event> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
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
    serde_json::from_value(event).ok()
}
