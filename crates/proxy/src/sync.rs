//! The sync loop: model changes → rendered fragments → one batch → the kernel.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use frontdoor_informers::{on_change, Backoff, Change, InformerFactory, MinInterval};
use frontdoor_netfilter::conntrack::FlowFilter;
use frontdoor_proxy_model::{Protocol, ProxyModel, ResolvedPort, ServiceKey};
use frontdoor_socket_lb::SocketBalancer;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::Notify;

use crate::health::HealthChecks;
use crate::metrics::ProxyMetrics;
use crate::programmed::Programmed;
use crate::render::{render_service, RenderConfig};
use crate::writer::Writer;

/// How the proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// This node: endpoints on it are local (`Local` traffic policies, health checks).
    pub node_name: String,
    /// The nftables table (family `ip`) the rules live in.
    pub table: String,
    pub render: RenderConfig,
    /// The shortest time between two syncs: changes arriving meanwhile are applied together
    /// (kube-proxy's `--min-sync-period`).
    pub min_sync_period: Duration,
    /// kube-proxy's metrics address (`127.0.0.1:10249`), or none.
    pub metrics_address: Option<SocketAddr>,
    /// kube-proxy's health address (`0.0.0.0:10256`), or none.
    pub healthz_address: Option<SocketAddr>,
    /// Remove the table when the proxy stops (the node is going away with its pods).
    pub remove_table_on_exit: bool,
    /// The connect-time balancer, when it could be attached: TCP ClusterIP ports it holds are
    /// balanced at `connect()` by the node's and pods' sockets themselves (see `socket_lb`).
    pub socket_lb: Option<Arc<Mutex<SocketBalancer>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot program nftables (is this root, with nf_tables?): {0}")]
    Netfilter(#[from] std::io::Error),
}

/// The EndpointSlice annotation carrying the time of the change that triggered it.
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// State shared between the informer handlers and the sync loop.
struct Inputs {
    model: ProxyModel,
    /// Earliest unsynced trigger time per Service (network programming latency).
    triggers: HashMap<ServiceKey, SystemTime>,
}

/// Runs the proxy until the factory's shutdown.
pub async fn run(factory: InformerFactory, config: ProxyConfig) -> Result<(), ProxyError> {
    let writer = Writer::start()?;
    let metrics = ProxyMetrics::register(factory.metrics());
    if let Some(balancer) = &config.socket_lb {
        crate::socket_lb::register_metrics(factory.metrics(), balancer);
    }
    let shutdown = factory.shutdown();
    let inputs = Arc::new(Mutex::new(Inputs { model: ProxyModel::new(&config.node_name), triggers: HashMap::new() }));
    let wake = Arc::new(Notify::new());
    let services = factory.all::<Service>();
    let slices = factory.all::<EndpointSlice>();
    {
        let (inputs, wake, metrics) = (inputs.clone(), wake.clone(), metrics.clone());
        on_change(services.subscribe(), &shutdown, move |change| {
            let mut inputs = inputs.lock().unwrap_or_else(PoisonError::into_inner);
            match change {
                Change::Applied { new, .. } => inputs.model.apply_service(&new),
                Change::Deleted(old) => inputs.model.delete_service(
                    old.metadata.namespace.as_deref().unwrap_or_default(),
                    old.metadata.name.as_deref().unwrap_or_default(),
                ),
            }
            metrics.service_changes.inc();
            wake.notify_one();
        });
    }
    {
        let (inputs, wake, metrics) = (inputs.clone(), wake.clone(), metrics.clone());
        on_change(slices.subscribe(), &shutdown, move |change| {
            let mut inputs = inputs.lock().unwrap_or_else(PoisonError::into_inner);
            match change {
                Change::Applied { old, new } => {
                    let trigger = trigger_time(&new);
                    if trigger.is_some() && old.as_deref().and_then(trigger_time) != trigger {
                        if let (Some(trigger), Some(service)) = (trigger, service_of(&new)) {
                            let earliest = inputs.triggers.entry(service).or_insert(trigger);
                            *earliest = (*earliest).min(trigger);
                        }
                    }
                    inputs.model.apply_slice(&new);
                }
                Change::Deleted(old) => inputs.model.delete_slice(
                    old.metadata.namespace.as_deref().unwrap_or_default(),
                    old.metadata.name.as_deref().unwrap_or_default(),
                ),
            }
            metrics.endpoint_changes.inc();
            wake.notify_one();
        });
    }
    let healthy = Arc::new(AtomicBool::new(false));
    if let Some(address) = config.healthz_address {
        tokio::spawn(crate::health::serve_healthz(address, healthy.clone(), shutdown.clone()));
    }
    if let Some(address) = config.metrics_address {
        tokio::spawn(crate::health::serve_metrics(address, factory.metrics().clone(), shutdown.clone()));
    }
    // Nothing is programmed from a partial picture.
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => return Ok(()),
        () = async { tokio::join!(services.synced(), slices.synced()); } => {}
    }
    let mut syncer = Syncer {
        config: config.clone(),
        writer: writer.clone(),
        metrics,
        programmed: None,
        resolved: HashMap::new(),
        health: HealthChecks::default(),
        healthy: healthy.clone(),
    };
    let backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(5) };
    let mut failures = 0u32;
    let mut pace = MinInterval::new(config.min_sync_period);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = pace.ready() => {}
        }
        match syncer.sync(&inputs).await {
            Ok(()) => failures = 0,
            Err(()) => {
                failures += 1;
                let delay = backoff.delay(failures);
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        }
        // Chains flushed by this sync are deleted by a later one.
        let cleanup = syncer.programmed.as_ref().is_some_and(Programmed::has_pending_cleanup);
        tokio::select! {
            () = &mut stop => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)), if cleanup => {}
        }
    }
    syncer.health.stop();
    if config.remove_table_on_exit {
        let mut batch = frontdoor_netfilter::Batch::new(frontdoor_netfilter::Family::Ipv4);
        batch.delete_table(&config.table);
        if let Err(error) = writer.apply(batch).await {
            tracing::warn!(%error, "removing the proxy's table");
        }
    }
    Ok(())
}

fn trigger_time(slice: &EndpointSlice) -> Option<SystemTime> {
    let text = slice.metadata.annotations.as_ref()?.get(TRIGGER_TIME)?;
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(SystemTime::from(time.with_timezone(&chrono::Utc)))
}

fn service_of(slice: &EndpointSlice) -> Option<ServiceKey> {
    let name = slice.metadata.labels.as_ref()?.get(frontdoor_informers::labels::SERVICE_NAME)?;
    Some(ServiceKey::new(slice.metadata.namespace.clone().unwrap_or_default(), name.clone()))
}

struct Syncer {
    config: ProxyConfig,
    writer: Writer,
    metrics: ProxyMetrics,
    /// `None`: the next sync is a full one.
    programmed: Option<Programmed>,
    /// What each Service resolved to at its last successful sync.
    resolved: HashMap<ServiceKey, Vec<ResolvedPort>>,
    health: HealthChecks,
    healthy: Arc<AtomicBool>,
}

impl Syncer {
    async fn sync(&mut self, inputs: &Mutex<Inputs>) -> Result<(), ()> {
        let started = Instant::now();
        let full = self.programmed.is_none();
        // Resolve and render under the lock (pure and quick); apply without it.
        let (changed, triggers) = {
            let mut inputs = inputs.lock().unwrap_or_else(PoisonError::into_inner);
            let mut changed: Vec<ServiceKey> = inputs.model.take_changed().into_iter().collect();
            if full {
                let all: HashSet<ServiceKey> =
                    inputs.model.services().cloned().chain(self.resolved.keys().cloned()).collect();
                changed = all.into_iter().collect();
            }
            let resolved: Vec<(ServiceKey, Vec<ResolvedPort>)> =
                changed.into_iter().map(|key| (key.clone(), inputs.model.resolve(&key))).collect();
            let triggers: Vec<SystemTime> =
                resolved.iter().filter_map(|(key, _)| inputs.triggers.remove(key)).collect();
            (resolved, triggers)
        };
        if changed.is_empty() && !full && !self.programmed.as_ref().is_some_and(Programmed::has_pending_cleanup) {
            return Ok(());
        }
        let fragments = changed.iter().map(|(key, ports)| (key.clone(), render_service(ports, &self.config.render)));
        let (state, plan) = if full {
            let (state, plan) = Programmed::full(&self.config.table, &self.config.render, fragments);
            (Some(state), plan)
        } else {
            let changes = fragments.map(|(key, fragment)| (key, Some(fragment))).collect();
            let programmed = self.programmed.as_mut().expect("a partial sync has programmed state");
            (None, programmed.plan(changes, Instant::now()))
        };
        let result = self.writer.apply(plan.batch).await;
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics.sync_duration.observe(elapsed);
        if let Err(error) = result {
            tracing::error!(%error, full, "nftables sync failed; the next sync is a full one");
            self.metrics.sync_failures.inc();
            self.programmed = None;
            self.healthy.store(false, Ordering::Relaxed);
            // The changes are not lost: the full sync renders every Service again.
            return Err(());
        }
        if full {
            self.metrics.full_sync_duration.observe(elapsed);
            self.programmed = state;
            tracing::info!(services = changed.len(), seconds = elapsed, "nftables full sync");
        } else {
            self.metrics.partial_sync_duration.observe(elapsed);
        }
        tracing::debug!(
            services = changed.len(),
            added = plan.elements_added,
            removed = plan.elements_removed,
            seconds = elapsed,
            "nftables sync"
        );
        let now = SystemTime::now();
        for trigger in triggers {
            if let Ok(latency) = now.duration_since(trigger) {
                self.metrics.network_programming.observe(latency.as_secs_f64());
            }
        }
        self.metrics.last_sync.set(now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0));
        self.healthy.store(true, Ordering::Relaxed);
        // Conntrack: UDP flows to endpoints that are gone would keep clients on them.
        let mut flush = Vec::new();
        for (key, ports) in &changed {
            let before = self.resolved.get(key).map(Vec::as_slice).unwrap_or_default();
            flush.extend(stale_udp_flows(before, ports));
        }
        self.writer.flush_udp(flush);
        if let Some(balancer) = &self.config.socket_lb {
            for (key, ports) in &changed {
                let before = self.resolved.get(key).map(Vec::as_slice).unwrap_or_default();
                crate::socket_lb::reconcile(balancer, before, ports, self.config.render.node_local_dns);
            }
        }
        for (key, ports) in changed {
            if ports.is_empty() {
                self.resolved.remove(&key);
            } else {
                self.resolved.insert(key, ports);
            }
        }
        self.after_sync().await;
        Ok(())
    }

    /// Health-check NodePorts and the no-local-endpoint gauges, from every Service.
    async fn after_sync(&mut self) {
        let mut wanted = HashMap::new();
        let (mut internal, mut external) = (0, 0);
        for ports in self.resolved.values() {
            for resolved in ports {
                if resolved.port.internal_local && resolved.internal.is_empty() {
                    internal += 1;
                }
                if resolved.port.external_local && resolved.external.is_empty() {
                    external += 1;
                }
                if let Some(port) = resolved.port.health_check_node_port {
                    wanted.insert(port, (resolved.port.service.clone(), resolved.local_ready));
                }
            }
        }
        self.metrics.set_no_local_endpoints(internal, external);
        self.health.reconcile(&wanted, &self.healthy).await;
    }
}

/// UDP flows to flush after a Service changed from `before` to `after`: those answered by an
/// endpoint that no longer serves the port, and those to a frontend that had no endpoint (its
/// packets were refused, and the flow would keep refusing them).
fn stale_udp_flows(before: &[ResolvedPort], after: &[ResolvedPort]) -> Vec<FlowFilter> {
    let mut flows = Vec::new();
    for old in before.iter().filter(|p| p.port.protocol == Protocol::Udp) {
        let new = after.iter().find(|p| p.port.name == old.port.name && p.port.protocol == old.port.protocol);
        let still = |ip, port| {
            new.is_some_and(|n| n.internal.iter().chain(n.external.iter()).any(|e| e.ip == ip && e.port == port))
        };
        for endpoint in old.internal.iter().chain(old.external.iter()) {
            if !still(endpoint.ip, endpoint.port) {
                flows.push(FlowFilter {
                    original_destination: None,
                    reply_source: Some((endpoint.ip, Some(endpoint.port))),
                });
            }
        }
        if let Some(new) = new {
            if old.internal.is_empty() && !new.internal.is_empty() {
                flows.push(FlowFilter {
                    original_destination: Some((new.port.cluster_ip, Some(new.port.port))),
                    reply_source: None,
                });
            }
        }
    }
    flows.sort_by_key(|f| format!("{f:?}"));
    flows.dedup_by_key(|f| format!("{f:?}"));
    flows
}
