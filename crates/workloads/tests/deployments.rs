//! Deployments against the real API server, driven with the real kubectl.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

mod common;

use common::{eventually, pod_names, Cluster, Kubelet, PodEvent, Recorder};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn deployment(strategy: &str, image: &str, replicas: i32) -> String {
    let strategy = match strategy {
        "Recreate" => "  strategy:\n    type: Recreate\n".to_string(),
        _ => "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n"
            .to_string(),
    };
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
{strategy}  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
"#
    )
}

async fn replica_sets(cluster: &Cluster) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    let mut list = api.list(&Default::default()).await.unwrap().items;
    list.sort_by_key(|rs| rs.metadata.creation_timestamp.clone());
    list
}

fn annotation(rs: &ReplicaSet, key: &str) -> Option<String> {
    rs.annotations().get(key).cloned()
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn image(rs: &ReplicaSet) -> String {
    rs.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0].image.clone().unwrap()
}

/// The ReplicaSet whose template runs `wanted`, and whose template restart annotation is
/// present or not as `restarted` says.
fn find<'a>(sets: &'a [ReplicaSet], wanted: &str, restarted: bool) -> &'a ReplicaSet {
    sets.iter()
        .find(|rs| {
            let template = rs.spec.as_ref().unwrap().template.as_ref().unwrap();
            let has_restart = template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .is_some_and(|a| a.contains_key("kubectl.kubernetes.io/restartedAt"));
            image(rs) == wanted && has_restart == restarted
        })
        .unwrap_or_else(|| panic!("no replica set for {wanted} (restarted: {restarted})"))
}

fn rollout_status(cluster: &Cluster) -> String {
    cluster.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deployment_rolls_out_its_replica_set_and_pods() {
    let cluster = Cluster::start().await;
    let _kubelet = Kubelet::start(&cluster.client, Duration::from_millis(50));
    cluster.apply(&deployment("RollingUpdate", "nginx:1.26", 3));
    let printed = rollout_status(&cluster);
    assert!(printed.contains("deployment \"web\" successfully rolled out"), "{printed}");

    let sets = replica_sets(&cluster).await;
    assert_eq!(sets.len(), 1);
    let rs = &sets[0];
    let hash = rs.labels().get("pod-template-hash").cloned().expect("hash label");
    assert_eq!(rs.name_any(), format!("web-{hash}"));
    assert_eq!(rs.spec.as_ref().unwrap().selector.match_labels.as_ref().unwrap().get("pod-template-hash"), Some(&hash));
    assert_eq!(annotation(rs, "deployment.kubernetes.io/revision").as_deref(), Some("1"));
    assert_eq!(annotation(rs, "deployment.kubernetes.io/desired-replicas").as_deref(), Some("3"));
    assert_eq!(annotation(rs, "deployment.kubernetes.io/max-replicas").as_deref(), Some("4"));
    assert_eq!(rs.owner_references()[0].kind, "Deployment");
    let pods = pod_names(&cluster.client, "web-").await;
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert!(pod.starts_with(&format!("web-{hash}-")) && pod.len() == format!("web-{hash}-").len() + 5, "{pod}");
    }

    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let d = api.get("web").await.unwrap();
    let status = d.status.clone().unwrap();
    assert_eq!(
        (status.replicas, status.updated_replicas, status.ready_replicas, status.available_replicas),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(status.observed_generation, d.metadata.generation);
    let reasons: Vec<(String, Option<String>)> =
        status.conditions.unwrap().into_iter().map(|c| (c.type_, c.reason)).collect();
    assert!(reasons.contains(&("Available".into(), Some("MinimumReplicasAvailable".into()))), "{reasons:?}");
    assert!(reasons.contains(&("Progressing".into(), Some("NewReplicaSetAvailable".into()))), "{reasons:?}");
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));

    let table = cluster.kubectl(&["get", "deployment", "web"]);
    assert!(table.contains("3/3     3            3"), "{table}");
    let table = cluster.kubectl(&["get", "rs"]);
    assert!(table.contains(&format!("web-{hash}   3         3         3")), "{table}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_with_max_unavailable_zero_keeps_every_replica_ready() {
    let cluster = Cluster::start().await;
    let _kubelet = Kubelet::start(&cluster.client, Duration::from_millis(150));
    cluster.apply(&deployment("RollingUpdate", "nginx:1.26", 3));
    rollout_status(&cluster);
    let recorder = Recorder::start(&cluster.client).await;
    cluster.kubectl(&["set", "image", "deployment/web", "web=nginx:1.27"]);
    let printed = rollout_status(&cluster);
    assert!(printed.contains("successfully rolled out"), "{printed}");

    let min = recorder.min_ready_after_reaching("web-", 3);
    assert_eq!(min, Some(3), "ready pods dropped below replicas during the rollout: {:?}", recorder.events());
    let most = recorder.events.lock().unwrap().iter().map(|(_, live)| live.len()).max().unwrap();
    assert!(most <= 4, "maxSurge 1 allows at most 4 pods, saw {most}");

    let sets = replica_sets(&cluster).await;
    assert_eq!(sets.len(), 2);
    assert_eq!(replicas(find(&sets, "nginx:1.26", false)), 0);
    let new = find(&sets, "nginx:1.27", false);
    assert_eq!(replicas(new), 3);
    assert_eq!(annotation(new, "deployment.kubernetes.io/revision").as_deref(), Some("2"));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recreate_removes_every_old_pod_before_creating_new_ones() {
    let cluster = Cluster::start().await;
    let _kubelet = Kubelet::start(&cluster.client, Duration::from_millis(50));
    cluster.apply(&deployment("Recreate", "nginx:1.26", 2));
    rollout_status(&cluster);
    let old: Vec<String> = pod_names(&cluster.client, "web-").await;
    let recorder = Recorder::start(&cluster.client).await;
    cluster.kubectl(&["set", "image", "deployment/web", "web=nginx:1.27"]);
    rollout_status(&cluster);

    let events = recorder.events();
    let first_created = events.iter().position(|e| matches!(e, PodEvent::Created(_))).expect("new pods");
    let last_deleted =
        events.iter().rposition(|e| matches!(e, PodEvent::Deleted(n) if old.contains(n))).expect("old pods deleted");
    assert!(last_deleted < first_created, "new pods appeared before the old ones were gone: {events:?}");
    assert_eq!(pod_names(&cluster.client, "web-").await.len(), 2);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undo_restart_and_scale_through_kubectl() {
    let cluster = Cluster::start().await;
    let _kubelet = Kubelet::start(&cluster.client, Duration::from_millis(50));
    cluster.apply(&deployment("RollingUpdate", "nginx:1.26", 2));
    rollout_status(&cluster);
    cluster.kubectl(&["set", "image", "deployment/web", "web=nginx:1.27"]);
    rollout_status(&cluster);

    // Undo: the first ReplicaSet comes back as revision 3, remembering revision 1.
    cluster.kubectl(&["rollout", "undo", "deployment/web"]);
    rollout_status(&cluster);
    let sets = replica_sets(&cluster).await;
    assert_eq!(sets.len(), 2, "undo reuses the old ReplicaSet");
    let first = find(&sets, "nginx:1.26", false);
    assert_eq!(replicas(first), 2);
    assert_eq!(annotation(first, "deployment.kubernetes.io/revision").as_deref(), Some("3"));
    assert_eq!(annotation(first, "deployment.kubernetes.io/revision-history").as_deref(), Some("1"));
    assert_eq!(replicas(find(&sets, "nginx:1.27", false)), 0);
    let history = cluster.kubectl(&["rollout", "history", "deployment/web"]);
    assert!(history.contains("2 ") && history.contains("3 "), "{history}");

    // Restart: a template annotation, so a third ReplicaSet.
    cluster.kubectl(&["rollout", "restart", "deployment/web"]);
    rollout_status(&cluster);
    let sets = replica_sets(&cluster).await;
    assert_eq!(sets.len(), 3);
    let newest = find(&sets, "nginx:1.26", true);
    assert_eq!(replicas(newest), 2);
    assert_eq!(replicas(find(&sets, "nginx:1.26", false)), 0);
    assert_eq!(annotation(newest, "deployment.kubernetes.io/revision").as_deref(), Some("4"));

    // Scale: the one active ReplicaSet follows, with its desired-replicas annotation.
    cluster.kubectl(&["scale", "deployment/web", "--replicas=4"]);
    rollout_status(&cluster);
    let sets = replica_sets(&cluster).await;
    let newest = find(&sets, "nginx:1.26", true);
    assert_eq!(replicas(newest), 4);
    assert_eq!(annotation(newest, "deployment.kubernetes.io/desired-replicas").as_deref(), Some("4"));
    assert_eq!(pod_names(&cluster.client, "web-").await.len(), 4);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_deployment_collects_its_replica_sets_and_pods() {
    let cluster = Cluster::start().await;
    cluster.apply(&deployment("RollingUpdate", "nginx:1.26", 2));
    eventually("pods", WAIT, || async { pod_names(&cluster.client, "web-").await.len() == 2 }).await;
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    api.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("replica sets and pods gone", WAIT, || async {
        replica_sets(&cluster).await.is_empty() && pod_names(&cluster.client, "web-").await.is_empty()
    })
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_deployment_waits_until_resumed() {
    let cluster = Cluster::start().await;
    let _kubelet = Kubelet::start(&cluster.client, Duration::from_millis(50));
    cluster.apply(&deployment("RollingUpdate", "nginx:1.26", 2));
    rollout_status(&cluster);
    cluster.kubectl(&["rollout", "pause", "deployment/web"]);
    cluster.kubectl(&["set", "image", "deployment/web", "web=nginx:1.27"]);
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    eventually("paused condition", WAIT, || async {
        let d = api.get("web").await.unwrap();
        d.status
            .unwrap_or_default()
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.reason.as_deref() == Some("DeploymentPaused"))
    })
    .await;
    assert_eq!(replica_sets(&cluster).await.len(), 1, "no rollout while paused");
    cluster.kubectl(&["rollout", "resume", "deployment/web"]);
    let printed = rollout_status(&cluster);
    assert!(printed.contains("successfully rolled out"), "{printed}");
    assert_eq!(replica_sets(&cluster).await.len(), 2);
    cluster.stop().await;
}
