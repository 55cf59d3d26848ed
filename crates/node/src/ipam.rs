//! Pod IP addresses from the node's pod range: the first address is the bridge gateway, the rest
//! go to pods, in turn: the next free one after the last handed out, wrapping around at the end
//! of the range (as the CNI `host-local` plugin allocates). The allocator is rebuilt from the
//! pods' `status.podIP` at start, so a restart never hands out an address a running pod still has.
//!
//! Not the lowest free one: an address freed a moment ago would go straight to the next pod,
//! while the node (and every pod, which reach each other through it) still holds a neighbour
//! entry for it with the old pod's hardware address, and keeps using it as long as traffic
//! "confirms" it: the new pod was then unreachable for most of a minute (its readiness probe
//! failing), which a rolling update of pods without a preStop delay ran into every time.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("invalid pod CIDR {0:?}")]
    Cidr(String),
    #[error("no free pod IP in {0}")]
    Exhausted(String),
}

#[derive(Debug, Clone)]
pub struct PodCidr {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl PodCidr {
    pub fn parse(cidr: &str) -> Result<PodCidr, IpamError> {
        let bad = || IpamError::Cidr(cidr.to_string());
        let (address, prefix) = cidr.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix_len: u8 = prefix.parse().ok().filter(|p| (8..=30).contains(p)).ok_or_else(bad)?;
        let mask = u32::MAX << (32 - prefix_len);
        Ok(PodCidr { network: Ipv4Addr::from(u32::from(address) & mask), prefix_len })
    }

    /// The bridge's address: the first usable one.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix_len)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(u32::from(self.network));
        offset < self.size()
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Hands out and takes back pod addresses.
#[derive(Debug)]
pub struct Ipam {
    cidr: PodCidr,
    used: BTreeSet<u32>,
    /// The address handed out last: the search for the next starts after it.
    last: Option<u32>,
}

impl Ipam {
    pub fn new(cidr: PodCidr) -> Ipam {
        Ipam { cidr, used: BTreeSet::new(), last: None }
    }

    /// Marks an address as in use (a running pod found at start).
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        if self.cidr.contains(ip) {
            self.used.insert(u32::from(ip));
        }
    }

    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        let first = u32::from(self.cidr.network) + 2;
        let last = u32::from(self.cidr.network) + self.cidr.size() - 2;
        let start = self.last.filter(|ip| (first..last).contains(ip)).map_or(first, |ip| ip + 1);
        let free = (start..=last)
            .chain(first..start)
            .find(|ip| !self.used.contains(ip))
            .ok_or_else(|| IpamError::Exhausted(self.cidr.to_string()))?;
        self.used.insert(free);
        self.last = Some(free);
        Ok(Ipv4Addr::from(free))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_in_turn_after_the_gateway_and_reuses_an_address_last() {
        let cidr = PodCidr::parse("10.244.0.0/24").unwrap();
        assert_eq!(cidr.gateway(), Ipv4Addr::new(10, 244, 0, 1));
        let mut ipam = Ipam::new(cidr);
        ipam.reserve(Ipv4Addr::new(10, 244, 0, 3));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 2));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 4));
        // A freed address is not the next one handed out.
        ipam.release(Ipv4Addr::new(10, 244, 0, 2));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 5));
        // At the end of the range the search wraps around to what is free.
        for n in 6..=254 {
            assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, n));
        }
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 2));
        assert!(ipam.allocate().is_err());
        ipam.release(Ipv4Addr::new(10, 244, 0, 100));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 244, 0, 100));
    }

    #[test]
    fn exhausts_without_the_broadcast_address() {
        let mut ipam = Ipam::new(PodCidr::parse("10.1.0.0/30").unwrap());
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 1, 0, 2));
        assert!(ipam.allocate().is_err());
        assert!(PodCidr::parse("10.1.0.0/31").is_err());
    }
}
