//! The scheduling decision, kept as its own replaceable step: every pending pod that asks for the
//! default scheduler is bound to this node through the `pods/binding` subresource, as
//! kube-scheduler would bind it (there is one node). A pod with scheduling gates waits, marked
//! `PodScheduled=False` with reason `SchedulingGated`, until its gates are gone. A failed write
//! is retried with backoff until it succeeds or the pod no longer needs it.

use std::sync::Arc;

use frontdoor_informers::{
    on_change, Action, Backoff, Change, Controller, ControllerConfig, InformerFactory, ObjectKey, Reconciler, Scope,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::NodeConfig;
use frontdoor_informers::EventRecorder;

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
    let marked =
        conditions.is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some(GATED)));
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
    pods.patch_status(pod.metadata.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    Ok(())
}

async fn bind(client: &kube::Client, events: &EventRecorder, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let request = pods
        .create_subresource::<serde_json::Value, serde_json::Value>("binding", name, &PostParams::default(), &binding)
        .await;
    match request {
        Ok(_) => {
            tracing::debug!(pod = name, "bound");
            events.record(
                pod,
                None,
                "Normal",
                "Scheduled",
                &format!("Successfully assigned {namespace}/{name} to {node}"),
            );
            Ok(())
        }
        // Bound meanwhile, or gone: nothing to do.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The scheduler as a controller over the shared informer of unscheduled pods: each pending
/// pod's key is reconciled (bound, or marked gated), and a write that fails is retried with
/// backoff, as kube-scheduler puts a pod whose binding failed back into its queue.
struct Scheduler {
    client: kube::Client,
    pending: Store<Pod>,
    node: String,
    events: EventRecorder,
}

impl Reconciler for Scheduler {
    type Key = ObjectKey;
    type Error = kube::Error;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, kube::Error> {
        let Some(pod) = self.pending.get(&key.object_ref()) else { return Ok(Action::Done) };
        match decide(&pod) {
            Decision::Bind => bind(&self.client, &self.events, &pod, &self.node).await?,
            Decision::MarkGated => mark_gated(&self.client, &pod).await?,
            Decision::Nothing => {}
        }
        Ok(Action::Done)
    }
}

/// Binds pending pods to this node until `factory`'s shutdown, recording `Scheduled` events
/// with `events` (the `default-scheduler` component's). Pods are bound concurrently, so one slow
/// write does not hold up every other pending pod.
pub async fn run(factory: InformerFactory, config: NodeConfig, events: EventRecorder, backoff: Backoff) {
    let pending = factory.cluster_wide::<Pod>(Scope::all().fields("spec.nodeName="));
    let scheduler =
        Arc::new(Scheduler { client: factory.client(), pending: pending.store(), node: config.node_name, events });
    let controller = Controller::new(&factory, scheduler, ControllerConfig { name: "scheduler", workers: 16, backoff });
    let queue = controller.queue();
    let shutdown = factory.shutdown();
    on_change(pending.subscribe(), &shutdown, move |change| {
        if let Change::Applied { new, .. } = change {
            if decide(&new) != Decision::Nothing {
                queue.add(ObjectKey::of(new.as_ref()));
            }
        }
    });
    controller.run(pending.synced(), shutdown).await;
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
        assert_eq!(
            decide(&pod(json!({"metadata": {"name": "p"}, "spec": gated, "status": marked}))),
            Decision::Nothing
        );
        // Gates removed: bound, whatever the old condition says.
        assert_eq!(decide(&pod(json!({"metadata": {"name": "p"}, "spec": spec, "status": marked}))), Decision::Bind);
        let bound = json!({"containers": [{"name": "c"}], "nodeName": "n1"});
        assert_eq!(decide(&pod(json!({"metadata": {"name": "p"}, "spec": bound}))), Decision::Nothing);
        let other = json!({"containers": [{"name": "c"}], "schedulerName": "custom"});
        assert_eq!(decide(&pod(json!({"metadata": {"name": "p"}, "spec": other}))), Decision::Nothing);
    }
}
