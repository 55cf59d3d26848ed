//! Shared test support: the real server, the controllers in-process, a stand-in kubelet that
//! marks pods Running and Ready, and a recorder of pod events.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption
#![allow(dead_code)]

use frontdoor_testkit::InProcessServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const KUBECTL: &str = "1.32";

/// The server, a client, and the workload controllers running until this is dropped.
pub struct Cluster {
    pub fd: InProcessServer,
    pub client: Client,
    stop: Option<frontdoor_informers::ShutdownTrigger>,
    controllers: Option<tokio::task::JoinHandle<Result<(), frontdoor_workloads::Error>>>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // No node (this test plays kubelet) and no built-in controllers (ours run in-process).
        let fd = InProcessServer::start().await;
        let client = fd.client();
        let (stop, shutdown) = frontdoor_informers::Shutdown::new();
        let factory = frontdoor_informers::InformerFactory::new(client.clone(), Default::default(), shutdown);
        let controllers = tokio::spawn(frontdoor_workloads::run(factory, Default::default()));
        Cluster { fd, client, stop: Some(stop), controllers: Some(controllers) }
    }

    /// `kubectl apply -f -` with `manifest`.
    pub fn apply(&self, manifest: &str) {
        let output = self.fd.kubectl_with_stdin(KUBECTL, &["apply", "-f", "-"], Some(manifest));
        assert!(output.status.success(), "apply failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.fd.kubectl_ok(KUBECTL, args)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Stops the controllers and waits until they finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.trigger();
        }
        if let Some(task) = self.controllers.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("controllers stop")
                .expect("join")
                .expect("run");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(task) = &self.controllers {
            task.abort();
        }
    }
}

/// Polls `condition` until true, failing with `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    frontdoor_testkit::eventually(what, timeout, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}

static NEXT_IP: AtomicU32 = AtomicU32::new(2);

/// Plays kubelet for one pod: Running, Ready (since now), with a pod IP.
pub async fn make_ready(client: &Client, namespace: &str, name: &str) -> Result<(), kube::Error> {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let ip = format!("10.244.{}.{}", n / 250, n % 250 + 2);
    let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let status = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
        ],
    }});
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.map(|_| ())
}

pub fn is_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A stand-in kubelet: every new pod becomes Running and Ready after `delay`, in the order the
/// pods appeared. Stops when dropped.
pub struct Kubelet {
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    pub fn start(client: &Client, delay: Duration) -> Kubelet {
        let client = client.clone();
        let task = tokio::spawn(async move {
            let api: Api<Pod> = Api::all(client.clone());
            let mut seen = HashSet::new();
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = events.next().await {
                let pod = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => pod,
                    _ => continue,
                };
                if pod.metadata.deletion_timestamp.is_some()
                    || is_ready(&pod)
                    || !seen.insert(pod.uid().unwrap_or_default())
                {
                    continue;
                }
                let client = client.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = make_ready(&client, &pod.namespace().unwrap_or_default(), &pod.name_any()).await;
                });
            }
        });
        Kubelet { task }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What happened to a pod, as a watcher saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum PodEvent {
    Created(String),
    Ready(String),
    Deleted(String),
}

/// Each pod event with the live pods right after it.
pub type History = Arc<Mutex<Vec<(PodEvent, Vec<Pod>)>>>;

/// Records pod events in order, and the live pods after each event. Stops when dropped.
pub struct Recorder {
    pub events: History,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start(client: &Client) -> Recorder {
        let events: History = Arc::default();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let record = events.clone();
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        let task = tokio::spawn(async move {
            let mut live: std::collections::BTreeMap<String, Pod> = Default::default();
            let mut ready_tx = Some(ready_tx);
            let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = stream.next().await {
                let (event, pod) = match event {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(watcher::Event::Apply(pod)) => {
                        let name = pod.name_any();
                        let event = match live.get(&name) {
                            None => PodEvent::Created(name.clone()),
                            Some(before) if !is_ready(before) && is_ready(&pod) => PodEvent::Ready(name.clone()),
                            Some(_) => {
                                live.insert(name, pod);
                                continue;
                            }
                        };
                        (event, Some(pod))
                    }
                    Ok(watcher::Event::Delete(pod)) => (PodEvent::Deleted(pod.name_any()), None),
                    _ => continue,
                };
                let name = match &event {
                    PodEvent::Created(n) | PodEvent::Ready(n) | PodEvent::Deleted(n) => n.clone(),
                };
                match pod {
                    Some(pod) => live.insert(name, pod),
                    None => live.remove(&name),
                };
                record.lock().unwrap().push((event, live.values().cloned().collect()));
            }
        });
        let _ = ready_rx.await;
        Recorder { events, task }
    }

    pub fn events(&self) -> Vec<PodEvent> {
        self.events.lock().unwrap().iter().map(|(e, _)| e.clone()).collect()
    }

    /// The fewest ready, non-terminating pods whose name starts with `prefix` at any point
    /// after the first time `from` of them were ready.
    pub fn min_ready_after_reaching(&self, prefix: &str, from: usize) -> Option<usize> {
        let events = self.events.lock().unwrap();
        let counts = events.iter().map(|(_, live)| {
            live.iter()
                .filter(|p| p.name_any().starts_with(prefix) && is_ready(p) && p.metadata.deletion_timestamp.is_none())
                .count()
        });
        counts.skip_while(|n| *n < from).min()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Names of the pods whose name starts with `prefix`, sorted.
pub async fn pod_names(client: &Client, prefix: &str) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut names: Vec<String> = api
        .list(&Default::default())
        .await
        .expect("list pods")
        .items
        .iter()
        .map(|p| p.name_any())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}
