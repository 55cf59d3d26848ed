//! The desired v1 Endpoints of a selector Service, as upstream's endpoints controller builds
//! it: one address per pod and Service port, ready or not ready, repacked into canonical
//! subsets (upstream's `RepackSubsets`) and truncated to 1000 addresses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::pods;
use crate::service;
use crate::wellknown::{HEADLESS, OVER_CAPACITY, SKIP_MIRROR};

/// The most addresses one Endpoints object holds (upstream's `maxCapacity`).
pub const MAX_CAPACITY: usize = 1000;

/// The Endpoints object to write, or `None` when `current` already says the same.
pub fn plan(service: &Service, pods: &[&Pod], current: Option<&Endpoints>) -> Option<Endpoints> {
    let mut subsets = desired_subsets(service, pods);
    let truncated = truncate(&mut subsets, MAX_CAPACITY);
    let labels = desired_labels(service);

    if let Some(current) = current {
        let same_subsets = normalized(current.subsets.as_deref().unwrap_or_default()) == normalized(&subsets);
        let same_labels = current.metadata.labels.clone().unwrap_or_default() == labels;
        let marked = current.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(OVER_CAPACITY));
        if same_subsets && same_labels && marked == truncated {
            return None;
        }
    }

    let mut next = current.cloned().unwrap_or_else(|| Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            ..Default::default()
        },
        ..Default::default()
    });
    next.subsets = (!subsets.is_empty()).then_some(subsets);
    next.metadata.labels = Some(labels);
    let annotations = next.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    if annotations.is_empty() {
        next.metadata.annotations = None;
    }
    Some(next)
}

/// The Service's labels, the headless marker when it has no cluster IP, and skip-mirror (the
/// EndpointSlice controller already publishes these endpoints as slices).
fn desired_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if service::has_cluster_ip(service) {
        labels.remove(HEADLESS);
    } else {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels.insert(SKIP_MIRROR.into(), "true".into());
    labels
}

/// Subsets for the pods, before truncation.
pub fn desired_subsets(service: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let publish_not_ready = service::publishes_not_ready(service);
    let family = service::primary_address_type(service);
    let service_ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut expanded = Vec::new();
    for pod in pods {
        if !pods::should_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(ip) = pods::addresses(pod, family).into_iter().next() else {
            continue;
        };
        let address = EndpointAddress {
            ip,
            hostname: pods::hostname_for(pod, service),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let ready = publish_not_ready || pods::is_ready(pod);
        if service_ports.is_empty() {
            // A headless Service may have no ports; its addresses still count.
            if service::is_headless(service) {
                expanded.push(one_address(address, None, ready));
            }
            continue;
        }
        for service_port in &service_ports {
            let Some(port) = pods::find_port(pod, service_port) else {
                continue;
            };
            let port = EndpointPort {
                name: service_port.name.clone().filter(|n| !n.is_empty()),
                port,
                protocol: Some(service_port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: service_port.app_protocol.clone(),
            };
            expanded.push(one_address(address.clone(), Some(port), ready));
        }
    }
    repack(&expanded)
}

fn one_address(address: EndpointAddress, port: Option<EndpointPort>, ready: bool) -> EndpointSubset {
    let (addresses, not_ready) = if ready { (Some(vec![address]), None) } else { (None, Some(vec![address])) };
    EndpointSubset { addresses, not_ready_addresses: not_ready, ports: port.map(|p| vec![p]) }
}

/// Identifies an address across subsets: IP and target uid.
type AddressId = (String, String);
/// Orders ports; `None` stands for "no ports" (upstream's `Port: -1` sentinel).
type PortId = Option<(String, i32, String, String)>;

fn address_id(address: &EndpointAddress) -> AddressId {
    (address.ip.clone(), address.target_ref.as_ref().and_then(|t| t.uid.clone()).unwrap_or_default())
}

fn port_id(port: &EndpointPort) -> PortId {
    Some((
        port.name.clone().unwrap_or_default(),
        port.port,
        port.protocol.clone().unwrap_or_default(),
        port.app_protocol.clone().unwrap_or_default(),
    ))
}

/// Upstream's `RepackSubsets`: expands subsets to (address, port, ready) triples, then packs
/// every group of ports offered by exactly the same addresses into one subset. An address
/// not ready on some port is not ready there even if another subset says ready. Addresses
/// are sorted by IP then target uid, ports and subsets in a fixed order, so equal contents
/// give equal objects.
pub fn repack(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let mut addresses: BTreeMap<AddressId, EndpointAddress> = BTreeMap::new();
    let mut by_port: BTreeMap<PortId, (Option<EndpointPort>, BTreeMap<AddressId, bool>)> = BTreeMap::new();
    for subset in subsets {
        let ports: Vec<Option<&EndpointPort>> = match subset.ports.as_deref() {
            Some(ports) if !ports.is_empty() => ports.iter().map(Some).collect(),
            _ => vec![None],
        };
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, false));
        for (address, is_ready) in ready.chain(not_ready) {
            let id = address_id(address);
            addresses.entry(id.clone()).or_insert_with(|| address.clone());
            for port in &ports {
                let key = port.and_then(port_id);
                let (_, members) = by_port.entry(key).or_insert_with(|| (port.cloned(), BTreeMap::new()));
                let state = members.entry(id.clone()).or_insert(is_ready);
                *state &= is_ready;
            }
        }
    }

    let mut by_members: BTreeMap<Vec<(AddressId, bool)>, Vec<Option<EndpointPort>>> = BTreeMap::new();
    for (port, members) in by_port.into_values() {
        by_members.entry(members.into_iter().collect()).or_default().push(port);
    }
    by_members
        .into_iter()
        .map(|(members, ports)| {
            let pick = |want: bool| -> Option<Vec<EndpointAddress>> {
                let list: Vec<EndpointAddress> =
                    members.iter().filter(|(_, r)| *r == want).map(|(id, _)| addresses[id].clone()).collect();
                (!list.is_empty()).then_some(list)
            };
            let ports: Vec<EndpointPort> = ports.into_iter().flatten().collect();
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Upstream's `truncateEndpoints`: keeps at most `max` addresses, spread over the subsets in
/// proportion, ready ones first. True when something was cut.
pub fn truncate(subsets: &mut [EndpointSubset], max: usize) -> bool {
    let count = |list: &Option<Vec<EndpointAddress>>| list.as_ref().map_or(0, Vec::len);
    let total_ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if total_ready + total_not_ready <= max {
        return false;
    }
    let truncate_ready = total_ready > max;
    let (budget, total) = if truncate_ready { (max, total_ready) } else { (max - total_ready, total_not_ready) };
    let mut left = budget;
    for subset in subsets.iter_mut() {
        let in_subset = if truncate_ready { count(&subset.addresses) } else { count(&subset.not_ready_addresses) };
        let share = (in_subset * budget).div_ceil(total).min(left);
        if truncate_ready {
            if let Some(list) = subset.addresses.as_mut() {
                list.truncate(share);
            }
            subset.not_ready_addresses = None;
            left -= count(&subset.addresses);
        } else {
            if let Some(list) = subset.not_ready_addresses.as_mut() {
                list.truncate(share);
            }
            left -= count(&subset.not_ready_addresses);
        }
    }
    true
}

/// Subsets with empty lists as `None` and target resourceVersions dropped, for comparison.
fn normalized(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let clean = |list: &Option<Vec<EndpointAddress>>| -> Option<Vec<EndpointAddress>> {
        let list: Vec<EndpointAddress> = list
            .iter()
            .flatten()
            .map(|a| EndpointAddress {
                target_ref: a.target_ref.clone().map(|t| ObjectReference { resource_version: None, ..t }),
                ..a.clone()
            })
            .collect();
        (!list.is_empty()).then_some(list)
    };
    subsets
        .iter()
        .map(|s| EndpointSubset {
            addresses: clean(&s.addresses),
            not_ready_addresses: clean(&s.not_ready_addresses),
            ports: s.ports.clone().filter(|p| !p.is_empty()),
        })
        .collect()
}

#[cfg(test)]
mod tests;
