//! Which Service ports the connect-time balancer (`frontdoor-socket-lb`) holds, and keeping it
//! in step with the rules: pure choice here, the kernel writes in that crate.
//!
//! A port is held when a `connect()` to its cluster IP can be sent to an endpoint chosen at
//! that moment with exactly the rules' outcome: TCP (UDP flows are the rules' and conntrack's,
//! with their flush on endpoint removal), no session affinity (the rules remember the client),
//! and at least one endpoint for cluster traffic (otherwise the rules refuse or drop, as they
//! must). Its endpoints are the rules' cluster-traffic endpoints (ready ones; serving
//! terminating ones when none is ready; local ones under `internalTrafficPolicy: Local`).
//! Everything else — NodePorts, external and load-balancer addresses, packets from other
//! machines — goes through the nftables rules as before. So does the node-local DNS address's
//! port 53 (`RenderConfig::node_local_dns`): the node answers there itself, untracked, and a
//! connection sent on to the Service's endpoint would be tracked like any other.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};

use frontdoor_proxy_model::{Protocol, ResolvedPort};
use frontdoor_socket_lb::{Frontend, SocketBalancer};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;

use crate::render::DNS;

/// The frontends `ports` (one Service's) put in the balancer, with their endpoints; never port
/// 53 of `node_local_dns`, which the node answers itself.
pub fn frontends(ports: &[ResolvedPort], node_local_dns: Option<Ipv4Addr>) -> Vec<(Frontend, Vec<SocketAddrV4>)> {
    let answered_here = |p: &ResolvedPort| Some(p.port.cluster_ip) == node_local_dns && p.port.port == DNS;
    ports
        .iter()
        .filter(|p| p.port.protocol == Protocol::Tcp && p.port.affinity_seconds.is_none() && !p.internal.is_empty())
        .filter(|p| !answered_here(p))
        .map(|p| {
            let backends = p.internal.iter().map(|e| SocketAddrV4::new(e.ip, e.port)).collect();
            (Frontend { ip: p.port.cluster_ip, port: p.port.port }, backends)
        })
        .collect()
}

/// Moves the balancer from a Service's `before` ports to its `after` ports.
pub fn reconcile(
    balancer: &Mutex<SocketBalancer>,
    before: &[ResolvedPort],
    after: &[ResolvedPort],
    node_local_dns: Option<Ipv4Addr>,
) {
    let mut balancer = balancer.lock().unwrap_or_else(PoisonError::into_inner);
    let wanted = frontends(after, node_local_dns);
    for (gone, _) in frontends(before, node_local_dns) {
        if !wanted.iter().any(|(frontend, _)| *frontend == gone) {
            if let Err(error) = balancer.remove(gone) {
                tracing::warn!(%error, frontend = ?gone, "connect-time balancer: removing a frontend");
            }
        }
    }
    for (frontend, backends) in wanted {
        // On an error the frontend is left out: the rules serve it.
        if let Err(error) = balancer.set(frontend, &backends) {
            tracing::warn!(%error, ?frontend, "connect-time balancer: the rules serve this frontend");
        }
    }
}

/// The balancer's own gauges, read from it when scraped: `frontdoor_socket_lb_frontends` (the
/// TCP cluster-IP ports it holds) and `frontdoor_socket_lb_namespaces` (the node's and pods'
/// network namespaces it acts in: a pod's joins before its containers start and leaves at
/// teardown).
pub fn register_metrics(registry: &frontdoor_metrics::Registry, balancer: &Arc<Mutex<SocketBalancer>>) {
    let held = balancer.clone();
    registry.register(
        "frontdoor_socket_lb_frontends",
        "Cluster IP TCP ports whose connections the connect-time balancer sends straight to an endpoint",
        Read(Arc::new(move || held.lock().unwrap_or_else(PoisonError::into_inner).frontends().count())),
    );
    let scope = balancer.lock().unwrap_or_else(PoisonError::into_inner).scope();
    registry.register(
        "frontdoor_socket_lb_namespaces",
        "Network namespaces (the node's and its pods') whose connections the connect-time balancer acts on",
        Read(Arc::new(move || scope.len())),
    );
}

/// A gauge whose value is read when the registry is encoded.
#[derive(Clone)]
struct Read(Arc<dyn Fn() -> usize + Send + Sync>);

impl std::fmt::Debug for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Read")
    }
}

impl EncodeMetric for Read {
    fn encode(&self, mut encoder: MetricEncoder) -> std::fmt::Result {
        encoder.encode_gauge(&i64::try_from((self.0)()).unwrap_or(i64::MAX))
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

#[cfg(test)]
mod tests {
    use frontdoor_proxy_model::{categorize, Endpoint, ServiceKey, ServicePort};

    use super::*;

    fn port(protocol: Protocol, number: u16, affinity: Option<u32>, internal_local: bool) -> ServicePort {
        ServicePort {
            service: ServiceKey::new("default", "web"),
            name: format!("p{number}"),
            protocol,
            port: number,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 5),
            node_port: Some(30080),
            external_ips: vec![Ipv4Addr::new(192, 0, 2, 9)],
            load_balancer_ips: vec![Ipv4Addr::new(192, 0, 2, 10)],
            source_ranges: Vec::new(),
            affinity_seconds: affinity,
            internal_local,
            external_local: false,
            health_check_node_port: None,
        }
    }

    /// `state`: r = ready, t = serving and terminating, u = unready.
    fn ep(n: u8, state: char, local: bool) -> Endpoint {
        let (ready, serving, terminating) = match state {
            'r' => (true, true, false),
            't' => (false, true, true),
            _ => (false, false, false),
        };
        Endpoint { ip: Ipv4Addr::new(10, 244, 0, n), port: 8080, ready, serving, terminating, local }
    }

    /// A case: its name, the port, its endpoints, and the last octets of the endpoints held
    /// (`None`: the frontend is not held).
    type Case = (&'static str, ServicePort, Vec<Endpoint>, Option<Vec<u8>>);

    /// The node answers the node-local DNS address's port 53 itself: only its other ports, and
    /// port 53 of other addresses, are held.
    #[test]
    fn the_node_local_dns_port_is_left_to_the_node() {
        let dns = Ipv4Addr::new(10, 96, 0, 10);
        let at = |ip: Ipv4Addr, number: u16| {
            let port = ServicePort { cluster_ip: ip, ..port(Protocol::Tcp, number, None, false) };
            categorize(port, &[ep(1, 'r', true)])
        };
        let ports = [at(dns, 53), at(dns, 9153), at(Ipv4Addr::new(10, 96, 0, 5), 53)];
        let held = |node_local_dns| -> Vec<(Ipv4Addr, u16)> {
            frontends(&ports, node_local_dns).iter().map(|(f, _)| (f.ip, f.port)).collect()
        };
        assert_eq!(held(Some(dns)), [(dns, 9153), (Ipv4Addr::new(10, 96, 0, 5), 53)]);
        assert_eq!(held(None).len(), 3, "without a node-local address, every port is held");
    }

    #[test]
    fn held_frontends_and_their_endpoints() {
        let tcp = || port(Protocol::Tcp, 80, None, false);
        let cases: Vec<Case> = vec![
            (
                "ready endpoints only",
                tcp(),
                vec![ep(1, 'r', true), ep(2, 'u', true), ep(3, 'r', false)],
                Some(vec![1, 3]),
            ),
            ("terminating ones when none is ready", tcp(), vec![ep(1, 't', true), ep(2, 'u', true)], Some(vec![1])),
            ("none usable: the rules refuse", tcp(), vec![ep(1, 'u', true)], None),
            ("no endpoints: the rules refuse", tcp(), vec![], None),
            (
                "UDP stays with the rules and conntrack",
                port(Protocol::Udp, 53, None, false),
                vec![ep(1, 'r', true)],
                None,
            ),
            ("SCTP too", port(Protocol::Sctp, 9, None, false), vec![ep(1, 'r', true)], None),
            (
                "session affinity needs the rules' memory",
                port(Protocol::Tcp, 80, Some(10800), false),
                vec![ep(1, 'r', true)],
                None,
            ),
            (
                "internalTrafficPolicy Local: local endpoints",
                port(Protocol::Tcp, 80, None, true),
                vec![ep(1, 'r', false), ep(2, 'r', true)],
                Some(vec![2]),
            ),
            (
                "internalTrafficPolicy Local, none local: the rules drop",
                port(Protocol::Tcp, 80, None, true),
                vec![ep(1, 'r', false)],
                None,
            ),
        ];
        for (name, port, endpoints, want) in cases {
            let resolved = categorize(port.clone(), &endpoints);
            let got = frontends(&[resolved], None);
            match want {
                None => assert!(got.is_empty(), "{name}: {got:?}"),
                Some(octets) => {
                    assert_eq!(got.len(), 1, "{name}");
                    let (frontend, backends) = &got[0];
                    assert_eq!(
                        *frontend,
                        Frontend { ip: port.cluster_ip, port: port.port },
                        "{name}: the cluster IP only"
                    );
                    let got: Vec<u8> = backends.iter().map(|b| b.ip().octets()[3]).collect();
                    assert_eq!(got, octets, "{name}");
                    assert!(backends.iter().all(|b| b.port() == 8080), "{name}: the endpoint's port");
                }
            }
        }
    }
}
