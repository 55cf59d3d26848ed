//! The `frontdoor` command: wiring and flags. The only place that reads flags or the
//! environment, and the only user of `anyhow`.

mod cleanup;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use frontdoor_apiserver::{ApiServerConfig, KUBERNETES_MINOR};
use frontdoor_informers::{Backoff, InformerFactory, Shutdown};
use frontdoor_store::StoreConfig;

#[derive(Parser)]
#[command(name = "frontdoor", about = "Kubernetes Service networking in one binary", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the single-machine cluster: API server, controllers, and this machine as its node
    /// (pods, the service proxy, LoadBalancer addresses, cluster DNS and the Ingress controller).
    Up(Box<UpArgs>),
    /// Print the frontdoor version and the Kubernetes API version it serves.
    Version,
    /// After a crash of `frontdoor up` (`kill -9`): stop the pods it left running and remove what
    /// it put in the kernel (its nftables tables, its bridge with the bridge's addresses and
    /// routes, the load-balancer addresses it answered for). Refuses while an `up` with the same
    /// data directory runs; with nothing left to clean, says so.
    Cleanup(cleanup::CleanupArgs),
}

#[derive(Parser)]
struct UpArgs {
    /// Address and port of the HTTPS API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Directory for the store, the CA, the token and the kubeconfig.
    #[arg(long, default_value = "/var/lib/frontdoor")]
    data_dir: PathBuf,
    /// Where to write the kubeconfig (default: <data-dir>/kubeconfig).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Address the `kubernetes` Service's endpoints point at, where the API server also listens
    /// (on the port of --listen); must not be loopback. Default: the node's bridge address (the
    /// pod range's first); with --without-node and no address the Service has no endpoints.
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// ClusterIP range for Services.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// NodePort range for NodePort and LoadBalancer Services.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Run only the control plane (API server and controllers): no Node, no pods, no changes to
    /// this machine's network.
    #[arg(long)]
    without_node: bool,
    /// Run no controllers (EndpointSlices, Endpoints, workloads): for tests of a controller
    /// that runs its own copy.
    #[arg(long)]
    without_controllers: bool,
    /// This node's name (default: the machine's hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// The cluster's pod range: connections to a ClusterIP from outside it are masqueraded.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// This node's pod range; the bridge takes its first address.
    #[arg(long, default_value = "10.244.0.0/24")]
    pod_cidr: String,
    /// The bridge pods attach to.
    #[arg(long, default_value = "frontdoor0")]
    bridge: String,
    /// The address the Node reports as InternalIP (default: as the kubelet picks it, the address
    /// of the interface that holds the default route; without a default route, the bridge's).
    #[arg(long)]
    node_ip: Option<std::net::Ipv4Addr>,
    /// Cluster DNS address written into pods' resolv.conf.
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns: std::net::Ipv4Addr,
    /// The cluster's DNS domain: Services answer as `<service>.<namespace>.svc.<domain>`.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Addresses for LoadBalancer Services (repeatable): a CIDR (`192.168.1.240/29`) or a range
    /// (`192.168.1.240-192.168.1.250`). Addresses on a network the node is attached to are
    /// answered for there (ARP). Without any, LoadBalancer Services get the node's address.
    #[arg(long = "lb-pool", value_name = "POOL")]
    lb_pools: Vec<frontdoor_lb::Pool>,
    /// Addresses for internal LoadBalancer Services (annotated
    /// `networking.gke.io/load-balancer-type: "Internal"`): served on the node, not announced.
    #[arg(long = "lb-internal-pool", value_name = "POOL")]
    lb_internal_pools: Vec<frontdoor_lb::Pool>,
    /// Upstream resolvers for names outside the cluster domain (repeatable, `ADDR` or
    /// `ADDR:PORT`; default: the node's /etc/resolv.conf).
    #[arg(long = "dns-upstream", value_name = "ADDR[:PORT]")]
    dns_upstreams: Vec<String>,
    /// TTL of cluster DNS records.
    #[arg(long, default_value_t = 30)]
    dns_ttl: u32,
    /// The Ingress controller's plain HTTP port (HTTP/1.1, and HTTP/2 with prior knowledge) on
    /// every node address; 0: none.
    #[arg(long, default_value_t = 80)]
    ingress_http_port: u16,
    /// The Ingress controller's HTTPS port (HTTP/1.1 and HTTP/2 by ALPN); 0: none.
    #[arg(long, default_value_t = 443)]
    ingress_https_port: u16,
    /// One log line per request through the Ingress controller (target
    /// `frontdoor_ingress::access`).
    #[arg(long)]
    ingress_access_log: bool,
    /// Balance TCP connections to ClusterIPs from this node and its pods at connect() (a BPF
    /// program on the cgroup connect4 hook, as Cilium's socket LB): such connections go straight
    /// to an endpoint, with no per-packet NAT. `false`: the nftables rules alone, as kube-proxy.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    socket_lb: bool,
    /// How often running pods' ConfigMap, Secret, downward API and projected volumes are
    /// refreshed with what their sources hold now (the kubelet's --sync-frequency).
    #[arg(long, default_value = "1m")]
    sync_frequency: GoDuration,
    /// How long an Event is kept after its last write (e.g. `1h`, `30m`, `90s`, `1h30m`).
    #[arg(long, default_value = "1h")]
    event_ttl: GoDuration,
    /// How many recent changes watches can resume from.
    #[arg(long, default_value_t = 100_000)]
    watch_window: usize,
}

/// A duration as Go writes it (kube-apiserver's flags): `1h`, `30m`, `90s`, `1h30m0s`, `500ms`.
#[derive(Clone, Copy, Debug)]
struct GoDuration(std::time::Duration);

impl std::str::FromStr for GoDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid duration {text:?} (expected e.g. 1h, 30m, 90s, 1h30m, 500ms)");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(invalid());
        }
        if rest == "0" {
            return Ok(GoDuration(std::time::Duration::ZERO));
        }
        let mut total = std::time::Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(invalid)?;
            let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let seconds = match &rest[..unit] {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                "us" | "µs" => 0.000_001,
                "ns" => 0.000_000_001,
                _ => return Err(invalid()),
            };
            rest = &rest[unit..];
            total += std::time::Duration::try_from_secs_f64(number * seconds).map_err(|_| invalid())?;
        }
        Ok(GoDuration(total))
    }
}

/// jemalloc rather than glibc's malloc: in a burst of pods a third of the runtime threads' CPU
/// went to glibc growing and trimming its per-thread heaps (`mprotect`, `sysmalloc`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Open descriptors a node makes room for at start: a few per pod (namespaces, pipes, sockets,
/// log files), for well over a thousand pods.
const NODE_DESCRIPTORS: u64 = 16_384;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FRONTDOOR_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Version => {
            println!("frontdoor {} (Kubernetes API v1.{KUBERNETES_MINOR})", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Up(args) => {
            if !args.without_node {
                // Before any thread starts: see `reserve_descriptors`.
                if let Err(error) = frontdoor_netns::reserve_descriptors(NODE_DESCRIPTORS) {
                    tracing::warn!(%error, "could not make room for the node's descriptors");
                }
            }
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(up(*args))
        }
        Command::Cleanup(args) => cleanup::run(&args),
    }
}

async fn up(mut args: UpArgs) -> anyhow::Result<()> {
    if !args.without_node {
        // Picked once (a route lookup), so the Node, the load balancers and the Ingress status
        // all name the same address.
        args.node_ip = Some(node_ip(&args, &frontdoor_node::PodCidr::parse(&args.pod_cidr)?));
    }
    let metrics = frontdoor_metrics::Registry::default();
    let advertise_address = match args.advertise_address {
        None if !args.without_node => {
            Some(std::net::IpAddr::V4(frontdoor_node::PodCidr::parse(&args.pod_cidr)?.gateway()))
        }
        given => given,
    };
    let config = ApiServerConfig {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        service_cidr: args.service_cidr.clone(),
        node_port_range: args.service_node_port_range.clone(),
        advertise_address,
        cluster_domain: args.cluster_domain.clone(),
        store: StoreConfig { event_window: args.watch_window, ..StoreConfig::default() },
        metrics: metrics.clone(),
        event_ttl: args.event_ttl.0,
    };
    let server = frontdoor_apiserver::start(config).await.context("starting the API server")?;
    let client = kube::Client::new(server.local_service(), "default");
    // One client-side runtime for every component: one watch per resource serves them all.
    let (stop, shutdown) = Shutdown::new();
    let factory = InformerFactory::new(client.clone(), metrics, shutdown);
    let balancer = if args.without_node || !args.socket_lb { None } else { attach_socket_lb() };
    let scope = balancer.as_ref().map(|b| b.lock().unwrap_or_else(std::sync::PoisonError::into_inner).scope());
    let node = if args.without_node { None } else { Some(start_node(&server, &factory, &args, scope).await?) };
    let proxy = if args.without_node { None } else { Some(start_proxy(&factory, &args, balancer)?) };
    if !args.without_node {
        start_load_balancers(&factory, &args)?;
        start_dns(&factory, &args)?;
        start_ingress(&factory, &args).await?;
    }
    if !args.without_controllers {
        start_controllers(&factory);
    }
    let kubeconfig_path = args.kubeconfig_out.unwrap_or_else(|| args.data_dir.join("kubeconfig"));
    write_kubeconfig(&kubeconfig_path, &server.kubeconfig)?;
    println!(
        "frontdoor API server ready at https://{} in {} ms; kubeconfig: {}",
        server.local_addr,
        server.started.elapsed().as_millis(),
        kubeconfig_path.display()
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    stop.trigger();
    if let Some(node) = node {
        // Pods cannot outlive the node: wait (bounded) until the runtime has stopped them.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), node).await;
    }
    if let Some(proxy) = proxy {
        // The proxy removes its table on the way out.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), proxy).await;
        // And nothing answers for the load-balancer addresses any more (the next start
        // announces them again from the Services' status), as when a MetalLB speaker stops.
        withdraw_announced("withdrew the load-balancer address: the node stops");
    }
    Ok(())
}

/// The controllers, each until shutdown.
fn start_controllers(factory: &InformerFactory) {
    let endpoints = factory.clone();
    tokio::spawn(async move {
        if let Err(error) = frontdoor_endpoints::run(endpoints, frontdoor_endpoints::EndpointsConfig::default()).await {
            tracing::error!(%error, "the endpoint controllers stopped");
        }
    });
    let workloads = factory.clone();
    tokio::spawn(async move {
        if let Err(error) = frontdoor_workloads::run(workloads, frontdoor_workloads::WorkloadsConfig::default()).await {
            tracing::error!(%error, "the workload controllers stopped");
        }
    });
}

/// The Service range as network and prefix length.
fn service_network(args: &UpArgs) -> anyhow::Result<(std::net::Ipv4Addr, u8)> {
    let range = frontdoor_proxy::SourceRange::parse(&args.service_cidr)
        .with_context(|| format!("--service-cidr {:?} is not an IPv4 CIDR", args.service_cidr))?;
    Ok((range.network, range.prefix))
}

fn node_name(args: &UpArgs) -> String {
    match &args.node_name {
        Some(name) => name.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .unwrap_or_else(|_| "frontdoor".into()),
    }
}

/// The Node's InternalIP: `--node-ip`, else the address the kubelet would pick.
fn node_ip(args: &UpArgs, pod_cidr: &frontdoor_node::PodCidr) -> std::net::Ipv4Addr {
    args.node_ip.unwrap_or_else(|| frontdoor_node::registration::default_node_ip(pod_cidr.gateway()))
}

/// Removes every load-balancer address this machine answers for (those a node announced, by
/// their mark), each logged with `why`.
fn withdraw_announced(why: &str) {
    match frontdoor_netns::withdraw_announced() {
        Ok(removed) => {
            for (interface, address) in removed {
                tracing::info!(%address, interface, "{why}");
            }
        }
        Err(error) => tracing::warn!(%error, "withdrawing the load-balancer addresses"),
    }
}

/// Starts the LoadBalancer address controller, announcing pool addresses on the LAN.
fn start_load_balancers(factory: &InformerFactory, args: &UpArgs) -> anyhow::Result<()> {
    let pod_cidr = frontdoor_node::PodCidr::parse(&args.pod_cidr)?;
    // What a node that did not stop cleanly left announced goes first: the controller announces
    // again what the Services' status still holds, once its cache has synced.
    withdraw_announced("withdrew a load-balancer address an earlier run left");
    let mut config = frontdoor_lb::LbConfig::new(node_ip(args, &pod_cidr));
    config.pools = args.lb_pools.clone();
    config.internal_pools = args.lb_internal_pools.clone();
    config.announcer =
        Some(std::sync::Arc::new(KernelAnnouncer { bridge: args.bridge.clone(), gateway: pod_cidr.gateway() }));
    config.reserved_ports = [args.ingress_http_port, args.ingress_https_port]
        .into_iter()
        .filter(|port| *port != 0)
        .map(|port| (frontdoor_lb::PortKey::new("TCP", i32::from(port)), "Ingress controller".to_string()))
        .collect();
    config.validate().context("--lb-pool / --lb-internal-pool")?;
    let factory = factory.clone();
    tokio::spawn(async move {
        if let Err(error) = frontdoor_lb::run(factory, config).await {
            tracing::error!(%error, "the LoadBalancer controller stopped");
        }
    });
    Ok(())
}

/// Starts the Ingress controller and its proxy on the node's addresses. Our IngressClass exists
/// before this returns (so before the API is announced ready): every Ingress created from then on
/// is given it. A port that cannot be bound is reported and the rest of the node runs on.
async fn start_ingress(factory: &InformerFactory, args: &UpArgs) -> anyhow::Result<()> {
    use frontdoor_ingress::controller::{self, ControllerConfig, Published};
    if args.ingress_http_port == 0 && args.ingress_https_port == 0 {
        return Ok(());
    }
    let class = frontdoor_ingress_routes::IngressClassConfig::default();
    if tokio::time::timeout(std::time::Duration::from_secs(10), controller::ensure_class(factory.client(), &class))
        .await
        .is_err()
    {
        tracing::warn!("the default IngressClass is not created yet; Ingresses made meanwhile name no class");
    }
    let certificates = frontdoor_ingress::tls::Certificates::with_fake_default()?;
    let published = Published {
        routes: std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(frontdoor_ingress_routes::RouteTable::default())),
        certificates: std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(certificates)),
    };
    let port = |port: u16| (port != 0).then(|| SocketAddr::from(([0, 0, 0, 0], port)));
    let proxy = frontdoor_ingress::proxy::ProxyConfig {
        http: port(args.ingress_http_port),
        https: port(args.ingress_https_port),
        access_log: args.ingress_access_log,
        ..frontdoor_ingress::proxy::ProxyConfig::default()
    };
    let pod_cidr = frontdoor_node::PodCidr::parse(&args.pod_cidr)?;
    let config = ControllerConfig {
        class,
        status_address: Some(std::net::IpAddr::V4(node_ip(args, &pod_cidr))),
        min_rebuild: std::time::Duration::from_millis(5),
    };
    let (routes, certificates) = (published.routes.clone(), published.certificates.clone());
    let (metrics, shutdown) = (factory.metrics().clone(), factory.shutdown());
    tokio::spawn(async move {
        if let Err(error) = frontdoor_ingress::proxy::serve(proxy, routes, certificates, metrics, shutdown).await {
            tracing::error!(%error, "the Ingress proxy stopped");
        }
    });
    tokio::spawn(controller::run(factory.clone(), config, published));
    Ok(())
}

/// Makes load-balancer addresses reachable: an external one is answered for (ARP) on the LAN
/// it belongs to, and announced there by a gratuitous ARP, as MetalLB's layer-2 mode does;
/// every one is routed onto the pod bridge, so the node and its pods reach it too (the proxy
/// DNATs it before it goes anywhere).
struct KernelAnnouncer {
    bridge: String,
    gateway: std::net::Ipv4Addr,
}

impl frontdoor_lb::Announcer for KernelAnnouncer {
    fn announce(&self, address: std::net::Ipv4Addr, internal: bool) {
        let announced = if internal { Ok(None) } else { frontdoor_netns::announce_address(address, &self.bridge) };
        match announced {
            Ok(Some(interface)) => {
                tracing::info!(%address, interface, "answering for the load-balancer address");
                // Neighbours holding the address at another machine's hardware address learn it
                // is here now, instead of when their entry expires.
                if let Err(error) = frontdoor_netns::announce_gratuitously(&interface, address) {
                    tracing::warn!(%error, %address, interface, "announcing the load-balancer address by gratuitous ARP");
                }
            }
            Ok(None) => {
                if let Err(error) = frontdoor_netns::route_to_bridge(&self.bridge, address, 32, self.gateway) {
                    tracing::warn!(%error, %address, "routing the load-balancer address");
                }
            }
            Err(error) => tracing::warn!(%error, %address, "announcing the load-balancer address"),
        }
    }

    fn withdraw(&self, address: std::net::Ipv4Addr) {
        if let Err(error) = frontdoor_netns::withdraw_address(address) {
            tracing::warn!(%error, %address, "withdrawing the load-balancer address");
        }
        if let Err(error) = frontdoor_netns::unroute_from_bridge(&self.bridge, address, 32) {
            tracing::warn!(%error, %address, "unrouting the load-balancer address");
        }
    }
}

/// Starts cluster DNS on the bridge's address, behind the `kube-dns` Service.
fn start_dns(factory: &InformerFactory, args: &UpArgs) -> anyhow::Result<()> {
    let pod_cidr = frontdoor_node::PodCidr::parse(&args.pod_cidr)?;
    let cidr = |text: &str| text.parse::<frontdoor_dns::Cidr>().map_err(|e| anyhow::anyhow!("{text:?}: {e}"));
    let upstreams = if args.dns_upstreams.is_empty() {
        frontdoor_dns_server::upstreams_from_resolv_conf(
            &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        )
    } else {
        args.dns_upstreams
            .iter()
            .map(|text| {
                text.parse::<SocketAddr>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .with_context(|| format!("--dns-upstream {text:?} is not ADDR or ADDR:PORT"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let index = frontdoor_dns::IndexConfig {
        zone: args.cluster_domain.clone(),
        ttl: args.dns_ttl,
        reverse_cidrs: vec![cidr(&args.service_cidr)?, cidr(&args.cluster_cidr)?],
        ns_addresses: vec![std::net::IpAddr::V4(args.cluster_dns)],
        ..frontdoor_dns::IndexConfig::default()
    };
    let config = frontdoor_dns_server::DnsConfig {
        index,
        cluster_dns: args.cluster_dns,
        serve_cluster_dns: true,
        listen: pod_cidr.gateway(),
        node_name: node_name(args),
        upstreams,
        min_rebuild: std::time::Duration::from_millis(2),
        // CoreDNS's health port is 8080, which programs on a node often take (and 18080, 8181):
        // kube-dns's old healthz port instead.
        health_address: SocketAddr::from(([127, 0, 0, 1], 10055)),
        // The node's pods (the node's own addresses and loopback are always served).
        allowed_clients: vec![cidr(&args.cluster_cidr)?, cidr(&args.pod_cidr)?],
        cache: frontdoor_dns::CacheConfig::default(),
    };
    let factory = factory.clone();
    tokio::spawn(async move {
        if let Err(error) = frontdoor_dns_server::run(factory, config).await {
            tracing::error!(%error, "cluster DNS stopped");
        }
    });
    Ok(())
}

/// The connect-time balancer, attached to the cgroup v2 root with this node's network
/// namespace in its scope (the pods' join as they start); `None`, with a log line saying why,
/// where the kernel offers no cgroup v2 or BPF: the nftables rules serve ClusterIPs alone.
fn attach_socket_lb() -> Option<std::sync::Arc<std::sync::Mutex<frontdoor_socket_lb::SocketBalancer>>> {
    let attached = frontdoor_socket_lb::open_cgroup2_root().and_then(|(directory, root)| {
        let balancer = frontdoor_socket_lb::SocketBalancer::attach(&directory)?;
        balancer.scope().add(frontdoor_socket_lb::current_netns_cookie()?)?;
        Ok((balancer, root))
    });
    match attached {
        Ok((balancer, root)) => {
            tracing::info!(cgroup = %root.display(), "connect-time load balancing attached");
            Some(std::sync::Arc::new(std::sync::Mutex::new(balancer)))
        }
        Err(error) => {
            tracing::info!(%error, "connect-time load balancing unavailable: the nftables rules serve ClusterIPs alone");
            None
        }
    }
}

/// Starts the service proxy (nftables over netlink) for this node.
fn start_proxy(
    factory: &InformerFactory,
    args: &UpArgs,
    socket_lb: Option<std::sync::Arc<std::sync::Mutex<frontdoor_socket_lb::SocketBalancer>>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let service_cidr = frontdoor_proxy::SourceRange::parse(&args.service_cidr)
        .with_context(|| format!("--service-cidr {:?} is not an IPv4 CIDR", args.service_cidr))?;
    let cluster_cidr = frontdoor_proxy::SourceRange::parse(&args.cluster_cidr)
        .with_context(|| format!("--cluster-cidr {:?} is not an IPv4 CIDR", args.cluster_cidr))?;
    let config = frontdoor_proxy::ProxyConfig {
        node_name: node_name(args),
        table: frontdoor_proxy::TABLE.to_string(),
        render: frontdoor_proxy::RenderConfig {
            service_cidrs: vec![service_cidr],
            cluster_cidr,
            // Cluster DNS answers on its Service address itself (the node makes it its own).
            node_local_dns: Some(args.cluster_dns),
        },
        min_sync_period: std::time::Duration::from_millis(5),
        metrics_address: Some(SocketAddr::from(([127, 0, 0, 1], 10249))),
        healthz_address: Some(SocketAddr::from(([0, 0, 0, 0], 10256))),
        remove_table_on_exit: true,
        socket_lb,
    };
    let factory = factory.clone();
    Ok(tokio::spawn(async move {
        if let Err(error) = frontdoor_proxy::run(factory, config).await {
            tracing::error!(%error, "the service proxy stopped");
        }
    }))
}

/// Registers this machine as a Node and starts the scheduler and the pod runtime.
async fn start_node(
    server: &frontdoor_apiserver::ApiServer,
    factory: &InformerFactory,
    args: &UpArgs,
    socket_lb_scope: Option<frontdoor_socket_lb::Scope>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let client = factory.client();
    let pod_cidr = frontdoor_node::PodCidr::parse(&args.pod_cidr)?;
    let node_name = node_name(args);
    anyhow::ensure!(!args.sync_frequency.0.is_zero(), "--sync-frequency must be more than 0");
    let config = frontdoor_node::NodeConfig {
        node_name,
        node_ip: node_ip(args, &pod_cidr),
        pod_cidr,
        bridge: args.bridge.clone(),
        cluster_dns: args.cluster_dns,
        cluster_dns_local: true,
        cluster_domain: args.cluster_domain.clone(),
        resolv_conf: Some("/etc/resolv.conf".into()),
        data_dir: args.data_dir.clone(),
        veth_prefix: frontdoor_node::VETH_PREFIX.into(),
        service_network: Some(service_network(args)?),
        service_account_token: Some(server.token().to_string()),
        sync_frequency: args.sync_frequency.0,
        socket_lb_scope,
    };
    frontdoor_node::registration::register(&client, &config).await.context("registering the node")?;
    server.set_log_source(std::sync::Arc::new(NodeLogs(frontdoor_node::logs::LogStore::new(
        config.data_dir.join("pods"),
    ))));
    let access = frontdoor_node::access::PodAccess::default();
    server.set_pod_access(std::sync::Arc::new(NodeAccess(access.clone())));
    server.set_node_proxy(std::sync::Arc::new(frontdoor_apiserver::kubelet::LocalKubelet::new(
        config.node_name.clone(),
        "/var/log",
    )));
    tokio::spawn(frontdoor_node::registration::heartbeat(client.clone(), config.clone(), std::future::pending()));
    // One event queue for the node's components, as one broadcaster: written in the process's
    // quiet moments.
    let events = frontdoor_informers::EventRecorder::new(client, "kubelet", &config.node_name, Default::default());
    let scheduler_events = events.for_component("default-scheduler");
    tokio::spawn(frontdoor_node::scheduler::run(factory.clone(), config.clone(), scheduler_events, Backoff::default()));
    let factory = factory.clone();
    let runtime = tokio::spawn(async move {
        let backoff = frontdoor_node::runtime::RESTART_BACKOFF;
        if let Err(error) = frontdoor_node::runtime::run(&factory, config, backoff, events, access).await {
            tracing::error!(%error, "the pod runtime stopped");
        }
    });
    Ok(runtime)
}

/// `kubectl logs` reads the node's log files.
struct NodeLogs(frontdoor_node::logs::LogStore);

impl frontdoor_apiserver::LogSource for NodeLogs {
    fn open(
        &self,
        pod: &serde_json::Value,
        container: &str,
        query: &frontdoor_apiserver::LogQuery,
    ) -> Result<tokio::sync::mpsc::Receiver<bytes::Bytes>, String> {
        let options = frontdoor_node::logs::LogOptions {
            follow: query.follow,
            tail_lines: query.tail_lines,
            timestamps: query.timestamps,
            previous: query.previous,
            since_seconds: query.since_seconds,
            limit_bytes: query.limit_bytes,
        };
        self.0.read(pod, container, &options).map_err(|e| e.to_string())
    }
}

/// `kubectl port-forward` and `exec` reach into the node's pods.
struct NodeAccess(frontdoor_node::access::PodAccess);

type Boxed<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

fn uid_of(pod: &serde_json::Value) -> String {
    pod.pointer("/metadata/uid").and_then(serde_json::Value::as_str).unwrap_or("").to_string()
}

impl frontdoor_apiserver::PodAccess for NodeAccess {
    fn connect(&self, pod: &serde_json::Value, port: u16) -> Boxed<Result<tokio::net::TcpStream, String>> {
        let (access, uid) = (self.0.clone(), uid_of(pod));
        Box::pin(async move { access.connect(&uid, port).await })
    }

    fn exec(
        &self,
        pod: &serde_json::Value,
        container: &str,
        command: Vec<String>,
        stdin: bool,
        tty: bool,
    ) -> Boxed<Result<frontdoor_apiserver::ExecProcess, frontdoor_apiserver::ExecError>> {
        use frontdoor_apiserver::{ExecError, ExecProcess, ExecTerminal};
        let (access, uid, container) = (self.0.clone(), uid_of(pod), container.to_string());
        Box::pin(async move {
            let (child, terminal) =
                access.exec(&uid, &container, command, stdin, tty).await.map_err(|error| match error {
                    frontdoor_node::access::ExecError::CannotRun(message) => ExecError::CannotRun(message),
                    frontdoor_node::access::ExecError::Unavailable(message) => ExecError::Unavailable(message),
                })?;
            let terminal = match terminal {
                None => None,
                Some(terminal) => {
                    let (output, input) = terminal.files().map_err(|e| ExecError::Unavailable(e.to_string()))?;
                    let resize = Box::new(move |width: u16, height: u16| {
                        let _ = terminal.resize(width, height);
                    });
                    Some(ExecTerminal { output: Box::new(output), input: Box::new(input), resize })
                }
            };
            // The command leads its process group. (On a terminal that is `setsid`; the command's
            // own session is hung up when the terminal closes.)
            let group = child.id();
            let stop = Box::new(move || {
                if let Some(pid) = group {
                    let _ = frontdoor_netns::signal_process_group(pid, frontdoor_netns::Signal::Kill);
                }
            });
            Ok(ExecProcess { child, terminal, stop })
        })
    }
}

fn write_kubeconfig(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::GoDuration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        let cases = [
            ("1h", 3_600_000),
            ("30m", 1_800_000),
            ("90s", 90_000),
            ("1h30m0s", 5_400_000),
            ("500ms", 500),
            ("0", 0),
            ("1.5s", 1500),
        ];
        for (text, millis) in cases {
            assert_eq!(text.parse::<GoDuration>().unwrap().0, Duration::from_millis(millis), "{text}");
        }
        for bad in ["", "h", "10", "1x", "-1s"] {
            assert!(bad.parse::<GoDuration>().is_err(), "{bad}");
        }
    }
}
