//! What DNS needs of the cluster's objects, distilled from the API types once, on arrival.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{IndexConfig, PodMode};
use crate::index::ClusterIndex;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `(namespace, name)`.
pub(crate) type Key = (String, String);

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SvcKind {
    /// The Service's ClusterIPs (one per family).
    ClusterIp(Vec<IpAddr>),
    Headless,
    /// The target, as written (validated as a name).
    External(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PortInfo {
    /// Lower-cased; empty for an unnamed port.
    pub(crate) name: String,
    /// Lower-cased: `tcp`, `udp`, `sctp`.
    pub(crate) protocol: String,
    /// `-1`: the slice names no port (CoreDNS's sentinel: address records, no SRV).
    pub(crate) port: i32,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SvcInfo {
    pub(crate) kind: SvcKind,
    pub(crate) ports: Vec<PortInfo>,
    pub(crate) publish_not_ready: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EndpointInfo {
    pub(crate) addresses: Vec<IpAddr>,
    pub(crate) hostname: Option<String>,
    pub(crate) pod_name: Option<String>,
    /// `conditions.ready`, unknown counting as ready (the API's advice, and CoreDNS's).
    pub(crate) ready: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SliceInfo {
    pub(crate) service: String,
    pub(crate) ports: Vec<PortInfo>,
    pub(crate) endpoints: Vec<EndpointInfo>,
}

fn protocol(p: Option<&str>) -> String {
    p.unwrap_or("TCP").to_ascii_lowercase()
}

/// A Service's DNS view; `None` for one that has no name in DNS: an ExternalName whose target is
/// empty, an address (CoreDNS ignores those: NXDOMAIN) or not a name, or a Service whose
/// ClusterIP is not allocated yet.
pub(crate) fn service_info(svc: &Service) -> Option<SvcInfo> {
    let spec = svc.spec.as_ref()?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| PortInfo {
            name: p.name.as_deref().unwrap_or("").to_ascii_lowercase(),
            protocol: protocol(p.protocol.as_deref()),
            port: p.port,
        })
        .collect();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec.external_name.as_deref()?.trim_end_matches('.');
        if target.is_empty() || target.parse::<IpAddr>().is_ok() || crate::wire::wire_name(target).is_none() {
            return None;
        }
        SvcKind::External(target.to_string())
    } else {
        let ips: Vec<&str> = match spec.cluster_ips.as_deref() {
            Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
            _ => spec.cluster_ip.as_deref().into_iter().collect(),
        };
        match ips.first() {
            Some(&"None") => SvcKind::Headless,
            _ => {
                let ips: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
                if ips.is_empty() {
                    return None;
                }
                SvcKind::ClusterIp(ips)
            }
        }
    };
    Some(SvcInfo { kind, ports, publish_not_ready })
}

/// An EndpointSlice's DNS view; `None` without the service-name label or for FQDN slices. Pod
/// names are kept only when endpoints are named after them (`endpoint_pod_names`).
pub(crate) fn slice_info(slice: &EndpointSlice, pod_names: bool) -> Option<SliceInfo> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    if slice.address_type == "FQDN" {
        return None;
    }
    let ports = slice
        .ports
        .iter()
        .flatten()
        .map(|p| PortInfo {
            name: p.name.as_deref().unwrap_or("").to_ascii_lowercase(),
            protocol: protocol(p.protocol.as_deref()),
            port: p.port.unwrap_or(-1),
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .map(|e| EndpointInfo {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e.hostname.clone().filter(|h| !h.is_empty()),
            pod_name: pod_names
                .then(|| e.target_ref.as_ref().and_then(|t| t.name.clone()))
                .flatten()
                .filter(|n| !n.is_empty() && n.len() < 64),
            ready: e.conditions.as_ref().and_then(|c| c.ready) != Some(false),
        })
        .collect();
    Some(SliceInfo { service, ports, endpoints })
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone().unwrap_or_default(), meta.name.clone()?))
}

/// The cluster as DNS sees it, kept up to date one object at a time; [`IndexBuilder::build`]
/// makes an immutable [`ClusterIndex`] of it (cost proportional to the cluster), for a server
/// to swap in atomically.
#[derive(Clone, Debug)]
pub struct IndexBuilder {
    pub(crate) config: IndexConfig,
    pub(crate) namespaces: BTreeSet<String>,
    pub(crate) services: BTreeMap<Key, SvcInfo>,
    pub(crate) slices: BTreeMap<Key, SliceInfo>,
    /// Pods' `status.podIP` by namespace, kept only for [`PodMode::Verified`].
    pub(crate) pods: BTreeMap<Key, IpAddr>,
}

impl IndexBuilder {
    pub fn new(config: IndexConfig) -> Self {
        IndexBuilder {
            config,
            namespaces: BTreeSet::new(),
            services: BTreeMap::new(),
            slices: BTreeMap::new(),
            pods: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Sets the SOA serial of the next build (CoreDNS: the Unix time of the last change).
    pub fn set_serial(&mut self, serial: u32) {
        self.config.serial = serial;
    }

    /// A namespace exists: `<ns>.svc.<zone>` (and `<ns>.pod.<zone>`) answer NODATA, not NXDOMAIN.
    pub fn apply_namespace(&mut self, ns: &Namespace) {
        if let Some(name) = &ns.metadata.name {
            self.namespaces.insert(name.clone());
        }
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Adds or replaces a Service. Returns whether DNS's view of it changed.
    pub fn apply_service(&mut self, svc: &Service) -> bool {
        let Some(key) = key(&svc.metadata) else { return false };
        upsert(&mut self.services, key, service_info(svc))
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) -> bool {
        self.services.remove(&(namespace.to_string(), name.to_string())).is_some()
    }

    /// Adds or replaces an EndpointSlice. Returns whether DNS's view of it changed.
    pub fn apply_slice(&mut self, slice: &EndpointSlice) -> bool {
        let Some(key) = key(&slice.metadata) else { return false };
        upsert(&mut self.slices, key, slice_info(slice, self.config.endpoint_pod_names))
    }

    pub fn remove_slice(&mut self, namespace: &str, name: &str) -> bool {
        self.slices.remove(&(namespace.to_string(), name.to_string())).is_some()
    }

    /// Adds or replaces a Pod; only its address matters, and only in [`PodMode::Verified`].
    pub fn apply_pod(&mut self, pod: &Pod) -> bool {
        if self.config.pod_mode != PodMode::Verified {
            return false;
        }
        let Some(key) = key(&pod.metadata) else { return false };
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok());
        match ip {
            Some(ip) => self.pods.insert(key, ip) != Some(ip),
            None => self.pods.remove(&key).is_some(),
        }
    }

    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> bool {
        self.pods.remove(&(namespace.to_string(), name.to_string())).is_some()
    }

    /// The namespaces that exist: those applied, and those any Service or Pod lives in.
    pub(crate) fn all_namespaces(&self) -> BTreeSet<&str> {
        let mut all: BTreeSet<&str> = self.namespaces.iter().map(String::as_str).collect();
        all.extend(self.services.keys().map(|(ns, _)| ns.as_str()));
        all.extend(self.pods.keys().map(|(ns, _)| ns.as_str()));
        all
    }

    /// Verified pods' addresses by namespace.
    pub(crate) fn pod_ips(&self) -> BTreeMap<&str, HashSet<IpAddr>> {
        let mut out: BTreeMap<&str, HashSet<IpAddr>> = BTreeMap::new();
        for ((ns, _), ip) in &self.pods {
            out.entry(ns.as_str()).or_default().insert(*ip);
        }
        out
    }

    /// Builds the immutable index of the current state.
    pub fn build(&self) -> ClusterIndex {
        ClusterIndex::from_builder(self)
    }
}

/// Puts `info` under `key` (removes the entry for `None`); whether the map changed.
fn upsert<V: Clone + PartialEq>(map: &mut BTreeMap<Key, V>, key: Key, info: Option<V>) -> bool {
    match info {
        Some(info) => map.insert(key, info.clone()) != Some(info),
        None => map.remove(&key).is_some(),
    }
}
