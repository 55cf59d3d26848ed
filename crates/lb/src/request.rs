//! What a LoadBalancer Service asks of the allocator, read from its spec and annotations.
//! Pure: no I/O.
//!
//! - **A specific address**: `spec.loadBalancerIP` (deprecated upstream, still honoured by
//!   MetalLB), MetalLB's `metallb.io/loadBalancerIPs` (a comma list; the IPv4 entry is used, an
//!   IPv6 one of a dual-stack request is ignored), or GKE's
//!   `networking.gke.io/load-balancer-ip-addresses` (a comma list of reserved addresses: their
//!   names or the addresses themselves; frontdoor has no address reservations, so only
//!   addresses are understood and a name is refused). When several are given they must name
//!   the same address (MetalLB refuses its annotation together with `spec.loadBalancerIP`
//!   even when they agree; agreeing requests are accepted here).
//! - **Internal**: `networking.gke.io/load-balancer-type: Internal` (or the older
//!   `cloud.google.com/load-balancer-type: Internal`; the value in any case) takes an address
//!   from the internal pools.
//! - **Sharing**: `metallb.io/allow-shared-ip: <key>`, as MetalLB (see
//!   [`allocator`](crate::allocator)).
//! - **Ports**: each `spec.ports` entry's port and protocol (TCP when omitted).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::Service;

pub const METALLB_LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
pub const METALLB_ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
const METALLB_DEPRECATED_LOAD_BALANCER_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
const METALLB_DEPRECATED_ALLOW_SHARED_IP: &str = "metallb.universe.tf/allow-shared-ip";
pub const GKE_IP_ADDRESSES: &str = "networking.gke.io/load-balancer-ip-addresses";
pub const GKE_LOAD_BALANCER_TYPE: &str = "networking.gke.io/load-balancer-type";
pub const GKE_LEGACY_LOAD_BALANCER_TYPE: &str = "cloud.google.com/load-balancer-type";

/// One port a Service serves on its load-balancer address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    pub protocol: String,
    pub port: i32,
}

impl PortKey {
    pub fn new(protocol: &str, port: i32) -> PortKey {
        PortKey { protocol: protocol.to_string(), port }
    }
}

impl fmt::Display for PortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// MetalLB's sharing identity: the `allow-shared-ip` key and the backend key (the selector
/// when `externalTrafficPolicy: Local`, else empty), both of which must match to share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sharing {
    pub key: String,
    pub backend: String,
}

/// What a Service asks for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Request {
    /// Take the address from the internal pools.
    pub internal: bool,
    /// This address and no other.
    pub wanted: Option<Ipv4Addr>,
    pub ports: Vec<PortKey>,
    pub sharing: Option<Sharing>,
    /// The address the Service's status shows (kept when still allowed: a restart or a
    /// lost in-memory assignment keeps every address).
    pub current: Option<Ipv4Addr>,
}

/// Why a Service's request cannot be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{source_name} {value:?} is not an IP address")]
    Invalid { source_name: &'static str, value: String },
    #[error("{source_name} {value:?} has no IPv4 address (frontdoor assigns IPv4 load-balancer addresses only)")]
    NotIpv4 { source_name: &'static str, value: String },
    #[error("{source_name} {value:?} names more than one IPv4 address; a Service gets one")]
    SeveralIpv4 { source_name: &'static str, value: String },
    #[error(
        "{GKE_IP_ADDRESSES} {name:?} names a reserved address; frontdoor has no address reservations, \
         give the IPv4 address itself (or remove the annotation to get one from the pool)"
    )]
    ReservedName { name: String },
    #[error("conflicting addresses requested: {first_source} asks for {first}, {second_source} for {second}")]
    Conflicting { first_source: &'static str, first: Ipv4Addr, second_source: &'static str, second: Ipv4Addr },
}

/// The annotation of the first of `names` the Service carries, if not empty.
fn annotation<'a>(service: &'a Service, names: &[&'static str]) -> Option<(&'static str, &'a str)> {
    let annotations = service.metadata.annotations.as_ref()?;
    names.iter().find_map(|name| annotations.get(*name).map(|v| (*name, v.trim()))).filter(|(_, v)| !v.is_empty())
}

/// Reads the request of a LoadBalancer Service.
pub fn request(service: &Service) -> Result<Request, RequestError> {
    let annotation = |names: &[&'static str]| annotation(service, names);
    let spec = service.spec.as_ref();

    let mut wanted: Vec<(&'static str, Ipv4Addr)> = Vec::new();
    if let Some(value) = spec.and_then(|s| s.load_balancer_ip.as_deref()).map(str::trim).filter(|v| !v.is_empty()) {
        let source_name = "spec.loadBalancerIP";
        wanted.push((source_name, one_ipv4(source_name, value, |_| false)?));
    }
    if let Some((source_name, value)) = annotation(&[METALLB_LOAD_BALANCER_IPS, METALLB_DEPRECATED_LOAD_BALANCER_IPS]) {
        wanted.push((source_name, one_ipv4(source_name, value, |_| false)?));
    }
    if let Some((source_name, value)) = annotation(&[GKE_IP_ADDRESSES]) {
        wanted.push((source_name, one_ipv4(source_name, value, |_| true)?));
    }
    if let Some(((first_source, first), (second_source, second))) =
        wanted.first().zip(wanted.iter().find(|(_, ip)| *ip != wanted[0].1))
    {
        return Err(RequestError::Conflicting { first_source, first: *first, second_source, second: *second });
    }

    Ok(Request { wanted: wanted.first().map(|(_, ip)| *ip), ..base(service) })
}

/// Everything of the request but the wanted address (which alone can be malformed).
pub fn base(service: &Service) -> Request {
    let annotation = |names: &[&'static str]| annotation(service, names);
    let spec = service.spec.as_ref();
    let empty = BTreeMap::new();
    let internal = annotation(&[GKE_LOAD_BALANCER_TYPE, GKE_LEGACY_LOAD_BALANCER_TYPE])
        .is_some_and(|(_, value)| value.eq_ignore_ascii_case("Internal"));

    let mut ports: Vec<PortKey> = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| PortKey::new(p.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP"), p.port))
        .collect();
    ports.sort();
    ports.dedup();

    let sharing = annotation(&[METALLB_ALLOW_SHARED_IP, METALLB_DEPRECATED_ALLOW_SHARED_IP]).map(|(_, key)| {
        let local = spec.and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local");
        let backend = if local {
            let selector = spec.and_then(|s| s.selector.as_ref()).unwrap_or(&empty);
            selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        } else {
            String::new()
        };
        Sharing { key: key.to_string(), backend }
    });

    Request { internal, wanted: None, ports, sharing, current: current(service) }
}

/// The first IPv4 address of the Service's `status.loadBalancer.ingress`.
pub fn current(service: &Service) -> Option<Ipv4Addr> {
    status_ips(service).into_iter().find_map(|ip| ip.parse().ok())
}

/// The `ip` of each `status.loadBalancer.ingress` entry (hostname-only entries as "").
pub fn status_ips(service: &Service) -> Vec<String> {
    let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
    ingress.into_iter().flatten().map(|entry| entry.ip.clone().unwrap_or_default()).collect()
}

/// The single IPv4 address of a comma list; IPv6 entries are skipped (the other half of a
/// dual-stack request); an entry that is no IP is an error, or, when `name_ok` says so, a
/// reserved address name (refused: frontdoor has none).
fn one_ipv4(source_name: &'static str, value: &str, name_ok: impl Fn(&str) -> bool) -> Result<Ipv4Addr, RequestError> {
    let mut found = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => found.push(ip),
            Ok(IpAddr::V6(_)) => {}
            Err(_) if name_ok(item) => return Err(RequestError::ReservedName { name: item.to_string() }),
            Err(_) => return Err(RequestError::Invalid { source_name, value: value.to_string() }),
        }
    }
    match found[..] {
        [ip] => Ok(ip),
        [] => Err(RequestError::NotIpv4 { source_name, value: value.to_string() }),
        _ => Err(RequestError::SeveralIpv4 { source_name, value: value.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn service(annotations: Value, spec: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
            "spec": spec,
        }))
        .unwrap()
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn requested_addresses() {
        type Case = (Value, Value, Result<Option<&'static str>, RequestError>);
        let cases: Vec<Case> = vec![
            (json!({}), json!({}), Ok(None)),
            (json!({}), json!({"loadBalancerIP": "192.168.1.241"}), Ok(Some("192.168.1.241"))),
            (json!({}), json!({"loadBalancerIP": ""}), Ok(None)),
            (
                json!({}),
                json!({"loadBalancerIP": "fd00::1"}),
                Err(RequestError::NotIpv4 { source_name: "spec.loadBalancerIP", value: "fd00::1".into() }),
            ),
            (json!({METALLB_LOAD_BALANCER_IPS: "192.168.1.242"}), json!({}), Ok(Some("192.168.1.242"))),
            (json!({METALLB_LOAD_BALANCER_IPS: "fd00::5, 192.168.1.242"}), json!({}), Ok(Some("192.168.1.242"))),
            (json!({"metallb.universe.tf/loadBalancerIPs": "192.168.1.243"}), json!({}), Ok(Some("192.168.1.243"))),
            (
                json!({METALLB_LOAD_BALANCER_IPS: "192.168.1.242,192.168.1.243"}),
                json!({}),
                Err(RequestError::SeveralIpv4 {
                    source_name: METALLB_LOAD_BALANCER_IPS,
                    value: "192.168.1.242,192.168.1.243".into(),
                }),
            ),
            (
                json!({METALLB_LOAD_BALANCER_IPS: "lb-1"}),
                json!({}),
                Err(RequestError::Invalid { source_name: METALLB_LOAD_BALANCER_IPS, value: "lb-1".into() }),
            ),
            (json!({GKE_IP_ADDRESSES: "192.168.1.244"}), json!({}), Ok(Some("192.168.1.244"))),
            (json!({GKE_IP_ADDRESSES: "192.168.1.244,fd00::9"}), json!({}), Ok(Some("192.168.1.244"))),
            // The seeds' manifest: a reserved address's name.
            (
                json!({GKE_IP_ADDRESSES: "my-static-ip"}),
                json!({}),
                Err(RequestError::ReservedName { name: "my-static-ip".into() }),
            ),
            (
                json!({GKE_IP_ADDRESSES: "fd00::9"}),
                json!({}),
                Err(RequestError::NotIpv4 { source_name: GKE_IP_ADDRESSES, value: "fd00::9".into() }),
            ),
            // Several sources agreeing are one request; disagreeing, none.
            (
                json!({METALLB_LOAD_BALANCER_IPS: "192.168.1.245"}),
                json!({"loadBalancerIP": "192.168.1.245"}),
                Ok(Some("192.168.1.245")),
            ),
            (
                json!({GKE_IP_ADDRESSES: "192.168.1.246"}),
                json!({"loadBalancerIP": "192.168.1.245"}),
                Err(RequestError::Conflicting {
                    first_source: "spec.loadBalancerIP",
                    first: ip("192.168.1.245"),
                    second_source: GKE_IP_ADDRESSES,
                    second: ip("192.168.1.246"),
                }),
            ),
        ];
        for (annotations, spec, want) in cases {
            let got = request(&service(annotations.clone(), spec.clone())).map(|r| r.wanted);
            assert_eq!(got, want.map(|w| w.map(ip)), "{annotations} {spec}");
        }
    }

    #[test]
    fn internal_ports_and_sharing() {
        let cases = [
            (json!({GKE_LOAD_BALANCER_TYPE: "Internal"}), true),
            (json!({GKE_LEGACY_LOAD_BALANCER_TYPE: "Internal"}), true),
            (json!({GKE_LOAD_BALANCER_TYPE: "internal"}), true),
            (json!({GKE_LOAD_BALANCER_TYPE: "External"}), false),
            (json!({}), false),
        ];
        for (annotations, internal) in cases {
            assert_eq!(request(&service(annotations.clone(), json!({}))).unwrap().internal, internal, "{annotations}");
        }

        let spec = json!({
            "ports": [{"port": 443}, {"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
            "selector": {"app": "dns", "tier": "edge"},
        });
        let plain = request(&service(json!({}), spec.clone())).unwrap();
        assert_eq!(plain.ports, [PortKey::new("TCP", 53), PortKey::new("TCP", 443), PortKey::new("UDP", 53)]);
        assert_eq!(plain.sharing, None);

        let shared = request(&service(json!({METALLB_ALLOW_SHARED_IP: "dns"}), spec.clone())).unwrap();
        assert_eq!(shared.sharing, Some(Sharing { key: "dns".into(), backend: "".into() }));
        let mut local_spec = spec;
        local_spec["externalTrafficPolicy"] = json!("Local");
        let local = request(&service(json!({METALLB_ALLOW_SHARED_IP: "dns"}), local_spec)).unwrap();
        assert_eq!(local.sharing, Some(Sharing { key: "dns".into(), backend: "app=dns,tier=edge".into() }));
    }

    #[test]
    fn the_current_address_is_read_from_the_status() {
        let mut svc = service(json!({}), json!({}));
        assert_eq!(current(&svc), None);
        svc.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [
            {"hostname": "lb.example.com"}, {"ip": "fd00::1"}, {"ip": "192.168.1.240", "ipMode": "VIP"},
        ]}}))
        .unwrap();
        assert_eq!(current(&svc), Some(ip("192.168.1.240")));
        assert_eq!(status_ips(&svc), ["", "fd00::1", "192.168.1.240"]);
    }
}
