//! The scheduling decision, kept as its own replaceable step: every pending pod that asks for the
//! default scheduler is bound to this node through the `pods/binding` subresource, as
//! kube-scheduler would bind it (there is one node).

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

use crate::events::Recorder;
use crate::NodeConfig;

fn wants_scheduling(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let unbound = spec.and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty);
    let ours = spec.and_then(|s| s.scheduler_name.as_deref()).is_none_or(|s| s == "default-scheduler");
    unbound && ours && pod.metadata.deletion_timestamp.is_none()
}

async fn bind(client: &kube::Client, events: &Recorder, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let request = pods.create_subresource::<serde_json::Value, serde_json::Value>("binding", name, &PostParams::default(), &binding).await;
    match request {
        Ok(_) => {
            tracing::debug!(pod = name, "bound");
            events.record(pod, None, "Normal", "Scheduled", &format!("Successfully assigned {namespace}/{name} to {node}"));
            Ok(())
        }
        // Bound meanwhile, or gone: nothing to do.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Binds pending pods to this node until the watch ends, recording `Scheduled` events with
/// `events` (the `default-scheduler` component's).
pub async fn run(client: kube::Client, config: NodeConfig, events: Recorder) {
    let pods: Api<Pod> = Api::all(client.clone());
    let filter = watcher::Config::default().fields("spec.nodeName=");
    let mut stream = watcher(pods, filter).default_backoff().applied_objects().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(pod) if wants_scheduling(&pod) => {
                // Bind concurrently: one slow write must not hold up every other pending pod.
                let (client, events, node) = (client.clone(), events.clone(), config.node_name.clone());
                tokio::spawn(async move {
                    if let Err(error) = bind(&client, &events, &pod, &node).await {
                        tracing::warn!(%error, pod = pod.metadata.name.as_deref().unwrap_or(""), "binding failed");
                    }
                });
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "scheduler watch error"),
        }
    }
}
