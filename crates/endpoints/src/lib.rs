//! The controllers that turn Services and Pods into endpoints, as kube-controller-manager's:
//!
//! - **EndpointSlice** (`endpointslice-controller.k8s.io`): for each Service with a selector,
//!   EndpointSlices of at most [`EndpointsConfig::max_endpoints_per_slice`] endpoints, one per
//!   selected pod with an IP, with `ready`/`serving`/`terminating` conditions.
//! - **Endpoints**: the legacy v1 `Endpoints` object of each such Service, ready and
//!   not-ready addresses in canonical subsets (what `kubectl get endpoints` shows).
//! - **EndpointSlice mirroring** (`endpointslicemirroring-controller.k8s.io`): for a Service
//!   without a selector, its hand-made Endpoints object mirrored into EndpointSlices.
//!
//! They talk to the API only through [`kube::Client`], so they run the same against
//! frontdoor's embedded API server and against a real cluster; they never touch a store.
//!
//! # How it is put together
//!
//! Each controller is a pure core plus a thin sync. The cores (`endpointslice`'s
//! reconcile, `endpoints`' plan, `mirroring`'s reconcile) take a Service, its pods and
//! its existing objects and return the writes to make; they do no I/O and carry the unit
//! tests. A sync reads those inputs from the shared caches (reflector stores of Services,
//! Pods, EndpointSlices and Endpoints) by `namespace/name` key and writes the difference,
//! which makes it level-triggered and idempotent: a sync with nothing to do writes nothing.
//!
//! `runner` wires the watches to three work queues keyed by Service: a pod change wakes
//! the Services that select it (before or after the change), a slice change the Service it
//! belongs to. Workers start only once every cache is filled. A key is queued as soon as
//! its watch event arrives, with no batching delay; a failed sync comes back with
//! exponential backoff. A small write tracker keeps a sync from acting on a cache that has
//! not yet seen the controller's own last slice writes (which would duplicate slices).
//!
//! This crate must not own pods, routing or DNS: it only publishes who serves a Service.
#![forbid(unsafe_code)]

mod endpoints;
mod endpointslice;
mod error;
mod mirroring;
mod pods;
mod runner;
mod runtime;
mod service;
mod slices;
mod wellknown;

use std::time::Duration;

pub use error::Error;
pub use runner::run;

/// Settings of the three controllers (upstream's kube-controller-manager flags).
#[derive(Clone, Debug)]
pub struct EndpointsConfig {
    /// `--max-endpoints-per-slice`: the most endpoints one EndpointSlice holds (default 100).
    pub max_endpoints_per_slice: usize,
    /// `--mirroring-max-endpoints-per-subset`: the most addresses of one Endpoints subset
    /// that are mirrored (default 1000).
    pub mirroring_max_endpoints_per_subset: usize,
    /// Services each controller syncs at once (`--concurrent-service-endpoint-syncs`,
    /// default 5).
    pub workers_per_controller: usize,
    /// The first retry delay after a failed sync; it doubles per consecutive failure.
    pub retry_backoff_min: Duration,
    /// The longest retry delay.
    pub retry_backoff_max: Duration,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        EndpointsConfig {
            max_endpoints_per_slice: 100,
            mirroring_max_endpoints_per_subset: 1000,
            workers_per_controller: 5,
            retry_backoff_min: Duration::from_millis(5),
            retry_backoff_max: Duration::from_secs(60),
        }
    }
}
