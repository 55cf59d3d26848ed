//! The immutable index: every name of the zone (and of the reverse zones), with each of its
//! record sets encoded once, at build, into one byte arena.
//!
//! A name's records are kept as they go on the wire in an answer: the owner is a compression
//! pointer to the question name (offset 12), so a response is the request's question followed
//! by copied bytes. Additional records (an SRV's addresses) and CNAME chains carry their own
//! owner names, uncompressed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{Cidr, IndexConfig, PodMode};
use crate::model::{EndpointInfo, IndexBuilder, SvcKind};
use crate::names::NameTable;
use crate::wire::{wire_name, CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_PTR, TYPE_SRV, TYPE_TXT};

/// The schema version `dns-version.<zone>` answers (specification §2.2).
pub const SCHEMA_VERSION: &str = "1.1.0";
/// CoreDNS's TTL for `dns-version.<zone>`.
pub const DNS_VERSION_TTL: u32 = 28800;
/// CoreDNS's limit on CNAME chains inside the zone.
const MAX_CNAME_CHAIN: usize = 10;
/// A record set never grows beyond what one TCP message can hold.
const MAX_SET_BYTES: usize = 65_000;

pub(crate) const NONE: u32 = u32::MAX;
pub(crate) const SET_A: usize = 0;
pub(crate) const SET_AAAA: usize = 1;
pub(crate) const SET_SRV: usize = 2;
pub(crate) const SET_TXT: usize = 3;
pub(crate) const SET_CNAME: usize = 4;
pub(crate) const SET_PTR: usize = 5;
pub(crate) const SET_NS: usize = 6;
const SETS: usize = 7;

/// One name of the index.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// Record sets by kind (`SET_*`), indexes into `ClusterIndex::sets`, `NONE` when absent.
    pub(crate) sets: [u32; SETS],
    /// For an ExternalName whose CNAME chain leaves the zone: the name the server must resolve
    /// upstream (index into `ClusterIndex::targets`).
    pub(crate) chase: u32,
    /// For `<ns>.pod.<zone>` in verified mode: that namespace's pod addresses (index into
    /// `ClusterIndex::pods`).
    pub(crate) pods: u32,
}

impl Node {
    fn empty() -> Self {
        Node { sets: [NONE; SETS], chase: NONE, pods: NONE }
    }
}

/// One encoded record set: answer records, and the additional records that go with them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RrSet {
    pub(crate) answer: (u32, u32),
    pub(crate) an: u16,
    pub(crate) extra: (u32, u32),
    /// Size of each answer record when they may be rotated (A, AAAA with pointer owners), else 0.
    pub(crate) rotate: u16,
}

/// A reverse zone the index answers for authoritatively.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReverseZone {
    pub(crate) cidr: Cidr,
    /// Address labels in the zone's apex.
    pub(crate) labels: usize,
}

/// The cluster's names, immutable once built. Cheap to query (one hash lookup of the lower-cased
/// question name), with no locks: build a new one on change and swap it in behind an `Arc`.
#[derive(Debug)]
pub struct ClusterIndex {
    pub(crate) ttl: u32,
    pub(crate) serial: u32,
    pub(crate) pod_mode: PodMode,
    pub(crate) max_udp_payload: u16,
    /// The zone in lower-cased wire form, and its label count.
    pub(crate) zone: Vec<u8>,
    pub(crate) zone_labels: usize,
    pub(crate) reverse: Vec<ReverseZone>,
    pub(crate) nodes: NameTable<Node>,
    pub(crate) sets: Vec<RrSet>,
    pub(crate) arena: Vec<u8>,
    pub(crate) targets: Vec<Name>,
    pub(crate) pods: Vec<HashSet<IpAddr>>,
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

/// `10.244.1.5` → `10-244-1-5`; IPv6 `:` → `-`, with a trailing `-` completed by `0` (CoreDNS's
/// `endpointHostname`).
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let mut s = v6.to_string().replace(':', "-");
            if s.ends_with('-') {
                s.push('0');
            }
            s
        }
    }
}

/// The reverse name of an address: `5.1.244.10.in-addr.arpa`, or 32 nibbles under `ip6.arpa`.
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xF, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
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

/// About how many names the index of `b` will have (a little more, rather than less): the
/// models' map sized once for them. Left to grow as names came, rehashing it was a seventh of the
/// build's time.
fn expected_names(b: &IndexBuilder) -> usize {
    // A Service: its name, its ClusterIP's PTR, a named port's SRV name and the `_proto` name
    // above it.
    let services: usize = b.services.values().map(|s| 2 + 2 * s.ports.len()).sum();
    // An endpoint address: its hostname's name and its PTR; the reverse zone's names above.
    let addresses: usize = b.slices.values().flat_map(|s| &s.endpoints).map(|e| 3 * e.addresses.len()).sum();
    services + addresses + 2 * b.namespaces.len() + 64
}

struct Models {
    zone: String,
    nodes: HashMap<Vec<u8>, NodeModel, BuildFast>,
}

/// The build's own maps and sets hash with foldhash (seeded per map): with std's SipHash,
/// hashing was a tenth of the build's time. Queries look names up in [`NameTable`].
type BuildFast = foldhash::fast::RandomState;

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

impl ClusterIndex {
    /// Builds the index of a whole cluster in one go.
    pub fn build(
        config: IndexConfig,
        namespaces: &[Namespace],
        services: &[Service],
        slices: &[EndpointSlice],
        pods: &[Pod],
    ) -> ClusterIndex {
        let mut b = IndexBuilder::new(config);
        namespaces.iter().for_each(|n| b.apply_namespace(n));
        for s in services {
            b.apply_service(s);
        }
        for s in slices {
            b.apply_slice(s);
        }
        for p in pods {
            b.apply_pod(p);
        }
        b.build()
    }

    /// The number of names (including empty non-terminals) in the index.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Bytes of encoded records.
    pub fn arena_bytes(&self) -> usize {
        self.arena.len()
    }

    pub(crate) fn from_builder(b: &IndexBuilder) -> ClusterIndex {
        let cfg = &b.config;
        let zone = cfg.zone.trim_end_matches('.').to_ascii_lowercase();
        let zone_wire = wire_name(&zone).unwrap_or_else(|| vec![0]);
        let zone_labels = zone.split('.').filter(|l| !l.is_empty()).count();
        let nodes = HashMap::with_capacity_and_hasher(expected_names(b), BuildFast::default());
        let mut m = Models { zone: zone.clone(), nodes };
        let ttl = cfg.ttl;

        // The apex, its name server, the schema version, the two subtrees.
        m.node(&zone);
        if !cfg.ns_addresses.is_empty() {
            let ns_name = format!("ns.dns.{zone}");
            if let Some(apex) = m.node(&zone) {
                apex.ns.push(ns_name.clone());
            }
            if let Some(n) = m.node(&ns_name) {
                n.entries.extend(cfg.ns_addresses.iter().map(|ip| Entry {
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
        let pod_ips = b.pod_ips();
        let mut pods = Vec::new();
        let mut pod_nodes = Vec::new();
        for ns in b.all_namespaces() {
            m.node(&format!("{ns}.svc.{zone}"));
            if cfg.pod_mode != PodMode::Disabled {
                let name = format!("{ns}.pod.{zone}");
                m.node(&name);
                if cfg.pod_mode == PodMode::Verified {
                    pod_nodes.push((name, pods.len() as u32));
                    pods.push(pod_ips.get(ns).cloned().unwrap_or_default());
                }
            }
        }

        // Services and their endpoints.
        let mut slices_by_service: BTreeMap<(&str, &str), Vec<&crate::model::SliceInfo>> = BTreeMap::new();
        for ((ns, _), slice) in &b.slices {
            slices_by_service.entry((ns.as_str(), slice.service.as_str())).or_default().push(slice);
        }
        let mut ptr_cluster: BTreeMap<IpAddr, String> = BTreeMap::new();
        let mut ptr_endpoints: Vec<(IpAddr, String)> = Vec::new();
        for ((ns, name), svc) in &b.services {
            let svc_name = format!("{name}.{ns}.svc.{zone}").to_ascii_lowercase();
            if wire_name(&svc_name).is_none() {
                continue;
            }
            let headless = match &svc.kind {
                SvcKind::External(target) => {
                    if let Some(n) = m.node(&svc_name) {
                        n.cname = Some(target.to_ascii_lowercase());
                    }
                    continue;
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
                    if !svc.ports.is_empty() {
                        for ip in ips {
                            ptr_cluster.entry(*ip).or_insert_with(|| svc_name.clone());
                        }
                    }
                    false
                }
            };
            let no_port = [crate::model::PortInfo { name: String::new(), protocol: String::new(), port: -1 }];
            for slice in slices_by_service.get(&(ns.as_str(), name.as_str())).into_iter().flatten() {
                let ports = if slice.ports.is_empty() { &no_port[..] } else { &slice.ports[..] };
                for ep in slice.endpoints.iter().filter(|e| e.ready || svc.publish_not_ready) {
                    for ip in &ep.addresses {
                        let host = endpoint_hostname(ep, *ip, cfg.endpoint_pod_names);
                        let target = format!("{host}.{svc_name}");
                        if wire_name(&target).is_none() {
                            continue;
                        }
                        for p in ports {
                            let e = Entry { ip: *ip, port: p.port, target: target.clone() };
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
                        ptr_endpoints.push((*ip, target));
                    }
                }
            }
        }
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

        // Empty non-terminals: every ancestor of a name, up to the apex (or `in-addr.arpa`,
        // `ip6.arpa`), exists.
        let keys: Vec<Vec<u8>> = m.nodes.keys().cloned().collect();
        let stops = [zone_wire.clone(), b"\x07in-addr\x04arpa\x00".to_vec(), b"\x03ip6\x04arpa\x00".to_vec()];
        for key in keys {
            let Some(stop) = stops.iter().find(|s| key.ends_with(s)) else { continue };
            let mut at = 0;
            while key.len() - at > stop.len() {
                at += 1 + usize::from(key[at]);
                if key.len() - at <= stop.len() {
                    break;
                }
                m.nodes.entry(key[at..].to_vec()).or_default();
            }
        }

        // Encode.
        let mut index = ClusterIndex {
            ttl,
            serial: cfg.serial,
            pod_mode: cfg.pod_mode,
            max_udp_payload: cfg.max_udp_payload.max(512),
            zone: zone_wire,
            zone_labels,
            reverse: cfg.reverse_cidrs.iter().map(|c| ReverseZone { cidr: *c, labels: c.zone_labels() }).collect(),
            nodes: NameTable::with_capacity(m.nodes.len(), m.nodes.keys().map(Vec::len).sum()),
            sets: Vec::new(),
            arena: Vec::new(),
            targets: Vec::new(),
            pods,
        };
        for (key, model) in &m.nodes {
            let mut node = Node::empty();
            node.sets[SET_A] = index.address_set(model, false);
            node.sets[SET_AAAA] = index.address_set(model, true);
            node.sets[SET_SRV] = index.srv_set(model);
            if let Some(txt) = &model.txt {
                let ttl = if key.starts_with(b"\x0bdns-version") { DNS_VERSION_TTL } else { ttl };
                let records: Vec<Vec<u8>> =
                    txt_data(txt).map(|d| record_bytes(None, TYPE_TXT, ttl, &d)).into_iter().collect();
                node.sets[SET_TXT] = index.push_set(&records, &[], 0);
            }
            if !model.ptrs.is_empty() {
                let records: Vec<Vec<u8>> =
                    model.ptrs.iter().filter_map(|t| Some(record_bytes(None, TYPE_PTR, ttl, &wire_name(t)?))).collect();
                node.sets[SET_PTR] = index.push_set(&records, &[], 0);
            }
            if !model.ns.is_empty() {
                node.sets[SET_NS] = index.ns_set(&m, model);
            }
            if let Some(target) = &model.cname {
                index.external(&m, &mut node, target);
            }
            index.nodes.insert(key, node);
        }
        for (name, i) in pod_nodes {
            if let Some(node) = wire_name(&name).and_then(|k| index.nodes.get_mut(&k[..])) {
                node.pods = i;
            }
        }
        index.arena.shrink_to_fit();
        index.sets.shrink_to_fit();
        index.nodes.shrink_to_fit();
        index
    }

    fn push_set(&mut self, answers: &[Vec<u8>], extras: &[Vec<u8>], rotate: u16) -> u32 {
        if answers.is_empty() {
            return NONE;
        }
        let mut total = 0;
        let start = self.arena.len();
        let mut an = 0u16;
        for a in answers {
            total += a.len();
            if total > MAX_SET_BYTES {
                break;
            }
            self.arena.extend_from_slice(a);
            an += 1;
        }
        let answer = (start as u32, (self.arena.len() - start) as u32);
        let start = self.arena.len();
        for a in extras {
            total += a.len();
            if total > MAX_SET_BYTES {
                break;
            }
            self.arena.extend_from_slice(a);
        }
        let extra = (start as u32, (self.arena.len() - start) as u32);
        self.sets.push(RrSet { answer, an, extra, rotate });
        (self.sets.len() - 1) as u32
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
    fn external(&mut self, m: &Models, node: &mut Node, target: &str) {
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
                self.targets.push(name);
                node.chase = (self.targets.len() - 1) as u32;
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

/// One record, as it goes on the wire (owner `None`: a pointer to the question name; names
/// uncompressed, lower-cased): every record the index holds. Written directly, not through
/// hickory's encoder, which made a record and parsed its names for each (a tenth of the build);
/// the test compares the two byte for byte.
fn record_bytes(owner: Option<&[u8]>, rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let owner = owner.unwrap_or(&[0xC0, 0x0C]);
    let mut record = Vec::with_capacity(owner.len() + 10 + rdata.len());
    record.extend_from_slice(owner);
    record.extend_from_slice(&rtype.to_be_bytes());
    record.extend_from_slice(&CLASS_IN.to_be_bytes());
    record.extend_from_slice(&ttl.to_be_bytes());
    record.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    record.extend_from_slice(rdata);
    record
}

/// An A or AAAA record of `ip`.
fn address_record(owner: Option<&[u8]>, ttl: u32, ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => record_bytes(owner, TYPE_A, ttl, &v4.octets()),
        IpAddr::V6(v6) => record_bytes(owner, TYPE_AAAA, ttl, &v6.octets()),
    }
}

/// An SRV record's data: priority, weight, port, the target's name.
fn srv_data(priority: u16, weight: u16, port: u16, target: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(6 + target.len());
    for n in [priority, weight, port] {
        data.extend_from_slice(&n.to_be_bytes());
    }
    data.extend_from_slice(target);
    data
}

/// A TXT record's data: `text` as one character-string (`None` if longer than one can be).
fn txt_data(text: &str) -> Option<Vec<u8>> {
    let length = u8::try_from(text.len()).ok()?;
    Some([&[length][..], text.as_bytes()].concat())
}

fn fqdn(name: &str) -> Option<Name> {
    let name = name.trim_end_matches('.');
    Name::from_ascii(format!("{name}.")).ok()
}

/// Parses a pod name's address label as CoreDNS does: three dashes and no `--` make an IPv4
/// address, anything else has its dashes read as colons. Without allocating.
pub(crate) fn pod_label_ip(label: &[u8]) -> Option<IpAddr> {
    if label.len() > 63 {
        return None;
    }
    let dashes = label.iter().filter(|&&c| c == b'-').count();
    let v4 = dashes == 3 && !label.windows(2).any(|w| w == b"--");
    let mut buf = [0u8; 63];
    for (d, &s) in buf.iter_mut().zip(label) {
        *d = if s == b'-' {
            if v4 {
                b'.'
            } else {
                b':'
            }
        } else {
            s
        };
    }
    let s = std::str::from_utf8(&buf[..label.len()]).ok()?;
    if v4 {
        s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else {
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SRV, TXT};
    use hickory_proto::rr::{RData, Record};
    use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

    /// Encodes single records with hickory-proto, names uncompressed.
    #[derive(Default)]
    struct Encoder {
        buf: Vec<u8>,
    }

    impl Encoder {
        /// One record; `owner: None` makes the owner a pointer to the question name.
        fn record(&mut self, owner: Option<&Name>, ttl: u32, rdata: RData) -> Option<Vec<u8>> {
            let record = Record::from_rdata(owner.cloned().unwrap_or_else(Name::root), ttl, rdata);
            self.buf.clear();
            let mut encoder = BinEncoder::new(&mut self.buf);
            encoder.set_name_encoding(NameEncoding::Uncompressed);
            record.emit(&mut encoder).ok()?;
            if owner.is_some() {
                return Some(self.buf.clone());
            }
            let mut out = Vec::with_capacity(self.buf.len() + 1);
            out.extend_from_slice(&[0xC0, 0x0C]);
            out.extend_from_slice(self.buf.get(1..)?);
            Some(out)
        }
    }

    fn address(ip: IpAddr) -> RData {
        match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        }
    }

    /// The directly written records are byte for byte what hickory's encoder writes.
    #[test]
    fn direct_records_match_hickorys() {
        let mut enc = Encoder::default();
        let target = "web-0.web.default.svc.cluster.local";
        let (name, wire) = (fqdn(target).unwrap(), wire_name(target).unwrap());
        for ip in [IpAddr::from([10, 96, 0, 7]), IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 7])] {
            assert_eq!(Some(address_record(None, 30, ip)), enc.record(None, 30, address(ip)), "{ip}");
            assert_eq!(Some(address_record(Some(&wire), 5, ip)), enc.record(Some(&name), 5, address(ip)), "{ip}");
        }
        let srv = RData::SRV(SRV::new(0, 33, 8080, name.clone()));
        assert_eq!(Some(record_bytes(None, TYPE_SRV, 30, &srv_data(0, 33, 8080, &wire))), enc.record(None, 30, srv));
        let ptr = RData::PTR(PTR(name.clone()));
        assert_eq!(Some(record_bytes(None, TYPE_PTR, 30, &wire)), enc.record(None, 30, ptr));
        let ns = RData::NS(NS(name.clone()));
        assert_eq!(Some(record_bytes(None, TYPE_NS, 30, &wire)), enc.record(None, 30, ns));
        let owner = fqdn("db.default.svc.cluster.local").unwrap();
        let owner_wire = wire_name("db.default.svc.cluster.local").unwrap();
        let cname = RData::CNAME(CNAME(name));
        assert_eq!(Some(record_bytes(Some(&owner_wire), TYPE_CNAME, 30, &wire)), enc.record(Some(&owner), 30, cname));
        let txt = RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()]));
        let direct = txt_data(SCHEMA_VERSION).map(|d| record_bytes(None, TYPE_TXT, DNS_VERSION_TTL, &d));
        assert_eq!(direct, enc.record(None, DNS_VERSION_TTL, txt));
    }
}
