//! Building the index in parts (shards): a namespace's own, its Services' (split by a hash of
//! their names into as many parts as `services_per_part` asks, a power of two), one per reverse
//! shard (the PTR records of one `/24`, or IPv6 `/124`), and the apex's. A name's records depend
//! only on what its part is built from, so a change builds again only the parts it touched and
//! the new index shares every other part with the one before.
//!
//! - A namespace's own part holds `<ns>.svc.<zone>` and `<ns>.pod.<zone>` (with, in verified
//!   mode, the namespace's pod addresses); it is built when the Namespace or its pods change, or
//!   the namespace's number of Service parts does (then every part of it is).
//! - A Service part holds every name under the `<svc>.<ns>.svc.<zone>` of its Services; it is
//!   built from those Services (and their slices), and, for ExternalName chains that lead into
//!   the zone, the Services they lead to, and theirs. A change to a namespace builds again the
//!   parts of the ExternalNames that lead into it.
//! - A reverse shard holds the PTR names of its addresses; it is built from the Services with
//!   PTR records there (a ClusterIP's PTR goes to the first such Service by namespace and name;
//!   an endpoint's, to every Service publishing it, unless the address is a ClusterIP).
//! - The apex part holds the zone's apex, `ns.dns`, `dns-version`, `svc` and `pod`, and the
//!   reverse zones' empty non-terminals above the reverse shards that exist.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;

use crate::config::{IndexConfig, PodMode};
use crate::index::{
    address_record, dashed, record_bytes, reverse_name, service_part, srv_data, txt_data, BuildFast, ClusterIndex,
    Draft, NsParts, ReverseZone, RrSet, Shard, DNS_VERSION_TTL, NONE, SCHEMA_VERSION, SET_A, SET_AAAA, SET_CNAME,
    SET_NS, SET_PTR, SET_SRV, SET_TXT,
};
use crate::model::{
    in_zone_target, reverse_shard, EndpointInfo, IndexBuilder, Key, NsDirty, NsState, SliceInfo, SvcEntry, SvcInfo,
    SvcKind,
};
use crate::names::NameTable;
use crate::wire::{wire_name, TYPE_CNAME, TYPE_NS, TYPE_PTR, TYPE_SRV, TYPE_TXT};

/// CoreDNS's limit on CNAME chains inside the zone.
const MAX_CNAME_CHAIN: usize = 10;
/// A record set never grows beyond what one TCP message can hold.
const MAX_SET_BYTES: usize = 65_000;

/// The parts of the index to build again, and copies of what they are built from; taken from an
/// [`IndexBuilder`] with [`IndexBuilder::take_changes`] (cheaply, under whatever lock guards it) and
/// built off that lock with [`Rebuild::build`].
#[derive(Debug)]
pub struct Rebuild {
    config: IndexConfig,
    zone: String,
    /// The namespaces with parts to build again, and which.
    plans: Vec<(String, Plan)>,
    /// What those parts are built from: of each namespace, the Services of the parts built and
    /// those their ExternalName chains read, and its own state (exists, pods) when its own
    /// names are built. Not whole namespaces: a part of 5,000 Services is not copied for one.
    states: BTreeMap<String, NsState>,
    /// Reverse shards built again, with the Services that have PTR records there, in order.
    reverse: Vec<(IpAddr, Vec<(Key, SvcEntry)>)>,
    /// Every part is built: nothing is taken from the index before.
    full: bool,
}

/// Which parts of one namespace are built again.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    /// Its number of Service parts (0: the namespace has no names any more).
    pub(crate) parts: usize,
    /// Its own names (`<ns>.svc.<zone>`, `<ns>.pod.<zone>`).
    pub(crate) head: bool,
    /// The Service parts built again; `None`: all of them.
    pub(crate) services: Option<BTreeSet<usize>>,
}

impl Plan {
    fn builds(&self, part: usize) -> bool {
        self.services.as_ref().is_none_or(|s| s.contains(&part))
    }
}

impl Rebuild {
    /// What `dirty` (and the reverse shards `reverse`) take to build again. `taken`: each
    /// namespace's number of parts in the index this one follows (a namespace whose number
    /// changed is built whole); `None`: every part is built.
    pub(crate) fn of(
        b: &IndexBuilder,
        mut dirty: BTreeMap<String, NsDirty>,
        reverse: BTreeSet<IpAddr>,
        taken: Option<&HashMap<String, usize>>,
    ) -> Rebuild {
        // An ExternalName whose chain leads into a changed namespace changes with it (and so do
        // those whose chains lead into its namespace, and so on).
        loop {
            let mut more = Vec::new();
            for (ns, state) in &b.namespaces {
                for (name, target) in &state.externals {
                    let known = dirty.get(ns).is_some_and(|d| d.services.contains(name));
                    if !known && dirty.contains_key(target) {
                        more.push((ns.clone(), name.clone()));
                    }
                }
            }
            if more.is_empty() {
                break;
            }
            for (ns, name) in more {
                dirty.entry(ns).or_default().services.insert(name);
            }
        }
        let mut plans = Vec::new();
        let mut states: BTreeMap<String, NsState> = BTreeMap::new();
        // The in-zone ExternalName targets the parts built read: (namespace, Service).
        let mut chased: Vec<(String, String)> = Vec::new();
        for (ns, changed) in dirty {
            let state = b.namespaces.get(&ns);
            let parts = state.map_or(0, |s| b.parts(s));
            let whole = taken.is_none_or(|t| t.get(&ns).copied().unwrap_or(0) != parts);
            let plan = Plan {
                parts,
                head: whole || changed.head,
                services: (!whole)
                    .then(|| changed.services.iter().map(|name| service_part(name.as_bytes(), parts)).collect()),
            };
            if let (Some(state), true) = (state, parts > 0) {
                let mut copy = NsState::default();
                copy.exists = state.exists;
                if plan.head {
                    copy.pods = state.pods.clone();
                }
                for (name, entry) in &state.services {
                    if plan.builds(service_part(name.as_bytes(), parts)) {
                        copy.services.insert(name.clone(), entry.clone());
                        chased.extend(chase_target(entry, &b.zone));
                    }
                }
                states.insert(ns.clone(), copy);
            }
            plans.push((ns, plan));
        }
        // Chains, followed as far as they go in the zone.
        let mut seen = BTreeSet::new();
        while let Some((ns, name)) = chased.pop() {
            if !seen.insert((ns.clone(), name.clone())) {
                continue;
            }
            let Some(entry) = b.namespaces.get(&ns).and_then(|s| s.services.get(&name)) else { continue };
            chased.extend(chase_target(entry, &b.zone));
            let copy = states.entry(ns).or_default();
            copy.services.entry(name).or_insert_with(|| entry.clone());
        }
        let reverse = reverse
            .into_iter()
            .map(|shard| {
                let members = b.reverse.get(&shard).into_iter().flatten();
                let members = members
                    .filter_map(|key| {
                        let entry = b.namespaces.get(&key.0)?.services.get(&key.1)?;
                        Some((key.clone(), entry.clone()))
                    })
                    .collect();
                (shard, members)
            })
            .collect();
        Rebuild { config: b.config.clone(), zone: b.zone.clone(), plans, states, reverse, full: taken.is_none() }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.full && self.plans.is_empty() && self.reverse.is_empty()
    }

    pub(crate) fn plans(&self) -> &[(String, Plan)] {
        &self.plans
    }

    /// The index after these changes: the parts built again, and every other part shared with
    /// `previous` (which must be the index the builder's last [`Rebuild`] made; `None` only for
    /// the first).
    pub fn build(self, previous: Option<&ClusterIndex>) -> ClusterIndex {
        let cfg = &self.config;
        let zone_wire = wire_name(&self.zone).unwrap_or_else(|| vec![0]);
        let previous = previous.filter(|_| !self.full);
        let mut namespaces = previous.map(|p| p.namespaces.clone()).unwrap_or_default();
        let mut reverse = previous.map(|p| p.reverse_shards.clone()).unwrap_or_default();
        let empty = NsState::default();
        for (ns, plan) in &self.plans {
            let label = ns.to_ascii_lowercase().into_bytes().into_boxed_slice();
            if plan.parts == 0 {
                namespaces.remove(&label);
                continue;
            }
            let state = self.states.get(ns).unwrap_or(&empty);
            let before = namespaces.remove(&label).filter(|p| p.services.len() == plan.parts);
            let head = match before.as_ref().filter(|_| !plan.head) {
                Some(parts) => parts.head.clone(),
                None => Arc::new(self.head_shard(ns, state)),
            };
            let mut services = before.map(|p| p.services).unwrap_or_else(|| vec![None; plan.parts]);
            for (part, slot) in services.iter_mut().enumerate().filter(|(part, _)| plan.builds(*part)) {
                *slot = self.service_shard(ns, state, part, plan.parts).map(Arc::new);
            }
            namespaces.insert(label, NsParts { head, services });
        }
        for (at, members) in &self.reverse {
            match self.reverse_shard(*at, members) {
                Some(shard) => reverse.insert(*at, Arc::new(shard)),
                None => reverse.remove(at),
            };
        }
        let top = Arc::new(self.top_shard(reverse.keys().copied()));
        ClusterIndex {
            ttl: cfg.ttl,
            serial: cfg.serial,
            pod_mode: cfg.pod_mode,
            max_udp_payload: cfg.max_udp_payload.max(512),
            zone_labels: self.zone.split('.').filter(|l| !l.is_empty()).count(),
            zone: zone_wire,
            reverse: cfg.reverse_cidrs.iter().map(|c| ReverseZone { cidr: *c, labels: c.zone_labels() }).collect(),
            top,
            namespaces,
            reverse_shards: reverse,
        }
    }

    fn models(&self) -> Models {
        Models { zone: self.zone.clone(), nodes: HashMap::with_hasher(BuildFast::default()) }
    }

    /// The apex's names: the apex with its name server, `ns.dns`, `dns-version`, `svc`, `pod`.
    fn apex_models(&self, m: &mut Models) {
        let zone = &self.zone;
        m.node(zone);
        if !self.config.ns_addresses.is_empty() {
            let ns_name = format!("ns.dns.{zone}");
            if let Some(apex) = m.node(zone) {
                apex.ns.push(ns_name.clone());
            }
            if let Some(n) = m.node(&ns_name) {
                n.entries.extend(self.config.ns_addresses.iter().map(|ip| Entry {
                    ip: *ip,
                    port: -1,
                    target: ns_name.clone(),
                }));
            }
        }
        if let Some(n) = m.node(&format!("dns-version.{zone}")) {
            n.txt = Some(SCHEMA_VERSION.into());
        }
        m.node(&format!("svc.{zone}"));
        m.node(&format!("pod.{zone}"));
    }

    /// One Service's names, without empty non-terminals.
    fn service_models(&self, m: &mut Models, ns: &str, name: &str, entry: &SvcEntry) {
        let (cfg, zone) = (&self.config, &self.zone);
        let Some(svc) = &entry.info else { return };
        let Some(svc_name) = service_name(name, ns, zone) else { return };
        let headless = match &svc.kind {
            SvcKind::External(target) => {
                if let Some(n) = m.node(&svc_name) {
                    n.cname = Some(target.to_ascii_lowercase());
                }
                return;
            }
            SvcKind::Headless => true,
            SvcKind::ClusterIp(ips) => {
                for p in &svc.ports {
                    for ip in ips {
                        let e = Entry { ip: *ip, port: p.port, target: svc_name.clone() };
                        if let Some(n) = m.node(&svc_name) {
                            n.entries.push(e.clone());
                        }
                        if !p.name.is_empty() {
                            if let Some(n) = m.node(&format!("_{}._{}.{svc_name}", p.name, p.protocol)) {
                                n.entries.push(e);
                            }
                        }
                    }
                }
                false
            }
        };
        let no_port = [crate::model::PortInfo { name: String::new(), protocol: "".into(), port: -1 }];
        for (slice, ip, target) in published(entry, &svc_name, cfg.endpoint_pod_names) {
            let ports = if slice.ports.is_empty() { &no_port[..] } else { &slice.ports[..] };
            for p in ports {
                let e = Entry { ip, port: p.port, target: target.clone() };
                if let Some(n) = m.node(&target) {
                    n.entries.push(e.clone());
                }
                if headless {
                    if let Some(n) = m.node(&svc_name) {
                        n.entries.push(e.clone());
                    }
                    if !p.name.is_empty() {
                        if let Some(n) = m.node(&format!("_{}._{}.{svc_name}", p.name, p.protocol)) {
                            n.entries.push(e);
                        }
                    }
                }
            }
        }
    }

    /// A namespace's own names: `<ns>.svc.<zone>`, and `<ns>.pod.<zone>` with (in verified
    /// mode) the namespace's pod addresses.
    fn head_shard(&self, ns: &str, state: &NsState) -> Shard {
        let zone = &self.zone;
        let mut m = self.models();
        m.node(&format!("{ns}.svc.{zone}"));
        let pods = wire_name(&format!("{ns}.pod.{zone}")).filter(|_| self.config.pod_mode != PodMode::Disabled);
        if let Some(pods) = &pods {
            m.nodes.entry(pods.clone()).or_default();
        }
        let mut enc = Encoder::new(self.config.ttl, m.nodes.len());
        let verified = pods.as_ref().filter(|_| self.config.pod_mode == PodMode::Verified);
        if verified.is_some() {
            enc.shard.pods.push(state.pods.values().copied().collect());
        }
        for (key, model) in &m.nodes {
            let mut node = enc.node(&m, key, model);
            if verified == Some(key) {
                node.pods = 0;
            }
            enc.shard.insert(key, &node);
        }
        enc.finish()
    }

    /// The names of the Services of a namespace's part `part` (of `parts`); `None` when it has
    /// none.
    fn service_shard(&self, ns: &str, state: &NsState, part: usize, parts: usize) -> Option<Shard> {
        let zone = &self.zone;
        let in_part = |name: &str| service_part(name.as_bytes(), parts) == part;
        let services: Vec<(&String, &SvcEntry)> = state.services.iter().filter(|(name, _)| in_part(name)).collect();
        let mut m = self.models();
        m.nodes.reserve(expected_names(services.iter().map(|(_, e)| *e)));
        for (name, entry) in &services {
            self.service_models(&mut m, ns, name, entry);
        }
        let own = wire_name(&format!("{ns}.svc.{zone}"))?;
        // Its names, and the empty non-terminals between them and their Service's name.
        let mine = |key: &[u8]| key.len() > own.len() && key.ends_with(&own);
        let keys: Vec<Vec<u8>> = m.nodes.keys().filter(|k| mine(k)).cloned().collect();
        for key in keys {
            let mut at = 0;
            while at < key.len() && key[at] != 0 {
                at += 1 + usize::from(key[at]);
                if !mine(&key[at..]) {
                    break;
                }
                m.nodes.entry(key[at..].to_vec()).or_default();
            }
        }
        let keys: Vec<Vec<u8>> = m.nodes.keys().cloned().collect();
        // What its ExternalName chains read: the Services they lead to, as far as they go in
        // the zone (the rebuild copied those), and the apex.
        let mut wanted: Vec<(String, String)> = services.iter().filter_map(|(_, e)| chase_target(e, zone)).collect();
        let mut seen = BTreeSet::new();
        while let Some((other, name)) = wanted.pop() {
            if (other == ns && in_part(&name)) || !seen.insert((other.clone(), name.clone())) {
                continue;
            }
            let Some(entry) = self.states.get(&other).and_then(|s| s.services.get(&name)) else { continue };
            self.service_models(&mut m, &other, &name, entry);
            wanted.extend(chase_target(entry, zone));
        }
        self.apex_models(&mut m);
        if keys.is_empty() {
            return None;
        }
        let mut enc = Encoder::new(self.config.ttl, keys.len());
        for key in &keys {
            let node = enc.node(&m, key, &m.nodes[key]);
            enc.shard.insert(key, &node);
        }
        Some(enc.finish())
    }

    /// A reverse shard's PTR names; `None` when it has none.
    fn reverse_shard(&self, at: IpAddr, members: &[(Key, SvcEntry)]) -> Option<Shard> {
        let here = |ip: &IpAddr| reverse_shard(*ip) == at;
        let mut ptr_cluster: BTreeMap<IpAddr, String> = BTreeMap::new();
        let mut ptr_endpoints: Vec<(IpAddr, String)> = Vec::new();
        for ((ns, name), entry) in members {
            let Some(svc) = &entry.info else { continue };
            let Some(svc_name) = service_name(name, ns, &self.zone) else { continue };
            match &svc.kind {
                SvcKind::External(_) => continue,
                SvcKind::ClusterIp(ips) if !svc.ports.is_empty() => {
                    for ip in ips.iter().filter(|ip| here(ip)) {
                        ptr_cluster.entry(*ip).or_insert_with(|| svc_name.clone());
                    }
                }
                _ => {}
            }
            for (_, ip, target) in published(entry, &svc_name, self.config.endpoint_pod_names) {
                if here(&ip) {
                    ptr_endpoints.push((ip, target));
                }
            }
        }
        let mut m = self.models();
        for (ip, target) in &ptr_cluster {
            if let Some(n) = m.node(&reverse_name(*ip)) {
                n.ptrs.push(target.clone());
            }
        }
        for (ip, target) in ptr_endpoints {
            if ptr_cluster.contains_key(&ip) {
                continue;
            }
            if let Some(n) = m.node(&reverse_name(ip)) {
                if !n.ptrs.contains(&target) {
                    n.ptrs.push(target);
                }
            }
        }
        if m.nodes.is_empty() {
            return None;
        }
        let mut enc = Encoder::new(self.config.ttl, m.nodes.len());
        for (key, model) in &m.nodes {
            let node = enc.node(&m, key, model);
            enc.shard.insert(key, &node);
        }
        Some(enc.finish())
    }

    /// The apex's part, with the reverse zones' empty non-terminals above `reverse` shards.
    fn top_shard(&self, reverse: impl Iterator<Item = IpAddr>) -> Shard {
        let mut m = self.models();
        self.apex_models(&mut m);
        let zone = wire_name(&self.zone).unwrap_or_else(|| vec![0]);
        let apex: Vec<Vec<u8>> = m.nodes.keys().cloned().collect();
        // The shard's own name is its first address's reverse name without the first label.
        let reverse = reverse.filter_map(|at| wire_name(&reverse_name(at)));
        for name in apex.into_iter().chain(reverse) {
            let stops: [&[u8]; 3] = [&zone, b"\x07in-addr\x04arpa\x00", b"\x03ip6\x04arpa\x00"];
            let Some(stop) = stops.iter().find(|s| name.ends_with(s)) else { continue };
            let mut i = 0;
            while name.len() - i > stop.len() {
                i += 1 + usize::from(name[i]);
                if name.len() - i <= stop.len() || m.nodes.contains_key(&name[i..]) {
                    break;
                }
                m.nodes.insert(name[i..].to_vec(), NodeModel::default());
            }
        }
        let mut enc = Encoder::new(self.config.ttl, m.nodes.len());
        for (key, model) in &m.nodes {
            let node = enc.node(&m, key, model);
            enc.shard.insert(key, &node);
        }
        enc.finish()
    }
}

/// The Service an in-zone ExternalName leads to, `(namespace, name)`, if it leads to one.
fn chase_target(entry: &SvcEntry, zone: &str) -> Option<(String, String)> {
    let Some(SvcInfo { kind: SvcKind::External(target), .. }) = &entry.info else { return None };
    let (ns, name) = in_zone_target(target, zone)?;
    Some((ns, name?))
}

/// `<name>.<ns>.svc.<zone>`, lower-cased; `None` if it is not a valid name.
fn service_name(name: &str, ns: &str, zone: &str) -> Option<String> {
    let svc_name = format!("{name}.{ns}.svc.{zone}").to_ascii_lowercase();
    wire_name(&svc_name).map(|_| svc_name)
}

/// A Service's published endpoint addresses (ready, or any with `publishNotReadyAddresses`),
/// each with its slice and its name under the Service; addresses whose name would not be a valid
/// name are left out.
fn published<'a>(
    entry: &'a SvcEntry,
    svc_name: &'a str,
    pod_names: bool,
) -> impl Iterator<Item = (&'a SliceInfo, IpAddr, String)> + 'a {
    let publish_not_ready = entry.info.as_ref().is_some_and(|i| i.publish_not_ready);
    entry.slices.values().flat_map(move |slice| {
        slice.endpoints.iter().filter(move |e| e.ready || publish_not_ready).flat_map(move |ep| {
            ep.addresses.iter().filter_map(move |ip| {
                let target = format!("{}.{svc_name}", endpoint_hostname(ep, *ip, pod_names));
                wire_name(&target).map(|_| (slice, *ip, target))
            })
        })
    })
}

fn endpoint_hostname(ep: &EndpointInfo, ip: IpAddr, pod_names: bool) -> String {
    if let Some(h) = &ep.hostname {
        return h.to_ascii_lowercase();
    }
    if pod_names {
        if let Some(p) = &ep.pod_name {
            return p.to_ascii_lowercase();
        }
    }
    dashed(ip)
}

/// About how many names a part of these Services will have (a little more, rather than less): the
/// models' map sized once for them. Left to grow as names came, rehashing it was a seventh of the
/// build's time.
fn expected_names<'a>(services: impl Iterator<Item = &'a SvcEntry>) -> usize {
    // A Service: its name, a named port's SRV name and the `_proto` name above it; an endpoint
    // address: its hostname's name.
    let per_service = |s: &SvcEntry| {
        let names = 1 + 2 * s.info.as_ref().map_or(0, |i| i.ports.len());
        let addresses: usize = s.slices.values().flat_map(|s| &s.endpoints).map(|e| e.addresses.len()).sum();
        names + addresses
    };
    services.map(per_service).sum::<usize>() + 16
}

/// What one name holds before encoding. `entries` are CoreDNS's `msg.Service`s: an address, a
/// port (`-1`: none) and the name an SRV record targets; A, AAAA and SRV all derive from them.
#[derive(Default, Debug)]
struct NodeModel {
    entries: Vec<Entry>,
    cname: Option<String>,
    txt: Option<String>,
    ptrs: Vec<String>,
    ns: Vec<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    ip: IpAddr,
    port: i32,
    target: String,
}

struct Models {
    zone: String,
    nodes: HashMap<Vec<u8>, NodeModel, BuildFast>,
}

fn fast_set<T>() -> HashSet<T, BuildFast> {
    HashSet::with_hasher(BuildFast::default())
}

impl Models {
    fn node(&mut self, name: &str) -> Option<&mut NodeModel> {
        Some(self.nodes.entry(wire_name(name)?).or_default())
    }

    fn get(&self, name: &str) -> Option<&NodeModel> {
        self.nodes.get(&wire_name(name)?)
    }

    fn in_zone(&self, name: &str) -> bool {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        n == self.zone || n.ends_with(&format!(".{}", self.zone))
    }
}

/// Encodes names' record sets into one shard.
struct Encoder {
    ttl: u32,
    shard: Shard,
    /// The sets added, by their bytes (answers then additional records), the answers' length
    /// and rotation.
    seen: HashMap<(Vec<u8>, usize, u16), u32, BuildFast>,
}

impl Encoder {
    fn new(ttl: u32, names: usize) -> Self {
        Encoder {
            ttl,
            seen: HashMap::with_capacity_and_hasher(names, BuildFast::default()),
            shard: Shard {
                nodes: NameTable::with_capacity(names, names * 32),
                refs: Vec::with_capacity(names * 2),
                sets: Vec::new(),
                arena: Vec::new(),
                targets: Vec::new(),
                pods: Vec::new(),
            },
        }
    }

    fn finish(mut self) -> Shard {
        let s = &mut self.shard;
        s.arena.shrink_to_fit();
        s.refs.shrink_to_fit();
        s.sets.shrink_to_fit();
        s.nodes.shrink_to_fit();
        self.shard
    }

    /// The encoded node of one name.
    fn node(&mut self, m: &Models, key: &[u8], model: &NodeModel) -> Draft {
        let ttl = self.ttl;
        let mut node = Draft::empty();
        node.sets[SET_A] = self.address_set(model, false);
        node.sets[SET_AAAA] = self.address_set(model, true);
        node.sets[SET_SRV] = self.srv_set(model);
        if let Some(txt) = &model.txt {
            let ttl = if key.starts_with(b"\x0bdns-version") { DNS_VERSION_TTL } else { ttl };
            let records: Vec<Vec<u8>> =
                txt_data(txt).map(|d| record_bytes(None, TYPE_TXT, ttl, &d)).into_iter().collect();
            node.sets[SET_TXT] = self.push_set(&records, &[], 0);
        }
        if !model.ptrs.is_empty() {
            let records: Vec<Vec<u8>> =
                model.ptrs.iter().filter_map(|t| Some(record_bytes(None, TYPE_PTR, ttl, &wire_name(t)?))).collect();
            node.sets[SET_PTR] = self.push_set(&records, &[], 0);
        }
        if !model.ns.is_empty() {
            node.sets[SET_NS] = self.ns_set(m, model);
        }
        if let Some(target) = &model.cname {
            self.external(m, &mut node, target);
        }
        node
    }

    /// Adds a record set (its answers and additional records while they fit in a TCP message);
    /// one with the same records as a set added before is that set (a Service's name and its
    /// port's `_port._proto` name have the same A and SRV records).
    fn push_set(&mut self, answers: &[Vec<u8>], extras: &[Vec<u8>], rotate: u16) -> u32 {
        if answers.is_empty() {
            return NONE;
        }
        let mut total = 0;
        let mut an = 0u16;
        let mut bytes = Vec::new();
        for a in answers {
            total += a.len();
            if total > MAX_SET_BYTES {
                break;
            }
            bytes.extend_from_slice(a);
            an += 1;
        }
        let answer_len = bytes.len();
        for a in extras {
            total += a.len();
            if total > MAX_SET_BYTES {
                break;
            }
            bytes.extend_from_slice(a);
        }
        let key = (bytes, answer_len, rotate);
        if let Some(&i) = self.seen.get(&key) {
            return i;
        }
        let arena = &mut self.shard.arena;
        let start = arena.len() as u32;
        arena.extend_from_slice(&key.0);
        let answer = (start, answer_len as u32);
        let extra = (start + answer_len as u32, (key.0.len() - answer_len) as u32);
        self.shard.sets.push(RrSet { answer, an, extra, rotate });
        let i = (self.shard.sets.len() - 1) as u32;
        self.seen.insert(key, i);
        i
    }

    /// A (or AAAA) records of a name: its entries' addresses, each once.
    fn address_set(&mut self, model: &NodeModel, v6: bool) -> u32 {
        let mut seen = fast_set();
        let answers: Vec<Vec<u8>> = model
            .entries
            .iter()
            .filter(|e| e.ip.is_ipv6() == v6 && seen.insert(e.ip))
            .map(|e| address_record(None, self.ttl, e.ip))
            .collect();
        let rotate = answers.first().map_or(0, |a| a.len() as u16);
        self.push_set(&answers, &[], rotate)
    }

    /// SRV records as CoreDNS's `plugin.SRV`: one per entry with a port, each (target, port) once,
    /// priority 0, weight ⌊100 / entries⌋ (at least 1); the targets' addresses in Additional.
    fn srv_set(&mut self, model: &NodeModel) -> u32 {
        if model.entries.is_empty() {
            return NONE;
        }
        let weight = (100 / model.entries.len()).max(1) as u16;
        let mut seen_srv = fast_set();
        let mut seen_addr = fast_set();
        let mut answers = Vec::new();
        let mut extras = Vec::new();
        for e in &model.entries {
            let Ok(port) = u16::try_from(e.port) else { continue };
            let Some(target) = wire_name(&e.target) else { continue };
            if seen_srv.insert((e.target.as_str(), port)) {
                answers.push(record_bytes(None, TYPE_SRV, self.ttl, &srv_data(0, weight, port, &target)));
            }
            if seen_addr.insert((e.target.as_str(), e.ip)) {
                extras.push(address_record(Some(&target), self.ttl, e.ip));
            }
        }
        self.push_set(&answers, &extras, 0)
    }

    fn ns_set(&mut self, m: &Models, model: &NodeModel) -> u32 {
        let mut answers = Vec::new();
        let mut extras = Vec::new();
        for ns in &model.ns {
            let Some(name) = wire_name(ns) else { continue };
            answers.push(record_bytes(None, TYPE_NS, self.ttl, &name));
            for e in m.get(ns).map(|n| &n.entries[..]).unwrap_or_default() {
                extras.push(address_record(Some(&name), self.ttl, e.ip));
            }
        }
        self.push_set(&answers, &extras, 0)
    }

    /// An ExternalName: its CNAME; for A and AAAA, the chain followed inside the zone as
    /// CoreDNS's `plugin.A` does (CNAMEs, then the addresses; nothing, so NODATA, when the chain
    /// ends in no address or loops), or the name to resolve upstream when it leaves the zone.
    fn external(&mut self, m: &Models, node: &mut Draft, target: &str) {
        let Some(target_name) = wire_name(target) else { return };
        let cname = record_bytes(None, TYPE_CNAME, self.ttl, &target_name);
        node.sets[SET_CNAME] = self.push_set(std::slice::from_ref(&cname), &[], 0);

        let mut chain = vec![cname];
        let mut current = target.to_string();
        let mut seen = vec![current.clone()];
        loop {
            if !m.in_zone(&current) {
                let Some(name) = fqdn(&current) else { return };
                let set = self.push_set(&chain, &[], 0);
                node.sets[SET_A] = set;
                node.sets[SET_AAAA] = set;
                node.sets[SET_TXT] = set;
                self.shard.targets.push(name);
                node.chase = (self.shard.targets.len() - 1) as u32;
                return;
            }
            let Some(next) = m.get(&current) else { return };
            if let Some(t) = &next.cname {
                if seen.contains(t) || chain.len() > MAX_CNAME_CHAIN {
                    return;
                }
                let (Some(owner), Some(tn)) = (wire_name(&current), wire_name(t)) else { return };
                chain.push(record_bytes(Some(&owner), TYPE_CNAME, self.ttl, &tn));
                seen.push(t.clone());
                current = t.clone();
                continue;
            }
            let Some(owner) = wire_name(&current) else { return };
            for (set, v6) in [(SET_A, false), (SET_AAAA, true)] {
                let mut seen_ip = fast_set();
                let addrs: Vec<Vec<u8>> = next
                    .entries
                    .iter()
                    .filter(|e| e.ip.is_ipv6() == v6 && seen_ip.insert(e.ip))
                    .map(|e| address_record(Some(&owner), self.ttl, e.ip))
                    .collect();
                if !addrs.is_empty() {
                    let mut all = chain.clone();
                    all.extend(addrs);
                    node.sets[set] = self.push_set(&all, &[], 0);
                }
            }
            return;
        }
    }
}

fn fqdn(name: &str) -> Option<Name> {
    let name = name.trim_end_matches('.');
    Name::from_ascii(format!("{name}.")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    fn service(ns: &str, name: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})).expect("a Service")
    }

    fn slice(ns: &str, name: &str, service: &str, ip: &str) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": [{"addresses": [ip]}],
        }))
        .expect("an EndpointSlice")
    }

    /// Whether two indexes share a part: a namespace's own names (`part` `None`) or one of its
    /// Service parts, or a reverse shard.
    fn same(a: &ClusterIndex, b: &ClusterIndex, ns: &str, part: Option<usize>) -> bool {
        let (a, b) = (&a.namespaces[ns.as_bytes()], &b.namespaces[ns.as_bytes()]);
        match part {
            None => Arc::ptr_eq(&a.head, &b.head),
            Some(p) => match (&a.services[p], &b.services[p]) {
                (Some(x), Some(y)) => Arc::ptr_eq(x, y),
                _ => false,
            },
        }
    }

    fn part(name: &str, parts: usize) -> usize {
        service_part(name.as_bytes(), parts)
    }

    /// A change builds its Service's part of its namespace and its reverse shards again, and
    /// the parts of the ExternalNames that lead into its namespace; every other part is the one
    /// before.
    #[test]
    fn a_change_builds_only_the_parts_it_touches() {
        let mut b = IndexBuilder::new(IndexConfig { services_per_part: 1, ..IndexConfig::default() });
        let ports = json!([{"port": 80}]);
        b.apply_service(&service("a", "api", json!({"clusterIP": "10.96.0.1", "ports": ports})));
        // Four Services in `b`: four parts, `web` and `db` in different ones.
        for (name, ip) in [("web", "10.96.1.1"), ("db", "10.96.1.2"), ("cache", "10.96.1.3"), ("queue", "10.96.1.4")] {
            b.apply_service(&service("b", name, json!({"clusterIP": ip, "ports": ports})));
        }
        assert_ne!(part("web", 4), part("db", 4));
        b.apply_service(&service(
            "c",
            "alias",
            json!({"type": "ExternalName", "externalName": "api.a.svc.cluster.local"}),
        ));
        b.apply_slice(&slice("b", "web-1", "web", "10.244.2.5"));
        let first = b.take_changes().build(None);
        assert_eq!(first.namespaces[&b"b"[..]].services.len(), 4);
        let at = |s: &str| s.parse::<IpAddr>().expect("an address");

        b.apply_slice(&slice("b", "web-1", "web", "10.244.2.6"));
        let rebuild = b.take_changes();
        let plan = Plan { parts: 4, head: false, services: Some(BTreeSet::from([part("web", 4)])) };
        assert_eq!(rebuild.plans, [("b".to_string(), plan)]);
        // The shards of the Service's addresses (its ClusterIP's too: a reverse shard is small).
        let shards: Vec<IpAddr> = rebuild.reverse.iter().map(|r| r.0).collect();
        assert_eq!(shards, [at("10.96.1.0"), at("10.244.2.0")]);
        let second = rebuild.build(Some(&first));
        assert!(!same(&first, &second, "b", Some(part("web", 4))));
        assert!(same(&first, &second, "b", Some(part("db", 4))));
        assert!(same(&first, &second, "b", None));
        assert!(same(&first, &second, "a", Some(0)));
        assert!(same(&first, &second, "c", Some(0)));
        assert!(Arc::ptr_eq(&first.reverse_shards[&at("10.96.0.0")], &second.reverse_shards[&at("10.96.0.0")]));

        // `c`'s ExternalName leads into `a`: a change in `a` builds `c`'s part again too.
        b.apply_service(&service("a", "api", json!({"clusterIP": "10.96.0.2", "ports": ports})));
        let rebuild = b.take_changes();
        let names: Vec<&str> = rebuild.plans.iter().map(|(ns, _)| ns.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        let third = rebuild.build(Some(&second));
        assert!(!same(&second, &third, "c", Some(0)));
        assert!(same(&second, &third, "b", Some(part("web", 4))));

        // A fifth Service in `b`: eight parts, `b` built again whole.
        b.apply_service(&service("b", "mail", json!({"clusterIP": "10.96.1.5", "ports": ports})));
        let rebuild = b.take_changes();
        assert_eq!(rebuild.plans, [("b".to_string(), Plan { parts: 8, head: true, services: None })]);
        assert_eq!(rebuild.build(Some(&third)).namespaces[&b"b"[..]].services.len(), 8);
    }
}
