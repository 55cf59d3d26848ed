//! A synthetic cluster for the data-plane measurements: `count` IPv4 ClusterIP Services
//! (`bench/svc-<i>`, `10.96.x.y:80`, no affinity) with 8 endpoints each (`10.244.a.b:8080…`),
//! resolved with `frontdoor_proxy_model::categorize` and rendered with
//! `frontdoor_proxy::render::render_service`, exactly as the proxy's sync does.

use std::net::{Ipv4Addr, SocketAddrV4};

use frontdoor_proxy::programmed::{Plan, Programmed};
use frontdoor_proxy::render::{render_service, Fragment};
use frontdoor_proxy::{RenderConfig, SourceRange};
use frontdoor_proxy_model::{categorize, Endpoint, Protocol, ResolvedPort, ServiceKey, ServicePort};

/// Endpoints per Service.
pub const ENDPOINTS: usize = 8;
pub const NAMESPACE: &str = "bench";
pub const SERVICE_PORT: u16 = 80;

/// The ruleset's view of the cluster: Service range 10.96.0.0/12, pod range 10.244.0.0/16.
pub fn render_config() -> RenderConfig {
    let range = |text: &str| SourceRange::parse(text).expect("a literal CIDR");
    RenderConfig {
        service_cidrs: vec![range("10.96.0.0/12")],
        cluster_cidr: range("10.244.0.0/16"),
        node_local_dns: None,
    }
}

/// Service `i`'s ClusterIP (`10.96.0.1` upwards).
pub fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 1 + i as u32)
}

/// Endpoint `j` of Service `i`: consecutive addresses of 10.244.0.0/16; past 65,536 endpoints
/// the addresses repeat with the next target port, so every (address, port) is unique.
pub fn endpoint_address(i: usize, j: usize) -> SocketAddrV4 {
    let k = (i * ENDPOINTS + j) as u32;
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 244, 0, 0)) + (k & 0xffff));
    SocketAddrV4::new(ip, 8080 + (k >> 16) as u16)
}

/// The endpoint that replaces endpoint 0 in the `generation`-th one-endpoint change: a new pod
/// (an address no other endpoint has).
pub fn replacement_address(generation: usize) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 245, 0, 0)) + generation as u32), 8080)
}

/// The Service the `generation`-th one-endpoint change touches: spread over the cluster, a
/// different one each time (7,919 is prime, so distinct while `generation < count` for the
/// sizes used here).
pub fn changed_service(count: usize, generation: usize) -> usize {
    (generation * 7919 + count / 2) % count
}

pub fn key(i: usize) -> ServiceKey {
    ServiceKey::new(NAMESPACE, format!("svc-{i}"))
}

fn port(i: usize) -> ServicePort {
    ServicePort {
        service: key(i),
        name: String::new(),
        protocol: Protocol::Tcp,
        port: SERVICE_PORT,
        cluster_ip: cluster_ip(i),
        node_port: None,
        external_ips: Vec::new(),
        load_balancer_ips: Vec::new(),
        source_ranges: Vec::new(),
        affinity_seconds: None,
        internal_local: false,
        external_local: false,
        health_check_node_port: None,
    }
}

/// Service `i`'s endpoint addresses, with endpoint 0 replaced in change `replaced` if any.
pub fn endpoint_addresses(i: usize, replaced: Option<usize>) -> Vec<SocketAddrV4> {
    (0..ENDPOINTS)
        .map(|j| match replaced {
            Some(generation) if j == 0 => replacement_address(generation),
            _ => endpoint_address(i, j),
        })
        .collect()
}

/// Service `i` resolved (ready endpoints on another node) as the model resolves it.
pub fn resolve(i: usize, replaced: Option<usize>) -> Vec<ResolvedPort> {
    let endpoints: Vec<Endpoint> = endpoint_addresses(i, replaced)
        .into_iter()
        .map(|a| Endpoint { ip: *a.ip(), port: a.port(), ready: true, serving: true, terminating: false, local: false })
        .collect();
    vec![categorize(port(i), &endpoints)]
}

/// Every Service resolved, as the proxy keeps them between syncs.
pub fn resolve_all(count: usize) -> Vec<(ServiceKey, Vec<ResolvedPort>)> {
    (0..count).map(|i| (key(i), resolve(i, None))).collect()
}

/// A full sync: every resolved Service rendered, then the whole table planned.
pub fn plan_full(resolved: &[(ServiceKey, Vec<ResolvedPort>)]) -> (Programmed, Plan) {
    let fragments = resolved.iter().map(|(key, ports)| (key.clone(), render_service(ports, &render_config())));
    Programmed::full(frontdoor_proxy::TABLE, &render_config(), fragments)
}

/// A full sync of `count` Services, from resolving them to the plan.
pub fn full_sync(count: usize) -> (Programmed, Plan) {
    plan_full(&resolve_all(count))
}

/// A one-endpoint change: Service `changed_service(count, generation)` with endpoint 0
/// replaced, rendered and planned against what is programmed.
pub fn one_change(programmed: &mut Programmed, count: usize, generation: usize) -> Plan {
    let i = changed_service(count, generation);
    let fragment: Fragment = render_service(&resolve(i, Some(generation)), &render_config());
    programmed.plan(vec![(key(i), Some(fragment))], std::time::Instant::now())
}
