//! The immutable index: every name of the zone (and of the reverse zones), with each of its
//! record sets encoded once, at build, into one byte arena.
//!
//! A name's records are kept as they go on the wire in an answer: the owner is a compression
//! pointer to the question name (offset 12), so a response is the request's question followed
//! by copied bytes. Additional records (an SRV's addresses) and CNAME chains carry their own
//! owner names, uncompressed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{Cidr, IndexConfig, PodMode};
use crate::model::IndexBuilder;
use crate::names::NameTable;
use crate::wire::{CLASS_IN, TYPE_A, TYPE_AAAA};

/// The schema version `dns-version.<zone>` answers (specification §2.2).
pub const SCHEMA_VERSION: &str = "1.1.0";
/// CoreDNS's TTL for `dns-version.<zone>`.
pub const DNS_VERSION_TTL: u32 = 28800;
pub(crate) const NONE: u32 = u32::MAX;
pub(crate) const SET_A: usize = 0;
pub(crate) const SET_AAAA: usize = 1;
pub(crate) const SET_SRV: usize = 2;
pub(crate) const SET_TXT: usize = 3;
pub(crate) const SET_CNAME: usize = 4;
pub(crate) const SET_PTR: usize = 5;
pub(crate) const SET_NS: usize = 6;
pub(crate) const SETS: usize = 7;

/// One name of the index as it is encoded: what it has, by kind.
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    /// Record sets by kind (`SET_*`), indexes into `Shard::sets`, `NONE` when absent.
    pub(crate) sets: [u32; SETS],
    /// For an ExternalName whose CNAME chain leaves the zone: the name the server must resolve
    /// upstream (index into `Shard::targets`).
    pub(crate) chase: u32,
    /// For `<ns>.pod.<zone>` in verified mode: that namespace's pod addresses (index into
    /// `Shard::pods`).
    pub(crate) pods: u32,
}

impl Draft {
    pub(crate) fn empty() -> Self {
        Draft { sets: [NONE; SETS], chase: NONE, pods: NONE }
    }
}

/// What `Node::mask`'s bits after the record sets' say a name has.
const CHASE: u32 = SETS as u32;
const PODS: u32 = CHASE + 1;

/// One name of the index, packed: which of the record sets (and chase target, and pod
/// addresses) it has, a bit each, and where their indexes start in `Shard::refs`, in bit order.
/// Most names have one or two record sets: seven indexes each, as a name held them before,
/// were a third of the index.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    first: u32,
    mask: u16,
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

/// The cluster's names, immutable once built. Cheap to query (a look-up of the question name's
/// part, then of the name in it), with no locks: build a new one on change and swap it in behind
/// an `Arc`. It is made of parts ([`Shard`]s) that a new index built after a change shares with
/// the one before, but for those the change touched (see `build`).
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
    /// The apex's names, and the reverse zones' names above the reverse shards.
    pub(crate) top: Arc<Shard>,
    /// Each namespace's names (`…<ns>.svc.<zone>`, `…<ns>.pod.<zone>`), by its lower-cased name.
    pub(crate) namespaces: HashMap<Box<[u8]>, NsParts, BuildFast>,
    /// PTR names by the address their shard starts at (an IPv4 `/24`, an IPv6 `/124`).
    pub(crate) reverse_shards: HashMap<IpAddr, Arc<Shard>, BuildFast>,
}

/// A namespace's parts: its own two names (`<ns>.svc.<zone>`, `<ns>.pod.<zone>`), and its
/// Services' names split by [`service_part`] (`None`: no Service of the namespace falls there).
#[derive(Clone, Debug)]
pub(crate) struct NsParts {
    pub(crate) head: Arc<Shard>,
    pub(crate) services: Vec<Option<Arc<Shard>>>,
}

/// How many parts a namespace with `services` Services has: a power of two, so that a part is
/// the hash's low bits.
pub(crate) fn parts_for(services: usize, per_part: usize) -> usize {
    services.div_ceil(per_part.max(1)).next_power_of_two()
}

/// The part (of `parts`, a power of two) that holds the names of the Service named `service`
/// (in any case): FNV-1a of its lower-cased name, which build and query agree on.
pub(crate) fn service_part(service: &[u8], parts: usize) -> usize {
    let fnv = |h: u64, b: &u8| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3);
    let hash = service.iter().fold(0xcbf2_9ce4_8422_2325u64, fnv);
    (hash as usize) & (parts.max(1) - 1)
}

/// One part of the index: names and their record sets, encoded into one byte arena.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) nodes: NameTable<Node>,
    /// Each name's indexes into `sets`, `targets` and `pods` (see [`Node`]).
    pub(crate) refs: Vec<u32>,
    pub(crate) sets: Vec<RrSet>,
    pub(crate) arena: Vec<u8>,
    pub(crate) targets: Vec<Name>,
    pub(crate) pods: Vec<HashSet<IpAddr>>,
}

impl Shard {
    /// The index `node` has for `bit`, if it has one.
    fn slot(&self, node: &Node, bit: u32) -> Option<usize> {
        if node.mask & (1 << bit) == 0 {
            return None;
        }
        let rank = (node.mask & ((1 << bit) - 1)).count_ones() as usize;
        self.refs.get(node.first as usize + rank).map(|&i| i as usize)
    }

    pub(crate) fn set(&self, node: &Node, kind: usize) -> Option<&RrSet> {
        self.sets.get(self.slot(node, kind as u32)?)
    }

    /// An ExternalName's target outside the zone, to resolve upstream.
    pub(crate) fn chase(&self, node: &Node) -> Option<&Name> {
        self.targets.get(self.slot(node, CHASE)?)
    }

    /// A namespace's pod addresses (`pods verified`).
    pub(crate) fn pods(&self, node: &Node) -> Option<&HashSet<IpAddr>> {
        self.pods.get(self.slot(node, PODS)?)
    }

    /// Adds a name, packing what `draft` says it has.
    pub(crate) fn insert(&mut self, name: &[u8], draft: &Draft) {
        let first = u32::try_from(self.refs.len()).expect("fewer than 2³² record sets");
        let mut mask = 0u16;
        let all = draft.sets.iter().chain([&draft.chase, &draft.pods]);
        for (bit, &i) in all.enumerate().filter(|(_, &i)| i != NONE) {
            mask |= 1 << bit;
            self.refs.push(i);
        }
        self.nodes.insert(name, Node { first, mask });
    }
}

/// The build's maps and sets hash with foldhash (seeded per map): with std's SipHash, hashing
/// was a tenth of the build's time. Queries look names up in [`NameTable`].
pub(crate) type BuildFast = foldhash::fast::RandomState;

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

    fn shards(&self) -> impl Iterator<Item = &Shard> {
        std::iter::once(&*self.top)
            .chain(
                self.namespaces
                    .values()
                    .flat_map(|p| std::iter::once(&*p.head).chain(p.services.iter().flatten().map(|s| &**s))),
            )
            .chain(self.reverse_shards.values().map(|s| &**s))
    }

    /// The number of names (including empty non-terminals) in the index.
    pub fn len(&self) -> usize {
        self.shards().map(|s| s.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of encoded records.
    pub fn arena_bytes(&self) -> usize {
        self.shards().map(|s| s.arena.len()).sum()
    }

    /// A name (lower-cased wire form) and the part it is in.
    pub(crate) fn find(&self, name: &[u8]) -> Option<(&Shard, &Node)> {
        let shard = self.shard_of(name).unwrap_or(&self.top);
        shard.nodes.get(name).map(|node| (shard, node)).or_else(|| Some((&*self.top, self.top.nodes.get(name)?)))
    }

    /// The part that holds `name` if it is not the apex's: its namespace's own for
    /// `<ns>.svc.<zone>` and `…<ns>.pod.<zone>`, its Service's for `…<svc>.<ns>.svc.<zone>`, its
    /// reverse shard's for a PTR name.
    fn shard_of(&self, name: &[u8]) -> Option<&Shard> {
        let mut starts = [0u8; 128];
        let mut count = 0;
        let mut at = 0;
        while at < name.len() && name[at] != 0 && count < starts.len() {
            starts[count] = at as u8;
            count += 1;
            at += 1 + usize::from(name[at]);
        }
        let label = |i: usize| {
            let start = usize::from(starts[i]);
            name.get(start + 1..start + 1 + usize::from(name[start])).unwrap_or_default()
        };
        if name.ends_with(&self.zone) {
            let k = count.checked_sub(self.zone_labels)?;
            if k >= 2 && matches!(label(k - 1), b"svc" | b"pod") {
                let parts = self.namespaces.get(label(k - 2))?;
                if k == 2 || label(k - 1) == b"pod" {
                    return Some(&parts.head);
                }
                let part = service_part(label(k - 3), parts.services.len());
                return parts.services.get(part)?.as_deref();
            }
            return None;
        }
        let at = if count == 6 && name.ends_with(b"\x07in-addr\x04arpa\x00") {
            let mut v4 = 0u32;
            for i in (1..4).rev() {
                v4 = (v4 << 8) | u32::try_from(crate::answer::parse_label(label(i), false)?).ok()?;
            }
            IpAddr::V4((v4 << 8).into())
        } else if count == 34 && name.ends_with(b"\x03ip6\x04arpa\x00") {
            let mut v6 = 0u128;
            for i in (1..32).rev() {
                v6 = (v6 << 4) | crate::answer::parse_label(label(i), true)?;
            }
            IpAddr::V6((v6 << 4).into())
        } else {
            return None;
        };
        self.reverse_shards.get(&at).map(|s| &**s)
    }
}

/// One record, as it goes on the wire (owner `None`: a pointer to the question name; names
/// uncompressed, lower-cased): every record the index holds. Written directly, not through
/// hickory's encoder, which made a record and parsed its names for each (a tenth of the build);
/// the test compares the two byte for byte.
pub(crate) fn record_bytes(owner: Option<&[u8]>, rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
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
pub(crate) fn address_record(owner: Option<&[u8]>, ttl: u32, ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => record_bytes(owner, TYPE_A, ttl, &v4.octets()),
        IpAddr::V6(v6) => record_bytes(owner, TYPE_AAAA, ttl, &v6.octets()),
    }
}

/// An SRV record's data: priority, weight, port, the target's name.
pub(crate) fn srv_data(priority: u16, weight: u16, port: u16, target: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(6 + target.len());
    for n in [priority, weight, port] {
        data.extend_from_slice(&n.to_be_bytes());
    }
    data.extend_from_slice(target);
    data
}

/// A TXT record's data: `text` as one character-string (`None` if longer than one can be).
pub(crate) fn txt_data(text: &str) -> Option<Vec<u8>> {
    let length = u8::try_from(text.len()).ok()?;
    Some([&[length][..], text.as_bytes()].concat())
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
    use crate::wire::{wire_name, TYPE_CNAME, TYPE_NS, TYPE_PTR, TYPE_SRV, TYPE_TXT};
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
        let fqdn = |n: &str| Name::from_ascii(format!("{n}.")).unwrap();
        let (name, wire) = (fqdn(target), wire_name(target).unwrap());
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
        let owner = fqdn("db.default.svc.cluster.local");
        let owner_wire = wire_name("db.default.svc.cluster.local").unwrap();
        let cname = RData::CNAME(CNAME(name));
        assert_eq!(Some(record_bytes(Some(&owner_wire), TYPE_CNAME, 30, &wire)), enc.record(Some(&owner), 30, cname));
        let txt = RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()]));
        let direct = txt_data(SCHEMA_VERSION).map(|d| record_bytes(None, TYPE_TXT, DNS_VERSION_TTL, &d));
        assert_eq!(direct, enc.record(None, DNS_VERSION_TTL, txt));
    }
}
