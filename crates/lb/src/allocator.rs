//! Which address each LoadBalancer Service holds: the pure core of the controller (no I/O,
//! no clock). The controller feeds it every Service's [`Request`] and writes what it decides.
//!
//! # Rules
//!
//! - **Pools by kind.** An external Service takes from the external pools (`--lb-pool`), an
//!   internal one from the internal pools (`--lb-internal-pool`). A kind with no pool
//!   configured uses the node address, as k3s's ServiceLB gives every LoadBalancer Service
//!   the node's address; an internal Service never gets an external-pool address (those may
//!   be public), and with no internal pool the node address is the closest thing to "only
//!   reachable from the LAN".
//! - **Requested addresses** (`spec.loadBalancerIP`, `metallb.io/loadBalancerIPs`, GKE's
//!   `networking.gke.io/load-balancer-ip-addresses`) must lie in a pool of the Service's kind,
//!   as MetalLB requires; with no pool of that kind only the node address may be requested.
//! - **The current address is kept** while it is still allowed: the address the allocator
//!   already gave the Service, else the one its status shows (after a restart). A Service whose
//!   request no longer fits its address (another address requested, internal flipped, pool
//!   removed, a port now colliding) gives it up and is allocated again.
//! - **No address is held twice**, except as shared:
//!   - a pool address by Services that all carry the same `metallb.io/allow-shared-ip` key, the
//!     same backend (selector, when `externalTrafficPolicy: Local`) and no common port
//!     (port number and protocol), MetalLB's sharing rule;
//!   - the node address by any Services with no common port, as ServiceLB's host ports.
//! - **Fresh addresses** come in pool order, lowest first; MetalLB's rule of taking the first
//!   address the Service may use, shared or not.
//!
//! Address-level effects (an address gaining its first holder, losing its last, or anything
//! freed that a waiting Service could use) are collected as [`Effect`]s for the controller,
//! which announces and withdraws addresses and retries the Services left waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use frontdoor_informers::ObjectKey;

use crate::pool::Pool;
use crate::request::{PortKey, Request, Sharing, METALLB_ALLOW_SHARED_IP};

/// What one Service holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    pub address: Ipv4Addr,
    pub internal: bool,
    pub ports: Vec<PortKey>,
    pub sharing: Option<Sharing>,
}

/// A change the outside world must follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The address has its first holder: make it answer on the LAN. (Never the node address.)
    Announce { address: Ipv4Addr, internal: bool },
    /// The address lost its last holder. (Never the node address.)
    Withdraw(Ipv4Addr),
    /// An address or a port became free: Services waiting for one may now fit.
    Freed,
}

/// The outcome of [`Allocator::assign`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub address: Ipv4Addr,
    /// The Service already held this address.
    pub kept: bool,
}

/// Why a Service gets no address (the message of its `AllocationFailed` event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every address of the Service's pools is taken.
    Exhausted { internal: bool, pools: Vec<Pool> },
    /// The requested address is in no pool of the Service's kind.
    NotInPool { address: Ipv4Addr, internal: bool, pools: Vec<Pool> },
    /// No pool of the Service's kind is configured, and the requested address is not the node's.
    NotNodeAddress { address: Ipv4Addr, internal: bool, node: Ipv4Addr },
    /// The address is held by a Service it cannot be shared with.
    Taken { address: Ipv4Addr, by: ObjectKey, why: String },
    /// A port of the Service is already served on the address by another Service.
    PortTaken { address: Ipv4Addr, port: PortKey, by: ObjectKey },
    /// A port of the Service is served on the node address by the node itself (the Ingress
    /// controller's 80 and 443, as Traefik's on k3s).
    PortReserved { address: Ipv4Addr, port: PortKey, by: String },
}

fn kind(internal: bool) -> &'static str {
    if internal {
        "internal "
    } else {
        ""
    }
}

fn list(pools: &[Pool]) -> String {
    pools.iter().map(Pool::to_string).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Exhausted { internal, pools } => {
                let s = if pools.len() == 1 { "" } else { "s" };
                write!(f, "no available IPs in {}pool{s} {}", kind(*internal), list(pools))
            }
            Refusal::NotInPool { address, internal, pools } => {
                write!(f, "{address} is not allowed: it is in no {}pool ({})", kind(*internal), list(pools))
            }
            Refusal::NotNodeAddress { address, internal, node } => write!(
                f,
                "{address} is not allowed: no {}pool is configured, so only the node address {node} can be requested",
                kind(*internal)
            ),
            Refusal::Taken { address, by, why } => write!(f, "{address} is already in use by Service {by}: {why}"),
            Refusal::PortTaken { address, port, by } => {
                write!(f, "port {port} of {address} is already used by Service {by}")
            }
            Refusal::PortReserved { address, port, by } => {
                write!(f, "port {port} of the node address {address} is used by the node's {by}")
            }
        }
    }
}

/// The assignments of every LoadBalancer Service, and the pools they come from.
#[derive(Debug)]
pub struct Allocator {
    external: Vec<Pool>,
    internal: Vec<Pool>,
    node: Ipv4Addr,
    /// Ports the node itself serves on its address, and what serves them.
    reserved: Vec<(PortKey, String)>,
    held: BTreeMap<ObjectKey, Holding>,
    users: BTreeMap<Ipv4Addr, BTreeSet<ObjectKey>>,
    effects: Vec<Effect>,
}

impl Allocator {
    pub fn new(external: Vec<Pool>, internal: Vec<Pool>, node: Ipv4Addr) -> Allocator {
        Allocator {
            external,
            internal,
            node,
            reserved: Vec::new(),
            held: BTreeMap::new(),
            users: BTreeMap::new(),
            effects: Vec::new(),
        }
    }

    /// Ports the node itself serves on its address (`by` names the server, for the refusal).
    pub fn reserve(mut self, reserved: Vec<(PortKey, String)>) -> Allocator {
        self.reserved = reserved;
        self
    }

    pub fn holding(&self, key: &ObjectKey) -> Option<&Holding> {
        self.held.get(key)
    }

    /// Every Service holding `address`.
    pub fn users(&self, address: Ipv4Addr) -> impl Iterator<Item = &ObjectKey> {
        self.users.get(&address).into_iter().flatten()
    }

    /// The effects collected since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Records, at start-up, the address a Service's status shows (`request.current`), if it
    /// is still allowed and free for it. Services are seeded oldest first, so when two show the
    /// same address the older keeps it; the other is allocated again when reconciled.
    pub fn seed(&mut self, key: &ObjectKey, request: &Request) -> Option<Ipv4Addr> {
        let address = request.current?;
        self.admissible(address, key, request).ok()?;
        self.hold(key, address, request);
        Some(address)
    }

    /// Gives `key` an address for `request`: the one it holds or shows if still allowed, the
    /// requested one, or the first free one of its pools (the node address without pools).
    pub fn assign(&mut self, key: &ObjectKey, request: &Request) -> Result<Assignment, Refusal> {
        if let Some(holding) = self.held.get(key) {
            let address = holding.address;
            let still = request.wanted.is_none_or(|w| w == address) && self.admissible(address, key, request).is_ok();
            if still {
                self.hold(key, address, request);
                return Ok(Assignment { address, kept: true });
            }
            self.release(key);
        }
        if let Some(wanted) = request.wanted {
            self.admissible(wanted, key, request)?;
            self.hold(key, wanted, request);
            return Ok(Assignment { address: wanted, kept: false });
        }
        if let Some(current) = request.current.filter(|c| self.admissible(*c, key, request).is_ok()) {
            self.hold(key, current, request);
            return Ok(Assignment { address: current, kept: false });
        }
        let pools = self.pools(request.internal);
        if pools.is_empty() {
            let node = self.node;
            self.admissible(node, key, request)?;
            self.hold(key, node, request);
            return Ok(Assignment { address: node, kept: false });
        }
        let free = pools.iter().flat_map(Pool::addresses).find(|a| self.admissible(*a, key, request).is_ok());
        match free {
            Some(address) => {
                self.hold(key, address, request);
                Ok(Assignment { address, kept: false })
            }
            None => Err(Refusal::Exhausted { internal: request.internal, pools: pools.to_vec() }),
        }
    }

    /// Gives up `key`'s address, if it holds one.
    pub fn release(&mut self, key: &ObjectKey) -> Option<Ipv4Addr> {
        let holding = self.held.remove(key)?;
        let address = holding.address;
        if let Some(users) = self.users.get_mut(&address) {
            users.remove(key);
            if users.is_empty() {
                self.users.remove(&address);
                if address != self.node {
                    self.effects.push(Effect::Withdraw(address));
                }
            }
        }
        self.effects.push(Effect::Freed);
        Some(address)
    }

    fn pools(&self, internal: bool) -> &[Pool] {
        if internal {
            &self.internal
        } else {
            &self.external
        }
    }

    /// Records `key` on `address` (replacing what it held there).
    fn hold(&mut self, key: &ObjectKey, address: Ipv4Addr, request: &Request) {
        let holding = Holding {
            address,
            internal: request.internal,
            ports: request.ports.clone(),
            sharing: request.sharing.clone(),
        };
        match self.held.insert(key.clone(), holding.clone()) {
            Some(before) if before == holding => return,
            // Ports or sharing changed in place: something may have become free.
            Some(_) => self.effects.push(Effect::Freed),
            None => {}
        }
        let users = self.users.entry(address).or_default();
        if users.is_empty() && address != self.node {
            self.effects.push(Effect::Announce { address, internal: request.internal });
        }
        users.insert(key.clone());
    }

    /// Whether `key` may hold `address` for `request`, next to the address's other holders.
    fn admissible(&self, address: Ipv4Addr, key: &ObjectKey, request: &Request) -> Result<(), Refusal> {
        let pools = self.pools(request.internal);
        let node_mode = pools.is_empty();
        if node_mode && address != self.node {
            return Err(Refusal::NotNodeAddress { address, internal: request.internal, node: self.node });
        }
        if !node_mode && !pools.iter().any(|p| p.contains(address)) {
            return Err(Refusal::NotInPool { address, internal: request.internal, pools: pools.to_vec() });
        }
        if address == self.node {
            if let Some((port, by)) = self.reserved.iter().find(|(port, _)| request.ports.contains(port)) {
                return Err(Refusal::PortReserved { address, port: port.clone(), by: by.clone() });
            }
        }
        for other in self.users(address).filter(|other| *other != key) {
            let Some(theirs) = self.held.get(other) else { continue };
            if !node_mode {
                if let Some(why) = unshareable(theirs.sharing.as_ref(), request.sharing.as_ref()) {
                    return Err(Refusal::Taken { address, by: other.clone(), why });
                }
            }
            if let Some(port) = request.ports.iter().find(|p| theirs.ports.contains(p)) {
                return Err(Refusal::PortTaken { address, port: port.clone(), by: other.clone() });
            }
        }
        Ok(())
    }
}

/// Why a pool address held with `theirs` cannot be shared with `ours` (MetalLB's rule).
fn unshareable(theirs: Option<&Sharing>, ours: Option<&Sharing>) -> Option<String> {
    match (theirs, ours) {
        (None, _) => Some(format!("it does not allow sharing (no {METALLB_ALLOW_SHARED_IP} annotation)")),
        (Some(theirs), None) => Some(format!(
            "to share it, give both Services the {METALLB_ALLOW_SHARED_IP} annotation (it has {:?})",
            theirs.key
        )),
        (Some(theirs), Some(ours)) if theirs.key != ours.key => {
            Some(format!("{METALLB_ALLOW_SHARED_IP} keys differ ({:?}, this Service {:?})", theirs.key, ours.key))
        }
        (Some(theirs), Some(ours)) if theirs.backend != ours.backend => Some(format!(
            "their externalTrafficPolicy: Local selectors differ ({:?}, this Service {:?})",
            theirs.backend, ours.backend
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("default", name)
    }

    fn pools(list: &[&str]) -> Vec<Pool> {
        list.iter().map(|p| Pool::parse(p).unwrap()).collect()
    }

    const NODE: &str = "10.0.0.5";

    /// A request: ports as "80/TCP", optional flags as words: `internal`, `want=<ip>`,
    /// `current=<ip>`, `share=<key>`, `backend=<selector>`.
    fn req(spec: &str) -> Request {
        let mut request = Request::default();
        for word in spec.split_whitespace() {
            if let Some((port, protocol)) = word.split_once('/') {
                request.ports.push(PortKey::new(protocol, port.parse().unwrap()));
            } else if word == "internal" {
                request.internal = true;
            } else if let Some(addr) = word.strip_prefix("want=") {
                request.wanted = Some(ip(addr));
            } else if let Some(addr) = word.strip_prefix("current=") {
                request.current = Some(ip(addr));
            } else if let Some(k) = word.strip_prefix("share=") {
                request.sharing = Some(Sharing { key: k.into(), backend: String::new() });
            } else if let Some(b) = word.strip_prefix("backend=") {
                request.sharing.as_mut().unwrap().backend = b.into();
            } else {
                panic!("unknown request word {word}");
            }
        }
        request
    }

    enum Op {
        /// Assign `name` with the request; expect an address (`kept` suffix when kept) or the
        /// refusal's message.
        Assign(&'static str, &'static str, &'static str),
        /// Release `name`; expect the address it held or "-".
        Release(&'static str, &'static str),
        /// Seed `name` from its status; expect the address or "-".
        Seed(&'static str, &'static str, &'static str),
    }
    use Op::*;

    struct Case {
        name: &'static str,
        external: &'static [&'static str],
        internal: &'static [&'static str],
        ops: Vec<Op>,
    }

    fn run(case: &Case) -> Allocator {
        let mut allocator = Allocator::new(pools(case.external), pools(case.internal), ip(NODE));
        for (step, op) in case.ops.iter().enumerate() {
            let (got, want) = match op {
                Assign(name, spec, want) => {
                    let got = match allocator.assign(&key(name), &req(spec)) {
                        Ok(Assignment { address, kept: true }) => format!("{address} kept"),
                        Ok(Assignment { address, kept: false }) => address.to_string(),
                        Err(refusal) => refusal.to_string(),
                    };
                    (got, *want)
                }
                Release(name, want) => {
                    (allocator.release(&key(name)).map_or("-".to_string(), |a| a.to_string()), *want)
                }
                Seed(name, spec, want) => {
                    (allocator.seed(&key(name), &req(spec)).map_or("-".to_string(), |a| a.to_string()), *want)
                }
            };
            assert_eq!(got, want, "case {:?}, step {step}", case.name);
        }
        allocator
    }

    #[test]
    fn allocation_table() {
        let cases = [
            Case {
                name: "pool addresses in order, exhaustion, a released address is reused",
                external: &["192.168.1.240/31", "192.168.1.250-192.168.1.250"],
                internal: &[],
                ops: vec![
                    Assign("a", "80/TCP", "192.168.1.240"),
                    Assign("b", "80/TCP", "192.168.1.241"),
                    Assign("c", "80/TCP", "192.168.1.250"),
                    Assign("d", "80/TCP", "no available IPs in pools 192.168.1.240/31, 192.168.1.250-192.168.1.250"),
                    Assign("a", "80/TCP", "192.168.1.240 kept"),
                    Release("b", "192.168.1.241"),
                    Release("b", "-"),
                    Assign("d", "80/TCP", "192.168.1.241"),
                ],
            },
            Case {
                name: "a different port does not make a pool address shareable",
                external: &["192.168.1.240/32"],
                internal: &[],
                ops: vec![
                    Assign("a", "80/TCP", "192.168.1.240"),
                    Assign("b", "443/TCP", "no available IPs in pool 192.168.1.240/32"),
                    Assign("b", "443/TCP want=192.168.1.240", "192.168.1.240 is already in use by Service default/a: it does not allow sharing (no metallb.io/allow-shared-ip annotation)"),
                ],
            },
            Case {
                name: "requested addresses: in the pool, outside it, taken, moved",
                external: &["192.168.1.240/29"],
                internal: &[],
                ops: vec![
                    Assign("a", "80/TCP want=192.168.1.245", "192.168.1.245"),
                    Assign("b", "80/TCP want=192.168.2.1", "192.168.2.1 is not allowed: it is in no pool (192.168.1.240/29)"),
                    Assign("c", "80/TCP want=192.168.1.245", "192.168.1.245 is already in use by Service default/a: it does not allow sharing (no metallb.io/allow-shared-ip annotation)"),
                    // The node address is not special when pools are configured.
                    Assign("d", "80/TCP want=10.0.0.5", "10.0.0.5 is not allowed: it is in no pool (192.168.1.240/29)"),
                    // A moves: its old address is free again.
                    Assign("a", "80/TCP want=192.168.1.246", "192.168.1.246"),
                    Assign("c", "80/TCP want=192.168.1.245", "192.168.1.245"),
                    // Asking for what one holds keeps it.
                    Assign("c", "80/TCP want=192.168.1.245", "192.168.1.245 kept"),
                    // Fresh allocations skip what is held.
                    Assign("e", "80/TCP", "192.168.1.240"),
                ],
            },
            Case {
                name: "MetalLB sharing: same key, same backend, no common port",
                external: &["192.168.1.240/31"],
                internal: &[],
                ops: vec![
                    Assign("dns-tcp", "53/TCP share=dns", "192.168.1.240"),
                    Assign("dns-udp", "53/UDP share=dns", "192.168.1.240"),
                    // A common port: the next address.
                    Assign("dns-tcp-2", "53/TCP share=dns", "192.168.1.241"),
                    Assign("x", "80/TCP share=dns want=192.168.1.240", "192.168.1.240"),
                    Assign("y", "53/UDP share=dns want=192.168.1.240", "port 53/UDP of 192.168.1.240 is already used by Service default/dns-udp"),
                    Assign("z", "81/TCP share=web want=192.168.1.240", "192.168.1.240 is already in use by Service default/dns-tcp: metallb.io/allow-shared-ip keys differ (\"dns\", this Service \"web\")"),
                    Assign("w", "81/TCP want=192.168.1.240", "192.168.1.240 is already in use by Service default/dns-tcp: to share it, give both Services the metallb.io/allow-shared-ip annotation (it has \"dns\")"),
                    Assign("v", "82/TCP share=dns backend=app=v want=192.168.1.240", "192.168.1.240 is already in use by Service default/dns-tcp: their externalTrafficPolicy: Local selectors differ (\"\", this Service \"app=v\")"),
                    // The address stays held until its last user goes.
                    Release("dns-tcp", "192.168.1.240"),
                    Release("dns-udp", "192.168.1.240"),
                    Release("x", "192.168.1.240"),
                    Assign("w", "81/TCP want=192.168.1.240", "192.168.1.240"),
                ],
            },
            Case {
                name: "no pool: the node address, shared by port (k3s ServiceLB)",
                external: &[],
                internal: &[],
                ops: vec![
                    Assign("web", "80/TCP", "10.0.0.5"),
                    Assign("api", "443/TCP", "10.0.0.5"),
                    Assign("web-2", "80/TCP 8080/TCP", "port 80/TCP of 10.0.0.5 is already used by Service default/web"),
                    Assign("dns", "80/UDP 53/UDP", "10.0.0.5"),
                    Assign("want-node", "81/TCP want=10.0.0.5", "10.0.0.5"),
                    Assign("want-other", "82/TCP want=192.168.1.240", "192.168.1.240 is not allowed: no pool is configured, so only the node address 10.0.0.5 can be requested"),
                    // A Service changing its ports to collide gives up the address.
                    Assign("api", "80/TCP", "port 80/TCP of 10.0.0.5 is already used by Service default/web"),
                    Release("web", "10.0.0.5"),
                    Assign("web-2", "80/TCP 8080/TCP", "10.0.0.5"),
                    Assign("web-2", "80/TCP 8080/TCP", "10.0.0.5 kept"),
                ],
            },
            Case {
                name: "internal Services take internal pools; a kind without pools takes the node address",
                external: &["203.0.113.10/31"],
                internal: &["192.168.1.240/32"],
                ops: vec![
                    Assign("pub", "80/TCP", "203.0.113.10"),
                    Assign("lan", "80/TCP internal", "192.168.1.240"),
                    Assign("lan-2", "80/TCP internal", "no available IPs in internal pool 192.168.1.240/32"),
                    Assign("lan-3", "80/TCP internal want=203.0.113.11", "203.0.113.11 is not allowed: it is in no internal pool (192.168.1.240/32)"),
                    Assign("pub-2", "80/TCP want=192.168.1.240", "192.168.1.240 is not allowed: it is in no pool (203.0.113.10/31)"),
                    // Turning internal moves the Service to the internal pool (here: full).
                    Assign("pub", "80/TCP internal", "no available IPs in internal pool 192.168.1.240/32"),
                    Assign("pub-2", "80/TCP", "203.0.113.10"),
                ],
            },
            Case {
                name: "internal without internal pools: the node address, never an external one",
                external: &["203.0.113.10/31"],
                internal: &[],
                ops: vec![
                    Assign("lan", "80/TCP internal", "10.0.0.5"),
                    Assign("lan-2", "80/TCP internal", "port 80/TCP of 10.0.0.5 is already used by Service default/lan"),
                    Assign("pub", "80/TCP", "203.0.113.10"),
                ],
            },
            Case {
                name: "restart: seeded from the status, oldest first; current addresses are kept",
                external: &["192.168.1.240/30"],
                internal: &[],
                ops: vec![
                    Seed("a", "80/TCP current=192.168.1.242", "192.168.1.242"),
                    Seed("b", "80/TCP current=192.168.1.242", "-"),
                    Seed("c", "80/TCP current=192.168.9.9", "-"),
                    Seed("d", "80/TCP", "-"),
                    // New Services do not take seeded addresses.
                    Assign("new", "80/TCP", "192.168.1.240"),
                    Assign("a", "80/TCP current=192.168.1.242", "192.168.1.242 kept"),
                    // B lost the tie and C's address left the pools: both get fresh ones.
                    Assign("b", "80/TCP current=192.168.1.242", "192.168.1.241"),
                    Assign("c", "80/TCP current=192.168.9.9", "192.168.1.243"),
                    // Not seeded but showing a free address: it is kept.
                    Release("new", "192.168.1.240"),
                    Assign("e", "80/TCP current=192.168.1.240", "192.168.1.240"),
                ],
            },
        ];
        for case in &cases {
            run(case);
        }
    }

    #[test]
    fn the_nodes_own_ports_are_not_given_out_on_the_node_address() {
        let reserved = vec![(PortKey::new("TCP", 443), "Ingress controller".to_string())];
        let mut node_only = Allocator::new(vec![], vec![], ip(NODE)).reserve(reserved.clone());
        let https = Request { ports: vec![PortKey::new("TCP", 443)], ..Request::default() };
        let refused = node_only.assign(&key("api-public"), &https);
        assert_eq!(
            refused,
            Err(Refusal::PortReserved {
                address: ip(NODE),
                port: PortKey::new("TCP", 443),
                by: "Ingress controller".into()
            })
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            format!("port 443/TCP of the node address {NODE} is used by the node's Ingress controller")
        );
        let udp = Request { ports: vec![PortKey::new("UDP", 443)], ..Request::default() };
        assert_eq!(node_only.assign(&key("quic"), &udp).map(|a| a.address), Ok(ip(NODE)));
        // A pool address is not the node's: its ports are free.
        let mut pooled = Allocator::new(pools(&["192.168.1.240/32"]), vec![], ip(NODE)).reserve(reserved);
        assert_eq!(pooled.assign(&key("api-public"), &https).map(|a| a.address), Ok(ip("192.168.1.240")));
    }

    #[test]
    fn addresses_are_announced_on_first_use_and_withdrawn_on_last_never_the_node_address() {
        let mut allocator = Allocator::new(pools(&["192.168.1.240/31"]), pools(&["10.1.0.0/32"]), ip(NODE));
        allocator.assign(&key("a"), &req("53/TCP share=dns")).unwrap();
        allocator.assign(&key("b"), &req("53/UDP share=dns")).unwrap();
        allocator.assign(&key("i"), &req("80/TCP internal")).unwrap();
        assert_eq!(
            allocator.take_effects(),
            [
                Effect::Announce { address: ip("192.168.1.240"), internal: false },
                Effect::Announce { address: ip("10.1.0.0"), internal: true },
            ]
        );
        // Keeping changes nothing; a port change frees something.
        allocator.assign(&key("a"), &req("53/TCP share=dns")).unwrap();
        assert_eq!(allocator.take_effects(), []);
        allocator.assign(&key("a"), &req("54/TCP share=dns")).unwrap();
        assert_eq!(allocator.take_effects(), [Effect::Freed]);
        allocator.release(&key("a"));
        assert_eq!(allocator.take_effects(), [Effect::Freed]);
        allocator.release(&key("b"));
        assert_eq!(allocator.take_effects(), [Effect::Withdraw(ip("192.168.1.240")), Effect::Freed]);

        let mut node_only = Allocator::new(vec![], vec![], ip(NODE));
        node_only.assign(&key("a"), &req("80/TCP")).unwrap();
        node_only.release(&key("a"));
        assert_eq!(node_only.take_effects(), [Effect::Freed], "the node address is the node's own");
        assert_eq!(node_only.users(ip(NODE)).count(), 0);
    }

    #[test]
    fn a_moved_service_withdraws_its_old_address_and_announces_the_new_one() {
        let mut allocator = Allocator::new(pools(&["192.168.1.240/30"]), vec![], ip(NODE));
        allocator.assign(&key("a"), &req("80/TCP")).unwrap();
        allocator.take_effects();
        let moved = allocator.assign(&key("a"), &req("80/TCP want=192.168.1.243")).unwrap();
        assert_eq!(moved, Assignment { address: ip("192.168.1.243"), kept: false });
        assert_eq!(
            allocator.take_effects(),
            [
                Effect::Withdraw(ip("192.168.1.240")),
                Effect::Freed,
                Effect::Announce { address: ip("192.168.1.243"), internal: false },
            ]
        );
        assert_eq!(allocator.holding(&key("a")).map(|h| h.address), Some(ip("192.168.1.243")));
    }
}
