//! The mirroring reconcile, upstream's `endpointslicemirroring` reconciler without I/O: a
//! custom Endpoints object (of a Service without selector) becomes EndpointSlices, one per
//! subset port set and address family, each holding at most `max_per_subset` addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::service::AddressType;
use crate::slices::{self, endpoints_equal_beyond_key, EndpointKey, EndpointSet, PortKey, SliceChanges};
use crate::wellknown::{
    LAST_APPLIED, LAST_CHANGE_TRIGGER_TIME, LEADER_ELECTION, MANAGED_BY, MIRRORING_CONTROLLER, SERVICE_NAME,
    SKIP_MIRROR,
};

/// Whether an Endpoints object is mirrored at all: not labelled skip-mirror and not a
/// leader-election lock. (Its Service must also exist and have no selector.)
pub fn should_mirror(endpoints: &Endpoints) -> bool {
    let skip = endpoints.metadata.labels.as_ref().and_then(|l| l.get(SKIP_MIRROR)).is_some_and(|v| v == "true");
    let lock = endpoints.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(LEADER_ELECTION));
    !skip && !lock
}

/// The changes that make `existing` (the slices mirrored for this Endpoints) match it.
/// Addresses that are not IPs are skipped, as are those past `max_per_subset` in a subset.
pub fn reconcile(endpoints: &Endpoints, existing: &[&EndpointSlice], max_per_subset: usize) -> SliceChanges {
    let mut desired: BTreeMap<(AddressType, PortKey), (Vec<EndpointPort>, EndpointSet)> = BTreeMap::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = slice_ports(subset.ports.as_deref().unwrap_or_default());
        let key = PortKey::of(&ports);
        for address_type in [AddressType::IPv4, AddressType::IPv6] {
            desired.entry((address_type, key.clone())).or_insert_with(|| (ports.clone(), EndpointSet::new()));
        }
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, false));
        let mut added = 0;
        for (address, is_ready) in ready.chain(not_ready) {
            if added >= max_per_subset {
                break;
            }
            let Some((address_type, endpoint)) = mirrored_endpoint(address, is_ready) else {
                continue;
            };
            let (_, set) = desired.get_mut(&(address_type, key.clone())).expect("initialised above");
            set.insert(EndpointKey::of(&endpoint), endpoint);
            added += 1;
        }
    }

    let mut existing_by_key: BTreeMap<(String, PortKey), Vec<&EndpointSlice>> = BTreeMap::new();
    let mut sorted: Vec<&EndpointSlice> = existing.to_vec();
    sorted.sort_by(|a, b| slices::name(a).cmp(slices::name(b)));
    for slice in sorted {
        existing_by_key.entry((slice.address_type.clone(), PortKey::of_slice(slice))).or_default().push(slice);
    }

    let mut changes = SliceChanges::default();
    for ((address_type, key), (ports, set)) in desired {
        let existing = existing_by_key.remove(&(address_type.as_str().to_string(), key)).unwrap_or_default();
        let part = reconcile_port_set(endpoints, &existing, set, &ports, address_type, max_per_subset);
        changes.create.extend(part.create);
        changes.update.extend(part.update);
        changes.delete.extend(part.delete);
    }
    for slices in existing_by_key.into_values() {
        changes.delete.extend(slices.into_iter().cloned());
    }

    changes.recycle(|_| true);
    if endpoints.metadata.deletion_timestamp.is_some() {
        changes.create.clear();
    }
    changes
}

/// One port set and family: a single slice holding the desired endpoints; extra slices go.
fn reconcile_port_set(
    endpoints: &Endpoints,
    existing: &[&EndpointSlice],
    mut desired: EndpointSet,
    ports: &[EndpointPort],
    address_type: AddressType,
    max_per_subset: usize,
) -> SliceChanges {
    let mut changes = SliceChanges::default();
    if desired.is_empty() {
        changes.delete = existing.iter().map(|s| (*s).clone()).collect();
        return changes;
    }
    let mut slice = new_slice(endpoints, ports, address_type);
    if let Some((first, rest)) = existing.split_first() {
        changes.delete = rest.iter().map(|s| (*s).clone()).collect();
        if same_endpoints(first, &desired) && same_metadata(first, &slice) {
            return changes;
        }
        slice.metadata.name = first.metadata.name.clone();
        slice.metadata.generate_name = None;
        slice.metadata.resource_version = first.metadata.resource_version.clone();
        slice.metadata.uid = first.metadata.uid.clone();
    }
    while slice.endpoints.len() < max_per_subset {
        let Some(endpoint) = slices::pop_first(&mut desired) else {
            break;
        };
        slice.endpoints.push(endpoint);
    }
    if slice.metadata.name.is_some() {
        changes.update.push(slice);
    } else {
        changes.create.push(slice);
    }
    changes
}

/// Upstream's `totalChanges` is zero: the slice holds exactly the desired endpoints.
fn same_endpoints(slice: &EndpointSlice, desired: &EndpointSet) -> bool {
    slice.endpoints.len() == desired.len()
        && slice
            .endpoints
            .iter()
            .all(|e| desired.get(&EndpointKey::of(e)).is_some_and(|want| endpoints_equal_beyond_key(want, e)))
}

fn same_metadata(slice: &EndpointSlice, desired: &EndpointSlice) -> bool {
    slice.metadata.labels.clone().unwrap_or_default() == desired.metadata.labels.clone().unwrap_or_default()
        && slice.metadata.annotations.clone().unwrap_or_default()
            == desired.metadata.annotations.clone().unwrap_or_default()
}

/// Upstream's `addressToEndpoint`: the IP in canonical form and its family, or `None` for an
/// address that is not an IP.
fn mirrored_endpoint(address: &EndpointAddress, ready: bool) -> Option<(AddressType, Endpoint)> {
    let ip: IpAddr = address.ip.parse().ok()?;
    let endpoint = Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions { ready: Some(ready), ..Default::default() }),
        target_ref: address.target_ref.clone(),
        node_name: address.node_name.clone(),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        ..Default::default()
    };
    Some((AddressType::of(ip), endpoint))
}

fn slice_ports(ports: &[k8s_openapi::api::core::v1::EndpointPort]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|p| EndpointPort {
            name: Some(p.name.clone().unwrap_or_default()),
            port: Some(p.port),
            protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

/// A mirrored slice (upstream's `newEndpointSlice`): the Endpoints' labels and annotations
/// (minus trigger time and last-applied), owned by the Endpoints object.
fn new_slice(endpoints: &Endpoints, ports: &[EndpointPort], address_type: AddressType) -> EndpointSlice {
    let name = endpoints.metadata.name.clone().unwrap_or_default();
    let mut labels = endpoints.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME.into(), name.clone());
    labels.insert(MANAGED_BY.into(), MIRRORING_CONTROLLER.into());
    let mut annotations = endpoints.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_CHANGE_TRIGGER_TIME);
    annotations.remove(LAST_APPLIED);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(crate::endpointslice::generate_name(&name)),
            namespace: endpoints.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Endpoints".into(),
                name,
                uid: endpoints.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: address_type.as_str().into(),
        endpoints: Vec::new(),
        ports: Some(ports.to_vec()),
    }
}

#[cfg(test)]
mod tests;
