//! EndpointSlice mirroring: for a Service without a selector, the Endpoints object its owner
//! maintains by hand is mirrored into EndpointSlices, so slice consumers see it too.

mod controller;
mod reconcile;

pub use controller::MirroringController;
pub use reconcile::should_mirror;
