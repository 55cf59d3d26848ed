//! What DNS needs of the cluster's objects, distilled from the API types once, on arrival.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::build::Rebuild;
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
    /// Lower-cased: `tcp`, `udp`, `sctp` (the only ones the API admits, held without an
    /// allocation), or as given.
    pub(crate) protocol: Cow<'static, str>,
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
    /// One, as a rule (the API allows up to 100): held in place.
    pub(crate) addresses: smallvec::SmallVec<[IpAddr; 1]>,
    pub(crate) hostname: Option<String>,
    pub(crate) pod_name: Option<String>,
    /// `conditions.ready`, unknown counting as ready (the API's advice, and CoreDNS's).
    pub(crate) ready: bool,
}

/// An EndpointSlice's DNS view (the Service it is filed under is where it is kept).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SliceInfo {
    pub(crate) ports: Vec<PortInfo>,
    pub(crate) endpoints: Vec<EndpointInfo>,
}

fn protocol(p: Option<&str>) -> Cow<'static, str> {
    let p = p.unwrap_or("TCP");
    ["tcp", "udp", "sctp"]
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(p))
        .map_or_else(|| Cow::Owned(p.to_ascii_lowercase()), Cow::Borrowed)
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

/// An EndpointSlice's Service (its service-name label) and DNS view; `None` without the label or
/// for FQDN slices. Pod names are kept only when endpoints are named after them
/// (`endpoint_pod_names`).
pub(crate) fn slice_info(slice: &EndpointSlice, pod_names: bool) -> Option<(String, SliceInfo)> {
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
    Some((service, SliceInfo { ports, endpoints }))
}

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone().unwrap_or_default(), meta.name.clone()?))
}

/// A Service and the EndpointSlices filed under it (a slice may come before its Service).
#[derive(Clone, Debug, Default)]
pub(crate) struct SvcEntry {
    /// `None`: no Service (yet), or one with no name in DNS.
    pub(crate) info: Option<SvcInfo>,
    pub(crate) slices: Slices,
}

/// A Service's EndpointSlices by name, in name order. Most Services have one: a sorted vector
/// holds it in its own size, where a `BTreeMap`'s first node holds room for eleven (about a
/// kilobyte a Service).
#[derive(Clone, Debug, Default)]
pub(crate) struct Slices(Vec<(String, SliceInfo)>);

impl Slices {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    fn get(&self, name: &str) -> Option<&SliceInfo> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    fn insert(&mut self, name: String, info: SliceInfo) {
        match self.find(&name) {
            Ok(i) => self.0[i].1 = info,
            Err(i) => {
                // Room for this one only: a vector's first allocation holds four.
                self.0.reserve_exact(1);
                self.0.insert(i, (name, info));
            }
        }
    }

    fn remove(&mut self, name: &str) {
        if let Ok(i) = self.find(name) {
            self.0.remove(i);
        }
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &SliceInfo> {
        self.0.iter().map(|(_, info)| info)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One namespace's objects: what its part of the index is built from.
#[derive(Clone, Debug, Default)]
pub(crate) struct NsState {
    /// A Namespace object exists.
    pub(crate) exists: bool,
    /// By Service name.
    pub(crate) services: BTreeMap<String, SvcEntry>,
    /// The Service each slice is filed under, for slices whose name does not tell it: the
    /// EndpointSlice controller names a Service's slices `<service>-<suffix>` (the suffix has no
    /// `-`), and those, nearly all, are not recorded here (see [`named_after`]).
    slice_service: HashMap<String, String>,
    /// Pods' `status.podIP` by name, kept only for [`PodMode::Verified`].
    pub(crate) pods: BTreeMap<String, IpAddr>,
    /// The namespace each in-zone ExternalName's target is in, by Service name: a chain through
    /// that namespace is part of this one's answers.
    pub(crate) externals: BTreeMap<String, String>,
}

impl NsState {
    /// The Service the slice `name` is filed under, if it is filed.
    fn slice_filed_under<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        if let Some(service) = self.slice_service.get(name) {
            return Some(service);
        }
        let service = named_after(name)?;
        self.services.get(service).and_then(|e| e.slices.get(name)).map(|_| service)
    }

    /// Whether `<ns>.svc.<zone>` exists: the Namespace does, or a Service or Pod is in it.
    pub(crate) fn present(&self) -> bool {
        self.exists || !self.pods.is_empty() || self.services.values().any(|s| s.info.is_some())
    }

    fn is_empty(&self) -> bool {
        !self.exists && self.pods.is_empty() && self.services.is_empty()
    }
}

/// The Service a slice named `<service>-<suffix>` (no `-` in the suffix) is named after, as the
/// EndpointSlice controller names them. A slice filed under that Service needs no entry in
/// `slice_service`: its name leads there.
fn named_after(slice: &str) -> Option<&str> {
    slice.rsplit_once('-').map(|(service, _)| service).filter(|s| !s.is_empty())
}

/// Where an in-zone name `….<svc>.<ns>.svc.<zone>` leads (lower-cased): its namespace, and its
/// Service when it names one (`<ns>.svc.<zone>` names none); `None` for any other name.
pub(crate) fn in_zone_target(target: &str, zone: &str) -> Option<(String, Option<String>)> {
    let target = target.trim_end_matches('.').to_ascii_lowercase();
    let head = target.strip_suffix(zone)?.strip_suffix(".svc.")?;
    let mut labels = head.rsplit('.');
    let ns = labels.next().unwrap_or(head).to_string();
    Some((ns, labels.next().map(str::to_string)))
}

/// The reverse shard of an address: the name of its PTR record's parent (`1.244.10.in-addr.arpa`
/// for 10.244.1.5), as the address with its last label's bits cleared.
pub(crate) fn reverse_shard(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & !0xFF).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !0xF).into()),
    }
}

/// The addresses a Service may have PTR records for: its ClusterIPs (when it has ports) and its
/// endpoints' addresses that are published. A superset is harmless: a shard builds what it finds.
fn ptr_addresses(entry: &SvcEntry) -> Vec<IpAddr> {
    let Some(info) = &entry.info else { return Vec::new() };
    let mut ips = match &info.kind {
        SvcKind::External(_) => return Vec::new(),
        SvcKind::ClusterIp(ips) if !info.ports.is_empty() => ips.clone(),
        _ => Vec::new(),
    };
    for slice in entry.slices.values() {
        for ep in slice.endpoints.iter().filter(|e| e.ready || info.publish_not_ready) {
            ips.extend(&ep.addresses);
        }
    }
    ips
}

/// The cluster as DNS sees it, kept up to date one object at a time, by namespace. The index is
/// built in parts (see `build`): [`IndexBuilder::take_changes`] says which parts changed since
/// it was last asked and takes what they are built from, so a change costs in proportion to its
/// part (at most about `services_per_part` Services) rather than to its namespace or the cluster;
/// [`IndexBuilder::build`] builds every part.
#[derive(Clone, Debug)]
pub struct IndexBuilder {
    pub(crate) config: IndexConfig,
    /// The zone as `config` names it: lower-cased, no trailing dot.
    pub(crate) zone: String,
    pub(crate) namespaces: BTreeMap<String, NsState>,
    /// The Services with PTR records in each reverse shard.
    pub(crate) reverse: HashMap<IpAddr, BTreeSet<Key>>,
    dirty_namespaces: BTreeMap<String, NsDirty>,
    dirty_reverse: BTreeSet<IpAddr>,
    /// The number of Service parts each namespace had in the index of the last
    /// [`IndexBuilder::take_changes`] (absent: it had none): one that has another number now is
    /// built again whole.
    parts_taken: HashMap<String, usize>,
}

/// What changed in a namespace since the last [`IndexBuilder::take_changes`].
#[derive(Clone, Debug, Default)]
pub(crate) struct NsDirty {
    /// Its own names: the Namespace came or went, or (in verified mode) a pod did.
    pub(crate) head: bool,
    /// The Services (and their slices) that changed.
    pub(crate) services: BTreeSet<String>,
}

impl IndexBuilder {
    pub fn new(config: IndexConfig) -> Self {
        let zone = config.zone.trim_end_matches('.').to_ascii_lowercase();
        IndexBuilder {
            config,
            zone,
            namespaces: BTreeMap::new(),
            reverse: HashMap::new(),
            dirty_namespaces: BTreeMap::new(),
            dirty_reverse: BTreeSet::new(),
            parts_taken: HashMap::new(),
        }
    }

    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Sets the SOA serial of the next build (CoreDNS: the Unix time of the last change).
    pub fn set_serial(&mut self, serial: u32) {
        self.config.serial = serial;
    }

    fn namespace(&mut self, ns: &str) -> &mut NsState {
        if !self.namespaces.contains_key(ns) {
            self.namespaces.insert(ns.to_string(), NsState::default());
        }
        self.namespaces.get_mut(ns).expect("just made")
    }

    fn dirty(&mut self, ns: &str) -> &mut NsDirty {
        if !self.dirty_namespaces.contains_key(ns) {
            self.dirty_namespaces.insert(ns.to_string(), NsDirty::default());
        }
        self.dirty_namespaces.get_mut(ns).expect("just made")
    }

    /// The namespace's own names change.
    fn touch(&mut self, ns: &str) {
        self.dirty(ns).head = true;
    }

    /// Forgets a namespace that holds nothing any more.
    fn prune(&mut self, ns: &str) {
        if self.namespaces.get(ns).is_some_and(NsState::is_empty) {
            self.namespaces.remove(ns);
        }
    }

    /// A namespace exists: `<ns>.svc.<zone>` (and `<ns>.pod.<zone>`) answer NODATA, not NXDOMAIN.
    pub fn apply_namespace(&mut self, ns: &Namespace) {
        if let Some(name) = &ns.metadata.name {
            if !std::mem::replace(&mut self.namespace(name).exists, true) {
                self.touch(name);
            }
        }
    }

    pub fn remove_namespace(&mut self, name: &str) {
        if let Some(state) = self.namespaces.get_mut(name) {
            if std::mem::replace(&mut state.exists, false) {
                self.touch(name);
            }
            self.prune(name);
        }
    }

    /// Adds or replaces a Service. Returns whether DNS's view of it changed.
    pub fn apply_service(&mut self, svc: &Service) -> bool {
        let Some((ns, name)) = key(&svc.metadata) else { return false };
        let info = service_info(svc);
        let before = self.shards_of(&ns, &name);
        let state = self.namespace(&ns);
        let changed = match state.services.get_mut(&name) {
            Some(entry) if entry.info == info => false,
            Some(entry) => {
                entry.info = info;
                true
            }
            None if info.is_none() => false,
            None => {
                state.services.insert(name.clone(), SvcEntry { info, ..SvcEntry::default() });
                true
            }
        };
        if changed {
            self.service_changed(&ns, &name, before);
        }
        self.prune(&ns);
        changed
    }

    pub fn remove_service(&mut self, namespace: &str, name: &str) -> bool {
        let before = self.shards_of(namespace, name);
        let Some(entry) = self.namespaces.get_mut(namespace).and_then(|s| s.services.get_mut(name)) else {
            return false;
        };
        if entry.info.take().is_none() {
            return false;
        }
        self.service_changed(namespace, name, before);
        self.prune(namespace);
        true
    }

    /// Adds or replaces an EndpointSlice. Returns whether DNS's view of it changed.
    pub fn apply_slice(&mut self, slice: &EndpointSlice) -> bool {
        let Some((ns, name)) = key(&slice.metadata) else { return false };
        let Some((service, info)) = slice_info(slice, self.config.endpoint_pod_names) else {
            return self.remove_slice(&ns, &name);
        };
        let unchanged = self.namespaces.get(&ns).is_some_and(|state| {
            state.slice_filed_under(&name) == Some(service.as_str())
                && state.services.get(&service).and_then(|e| e.slices.get(&name)).is_some_and(|old| *old == info)
        });
        if unchanged {
            return false;
        }
        // Off the Service it was filed under, if its label changed (or it was there already).
        self.remove_slice(&ns, &name);
        let before = self.shards_of(&ns, &service);
        let state = self.namespace(&ns);
        if named_after(&name) != Some(service.as_str()) {
            state.slice_service.insert(name.clone(), service.clone());
        }
        state.services.entry(service.clone()).or_default().slices.insert(name, info);
        self.service_changed(&ns, &service, before);
        true
    }

    pub fn remove_slice(&mut self, namespace: &str, name: &str) -> bool {
        let Some(state) = self.namespaces.get_mut(namespace) else { return false };
        let Some(service) =
            state.slice_service.remove(name).or_else(|| state.slice_filed_under(name).map(str::to_string))
        else {
            return false;
        };
        let before = self.shards_of(namespace, &service);
        if let Some(entry) = self.namespaces.get_mut(namespace).and_then(|s| s.services.get_mut(&service)) {
            entry.slices.remove(name);
        }
        self.service_changed(namespace, &service, before);
        self.prune(namespace);
        true
    }

    /// Adds or replaces a Pod; only its address matters, and only in [`PodMode::Verified`].
    pub fn apply_pod(&mut self, pod: &Pod) -> bool {
        if self.config.pod_mode != PodMode::Verified {
            return false;
        }
        let Some((ns, name)) = key(&pod.metadata) else { return false };
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok());
        let Some(ip) = ip else { return self.remove_pod(&ns, &name) };
        let changed = self.namespace(&ns).pods.insert(name, ip) != Some(ip);
        if changed {
            self.touch(&ns);
        }
        changed
    }

    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> bool {
        let Some(state) = self.namespaces.get_mut(namespace) else { return false };
        if state.pods.remove(name).is_none() {
            return false;
        }
        self.touch(namespace);
        self.prune(namespace);
        true
    }

    /// The reverse shards a Service may have PTR records in now, in order.
    fn shards_of(&self, ns: &str, name: &str) -> Vec<IpAddr> {
        let Some(entry) = self.namespaces.get(ns).and_then(|s| s.services.get(name)) else { return Vec::new() };
        let mut shards: Vec<IpAddr> = ptr_addresses(entry).into_iter().map(reverse_shard).collect();
        shards.sort_unstable();
        shards.dedup();
        shards
    }

    /// A Service or its slices changed: its part of the namespace is built again, and the reverse
    /// shards it had (`before`) and has PTR records in.
    fn service_changed(&mut self, ns: &str, name: &str, before: Vec<IpAddr>) {
        let dirty = self.dirty(ns);
        if !dirty.services.contains(name) {
            dirty.services.insert(name.to_string());
        }
        let now = self.shards_of(ns, name);
        let Some(state) = self.namespaces.get_mut(ns) else { return };
        let Some(entry) = state.services.get_mut(name) else { return };
        match &entry.info {
            Some(SvcInfo { kind: SvcKind::External(target), .. }) => match in_zone_target(target, &self.zone) {
                Some((target, _)) => state.externals.insert(name.to_string(), target),
                None => state.externals.remove(name),
            },
            _ => state.externals.remove(name),
        };
        if entry.info.is_none() && entry.slices.is_empty() {
            state.services.remove(name);
        }
        let key = (ns.to_string(), name.to_string());
        for shard in before.iter().filter(|s| now.binary_search(s).is_err()) {
            if let Some(members) = self.reverse.get_mut(shard) {
                members.remove(&key);
                if members.is_empty() {
                    self.reverse.remove(shard);
                }
            }
        }
        for shard in &now {
            self.reverse.entry(*shard).or_default().insert(key.clone());
        }
        self.dirty_reverse.extend(before.into_iter().chain(now));
    }

    /// Whether anything changed since the last [`IndexBuilder::take_changes`].
    pub fn changed(&self) -> bool {
        !self.dirty_namespaces.is_empty() || !self.dirty_reverse.is_empty()
    }

    /// What to build again since the last call (everything, the first time), with copies of
    /// what it is built from: cheap to take under a lock, and built off it with
    /// [`Rebuild::build`] on the index it follows.
    pub fn take_changes(&mut self) -> Rebuild {
        let namespaces = std::mem::take(&mut self.dirty_namespaces);
        let reverse = std::mem::take(&mut self.dirty_reverse);
        let rebuild = Rebuild::of(self, namespaces, reverse, Some(&self.parts_taken));
        for (ns, plan) in rebuild.plans() {
            match plan.parts {
                0 => self.parts_taken.remove(ns),
                parts => self.parts_taken.insert(ns.clone(), parts),
            };
        }
        rebuild
    }

    /// Builds the immutable index of the current state, every part of it.
    pub fn build(&self) -> ClusterIndex {
        let namespaces = self.namespaces.keys().map(|ns| (ns.clone(), NsDirty::default())).collect();
        let reverse = self.reverse.keys().copied().collect();
        Rebuild::of(self, namespaces, reverse, None).build(None)
    }

    /// The number of Service parts a namespace has now (0: it has no names).
    pub(crate) fn parts(&self, state: &NsState) -> usize {
        if state.present() {
            crate::index::parts_for(state.services.len(), self.config.services_per_part)
        } else {
            0
        }
    }
}
