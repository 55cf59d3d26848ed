//! ClusterIP and NodePort allocation for Services, transactional with the Service write.
//!
//! Every allocated value is a record in the store (`allocation:clusterip/<ip>`,
//! `allocation:nodeport/<port>`). A Service write carries, in the same batch, a `Put` with
//! precondition `Absent` for each value it newly holds and a `Delete` for each value it gave up.
//! So a value is never held twice (the store refuses the second `Absent` put), allocations survive
//! restarts with the Service that holds them, and a crash mid-write leaves neither.
//!
//! Dynamic choices follow upstream's static/dynamic split (KEP-3070, KEP-3668): random in the
//! upper band first, the lower (static) band only when the upper one is full, so values users
//! pick from the lower band rarely collide.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use rand::Rng;
use serde_json::{json, Value};

use frontdoor_store::{Precondition, Store, Write};

use crate::errors::{ApiError, Cause};

const CLUSTER_IP_PREFIX: &str = "allocation:clusterip/";
const NODE_PORT_PREFIX: &str = "allocation:nodeport/";

/// The service address range and node port range.
#[derive(Debug, Clone)]
pub struct ServiceNetwork {
    /// First address of the CIDR (the network address).
    network: u32,
    prefix_len: u8,
    /// Usable addresses: network+1 … broadcast-1.
    size: u32,
    pub node_ports: (u16, u16),
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid service CIDR {0:?}: expected an IPv4 CIDR such as 10.96.0.0/12")]
    Cidr(String),
    #[error("the service cluster IP range must be at least 8 IP addresses")]
    TooSmall,
    #[error("invalid node port range {0:?}: expected e.g. 30000-32767")]
    PortRange(String),
}

impl ServiceNetwork {
    pub fn new(cidr: &str, node_ports: &str) -> Result<ServiceNetwork, NetworkError> {
        let (address, prefix) = cidr.split_once('/').ok_or_else(|| NetworkError::Cidr(cidr.into()))?;
        let address: Ipv4Addr = address.parse().map_err(|_| NetworkError::Cidr(cidr.into()))?;
        let prefix_len: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| NetworkError::Cidr(cidr.into()))?;
        let mask = if prefix_len == 0 { 0 } else { u32::MAX << (32 - prefix_len) };
        let total = 1u64 << (32 - prefix_len as u32);
        if total < 8 {
            return Err(NetworkError::TooSmall);
        }
        let (low, high) = node_ports.split_once('-').ok_or_else(|| NetworkError::PortRange(node_ports.into()))?;
        let low: u16 = low.trim().parse().map_err(|_| NetworkError::PortRange(node_ports.into()))?;
        let high: u16 = high.trim().parse().map_err(|_| NetworkError::PortRange(node_ports.into()))?;
        if low == 0 || high < low {
            return Err(NetworkError::PortRange(node_ports.into()));
        }
        Ok(ServiceNetwork {
            network: u32::from(address) & mask,
            prefix_len,
            size: (total - 2) as u32,
            node_ports: (low, high),
        })
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.network), self.prefix_len)
    }

    /// The `index`-th usable address (0 = network + 1).
    pub fn address(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1 + index)
    }

    fn index_of(&self, ip: Ipv4Addr) -> Option<u32> {
        let value = u32::from(ip);
        (value > self.network && value - self.network - 1 < self.size).then(|| value - self.network - 1)
    }

    fn node_port_range(&self) -> String {
        format!("{}-{}", self.node_ports.0, self.node_ports.1)
    }
}

/// Upstream's static band size for ClusterIPs: min(max(16, size/16), 256), 0 for tiny ranges.
fn ip_offset(size: u32) -> u32 {
    if size <= 16 {
        0
    } else {
        (size / 16).clamp(16, 256)
    }
}

/// Upstream's static band size for NodePorts: min(max(16, size/32), 128).
fn port_offset(size: u32) -> u32 {
    if size <= 16 {
        0
    } else {
        (size / 32).clamp(16, 128)
    }
}

/// Picks a free index in [0, size): random in the upper band, then the lower band.
fn pick(size: u32, offset: u32, taken: impl Fn(u32) -> bool) -> Option<u32> {
    let mut rng = rand::rng();
    for (start, end) in [(offset, size), (0, offset)] {
        if start >= end {
            continue;
        }
        for _ in 0..32 {
            let candidate = rng.random_range(start..end);
            if !taken(candidate) {
                return Some(candidate);
            }
        }
        let first = rng.random_range(start..end);
        if let Some(free) = (first..end).chain(start..first).find(|c| !taken(*c)) {
            return Some(free);
        }
    }
    None
}

/// Where an allocation came from: the user asked for it (a clash is their error) or we chose it
/// (a clash with a concurrent writer means: choose again).
#[derive(Debug, Clone)]
pub enum Origin {
    Chosen,
    Requested { field: String, value: Value, detail: String },
}

/// The allocation records a Service write must add and remove.
#[derive(Debug, Default)]
pub struct Plan {
    pub acquire: BTreeMap<String, Origin>,
    pub release: Vec<String>,
}

impl Plan {
    /// The store writes: `Absent` puts for new holds, deletes for released ones.
    pub fn writes(&self, service_ref: &str) -> Vec<Write> {
        let mut writes = Vec::new();
        for key in self.acquire.keys() {
            let record = json!({"service": service_ref});
            writes.push(Write {
                key: key.clone(),
                precondition: Precondition::Absent,
                action: frontdoor_store::Action::Put(Box::new(move |_| record)),
            });
        }
        for key in &self.release {
            writes.push(Write {
                key: key.clone(),
                precondition: Precondition::Exists,
                action: frontdoor_store::Action::Delete(Box::new(|_| Value::Null)),
            });
        }
        writes
    }

    /// Maps a store clash on `key` to the user's error, or `None` if we chose the value (retry).
    pub fn clash(&self, key: &str, name: &str) -> Option<ApiError> {
        match self.acquire.get(key)? {
            Origin::Chosen => None,
            Origin::Requested { field, value, detail } => {
                let already = if key.starts_with(NODE_PORT_PREFIX) {
                    "provided port is already allocated"
                } else {
                    "provided IP is already allocated"
                };
                let message = format!("{detail}{already}");
                Some(ApiError::invalid("Service", "", name, vec![Cause::invalid(field.clone(), value, &message)]))
            }
        }
    }

    pub fn is_allocation(key: &str) -> bool {
        key.starts_with(CLUSTER_IP_PREFIX) || key.starts_with(NODE_PORT_PREFIX)
    }
}

fn service_type(service: &Value) -> &str {
    service.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

fn wants_node_ports(service: &Value) -> bool {
    match service_type(service) {
        "NodePort" => true,
        "LoadBalancer" => {
            service.pointer("/spec/allocateLoadBalancerNodePorts").and_then(Value::as_bool).unwrap_or(true)
        }
        _ => false,
    }
}

/// The allocation keys a Service holds, judged from its spec.
fn held_keys(service: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    if service_type(service) != "ExternalName" {
        for ip in service.pointer("/spec/clusterIPs").and_then(Value::as_array).into_iter().flatten() {
            if let Some(ip) = ip.as_str().filter(|ip| *ip != "None" && !ip.is_empty()) {
                keys.push(format!("{CLUSTER_IP_PREFIX}{ip}"));
            }
        }
    }
    for port in service.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
        if let Some(node_port) = port.get("nodePort").and_then(Value::as_u64).filter(|p| *p > 0) {
            let key = format!("{NODE_PORT_PREFIX}{node_port}");
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    if let Some(hc) = service.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64).filter(|p| *p > 0) {
        let key = format!("{NODE_PORT_PREFIX}{hc}");
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// What a Service held before this write and must give up when it is deleted.
pub fn release_all(service: &Value) -> Plan {
    Plan { acquire: BTreeMap::new(), release: held_keys(service) }
}

fn go_string_list(ips: &[&str]) -> String {
    format!("[]string{{{}}}", ips.iter().map(|ip| format!("{ip:?}")).collect::<Vec<_>>().join(", "))
}

/// Fills in the ClusterIP and NodePorts `new` needs and plans the records to add and remove,
/// relative to `old` (the stored Service on update, `None` on create).
pub fn plan(network: &ServiceNetwork, store: &Store, old: Option<&Value>, new: &mut Value) -> Result<Plan, ApiError> {
    let name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let held_before = old.map(held_keys).unwrap_or_default();
    let mut plan = Plan::default();
    let taken = |key: &str| store.get(key).is_some() && !held_before.iter().any(|h| h == key);

    // ClusterIP.
    if service_type(new) != "ExternalName" {
        let requested: Option<String> =
            new.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|ip| !ip.is_empty()).map(String::from);
        match requested.as_deref() {
            Some("None") => {}
            Some(ip) => {
                let key = format!("{CLUSTER_IP_PREFIX}{ip}");
                if !held_before.contains(&key) {
                    let parsed: Option<Ipv4Addr> = ip.parse().ok();
                    let value = json!(go_string_list(&[ip]));
                    let field = "spec.clusterIPs".to_string();
                    let detail = format!("failed to allocate IP {ip}: ");
                    if parsed.and_then(|p| network.index_of(p)).is_none() {
                        let message = format!("{detail}provided IP {ip} is not in the valid range");
                        return Err(ApiError::invalid(
                            "Service",
                            "",
                            &name,
                            vec![Cause {
                                reason: "FieldValueInvalid",
                                field,
                                message: format!("Invalid value: {}: {message}", value.as_str().unwrap_or_default()),
                            }],
                        ));
                    }
                    if taken(&key) {
                        let message = format!("{detail}provided IP is already allocated");
                        return Err(ApiError::invalid(
                            "Service",
                            "",
                            &name,
                            vec![Cause {
                                reason: "FieldValueInvalid",
                                field,
                                message: format!("Invalid value: {}: {message}", value.as_str().unwrap_or_default()),
                            }],
                        ));
                    }
                    plan.acquire.insert(key, Origin::Requested { field, value, detail });
                }
            }
            None => {
                let offset = ip_offset(network.size);
                let index =
                    pick(network.size, offset, |i| taken(&format!("{CLUSTER_IP_PREFIX}{}", network.address(i))))
                        .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full"))?;
                let ip = network.address(index).to_string();
                plan.acquire.insert(format!("{CLUSTER_IP_PREFIX}{ip}"), Origin::Chosen);
                new["spec"]["clusterIP"] = json!(ip);
                new["spec"]["clusterIPs"] = json!([ip]);
            }
        }
    }

    // NodePorts: one per port (a TCP and a UDP port may share a number within one Service).
    if wants_node_ports(new) {
        let (low, high) = network.node_ports;
        let size = (high - low) as u32 + 1;
        let mut chosen_here: Vec<u64> = Vec::new();
        let count = new.pointer("/spec/ports").and_then(Value::as_array).map_or(0, Vec::len);
        for i in 0..count {
            let requested = new["spec"]["ports"][i].get("nodePort").and_then(Value::as_u64).filter(|p| *p > 0);
            match requested {
                Some(port) => {
                    let key = format!("{NODE_PORT_PREFIX}{port}");
                    if held_before.contains(&key) || plan.acquire.contains_key(&key) {
                        continue;
                    }
                    let field = format!("spec.ports[{i}].nodePort");
                    if port < low as u64 || port > high as u64 {
                        let detail = format!(
                            "provided port is not in the valid range. The range of valid ports is {}",
                            network.node_port_range()
                        );
                        return Err(ApiError::invalid(
                            "Service",
                            "",
                            &name,
                            vec![Cause::invalid(field, &json!(port), &detail)],
                        ));
                    }
                    if taken(&key) {
                        return Err(ApiError::invalid(
                            "Service",
                            "",
                            &name,
                            vec![Cause::invalid(field, &json!(port), "provided port is already allocated")],
                        ));
                    }
                    plan.acquire.insert(key, Origin::Requested { field, value: json!(port), detail: String::new() });
                }
                None => {
                    let offset = port_offset(size);
                    let index = pick(size, offset, |c| {
                        let port = low as u64 + c as u64;
                        chosen_here.contains(&port) || taken(&format!("{NODE_PORT_PREFIX}{port}"))
                    })
                    .ok_or_else(|| ApiError::internal("failed to allocate a nodePort: range is full"))?;
                    let port = low as u64 + index as u64;
                    chosen_here.push(port);
                    plan.acquire.insert(format!("{NODE_PORT_PREFIX}{port}"), Origin::Chosen);
                    new["spec"]["ports"][i]["nodePort"] = json!(port);
                }
            }
        }
    }

    // The health-check NodePort of an `externalTrafficPolicy: Local` LoadBalancer Service, from
    // the same range (as upstream's allocator; kube-proxy serves it).
    if needs_health_check_node_port(new) {
        let (low, high) = network.node_ports;
        let size = (high - low) as u32 + 1;
        match new.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64).filter(|p| *p > 0) {
            Some(port) => {
                let key = format!("{NODE_PORT_PREFIX}{port}");
                if !held_before.contains(&key) && !plan.acquire.contains_key(&key) {
                    let field = "spec.healthCheckNodePort".to_string();
                    let clash = if port < low as u64 || port > high as u64 {
                        Some(format!(
                            "provided port is not in the valid range. The range of valid ports is {}",
                            network.node_port_range()
                        ))
                    } else if taken(&key) {
                        Some("provided port is already allocated".to_string())
                    } else {
                        None
                    };
                    if let Some(detail) = clash {
                        return Err(ApiError::invalid(
                            "Service",
                            "",
                            &name,
                            vec![Cause::invalid(field, &json!(port), &detail)],
                        ));
                    }
                    plan.acquire.insert(key, Origin::Requested { field, value: json!(port), detail: String::new() });
                }
            }
            None => {
                let index = pick(size, port_offset(size), |c| {
                    let key = format!("{NODE_PORT_PREFIX}{}", low as u64 + c as u64);
                    plan.acquire.contains_key(&key) || taken(&key)
                })
                .ok_or_else(|| ApiError::internal("failed to allocate a healthCheckNodePort: range is full"))?;
                let port = low as u64 + index as u64;
                plan.acquire.insert(format!("{NODE_PORT_PREFIX}{port}"), Origin::Chosen);
                new["spec"]["healthCheckNodePort"] = json!(port);
            }
        }
    }

    let held_after = held_keys(new);
    plan.release = held_before.into_iter().filter(|k| !held_after.contains(k)).collect();
    Ok(plan)
}

fn needs_health_check_node_port(service: &Value) -> bool {
    service_type(service) == "LoadBalancer"
        && service.pointer("/spec/externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_bands_match_upstream() {
        let network = ServiceNetwork::new("10.96.0.0/12", "30000-32767").unwrap();
        assert_eq!(network.address(0), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(network.address(9), Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(ip_offset(network.size), 256);
        assert_eq!(ip_offset(254), 16);
        assert_eq!(port_offset(2768), 86);
        assert_eq!(network.index_of(Ipv4Addr::new(10, 96, 0, 0)), None);
        assert_eq!(network.index_of(Ipv4Addr::new(10, 111, 255, 255)), None);
        assert_eq!(network.index_of(Ipv4Addr::new(10, 111, 255, 254)), Some(network.size - 1));
        assert!(matches!(ServiceNetwork::new("10.0.0.0/30", "30000-32767"), Err(NetworkError::TooSmall)));
    }

    #[test]
    fn picks_the_upper_band_first_then_the_lower() {
        for _ in 0..100 {
            assert!(pick(100, 16, |_| false).unwrap() >= 16);
        }
        assert!(pick(100, 16, |c| c >= 16).unwrap() < 16);
        assert_eq!(pick(100, 16, |c| c != 3), Some(3));
        assert_eq!(pick(100, 16, |_| true), None);
    }
}
