//! The scheduling decision, kept as its own replaceable step: every pending pod that asks for the
//! default scheduler is bound to this node through the `pods/binding` subresource, as
//! kube-scheduler would bind it (there is one node). A pod with scheduling gates waits, marked
//! `PodScheduled=False` with reason `SchedulingGated`, until its gates are gone.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

use crate::events::Recorder;
use crate::NodeConfig;

/// What the scheduler makes of a pod it sees.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Bind,
    /// Gated and not yet marked so.
    MarkGated,
    Nothing,
}

fn decide(pod: &Pod) -> Decision {
    let spec = pod.spec.as_ref();
    let unbound = spec.and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty);
    let ours = spec.and_then(|s| s.scheduler_name.as_deref()).is_none_or(|s| s == "default-scheduler");
    if !(unbound && ours && pod.metadata.deletion_timestamp.is_none()) {
        return Decision::Nothing;
    }
    if spec.and_then(|s| s.scheduling_gates.as_ref()).is_none_or(Vec::is_empty) {
        return Decision::Bind;
    }
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let marked = conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some(GATED)));
    if marked {
        Decision::Nothing
    } else {
        Decision::MarkGated
    }
}

const GATED: &str = "SchedulingGated";

/// Marks a gated pod as kube-scheduler does (no event: it is not a scheduling failure).
async fn mark_gated(client: &kube::Client, pod: &Pod) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
    let condition = json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": GATED,
        "message": "Scheduling is blocked due to non-empty scheduling gates",
        "lastProbeTime": null,
        "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    let patch = json!({"status": {"conditions": [condition]}});
    pods.patch_status(pod.metadata.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Strategic(&patch)).await?;
    Ok(())
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
            Ok(pod) => {
                let decision = decide(&pod);
                if decision == Decision::Nothing {
                    continue;
                }
                // Concurrently: one slow write must not hold up every other pending pod.
                let (client, events, node) = (client.clone(), events.clone(), config.node_name.clone());
                tokio::spawn(async move {
                    let written = match decision {
                        Decision::Bind => bind(&client, &events, &pod, &node).await,
                        _ => mark_gated(&client, &pod).await,
                    };
                    if let Err(error) = written {
                        tracing::warn!(%error, pod = pod.metadata.name.as_deref().unwrap_or(""), ?decision, "scheduling write failed");
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "scheduler watch error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn gated_pods_wait_marked_once_and_the_rest_are_bound() {
        let spec = json!({"containers": [{"name": "c"}]});
        assert_eq!(decide(&pod(json!({"metadata": {"name": "p"}, "spec": spec}))), Decision::Bind);
        let gated = json!({"containers": [{"name": "c"}], "schedulingGates": [{"name": "example.com/quota"}]});
        assert_eq!(decide(&pod(json!({"metadata": {"name": "p"}, "spec": gated}))), Decision::MarkGated);
        let marked = json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]});
        assert_eq!(decide(&pod(json!({"metadata": {"name": "p"}, "spec": gated, "status": marked}))), Decision::Nothing);
        // Gates removed: bound, whatever the old condition says.
        assert_eq!(decide(&pod(json!({"metadata": {"name": "p"}, "spec": spec, "status": marked}))), Decision::Bind);
        let bound = json!({"containers": [{"name": "c"}], "nodeName": "n1"});
        assert_eq!(decide(&pod(json!({"metadata": {"name": "p"}, "spec": bound}))), Decision::Nothing);
        let other = json!({"containers": [{"name": "c"}], "schedulerName": "custom"});
        assert_eq!(decide(&pod(json!({"metadata": {"name": "p"}, "spec": other}))), Decision::Nothing);
    }
}
