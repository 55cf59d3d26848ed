//! Endpoints as the proxy sees them, parsed once per EndpointSlice.

use std::net::Ipv4Addr;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::service::{Protocol, ServiceKey};

/// One backend of one service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this node (the slice's `nodeName`).
    pub local: bool,
}

/// What one EndpointSlice contributes: its ports and its endpoints' addresses and conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoints {
    pub service: ServiceKey,
    ports: Vec<(String, Protocol, u16)>,
    endpoints: Vec<SliceEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct SliceEndpoint {
    ip: Ipv4Addr,
    ready: bool,
    serving: bool,
    terminating: bool,
    node: Option<String>,
}

/// The label that names the Service a slice belongs to.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

impl SliceEndpoints {
    /// Parses an IPv4 slice that names its Service; `None` for others.
    pub fn parse(slice: &EndpointSlice) -> Option<SliceEndpoints> {
        if slice.address_type != "IPv4" {
            return None;
        }
        let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|port| {
                let protocol = Protocol::parse(port.protocol.as_deref().unwrap_or("TCP"))?;
                let number = u16::try_from(port.port?).ok().filter(|p| *p != 0)?;
                Some((port.name.clone().unwrap_or_default(), protocol, number))
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .filter_map(|endpoint| {
                // As kube-proxy: only the first address counts.
                let ip: Ipv4Addr = endpoint.addresses.first()?.parse().ok()?;
                let conditions = endpoint.conditions.as_ref();
                // An unknown readiness counts as ready; serving defaults to readiness.
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                Some(SliceEndpoint { ip, ready, serving, terminating, node: endpoint.node_name.clone() })
            })
            .collect();
        Some(SliceEndpoints { service: ServiceKey::new(namespace, service), ports, endpoints })
    }

    /// The endpoints of the service port named `name` with `protocol`, `local` meaning on `node`.
    pub fn endpoints_for<'a>(
        &'a self,
        name: &'a str,
        protocol: Protocol,
        node: &'a str,
    ) -> impl Iterator<Item = Endpoint> + 'a {
        let port = self.ports.iter().find(|(n, p, _)| n == name && *p == protocol).map(|(_, _, port)| *port);
        port.into_iter().flat_map(move |port| {
            self.endpoints.iter().map(move |e| Endpoint {
                ip: e.ip,
                port,
                ready: e.ready,
                serving: e.serving,
                terminating: e.terminating,
                local: e.node.as_deref() == Some(node),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_default_as_upstream_and_ports_match_by_name_and_protocol() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}],
            "endpoints": [
                {"addresses": ["10.244.0.5"], "nodeName": "n1"},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": false, "serving": true, "terminating": true}, "nodeName": "n2"},
                {"addresses": ["10.244.0.7"], "conditions": {"ready": false}},
                {"addresses": ["not-an-ip"]}
            ]
        }))
        .unwrap();
        let parsed = SliceEndpoints::parse(&slice).unwrap();
        assert_eq!(parsed.service, ServiceKey::new("default", "web"));
        let http: Vec<Endpoint> = parsed.endpoints_for("http", Protocol::Tcp, "n1").collect();
        let summary: Vec<_> =
            http.iter().map(|e| (e.ip.to_string(), e.port, e.ready, e.serving, e.terminating, e.local)).collect();
        assert_eq!(
            summary,
            vec![
                ("10.244.0.5".to_string(), 8080, true, true, false, true),
                ("10.244.0.6".to_string(), 8080, false, true, true, false),
                ("10.244.0.7".to_string(), 8080, false, false, false, false),
            ]
        );
        assert_eq!(parsed.endpoints_for("dns", Protocol::Udp, "n1").count(), 3);
        assert_eq!(parsed.endpoints_for("dns", Protocol::Tcp, "n1").count(), 0);
        assert_eq!(parsed.endpoints_for("", Protocol::Tcp, "n1").count(), 0);
    }

    #[test]
    fn ipv6_and_unlabelled_slices_are_not_ours() {
        let v6: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "x", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv6", "endpoints": []
        }))
        .unwrap();
        let unlabelled: EndpointSlice =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": []})).unwrap();
        assert!(SliceEndpoints::parse(&v6).is_none());
        assert!(SliceEndpoints::parse(&unlabelled).is_none());
    }
}
