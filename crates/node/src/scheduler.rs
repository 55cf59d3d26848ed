//! The scheduling decision, kept as its own replaceable step: every pending pod that asks for the
//! default scheduler is bound to this node through the `pods/binding` subresource, as
//! kube-scheduler would bind it (there is one node). A pod with scheduling gates waits, marked
//! `PodScheduled=False` with reason `SchedulingGated`, until its gates are gone. A pod asking for
//! a host port that a pod on the node holds (kube-scheduler's `NodePorts` filter) stays pending,
//! marked `PodScheduled=False` with reason `Unschedulable` and a `FailedScheduling` event, and is
//! tried again when a pod leaves the node (or finishes), when its own spec changes, and every five
//! minutes. A failed write is retried with backoff until it succeeds or the pod no longer needs it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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

/// Binds `pod` to `node`; `false` if it was bound meanwhile or is gone.
async fn bind(client: &kube::Client, events: &EventRecorder, pod: &Pod, node: &str) -> Result<bool, kube::Error> {
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
            Ok(true)
        }
        // Bound meanwhile, or gone: nothing to do.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// A host port a pod asks for, as kube-scheduler's `HostPortInfo` holds it: an empty host IP is
/// `0.0.0.0`, an empty protocol `TCP`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HostPort {
    ip: String,
    protocol: String,
    port: i32,
}

/// Binding to every address.
const ANY_IP: &str = "0.0.0.0";

/// The host ports of a pod (upstream's `GetHostPorts`): those of its containers and of its
/// init containers that run as long as the pod (`restartPolicy: Always`, sidecars).
fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else { return Vec::new() };
    let sidecars =
        spec.init_containers.iter().flatten().filter(|container| container.restart_policy.as_deref() == Some("Always"));
    sidecars
        .chain(spec.containers.iter())
        .flat_map(|container| container.ports.iter().flatten())
        .filter_map(|port| {
            let host_port = port.host_port.filter(|p| *p > 0)?;
            let ip = port.host_ip.as_deref().filter(|ip| !ip.is_empty()).unwrap_or(ANY_IP);
            let protocol = port.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP");
            Some(HostPort { ip: ip.to_string(), protocol: protocol.to_string(), port: host_port })
        })
        .collect()
}

/// Upstream's `HostPortInfo.CheckConflict`: same protocol and port, and either address is
/// `0.0.0.0` or they are the same.
fn conflicts(used: &[HostPort], wanted: &HostPort) -> bool {
    used.iter().any(|held| {
        held.protocol == wanted.protocol
            && held.port == wanted.port
            && (wanted.ip == ANY_IP || held.ip == ANY_IP || held.ip == wanted.ip)
    })
}

/// kube-scheduler's `NodePorts` filter failing on the one node, with what its default preemption
/// adds when there is nothing to preempt (`FitError`'s message).
const NODE_PORTS_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

fn unschedulable_message(pod: &Pod) -> String {
    let never = pod.spec.as_ref().and_then(|s| s.preemption_policy.as_deref()) == Some("Never");
    let preemption = if never {
        "not eligible due to preemptionPolicy=Never."
    } else {
        "0/1 nodes are available: 1 No preemption victims found for incoming pod."
    };
    format!("0/1 nodes are available: 1 {NODE_PORTS_REASON}. preemption: {preemption}")
}

const UNSCHEDULABLE: &str = "Unschedulable";

/// How long an unschedulable pod waits at most before it is tried again (upstream's
/// `podMaxInUnschedulablePodsDuration`).
const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(300);

/// How long a pod stays assumed if the node's informer never shows it (it normally does within
/// milliseconds, and the assumption ends then).
const ASSUMED_TTL: Duration = Duration::from_secs(30);

/// Marks a pod unschedulable as kube-scheduler does: a `FailedScheduling` event for each attempt,
/// and the `PodScheduled` condition when it says something new.
async fn mark_unschedulable(client: &kube::Client, events: &EventRecorder, pod: &Pod) -> Result<(), kube::Error> {
    let message = unschedulable_message(pod);
    events.record(pod, None, "Warning", "FailedScheduling", &message);
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let old = conditions.and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    if old.is_some_and(|c| {
        c.status == "False" && c.reason.as_deref() == Some(UNSCHEDULABLE) && c.message.as_deref() == Some(&message)
    }) {
        return Ok(());
    }
    // The transition is when the status last changed (upstream's `UpdatePodCondition`).
    let transition = match old.filter(|c| c.status == "False").and_then(|c| c.last_transition_time.as_ref()) {
        Some(time) => json!(time),
        None => json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    };
    let condition = json!({
        "type": "PodScheduled",
        "status": "False",
        "reason": UNSCHEDULABLE,
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": transition,
    });
    let pods: Api<Pod> = Api::namespaced(client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
    let patch = json!({"status": {"conditions": [condition]}});
    match pods
        .patch_status(pod.metadata.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()), // gone meanwhile
        Err(e) => Err(e),
    }
}

/// Pods this scheduler decided to bind that the node's informer does not show yet, with their
/// host ports (kube-scheduler's assumed pods). A pod's ports are checked against the node's and
/// the assumed ones and the pod assumed under one lock, so two pods bound at once never take the
/// same port.
#[derive(Default)]
struct Assumed(Mutex<HashMap<String, (Vec<HostPort>, Instant)>>);

impl Assumed {
    fn forget(&self, uid: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }
}

/// The scheduler as a controller over the shared informer of unscheduled pods: each pending
/// pod's key is reconciled (bound, marked gated, or marked unschedulable), and a write that fails
/// is retried with backoff, as kube-scheduler puts a pod whose binding failed back into its
/// queue. The node's pods (the shared informer of `spec.nodeName=<node>`) say which host ports
/// are taken.
struct Scheduler {
    client: kube::Client,
    pending: Store<Pod>,
    on_node: Store<Pod>,
    node: String,
    events: EventRecorder,
    assumed: Arc<Assumed>,
}

impl Scheduler {
    /// Whether `wanted` is free on the node; if so, the pod `uid` is assumed to hold it.
    fn fits_and_assume(&self, uid: &str, wanted: &[HostPort]) -> bool {
        // The node's pods are read under the lock: a pod the informer shows is forgotten as
        // assumed only after the store holds it, so no pod is missed from both.
        let mut assumed = self.assumed.0.lock().unwrap_or_else(PoisonError::into_inner);
        let on_node = self.on_node.state();
        let shown: HashSet<&str> = on_node.iter().filter_map(|pod| pod.metadata.uid.as_deref()).collect();
        let now = Instant::now();
        assumed.retain(|uid, (_, at)| !shown.contains(uid.as_str()) && now.duration_since(*at) < ASSUMED_TTL);
        let used: Vec<HostPort> = on_node
            .iter()
            .filter(|pod| !frontdoor_informers::pods::is_terminal(pod))
            .flat_map(|pod| host_ports(pod))
            .chain(assumed.values().flat_map(|(ports, _)| ports.iter().cloned()))
            .collect();
        if wanted.iter().any(|port| conflicts(&used, port)) {
            return false;
        }
        assumed.insert(uid.to_string(), (wanted.to_vec(), now));
        true
    }

    async fn schedule(&self, pod: &Pod) -> Result<Action, kube::Error> {
        let wanted = host_ports(pod);
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        if wanted.is_empty() {
            bind(&self.client, &self.events, pod, &self.node).await?;
            return Ok(Action::Done);
        }
        if !self.fits_and_assume(uid, &wanted) {
            tracing::debug!(pod = pod.metadata.name.as_deref().unwrap_or(""), "host ports taken");
            mark_unschedulable(&self.client, &self.events, pod).await?;
            return Ok(Action::RequeueAfter(UNSCHEDULABLE_RETRY));
        }
        match bind(&self.client, &self.events, pod, &self.node).await {
            Ok(true) => Ok(Action::Done),
            Ok(false) => {
                self.assumed.forget(uid);
                Ok(Action::Done)
            }
            Err(error) => {
                self.assumed.forget(uid);
                Err(error)
            }
        }
    }
}

impl Reconciler for Scheduler {
    type Key = ObjectKey;
    type Error = kube::Error;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, kube::Error> {
        let Some(pod) = self.pending.get(&key.object_ref()) else { return Ok(Action::Done) };
        match decide(&pod) {
            Decision::Bind => self.schedule(&pod).await,
            Decision::MarkGated => mark_gated(&self.client, &pod).await.map(|()| Action::Done),
            Decision::Nothing => Ok(Action::Done),
        }
    }
}

/// Whether a change of a pending pod can change its scheduling: it is new, or more than its
/// status changed (upstream's `isPodUpdated`). Its own status updates (marked gated or
/// unschedulable) do not make it try again.
fn worth_a_try(old: Option<&Pod>, new: &Pod) -> bool {
    let Some(old) = old else { return true };
    let strip = |pod: &Pod| {
        let mut pod = pod.clone();
        pod.status = None;
        pod.metadata.resource_version = None;
        pod.metadata.generation = None;
        pod.metadata.managed_fields = None;
        pod
    };
    strip(old) != strip(new)
}

/// Whether a change of a pod on the node can free host ports: it is gone, or it finished.
fn frees_ports(change: &Change<Pod>) -> bool {
    use frontdoor_informers::pods::is_terminal;
    match change {
        Change::Deleted(_) => true,
        Change::Applied { old: Some(old), new } => is_terminal(new) && !is_terminal(old),
        Change::Applied { old: None, .. } => false,
    }
}

/// Binds pending pods to this node until `factory`'s shutdown, recording `Scheduled` and
/// `FailedScheduling` events with `events` (the `default-scheduler` component's). Pods are bound
/// concurrently, so one slow write does not hold up every other pending pod.
pub async fn run(factory: InformerFactory, config: NodeConfig, events: EventRecorder, backoff: Backoff) {
    let pending = factory.cluster_wide::<Pod>(Scope::all().fields("spec.nodeName="));
    // The runtime's informer of this node's pods: the same scope, so the same watch.
    let on_node = factory.cluster_wide::<Pod>(Scope::all().fields(format!("spec.nodeName={}", config.node_name)));
    let assumed = Arc::new(Assumed::default());
    let scheduler = Arc::new(Scheduler {
        client: factory.client(),
        pending: pending.store(),
        on_node: on_node.store(),
        node: config.node_name,
        events,
        assumed: assumed.clone(),
    });
    let controller = Controller::new(&factory, scheduler, ControllerConfig { name: "scheduler", workers: 16, backoff });
    let queue = controller.queue();
    let shutdown = factory.shutdown();
    on_change(pending.subscribe(), &shutdown, move |change| {
        if let Change::Applied { old, new } = change {
            if decide(&new) != Decision::Nothing && worth_a_try(old.as_deref(), &new) {
                queue.add(ObjectKey::of(new.as_ref()));
            }
        }
    });
    // A pod that leaves the node (or finishes) may free the ports a pending pod waits for: every
    // pending pod is tried again (as upstream moves unschedulable pods back on a pod's deletion).
    let (retry, waiting) = (controller.queue(), pending.store());
    on_change(on_node.subscribe(), &shutdown, move |change| {
        let (Change::Applied { new: pod, .. } | Change::Deleted(pod)) = &change;
        if let Some(uid) = pod.metadata.uid.as_deref() {
            assumed.forget(uid); // shown, so no longer assumed
        }
        if frees_ports(&change) && !host_ports(pod).is_empty() {
            for pod in waiting.state() {
                if decide(&pod) == Decision::Bind {
                    retry.add(ObjectKey::of(pod.as_ref()));
                }
            }
        }
    });
    let synced = {
        let (pending, on_node) = (pending.synced(), on_node.synced());
        async move {
            pending.await;
            on_node.await;
        }
    };
    controller.run(synced, shutdown).await;
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

    fn port(ip: &str, protocol: &str, port: i32) -> HostPort {
        HostPort { ip: ip.into(), protocol: protocol.into(), port }
    }

    #[test]
    fn host_ports_as_kube_scheduler_reads_them() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [
                    {"name": "once", "ports": [{"containerPort": 1, "hostPort": 81}]},
                    {"name": "sidecar", "restartPolicy": "Always", "ports": [{"containerPort": 1, "hostPort": 82}]},
                ],
                "containers": [{"name": "c", "ports": [
                    {"containerPort": 80},
                    {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"},
                    {"containerPort": 53, "hostPort": 53, "protocol": "UDP"},
                ]}],
            },
        }));
        assert_eq!(
            host_ports(&p),
            [port("0.0.0.0", "TCP", 82), port("127.0.0.1", "TCP", 8080), port("0.0.0.0", "UDP", 53)]
        );
    }

    #[test]
    fn host_port_conflicts_as_upstream() {
        // (held, wanted, conflict), after upstream's HostPortInfo tests.
        let cases = [
            (port("127.0.0.1", "TCP", 80), port("127.0.0.1", "TCP", 80), true),
            (port("127.0.0.1", "TCP", 80), port("127.0.0.1", "UDP", 80), false),
            (port("127.0.0.1", "TCP", 80), port("127.0.0.1", "TCP", 81), false),
            (port("127.0.0.1", "TCP", 80), port("127.0.0.2", "TCP", 80), false),
            (port("127.0.0.1", "TCP", 80), port("0.0.0.0", "TCP", 80), true),
            (port("0.0.0.0", "TCP", 80), port("127.0.0.1", "TCP", 80), true),
            (port("0.0.0.0", "TCP", 80), port("0.0.0.0", "TCP", 80), true),
            (port("0.0.0.0", "TCP", 80), port("0.0.0.0", "SCTP", 80), false),
        ];
        for (held, wanted, conflict) in cases {
            assert_eq!(conflicts(std::slice::from_ref(&held), &wanted), conflict, "{held:?} vs {wanted:?}");
        }
        // The conformance test's three pods fit together.
        let mut used = Vec::new();
        for wanted in [port("127.0.0.1", "TCP", 54323), port("10.0.0.5", "TCP", 54323), port("10.0.0.5", "UDP", 54323)]
        {
            assert!(!conflicts(&used, &wanted), "{wanted:?}");
            used.push(wanted);
        }
    }

    #[test]
    fn unschedulable_message_as_upstream() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}));
        assert_eq!(
            unschedulable_message(&p),
            "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. \
             preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
        let never = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "preemptionPolicy": "Never"}}),
        );
        assert_eq!(
            unschedulable_message(&never),
            "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. \
             preemption: not eligible due to preemptionPolicy=Never."
        );
    }

    #[test]
    fn only_more_than_a_status_change_is_worth_another_try() {
        let old =
            pod(json!({"metadata": {"name": "p", "resourceVersion": "1"}, "spec": {"containers": [{"name": "c"}]}}));
        assert!(worth_a_try(None, &old));
        let marked = pod(json!({
            "metadata": {"name": "p", "resourceVersion": "2"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]},
        }));
        assert!(!worth_a_try(Some(&old), &marked));
        let labelled = pod(json!({
            "metadata": {"name": "p", "resourceVersion": "3", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c"}]},
        }));
        assert!(worth_a_try(Some(&marked), &labelled));
    }
}
