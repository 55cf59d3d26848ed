//! The LoadBalancer controller against the real API server (in the test process, built from
//! this source; no node, no data plane): Services go in with real kubectl, addresses and events
//! are read back with kubectl as a user would.
#![allow(clippy::unwrap_used)] // a test stops at the first broken assumption

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use frontdoor_informers::{InformerFactory, Shutdown, ShutdownTrigger};
use frontdoor_lb::{Announcer, LbConfig, Pool};
use frontdoor_metrics::Registry;
use frontdoor_testkit::InProcessServer;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(20);
const KUBECTL: &str = "1.33";
const NODE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

/// The seeds' LoadBalancer manifests, as users apply them.
const SEED_WEB_SERVICE: &str = "
apiVersion: v1
kind: Service
metadata:
  name: web-service
spec:
  type: LoadBalancer
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 8080
";
const SEED_MY_APP_LB: &str = "
apiVersion: v1
kind: Service
metadata:
  name: my-app-lb
  annotations:
    # Optional: use a pre-reserved static IP
    networking.gke.io/load-balancer-ip-addresses: \"my-static-ip\"
spec:
  type: LoadBalancer
  selector:
    app: my-app
  ports:
    - protocol: TCP
      port: 80
      targetPort: 8080
  # Optional: restrict which source IPs can connect
  loadBalancerSourceRanges:
    - \"203.0.113.0/24\"
";
const SEED_API_PUBLIC: &str = "
apiVersion: v1
kind: Service
metadata:
  name: api-public
spec:
  type: LoadBalancer
  selector:
    app: api
  ports:
    - port: 443
      targetPort: 8080
";

/// Records the announcer's calls; `live` is what is announced now.
#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<(Ipv4Addr, Option<bool>)>>,
}

impl Announcer for Recording {
    fn announce(&self, address: Ipv4Addr, internal: bool) {
        self.calls.lock().unwrap().push((address, Some(internal)));
    }

    fn withdraw(&self, address: Ipv4Addr) {
        self.calls.lock().unwrap().push((address, None));
    }
}

impl Recording {
    /// Addresses announced and not withdrawn since, as "ip" or "ip internal".
    fn live(&self) -> BTreeSet<String> {
        let mut live = BTreeSet::new();
        for (address, call) in self.calls.lock().unwrap().iter() {
            live.retain(|a: &String| a.split(' ').next() != Some(&address.to_string()));
            match call {
                Some(true) => live.insert(format!("{address} internal")),
                Some(false) => live.insert(address.to_string()),
                None => false,
            };
        }
        live
    }

    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

type Running = (ShutdownTrigger, JoinHandle<Result<(), frontdoor_lb::Error>>);

struct Cluster {
    server: InProcessServer,
    client: Client,
    running: Option<Running>,
}

fn config(pools: &[&str], internal: &[&str], announcer: Option<Arc<Recording>>) -> LbConfig {
    let mut config = LbConfig::new(NODE);
    config.pools = pools.iter().map(|p| p.parse::<Pool>().unwrap()).collect();
    config.internal_pools = internal.iter().map(|p| p.parse::<Pool>().unwrap()).collect();
    config.announcer = announcer.map(|a| a as Arc<dyn Announcer>);
    config
}

impl Cluster {
    async fn start(config: LbConfig) -> Cluster {
        let server = InProcessServer::start().await;
        let client = server.client();
        let mut cluster = Cluster { server, client, running: None };
        cluster.start_controller(config);
        cluster
    }

    fn start_controller(&mut self, config: LbConfig) {
        let (stop, shutdown) = Shutdown::new();
        let factory = InformerFactory::new(self.client.clone(), Registry::default(), shutdown);
        self.running = Some((stop, tokio::spawn(frontdoor_lb::run(factory, config))));
    }

    async fn stop_controller(&mut self) {
        let (stop, task) = self.running.take().unwrap();
        stop.trigger();
        tokio::time::timeout(WAIT, task).await.expect("controller stops in time").unwrap().unwrap();
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.server.kubectl_ok(KUBECTL, args)
    }

    fn apply(&self, manifest: &str) {
        let out = self.server.kubectl_with_stdin(KUBECTL, &["apply", "-f", "-"], Some(manifest));
        assert!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `kubectl get svc <name>`'s EXTERNAL-IP column.
    fn external_ip(&self, name: &str) -> String {
        let out = self.kubectl(&["get", "svc", name, "--no-headers"]);
        out.split_whitespace().nth(3).unwrap_or_default().to_string()
    }

    async fn wait_external_ip(&self, name: &str, want: &str) {
        eventually(&format!("kubectl get svc {name}: EXTERNAL-IP {want}"), || async {
            (self.external_ip(name) == want).then_some(())
        })
        .await
    }

    /// Waits for an EXTERNAL-IP (not `<pending>`) and returns it.
    async fn wait_assigned(&self, name: &str) -> String {
        eventually(&format!("kubectl get svc {name}: an EXTERNAL-IP"), || async {
            Some(self.external_ip(name)).filter(|ip| ip.parse::<Ipv4Addr>().is_ok())
        })
        .await
    }

    /// Waits until `kubectl describe svc <name>` lists an event with `type_`, `reason` and a
    /// message containing `message`; returns that line.
    async fn wait_event(&self, name: &str, type_: &str, reason: &str, message: &str) -> String {
        eventually(&format!("{type_} {reason} event on {name}: {message}"), || async {
            let described = self.kubectl(&["describe", "svc", name]);
            described
                .lines()
                .find(|l| {
                    let words: Vec<&str> = l.split_whitespace().collect();
                    words.first() == Some(&type_) && words.get(1) == Some(&reason) && l.contains(message)
                })
                .map(str::to_string)
        })
        .await
    }

    async fn service(&self, name: &str) -> Service {
        Api::<Service>::namespaced(self.client.clone(), "default").get(name).await.unwrap()
    }

    async fn patch(&self, name: &str, patch: serde_json::Value) {
        let api = Api::<Service>::namespaced(self.client.clone(), "default");
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            stop.trigger();
            task.abort();
        }
    }
}

async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    frontdoor_testkit::eventually(what, WAIT, probe).await
}

/// A LoadBalancer Service `name` on `ports` (TCP), with extra metadata and spec fields.
fn lb_service(name: &str, ports: &[i32], annotations: serde_json::Value, spec: serde_json::Value) -> String {
    let ports: Vec<_> = ports.iter().map(|p| json!({"name": format!("p{p}"), "port": p, "targetPort": 8080})).collect();
    let mut manifest = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": ports},
    });
    for (field, value) in spec.as_object().unwrap() {
        manifest["spec"][field] = value.clone();
    }
    manifest.to_string()
}

fn plain(name: &str, ports: &[i32]) -> String {
    lb_service(name, ports, json!({}), json!({}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_exhaustion_waits_and_a_deleted_service_frees_its_address() {
    let announcer = Arc::new(Recording::default());
    let cluster = Cluster::start(config(&["192.168.1.240/31"], &[], Some(announcer.clone()))).await;
    cluster.apply(&plain("a", &[80]));
    let a = cluster.wait_assigned("a").await;
    assert_eq!(a, "192.168.1.240", "the pool's first address (a /31 has no network address to skip)");
    cluster.apply(&plain("b", &[80]));
    cluster.wait_external_ip("b", "192.168.1.241").await;
    cluster.wait_event("a", "Normal", "IPAllocated", "Assigned IP [\"192.168.1.240\"]").await;

    // The status is what MetalLB leaves: the IP, with the API server's default ipMode.
    let status = serde_json::to_value(cluster.service("a").await.status).unwrap();
    assert_eq!(status["loadBalancer"], json!({"ingress": [{"ip": "192.168.1.240", "ipMode": "VIP"}]}));

    // Exhausted: the third waits, with MetalLB's Warning.
    cluster.apply(&plain("c", &[80]));
    let line = cluster
        .wait_event(
            "c",
            "Warning",
            "AllocationFailed",
            "Failed to allocate IP for \"default/c\": no available IPs in pool 192.168.1.240/31",
        )
        .await;
    assert!(line.contains("service-lb-controller"), "the event's source: {line}");
    assert_eq!(cluster.external_ip("c"), "<pending>");
    let events = cluster.kubectl(&["get", "events", "--field-selector", "involvedObject.name=c"]);
    assert!(events.contains("AllocationFailed") && events.contains("service/c"), "{events}");

    // Deleting a frees its address; the waiting Service takes it.
    cluster.kubectl(&["delete", "svc", "a"]);
    cluster.wait_external_ip("c", "192.168.1.240").await;
    cluster.wait_event("c", "Normal", "IPAllocated", "Assigned IP [\"192.168.1.240\"]").await;
    assert_eq!(cluster.external_ip("b"), "192.168.1.241");
    assert_eq!(announcer.live(), BTreeSet::from(["192.168.1.240".to_string(), "192.168.1.241".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_keeps_every_address() {
    let pools = ["192.168.1.240/29"];
    let mut cluster = Cluster::start(config(&pools, &[], None)).await;
    for name in ["a", "b", "c"] {
        cluster.apply(&plain(name, &[80]));
        cluster.wait_assigned(name).await;
    }
    let before: Vec<String> = ["a", "b", "c"].iter().map(|n| cluster.external_ip(n)).collect();
    assert_eq!(before, ["192.168.1.240", "192.168.1.241", "192.168.1.242"]);
    let versions: Vec<Option<String>> = {
        let mut v = Vec::new();
        for name in ["a", "b", "c"] {
            v.push(cluster.service(name).await.metadata.resource_version);
        }
        v
    };

    // While the controller is down: a new Service, and one asking for each held address. After
    // the restart they may well be reconciled before the Services holding those addresses: only
    // the assignments restored before any reconcile keep the holders' addresses theirs.
    cluster.stop_controller().await;
    cluster.apply(&plain("d", &[80]));
    for (name, address) in ["a", "b", "c"].iter().zip(&before) {
        cluster.apply(&lb_service(&format!("thief-{name}"), &[81], json!({}), json!({"loadBalancerIP": address})));
    }

    let announcer = Arc::new(Recording::default());
    cluster.start_controller(config(&pools, &[], Some(announcer.clone())));
    cluster.wait_external_ip("d", "192.168.1.243").await;
    for (name, address) in ["a", "b", "c"].iter().zip(&before) {
        let message = format!("{address} is already in use by Service default/{name}: it does not allow sharing");
        cluster.wait_event(&format!("thief-{name}"), "Warning", "AllocationFailed", &message).await;
    }
    for (name, address) in ["a", "b", "c"].iter().zip(&before) {
        assert_eq!(&cluster.external_ip(name), address, "{name} kept its address");
    }
    let mut after = Vec::new();
    for name in ["a", "b", "c"] {
        after.push(cluster.service(name).await.metadata.resource_version);
    }
    assert_eq!(after, versions, "kept addresses are not written again");
    // Every address held at start-up was announced (and d's when it got it).
    let want: BTreeSet<String> =
        ["192.168.1.240", "192.168.1.241", "192.168.1.242", "192.168.1.243"].into_iter().map(String::from).collect();
    eventually("every held address announced", || async { (announcer.live() == want).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_class_is_left_alone_and_a_type_change_releases() {
    let cluster = Cluster::start(config(&["192.168.1.240/31"], &[], None)).await;
    // Another implementation's Service, with the status it wrote.
    cluster.apply(&lb_service("other", &[80], json!({}), json!({"loadBalancerClass": "example.com/other"})));
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
    Api::<Service>::namespaced(cluster.client.clone(), "default")
        .patch_status("other", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let other_version = cluster.service("other").await.metadata.resource_version;

    // Ours: no class, and our class named explicitly.
    cluster.apply(&plain("a", &[80]));
    cluster.wait_external_ip("a", "192.168.1.240").await;
    cluster.apply(&lb_service("b", &[80], json!({}), json!({"loadBalancerClass": "frontdoor.dev/lb"})));
    cluster.wait_external_ip("b", "192.168.1.241").await;
    cluster.apply(&plain("waiting", &[80]));
    cluster.wait_event("waiting", "Warning", "AllocationFailed", "no available IPs").await;
    assert_eq!(cluster.external_ip("other"), "203.0.113.9");
    assert_eq!(cluster.service("other").await.metadata.resource_version, other_version, "never written");
    assert!(!cluster.kubectl(&["describe", "svc", "other"]).contains("IPAllocated"));

    // a stops being a LoadBalancer: its address is released and its status cleared; the
    // waiting Service gets the address.
    cluster.patch("a", json!({"spec": {"type": "ClusterIP"}})).await;
    cluster.wait_external_ip("waiting", "192.168.1.240").await;
    eventually("a's status.loadBalancer cleared", || async {
        let status = cluster.service("a").await.status.and_then(|s| s.load_balancer).unwrap_or_default();
        status.ingress.unwrap_or_default().is_empty().then_some(())
    })
    .await;
    assert_eq!(cluster.external_ip("a"), "<none>");

    // a comes back as another class's LoadBalancer: not ours.
    cluster.patch("a", json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other"}})).await;
    // b leaves our class the only way the API allows (through a non-LoadBalancer type) and
    // comes back as another class's: its address is free again, and a stays without one.
    cluster.patch("b", json!({"spec": {"type": "ClusterIP", "loadBalancerClass": null}})).await;
    cluster.patch("b", json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/other"}})).await;
    cluster.apply(&plain("later", &[80]));
    cluster.wait_external_ip("later", "192.168.1.241").await;
    assert_eq!(cluster.external_ip("a"), "<pending>");
    assert_eq!(cluster.external_ip("b"), "<pending>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn internal_services_take_the_internal_pool_and_requests_are_honoured() {
    let announcer = Arc::new(Recording::default());
    let cluster = Cluster::start(config(&["203.0.113.8/30"], &["192.168.50.0/30"], Some(announcer.clone()))).await;
    // The seeds' internal annotation (GKE), and its older spelling.
    let internal = json!({"networking.gke.io/load-balancer-type": "Internal"});
    cluster.apply(&lb_service("lan", &[80], internal, json!({})));
    cluster.wait_external_ip("lan", "192.168.50.0").await;
    let legacy = json!({"cloud.google.com/load-balancer-type": "Internal"});
    cluster.apply(&lb_service("lan-2", &[80], legacy, json!({})));
    cluster.wait_external_ip("lan-2", "192.168.50.1").await;
    cluster.apply(&SEED_WEB_SERVICE.replace("web-service", "public"));
    cluster.wait_external_ip("public", "203.0.113.8").await;

    // The seeds' reserved-address annotation names an address frontdoor cannot know.
    cluster.apply(SEED_MY_APP_LB);
    cluster.wait_event("my-app-lb", "Warning", "AllocationFailed", "\"my-static-ip\" names a reserved address").await;
    assert_eq!(cluster.external_ip("my-app-lb"), "<pending>");
    // Given an address of the pool instead, it gets that one.
    cluster.kubectl(&[
        "annotate",
        "--overwrite",
        "svc",
        "my-app-lb",
        "networking.gke.io/load-balancer-ip-addresses=203.0.113.11",
    ]);
    cluster.wait_external_ip("my-app-lb", "203.0.113.11").await;

    // Requested addresses: MetalLB's annotation; one outside the pools; one taken.
    let metallb = json!({"metallb.io/loadBalancerIPs": "203.0.113.10"});
    cluster.apply(&lb_service("pinned", &[80], metallb, json!({})));
    cluster.wait_external_ip("pinned", "203.0.113.10").await;
    cluster.apply(&lb_service("outside", &[80], json!({}), json!({"loadBalancerIP": "198.51.100.1"})));
    cluster
        .wait_event(
            "outside",
            "Warning",
            "AllocationFailed",
            "198.51.100.1 is not allowed: it is in no pool (203.0.113.8/30)",
        )
        .await;
    cluster.apply(&lb_service("taken", &[80], json!({}), json!({"loadBalancerIP": "203.0.113.10"})));
    cluster
        .wait_event("taken", "Warning", "AllocationFailed", "203.0.113.10 is already in use by Service default/pinned")
        .await;

    // MetalLB's sharing: same key, different ports.
    let shared = json!({"metallb.io/allow-shared-ip": "dns"});
    cluster.apply(&lb_service("dns-a", &[53], shared.clone(), json!({})));
    cluster.wait_external_ip("dns-a", "203.0.113.9").await;
    cluster.apply(&lb_service("dns-b", &[5353], shared, json!({"loadBalancerIP": "203.0.113.9"})));
    cluster.wait_external_ip("dns-b", "203.0.113.9").await;

    let want: BTreeSet<String> = [
        "192.168.50.0 internal",
        "192.168.50.1 internal",
        "203.0.113.8",
        "203.0.113.9",
        "203.0.113.10",
        "203.0.113.11",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    eventually("announced addresses", || async { (announcer.live() == want).then_some(()) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_pools_every_service_shares_the_node_address_by_port() {
    let announcer = Arc::new(Recording::default());
    let cluster = Cluster::start(config(&[], &[], Some(announcer.clone()))).await;
    cluster.apply(SEED_WEB_SERVICE);
    cluster.apply(SEED_API_PUBLIC);
    cluster.wait_external_ip("web-service", "10.0.0.5").await;
    cluster.wait_external_ip("api-public", "10.0.0.5").await;

    // Port 80 is web-service's on the node address: the next one waits, told who holds it.
    cluster.apply(&plain("web-2", &[80, 8443]));
    cluster
        .wait_event(
            "web-2",
            "Warning",
            "AllocationFailed",
            "port 80/TCP of 10.0.0.5 is already used by Service default/web-service",
        )
        .await;
    assert_eq!(cluster.external_ip("web-2"), "<pending>");
    // Only the node address can be asked for.
    cluster.apply(&lb_service("pinned", &[9000], json!({}), json!({"loadBalancerIP": "192.168.1.240"})));
    cluster
        .wait_event(
            "pinned",
            "Warning",
            "AllocationFailed",
            "no pool is configured, so only the node address 10.0.0.5 can be requested",
        )
        .await;

    cluster.kubectl(&["delete", "svc", "web-service"]);
    cluster.wait_external_ip("web-2", "10.0.0.5").await;
    assert_eq!(announcer.count(), 0, "the node address is the node's own: never announced");
}
