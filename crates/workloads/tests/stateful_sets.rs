//! StatefulSets against the real API server.

mod common;

use common::{eventually, is_ready, pod_names, Cluster, Kubelet, PodEvent, Recorder};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::{Api, ResourceExt};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn stateful_set(replicas: i32, policy: &str, image: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: {replicas}
  podManagementPolicy: {policy}
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: {image}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ordered_ready_creates_in_order_and_scales_down_from_the_top() {
    let cluster = Cluster::start().await;
    let recorder = Recorder::start(&cluster.client).await;
    let _kubelet = Kubelet::start(&cluster.client, Duration::from_millis(200));
    cluster.apply(&stateful_set(3, "OrderedReady", "nginx:1.26"));
    let printed = cluster.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    assert!(printed.contains("partitioned roll out complete: 3 new pods have been updated..."), "{printed}");

    // Each pod was created only once its predecessor was ready.
    let events = recorder.events.lock().unwrap().clone();
    let created: Vec<String> = events.iter().filter_map(|(e, _)| if let PodEvent::Created(n) = e { Some(n.clone()) } else { None }).collect();
    assert_eq!(created, ["web-0", "web-1", "web-2"]);
    for (event, live) in &events {
        if let PodEvent::Created(name) = event {
            let ordinal: usize = name.strip_prefix("web-").unwrap().parse().unwrap();
            for before in 0..ordinal {
                let predecessor = live.iter().find(|p| p.name_any() == format!("web-{before}")).expect("predecessor exists");
                assert!(is_ready(predecessor), "{name} created before web-{before} was ready");
            }
        }
    }

    let pod = cluster.pods().get("web-1").await.unwrap();
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-1"), Some("nginx")));
    assert_eq!(pod.labels().get("statefulset.kubernetes.io/pod-name").map(String::as_str), Some("web-1"));
    assert_eq!(pod.labels().get("apps.kubernetes.io/pod-index").map(String::as_str), Some("1"));
    let api: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), "default");
    let status = api.get("web").await.unwrap().status.unwrap();
    assert_eq!((status.replicas, status.ready_replicas, status.current_replicas, status.updated_replicas), (3, Some(3), Some(3), Some(3)));
    let revision = status.update_revision.clone().unwrap();
    assert_eq!(pod.labels().get("controller-revision-hash"), Some(&revision));
    assert_eq!(status.current_revision, Some(revision));

    // Scale down: web-2 goes first, then web-1.
    cluster.kubectl(&["scale", "statefulset/web", "--replicas=1"]);
    eventually("one pod left", WAIT, || async { pod_names(&cluster.client, "web-").await == ["web-0"] }).await;
    let deleted: Vec<PodEvent> = recorder.events().into_iter().filter(|e| matches!(e, PodEvent::Deleted(_))).collect();
    assert_eq!(deleted, [PodEvent::Deleted("web-2".into()), PodEvent::Deleted("web-1".into())]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_replaces_pods_from_the_highest_ordinal() {
    let cluster = Cluster::start().await;
    let _kubelet = Kubelet::start(&cluster.client, Duration::from_millis(50));
    cluster.apply(&stateful_set(3, "Parallel", "nginx:1.26"));
    cluster.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    let recorder = Recorder::start(&cluster.client).await;
    cluster.kubectl(&["set", "image", "statefulset/web", "nginx=nginx:1.27"]);
    let printed = cluster.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    assert!(printed.contains("partitioned roll out complete: 3 new pods have been updated..."), "{printed}");
    let deleted: Vec<PodEvent> = recorder.events().into_iter().filter(|e| matches!(e, PodEvent::Deleted(_))).collect();
    assert_eq!(deleted, [PodEvent::Deleted("web-2".into()), PodEvent::Deleted("web-1".into()), PodEvent::Deleted("web-0".into())]);
    for name in ["web-0", "web-1", "web-2"] {
        let pod = cluster.pods().get(name).await.unwrap();
        assert_eq!(pod.spec.unwrap().containers[0].image.as_deref(), Some("nginx:1.27"));
    }
    cluster.stop().await;
}
