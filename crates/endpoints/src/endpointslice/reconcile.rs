//! The EndpointSlice reconcile, upstream's `Reconciler.Reconcile` without I/O: from a
//! Service, the pods its selector matches and the slices it already has, the slices to
//! create, update and delete.
//!
//! Endpoints are grouped by the ports their pod offers (a named target port may resolve
//! differently per pod); each group fills slices of at most `max_per_slice` endpoints.
//! Churn stays low: endpoints are updated in the slice that already holds them, slices being
//! updated anyway are filled first, leftovers go into the unchanged slice they fit best, and
//! only then are new slices made; a slice left empty is deleted (or reused for a create).
//! A Service with no endpoints keeps one empty placeholder slice.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{EndpointPort, EndpointSlice};

use super::desired::{new_slice, owned_by, pod_endpoint, pod_ports, slice_labels};
use crate::pods;
use crate::service::{self, AddressType};
use crate::slices::{self, endpoints_equal_beyond_key, EndpointKey, EndpointSet, PortKey, SliceChanges};

/// The changes that make `existing` (this Service's slices, as listed by the
/// `service-name` and `managed-by` labels) match the Service and its selected `pods`.
pub fn reconcile(service: &Service, pods: &[&Pod], existing: &[&EndpointSlice], max_per_slice: usize) -> SliceChanges {
    let max_per_slice = max_per_slice.max(1);
    let supported = service::address_types(service);
    let mut by_type: BTreeMap<AddressType, Vec<&EndpointSlice>> = BTreeMap::new();
    let mut unsupported = Vec::new();
    for slice in existing {
        match AddressType::parse(&slice.address_type) {
            Some(address_type) if supported.contains(&address_type) => {
                by_type.entry(address_type).or_default().push(slice)
            }
            _ => unsupported.push((*slice).clone()),
        }
    }
    let mut changes = SliceChanges::default();
    for address_type in supported {
        let existing = by_type.get(&address_type).map(Vec::as_slice).unwrap_or_default();
        let part = reconcile_address_type(service, pods, existing, address_type, max_per_slice);
        changes.create.extend(part.create);
        changes.update.extend(part.update);
        changes.delete.extend(part.delete);
    }
    changes.delete.extend(unsupported);
    changes
}

fn reconcile_address_type(
    service: &Service,
    pods: &[&Pod],
    existing: &[&EndpointSlice],
    address_type: AddressType,
    max_per_slice: usize,
) -> SliceChanges {
    let mut changes = SliceChanges::default();

    let mut existing_by_ports: BTreeMap<PortKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, service) {
            existing_by_ports.entry(PortKey::of_slice(slice)).or_default().push(slice);
        } else {
            changes.delete.push((*slice).clone());
        }
    }

    let mut desired: BTreeMap<PortKey, (Vec<EndpointPort>, EndpointSet)> = BTreeMap::new();
    for pod in pods {
        if !pods::should_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = pod_ports(service, pod);
        let (_, set) = desired.entry(PortKey::of(&ports)).or_insert_with(|| (ports, EndpointSet::new()));
        let endpoint = pod_endpoint(pod, service, address_type);
        if !endpoint.addresses.is_empty() {
            set.insert(EndpointKey::of(&endpoint), endpoint);
        }
    }

    for (key, (ports, set)) in &desired {
        let slices = existing_by_ports.get(key).map(Vec::as_slice).unwrap_or_default();
        let group = PortGroup { service, ports, address_type, max_per_slice };
        let part = group.reconcile(slices, set.clone());
        changes.create.extend(part.create);
        changes.update.extend(part.update);
        changes.delete.extend(part.delete);
    }
    for (key, slices) in existing_by_ports {
        if !desired.contains_key(&key) {
            changes.delete.extend(slices.into_iter().cloned());
        }
    }

    // With no endpoints at all the Service keeps one empty placeholder slice.
    if existing.len() == changes.delete.len() && changes.create.is_empty() {
        let placeholder = new_slice(service, &[], address_type);
        if changes.delete.len() == 1 && same_placeholder(&changes.delete[0], &placeholder) {
            changes.delete.clear();
        } else {
            changes.create.push(placeholder);
        }
    }

    changes.recycle(|slice| owned_by(slice, service));
    if service::is_terminating(service) {
        // The garbage collector is removing the slices; creating more would race it.
        changes.create.clear();
    }
    changes
}

/// Upstream's `placeholderSliceCompare`: the same labels, owners, type and no ports or
/// endpoints; names and annotations do not matter.
fn same_placeholder(slice: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    slice.metadata.namespace == placeholder.metadata.namespace
        && slice.metadata.labels.clone().unwrap_or_default() == placeholder.metadata.labels.clone().unwrap_or_default()
        && slice.metadata.owner_references.clone().unwrap_or_default()
            == placeholder.metadata.owner_references.clone().unwrap_or_default()
        && slice.address_type == placeholder.address_type
        && slice.ports.as_deref().unwrap_or_default().is_empty()
        && slice.endpoints.is_empty()
}

/// One group of endpoints that share a port set (upstream's `reconcileByPortMapping`).
struct PortGroup<'a> {
    service: &'a Service,
    ports: &'a [EndpointPort],
    address_type: AddressType,
    max_per_slice: usize,
}

impl PortGroup<'_> {
    fn reconcile(&self, existing: &[&EndpointSlice], mut desired: EndpointSet) -> SliceChanges {
        let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
        let mut unchanged = BTreeSet::new();
        let mut to_update = BTreeSet::new();
        let mut to_delete = BTreeSet::new();

        // 1. Keep (and refresh) the desired endpoints each slice already holds; drop the rest.
        for slice in existing {
            let name = slices::name(slice).to_string();
            let mut kept = Vec::new();
            let mut refreshed = false;
            for endpoint in &slice.endpoints {
                if let Some(wanted) = desired.remove(&EndpointKey::of(endpoint)) {
                    refreshed |= !endpoints_equal_beyond_key(&wanted, endpoint);
                    kept.push(wanted);
                }
            }
            let (labels, labels_changed) = slice_labels(slice.metadata.labels.as_ref(), self.service);
            let mut copy = (*slice).clone();
            if refreshed || kept.len() != slice.endpoints.len() {
                if kept.is_empty() {
                    to_delete.insert(name.clone());
                } else {
                    copy.endpoints = kept;
                    copy.metadata.labels = Some(labels);
                    to_update.insert(name.clone());
                }
            } else if labels_changed {
                copy.metadata.labels = Some(labels);
                to_update.insert(name.clone());
            } else {
                unchanged.insert(name.clone());
            }
            by_name.insert(name, copy);
        }

        // 2. Fill the slices that are being written anyway, fullest first.
        if !desired.is_empty() && !to_update.is_empty() {
            let mut names: Vec<&String> = to_update.iter().collect();
            names.sort_by_key(|name| std::cmp::Reverse(by_name[*name].endpoints.len()));
            for name in names {
                let slice = by_name.get_mut(name).expect("slice being updated");
                self.fill(slice, &mut desired);
            }
        }

        // 3. Put what is left into the unchanged slice it fits best, else into new slices.
        let mut create = Vec::new();
        while !desired.is_empty() {
            let target = if desired.len() < self.max_per_slice {
                self.best_fit(&unchanged, &by_name, desired.len())
            } else {
                None
            };
            match target {
                Some(name) => {
                    let slice = by_name.get_mut(&name).expect("unchanged slice");
                    self.fill(slice, &mut desired);
                    unchanged.remove(&name);
                    to_update.insert(name);
                }
                None => {
                    let mut slice = new_slice(self.service, self.ports, self.address_type);
                    self.fill(&mut slice, &mut desired);
                    create.push(slice);
                }
            }
        }

        SliceChanges {
            create,
            update: to_update.iter().map(|name| by_name[name].clone()).collect(),
            delete: to_delete.iter().map(|name| by_name[name].clone()).collect(),
        }
    }

    fn fill(&self, slice: &mut EndpointSlice, desired: &mut EndpointSet) {
        while slice.endpoints.len() < self.max_per_slice {
            let Some(endpoint) = slices::pop_first(desired) else {
                break;
            };
            slice.endpoints.push(endpoint);
        }
    }

    /// Upstream's `getSliceToFill`: the unchanged slice closest to full once `count` more
    /// endpoints are in it, without going over the limit.
    fn best_fit(
        &self,
        unchanged: &BTreeSet<String>,
        by_name: &BTreeMap<String, EndpointSlice>,
        count: usize,
    ) -> Option<String> {
        let mut best: Option<(usize, &String)> = None;
        for name in unchanged {
            let total = count + by_name[name].endpoints.len();
            if total > self.max_per_slice {
                continue;
            }
            let room = self.max_per_slice - total;
            if best.is_none_or(|(best_room, _)| room < best_room) {
                best = Some((room, name));
            }
        }
        best.map(|(_, name)| name.clone())
    }
}

#[cfg(test)]
mod tests;
