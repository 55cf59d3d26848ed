//! The controllers against the real API server: Services and Pods go in through the API,
//! the test plays kubelet by writing pod status, and the EndpointSlices and Endpoints the
//! controllers write are read back through the API and with real kubectl.
//!
//! Needs the server binary: `cargo build -p frontdoor` first.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

mod support;

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

use frontdoor_endpoints::EndpointsConfig;
use support::*;

fn addresses(endpoints: &Endpoints) -> (Vec<String>, Vec<String>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        ready.extend(subset.addresses.iter().flatten().map(|a| a.ip.clone()));
        not_ready.extend(subset.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

/// Waits until the Service's slices describe exactly `expected` endpoints.
async fn wait_endpoints(cluster: &Cluster, service: &str, expected: &[&str]) -> Vec<EndpointSlice> {
    eventually(&format!("{service} endpoints {expected:?}"), || async {
        let slices = cluster.slices(service).await;
        (describe_endpoints(&slices) == expected).then_some(slices)
    })
    .await
}

async fn wait_kubectl_endpoints(cluster: &Cluster, service: &str, expected: &str) {
    eventually(&format!("kubectl get endpoints {service} = {expected}"), || async {
        let shown = cluster.kubectl_endpoints(service);
        (shown == expected).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpointslices_and_endpoints_follow_pod_readiness() {
    let cluster = Cluster::start().await;
    let service = cluster.create_service(web_service("web", "web", json!(8080))).await;
    for i in 0..3 {
        cluster.create_pod(&format!("web-{i}"), json!({"app": "web"}), None).await;
        cluster.set_status(&format!("web-{i}"), &pod_ip(i), i < 2).await;
    }

    let slices = wait_endpoints(&cluster, "web", &["10.244.0.2 R S -", "10.244.0.3 R S -", "10.244.0.4 - - -"]).await;
    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    assert_eq!(slice.address_type, "IPv4");
    assert!(slice.metadata.name.as_deref().unwrap().starts_with("web-"), "named from generateName web-");
    let slice_labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(slice_labels["kubernetes.io/service-name"], "web");
    assert_eq!(slice_labels["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Service", "web"));
    assert_eq!(
        (owner.uid.as_str(), owner.controller, owner.block_owner_deletion),
        (service.metadata.uid.as_deref().unwrap(), Some(true), Some(true))
    );
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("http"), Some(8080), Some("TCP")));
    let endpoint = slice.endpoints.iter().find(|e| e.addresses == ["10.244.0.2"]).unwrap();
    assert_eq!(endpoint.node_name.as_deref(), Some("node-1"));
    let target = endpoint.target_ref.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.namespace.as_deref(), target.name.as_deref()),
        (Some("Pod"), Some("default"), Some("web-0"))
    );
    assert!(target.uid.is_some());

    wait_kubectl_endpoints(&cluster, "web", "10.244.0.2:8080,10.244.0.3:8080").await;
    let endpoints = cluster.endpoints("web").await.unwrap();
    assert_eq!(addresses(&endpoints), (vec!["10.244.0.2".into(), "10.244.0.3".into()], vec!["10.244.0.4".into()]));
    assert_eq!(endpoints.metadata.labels.unwrap()["endpointslice.kubernetes.io/skip-mirror"], "true");

    // Readiness flips both ways; the slice is updated in place.
    cluster.set_status("web-2", &pod_ip(2), true).await;
    cluster.set_status("web-0", &pod_ip(0), false).await;
    let flipped = wait_endpoints(&cluster, "web", &["10.244.0.2 - - -", "10.244.0.3 R S -", "10.244.0.4 R S -"]).await;
    assert_eq!(flipped[0].metadata.name, slice.metadata.name);
    wait_kubectl_endpoints(&cluster, "web", "10.244.0.3:8080,10.244.0.4:8080").await;

    // Nothing changed, nothing written: a change that matters, made after one that does not,
    // is the slice's next write (its generation goes up by exactly one).
    let before = cluster.slices("web").await[0].metadata.generation.unwrap();
    let annotate = json!({"metadata": {"annotations": {"touched": "yes"}}});
    cluster.pods().patch("web-1", &PatchParams::default(), &Patch::Merge(&annotate)).await.unwrap();
    cluster.set_status("web-0", &pod_ip(0), true).await;
    let after = wait_endpoints(&cluster, "web", &["10.244.0.2 R S -", "10.244.0.3 R S -", "10.244.0.4 R S -"]).await;
    assert_eq!(after[0].metadata.generation, Some(before + 1), "the annotation alone wrote nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readiness_to_endpointslice_latency() {
    let cluster = Cluster::start().await;
    cluster.create_service(web_service("web", "web", json!(8080))).await;
    cluster.create_ready_pods("web", "web", 0..10).await;
    let all_ready: Vec<String> = (0..10).map(|i| format!("{} R S -", pod_ip(i))).collect();
    let mut all_ready: Vec<&str> = all_ready.iter().map(String::as_str).collect();
    all_ready.sort();
    wait_endpoints(&cluster, "web", &all_ready).await;

    let config = watcher::Config::default().labels("kubernetes.io/service-name=web");
    let mut events = watcher(cluster.slices_api(), config).applied_objects().boxed();
    let ready_of = |slice: &EndpointSlice| {
        slice
            .endpoints
            .iter()
            .find(|e| e.addresses == ["10.244.0.2"])
            .and_then(|e| e.conditions.clone())
            .and_then(|c| c.ready)
    };
    let mut samples = Vec::new();
    let mut acks = Vec::new();
    for round in 0..100 {
        let ready = round % 2 == 1;
        let started = Instant::now();
        cluster.set_status("web-0", &pod_ip(0), ready).await;
        acks.push(started.elapsed());
        loop {
            let slice = tokio::time::timeout(WAIT, events.try_next())
                .await
                .expect("slice event in time")
                .expect("watch")
                .expect("stream open");
            if ready_of(&slice) == Some(ready) {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    acks.sort();
    let at = |list: &[Duration], q: f64| list[((list.len() as f64 * q).ceil() as usize).clamp(1, list.len()) - 1];
    println!(
        "readiness -> EndpointSlice latency over {} flips (pod status write sent -> slice watch event): p50 {:?}, p90 {:?}, p99 {:?}, max {:?}; \
         of which the status write itself (until acknowledged): p50 {:?}, p99 {:?}",
        samples.len(),
        at(&samples, 0.50),
        at(&samples, 0.90),
        at(&samples, 0.99),
        samples[samples.len() - 1],
        at(&acks, 0.50),
        at(&acks, 0.99),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_to_150_pods_makes_two_slices_and_back() {
    let cluster = Cluster::start().await;
    cluster.create_service(web_service("web", "web", json!(8080))).await;
    futures::stream::iter(0..150)
        .for_each_concurrent(16, |i| {
            let cluster = &cluster;
            async move { cluster.create_ready_pods("web", "web", i..i + 1).await }
        })
        .await;

    // How 150 split over two slices depends on the order pods became ready (upstream does not
    // rebalance): [50, 100] when they arrive one by one, e.g. [52, 98] when some arrive together.
    eventually("150 endpoints in two slices of at most 100", || async {
        let slices = cluster.slices("web").await;
        let sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
        (sizes.len() == 2 && sizes.iter().sum::<usize>() == 150 && sizes.iter().all(|n| *n <= 100)).then_some(())
    })
    .await;
    let endpoints = eventually("150 ready addresses", || async {
        let endpoints = cluster.endpoints("web").await?;
        (addresses(&endpoints).0.len() == 150).then_some(endpoints)
    })
    .await;
    assert_eq!(endpoints.subsets.as_ref().unwrap().len(), 1, "one subset: same port for every pod");

    // Scale down to 10: slices that empty out go, the rest shrink in place (no new slice, no
    // empty one). Where the 10 sit depends on the order pods became ready, as above: one slice
    // when pods 0-9 were all among the first to be ready, or a part of them in each.
    let before: Vec<Option<String>> = cluster.slices("web").await.into_iter().map(|s| s.metadata.name).collect();
    futures::stream::iter(10..150)
        .for_each_concurrent(16, |i| {
            let cluster = &cluster;
            async move { cluster.delete_pod(&format!("web-{i}"), Some(0)).await }
        })
        .await;
    eventually("the 10 endpoints left in the slices there were, none empty", || async {
        let slices = cluster.slices("web").await;
        let shape = describe_slices(&slices);
        let in_place = slices.iter().all(|slice| before.contains(&slice.metadata.name));
        let kept = shape.iter().all(|(ports, count)| *ports == [8080] && *count > 0);
        (in_place && kept && shape.iter().map(|(_, count)| count).sum::<usize>() == 10).then_some(())
    })
    .await;
    wait_kubectl_endpoints(&cluster, "web", "10.244.0.10:8080,10.244.0.11:8080,10.244.0.2:8080 + 7 more...").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn named_target_ports_resolve_per_pod() {
    let cluster = Cluster::start().await;
    cluster.create_service(web_service("web", "web", json!("http"))).await;
    cluster.create_pod("web-0", json!({"app": "web"}), None).await;
    cluster.create_pod("web-1", json!({"app": "web"}), Some(json!([{"name": "http", "containerPort": 9090}]))).await;
    cluster.create_pod("web-2", json!({"app": "web"}), Some(json!([{"name": "metrics", "containerPort": 9100}]))).await;
    for i in 0..3 {
        cluster.set_status(&format!("web-{i}"), &pod_ip(i), true).await;
    }
    eventually("one slice per port set", || async {
        let slices = cluster.slices("web").await;
        (describe_slices(&slices) == [(vec![], 1), (vec![8080], 1), (vec![9090], 1)]).then_some(())
    })
    .await;
    // Endpoints list only pods that have the port.
    wait_kubectl_endpoints(&cluster, "web", "10.244.0.2:8080,10.244.0.3:9090").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_not_ready_addresses_publishes_unready_pods_as_ready() {
    let cluster = Cluster::start().await;
    let mut service = web_service("web", "web", json!(8080));
    service["spec"]["publishNotReadyAddresses"] = json!(true);
    cluster.create_service(service).await;
    cluster.create_pod("web-0", json!({"app": "web"}), None).await;
    cluster.set_status("web-0", &pod_ip(0), false).await;
    wait_endpoints(&cluster, "web", &["10.244.0.2 R - -"]).await;
    wait_kubectl_endpoints(&cluster, "web", "10.244.0.2:8080").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_selector_matching_nothing_has_no_endpoints() {
    let cluster = Cluster::start().await;
    cluster.create_service(web_service("web", "nothing", json!(8080))).await;
    cluster.create_ready_pods("other", "web", 0..2).await;
    // Upstream keeps one empty placeholder slice.
    let slices = eventually("placeholder slice", || async {
        let slices = cluster.slices("web").await;
        (slices.len() == 1).then_some(slices)
    })
    .await;
    assert!(slices[0].endpoints.is_empty());
    assert_eq!(slices[0].ports.as_deref(), Some(&[][..]));
    eventually("empty Endpoints", || async { cluster.endpoints("web").await }).await;
    assert_eq!(cluster.kubectl_endpoints("web"), "<none>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminating_pods_stay_in_slices_as_terminating() {
    let cluster = Cluster::start().await;
    cluster.create_service(web_service("web", "web", json!(8080))).await;
    cluster.create_ready_pods("web", "web", 0..2).await;
    // A finalizer keeps the terminating pod around while the test, as kubelet, updates its status.
    let hold = json!({"metadata": {"finalizers": ["test.frontdoor.dev/hold"]}});
    cluster.pods().patch("web-0", &PatchParams::default(), &Patch::Merge(&hold)).await.unwrap();
    wait_endpoints(&cluster, "web", &["10.244.0.2 R S -", "10.244.0.3 R S -"]).await;

    // A graceful delete only marks the pod; it keeps serving meanwhile.
    cluster.delete_pod("web-0", None).await;
    let pod = cluster.pods().get("web-0").await.unwrap();
    assert!(pod.metadata.deletion_timestamp.is_some(), "graceful deletion marks the pod");
    wait_endpoints(&cluster, "web", &["10.244.0.2 - S T", "10.244.0.3 R S -"]).await;
    wait_kubectl_endpoints(&cluster, "web", "10.244.0.3:8080").await;
    let endpoints = cluster.endpoints("web").await.unwrap();
    assert_eq!(addresses(&endpoints), (vec!["10.244.0.3".into()], vec![]), "Endpoints drop terminating pods");

    // Kubelet stops it: no longer serving; then it is gone.
    cluster.set_status("web-0", &pod_ip(0), false).await;
    wait_endpoints(&cluster, "web", &["10.244.0.2 - - T", "10.244.0.3 R S -"]).await;
    let release = json!({"metadata": {"finalizers": null}});
    cluster.pods().patch("web-0", &PatchParams::default(), &Patch::Merge(&release)).await.unwrap();
    wait_endpoints(&cluster, "web", &["10.244.0.3 R S -"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relabelled_pods_leave_and_join_services() {
    let cluster = Cluster::start().await;
    cluster.create_service(web_service("web", "web", json!(8080))).await;
    cluster.create_service(web_service("api", "api", json!(8080))).await;
    cluster.create_ready_pods("pod", "web", 0..2).await;
    wait_endpoints(&cluster, "web", &["10.244.0.2 R S -", "10.244.0.3 R S -"]).await;
    let relabel = json!({"metadata": {"labels": {"app": "api"}}});
    cluster.pods().patch("pod-1", &PatchParams::default(), &Patch::Merge(&relabel)).await.unwrap();
    wait_endpoints(&cluster, "web", &["10.244.0.2 R S -"]).await;
    wait_endpoints(&cluster, "api", &["10.244.0.3 R S -"]).await;
    wait_kubectl_endpoints(&cluster, "api", "10.244.0.3:8080").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headless_services_publish_pod_hostnames() {
    let cluster = Cluster::start().await;
    cluster
        .create_service(json!({
            "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
        }))
        .await;
    let pod = json!({
        "metadata": {"name": "db-0", "labels": {"app": "db"}},
        "spec": {"hostname": "db-0", "subdomain": "db", "nodeName": "node-1", "containers": [{"name": "db", "image": "postgres"}]},
    });
    cluster.pods().create(&PostParams::default(), &serde_json::from_value::<Pod>(pod).unwrap()).await.unwrap();
    cluster.set_status("db-0", &pod_ip(0), true).await;
    let slices = wait_endpoints(&cluster, "db", &["10.244.0.2 R S -"]).await;
    assert_eq!(slices[0].endpoints[0].hostname.as_deref(), Some("db-0"));
    assert_eq!(
        slices[0].metadata.labels.as_ref().unwrap().get("service.kubernetes.io/headless").map(String::as_str),
        Some("")
    );
    let endpoints = eventually("db Endpoints", || async {
        let endpoints = cluster.endpoints("db").await?;
        (!addresses(&endpoints).0.is_empty()).then_some(endpoints)
    })
    .await;
    let address = &endpoints.subsets.as_ref().unwrap()[0].addresses.as_ref().unwrap()[0];
    assert_eq!(address.hostname.as_deref(), Some("db-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_without_selector_or_of_type_external_name_are_left_alone() {
    let cluster = Cluster::start().await;
    cluster.create_ready_pods("web", "web", 0..2).await;
    cluster.create_service(json!({"metadata": {"name": "manual"}, "spec": {"ports": [{"port": 80}]}})).await;
    cluster
        .create_service(json!({
            "metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com", "selector": {"app": "web"}},
        }))
        .await;
    // A Service created last syncs after the others were looked at.
    cluster.create_service(web_service("web", "web", json!(8080))).await;
    wait_endpoints(&cluster, "web", &["10.244.0.2 R S -", "10.244.0.3 R S -"]).await;
    wait_kubectl_endpoints(&cluster, "web", "10.244.0.2:8080,10.244.0.3:8080").await;
    for name in ["manual", "ext"] {
        assert!(cluster.slices(name).await.is_empty(), "{name} has no slices");
        assert!(cluster.endpoints(name).await.is_none(), "{name} has no Endpoints");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_service_removes_its_endpoints_and_slices() {
    let cluster = Cluster::start().await;
    cluster.create_service(web_service("web", "web", json!(8080))).await;
    cluster.create_ready_pods("web", "web", 0..2).await;
    wait_kubectl_endpoints(&cluster, "web", "10.244.0.2:8080,10.244.0.3:8080").await;
    cluster.services().delete("web", &DeleteParams::default()).await.unwrap();
    eventually("Endpoints and slices gone", || async {
        (cluster.endpoints("web").await.is_none() && cluster.slices("web").await.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn custom_endpoints_are_mirrored_through_create_update_and_delete() {
    let cluster = Cluster::start().await;
    cluster
        .create_service(json!({"metadata": {"name": "external"}, "spec": {"ports": [{"name": "example", "port": 80}]}}))
        .await;
    let endpoints = json!({
        "metadata": {"name": "external", "labels": {"team": "a"}},
        "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"name": "example", "port": 80, "protocol": "TCP"}]}],
    });
    let endpoints: Endpoints = serde_json::from_value(endpoints).unwrap();
    let created = cluster.endpoints_api().create(&PostParams::default(), &endpoints).await.unwrap();

    let mirrored = eventually("mirrored slice", || async {
        let slices = cluster.slices("external").await;
        (slices.len() == 1 && slices[0].endpoints.len() == 1).then(|| slices[0].clone())
    })
    .await;
    let labels = mirrored.metadata.labels.clone().unwrap();
    assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "endpointslicemirroring-controller.k8s.io");
    assert_eq!(labels["team"], "a");
    assert_eq!(mirrored.endpoints[0].addresses, ["10.1.2.3"]);
    let port = &mirrored.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("example"), Some(80), Some("TCP")));
    let owner = &mirrored.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Endpoints", created.metadata.uid.as_deref().unwrap()));

    // Update: the same slice follows.
    let update = json!({"subsets": [{"addresses": [{"ip": "10.2.3.4"}], "ports": [{"name": "example", "port": 8080, "protocol": "TCP"}]}]});
    cluster.endpoints_api().patch("external", &PatchParams::default(), &Patch::Merge(&update)).await.unwrap();
    let updated = eventually("mirrored update", || async {
        let slices = cluster.slices("external").await;
        let follows = slices.len() == 1
            && slices[0].endpoints.iter().map(|e| e.addresses.clone()).collect::<Vec<_>>()
                == [vec!["10.2.3.4".to_string()]]
            && slices[0].ports.as_ref().is_some_and(|p| p[0].port == Some(8080));
        follows.then(|| slices[0].clone())
    })
    .await;
    assert_eq!(updated.metadata.name, mirrored.metadata.name, "updated in place");

    // Delete: the mirrored slices go.
    cluster.endpoints_api().delete("external", &DeleteParams::default()).await.unwrap();
    eventually("mirrored slices deleted", || async { cluster.slices("external").await.is_empty().then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_controllers_resync_without_duplicating_slices() {
    let mut cluster = Cluster::start_without_controllers().await;
    cluster.create_service(web_service("web", "web", json!(8080))).await;
    cluster.create_ready_pods("web", "web", 0..3).await;
    cluster.start_controllers(EndpointsConfig::default());
    wait_endpoints(&cluster, "web", &["10.244.0.2 R S -", "10.244.0.3 R S -", "10.244.0.4 R S -"]).await;

    // Changes while the controllers are down are picked up when they come back.
    cluster.stop_controllers().await;
    cluster.delete_pod("web-0", Some(0)).await;
    cluster.set_status("web-1", &pod_ip(1), false).await;
    cluster.create_ready_pods("web", "web", 3..4).await;
    cluster.start_controllers(EndpointsConfig::default());
    let slices = wait_endpoints(&cluster, "web", &["10.244.0.3 - - -", "10.244.0.4 R S -", "10.244.0.5 R S -"]).await;
    assert_eq!(slices.len(), 1, "no duplicate slices");
    wait_kubectl_endpoints(&cluster, "web", "10.244.0.4:8080,10.244.0.5:8080").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_max_endpoints_per_slice_is_honoured() {
    let config = EndpointsConfig { max_endpoints_per_slice: 2, ..EndpointsConfig::default() };
    let cluster = Cluster::start_with(config).await;
    cluster.create_service(web_service("web", "web", json!(8080))).await;
    cluster.create_ready_pods("web", "web", 0..5).await;
    eventually("5 endpoints in slices of at most 2", || async {
        let slices = cluster.slices("web").await;
        (describe_slices(&slices) == [(vec![8080], 1), (vec![8080], 2), (vec![8080], 2)]).then_some(())
    })
    .await;
}
