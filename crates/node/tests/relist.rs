//! The node against the real API server, over a link the test cuts: a pod deleted while the
//! node's pod watch was down (with more changes since than the server's watch window holds, so
//! the watch must re-list) has its processes stopped and its address freed.
//!
//! The node changes the network of the namespace it runs in, so the outer test re-runs this
//! test binary inside a network namespace made for it, where the inner test does the work.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::process::Command;
use std::time::Duration;

use frontdoor_informers::{InformerFactory, Shutdown};
use frontdoor_testkit::{InProcessServer, NetworkNamespace};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::Api;

/// Set for the inner run.
const INSIDE: &str = "FRONTDOOR_TEST_INSIDE_NETNS";
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_pod_deleted_while_the_watch_relists_is_stopped_and_its_address_freed() {
    if std::env::var_os(INSIDE).is_some() {
        return;
    }
    let netns = NetworkNamespace::create();
    let output = Command::new("ip")
        .args(["netns", "exec", &netns.name])
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", "inside_a_namespace_of_its_own", "--ignored", "--nocapture"])
        .env(INSIDE, "1")
        .output()
        .expect("the inner test runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "inner test failed:\n{text}");
    assert!(text.contains("test inside_a_namespace_of_its_own ... ok"), "inner test did not run:\n{text}");
}

/// The pids of processes whose command line is exactly `args`.
fn processes(args: &[&str]) -> Vec<String> {
    let wanted: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn processes_running(args: &[&str]) -> usize {
    processes(args).len()
}

/// Kills, on the way out (a failed test included), the pods' processes this test started.
struct KillOnDrop(Vec<Vec<String>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for args in &self.0 {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            for pid in processes(&args) {
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
        }
    }
}

/// The node's host-side veths (one per pod sandbox).
fn host_veths() -> usize {
    let Ok(links) = std::fs::read_dir("/sys/class/net") else { return 0 };
    links.filter_map(Result::ok).filter(|l| l.file_name().to_string_lossy().starts_with("fdr")).count()
}

async fn wait_for<T, Fut: std::future::Future<Output = Option<T>>>(what: &str, check: impl FnMut() -> Fut) -> T {
    frontdoor_testkit::eventually(what, WAIT, check).await
}

fn pod(name: &str, command: &[&str]) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": "busybox", "command": command}]},
    }))
    .unwrap()
}

async fn running_ip(pods: &Api<Pod>, name: &str) -> String {
    wait_for(&format!("{name} to run"), || async {
        let pod = pods.get(name).await.ok()?;
        let status = pod.status?;
        (status.phase.as_deref() == Some("Running")).then_some(status.pod_ip).flatten()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the test above, inside a network namespace of its own"]
async fn inside_a_namespace_of_its_own() {
    if std::env::var_os(INSIDE).is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = InProcessServer::start_with_window(4).await;
    let direct = server.client();
    let (client, partition) = server.partitioned_client();
    let (stop, shutdown) = Shutdown::new();
    let factory = InformerFactory::new(client.clone(), Default::default(), shutdown);
    let data = tempfile::tempdir().unwrap();
    let config = frontdoor_node::NodeConfig {
        node_name: "n1".into(),
        node_ip: "10.244.0.1".parse().unwrap(),
        // Room for one pod: the next pod runs only if the deleted one's address was freed.
        pod_cidr: frontdoor_node::PodCidr::parse("10.244.0.0/30").unwrap(),
        bridge: "relistbr0".into(),
        cluster_dns: "10.96.0.10".parse().unwrap(),
        cluster_dns_local: false,
        cluster_domain: "cluster.local".into(),
        resolv_conf: None,
        data_dir: data.path().to_path_buf(),
        veth_prefix: "fdr".into(),
        service_network: None,
        service_account_token: Some("a-test-token".into()),
        sync_frequency: std::time::Duration::from_secs(60),
        socket_lb_scope: None,
    };
    let events = frontdoor_informers::EventRecorder::new(client, "kubelet", "n1", Default::default());
    let access = frontdoor_node::access::PodAccess::default();
    let node_access = access.clone();
    let node = tokio::spawn(async move {
        frontdoor_node::runtime::run(&factory, config, frontdoor_node::runtime::RESTART_BACKOFF, events, node_access)
            .await
    });

    let pods: Api<Pod> = Api::namespaced(direct.clone(), "default");
    let marker = format!("300.{}", std::process::id());
    let command = ["sleep", marker.as_str()];
    let next_marker = format!("301.{}", std::process::id());
    let _cleanup = KillOnDrop(vec![vec!["sleep".into(), marker.clone()], vec!["sleep".into(), next_marker.clone()]]);
    let uid = pods.create(&PostParams::default(), &pod("doomed", &command)).await.unwrap().metadata.uid.unwrap();
    let address = running_ip(&pods, "doomed").await;
    assert_eq!(processes_running(&command), 1);
    assert_eq!(host_veths(), 1);
    assert!(access.holds(&uid));

    // The link breaks; the pod is deleted for good, and more changes follow than the window holds.
    partition.cut();
    pods.delete("doomed", &DeleteParams { grace_period_seconds: Some(0), ..Default::default() }).await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(direct.clone(), "default");
    for n in 0..8 {
        let filler = serde_json::from_value(serde_json::json!({"metadata": {"name": format!("filler-{n}")}})).unwrap();
        config_maps.create(&PostParams::default(), &filler).await.unwrap();
    }
    partition.heal();

    // The re-list shows the pod gone: its processes stop, and its address goes to the next pod.
    wait_for("the deleted pod's processes to stop", || async { (processes_running(&command) == 0).then_some(()) })
        .await;
    wait_for("the deleted pod to leave the node", || async { (!access.holds(&uid)).then_some(()) }).await;
    assert_eq!(host_veths(), 0, "its sandbox is gone");
    pods.create(&PostParams::default(), &pod("next", &["sleep", next_marker.as_str()])).await.unwrap();
    assert_eq!(running_ip(&pods, "next").await, address, "the deleted pod's address was freed");

    stop.trigger();
    tokio::time::timeout(WAIT, node).await.expect("the node stops").unwrap().expect("the node ran");
}
