//! What the three controllers share beyond the common runtime (`frontdoor-informers`): read
//! access to the caches, the write tracker, and EndpointSlice writes.

pub mod cache;
pub mod slice_writes;
pub mod tracker;
