//! Label and annotation keys these controllers read and write, with upstream's values.

pub use frontdoor_informers::labels::{HEADLESS, MANAGED_BY, SERVICE_NAME};

/// Set to `"true"` on an Endpoints object that mirroring must leave alone.
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";

/// `managed-by` value of the EndpointSlice controller.
pub const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// `managed-by` value of the EndpointSlice mirroring controller.
pub const MIRRORING_CONTROLLER: &str = "endpointslicemirroring-controller.k8s.io";

/// Set to `truncated` on an Endpoints object that holds more addresses than it may.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Not mirrored from Endpoints to slices.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Not mirrored from Endpoints to slices.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Endpoints used as leader-election locks are never mirrored nor garbage-collected.
pub const LEADER_ELECTION: &str = "control-plane.alpha.kubernetes.io/leader";
