//! What both EndpointSlice writers (the EndpointSlice controller and mirroring) share:
//! the identity of an endpoint, the key of a port set, and the changes a reconcile asks for.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};

/// Identifies an endpoint across syncs (upstream's `endpointHash`): addresses, hostname and
/// the target's namespace/name. Everything else (conditions, node, zone) may change in place.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointKey {
    addresses: Vec<String>,
    hostname: String,
    namespace: String,
    name: String,
}

impl EndpointKey {
    pub fn of(endpoint: &Endpoint) -> EndpointKey {
        let mut addresses = endpoint.addresses.clone();
        addresses.sort();
        let target = endpoint.target_ref.as_ref();
        EndpointKey {
            addresses,
            hostname: endpoint.hostname.clone().unwrap_or_default(),
            namespace: target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
            name: target.and_then(|t| t.name.clone()).unwrap_or_default(),
        }
    }
}

/// Desired endpoints by identity, popped in key order so results are deterministic.
pub type EndpointSet = BTreeMap<EndpointKey, Endpoint>;

pub fn pop_first(set: &mut EndpointSet) -> Option<Endpoint> {
    set.pop_first().map(|(_, endpoint)| endpoint)
}

/// Upstream's `EndpointsEqualBeyondHash`: the parts of two same-identity endpoints that can
/// change in place are equal (a target's resourceVersion is ignored).
pub fn endpoints_equal_beyond_key(a: &Endpoint, b: &Endpoint) -> bool {
    let conditions = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    let target = |e: &Endpoint| e.target_ref.clone().map(|t| ObjectReference { resource_version: None, ..t });
    a.node_name == b.node_name && a.zone == b.zone && conditions(a) == conditions(b) && target(a) == target(b)
}

/// Identifies a set of ports regardless of order (upstream's `PortMapKey`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey(Vec<(String, i32, String, String)>);

impl PortKey {
    pub fn of(ports: &[EndpointPort]) -> PortKey {
        let mut key: Vec<_> = ports
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port.unwrap_or(0),
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.app_protocol.clone().unwrap_or_default(),
                )
            })
            .collect();
        key.sort();
        PortKey(key)
    }

    pub fn of_slice(slice: &EndpointSlice) -> PortKey {
        PortKey::of(slice.ports.as_deref().unwrap_or_default())
    }
}

/// The writes one reconcile asks for. Updates carry the existing object's metadata (name,
/// resourceVersion), so a write based on a stale cache fails with a conflict.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SliceChanges {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl SliceChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    /// Turns creates into updates of slices that would otherwise be deleted (same address
    /// type, and `reusable`), so churn is an update rather than a create plus a delete.
    pub fn recycle(&mut self, reusable: impl Fn(&EndpointSlice) -> bool) {
        let mut index = 0;
        while index < self.delete.len() && !self.create.is_empty() {
            let candidate = &self.delete[index];
            let position = self.create.iter().rposition(|c| c.address_type == candidate.address_type);
            match position {
                Some(position) if reusable(candidate) => {
                    let old = self.delete.remove(index);
                    let mut slice = self.create.remove(position);
                    slice.metadata.name = old.metadata.name;
                    slice.metadata.generate_name = None;
                    slice.metadata.resource_version = old.metadata.resource_version;
                    slice.metadata.uid = old.metadata.uid;
                    self.update.push(slice);
                }
                _ => index += 1,
            }
        }
    }
}

pub fn name(slice: &EndpointSlice) -> &str {
    slice.metadata.name.as_deref().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::EndpointConditions;

    fn endpoint(ip: &str, ready: bool) -> Endpoint {
        Endpoint {
            addresses: vec![ip.into()],
            conditions: Some(EndpointConditions { ready: Some(ready), ..Default::default() }),
            target_ref: Some(ObjectReference {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                resource_version: Some("1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn identity_ignores_conditions_and_equality_ignores_resource_version() {
        let a = endpoint("10.0.0.1", true);
        let b = endpoint("10.0.0.1", false);
        assert_eq!(EndpointKey::of(&a), EndpointKey::of(&b));
        assert!(!endpoints_equal_beyond_key(&a, &b));
        let mut c = a.clone();
        c.target_ref.as_mut().unwrap().resource_version = Some("2".into());
        assert!(endpoints_equal_beyond_key(&a, &c));
        assert_ne!(EndpointKey::of(&a), EndpointKey::of(&endpoint("10.0.0.2", true)));
    }

    #[test]
    fn port_keys_ignore_order_and_default_protocol() {
        let port = |name: &str, port: i32, protocol: Option<&str>| EndpointPort {
            name: Some(name.into()),
            port: Some(port),
            protocol: protocol.map(String::from),
            ..Default::default()
        };
        assert_eq!(
            PortKey::of(&[port("a", 1, None), port("b", 2, Some("TCP"))]),
            PortKey::of(&[port("b", 2, None), port("a", 1, Some("TCP"))])
        );
        assert_ne!(PortKey::of(&[port("a", 1, None)]), PortKey::of(&[port("a", 1, Some("UDP"))]));
    }
}
