//! Which endpoints serve which traffic: decided here once, for every backend, as kube-proxy's
//! `CategorizeEndpoints` (without topology).

use crate::endpoints::Endpoint;
use crate::service::ServicePort;

/// What happens to a connection that has no endpoint to go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoEndpoints {
    /// The Service has no usable endpoint anywhere: refuse at once (ICMP port unreachable).
    Reject,
    /// A `Local` policy with no local endpoint while others exist elsewhere: drop, so that the
    /// client (or the load balancer's health check) moves on.
    Drop,
}

/// One service port with the endpoints chosen for each kind of traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedPort {
    pub port: ServicePort,
    /// Endpoints for traffic to the cluster IP (local ones under `internalTrafficPolicy: Local`),
    /// sorted.
    pub internal: Vec<Endpoint>,
    /// Endpoints for traffic to the NodePort, external IPs and load-balancer addresses (local ones
    /// under `externalTrafficPolicy: Local`), sorted.
    pub external: Vec<Endpoint>,
    /// Whether any usable endpoint exists anywhere (ready, or serving and terminating).
    pub has_any: bool,
    /// Ready endpoints on this node: what the health-check NodePort reports.
    pub local_ready: usize,
}

impl ResolvedPort {
    /// What cluster-IP traffic gets when `internal` is empty.
    pub fn internal_without_endpoints(&self) -> NoEndpoints {
        if self.has_any {
            NoEndpoints::Drop
        } else {
            NoEndpoints::Reject
        }
    }

    /// What external traffic gets when `external` is empty.
    pub fn external_without_endpoints(&self) -> NoEndpoints {
        self.internal_without_endpoints()
    }
}

fn uses_cluster_endpoints(port: &ServicePort) -> bool {
    !port.internal_local || (port.externally_accessible() && !port.external_local)
}

fn uses_local_endpoints(port: &ServicePort) -> bool {
    port.internal_local || (port.external_local && port.externally_accessible())
}

/// Chooses the endpoints of `port` from all of its endpoints.
pub fn categorize(port: ServicePort, endpoints: &[Endpoint]) -> ResolvedPort {
    let pick = |keep: &dyn Fn(&Endpoint) -> bool| -> Vec<Endpoint> {
        let mut chosen: Vec<Endpoint> = endpoints.iter().filter(|e| keep(e)).cloned().collect();
        chosen.sort();
        chosen.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
        chosen
    };
    let serving_terminating = |e: &Endpoint| e.serving && e.terminating;
    let mut cluster = Vec::new();
    if uses_cluster_endpoints(&port) {
        cluster = pick(&|e| e.ready);
        if cluster.is_empty() {
            cluster = pick(&serving_terminating);
        }
    }
    let has_any = endpoints.iter().any(|e| e.ready || serving_terminating(e));
    let mut local = Vec::new();
    if uses_local_endpoints(&port) {
        local = pick(&|e| e.local && e.ready);
        if local.is_empty() {
            local = pick(&|e| e.local && serving_terminating(e));
        }
    }
    let local_ready = pick(&|e| e.local && e.ready).len();
    let internal = if port.internal_local { local.clone() } else { cluster.clone() };
    let external = if !port.externally_accessible() {
        Vec::new()
    } else if port.external_local {
        local
    } else {
        cluster
    };
    ResolvedPort { port, internal, external, has_any, local_ready }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{Protocol, ServiceKey};
    use std::net::Ipv4Addr;

    fn port(internal_local: bool, external_local: bool, node_port: Option<u16>) -> ServicePort {
        ServicePort {
            service: ServiceKey::new("default", "web"),
            name: String::new(),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 5),
            node_port,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            source_ranges: Vec::new(),
            affinity_seconds: None,
            internal_local,
            external_local,
            health_check_node_port: None,
        }
    }

    /// `n`: last octet; `state`: r = ready, t = serving and terminating, x = terminating and not
    /// serving, u = unready; `local`: on this node.
    fn ep(n: u8, state: char, local: bool) -> Endpoint {
        let (ready, serving, terminating) = match state {
            'r' => (true, true, false),
            't' => (false, true, true),
            'x' => (false, false, true),
            _ => (false, false, false),
        };
        Endpoint { ip: Ipv4Addr::new(10, 244, 0, n), port: 8080, ready, serving, terminating, local }
    }

    fn octets(endpoints: &[Endpoint]) -> Vec<u8> {
        endpoints.iter().map(|e| e.ip.octets()[3]).collect()
    }

    #[test]
    fn endpoint_choice_per_policy() {
        // (what, internal local, external local, node port, endpoints, internal, external, has_any, no-endpoint verdict)
        type Case = (&'static str, bool, bool, Option<u16>, Vec<Endpoint>, Vec<u8>, Vec<u8>, bool, NoEndpoints);
        let cases: Vec<Case> = vec![
            (
                "ready only",
                false,
                false,
                None,
                vec![ep(5, 'r', false), ep(6, 'u', true), ep(7, 'r', true)],
                vec![5, 7],
                vec![],
                true,
                NoEndpoints::Drop,
            ),
            (
                "terminating fallback",
                false,
                false,
                None,
                vec![ep(5, 't', false), ep(6, 'x', false), ep(7, 'u', false)],
                vec![5],
                vec![],
                true,
                NoEndpoints::Drop,
            ),
            (
                "terminating unused while one is ready",
                false,
                false,
                None,
                vec![ep(5, 't', false), ep(6, 'r', false)],
                vec![6],
                vec![],
                true,
                NoEndpoints::Drop,
            ),
            (
                "nothing usable",
                false,
                false,
                Some(30001),
                vec![ep(5, 'u', false), ep(6, 'x', true)],
                vec![],
                vec![],
                false,
                NoEndpoints::Reject,
            ),
            ("no endpoints", false, false, None, vec![], vec![], vec![], false, NoEndpoints::Reject),
            (
                "nodeport cluster policy",
                false,
                false,
                Some(30001),
                vec![ep(5, 'r', false), ep(6, 'r', true)],
                vec![5, 6],
                vec![5, 6],
                true,
                NoEndpoints::Drop,
            ),
            (
                "external local",
                false,
                true,
                Some(30001),
                vec![ep(5, 'r', false), ep(6, 'r', true)],
                vec![5, 6],
                vec![6],
                true,
                NoEndpoints::Drop,
            ),
            (
                "external local, none here",
                false,
                true,
                Some(30001),
                vec![ep(5, 'r', false)],
                vec![5],
                vec![],
                true,
                NoEndpoints::Drop,
            ),
            (
                "external local, local terminating fallback",
                false,
                true,
                Some(30001),
                vec![ep(5, 'r', false), ep(6, 't', true)],
                vec![5],
                vec![6],
                true,
                NoEndpoints::Drop,
            ),
            (
                "internal local",
                true,
                false,
                None,
                vec![ep(5, 'r', false), ep(6, 'r', true)],
                vec![6],
                vec![],
                true,
                NoEndpoints::Drop,
            ),
            (
                "internal local, none here",
                true,
                false,
                None,
                vec![ep(5, 'r', false)],
                vec![],
                vec![],
                true,
                NoEndpoints::Drop,
            ),
            (
                "both local",
                true,
                true,
                Some(30001),
                vec![ep(5, 'r', false), ep(6, 'r', true)],
                vec![6],
                vec![6],
                true,
                NoEndpoints::Drop,
            ),
            (
                "internal local, external cluster",
                true,
                false,
                Some(30001),
                vec![ep(5, 'r', false), ep(6, 'r', true)],
                vec![6],
                vec![5, 6],
                true,
                NoEndpoints::Drop,
            ),
        ];
        for (what, internal_local, external_local, node_port, endpoints, internal, external, has_any, verdict) in cases
        {
            let resolved = categorize(port(internal_local, external_local, node_port), &endpoints);
            assert_eq!(octets(&resolved.internal), internal, "{what}: internal");
            assert_eq!(octets(&resolved.external), external, "{what}: external");
            assert_eq!(resolved.has_any, has_any, "{what}: has_any");
            assert_eq!(resolved.internal_without_endpoints(), verdict, "{what}: verdict");
        }
    }

    #[test]
    fn duplicates_across_slices_count_once_and_local_ready_counts_for_health_checks() {
        let resolved = categorize(
            port(false, true, Some(30001)),
            &[ep(6, 'r', true), ep(5, 'r', false), ep(6, 'r', true), ep(7, 't', true)],
        );
        assert_eq!(octets(&resolved.internal), vec![5, 6]);
        assert_eq!(resolved.local_ready, 1);
    }
}
