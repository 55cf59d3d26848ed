//! A Service as the proxy sees it: one [`ServicePort`] per port, IPv4 only.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;

/// `namespace/name` of a Service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ServiceKey {
        ServiceKey { namespace: namespace.into(), name: name.into() }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(value: &str) -> Option<Protocol> {
        match value {
            "" | "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// Lower-case name, as kube-proxy writes it in chain names.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A `loadBalancerSourceRanges` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceRange {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl SourceRange {
    pub fn parse(text: &str) -> Option<SourceRange> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, prefix.parse::<u8>().ok().filter(|p| *p <= 32)?),
            None => (text, 32),
        };
        let address: Ipv4Addr = address.parse().ok()?;
        Some(SourceRange { network: Ipv4Addr::from(u32::from(address) & Self::mask_of(prefix)), prefix })
    }

    pub fn mask(self) -> u32 {
        Self::mask_of(self.prefix)
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    pub fn contains(self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask() == u32::from(self.network)
    }
}

/// One port of a Service, with every address it is reached at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub service: ServiceKey,
    /// The port's name (`""` for a single unnamed port): EndpointSlice ports match by it.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub cluster_ip: Ipv4Addr,
    pub node_port: Option<u16>,
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` (those with `ipMode: Proxy` are the load balancer's own
    /// business, as kube-proxy treats them).
    pub load_balancer_ips: Vec<Ipv4Addr>,
    pub source_ranges: Vec<SourceRange>,
    /// `sessionAffinity: ClientIP` and its timeout in seconds.
    pub affinity_seconds: Option<u32>,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local` on a NodePort or LoadBalancer Service.
    pub external_local: bool,
    /// `healthCheckNodePort` of a LoadBalancer Service with `externalTrafficPolicy: Local`.
    pub health_check_node_port: Option<u16>,
}

impl ServicePort {
    /// kube-proxy's `ServicePortName` string: `ns/name:port` (or `ns/name` for an unnamed port).
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            self.service.to_string()
        } else {
            format!("{}:{}", self.service, self.name)
        }
    }

    /// Whether the port takes traffic from outside the cluster (kube-proxy's `ExternallyAccessible`).
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }
}

/// The IPv4 ports of a Service the proxy serves: none for ExternalName, headless and IPv6-only
/// Services, nor for ports with an unknown protocol.
pub fn service_ports(service: &Service) -> Vec<ServicePort> {
    let Some(spec) = service.spec.as_ref() else { return Vec::new() };
    let kind = spec.type_.as_deref().unwrap_or("ClusterIP");
    if kind == "ExternalName" {
        return Vec::new();
    }
    let cluster_ip =
        spec.cluster_ips.iter().flatten().chain(spec.cluster_ip.iter()).find_map(|ip| ip.parse::<Ipv4Addr>().ok());
    let Some(cluster_ip) = cluster_ip else { return Vec::new() };
    let key = ServiceKey::new(
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    let takes_external = matches!(kind, "NodePort" | "LoadBalancer");
    let is_load_balancer = kind == "LoadBalancer";
    let external_local = takes_external && spec.external_traffic_policy.as_deref() == Some("Local");
    let external_ips: Vec<Ipv4Addr> =
        spec.external_ips.iter().flatten().filter_map(|ip| ip.trim().parse().ok()).collect();
    let load_balancer_ips: Vec<Ipv4Addr> = if is_load_balancer {
        let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
        ingress
            .into_iter()
            .flatten()
            .filter(|ingress| ingress.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|ingress| ingress.ip.as_deref()?.parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    let source_ranges: Vec<SourceRange> = if is_load_balancer {
        spec.load_balancer_source_ranges.iter().flatten().filter_map(|range| SourceRange::parse(range)).collect()
    } else {
        Vec::new()
    };
    let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        let timeout =
            spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()).and_then(|c| c.timeout_seconds);
        timeout.and_then(|t| u32::try_from(t).ok()).filter(|t| *t > 0).unwrap_or(10_800)
    });
    let health_check_node_port = spec
        .health_check_node_port
        .filter(|_| is_load_balancer && external_local)
        .and_then(|port| u16::try_from(port).ok())
        .filter(|port| *port != 0);
    let mut ports = Vec::new();
    for port in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(port.protocol.as_deref().unwrap_or("TCP")) else { continue };
        let Ok(number) = u16::try_from(port.port) else { continue };
        let node_port =
            port.node_port.filter(|_| takes_external).and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0);
        ports.push(ServicePort {
            service: key.clone(),
            name: port.name.clone().unwrap_or_default(),
            protocol,
            port: number,
            cluster_ip,
            node_port,
            external_ips: external_ips.clone(),
            load_balancer_ips: load_balancer_ips.clone(),
            source_ranges: source_ranges.clone(),
            affinity_seconds,
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            external_local,
            health_check_node_port,
        });
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn ports_of_each_service_shape() {
        let cases = [
            ("clusterip", json!({"type": "ClusterIP", "clusterIP": "10.96.0.5", "ports": [{"port": 80}]}), 1),
            ("headless", json!({"clusterIP": "None", "ports": [{"port": 80}]}), 0),
            ("externalname", json!({"type": "ExternalName", "externalName": "x.example", "ports": [{"port": 80}]}), 0),
            ("ipv6 only", json!({"clusterIP": "fd00::5", "clusterIPs": ["fd00::5"], "ports": [{"port": 80}]}), 0),
            (
                "two ports",
                json!({"clusterIP": "10.96.0.5", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "protocol": "UDP"}]}),
                2,
            ),
            ("unknown protocol", json!({"clusterIP": "10.96.0.5", "ports": [{"port": 80, "protocol": "QUIC"}]}), 0),
        ];
        for (what, spec, count) in cases {
            let ports =
                service_ports(&service(json!({"metadata": {"namespace": "default", "name": "s"}, "spec": spec})));
            assert_eq!(ports.len(), count, "{what}");
        }
    }

    #[test]
    fn load_balancer_port_carries_every_frontend_and_policy() {
        let svc = service(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {
                "type": "LoadBalancer", "clusterIP": "10.96.0.7", "externalIPs": ["192.0.2.9", "nonsense"],
                "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
                "sessionAffinity": "ClientIP",
                "loadBalancerSourceRanges": ["192.168.0.0/16", "10.1.2.3"],
                "ports": [{"name": "http", "port": 80, "nodePort": 30080, "targetPort": 8080}]
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.240"}, {"ip": "192.168.1.241", "ipMode": "Proxy"}, {"hostname": "lb.example"}]}}
        }));
        let ports = service_ports(&svc);
        let port = &ports[0];
        assert_eq!(port.display_name(), "default/web:http");
        assert_eq!(port.node_port, Some(30080));
        assert_eq!(port.external_ips, vec![Ipv4Addr::new(192, 0, 2, 9)]);
        assert_eq!(port.load_balancer_ips, vec![Ipv4Addr::new(192, 168, 1, 240)]);
        assert_eq!(
            port.source_ranges,
            vec![SourceRange::parse("192.168.0.0/16").unwrap(), SourceRange::parse("10.1.2.3/32").unwrap()]
        );
        assert_eq!(port.affinity_seconds, Some(10_800));
        assert!(port.external_local && !port.internal_local);
        assert_eq!(port.health_check_node_port, Some(32000));
        assert!(port.externally_accessible());
    }

    #[test]
    fn cluster_ip_service_ignores_external_only_fields() {
        let svc = service(json!({
            "metadata": {"namespace": "default", "name": "api"},
            "spec": {"clusterIP": "10.96.0.8", "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local",
                     "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                     "ports": [{"port": 80, "nodePort": 30001}]}
        }));
        let port = &service_ports(&svc)[0];
        assert_eq!((port.node_port, port.external_local, port.internal_local), (None, false, true));
        assert_eq!(port.affinity_seconds, Some(60));
        assert!(!port.externally_accessible());
    }

    #[test]
    fn source_ranges() {
        let cases = [
            ("10.0.0.0/8", Some(("10.0.0.0", 8))),
            ("10.1.2.3/8", Some(("10.0.0.0", 8))),
            ("1.2.3.4", Some(("1.2.3.4", 32))),
            ("0.0.0.0/0", Some(("0.0.0.0", 0))),
            ("1.2.3.4/33", None),
            ("fd00::/8", None),
        ];
        for (text, expected) in cases {
            let parsed = SourceRange::parse(text).map(|r| (r.network.to_string(), r.prefix));
            assert_eq!(parsed, expected.map(|(n, p)| (n.to_string(), p)), "{text}");
        }
        assert!(SourceRange::parse("192.168.0.0/16").unwrap().contains(Ipv4Addr::new(192, 168, 4, 5)));
        assert!(!SourceRange::parse("192.168.0.0/16").unwrap().contains(Ipv4Addr::new(192, 169, 0, 1)));
        assert!(SourceRange::parse("0.0.0.0/0").unwrap().contains(Ipv4Addr::new(8, 8, 8, 8)));
    }
}
