//! The EndpointSlice controller: slices of at most `max_endpoints_per_slice` endpoints for
//! every Service with a selector, following its pods' addresses and readiness.

mod controller;
mod desired;
mod reconcile;

pub use controller::EndpointSliceController;
pub use desired::generate_name;
