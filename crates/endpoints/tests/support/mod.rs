//! A cluster for the controller tests: the real API server built from this source, in the test
//! process (no node, no built-in controllers), the controllers running against it through
//! kube-rs, and the test playing kubelet (it writes pod status through `pods/status`).
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use frontdoor_endpoints::EndpointsConfig;
use frontdoor_informers::{InformerFactory, Shutdown, ShutdownTrigger};
use frontdoor_metrics::Registry;
use frontdoor_testkit::InProcessServer;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(20);

/// The running controllers: their shutdown signal and their task.
type Controllers = (ShutdownTrigger, JoinHandle<Result<(), frontdoor_endpoints::Error>>);

/// A running server plus the controllers. Dropping it stops both.
pub struct Cluster {
    pub server: InProcessServer,
    pub client: Client,
    controllers: Option<Controllers>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        Cluster::start_with(EndpointsConfig::default()).await
    }

    pub async fn start_with(config: EndpointsConfig) -> Cluster {
        let server = InProcessServer::start().await;
        let client = server.client();
        let mut cluster = Cluster { server, client, controllers: None };
        cluster.start_controllers(config);
        cluster
    }

    /// A server with no controllers running (start them with [`Cluster::start_controllers`]).
    pub async fn start_without_controllers() -> Cluster {
        let server = InProcessServer::start().await;
        let client = server.client();
        Cluster { server, client, controllers: None }
    }

    pub fn start_controllers(&mut self, config: EndpointsConfig) {
        let (stop, shutdown) = Shutdown::new();
        let factory = InformerFactory::new(self.client.clone(), Registry::default(), shutdown);
        let task = tokio::spawn(frontdoor_endpoints::run(factory, config));
        self.controllers = Some((stop, task));
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop_controllers(&mut self) {
        if let Some((stop, task)) = self.controllers.take() {
            stop.trigger();
            let result =
                tokio::time::timeout(WAIT, task).await.expect("controllers stop in time").expect("controller task");
            result.expect("controllers ran without error");
        }
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub fn slices_api(&self) -> Api<EndpointSlice> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub fn endpoints_api(&self) -> Api<Endpoints> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub async fn create_service(&self, service: Value) -> Service {
        self.services()
            .create(&PostParams::default(), &serde_json::from_value(service).expect("service json"))
            .await
            .expect("create service")
    }

    /// Creates pod `name` with labels, on `node-1`, with a container port `http` = 8080 (or
    /// the given container ports).
    pub async fn create_pod(&self, name: &str, labels: Value, ports: Option<Value>) -> Pod {
        let ports = ports.unwrap_or_else(|| json!([{"name": "http", "containerPort": 8080}]));
        let pod = json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10", "ports": ports}]},
        });
        self.pods()
            .create(&PostParams::default(), &serde_json::from_value(pod).expect("pod json"))
            .await
            .expect("create pod")
    }

    /// Plays kubelet: the pod runs with `ip`, Ready or not.
    pub async fn set_status(&self, name: &str, ip: &str, ready: bool) {
        let status = json!({"status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        }});
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("patch pod status");
    }

    /// Creates `count` pods `<prefix>-<i>` labelled `app=<app>`, Ready, with IPs from 10.244.x.y.
    pub async fn create_ready_pods(&self, prefix: &str, app: &str, range: std::ops::Range<usize>) {
        for i in range {
            let name = format!("{prefix}-{i}");
            self.create_pod(&name, json!({"app": app}), None).await;
            self.set_status(&name, &pod_ip(i), true).await;
        }
    }

    pub async fn delete_pod(&self, name: &str, grace: Option<u32>) {
        let params = DeleteParams { grace_period_seconds: grace, ..Default::default() };
        self.pods().delete(name, &params).await.expect("delete pod");
    }

    /// The slices labelled for `service`, sorted by name.
    pub async fn slices(&self, service: &str) -> Vec<EndpointSlice> {
        let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
        let mut slices = self.slices_api().list(&params).await.expect("list slices").items;
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        slices
    }

    pub async fn endpoints(&self, name: &str) -> Option<Endpoints> {
        self.endpoints_api().get_opt(name).await.expect("get endpoints")
    }

    /// `kubectl get endpoints <name>`'s ENDPOINTS column (between NAME and AGE).
    pub fn kubectl_endpoints(&self, name: &str) -> String {
        let out = self.server.kubectl_ok("1.32", &["get", "endpoints", name, "--no-headers"]);
        let words: Vec<&str> = out.split_whitespace().collect();
        words.get(1..words.len().saturating_sub(1)).unwrap_or_default().join(" ")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.controllers.take() {
            stop.trigger();
            task.abort();
        }
    }
}

/// The test pods' addresses: 10.244.<i/250>.<i%250 + 2>.
pub fn pod_ip(i: usize) -> String {
    format!("10.244.{}.{}", i / 250, i % 250 + 2)
}

/// Polls `probe` until it returns `Some`, failing the test with `what` after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    frontdoor_testkit::eventually(what, WAIT, probe).await
}

/// One endpoint as `ip ready/serving/terminating`, e.g. `10.244.0.2 R S -`.
pub fn describe_endpoints(slices: &[EndpointSlice]) -> Vec<String> {
    let flag = |value: Option<bool>, letter: &str| {
        if value == Some(true) {
            letter.to_string()
        } else {
            "-".to_string()
        }
    };
    let mut lines: Vec<String> = slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .map(|e| {
            let c = e.conditions.clone().unwrap_or_default();
            format!(
                "{} {} {} {}",
                e.addresses.join(","),
                flag(c.ready, "R"),
                flag(c.serving, "S"),
                flag(c.terminating, "T")
            )
        })
        .collect();
    lines.sort();
    lines
}

/// Each slice's port numbers and endpoint count, sorted.
pub fn describe_slices(slices: &[EndpointSlice]) -> Vec<(Vec<i32>, usize)> {
    let mut shape: Vec<(Vec<i32>, usize)> =
        slices.iter().map(|s| (s.ports.iter().flatten().filter_map(|p| p.port).collect(), s.endpoints.len())).collect();
    shape.sort();
    shape
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A ClusterIP Service `name` selecting `app=<app>`, port 80 → `target`.
pub fn web_service(name: &str, app: &str, target: Value) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": target}]},
    })
}
