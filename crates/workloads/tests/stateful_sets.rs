//! StatefulSets against the real API server.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

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
    let created: Vec<String> =
        events.iter().filter_map(|(e, _)| if let PodEvent::Created(n) = e { Some(n.clone()) } else { None }).collect();
    assert_eq!(created, ["web-0", "web-1", "web-2"]);
    for (event, live) in &events {
        if let PodEvent::Created(name) = event {
            let ordinal: usize = name.strip_prefix("web-").unwrap().parse().unwrap();
            for before in 0..ordinal {
                let predecessor =
                    live.iter().find(|p| p.name_any() == format!("web-{before}")).expect("predecessor exists");
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
    assert_eq!(
        (status.replicas, status.ready_replicas, status.current_replicas, status.updated_replicas),
        (3, Some(3), Some(3), Some(3))
    );
    let revision = status.update_revision.clone().unwrap();
    assert_eq!(pod.labels().get("controller-revision-hash"), Some(&revision));
    assert_eq!(status.current_revision, Some(revision));

    // Scale down: web-2 goes first, then web-1.
    cluster.kubectl(&["scale", "statefulset/web", "--replicas=1"]);
    eventually("one pod left", WAIT, || async { pod_names(&cluster.client, "web-").await == ["web-0"] }).await;
    // The recorder's watch may deliver the last deletion a moment after the list shows it.
    let deleted =
        || -> Vec<PodEvent> { recorder.events().into_iter().filter(|e| matches!(e, PodEvent::Deleted(_))).collect() };
    eventually("both deletions watched", WAIT, || async { deleted().len() >= 2 }).await;
    assert_eq!(deleted(), [PodEvent::Deleted("web-2".into()), PodEvent::Deleted("web-1".into())]);
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
    assert_eq!(
        deleted,
        [PodEvent::Deleted("web-2".into()), PodEvent::Deleted("web-1".into()), PodEvent::Deleted("web-0".into())]
    );
    for name in ["web-0", "web-1", "web-2"] {
        let pod = cluster.pods().get(name).await.unwrap();
        assert_eq!(pod.spec.unwrap().containers[0].image.as_deref(), Some("nginx:1.27"));
    }
    cluster.stop().await;
}

/// The image of each of the set's pods, by name.
async fn images(cluster: &Cluster) -> Vec<(String, String)> {
    let pods = cluster.pods().list(&Default::default()).await.unwrap();
    let mut images: Vec<(String, String)> = pods
        .items
        .into_iter()
        .filter(|p| p.name_any().starts_with("web-"))
        .map(|p| (p.name_any(), p.spec.unwrap().containers[0].image.clone().unwrap_or_default()))
        .collect();
    images.sort();
    images
}

fn image_list(images: &[&str]) -> Vec<(String, String)> {
    images.iter().enumerate().map(|(i, image)| (format!("web-{i}"), image.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revisions_are_kept_as_controller_revisions_for_history_and_undo() {
    let cluster = Cluster::start().await;
    let _kubelet = Kubelet::start(&cluster.client, Duration::from_millis(50));
    cluster.apply(&stateful_set(3, "Parallel", "nginx:1.26"));
    cluster.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    let listed = cluster.kubectl(&["get", "controllerrevisions"]);
    let rows: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "CONTROLLER", "REVISION", "AGE"], "{listed}");
    assert_eq!((rows.len(), rows[1][1], rows[1][2]), (2, "statefulset.apps/web", "1"), "{listed}");
    let first = rows[1][0].to_string();
    let pod = cluster.pods().get("web-0").await.unwrap();
    assert_eq!(pod.labels().get("controller-revision-hash"), Some(&first));

    // A revision takes the set's annotations when it is made.
    cluster.kubectl(&["annotate", "statefulset/web", "kubernetes.io/change-cause=to 1.27"]);
    cluster.kubectl(&["set", "image", "statefulset/web", "nginx=nginx:1.27"]);
    cluster.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    let history = cluster.kubectl(&["rollout", "history", "statefulset/web"]);
    let lines: Vec<Vec<&str>> =
        history.lines().skip(1).filter(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines, [vec!["REVISION", "CHANGE-CAUSE"], vec!["1", "<none>"], vec!["2", "to", "1.27"]], "{history}");
    let old = cluster.kubectl(&["rollout", "history", "statefulset/web", "--revision=1"]);
    assert!(old.contains("Image:\tnginx:1.26"), "{old}");

    // Undo: revision 1's template comes back, as revision 3.
    let undone = cluster.kubectl(&["rollout", "undo", "statefulset/web"]);
    assert!(undone.contains("statefulset.apps/web rolled back"), "{undone}");
    cluster.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    eventually("all pods back at nginx:1.26", WAIT, || async {
        images(&cluster).await == image_list(&["nginx:1.26"; 3])
    })
    .await;
    let api: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), "default");
    let status = api.get("web").await.unwrap().status.unwrap();
    assert_eq!(
        (status.update_revision.as_deref(), status.current_revision.as_deref()),
        (Some(first.as_str()), Some(first.as_str()))
    );
    let history = cluster.kubectl(&["rollout", "history", "statefulset/web"]);
    let numbers: Vec<&str> = history.lines().skip(2).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(numbers, ["2", "3"], "{history}");

    // A partitioned update: web-2 moves on; web-0, deleted, comes back at the current revision.
    cluster.kubectl(&[
        "patch",
        "statefulset/web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
    ]);
    cluster.kubectl(&["set", "image", "statefulset/web", "nginx=nginx:1.28"]);
    eventually("web-2 at nginx:1.28", WAIT, || async {
        images(&cluster).await == image_list(&["nginx:1.26", "nginx:1.26", "nginx:1.28"])
    })
    .await;
    let uid = cluster.pods().get("web-0").await.unwrap().uid();
    cluster.kubectl(&["delete", "pod", "web-0", "--wait=false"]);
    eventually("web-0 recreated", WAIT, || async {
        cluster.pods().get("web-0").await.ok().is_some_and(|p| p.uid() != uid)
    })
    .await;
    // The set has seen the new web-0 once it is ready and the set counts three ready replicas.
    eventually("the new web-0 ready", WAIT, || async {
        cluster.pods().get("web-0").await.ok().is_some_and(|p| p.uid() != uid && is_ready(&p))
    })
    .await;
    let sets: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), "default");
    eventually("the set to count web-0 again", WAIT, || async {
        sets.get("web").await.ok().and_then(|s| s.status).and_then(|s| s.ready_replicas) == Some(3)
    })
    .await;
    assert_eq!(images(&cluster).await, image_list(&["nginx:1.26", "nginx:1.26", "nginx:1.28"]));
    let web0 = cluster.pods().get("web-0").await.unwrap();
    assert_eq!(web0.labels().get("controller-revision-hash"), Some(&first));

    // The history is trimmed to revisionHistoryLimit, keeping revisions pods still use.
    cluster.kubectl(&["patch", "statefulset/web", "-p", r#"{"spec":{"revisionHistoryLimit":0}}"#]);
    eventually("only live revisions left", WAIT, || async {
        let listed = cluster.kubectl(&["get", "controllerrevisions", "-o", "name"]);
        listed.lines().count() == 2
    })
    .await;

    // Deleting the set collects its revisions.
    cluster.kubectl(&["delete", "statefulset/web"]);
    eventually("revisions collected", WAIT, || async {
        cluster.kubectl(&["get", "controllerrevisions", "-o", "name"]).trim().is_empty()
    })
    .await;
    cluster.stop().await;
}
