//! The scheduler against the real API server: a bind the server fails is retried until the pod
//! is bound.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::time::Duration;

use frontdoor_informers::EventRecorder;
use frontdoor_informers::{Backoff, InformerFactory, Shutdown};
use frontdoor_testkit::InProcessServer;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;

fn node_config(name: &str, dir: &std::path::Path) -> frontdoor_node::NodeConfig {
    frontdoor_node::NodeConfig {
        node_name: name.into(),
        node_ip: "10.244.0.1".parse().unwrap(),
        pod_cidr: frontdoor_node::PodCidr::parse("10.244.0.0/24").unwrap(),
        bridge: "unused".into(),
        cluster_dns: "10.96.0.10".parse().unwrap(),
        cluster_dns_local: false,
        cluster_domain: "cluster.local".into(),
        resolv_conf: None,
        data_dir: dir.to_path_buf(),
        veth_prefix: "unused".into(),
        service_network: None,
        service_account_token: Some("a-test-token".into()),
        sync_frequency: std::time::Duration::from_secs(60),
        socket_lb_scope: None,
    }
}

#[tokio::test]
async fn a_failed_bind_is_retried_until_the_pod_is_bound() {
    let server = InProcessServer::start().await;
    let (client, partition) = server.partitioned_client();
    // The server fails the first three bindings.
    partition.fail_next(http::Method::POST, "/binding", 3);
    let (stop, shutdown) = Shutdown::new();
    let factory = InformerFactory::new(client.clone(), Default::default(), shutdown);
    let events = EventRecorder::new(client, "default-scheduler", "", Default::default());
    let backoff = Backoff { min: Duration::from_millis(10), max: Duration::from_millis(100) };
    let scheduler =
        tokio::spawn(frontdoor_node::scheduler::run(factory, node_config("n1", server.data_dir()), events, backoff));

    let pods: Api<Pod> = Api::namespaced(server.client(), "default");
    let pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pod = pods.get("p").await.unwrap();
        if pod.spec.and_then(|s| s.node_name).as_deref() == Some("n1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the pod was never bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(partition.failures_left(), 0, "all three bindings failed first");
    stop.trigger();
    tokio::time::timeout(Duration::from_secs(10), scheduler).await.expect("the scheduler stops").unwrap();
}
