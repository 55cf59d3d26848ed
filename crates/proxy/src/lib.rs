//! The service proxy: Services and EndpointSlices in, nftables rules in the kernel out.
//!
//! A guided tour:
//! * [`run`] feeds the shared informers' changes into the pure [`ProxyModel`]
//!   (`frontdoor-proxy-model`) and wakes the sync loop.
//! * Each sync (rate-limited, never before the caches have synced) takes the Services that
//!   changed, resolves them, renders each into a [`render::Fragment`] and lets
//!   [`programmed::Programmed`] work out the difference from what the kernel holds; one atomic
//!   batch (`writer`, nf_tables over netlink) applies it. Nothing is ever listed back.
//! * The first sync, and any sync after a failure, is a full one: the table is replaced whole.
//! * After a sync: stale UDP conntrack entries of removed endpoints are flushed, the
//!   connect-time balancer (when attached) follows the TCP ClusterIP ports (`socket_lb`), health-check
//!   NodePorts follow their Services (`health`), and kube-proxy's metrics are recorded.
//!
//! The rules live in table `ip frontdoor` (see [`render`] for the layout). This crate never reads
//! API objects below the model: rendering sees only resolved ports.
#![forbid(unsafe_code)]

pub mod health;
mod metrics;
pub mod programmed;
pub mod render;
mod socket_lb;
mod sync;
mod writer;

pub use frontdoor_proxy_model::{ProxyModel, SourceRange};
pub use render::RenderConfig;
pub use sync::{run, ProxyConfig, ProxyError};

/// The table frontdoor's rules live in (family `ip`).
pub const TABLE: &str = "frontdoor";

/// Removes the proxy's table from the calling thread's network namespace (for `frontdoor
/// cleanup`). `Ok(false)` when there was none.
pub fn remove_table(table: &str) -> Result<bool, frontdoor_netfilter::ApplyError> {
    let mut socket = frontdoor_netfilter::Socket::open().map_err(frontdoor_netfilter::ApplyError::Io)?;
    let mut batch = frontdoor_netfilter::Batch::new(frontdoor_netfilter::Family::Ipv4);
    batch.delete_table(table);
    match socket.apply(&batch) {
        Ok(()) => Ok(true),
        Err(frontdoor_netfilter::ApplyError::Kernel { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(false)
        }
        Err(error) => Err(error),
    }
}
