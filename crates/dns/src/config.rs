//! What the index is built for: the cluster domain, TTLs, pod records, reverse zones.

use std::net::IpAddr;
use std::str::FromStr;

/// How `a-b-c-d.<ns>.pod.<zone>` names are answered (CoreDNS's `pods` option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodMode {
    /// Every pod name is NXDOMAIN (CoreDNS's default).
    Disabled,
    /// Any well-formed address label in an existing namespace is answered, pod or not (kubeadm's Corefile).
    Insecure,
    /// Only the address of a pod (its `status.podIP`) in that namespace is answered.
    Verified,
}

/// An address range: `10.96.0.0/12`, `fd00::/108`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix.min(32))) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix.min(128))) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// How many address labels (octets for IPv4, nibbles for IPv6) the reverse zones of this range
    /// have: CoreDNS splits a range that does not end on a label boundary into the zones of the
    /// next boundary (`10.96.0.0/12` is served as the sixteen zones `96.10.in-addr.arpa` to
    /// `111.10.in-addr.arpa`).
    pub(crate) fn zone_labels(&self) -> usize {
        match self.addr {
            IpAddr::V4(_) => usize::from(self.prefix.min(32)).div_ceil(8),
            IpAddr::V6(_) => usize::from(self.prefix.min(128)).div_ceil(4),
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected ADDRESS/PREFIX"))?;
        let addr: IpAddr = addr.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = prefix.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("{s:?}: prefix longer than {max}"));
        }
        Ok(Cidr { addr, prefix })
    }
}

/// The index's settings. `Default` is kubeadm's Corefile: `cluster.local`, `ttl 30`, `pods insecure`.
#[derive(Clone, Debug)]
pub struct IndexConfig {
    /// The cluster domain (`--cluster-domain`), without a trailing dot or with one.
    pub zone: String,
    /// TTL of every cluster record (`--dns-ttl`); also the SOA's minimum, and (capped at 300) its TTL.
    pub ttl: u32,
    pub pod_mode: PodMode,
    /// CoreDNS's `endpoint_pod_names`: an endpoint without `hostname` is named after its pod
    /// (`targetRef.name`, if shorter than 64) instead of its dashed address.
    pub endpoint_pod_names: bool,
    /// Ranges whose reverse zones (`in-addr.arpa`, `ip6.arpa`) are answered authoritatively:
    /// the Service and pod ranges. A PTR for an address the index knows is answered wherever it
    /// lies; other reverse names outside these ranges are forwarded.
    pub reverse_cidrs: Vec<Cidr>,
    /// The addresses of `ns.dns.<zone>`, the zone's name server (the `kube-dns` Service's
    /// ClusterIPs); empty: the apex has no NS records.
    pub ns_addresses: Vec<IpAddr>,
    /// The largest UDP response, whatever a client's EDNS0 buffer says (CoreDNS's `bufsize`
    /// plugin; 1232 is the DNS Flag Day 2020 value). Never below 512.
    pub max_udp_payload: u16,
    /// The SOA serial. CoreDNS uses the Unix time of the last change it saw.
    pub serial: u32,
    /// A namespace's Services are split into parts of at most about this many (a power of two
    /// of parts, by a hash of the Service's name), each built again only when one of its
    /// Services changes: at Kubernetes' limit of 5,000 Services in a namespace, a change
    /// rebuilt the whole namespace in 61 ms.
    pub services_per_part: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            zone: "cluster.local".into(),
            ttl: 30,
            pod_mode: PodMode::Insecure,
            endpoint_pod_names: false,
            reverse_cidrs: Vec::new(),
            ns_addresses: Vec::new(),
            max_udp_payload: 1232,
            serial: 0,
            services_per_part: 256,
        }
    }
}
