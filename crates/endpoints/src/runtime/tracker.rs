//! Remembers the EndpointSlice writes a controller made until its cache has seen them
//! (upstream's `EndpointSliceTracker`).
//!
//! Reconciling from a cache that has not yet seen our own last create would create the
//! slice a second time; so before each sync the controller asks [`SliceTracker::is_stale`],
//! and waits (retries) while the cache is behind. Watch events that only echo our own
//! writes are recognised with [`SliceTracker::is_own_write`] and cause no sync.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::service::ObjectKey;

/// After this long an expectation is dropped, so a lost event cannot stall a key forever.
const EXPECTATION_LIFETIME: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expected {
    Generation(i64),
    Deleted,
}

/// What we expect of each slice (by name) and since when.
type Expectations = HashMap<String, (Expected, Instant)>;

#[derive(Default)]
pub struct SliceTracker {
    by_owner: Mutex<HashMap<ObjectKey, Expectations>>,
}

fn generation(slice: &EndpointSlice) -> i64 {
    slice.metadata.generation.unwrap_or(0)
}

impl SliceTracker {
    /// Records a slice the API server returned from a create or update.
    pub fn wrote(&self, owner: &ObjectKey, slice: &EndpointSlice) {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut by_owner = self.by_owner.lock().expect("tracker lock");
        by_owner
            .entry(owner.clone())
            .or_default()
            .insert(name, (Expected::Generation(generation(slice)), Instant::now()));
    }

    /// Records that we deleted a slice.
    pub fn deleted(&self, owner: &ObjectKey, name: &str) {
        let mut by_owner = self.by_owner.lock().expect("tracker lock");
        by_owner.entry(owner.clone()).or_default().insert(name.to_string(), (Expected::Deleted, Instant::now()));
    }

    /// True while `cached` (the owner's slices in the cache) lacks one of our writes.
    /// Expectations the cache has caught up with are forgotten.
    pub fn is_stale(&self, owner: &ObjectKey, cached: &[&EndpointSlice]) -> bool {
        let mut by_owner = self.by_owner.lock().expect("tracker lock");
        let Some(expected) = by_owner.get_mut(owner) else {
            return false;
        };
        let now = Instant::now();
        expected.retain(|name, (what, since)| {
            let seen = cached.iter().find(|s| s.metadata.name.as_deref() == Some(name.as_str()));
            let behind = match (what, seen) {
                (Expected::Generation(_), None) => true,
                (Expected::Generation(want), Some(slice)) => generation(slice) < *want,
                (Expected::Deleted, seen) => seen.is_some(),
            };
            behind && now.duration_since(*since) < EXPECTATION_LIFETIME
        });
        let stale = !expected.is_empty();
        if !stale {
            by_owner.remove(owner);
        }
        stale
    }

    /// True when a watched slice is exactly what we last wrote (an echo of our own write).
    pub fn is_own_write(&self, owner: &ObjectKey, slice: &EndpointSlice) -> bool {
        let by_owner = self.by_owner.lock().expect("tracker lock");
        let name = slice.metadata.name.as_deref().unwrap_or("");
        let expected = by_owner.get(owner).and_then(|e| e.get(name)).map(|(what, _)| *what);
        expected == Some(Expected::Generation(generation(slice)))
    }

    /// A watched deletion: forget what we expected of that slice. True if we deleted it.
    pub fn observed_deletion(&self, owner: &ObjectKey, name: &str) -> bool {
        let mut by_owner = self.by_owner.lock().expect("tracker lock");
        let Some(expected) = by_owner.get_mut(owner) else {
            return false;
        };
        let was = expected.remove(name).map(|(what, _)| what);
        if expected.is_empty() {
            by_owner.remove(owner);
        }
        was == Some(Expected::Deleted)
    }

    /// The owner is gone: forget everything about it.
    pub fn forget(&self, owner: &ObjectKey) {
        self.by_owner.lock().expect("tracker lock").remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(name: &str, generation: i64) -> EndpointSlice {
        let mut slice = EndpointSlice::default();
        slice.metadata.name = Some(name.into());
        slice.metadata.generation = Some(generation);
        slice
    }

    #[test]
    fn writes_are_stale_until_the_cache_has_them() {
        let tracker = SliceTracker::default();
        let owner = ObjectKey::new("default", "web");
        assert!(!tracker.is_stale(&owner, &[]));
        tracker.wrote(&owner, &slice("web-a", 2));
        assert!(tracker.is_stale(&owner, &[]));
        assert!(tracker.is_stale(&owner, &[&slice("web-a", 1)]));
        assert!(tracker.is_own_write(&owner, &slice("web-a", 2)));
        assert!(!tracker.is_own_write(&owner, &slice("web-a", 3)));
        assert!(!tracker.is_stale(&owner, &[&slice("web-a", 2)]));
        assert!(!tracker.is_own_write(&owner, &slice("web-a", 2)), "forgotten once seen");
    }

    #[test]
    fn deletions_are_stale_until_the_cache_drops_them() {
        let tracker = SliceTracker::default();
        let owner = ObjectKey::new("default", "web");
        tracker.deleted(&owner, "web-a");
        assert!(tracker.is_stale(&owner, &[&slice("web-a", 1)]));
        assert!(tracker.observed_deletion(&owner, "web-a"));
        assert!(!tracker.is_stale(&owner, &[]));
        tracker.wrote(&owner, &slice("web-b", 1));
        assert!(!tracker.observed_deletion(&owner, "web-b"), "someone else deleted it");
        assert!(!tracker.is_stale(&owner, &[]));
    }
}
