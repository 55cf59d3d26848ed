//! The node: what a kubelet (plus a bridge CNI plugin and the scheduler's one decision) does for
//! this machine, talking only through the Kubernetes API.
//!
//! * `registration`: the Node object and its heartbeat Lease.
//! * `scheduler`: binds pending pods to this node (a separate, replaceable step).
//! * `runtime`: runs each bound pod as processes in its own network, UTS and mount namespaces
//!   (`frontdoor-netns`), with probes, restarts, graceful termination and status.
//! * `logs`: container output on disk, read back for `kubectl logs`.
//! * `dedicated`: the threads that make pod sandboxes and start containers, one job at a time,
//!   in order.
//! * `pids`: the node's record of container processes, to stop leftovers after a crash (on the
//!   next start, or by `frontdoor cleanup`; a running node keeps it locked).
//! * `access`: connections into pods and commands in them, for `kubectl port-forward` and `exec`.
//! * `ipam`: pod addresses from the node's pod range.
//! * `hostports`: pods' `hostPort`s, DNATed in table `ip frontdoor-hostports` as the CNI portmap
//!   plugin maps them.
//! * `lifecycle_hooks`: containers' `postStart` and `preStop` hooks (exec, httpGet, sleep).
//! * `pod_dns`: pods' `/etc/resolv.conf` (`dnsPolicy`, `dnsConfig`), `/etc/hosts` and hostname,
//!   as the kubelet derives them.
//!
//! The node decides nothing about routing: Services are the proxy's business.
#![forbid(unsafe_code)]

pub mod access;
pub mod dedicated;
pub mod env;
pub mod hostports;
pub mod ipam;
pub mod lifecycle_hooks;
pub mod logs;
pub mod pids;
pub mod pod_dns;
pub mod probes;
pub mod registration;
pub mod runtime;
pub mod scheduler;
pub mod status;
pub mod volumes;

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use hostports::remove_hostports_table;
pub use ipam::PodCidr;

/// The prefix of the host-side veth names `frontdoor up` gives its pods (and `frontdoor cleanup`
/// looks for).
pub const VETH_PREFIX: &str = "fdv";

/// How this node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_name: String,
    /// The address the Node reports as InternalIP (NodePorts answer there).
    pub node_ip: Ipv4Addr,
    /// This node's pod range; its first address is the bridge's.
    pub pod_cidr: PodCidr,
    /// The bridge pods attach to (`frontdoor0`).
    pub bridge: String,
    /// Cluster DNS address written into pods' resolv.conf (the tenth service address).
    pub cluster_dns: Ipv4Addr,
    /// Whether the node makes the cluster DNS address its own (a local route on the bridge), for
    /// a DNS server on the node to answer there itself (see `frontdoor_dns_server::DnsConfig`).
    pub cluster_dns_local: bool,
    pub cluster_domain: String,
    /// The node's resolver configuration (the kubelet's `--resolv-conf`, `/etc/resolv.conf`),
    /// read once when the runtime starts: what `dnsPolicy: Default` pods get and where the
    /// search domains after the cluster's come from. `None` for none (`--resolv-conf=""`).
    pub resolv_conf: Option<PathBuf>,
    /// Where pod logs and per-pod files live.
    pub data_dir: PathBuf,
    /// Prefix of the host-side veth names (unique per node, so parallel test nodes never clash;
    /// at most 4 characters: see `frontdoor_netns::pod_veth_name`). `frontdoor up` uses
    /// [`VETH_PREFIX`].
    pub veth_prefix: String,
    /// The Service range, routed onto the bridge (see `frontdoor_netns::route_to_bridge`).
    pub service_network: Option<(Ipv4Addr, u8)>,
    /// What pods' `serviceAccountToken` volume sources hold (frontdoor's API token: `up` has
    /// no per-account tokens); such volumes cannot be mounted without one.
    pub service_account_token: Option<String>,
    /// How often a running pod's volumes are rendered again and what changed written into it
    /// (ConfigMap, Secret, downward API and projected volumes), as the kubelet's
    /// `--sync-frequency` (1 minute by default there).
    pub sync_frequency: std::time::Duration,
    /// The connect-time balancer's scope, when `frontdoor up` attached it: each pod's network
    /// namespace joins it while the pod has a sandbox.
    pub socket_lb_scope: Option<frontdoor_socket_lb::Scope>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error(transparent)]
    Ipam(#[from] ipam::IpamError),
    #[error("{0}")]
    Internal(String),
}

/// The field path of a pod's container in events (`spec.containers{web}`).
pub fn container_path(container: &str) -> String {
    format!("spec.containers{{{container}}}")
}
