//! ReplicaSets and ReplicationControllers against the real API server.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

mod common;

use common::{eventually, make_ready, pod_names, Cluster};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn replica_set(replicas: i32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: frontend
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: frontend
  template:
    metadata:
      labels:
        app: frontend
        tier: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
"#
    )
}

async fn owned_pods(cluster: &Cluster) -> Vec<Pod> {
    let mut pods = cluster.pods().list(&Default::default()).await.unwrap().items;
    pods.retain(|p| {
        p.metadata.deletion_timestamp.is_none() && p.labels().get("app").map(String::as_str) == Some("frontend")
    });
    pods
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_set_creates_adopts_scales_and_deletes_not_ready_pods_first() {
    let cluster = Cluster::start().await;
    // An orphan that matches the selector is adopted instead of creating a third pod.
    cluster.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: stray\n  labels:\n    app: frontend\nspec:\n  containers:\n  - name: web\n    image: nginx\n",
    );
    cluster.apply(&replica_set(3));
    eventually("3 pods", WAIT, || async { owned_pods(&cluster).await.len() == 3 }).await;
    let rs: ReplicaSet = Api::namespaced(cluster.client.clone(), "default").get("frontend").await.unwrap();
    let pods = owned_pods(&cluster).await;
    assert!(pods.iter().any(|p| p.name_any() == "stray"), "the orphan was adopted");
    for pod in &pods {
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller, owner.block_owner_deletion),
            ("ReplicaSet", "frontend", Some(true), Some(true))
        );
        assert_eq!(owner.uid, rs.uid().unwrap());
        if pod.name_any() != "stray" {
            let suffix = pod.name_any().strip_prefix("frontend-").expect("generateName prefix").to_string();
            assert_eq!(suffix.len(), 5, "{}", pod.name_any());
            assert!(suffix.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{}", pod.name_any());
            assert_eq!(pod.labels().get("tier").map(String::as_str), Some("web"));
        }
    }
    // Two pods become ready; scaling to 2 removes the one that is not.
    let mut names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    names.sort();
    let (ready, not_ready) = (&names[..2], &names[2]);
    for name in ready {
        make_ready(&cluster.client, "default", name).await.unwrap();
    }
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    eventually("status shows 2 ready of 3", WAIT, || async {
        let status = rs_api.get("frontend").await.unwrap().status.unwrap_or_default();
        (status.replicas, status.ready_replicas, status.available_replicas, status.observed_generation)
            == (3, Some(2), Some(2), Some(1))
    })
    .await;
    let status = rs_api.get("frontend").await.unwrap().status.unwrap();
    assert_eq!(status.fully_labeled_replicas, Some(2), "the adopted orphan lacks tier=web");

    cluster.kubectl(&["scale", "rs/frontend", "--replicas=2"]);
    eventually("2 pods", WAIT, || async { owned_pods(&cluster).await.len() == 2 }).await;
    let mut left: Vec<String> = owned_pods(&cluster).await.iter().map(|p| p.name_any()).collect();
    left.sort();
    assert_eq!(left, ready, "the pod that was not ready ({not_ready}) went first");

    // A deleted pod is replaced.
    cluster.pods().delete(&ready[0], &DeleteParams::default()).await.unwrap();
    eventually("replacement", WAIT, || async {
        let pods = owned_pods(&cluster).await;
        pods.len() == 2 && !pods.iter().any(|p| p.name_any() == ready[0])
    })
    .await;

    // Scale to zero, then the printed columns.
    cluster.kubectl(&["scale", "rs/frontend", "--replicas=0"]);
    eventually("no pods", WAIT, || async { owned_pods(&cluster).await.is_empty() }).await;
    eventually("status 0", WAIT, || async {
        rs_api.get("frontend").await.unwrap().status.unwrap_or_default().replicas == 0
    })
    .await;
    let table = cluster.kubectl(&["get", "rs", "frontend"]);
    assert!(table.contains("frontend   0         0         0"), "{table}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_that_stops_matching_is_released_and_replaced() {
    let cluster = Cluster::start().await;
    cluster.apply(&replica_set(2));
    eventually("2 pods", WAIT, || async { owned_pods(&cluster).await.len() == 2 }).await;
    let victim = owned_pods(&cluster).await[0].name_any();
    cluster.kubectl(&["label", "pod", &victim, "app=debug", "--overwrite"]);
    eventually("released and replaced", WAIT, || async {
        let released = cluster.pods().get(&victim).await.unwrap();
        released.owner_references().is_empty() && owned_pods(&cluster).await.len() == 2
    })
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_controller_keeps_its_replicas() {
    let cluster = Cluster::start().await;
    cluster.apply(
        r#"
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
spec:
  replicas: 2
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: web
        image: nginx
"#,
    );
    eventually("2 pods", WAIT, || async { pod_names(&cluster.client, "legacy-").await.len() == 2 }).await;
    let pod = cluster.pods().get(&pod_names(&cluster.client, "legacy-").await[0]).await.unwrap();
    assert_eq!(pod.owner_references()[0].kind, "ReplicationController");
    for name in pod_names(&cluster.client, "legacy-").await {
        make_ready(&cluster.client, "default", &name).await.unwrap();
    }
    let api: Api<ReplicationController> = Api::namespaced(cluster.client.clone(), "default");
    eventually("ready status", WAIT, || async {
        let status = api.get("legacy").await.unwrap().status.unwrap_or_default();
        status.ready_replicas == Some(2) && status.available_replicas == Some(2)
    })
    .await;
    cluster.kubectl(&["scale", "rc/legacy", "--replicas=1"]);
    eventually("1 pod", WAIT, || async { pod_names(&cluster.client, "legacy-").await.len() == 1 }).await;
    cluster.stop().await;
}
