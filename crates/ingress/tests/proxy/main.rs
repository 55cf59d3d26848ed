//! The proxy end to end: real backends, the route builder's tables, real clients, on loopback.
#![allow(clippy::unwrap_used)] // a test stops at the first broken assumption

mod support;

mod bad_input;
mod curl;
mod drain;
mod fast_path;
mod forwarding;
mod retries;
mod routing;
mod streaming;
mod tls;
