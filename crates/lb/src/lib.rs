//! LoadBalancer addresses on bare metal, as MetalLB's controller and k3s's ServiceLB give them:
//! fills `status.loadBalancer.ingress` of `type: LoadBalancer` Services with an address from a
//! configured pool, or the node's own address when no pool is configured.
//!
//! It runs on the shared informers (Services only) and writes through the API only
//! (`services/status`, Events), so it runs the same against frontdoor's embedded API server
//! and against a real cluster. Making an address answer on the LAN is not its job: it calls an
//! [`Announcer`] when an address gains its first holder or loses its last.
//!
//! # Which Services
//!
//! `type: LoadBalancer` Services with no `spec.loadBalancerClass`, or with
//! [`LbConfig::class`] (`frontdoor.dev/lb`). A Service of another class is left alone: its
//! status is never written and its addresses are not counted. When a Service stops being a
//! LoadBalancer its address is released and its `status.loadBalancer` cleared (as MetalLB
//! does); when it is deleted or moves to another class its address is released.
//!
//! # Which address
//!
//! See [`allocator`] for the rules and [`request`] for what a Service can ask for. In short:
//! external Services take from [`LbConfig::pools`], Services annotated
//! `networking.gke.io/load-balancer-type: "Internal"` (or `cloud.google.com/…`) from
//! [`LbConfig::internal_pools`], and a kind with no pool configured gets the node address
//! (shared by every such Service as long as their ports do not collide, as ServiceLB's host
//! ports). A Service may ask for one address (`spec.loadBalancerIP`,
//! `metallb.io/loadBalancerIPs`, `networking.gke.io/load-balancer-ip-addresses`), which must lie
//! in one of its pools; pool addresses are shared only under MetalLB's
//! `metallb.io/allow-shared-ip` rule. A restart keeps every address: the allocator is seeded from
//! the Services' status before any Service is reconciled.
//!
//! # What users see
//!
//! `kubectl get svc` shows the address under EXTERNAL-IP (`<pending>` while there is none);
//! `kubectl describe svc` shows MetalLB's events: `IPAllocated` (Normal, `Assigned IP
//! ["192.168.1.240"]`) and `AllocationFailed` (Warning, `Failed to allocate IP for
//! "default/web": no available IPs in pool 192.168.1.240/30`). A Service left waiting is
//! reconciled again whenever an address or port is freed. Events come from [`COMPONENT`].
//!
//! The status written is `ingress: [{ip}]`, as MetalLB and ServiceLB write it; the API server
//! defaults `ipMode: VIP` (Kubernetes 1.30+), which is what they end up with too.
#![forbid(unsafe_code)]

pub mod allocator;
mod controller;
mod pool;
pub mod request;

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

pub use controller::run;
pub use pool::{Pool, PoolError};
pub use request::PortKey;

/// The `source.component` of this controller's Events: the name Kubernetes gives the controller
/// that provides LoadBalancers (cloud-controller-manager's `service-lb-controller`, under which
/// k3s's ServiceLB also runs). MetalLB's `metallb-controller` would claim a MetalLB install
/// that is not there; its event reasons are used, though.
pub const COMPONENT: &str = "service-lb-controller";

/// The `spec.loadBalancerClass` this controller serves besides Services with none.
pub const DEFAULT_CLASS: &str = "frontdoor.dev/lb";

/// Makes load-balancer addresses answer on the node's LAN (ARP), or stops it. Implemented by
/// the node side; this crate only calls it.
///
/// Calls are made in order while the controller holds its allocation lock, so they must be
/// quick (hand the work to a task and return). The node address is never announced nor
/// withdrawn: it is the node's own. At start-up, once the Services cache has synced, every
/// address already assigned is announced once. The controller withdraws nothing at shutdown:
/// the assignments stay in the Services' status and the next start announces them again (the
/// binary stops answering for them all when the node stops, and sweeps what a crashed run left
/// before the controller starts).
pub trait Announcer: Send + Sync + 'static {
    /// `address` now has a Service: answer for it. `internal` when it comes from an internal
    /// pool (for the implementation to pick the interface of the internal network).
    fn announce(&self, address: Ipv4Addr, internal: bool);
    /// `address` no longer has any Service.
    fn withdraw(&self, address: Ipv4Addr);
}

/// Settings of the LoadBalancer controller (flags of `frontdoor up` / `agent`).
#[derive(Clone)]
pub struct LbConfig {
    /// `--lb-pool` (repeatable): addresses for LoadBalancer Services, each a CIDR
    /// (`192.168.1.240/29`, every address used, network and broadcast included, as MetalLB
    /// does by default) or a range (`192.168.1.240-192.168.1.250`); see [`Pool::parse`]. Used
    /// in the order given, lowest address first.
    pub pools: Vec<Pool>,
    /// `--lb-internal-pool` (repeatable): addresses for Services annotated
    /// `networking.gke.io/load-balancer-type: "Internal"`. Without any, internal Services get
    /// the node address (never an address of `pools`, which may be public). Must not overlap
    /// `pools`.
    pub internal_pools: Vec<Pool>,
    /// The node's address, given to every LoadBalancer Service of a kind (external, internal)
    /// with no pool configured, as k3s's ServiceLB does: Services share it as long as their
    /// ports (number and protocol) do not collide; one whose port is taken waits `<pending>`
    /// with a Warning event naming the Service that holds the port.
    pub node_address: Ipv4Addr,
    /// `spec.loadBalancerClass` served besides none ([`DEFAULT_CLASS`]); Services of any other
    /// class are left alone.
    pub class: String,
    /// Told about every address that gains its first or loses its last Service.
    pub announcer: Option<Arc<dyn Announcer>>,
    /// Ports the node itself serves on `node_address` and what serves them (the Ingress
    /// controller's 80 and 443): a Service asking for one there waits `<pending>`, as on k3s,
    /// where Traefik's LoadBalancer holds them.
    pub reserved_ports: Vec<(PortKey, String)>,
}

impl LbConfig {
    /// No pools (every LoadBalancer Service gets `node_address`), the default class, no
    /// announcer.
    pub fn new(node_address: Ipv4Addr) -> LbConfig {
        LbConfig {
            pools: Vec::new(),
            internal_pools: Vec::new(),
            node_address,
            class: DEFAULT_CLASS.to_string(),
            announcer: None,
            reserved_ports: Vec::new(),
        }
    }

    /// Refuses overlapping pools (an address would belong to two kinds, or be counted twice)
    /// and an empty class.
    pub fn validate(&self) -> Result<(), Error> {
        if self.class.trim().is_empty() {
            return Err(Error::Config("the load-balancer class is empty".into()));
        }
        let all: Vec<(&str, &Pool)> = self
            .pools
            .iter()
            .map(|p| ("--lb-pool", p))
            .chain(self.internal_pools.iter().map(|p| ("--lb-internal-pool", p)))
            .collect();
        for (i, (flag_a, a)) in all.iter().enumerate() {
            for (flag_b, b) in &all[i + 1..] {
                if a.overlaps(b) {
                    return Err(Error::Config(format!("{flag_a} {a} overlaps {flag_b} {b}")));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for LbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |pools: &[Pool]| pools.iter().map(Pool::to_string).collect::<Vec<_>>();
        f.debug_struct("LbConfig")
            .field("pools", &show(&self.pools))
            .field("internal_pools", &show(&self.internal_pools))
            .field("node_address", &self.node_address)
            .field("class", &self.class)
            .field("announcer", &self.announcer.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Why [`run`] stopped before its shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid load-balancer configuration: {0}")]
    Config(String),
    /// The API refused to list Services: nothing would ever be assigned.
    #[error("cannot list services: {0}")]
    Access(#[source] kube::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_pools_and_an_empty_class_are_refused() {
        let pool = |t: &str| Pool::parse(t).unwrap();
        let mut config = LbConfig::new(Ipv4Addr::new(10, 0, 0, 5));
        config.pools = vec![pool("192.168.1.240/29"), pool("192.168.2.0/30")];
        config.internal_pools = vec![pool("10.10.0.0/30")];
        assert!(config.validate().is_ok());
        config.internal_pools.push(pool("192.168.1.247-192.168.1.250"));
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "invalid load-balancer configuration: --lb-pool 192.168.1.240/29 overlaps --lb-internal-pool \
             192.168.1.247-192.168.1.250"
        );
        config.internal_pools.pop();
        config.class = " ".into();
        assert!(config.validate().is_err());
        assert!(format!("{config:?}").contains("192.168.2.0/30"));
    }
}
