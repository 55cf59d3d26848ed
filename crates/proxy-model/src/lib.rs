//! The service proxy's one desired-state model, shared by every backend.
//!
//! [`ProxyModel`] is fed Services and EndpointSlices (from the shared informers) and tracks
//! which Services changed since the last sync. [`ProxyModel::resolve`] turns one Service into
//! its [`ResolvedPort`]s: the frontends (cluster IP, NodePort, external IPs, load-balancer
//! addresses) and, decided here once for every backend, which endpoints serve cluster traffic
//! and which serve external traffic (ready ones; serving-terminating ones only when no ready one
//! remains; `internalTrafficPolicy` and `externalTrafficPolicy: Local`).
//!
//! This crate does no I/O and knows nothing of nftables: backends render what it resolves.
#![forbid(unsafe_code)]

mod endpoints;
mod model;
mod policy;
mod service;

pub use endpoints::{Endpoint, SliceEndpoints};
pub use model::ProxyModel;
pub use policy::{categorize, NoEndpoints, ResolvedPort};
pub use service::{service_ports, Protocol, ServiceKey, ServicePort, SourceRange};
