//! Expectations: what a ReplicaSet-like controller has asked the API server to do and not yet
//! seen in its pod cache (upstream's `UIDTrackingControllerExpectations`).
//!
//! Before creating N pods a controller records "expect N additions"; every pod the cache sees
//! appear for that controller counts one down. Before deleting pods it records their UIDs; each
//! is crossed off when the cache sees the pod go (or start terminating). While anything is
//! outstanding the controller does not create or delete again, so a lagging cache can never make
//! it over-create. An expectation older than the timeout is ignored, so a lost event delays a
//! controller but never wedges it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Expectation {
    additions: i64,
    deletions: HashSet<String>,
    set_at: Instant,
}

/// Outstanding creations and deletions per controller key (`namespace/name`).
#[derive(Debug)]
pub struct Expectations {
    timeout: Duration,
    by_key: Mutex<HashMap<String, Expectation>>,
}

impl Expectations {
    pub fn new(timeout: Duration) -> Expectations {
        Expectations { timeout, by_key: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Expectation>> {
        self.by_key.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True when nothing is outstanding for `key` (or what is outstanding has timed out).
    pub fn satisfied(&self, key: &str, now: Instant) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(e) => (e.additions <= 0 && e.deletions.is_empty()) || now.duration_since(e.set_at) > self.timeout,
        }
    }

    /// How long until the outstanding expectation for `key` times out, if one is outstanding.
    pub fn time_left(&self, key: &str, now: Instant) -> Option<Duration> {
        let by_key = self.lock();
        let e = by_key.get(key)?;
        if e.additions <= 0 && e.deletions.is_empty() {
            return None;
        }
        Some(self.timeout.saturating_sub(now.duration_since(e.set_at)))
    }

    /// Records that `additions` pods are about to be created for `key`.
    pub fn expect_creations(&self, key: &str, additions: usize, now: Instant) {
        self.lock().insert(
            key.to_string(),
            Expectation { additions: additions as i64, deletions: HashSet::new(), set_at: now },
        );
    }

    /// Records that the pods with these UIDs are about to be deleted for `key`.
    pub fn expect_deletions(&self, key: &str, uids: impl IntoIterator<Item = String>, now: Instant) {
        self.lock()
            .insert(key.to_string(), Expectation { additions: 0, deletions: uids.into_iter().collect(), set_at: now });
    }

    /// A pod for `key` appeared in the cache, or a creation failed and will not appear.
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.additions -= 1;
        }
    }

    /// The pod with `uid` left the cache (or started terminating), or its deletion failed.
    pub fn deletion_observed(&self, key: &str, uid: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.deletions.remove(uid);
        }
    }

    /// Forgets `key` (its controller was deleted).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_are_counted_down() {
        let e = Expectations::new(Duration::from_secs(300));
        let now = Instant::now();
        assert!(e.satisfied("ns/a", now));
        e.expect_creations("ns/a", 2, now);
        assert!(!e.satisfied("ns/a", now));
        e.creation_observed("ns/a");
        assert!(!e.satisfied("ns/a", now));
        e.creation_observed("ns/a");
        assert!(e.satisfied("ns/a", now));
        assert!(e.satisfied("ns/b", now));
    }

    #[test]
    fn deletions_are_tracked_by_uid() {
        let e = Expectations::new(Duration::from_secs(300));
        let now = Instant::now();
        e.expect_deletions("ns/a", ["u1".to_string(), "u2".to_string()], now);
        e.deletion_observed("ns/a", "u1");
        e.deletion_observed("ns/a", "u1");
        assert!(!e.satisfied("ns/a", now));
        e.deletion_observed("ns/a", "u2");
        assert!(e.satisfied("ns/a", now));
    }

    #[test]
    fn expectations_time_out() {
        let e = Expectations::new(Duration::from_secs(5));
        let now = Instant::now();
        e.expect_creations("ns/a", 1, now);
        assert_eq!(e.time_left("ns/a", now), Some(Duration::from_secs(5)));
        assert!(e.satisfied("ns/a", now + Duration::from_secs(6)));
        e.forget("ns/a");
        assert_eq!(e.time_left("ns/a", now), None);
    }
}
