//! The Ingress controller's pure core: the HTTP route table and how it is compiled.
//!
//! A [`RouteTableBuilder`] is fed Ingresses, IngressClasses, Services, EndpointSlices and
//! Secrets (from the shared informers) one object at a time; [`RouteTableBuilder::build`]
//! compiles the Ingresses that are ours into an immutable [`RouteTable`] and the [`Problem`]s
//! the controller reports as Warning Events. A proxy swaps each build in behind an `Arc`
//! (`arc_swap`), so a request takes no lock; [`RouteTable::route`] picks its backend without
//! allocating, and [`RouteTable::tls_for`] picks the Secret whose certificate answers an SNI name.
//!
//! Compilation goes in two steps, so that Gateway API HTTPRoutes can later compile into the same
//! table: each Ingress is translated on arrival into a [`RouteSet`] (host and path matches,
//! default routes, TLS bindings, Service backend references), which knows no Ingress; then
//! [`compile`] merges every served source's set in precedence order and resolves each backend
//! in the [`Catalog`] to its ready endpoints.
//!
//! Semantics, with their sources:
//! - **Class** (ingress-nginx `store.GetIngressClass`): an Ingress is ours when its
//!   `spec.ingressClassName` names an IngressClass whose `spec.controller` is ours, or (without
//!   that field) when its `kubernetes.io/ingress.class` annotation is our class. An Ingress with
//!   neither is not ours: the API server gives new Ingresses the default class, if any.
//! - **Hosts** (Kubernetes Ingress documentation, "Hostname wildcards"): matched case-insensitively,
//!   port and trailing dot ignored; `*.foo.com` covers exactly one label. A request's host picks
//!   one set of rules, exact name before wildcard before the host-less rules, and only that set
//!   is searched (as nginx picks a server before a location).
//! - **Paths** ("Examples" and "Multiple matches"): Exact is byte-exact; Prefix matches whole
//!   `/`-separated elements ignoring a trailing slash; ImplementationSpecific is Prefix. An Exact
//!   match wins (it matches the whole path), else the longest Prefix.
//! - **Merging** across Ingresses (ingress-nginx `getBackendServers`, Gateway API's route
//!   precedence): the oldest Ingress keeps a host and path, then `namespace/name` ascending; the
//!   others get a `PathConflict`.
//! - **Default backends** (ingress-nginx `createServers`): an Ingress's `defaultBackend` serves
//!   the unmatched requests of its own rules' hosts (the oldest such Ingress per host wins); an
//!   Ingress with a `defaultBackend` and no rules serves every request whose host no rule names,
//!   before host-less rules' Ingresses' defaults. Anything else unmatched is 404
//!   ([`Route::NotFound`]); a matched backend without ready endpoints is 503
//!   ([`Route::NoEndpoints`]).
//! - **Backends** (kube-proxy): the Service port by number or name, then the EndpointSlices'
//!   port of the same name; endpoints whose `ready` is true or unknown and that are not
//!   terminating; `appProtocol: kubernetes.io/h2c` marks HTTP/2 over cleartext.
//! - **TLS**: the `tls` entries' hosts (an entry without hosts covers its Ingress's rule hosts
//!   that no other entry names; ingress-nginx instead checks the certificate's names, which only
//!   the caller parses), exact before wildcard, the oldest Ingress's Secret first; a Secret
//!   missing or without `tls.crt`/`tls.key` is skipped and reported, and unknown names get the
//!   caller's default certificate.
//!
//! This crate must never do I/O: no sockets, no runtime, no clock, no certificate parsing.
#![forbid(unsafe_code)]

mod builder;
mod catalog;
mod compile;
mod ingress;
mod model;
mod problem;
mod table;

pub use builder::RouteTableBuilder;
pub use catalog::{Catalog, H2C_APP_PROTOCOL, SERVICE_NAME_LABEL};
pub use compile::{compile, CompiledRoutes};
pub use ingress::{IngressClassConfig, INGRESS_CLASS_ANNOTATION};
pub use model::{
    BackendRef, DefaultRoute, HostMatch, PathMatch, PathRoute, PortRef, RouteSet, RouteSource, SecretRef, SourceKind,
    TlsBinding,
};
pub use problem::{Problem, Reason};
pub use table::{Backend, BackendId, BackendProtocol, Route, RouteTable};

#[cfg(test)]
mod tests;
