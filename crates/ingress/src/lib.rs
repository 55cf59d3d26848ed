//! The Ingress data plane: an HTTP and HTTPS reverse proxy over the route table that
//! `frontdoor-ingress-routes` compiles.
//!
//! A tour, in the order a request meets it:
//! - [`proxy`]: the listeners. [`proxy::IngressProxy::bind`] opens them (`SO_REUSEADDR`, port 0
//!   allowed, addresses known before serving) and [`proxy::IngressProxy::serve`] accepts until
//!   the shutdown signal, one task per connection. The plain port speaks HTTP/1.1 and HTTP/2
//!   with prior knowledge (told apart by the first bytes); the TLS port HTTP/1.1 or HTTP/2 as
//!   ALPN chose. On shutdown it stops accepting, lets requests in flight finish (HTTP/2 gets a
//!   GOAWAY, HTTP/1.1 closes after its response) for up to the drain timeout, then closes the rest.
//! - [`tls`]: the certificate for each handshake, by SNI from the current route table and
//!   [`tls::Certificates`], else the self-signed default.
//! - a plain HTTP/1.1 request (`h1`, the fast path): its head parsed and rewritten byte for
//!   byte, sent over a pooled endpoint socket, the response relayed as it came, in one task per
//!   client connection; the first request outside the plain case (an error to answer, a chunked
//!   upload, an upgrade, HTTP/1.0, an h2c backend) takes the connection to hyper.
//! - each other request (`exchange`, on hyper): host and framing checked, routed (`RouteTable::route`, an
//!   `ArcSwap` load: no lock), forwarded to a random endpoint of its backend over a pooled
//!   keep-alive connection (a failed connect moves on to another endpoint, as does an idempotent
//!   bodiless request an endpoint dropped unanswered), bodies streamed both ways, upgrades
//!   (WebSocket) spliced, and every error answered with one status in one place.
//! - the metrics (`nginx_ingress_controller_requests`, `…_request_duration_seconds` with
//!   ingress-nginx's labels, `frontdoor_ingress_upstream_connect_failures_total` and
//!   `…_upstream_retries_total`) and one access-log line per request (target
//!   `frontdoor_ingress::access`).
//!
//! The controller (informers → `RouteTableBuilder` → swap; Secrets → [`tls::Certificates`]) is
//! the caller's: this crate only reads the two `ArcSwap`s it is given.
//!
//! It must never panic on input, take a lock on the request path, or hold anything of the API.
#![forbid(unsafe_code)]

mod body;
mod client;
pub mod controller;
mod exchange;
#[doc(hidden)]
pub mod h1;
mod headers;
mod io;
mod metrics;
pub mod proxy;
pub mod tls;
mod upstream;

use std::net::SocketAddr;

pub use arc_swap;
pub use proxy::{serve, IngressProxy, ProxyConfig};
pub use tls::{certified_key_from_secret, Certificates};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("cannot listen on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot make the default certificate: {0}")]
    DefaultCertificate(String),
}

impl From<rcgen::Error> for IngressError {
    fn from(error: rcgen::Error) -> Self {
        IngressError::DefaultCertificate(error.to_string())
    }
}
