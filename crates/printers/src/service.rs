//! Service discovery kinds: Service, Endpoints and discovery.k8s.io EndpointSlice.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::descriptions::{self as d, string_column, wide_string_column, AGE_COLUMN, NAME_COLUMN};
use crate::labels::format_labels;
use crate::util::{
    age_cell, array_at, get, i64_at, join_host_port, list_with_more, name_cell, opt_i64, opt_str, str_at,
};
use crate::ColumnDefinition;

pub(crate) const SERVICE_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    string_column("Type", d::SERVICE_SPEC_TYPE),
    string_column("Cluster-IP", d::SERVICE_SPEC_CLUSTER_IP),
    string_column("External-IP", d::SERVICE_SPEC_EXTERNAL_IPS),
    string_column("Port(s)", d::SERVICE_SPEC_PORTS),
    AGE_COLUMN,
    wide_string_column("Selector", d::SERVICE_SPEC_SELECTOR),
];

pub(crate) const ENDPOINTS_COLUMNS: &[ColumnDefinition] =
    &[NAME_COLUMN, string_column("Endpoints", d::ENDPOINTS_SUBSETS), AGE_COLUMN];

pub(crate) const ENDPOINT_SLICE_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    string_column("AddressType", d::ENDPOINT_SLICE_ADDRESS_TYPE),
    string_column("Ports", d::ENDPOINT_SLICE_PORTS),
    string_column("Endpoints", d::ENDPOINT_SLICE_ENDPOINTS),
    AGE_COLUMN,
];

/// How many addresses/ports the list cells show before ` + N more...`.
const LIST_MAX: usize = 3;

pub(crate) fn service_cells(svc: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // Upstream defaults an unset type to ClusterIP before anything is printed.
    let svc_type = opt_str(svc, &["spec", "type"]).unwrap_or("ClusterIP");
    let ports = port_string(array_at(svc, &["spec", "ports"]));
    vec![
        name_cell(svc),
        Value::from(svc_type),
        Value::from(cluster_ip(svc)),
        Value::from(external_ip(svc, svc_type)),
        Value::from(if ports.is_empty() { "<none>".to_string() } else { ports }),
        age_cell(svc, now),
        Value::from(format_labels(get(svc, &["spec", "selector"]))),
    ]
}

/// `spec.clusterIPs[0]` (`None` for headless services), `<none>` if unallocated. Objects that
/// only carry the legacy singular `spec.clusterIP` are read from it.
fn cluster_ip(svc: &Value) -> String {
    let ip = match array_at(svc, &["spec", "clusterIPs"]).first() {
        Some(first) => first.as_str().unwrap_or(""),
        None => str_at(svc, &["spec", "clusterIP"]),
    };
    if ip.is_empty() {
        "<none>".to_string()
    } else {
        ip.to_string()
    }
}

/// upstream `getServiceExternalIP` with `wide` set, as the server always prints.
fn external_ip(svc: &Value, svc_type: &str) -> String {
    let external_ips: Vec<&str> = array_at(svc, &["spec", "externalIPs"]).iter().filter_map(Value::as_str).collect();
    match svc_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let mut addresses = load_balancer_addresses(array_at(svc, &["status", "loadBalancer", "ingress"]));
            addresses.extend(external_ips.iter().map(ToString::to_string));
            if addresses.is_empty() {
                "<pending>".to_string()
            } else {
                addresses.join(",")
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// Load-balancer ingress points (IP, else hostname), de-duplicated and sorted as upstream's
/// `sets.String` does. Upstream clips this to 16 characters only for non-wide output, which the
/// server never generates. Shared with the Ingress printer.
pub(crate) fn load_balancer_addresses(ingress: &[Value]) -> Vec<String> {
    let set: BTreeSet<&str> = ingress
        .iter()
        .filter_map(|point| {
            let ip = str_at(point, &["ip"]);
            let hostname = str_at(point, &["hostname"]);
            [ip, hostname].into_iter().find(|s| !s.is_empty())
        })
        .collect();
    set.into_iter().map(str::to_string).collect()
}

/// upstream `makePortString`: `port/PROTO`, or `port:nodePort/PROTO`, joined by `,`.
fn port_string(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|p| {
            let port = i64_at(p, &["port"]);
            let protocol = opt_str(p, &["protocol"]).unwrap_or("TCP");
            match i64_at(p, &["nodePort"]) {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn endpoints_cells(ep: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name_cell(ep), Value::from(format_endpoints(array_at(ep, &["subsets"]))), age_cell(ep, now)]
}

/// upstream `formatEndpoints` (all ports): `ip:port` for every port × ready address, bare IPs
/// for port-less subsets; at most three, then ` + N more...`; `<none>` without subsets.
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = array_at(subset, &["addresses"]);
        let ports = array_at(subset, &["ports"]);
        let ips = addresses.iter().map(|a| str_at(a, &["ip"]));
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            list.extend(ips.take(LIST_MAX - list.len()).map(str::to_string));
            continue;
        }
        for port in ports {
            let port = i64_at(port, &["port"]);
            count += addresses.len();
            let room = LIST_MAX - list.len();
            list.extend(ips.clone().take(room).map(|ip| join_host_port(ip, port)));
        }
    }
    let joined = list.join(",");
    if count > LIST_MAX {
        format!("{joined} + {} more...", count - LIST_MAX)
    } else {
        joined
    }
}

pub(crate) fn endpoint_slice_cells(slice: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        name_cell(slice),
        Value::from(str_at(slice, &["addressType"])),
        Value::from(format_slice_ports(array_at(slice, &["ports"]))),
        Value::from(format_slice_endpoints(array_at(slice, &["endpoints"]))),
        age_cell(slice, now),
    ]
}

/// upstream `formatDiscoveryPorts`: the port number, else its name, else `*` (all ports).
fn format_slice_ports(ports: &[Value]) -> String {
    let list: Vec<String> = ports
        .iter()
        .take(LIST_MAX)
        .map(|p| match (opt_i64(p, &["port"]), opt_str(p, &["name"])) {
            (Some(number), _) => number.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    list_with_more(&list, ports.len(), LIST_MAX)
}

/// upstream `formatDiscoveryEndpoints`: every address of every endpoint.
fn format_slice_endpoints(endpoints: &[Value]) -> String {
    let addresses: Vec<&str> =
        endpoints.iter().flat_map(|e| array_at(e, &["addresses"]).iter().map(|a| a.as_str().unwrap_or(""))).collect();
    let list: Vec<String> = addresses.iter().take(LIST_MAX).map(ToString::to_string).collect();
    list_with_more(&list, addresses.len(), LIST_MAX)
}
