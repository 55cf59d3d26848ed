//! Cluster DNS's pure core: the cluster's names, and the answer to one DNS message.
//!
//! [`ClusterIndex`] is an immutable index of every name the Kubernetes DNS-Based Service
//! Discovery specification 1.1.0 defines for a cluster, served as CoreDNS's `kubernetes` plugin
//! serves it (kubeadm's Corefile: `pods insecure`, `ttl 30`): Service A/AAAA, SRV for named ports,
//! headless Services' endpoints by hostname (or dashed address), PTR, ExternalName CNAMEs, pod
//! addresses, `dns-version`. It is built from Namespaces, Services, EndpointSlices and (for
//! `pods verified`) Pods, with [`ClusterIndex::build`] or kept up to date object by object in an
//! [`IndexBuilder`]; a server swaps each new build in behind an `Arc`, so a query takes no lock.
//! The index is made of parts (a namespace's names, a reverse shard's PTRs, the apex's): after a
//! change, [`IndexBuilder::take_changes`] gives the [`Rebuild`] of the parts it touched, and the
//! new index shares every other part with the one before, so a change costs in proportion to its
//! namespace, not to the cluster.
//!
//! [`answer_into`] reads one request (without allocating) and writes the authoritative response
//! as CoreDNS would: NOERROR, NXDOMAIN, or NODATA with the zone's SOA; AA; EDNS0 echoed with a
//! bounded size; truncation to whole records; FORMERR, NOTIMP, REFUSED, BADVERS. It says when a
//! name is not the cluster's ([`Outcome::Forward`]) and when an ExternalName's target must be
//! resolved upstream ([`Outcome::Chase`]).
//!
//! This crate owns names and bytes only. It must never do I/O: no sockets, no runtime, no API
//! client, no clock (the SOA serial and the cache's time come from the caller). Forwarding,
//! metrics and the informers that feed the builder belong to the server; [`ForwardCache`], the
//! forwarder's cache, is here because it is bytes and arithmetic.
//!
//! Where the specification, CoreDNS and RFCs differ, this crate chooses:
//! - CoreDNS's superset where the specification is silent: endpoints of ClusterIP Services are
//!   named too (`10-244-1-5.api.ns.svc.zone`); an endpoint without `hostname` is named by its
//!   dashed address (or pod name, `endpoint_pod_names`) and gets a PTR; SRV at a Service's or
//!   endpoint's own name lists every port, weight ⌊100/entries⌋; A at `_port._proto` names.
//! - RFC 8020 over CoreDNS for names that exist without records: empty non-terminals
//!   (`_tcp.api.ns.svc.zone`, `dns.zone`, partial reverse names) and `dns-version` for types
//!   other than TXT answer NODATA (CoreDNS: NXDOMAIN); SOA below the apex follows existence
//!   (CoreDNS: always NODATA).
//! - Not copied from CoreDNS: port/protocol labels without underscores or empty (`_._tcp`),
//!   labels in front of a pod name, PTR queries on ExternalName names.
//! - Reverse zones of the configured ranges are authoritative (kubeadm's CoreDNS falls through
//!   to the upstream for unknown addresses); a PTR the index knows is answered in any range.
//! - UDP size: the client's EDNS0 size bounded by `max_udp_payload` (CoreDNS's `bufsize`).
#![forbid(unsafe_code)]

mod answer;
mod build;
mod cache;
mod config;
mod index;
mod model;
mod names;
mod wire;

pub use answer::{answer, answer_into, complete_chase, reply_with_rcode, Outcome, Response, Transport};
pub use build::Rebuild;
pub use cache::{CacheConfig, CacheKind, ForwardCache, Stored};
pub use config::{Cidr, IndexConfig, PodMode};
pub use index::{dashed, reverse_name, ClusterIndex, DNS_VERSION_TTL, SCHEMA_VERSION};
pub use model::{IndexBuilder, SERVICE_NAME_LABEL};
