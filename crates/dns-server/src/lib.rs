//! Cluster DNS served. The pure core (`frontdoor-dns`) knows names and bytes; this crate keeps
//! its index up to date from the shared informers (Namespaces, Services, EndpointSlices, Pods),
//! swaps each new build in atomically (queries never wait on the API or on a writer), answers
//! over UDP and TCP on the node, forwards other names to the upstream resolvers, and keeps the
//! `kube-dns` Service (kube-system, the cluster DNS address) pointing at it.
//!
//! It records CoreDNS's metrics (`coredns_dns_requests_total`, `coredns_dns_responses_total`,
//! `coredns_dns_request_duration_seconds`) and serves them on port 9153 of the node address,
//! with `/health` and `/ready` on a loopback port.
//!
//! Forwarded answers are cached as CoreDNS's `cache` plugin keeps them (`coredns_cache_*`
//! metrics); an ExternalName's target is looked up (in the index, else upstream) and its answers
//! follow the CNAME, as CoreDNS's `Upstream.Lookup`. Only loopback, the node's own addresses and
//! the pod ranges are served: the server is not an open resolver.
#![forbid(unsafe_code)]

mod batch;
mod kube_dns;
mod metrics;
mod serve;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use frontdoor_dns::{CacheConfig, Cidr, ClusterIndex, ForwardCache, IndexBuilder, IndexConfig};
use frontdoor_informers::{feed, InformerFactory};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::Notify;

/// How cluster DNS runs.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    pub index: IndexConfig,
    /// The cluster DNS address (`--cluster-dns`): the `kube-dns` Service's ClusterIP.
    pub cluster_dns: Ipv4Addr,
    /// The node address the server listens on (port 53, UDP and TCP); the `kube-dns` Service's
    /// endpoint.
    pub listen: Ipv4Addr,
    /// Whether the server answers on the cluster DNS address itself too, the node having made
    /// it its own (a local route; the proxy leaves its port 53 untracked), as NodeLocal
    /// DNSCache does: pods' queries then reach the server without the Service's DNAT. Until the
    /// address is the node's, the server waits for it as for the node address.
    pub serve_cluster_dns: bool,
    /// This node's name, for the `kube-dns` EndpointSlice.
    pub node_name: String,
    /// Where names outside the cluster go (`--dns-upstream`, else the node's resolv.conf).
    pub upstreams: Vec<SocketAddr>,
    /// The least time between two index builds: a change after a quiet spell is built at once,
    /// changes within this time of a build are built together after it.
    pub min_rebuild: Duration,
    /// Where `/health` and `/ready` answer (a loopback port; `/metrics` is on the listen
    /// address's port 9153, as CoreDNS's).
    pub health_address: SocketAddr,
    /// The clients served besides loopback and this machine's own addresses (the pod ranges);
    /// others get REFUSED.
    pub allowed_clients: Vec<Cidr>,
    /// The forward cache's sizes and lifetimes.
    pub cache: CacheConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
}

/// Upstream resolvers from a resolv.conf text (`nameserver` lines, port 53).
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Runs cluster DNS until the factory's shutdown.
pub async fn run(factory: InformerFactory, config: DnsConfig) -> Result<(), DnsError> {
    let shutdown = factory.shutdown();
    let builder = Arc::new(Mutex::new(IndexBuilder::new(config.index.clone())));
    let changed = Arc::new(Notify::new());
    feed::<Namespace, _, _, _>(
        &factory,
        &builder,
        &changed,
        |b, ns| b.apply_namespace(ns),
        |b, _, name| b.remove_namespace(name),
    );
    feed::<Service, _, _, _>(
        &factory,
        &builder,
        &changed,
        |b, s| b.apply_service(s),
        |b, ns, name| b.remove_service(ns, name),
    );
    feed::<EndpointSlice, _, _, _>(
        &factory,
        &builder,
        &changed,
        |b, s| b.apply_slice(s),
        |b, ns, name| b.remove_slice(ns, name),
    );
    feed::<Pod, _, _, _>(&factory, &builder, &changed, |b, p| b.apply_pod(p), |b, ns, name| b.remove_pod(ns, name));
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    // Nothing is answered from a partial picture.
    tokio::select! {
        () = &mut stop => return Ok(()),
        () = async {
            tokio::join!(
                factory.all::<Namespace>().synced(),
                factory.all::<Service>().synced(),
                factory.all::<EndpointSlice>().synced(),
                factory.all::<Pod>().synced()
            );
        } => {}
    }
    let Some(first) = build(&builder, None).await else { return Ok(()) };
    let index = Arc::new(ArcSwap::from_pointee(first));
    let metrics =
        metrics::DnsMetrics::register(factory.metrics(), format!("dns://{}:53", config.listen), &config.index.zone);
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let shared = Arc::new(serve::Shared {
        index: index.clone(),
        upstreams: config.upstreams.clone(),
        metrics: metrics.clone(),
        cache: ForwardCache::new(config.cache.clone()),
        allowed: config.allowed_clients.clone(),
        epoch: std::time::Instant::now(),
        local: std::sync::Mutex::default(),
    });
    // The node's bridge (and so its address) may still be on its way.
    let Some(server) = bind_when_there(config.listen, &shared, &shutdown).await? else { return Ok(()) };
    tracing::info!(address = %config.listen, "cluster DNS listening");
    // Now the node address exists: the metrics listen there too.
    metrics::serve(
        SocketAddr::from((config.listen, 9153)),
        config.health_address,
        factory.metrics().clone(),
        ready.clone(),
        shutdown.clone(),
    )
    .await;
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::spawn(server.run(shutdown.clone()));
    if config.serve_cluster_dns && config.cluster_dns != config.listen {
        // The node makes the address its own: from then on, the same answers there too.
        let (address, shared, shutdown) = (config.cluster_dns, shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            match bind_when_there(address, &shared, &shutdown).await {
                Ok(Some(server)) => {
                    tracing::info!(%address, "cluster DNS listening on the kube-dns address itself");
                    server.run(shutdown).await;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cluster DNS: not answering on the kube-dns address itself"),
            }
        });
    }
    tokio::spawn(kube_dns::keep(factory.client(), config.clone(), shutdown.clone()));
    let mut pace = frontdoor_informers::MinInterval::new(config.min_rebuild);
    pace.ready().await;
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = changed.notified() => {}
        }
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = pace.ready() => {}
        }
        let Some(built) = build(&builder, Some(index.load_full())).await else {
            if shutdown.is_triggered() {
                return Ok(());
            }
            continue;
        };
        let replaced = index.swap(Arc::new(built));
        // The old index is as large as the new one: freed off the runtime's workers too.
        tokio::task::spawn_blocking(move || drop(replaced));
    }
}

/// A server on port 53 of `address` once the address is this machine's (a bridge, a route may
/// still be on their way: tried again, backing off up to a second); `None` at shutdown.
async fn bind_when_there(
    address: Ipv4Addr,
    shared: &Arc<serve::Shared>,
    shutdown: &frontdoor_informers::Shutdown,
) -> Result<Option<serve::Server>, DnsError> {
    let backoff = frontdoor_informers::Backoff { min: Duration::from_millis(20), max: Duration::from_secs(1) };
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    let mut attempts = 0;
    loop {
        match serve::Server::bind(address, shared.clone()).await {
            Ok(server) => return Ok(Some(server)),
            Err(DnsError::Listen { source, .. }) if source.kind() == std::io::ErrorKind::AddrNotAvailable => {
                attempts += 1;
                tokio::select! {
                    () = &mut stop => return Ok(None),
                    () = tokio::time::sleep(backoff.delay(attempts)) => {}
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// The index after the changes the builder holds, or `None` when none came (a change may be
/// one DNS does not see) or the runtime is shutting down. Only the parts the changes touched
/// are built (a part of a namespace's Services costs in proportion to that part, at most about
/// 256 Services; every other part is shared with `previous`), on a blocking thread, from
/// copies taken under the lock: the runtime's workers, which answer queries and serve the API,
/// are held only for the copy, and the informers' feeds are never kept waiting on the lock
/// meanwhile.
async fn build(builder: &Mutex<IndexBuilder>, previous: Option<Arc<ClusterIndex>>) -> Option<ClusterIndex> {
    let copying = std::time::Instant::now();
    let rebuild = {
        let mut builder = builder.lock().unwrap_or_else(PoisonError::into_inner);
        if previous.is_some() && !builder.changed() {
            return None;
        }
        let serial = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or_default();
        builder.set_serial(serial);
        builder.take_changes()
    };
    let started = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || rebuild.build(previous.as_deref())).await {
        Ok(index) => {
            tracing::debug!(
                names = index.len(),
                copy_seconds = (started - copying).as_secs_f64(),
                seconds = started.elapsed().as_secs_f64(),
                "cluster DNS index built"
            );
            Some(index)
        }
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_come_from_nameserver_lines() {
        let text = "# generated\nsearch example.com\nnameserver 192.0.2.53\nnameserver  fd00::53\nnameserver bad\noptions ndots:2\n";
        let upstreams: Vec<String> = upstreams_from_resolv_conf(text).iter().map(ToString::to_string).collect();
        assert_eq!(upstreams, ["192.0.2.53:53", "[fd00::53]:53"]);
    }
}
