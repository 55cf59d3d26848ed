//! The pod runtime: one worker per pod bound to this node. A worker creates the pod's sandbox
//! (namespaces, veth, address, resolv.conf, hosts), runs each container's command as a process
//! inside it with its logs captured, probes it, restarts it by the pod's restart policy with
//! upstream's back-off, reports status, and on deletion stops it gracefully (SIGTERM, grace
//! period, SIGKILL), removes the sandbox and deletes the pod object.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio::sync::{watch, Notify};

use frontdoor_informers::{Change, InformerFactory, Scope};
use frontdoor_netns::{Launcher, PodSandbox, ProcessSpec, SandboxConfig, SandboxFactory, Signal};

use crate::access::PodAccess;
use crate::container_path;
use crate::dedicated::Dedicated;
use crate::env::container_environment;
use crate::ipam::Ipam;
use crate::lifecycle_hooks::{self, HookRunner, HookTarget};
use crate::logs::{capture, LogStore};
use crate::pids::PidJournal;
use crate::pod_dns::{managed_hosts_file, pod_resolver, NodeDns, PodHostname, ResolverConfig};
use crate::probes::{self, Kind, Outcome, Tracker};
use crate::status::{pod_status, same_status, ContainerRecord, PodRecord, State};
use crate::volumes;
use crate::{NodeConfig, NodeError};
use frontdoor_informers::{Backoff, EventRecorder};

/// Upstream's container restart back-off: 10 s doubling to 5 min (`delay(n)` before restart n).
pub const RESTART_BACKOFF: Backoff = Backoff { min: Duration::from_secs(10), max: Duration::from_secs(300) };

/// How long pods get to stop when the node itself shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Retries of a pod's volumes that could not be mounted (a ConfigMap or Secret not there yet),
/// as the kubelet's: from half a second, doubling to about two minutes.
const MOUNT_BACKOFF: Backoff = Backoff { min: Duration::from_millis(500), max: Duration::from_secs(122) };

/// What all workers share.
struct Shared {
    client: kube::Client,
    config: NodeConfig,
    ipam: Mutex<Ipam>,
    logs: LogStore,
    services: Store<Service>,
    backoff: Backoff,
    pids: Arc<PidJournal>,
    events: EventRecorder,
    /// Makes sandboxes, one at a time in the order asked.
    sandboxes: Dedicated<SandboxFactory>,
    /// Starts containers' (and exec probes') processes, likewise.
    launcher: Dedicated<Launcher>,
    /// The pods with a sandbox, for port-forward and exec.
    access: PodAccess,
    /// The node's resolv.conf, read at start (`NodeConfig::resolv_conf`).
    node_resolver: Option<ResolverConfig>,
}

/// Runs every pod bound to this node until `factory`'s shutdown, recording events with `events`
/// (the `kubelet` component's) and listing pods' sandboxes and containers in `access`. Pods
/// come from the shared informer of this node's pods: one deleted while that informer re-listed
/// is announced as deleted, so its processes stop and its address is freed.
pub async fn run(
    factory: &InformerFactory,
    config: NodeConfig,
    backoff: Backoff,
    events: EventRecorder,
    access: PodAccess,
) -> Result<(), NodeError> {
    let client = factory.client();
    let gateway = config.pod_cidr.gateway();
    let (bridge, prefix) = (config.bridge.clone(), config.pod_cidr.prefix_len);
    let veth_prefix = veth_prefix(&config);
    let service_network = config.service_network;
    let local_dns = config.cluster_dns_local.then_some(config.cluster_dns);
    tokio::task::spawn_blocking(move || -> Result<(), NodeError> {
        let internal = |e: frontdoor_netns::Error| NodeError::Internal(e.to_string());
        frontdoor_netns::ensure_bridge(&bridge, gateway, prefix).map_err(internal)?;
        // Pods reach each other, Services and the node's other interfaces through the node.
        frontdoor_netns::enable_ip_forward().map_err(internal)?;
        if let Some((network, prefix_len)) = service_network {
            frontdoor_netns::route_to_bridge(&bridge, network, prefix_len, gateway).map_err(internal)?;
        }
        if let Some(address) = local_dns {
            frontdoor_netns::make_local_on_bridge(&bridge, address).map_err(internal)?;
        }
        frontdoor_netns::cleanup_stale(&veth_prefix, &bridge).map_err(internal)?;
        Ok(())
    })
    .await
    .map_err(|e| NodeError::Internal(e.to_string()))??;

    let pids = Arc::new(PidJournal::open(&config.data_dir.join("pods").join("containers.pids")));
    // Commands run in pods (`kubectl exec`) are recorded too, so a crash cannot leave them.
    access.record_pids_in(pids.clone());
    let services = factory.all::<Service>();
    let shutdown = factory.shutdown();
    // Containers' environment names the Services: wait for them first, as the kubelet does.
    tokio::select! {
        () = services.synced() => {}
        () = shutdown.triggered() => return Ok(()),
    }

    // Pods' host ports (the CNI portmap plugin's job on a real node), kept until the pods have
    // stopped, then removed.
    let (hostports_stop, hostports_stopped) = tokio::sync::oneshot::channel::<()>();
    let hostports = tokio::spawn(crate::hostports::run(
        factory.clone(),
        config.node_name.clone(),
        config.bridge.clone(),
        hostports_stopped,
    ));

    let shared = Arc::new(Shared {
        client: client.clone(),
        pids,
        events,
        sandboxes: Dedicated::start("sandbox-maker", || SandboxFactory::for_this_thread().map_err(|e| e.to_string()))
            .map_err(|e| NodeError::Internal(format!("starting the sandbox maker: {e}")))?,
        launcher: Dedicated::start("launcher", || Launcher::for_this_thread().map_err(|e| e.to_string()))
            .map_err(|e| NodeError::Internal(format!("starting the launcher: {e}")))?,
        ipam: Mutex::new(Ipam::new(config.pod_cidr.clone())),
        logs: LogStore::new(config.data_dir.join("pods")),
        node_resolver: config.resolv_conf.as_deref().map(read_node_resolver),
        config: config.clone(),
        services: services.store(),
        backoff,
        access,
    });

    let mine = Scope::all().fields(format!("spec.nodeName={}", config.node_name));
    let mut changes = factory.cluster_wide::<Pod>(mine).subscribe();
    let mut workers: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut running = tokio::task::JoinSet::new();
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    loop {
        let change = tokio::select! {
            () = &mut stop => break,
            change = changes.recv() => match change { Some(change) => change, None => break },
        };
        match change {
            Change::Applied { new, .. } => dispatch(&shared, &mut workers, &mut running, Pod::clone(&new)),
            Change::Deleted(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    if let Some(worker) = workers.remove(uid) {
                        let _ = worker.send(None);
                    }
                }
            }
        }
        workers.retain(|_, w| !w.is_closed());
    }
    // Pods cannot outlive the node (their namespaces die with it): stop them all.
    for (_, worker) in workers {
        let _ = worker.send(None);
    }
    while running.join_next().await.is_some() {}
    let _ = hostports_stop.send(());
    let _ = hostports.await;
    Ok(())
}

/// The host-side veth names of this node's pods start with this (so leftovers can be found).
fn veth_prefix(config: &NodeConfig) -> String {
    config.veth_prefix.clone()
}

fn dispatch(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, watch::Sender<Option<Pod>>>,
    running: &mut tokio::task::JoinSet<()>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else { return };
    if let Some(worker) = workers.get(&uid) {
        let _ = worker.send(Some(pod));
        return;
    }
    // A pod that finished before we saw it has nothing to run.
    if pod.metadata.deletion_timestamp.is_none()
        && matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
    {
        return;
    }
    tracing::debug!(pod = pod.metadata.name.as_deref().unwrap_or(""), "pod worker starting");
    let (sender, receiver) = watch::channel(Some(pod));
    workers.insert(uid, sender);
    running.spawn(PodWorker::run(shared.clone(), receiver));
}

/// A running container process and what the worker needs to stop it (its preStop hook runs
/// where the container runs).
struct Running {
    pid: u32,
    hooks: HookTarget,
}

/// The state of one pod, shared by its container tasks and its status writer.
struct PodState {
    record: PodRecord,
    running: HashMap<String, Running>,
    /// Container starts under way (asked of the launcher, not yet in `running`).
    starting: usize,
    stopping: bool,
}

struct PodWorker {
    shared: Arc<Shared>,
    pod: Pod,
    state: Arc<Mutex<PodState>>,
    changed: Arc<Notify>,
    sandbox: Option<Arc<PodSandbox>>,
    ip: Option<Ipv4Addr>,
    /// The volumes as last written into the pod (by the sandbox, then by refreshes).
    mounted: Vec<frontdoor_netns::Volume>,
    /// The sandbox's network namespace, while it is in the connect-time balancer's scope.
    balanced_netns: Option<u64>,
}

fn pod_name(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

/// The message shown for a container frontdoor cannot run: it runs commands, not images.
fn no_command_message(container: &Container) -> String {
    format!(
        "container {:?} has no command: frontdoor runs each container's command and args from the host filesystem (image {:?} is recorded, not pulled); set spec.containers[].command",
        container.name,
        container.image.as_deref().unwrap_or("")
    )
}

/// How a pod's start went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Started {
    /// Its containers run, or it failed for good (events say why).
    Done,
    /// Its volumes could not be mounted yet: nothing was made; try again later.
    MountPending,
}

impl PodWorker {
    async fn run(shared: Arc<Shared>, mut updates: watch::Receiver<Option<Pod>>) {
        let Some(pod) = updates.borrow_and_update().clone() else { return };
        let spec = pod.spec.clone().unwrap_or_default();
        let containers: Vec<ContainerRecord> = spec
            .containers
            .iter()
            .map(|c| ContainerRecord {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                state: State::Waiting { reason: "ContainerCreating".into(), message: None },
                last_state: None,
                restart_count: 0,
                ready: false,
                started: false,
                container_id: None,
            })
            .collect();
        let record = PodRecord {
            restart_policy: spec.restart_policy.clone().unwrap_or_else(|| "Always".into()),
            sandbox_ready: false,
            pod_ip: None,
            host_ip: shared.config.node_ip.to_string(),
            start_time: Utc::now(),
            containers,
            message: None,
        };
        let state = Arc::new(Mutex::new(PodState { record, running: HashMap::new(), starting: 0, stopping: false }));
        let changed = Arc::new(Notify::new());
        let mut worker = PodWorker {
            shared,
            pod,
            state,
            changed,
            sandbox: None,
            ip: None,
            mounted: Vec::new(),
            balanced_netns: None,
        };
        let status_task = tokio::spawn(status_writer(
            worker.shared.clone(),
            worker.pod.clone(),
            worker.state.clone(),
            worker.changed.clone(),
        ));

        // Failed attempts to mount the pod's volumes so far (0: none pending).
        let mut mount_failures = 0;
        // When the running pod's volumes are next brought up to date.
        let mut next_sync: Option<tokio::time::Instant> = None;
        if worker.pod.metadata.deletion_timestamp.is_none() && worker.start().await == Started::MountPending {
            mount_failures = 1;
        }
        // Whether the pod was terminated by a graceful deletion.
        let deleted = loop {
            let current = updates.borrow_and_update().clone();
            match current {
                None => break false,
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    worker.pod = pod;
                    worker.terminate().await;
                    worker.finish_deletion().await;
                    break true;
                }
                Some(pod) => worker.pod = pod,
            }
            if mount_failures == 0 {
                // As the kubelet's periodic sync: what the volumes' ConfigMaps, Secrets and the
                // pod's own metadata say now is written into the running pod's volumes, on a
                // deadline of its own, so that changes to the pod (its status written) do not
                // put the sync off.
                let sync_at = worker.refreshable().then(|| {
                    *next_sync.get_or_insert_with(|| tokio::time::Instant::now() + worker.shared.config.sync_frequency)
                });
                let sync = async {
                    match sync_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = updates.changed() => if changed.is_err() { break false },
                    () = sync => {
                        worker.refresh_volumes().await;
                        next_sync = None;
                    }
                }
                continue;
            }
            tokio::select! {
                changed = updates.changed() => if changed.is_err() { break false },
                () = tokio::time::sleep(MOUNT_BACKOFF.delay(mount_failures)) => {
                    mount_failures = match worker.start().await {
                        Started::MountPending => mount_failures + 1,
                        Started::Done => 0,
                    };
                }
            }
        };
        if !deleted {
            // The pod left this node without a graceful deletion (the node shuts down, or the
            // object was removed at once): its hooks still run, within its grace period capped
            // at the node's, as the kubelet's graceful node shutdown does.
            let grace = worker.grace_period().min(SHUTDOWN_GRACE);
            worker.terminate_within(grace).await;
        }
        // Anything left.
        worker.stop_all(SHUTDOWN_GRACE).await;
        worker.teardown().await;
        status_task.abort();
    }

    fn notify(&self) {
        self.changed.notify_one();
    }

    /// Makes the sandbox and starts the containers; [`Started::MountPending`] when the pod's
    /// volumes cannot be mounted yet (to be tried again).
    async fn start(&mut self) -> Started {
        let (namespace, name, uid) = pod_name(&self.pod);
        let spec = self.pod.spec.clone().unwrap_or_default();
        if let Some(container) = spec.containers.iter().find(|c| c.command.as_deref().unwrap_or_default().is_empty()) {
            let message = no_command_message(container);
            {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                for record in state.record.containers.iter_mut() {
                    record.state =
                        State::Waiting { reason: "CreateContainerConfigError".into(), message: Some(message.clone()) };
                }
            }
            self.shared.events.record(
                &self.pod,
                Some(&container_path(&container.name)),
                "Warning",
                "Failed",
                &format!("Error: {message}"),
            );
            self.notify();
            return Started::Done;
        }
        let domain = &self.shared.config.cluster_domain;
        let names = PodHostname::of(&name, &namespace, &spec, domain)
            .and_then(|names| Ok((names.kernel_hostname(spec.set_hostname_as_fqdn == Some(true))?, names)));
        let (kernel_hostname, names) = match names {
            Ok(names) => names,
            Err(error) => {
                let message = format!("Failed to create pod sandbox: {error}");
                self.shared.events.record(&self.pod, None, "Warning", "FailedCreatePodSandBox", &message);
                return Started::Done;
            }
        };
        let node_dns = NodeDns {
            cluster_dns: self.shared.config.cluster_dns,
            cluster_domain: domain,
            node_resolver: self.shared.node_resolver.as_ref(),
        };
        let resolver = pod_resolver(&node_dns, &namespace, &spec);
        for warning in &resolver.warnings {
            self.shared.events.record(&self.pod, None, "Warning", "DNSConfigForming", warning);
        }
        let volumes = match self.volumes(&namespace).await.and_then(|volumes| {
            volumes::prepare_host_paths(&self.pod)?;
            Ok(volumes)
        }) {
            Ok(volumes) => volumes,
            Err(message) => {
                // The containers stay ContainerCreating, as the kubelet leaves them.
                self.shared.events.record(&self.pod, None, "Warning", "FailedMount", &message);
                self.notify();
                return Started::MountPending;
            }
        };
        let allocated = self.shared.ipam.lock().unwrap_or_else(PoisonError::into_inner).allocate();
        let ip = match allocated {
            Ok(ip) => ip,
            Err(error) => {
                self.shared.events.record(&self.pod, None, "Warning", "FailedCreatePodSandBox", &error.to_string());
                return Started::Done;
            }
        };
        self.ip = Some(ip);
        let config = SandboxConfig {
            name: format!("{namespace}/{name}"),
            hostname: kernel_hostname,
            ip,
            prefix_len: self.shared.config.pod_cidr.prefix_len,
            gateway: self.shared.config.pod_cidr.gateway(),
            bridge: self.shared.config.bridge.clone(),
            veth_host_name: frontdoor_netns::pod_veth_name(&veth_prefix(&self.shared.config), &uid),
            mtu: None,
            resolv_conf: resolver.config.render(),
            hosts: managed_hosts_file(ip, &names, spec.host_aliases.as_deref().unwrap_or_default()),
            volumes: volumes.clone(),
        };
        tracing::debug!(pod = %name, "creating sandbox");
        let created = self
            .shared
            .sandboxes
            .run(move |factory| factory.create(&config).map_err(|e| e.to_string()))
            .await
            .and_then(|made| made);
        tracing::debug!(pod = %name, "sandbox created");
        let sandbox = match created {
            Ok(sandbox) => Arc::new(sandbox),
            Err(error) => {
                self.shared.ipam.lock().unwrap_or_else(PoisonError::into_inner).release(ip);
                self.ip = None;
                self.shared.events.record(
                    &self.pod,
                    None,
                    "Warning",
                    "FailedCreatePodSandBox",
                    &format!("Failed to create pod sandbox: {error}"),
                );
                return Started::Done;
            }
        };
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.record.sandbox_ready = true;
            state.record.pod_ip = Some(ip.to_string());
        }
        // No status write for the sandbox alone: every container reports its first start
        // attempt, success or failure, a moment from now, and that write carries the sandbox
        // too (one write per pod rather than two).
        self.sandbox = Some(sandbox.clone());
        self.mounted = volumes;
        self.balance_connections(&sandbox).await;
        self.shared.access.insert(&uid, sandbox.clone());
        for container in spec.containers.iter().cloned() {
            let task = ContainerTask {
                shared: self.shared.clone(),
                pod: self.pod.clone(),
                container,
                sandbox: sandbox.clone(),
                state: self.state.clone(),
                changed: self.changed.clone(),
                ip,
            };
            tokio::spawn(task.run());
        }
        Started::Done
    }

    /// The pod's volumes with their files: the ConfigMaps and Secrets they name are read from the
    /// API, the token is the node's.
    async fn volumes(&self, namespace: &str) -> Result<Vec<frontdoor_netns::Volume>, String> {
        volumes::render(&self.pod, &self.volume_sources(namespace).await?)
    }

    /// What the pod's volumes name: its ConfigMaps and Secrets as the API has them now (those
    /// missing are left out), and the node's token.
    async fn volume_sources(&self, namespace: &str) -> Result<volumes::Sources, String> {
        let (config_maps, secrets) = volumes::referenced(&self.pod);
        let mut sources =
            volumes::Sources { token: self.shared.config.service_account_token.clone(), ..Default::default() };
        let api = Api::<ConfigMap>::namespaced(self.shared.client.clone(), namespace);
        for name in config_maps {
            if let Some(map) = api.get_opt(&name).await.map_err(|e| e.to_string())? {
                sources.config_maps.insert(name, map);
            }
        }
        let api = Api::<Secret>::namespaced(self.shared.client.clone(), namespace);
        for name in secrets {
            if let Some(secret) = api.get_opt(&name).await.map_err(|e| e.to_string())? {
                sources.secrets.insert(name, secret);
            }
        }
        Ok(sources)
    }

    /// Whether the running pod has volumes whose files can change (a ConfigMap's, a Secret's, the
    /// downward API's: not an `emptyDir`, which the pod alone writes, nor a `hostPath`, the
    /// node's own) mounted whole (a `subPath` mount keeps what it was bound to, as the kubelet's).
    fn refreshable(&self) -> bool {
        let whole_read_only = |volume: &frontdoor_netns::Volume| {
            volume.host_path.is_none() && volume.mounts.iter().any(|mount| mount.read_only && mount.sub_path.is_none())
        };
        self.sandbox.is_some() && self.mounted.iter().any(whole_read_only)
    }

    /// Renders the pod's volumes again and writes each that changed into the running pod, all
    /// of its files at once. A volume whose ConfigMap or Secret is gone now keeps its files (as
    /// the kubelet keeps them); the API out of reach leaves every volume for the next sync.
    async fn refresh_volumes(&mut self) {
        let Some(sandbox) = self.sandbox.clone() else { return };
        let (namespace, name, _) = pod_name(&self.pod);
        let sources = match self.volume_sources(&namespace).await {
            Ok(sources) => sources,
            Err(message) => {
                tracing::debug!(pod = %name, namespace, message, "volumes not refreshed");
                return;
            }
        };
        for rendered in volumes::render_each(&self.pod, &sources) {
            let volume = match rendered {
                Ok(volume) => volume,
                Err(message) => {
                    tracing::debug!(pod = %name, namespace, message, "volume not refreshed");
                    continue;
                }
            };
            let Some(position) = self.mounted.iter().position(|m| m.name == volume.name) else {
                continue;
            };
            if self.mounted[position].files == volume.files {
                continue;
            }
            let (sandbox, update) = (sandbox.clone(), volume.clone());
            let updated =
                tokio::task::spawn_blocking(move || sandbox.update_volume(&update).map_err(|e| e.to_string()))
                    .await
                    .unwrap_or_else(|joined| Err(joined.to_string()));
            match updated {
                Ok(()) => {
                    tracing::debug!(pod = %name, namespace, volume = volume.name, "volume refreshed");
                    self.mounted[position] = volume;
                }
                Err(error) => tracing::warn!(pod = %name, namespace, error, "refreshing a volume"),
            }
        }
    }

    /// Graceful stop, as the kubelet's: for each container at once, its preStop hook (if any)
    /// within the grace period, then SIGTERM, then SIGKILL when the grace left after the hook
    /// (at least two seconds) is over.
    async fn terminate(&mut self) {
        self.terminate_within(self.grace_period()).await;
    }

    /// The pod's grace period: its deletion's, else its spec's, else 30 s.
    fn grace_period(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30)
            .max(0);
        Duration::from_secs(seconds as u64)
    }

    /// [`PodWorker::terminate`] within `grace`.
    async fn terminate_within(&mut self, grace: Duration) {
        let running: Vec<(String, u32, HookTarget)> = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            // Nothing restarts from here on, not even a container that exits during its hook.
            state.stopping = true;
            state.running.iter().map(|(name, r)| (name.clone(), r.pid, r.hooks.clone())).collect()
        };
        for (name, _, _) in &running {
            self.shared.events.record(
                &self.pod,
                Some(&container_path(name)),
                "Normal",
                "Killing",
                &format!("Stopping container {name}"),
            );
        }
        let this = &*self;
        let containers = this.pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
        let stops = running.into_iter().map(|(name, pid, target)| async move {
            let mut left = grace;
            if let Some(container) = containers.iter().find(|c| c.name == name) {
                left = run_pre_stop(&this.shared, &this.pod, container, &target, grace).await;
            }
            let gone = || {
                let state = this.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.running.get(&name).is_none_or(|r| r.pid != pid)
            };
            stop_processes(&[pid], left, gone).await;
        });
        futures::future::join_all(stops).await;
        // Anything started meanwhile.
        self.stop_all(grace).await;
    }

    async fn stop_all(&self, grace: Duration) {
        let pids: Vec<u32> = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.stopping = true;
            state.running.values().map(|r| r.pid).collect()
        };
        let all_gone = || {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.running.is_empty() && state.starting == 0
        };
        stop_processes(&pids, grace, all_gone).await;
        // A start still under way kills its own process once it sees the pod stopping (the
        // launcher takes milliseconds); wait for that, so nothing outlives the pod or the node.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.state.lock().unwrap_or_else(PoisonError::into_inner).starting > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Puts the pod's network namespace in the connect-time balancer's scope (before any of its
    /// containers runs), so its connections to ClusterIPs go straight to an endpoint. Without
    /// it they still reach the Service, through the nftables rules.
    async fn balance_connections(&mut self, sandbox: &Arc<PodSandbox>) {
        let Some(scope) = self.shared.config.socket_lb_scope.clone() else { return };
        let sandbox = sandbox.clone();
        let cookie =
            tokio::task::spawn_blocking(move || sandbox.run_in_network(frontdoor_socket_lb::current_netns_cookie))
                .await
                .map_err(|e| e.to_string())
                .and_then(|inside| inside.map_err(|e| e.to_string()))
                .and_then(|cookie| cookie.map_err(|e| e.to_string()));
        match cookie.and_then(|cookie| scope.add(cookie).map(|()| cookie).map_err(|e| e.to_string())) {
            Ok(cookie) => self.balanced_netns = Some(cookie),
            Err(error) => {
                tracing::warn!(%error, pod = ?self.pod.metadata.name, "pod left out of connect-time balancing")
            }
        }
    }

    async fn teardown(&mut self) {
        if let (Some(cookie), Some(scope)) = (self.balanced_netns.take(), &self.shared.config.socket_lb_scope) {
            let _ = scope.remove(cookie);
        }
        if let Some(sandbox) = self.sandbox.take() {
            let _ = tokio::task::spawn_blocking(move || sandbox.destroy()).await;
        }
        if let Some(ip) = self.ip.take() {
            self.shared.ipam.lock().unwrap_or_else(PoisonError::into_inner).release(ip);
        }
        // Only now has the pod left the node: no sandbox, no address. (A command started in it
        // meanwhile finds its namespaces gone.)
        self.shared.access.remove(self.pod.metadata.uid.as_deref().unwrap_or_default());
    }

    /// The node's last word on a deleted pod: its processes are gone, so the object goes too.
    async fn finish_deletion(&mut self) {
        self.teardown().await;
        let (namespace, name, uid) = pod_name(&self.pod);
        let pods: Api<Pod> = Api::namespaced(self.shared.client.clone(), &namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
            ..Default::default()
        };
        // A write that lands between the server's read and its commit (this pod's last status
        // patch) makes a delete with a precondition a conflict, which the server does not retry:
        // try again while the object is still this pod, or the pod would stay Terminating.
        let backoff = Backoff { min: Duration::from_millis(50), max: Duration::from_secs(2) };
        for attempt in 1..=20 {
            let error = match pods.delete(&name, &params).await {
                Ok(_) => return,
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                Err(error) => error,
            };
            tracing::debug!(%error, pod = name, attempt, "final delete failed");
            match pods.get_opt(&name).await {
                Ok(Some(current)) if current.metadata.uid.as_deref() == Some(uid.as_str()) => {}
                // Gone, or another pod of that name now.
                Ok(_) => return,
                Err(_) => {}
            }
            tokio::time::sleep(backoff.delay(attempt)).await;
        }
        tracing::warn!(pod = name, "could not delete the stopped pod's object");
    }
}

/// Runs `container`'s preStop hook, if it has one and there is a grace period, for at most
/// `grace` (a `FailedPreStopHook` event if it fails); returns the grace left for SIGTERM.
async fn run_pre_stop(
    shared: &Shared,
    pod: &Pod,
    container: &Container,
    target: &HookTarget,
    grace: Duration,
) -> Duration {
    let Some(hook) = lifecycle_hooks::pre_stop(container).filter(|_| !grace.is_zero()) else { return grace };
    let started = std::time::Instant::now();
    let runner = HookRunner { launcher: &shared.launcher, pids: &shared.pids };
    match tokio::time::timeout(grace, runner.run(hook, container, pod, target)).await {
        Ok(Ok(())) => {}
        Ok(Err(message)) => {
            tracing::debug!(pod = pod.metadata.name.as_deref().unwrap_or(""), container = %container.name, %message, "preStop hook failed");
            // Upstream keeps the message out of the event (it may hold secrets).
            shared.events.record(
                pod,
                Some(&container_path(&container.name)),
                "Warning",
                "FailedPreStopHook",
                "PreStopHook failed",
            );
        }
        Err(_) => {
            tracing::debug!(pod = pod.metadata.name.as_deref().unwrap_or(""), container = %container.name, "preStop hook not completed in the grace period");
        }
    }
    lifecycle_hooks::grace_after_hook(grace, started.elapsed())
}

/// Sends SIGTERM to each process group, waits up to `grace` for `all_gone`, then SIGKILL.
async fn stop_processes(pids: &[u32], grace: Duration, all_gone: impl Fn() -> bool) {
    for pid in pids {
        let _ = frontdoor_netns::signal_process_group(*pid, Signal::Terminate);
    }
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline && !all_gone() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in pids {
        let _ = frontdoor_netns::signal_process_group(*pid, Signal::Kill);
    }
}

/// The node's resolv.conf at `path`, the base of pods' DNS. Where it names only
/// systemd-resolved's stub listener (127.0.0.53, which a pod's own network namespace cannot
/// reach), systemd-resolved's list of the real servers is read instead, as kubeadm configures the
/// kubelet. A file that cannot be read counts as empty, with a warning: pods of the cluster's DNS
/// lose only the node's search domains (the kubelet would refuse to start any pod).
fn read_node_resolver(path: &Path) -> ResolverConfig {
    const SYSTEMD_RESOLVED: &str = "/run/systemd/resolve/resolv.conf";
    let read = |path: &Path| match std::fs::read_to_string(path) {
        Ok(text) => Some(ResolverConfig::parse(&text)),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read the node's resolv.conf; pods get none of it");
            None
        }
    };
    let config = read(path).unwrap_or_default();
    let stub_only = !config.nameservers.is_empty()
        && config.nameservers.iter().all(|n| n.parse::<Ipv4Addr>().is_ok_and(|ip| ip == Ipv4Addr::new(127, 0, 0, 53)));
    if stub_only && Path::new(SYSTEMD_RESOLVED).exists() {
        return read(Path::new(SYSTEMD_RESOLVED)).unwrap_or(config);
    }
    config
}

/// Writes the pod's status whenever it changes (coalescing bursts).
async fn status_writer(shared: Arc<Shared>, pod: Pod, state: Arc<Mutex<PodState>>, changed: Arc<Notify>) {
    let (namespace, name, _) = pod_name(&pod);
    let pods = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"));
    // Transition times carry on from the status the pod came with, then from the last written.
    let initial = serde_json::to_value(pod.status.clone().unwrap_or_default()).unwrap_or_default();
    let mut written: Option<serde_json::Value> = None;
    loop {
        // Write each change as it comes; changes made while a write is under way are written
        // together by the next one (one stored wake-up stands for all of them).
        changed.notified().await;
        let status = {
            let state = state.lock().unwrap_or_else(PoisonError::into_inner);
            pod_status(&state.record, written.as_ref().unwrap_or(&initial), Utc::now())
        };
        if written.as_ref().is_some_and(|w| same_status(&status, w)) {
            continue;
        }
        let mut patch = json!({"status": status});
        // The answer (the stored pod) is not needed, only whether the write was taken.
        let result = match pods.patch_subresource("status", &name, &PatchParams::default(), &Patch::Merge(&patch)) {
            Ok(request) => shared.client.request_text(request).await.map(drop),
            Err(error) => Err(kube::Error::BuildRequest(error)),
        };
        match result {
            Ok(()) => {
                tracing::debug!(pod = %name, phase = %patch["status"]["phase"], "status written");
                written = Some(patch["status"].take());
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(error) => {
                tracing::debug!(%error, pod = name, "status update failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                changed.notify_one();
            }
        }
    }
}

/// One container's life: start, probe, restart, until the pod stops.
struct ContainerTask {
    shared: Arc<Shared>,
    pod: Pod,
    container: Container,
    sandbox: Arc<PodSandbox>,
    state: Arc<Mutex<PodState>>,
    changed: Arc<Notify>,
    ip: Ipv4Addr,
}

enum Exit {
    Code(i32),
    Signal(i32),
}

impl ContainerTask {
    fn update(&self, f: impl FnOnce(&mut ContainerRecord)) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(record) = state.record.containers.iter_mut().find(|c| c.name == self.container.name) {
            f(record);
        }
        drop(state);
        self.changed.notify_one();
    }

    fn stopping(&self) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).stopping
    }

    fn event(&self, kind: &str, reason: &str, message: &str) {
        self.shared.events.record(&self.pod, Some(&container_path(&self.container.name)), kind, reason, message);
    }

    fn environment(&self) -> Result<Vec<(String, String)>, String> {
        let services = self.shared.services.state();
        let mut pod = self.pod.clone();
        let status = pod.status.get_or_insert_with(Default::default);
        status.pod_ip = Some(self.ip.to_string());
        status.host_ip = Some(self.shared.config.node_ip.to_string());
        let mut env = container_environment(&pod, &self.container, &services, &|_, _, _| None)?;
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            let hostname =
                pod.spec.as_ref().and_then(|s| s.hostname.clone()).or(pod.metadata.name.clone()).unwrap_or_default();
            env.insert(0, ("HOSTNAME".into(), hostname));
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.insert(0, ("PATH".into(), frontdoor_netns::DEFAULT_PATH.into()));
        }
        Ok(env)
    }

    async fn run(self) {
        let (namespace, name, uid) = pod_name(&self.pod);
        let policy = self.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
        // Continue the numbering of earlier runs, so `--previous` spans node restarts.
        let mut attempt = self.shared.logs.next_attempt(&namespace, &name, &uid, &self.container.name);
        loop {
            if self.stopping() {
                return;
            }
            let env = match self.environment() {
                Ok(env) => Arc::new(env),
                Err(message) => {
                    self.update(|r| {
                        r.state = State::Waiting {
                            reason: "CreateContainerConfigError".into(),
                            message: Some(message.clone()),
                        }
                    });
                    self.event("Warning", "Failed", &format!("Error: {message}"));
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            let mut argv: Vec<String> = self.container.command.clone().unwrap_or_default();
            argv.extend(self.container.args.clone().unwrap_or_default());
            let argv: Vec<String> = argv.iter().map(|a| crate::env::expand(a, &env)).collect();
            let log_path = self.shared.logs.file(&namespace, &name, &uid, &self.container.name, attempt);
            let working_dir: Option<std::path::PathBuf> = self.container.working_dir.clone().map(Into::into);
            self.shared.access.container_started(&uid, &self.container.name, env.clone(), working_dir.clone());
            let mut spec = ProcessSpec::new(argv);
            spec.env = env.as_ref().clone();
            spec.working_dir = working_dir.clone();
            spec.stdout = std::process::Stdio::piped();
            spec.stderr = std::process::Stdio::piped();
            let started_at = Utc::now();
            {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if state.stopping {
                    return;
                }
                state.starting += 1;
            }
            let (shared, sandbox) = (self.shared.clone(), self.sandbox.clone());
            let started = self.shared.launcher.run(move |launcher| {
                let child = launcher.spawn(&sandbox, spec).map_err(|e| e.to_string())?;
                if let Some(pid) = child.id() {
                    shared.pids.record(pid);
                }
                Ok(child)
            });
            let started = started.await.and_then(|started| started);
            let stopping = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.starting -= 1;
                if let Ok(child) = &started {
                    let hooks =
                        HookTarget { sandbox: self.sandbox.clone(), ip: self.ip, env: env.clone(), working_dir };
                    state.running.insert(self.container.name.clone(), Running { pid: child.id().unwrap_or(0), hooks });
                }
                state.stopping
            };
            let mut child = match started {
                Ok(started) => started,
                Err(message) => {
                    let finished = Utc::now();
                    self.update(|r| {
                        r.last_state = Some(State::Terminated {
                            exit_code: 128,
                            signal: None,
                            reason: "StartError".into(),
                            message: Some(message.clone()),
                            started_at: None,
                            finished_at: finished,
                        });
                        r.ready = false;
                        r.started = false;
                    });
                    self.event("Warning", "Failed", &format!("Error: {message}"));
                    if !self.wait_restart(&policy, false, &mut attempt).await {
                        return;
                    }
                    continue;
                }
            };
            let pid = child.id().unwrap_or(0);
            if let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) {
                tokio::spawn(capture(out, err, log_path.clone()));
            }
            if stopping {
                // The pod began to stop while this start was under way, after its processes
                // were counted: left alone, this one would outlive the pod (and the node).
                let _ = frontdoor_netns::signal_process_group(pid, Signal::Kill);
            }
            let container_id = crate::logs::container_id(&uid, &self.container.name, attempt);
            // As the kubelet: `Started`, then the postStart hook, and only then Running.
            self.event("Normal", "Started", &format!("Started container {}", self.container.name));
            let hooks = HookTarget {
                sandbox: self.sandbox.clone(),
                ip: self.ip,
                env: env.clone(),
                working_dir: self.container.working_dir.clone().map(Into::into),
            };
            // Killed by the node (a failed liveness probe or postStart hook): never a success.
            let mut killed = false;
            let exit = match self.post_start(&mut child, pid, &hooks).await {
                Some((exit, by_node)) => {
                    killed = by_node;
                    exit
                }
                None => self.serve(&mut child, pid, started_at, &container_id, env, &hooks, &mut killed).await,
            };
            self.state.lock().unwrap_or_else(PoisonError::into_inner).running.remove(&self.container.name);
            let exit = match exit {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (status.code(), status.signal()) {
                        (Some(code), _) => Exit::Code(code),
                        (None, Some(signal)) => Exit::Signal(signal),
                        _ => Exit::Code(0),
                    }
                }
                Err(_) => Exit::Code(1),
            };
            let (exit_code, signal) = match exit {
                Exit::Code(code) => (code, None),
                Exit::Signal(signal) => (128 + signal, Some(signal)),
            };
            let finished_at = Utc::now();
            let reason = if exit_code == 0 { "Completed" } else { "Error" };
            let terminated = State::Terminated {
                exit_code,
                signal,
                reason: reason.into(),
                message: None,
                started_at: Some(started_at),
                finished_at,
            };
            self.update(|r| {
                r.state = terminated.clone();
                r.ready = false;
                r.started = false;
            });
            if self.stopping() {
                return;
            }
            let succeeded = exit_code == 0 && !killed;
            self.update(|r| r.last_state = Some(terminated.clone()));
            if !self.wait_restart(&policy, succeeded, &mut attempt).await {
                return;
            }
        }
    }

    /// The pod's termination grace period, which a container the node kills gets too.
    fn grace(&self) -> Duration {
        let seconds = self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
        Duration::from_secs(seconds.max(0) as u64)
    }

    /// Runs the container's postStart hook, if it has one, while watching the container. `None`:
    /// the hook ran (or there is none) and the container runs on. Else how the container ended
    /// during the hook, and whether the node killed it: a failed hook records
    /// `FailedPostStartHook` and stops the container (SIGTERM, SIGKILL after the grace period).
    async fn post_start(
        &self,
        child: &mut tokio::process::Child,
        pid: u32,
        hooks: &HookTarget,
    ) -> Option<(std::io::Result<std::process::ExitStatus>, bool)> {
        let hook = lifecycle_hooks::post_start(&self.container)?;
        let runner = HookRunner { launcher: &self.shared.launcher, pids: &self.shared.pids };
        let outcome = tokio::select! {
            outcome = runner.run(hook, &self.container, &self.pod, hooks) => outcome,
            status = child.wait() => return Some((status, false)),
        };
        let message = outcome.err()?;
        self.event("Warning", "FailedPostStartHook", &message);
        self.event("Normal", "Killing", "FailedPostStartHook");
        let _ = frontdoor_netns::signal_process_group(pid, Signal::Terminate);
        let status = match tokio::time::timeout(self.grace(), child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                let _ = frontdoor_netns::signal_process_group(pid, Signal::Kill);
                child.wait().await
            }
        };
        Some((status, true))
    }

    /// The started container, Running and probed until it exits, or until its liveness probe
    /// fails: then the node stops it as the kubelet does (preStop hook, SIGTERM, SIGKILL after
    /// the grace period) and sets `killed`.
    #[allow(clippy::too_many_arguments)]
    async fn serve(
        &self,
        child: &mut tokio::process::Child,
        pid: u32,
        started_at: chrono::DateTime<Utc>,
        container_id: &str,
        env: Arc<Vec<(String, String)>>,
        hooks: &HookTarget,
        killed: &mut bool,
    ) -> std::io::Result<std::process::ExitStatus> {
        let has_startup = self.container.startup_probe.is_some();
        let has_readiness = self.container.readiness_probe.is_some();
        self.update(|r| {
            r.state = State::Running { started_at };
            r.container_id = Some(container_id.to_string());
            r.started = !has_startup;
            r.ready = !has_startup && !has_readiness;
        });

        let (kill_sender, mut kill_receiver) = tokio::sync::mpsc::channel::<String>(1);
        let target = ProbeTarget { sandbox: self.sandbox.clone(), ip: self.ip, env };
        let probes = tokio::spawn(probe_loop(
            self.shared.clone(),
            self.pod.clone(),
            self.container.clone(),
            target,
            self.state.clone(),
            self.changed.clone(),
            kill_sender,
        ));
        let exit = tokio::select! {
            status = child.wait() => status,
            Some(message) = kill_receiver.recv() => {
                *killed = true;
                self.event("Normal", "Killing", &format!("Container {} failed liveness probe, will be restarted", self.container.name));
                let _ = message;
                let left = run_pre_stop(&self.shared, &self.pod, &self.container, hooks, self.grace()).await;
                stop_processes(&[pid], left, || false).await;
                child.wait().await
            }
        };
        probes.abort();
        exit
    }

    /// Decides whether to restart and waits the back-off. False: the container stays stopped.
    async fn wait_restart(&self, policy: &str, succeeded: bool, attempt: &mut u32) -> bool {
        let restart = match policy {
            "Never" => false,
            "OnFailure" => !succeeded,
            _ => true,
        };
        if !restart {
            // The terminated state stays as the current state.
            self.update(|r| {
                if let Some(last) = r.last_state.take() {
                    if matches!(r.state, State::Waiting { .. }) {
                        r.state = last;
                    }
                }
            });
            return false;
        }
        *attempt += 1;
        let restarts = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let record = state.record.containers.iter_mut().find(|c| c.name == self.container.name);
            record
                .map(|r| {
                    r.restart_count += 1;
                    r.restart_count
                })
                .unwrap_or(1)
        };
        let delay = self.shared.backoff.delay(restarts);
        let (_, name, _) = pod_name(&self.pod);
        let message = format!(
            "back-off {} restarting failed container={} pod={name}_{}({})",
            humantime(delay),
            self.container.name,
            self.pod.metadata.namespace.as_deref().unwrap_or(""),
            self.pod.metadata.uid.as_deref().unwrap_or("")
        );
        self.update(|r| r.state = State::Waiting { reason: "CrashLoopBackOff".into(), message: Some(message.clone()) });
        self.event("Warning", "BackOff", "Back-off restarting failed container");
        let deadline = tokio::time::Instant::now() + delay;
        while tokio::time::Instant::now() < deadline {
            if self.stopping() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        !self.stopping()
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}m0s", s / 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Where a container's probes run: its sandbox, its address, and (for exec probes) its
/// environment, as exec probes run inside the container.
#[derive(Clone)]
struct ProbeTarget {
    sandbox: Arc<PodSandbox>,
    ip: Ipv4Addr,
    env: Arc<Vec<(String, String)>>,
}

/// Runs the container's startup, liveness and readiness probes; readiness flips the container's
/// `ready`; a liveness failure asks the container task to restart it.
async fn probe_loop(
    shared: Arc<Shared>,
    pod: Pod,
    container: Container,
    target: ProbeTarget,
    state: Arc<Mutex<PodState>>,
    changed: Arc<Notify>,
    kill: tokio::sync::mpsc::Sender<String>,
) {
    let set = |f: &dyn Fn(&mut ContainerRecord)| {
        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = s.record.containers.iter_mut().find(|c| c.name == container.name) {
            f(r);
        }
        drop(s);
        changed.notify_one();
    };
    if let Some(probe) = container.startup_probe.clone() {
        let mut tracker = Tracker::new(Kind::Startup, &probe);
        tokio::time::sleep(probes::initial_delay(&probe)).await;
        loop {
            let outcome = check(&shared, &probe, &container, &target).await;
            tracker.record(outcome == Outcome::Success);
            if tracker.healthy {
                break;
            }
            if let Outcome::Failure(m) = &outcome {
                shared.events.record(
                    &pod,
                    Some(&container_path(&container.name)),
                    "Warning",
                    "Unhealthy",
                    &format!("Startup probe failed: {m}"),
                );
            }
            if tracker.failed() {
                let _ = kill.send("startup probe failed".into()).await;
                return;
            }
            tokio::time::sleep(probes::period(&probe)).await;
        }
        set(&|r| {
            r.started = true;
            if container.readiness_probe.is_none() {
                r.ready = true;
            }
        });
    }
    let mut tasks = Vec::new();
    if let Some(probe) = container.readiness_probe.clone() {
        let (state, changed, name) = (state.clone(), changed.clone(), container.name.clone());
        let on_change = move |ready: bool| {
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(r) = s.record.containers.iter_mut().find(|c| c.name == name) {
                r.ready = ready;
            }
            drop(s);
            changed.notify_one();
            true
        };
        tasks.push(tokio::spawn(run_probe(
            shared.clone(),
            pod.clone(),
            container.clone(),
            target.clone(),
            probe,
            Kind::Readiness,
            on_change,
        )));
    }
    if let Some(probe) = container.liveness_probe.clone() {
        let on_change = move |healthy: bool| {
            if !healthy {
                let _ = kill.try_send("liveness probe failed".into());
            }
            healthy
        };
        tasks.push(tokio::spawn(run_probe(
            shared.clone(),
            pod.clone(),
            container.clone(),
            target.clone(),
            probe,
            Kind::Liveness,
            on_change,
        )));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Runs one readiness or liveness probe on its schedule, recording `Unhealthy` events, and tells
/// `on_change` each new verdict; it stops when `on_change` returns false.
async fn run_probe(
    shared: Arc<Shared>,
    pod: Pod,
    container: Container,
    target: ProbeTarget,
    probe: k8s_openapi::api::core::v1::Probe,
    kind: Kind,
    mut on_change: impl FnMut(bool) -> bool + Send,
) {
    let label = match kind {
        Kind::Readiness => "Readiness",
        Kind::Liveness => "Liveness",
        Kind::Startup => "Startup",
    };
    let mut tracker = Tracker::new(kind, &probe);
    tokio::time::sleep(probes::initial_delay(&probe)).await;
    let mut ticker = tokio::time::interval(probes::period(&probe));
    loop {
        ticker.tick().await;
        let outcome = check(&shared, &probe, &container, &target).await;
        if let Outcome::Failure(m) = &outcome {
            shared.events.record(
                &pod,
                Some(&container_path(&container.name)),
                "Warning",
                "Unhealthy",
                &format!("{label} probe failed: {m}"),
            );
        }
        if tracker.record(outcome == Outcome::Success) && !on_change(tracker.healthy) {
            return;
        }
    }
}

/// One check of a probe against this container.
async fn check(
    shared: &Shared,
    probe: &k8s_openapi::api::core::v1::Probe,
    container: &Container,
    target: &ProbeTarget,
) -> Outcome {
    let ip = target.ip;
    let limit = probes::timeout(probe);
    if let Some(http) = &probe.http_get {
        let Some(port) = probes::resolve_port(&http.port, container) else {
            return Outcome::Failure("unknown port".into());
        };
        let headers: Vec<(String, String)> = http
            .http_headers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        return probes::http_check(IpAddr::V4(ip), port, http.path.as_deref().unwrap_or("/"), &headers, limit).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = probes::resolve_port(&tcp.port, container) else {
            return Outcome::Failure("unknown port".into());
        };
        return probes::tcp_check(IpAddr::V4(ip), port, limit).await;
    }
    if let Some(exec) = &probe.exec {
        let argv = exec.command.clone().unwrap_or_default();
        let mut spec = ProcessSpec::new(argv.clone());
        spec.env = target.env.as_ref().clone();
        spec.working_dir = container.working_dir.clone().map(Into::into);
        let sandbox = target.sandbox.clone();
        let started = shared.launcher.run(move |launcher| launcher.spawn(&sandbox, spec)).await;
        let Ok(Ok(mut child)) = started else { return Outcome::Failure(format!("exec {argv:?}: could not start")) };
        return match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(status)) if status.success() => Outcome::Success,
            Ok(Ok(status)) => Outcome::Failure(format!("command {argv:?} exited with {}", status.code().unwrap_or(-1))),
            Ok(Err(e)) => Outcome::Failure(e.to_string()),
            Err(_) => {
                if let Some(pid) = child.id() {
                    let _ = frontdoor_netns::signal_process_group(pid, Signal::Kill);
                }
                Outcome::Failure(format!("command {argv:?} timed out"))
            }
        };
    }
    Outcome::Success
}
