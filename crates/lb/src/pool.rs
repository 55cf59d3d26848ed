//! Address pools (`--lb-pool`, `--lb-internal-pool`): a CIDR (`192.168.1.240/29`) or an
//! inclusive range (`192.168.1.240-192.168.1.250`) of IPv4 addresses. Pure: no I/O.
//!
//! Every address of a CIDR is handed out, its network and broadcast addresses included, as
//! MetalLB does by default (`avoidBuggyIPs: false`): a load-balancer address is answered by
//! the node itself, not by a LAN segment the pool describes, so `.0` and `.255` are ordinary
//! addresses. A pool that must avoid them is written as a range.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// An inclusive range of IPv4 addresses, from a CIDR or a `first-last` range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pool {
    first: Ipv4Addr,
    last: Ipv4Addr,
    /// The prefix length when the pool was written as a CIDR (for display).
    prefix: Option<u8>,
}

/// Why a pool's text is not a pool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("empty address pool: give a CIDR (192.168.1.240/29) or a range (192.168.1.240-192.168.1.250)")]
    Empty,
    #[error(
        "{input:?}: IPv6 pools are not supported (load-balancer addresses are IPv4 only); \
         give a CIDR (192.168.1.240/29) or a range (192.168.1.240-192.168.1.250)"
    )]
    Ipv6 { input: String },
    #[error(
        "{input:?}: {part:?} is not an IPv4 address; give a CIDR (192.168.1.240/29) or a range \
         (192.168.1.240-192.168.1.250)"
    )]
    BadAddress { input: String, part: String },
    #[error("{input:?}: the prefix length {prefix:?} is not a number from 0 to 32")]
    BadPrefix { input: String, prefix: String },
    #[error("{input:?}: the address has bits set past the /{prefix} prefix; the network is {network}/{prefix}")]
    HostBits { input: String, network: Ipv4Addr, prefix: u8 },
    #[error("{input:?}: the range ends before it starts ({last} is before {first})")]
    Reversed { input: String, first: Ipv4Addr, last: Ipv4Addr },
}

impl Pool {
    /// Parses `192.168.1.240/29` or `192.168.1.240-192.168.1.250` (spaces around the parts
    /// are ignored). A single address is `192.168.1.240/32`.
    pub fn parse(text: &str) -> Result<Pool, PoolError> {
        let input = text.trim();
        if input.is_empty() {
            return Err(PoolError::Empty);
        }
        let address = |part: &str| -> Result<Ipv4Addr, PoolError> {
            let part = part.trim();
            match part.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => Ok(ip),
                Ok(IpAddr::V6(_)) => Err(PoolError::Ipv6 { input: input.to_string() }),
                Err(_) => Err(PoolError::BadAddress { input: input.to_string(), part: part.to_string() }),
            }
        };
        if let Some((network, prefix_text)) = input.split_once('/') {
            let network = address(network)?;
            let prefix =
                prefix_text.trim().parse::<u8>().ok().filter(|p| *p <= 32).ok_or_else(|| PoolError::BadPrefix {
                    input: input.to_string(),
                    prefix: prefix_text.to_string(),
                })?;
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            let first = u32::from(network) & mask;
            if first != u32::from(network) {
                return Err(PoolError::HostBits { input: input.to_string(), network: Ipv4Addr::from(first), prefix });
            }
            return Ok(Pool {
                first: Ipv4Addr::from(first),
                last: Ipv4Addr::from(first | !mask),
                prefix: Some(prefix),
            });
        }
        if let Some((first, last)) = input.split_once('-') {
            let (first, last) = (address(first)?, address(last)?);
            if first > last {
                return Err(PoolError::Reversed { input: input.to_string(), first, last });
            }
            return Ok(Pool { first, last, prefix: None });
        }
        let single = address(input)?;
        Ok(Pool { first: single, last: single, prefix: Some(32) })
    }

    pub fn first(&self) -> Ipv4Addr {
        self.first
    }

    pub fn last(&self) -> Ipv4Addr {
        self.last
    }

    /// How many addresses the pool holds (at least one).
    pub fn size(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&address)
    }

    pub fn overlaps(&self, other: &Pool) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// Every address of the pool, in order.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }
}

impl FromStr for Pool {
    type Err = PoolError;

    fn from_str(text: &str) -> Result<Pool, PoolError> {
        Pool::parse(text)
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(prefix) => write!(f, "{}/{prefix}", self.first),
            None => write!(f, "{}-{}", self.first, self.last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_ranges_and_single_addresses() {
        // (text, first, last, size, shown as)
        let cases = [
            ("192.168.1.240/29", "192.168.1.240", "192.168.1.247", 8, "192.168.1.240/29"),
            (" 192.168.1.240 / 30 ", "192.168.1.240", "192.168.1.243", 4, "192.168.1.240/30"),
            ("10.0.0.0/24", "10.0.0.0", "10.0.0.255", 256, "10.0.0.0/24"),
            ("10.0.0.4/31", "10.0.0.4", "10.0.0.5", 2, "10.0.0.4/31"),
            ("10.0.0.4/32", "10.0.0.4", "10.0.0.4", 1, "10.0.0.4/32"),
            ("0.0.0.0/0", "0.0.0.0", "255.255.255.255", 1 << 32, "0.0.0.0/0"),
            ("192.168.1.240-192.168.1.250", "192.168.1.240", "192.168.1.250", 11, "192.168.1.240-192.168.1.250"),
            ("192.168.1.240 - 192.168.1.240", "192.168.1.240", "192.168.1.240", 1, "192.168.1.240-192.168.1.240"),
            ("10.0.0.250-10.0.1.3", "10.0.0.250", "10.0.1.3", 10, "10.0.0.250-10.0.1.3"),
            ("192.168.1.7", "192.168.1.7", "192.168.1.7", 1, "192.168.1.7/32"),
        ];
        for (text, first, last, size, shown) in cases {
            let pool = Pool::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((pool.first(), pool.last(), pool.size()), (ip(first), ip(last), size), "{text}");
            assert_eq!(pool.to_string(), shown, "{text}");
            assert_eq!(text.parse::<Pool>().as_ref(), Ok(&pool), "FromStr is parse");
        }
    }

    #[test]
    fn a_cidr_hands_out_its_network_and_broadcast_addresses_as_metallb_does() {
        let pool = Pool::parse("192.168.1.0/30").unwrap();
        let all: Vec<String> = pool.addresses().map(|a| a.to_string()).collect();
        assert_eq!(all, ["192.168.1.0", "192.168.1.1", "192.168.1.2", "192.168.1.3"]);
        assert!(pool.contains(ip("192.168.1.0")) && pool.contains(ip("192.168.1.3")));
        assert!(!pool.contains(ip("192.168.1.4")) && !pool.contains(ip("192.168.0.255")));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("", PoolError::Empty),
            ("  ", PoolError::Empty),
            ("fd00::/64", PoolError::Ipv6 { input: "fd00::/64".into() }),
            ("192.168.1.1-fd00::1", PoolError::Ipv6 { input: "192.168.1.1-fd00::1".into() }),
            ("192.168.1/24", PoolError::BadAddress { input: "192.168.1/24".into(), part: "192.168.1".into() }),
            ("lan", PoolError::BadAddress { input: "lan".into(), part: "lan".into() }),
            ("10.0.0.1-", PoolError::BadAddress { input: "10.0.0.1-".into(), part: "".into() }),
            ("10.0.0.0/33", PoolError::BadPrefix { input: "10.0.0.0/33".into(), prefix: "33".into() }),
            ("10.0.0.0/x", PoolError::BadPrefix { input: "10.0.0.0/x".into(), prefix: "x".into() }),
            (
                "192.168.1.241/29",
                PoolError::HostBits { input: "192.168.1.241/29".into(), network: ip("192.168.1.240"), prefix: 29 },
            ),
            (
                "10.0.0.9-10.0.0.1",
                PoolError::Reversed { input: "10.0.0.9-10.0.0.1".into(), first: ip("10.0.0.9"), last: ip("10.0.0.1") },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Pool::parse(text), Err(want), "{text:?}");
        }
        assert_eq!(
            Pool::parse("192.168.1.241/29").unwrap_err().to_string(),
            "\"192.168.1.241/29\": the address has bits set past the /29 prefix; the network is 192.168.1.240/29"
        );
    }

    #[test]
    fn overlaps() {
        let pool = |t: &str| Pool::parse(t).unwrap();
        let cases = [
            ("10.0.0.0/30", "10.0.0.3-10.0.0.9", true),
            ("10.0.0.0/30", "10.0.0.4/30", false),
            ("10.0.0.5", "10.0.0.0/29", true),
            ("10.0.0.8-10.0.0.9", "10.0.0.0/29", false),
        ];
        for (a, b, want) in cases {
            assert_eq!((pool(a).overlaps(&pool(b)), pool(b).overlaps(&pool(a))), (want, want), "{a} {b}");
        }
    }
}
