//! Events expire `ttl` after their last write, as kube-apiserver's `--event-ttl` (1 h by
//! default) makes etcd do with a lease per write. Nothing is written to keep time: the expiry
//! task follows the store's own change stream, remembers when each Event was last written, and
//! deletes it (through the registry, on condition that it has not been written since) once its
//! time is up. Fresh Events cost no extra write; after a restart an Event's last write is read
//! from its own timestamps.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use frontdoor_store::{EventType, Revision};

use crate::lifecycle::locate;
use crate::registry::{DeleteOptions, ObjectRef, Registry};

/// Store key prefixes of the Event resources (core/v1 and events.k8s.io/v1).
fn prefixes() -> Vec<String> {
    frontdoor_resources::all()
        .iter()
        .filter(|r| r.kind == "Event")
        .map(|r| crate::request::collection_prefix(r, None))
        .collect()
}

fn is_event(prefixes: &[String], key: &str) -> bool {
    prefixes.iter().any(|p| key.starts_with(p.as_str()))
}

/// When each Event expires: ordered by deadline, and by key for updates.
#[derive(Default)]
struct Deadlines {
    by_time: BTreeSet<(Instant, String)>,
    by_key: HashMap<String, (Instant, Revision)>,
}

impl Deadlines {
    fn set(&mut self, key: &str, deadline: Instant, revision: Revision) {
        if let Some((old, _)) = self.by_key.insert(key.to_string(), (deadline, revision)) {
            self.by_time.remove(&(old, key.to_string()));
        }
        self.by_time.insert((deadline, key.to_string()));
    }

    fn forget(&mut self, key: &str) {
        if let Some((old, _)) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.to_string()));
        }
    }

    fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(deadline, _)| *deadline)
    }

    /// The Events due by `now`, with the revision they expire at.
    fn take_due(&mut self, now: Instant) -> Vec<(String, Revision)> {
        let mut due = Vec::new();
        while let Some((deadline, key)) = self.by_time.first().cloned() {
            if deadline > now {
                break;
            }
            self.by_time.remove(&(deadline, key.clone()));
            if let Some((_, revision)) = self.by_key.remove(&key) {
                due.push((key, revision));
            }
        }
        due
    }
}

/// The last time an Event says it was written: the latest of its own timestamps.
fn last_written(event: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    [
        "/lastTimestamp",
        "/eventTime",
        "/series/lastObservedTime",
        "/deprecatedLastTimestamp",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .filter_map(|p| event.pointer(p).and_then(Value::as_str))
    .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    .map(|t| t.with_timezone(&chrono::Utc))
    .max()
}

/// Deletes Events `ttl` after their last write, until the store closes.
pub async fn run(registry: Registry, ttl: Duration) {
    let prefixes = prefixes();
    loop {
        let mut deadlines = Deadlines::default();
        // Events already stored: their deadline from their own timestamps.
        let now = Instant::now();
        let wall = chrono::Utc::now();
        let mut revision = 0;
        for prefix in &prefixes {
            let (listed_at, items) = registry.store.list(prefix, None, 0);
            revision = revision.max(listed_at);
            for (key, stored) in items {
                let age = last_written(&stored.value).and_then(|t| (wall - t).to_std().ok()).unwrap_or_default();
                deadlines.set(&key, now + ttl.saturating_sub(age), stored.revision);
            }
        }
        let Ok(watch) = registry.store.watch(revision) else { continue };
        for event in &watch.backlog {
            observe(&mut deadlines, &prefixes, event, ttl);
        }
        let mut live = watch.live;
        loop {
            let next = deadlines.next();
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) => observe(&mut deadlines, &prefixes, &event, ttl),
                    // Fell behind: list again.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
                () = sleep_until(next) => {
                    for (key, revision) in deadlines.take_due(Instant::now()) {
                        expire(&registry, &key, revision).await;
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn observe(deadlines: &mut Deadlines, prefixes: &[String], event: &frontdoor_store::Event, ttl: Duration) {
    if !is_event(prefixes, &event.key) {
        return;
    }
    match event.event_type {
        EventType::Added | EventType::Modified => deadlines.set(&event.key, Instant::now() + ttl, event.revision),
        EventType::Deleted => deadlines.forget(&event.key),
    }
}

/// Deletes the Event at `key` if it is still at `revision` (a later write set a later deadline).
async fn expire(registry: &Registry, key: &str, revision: Revision) {
    let Some(stored) = registry.store.get(key) else { return };
    let Some(resource) = locate(key) else { return };
    let name = stored.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let namespace = stored.value.pointer("/metadata/namespace").and_then(Value::as_str);
    let at = ObjectRef { resource, namespace, name };
    let options =
        DeleteOptions { precondition_resource_version: Some(revision.to_string()), ..DeleteOptions::default() };
    match registry.delete(&at, &options).await {
        Ok(_) => tracing::debug!(key, "event expired"),
        // Written again meanwhile (its new deadline is set) or already gone.
        Err(error) if matches!(error.reason, "Conflict" | "NotFound") => {}
        Err(error) => tracing::warn!(key, message = %error.message, "expiring an event failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deadlines_follow_the_last_write_and_come_due_in_order() {
        let start = Instant::now();
        let mut deadlines = Deadlines::default();
        deadlines.set("events/default/a", start + Duration::from_secs(10), 1);
        deadlines.set("events/default/b", start + Duration::from_secs(5), 2);
        // a written again: its deadline moves.
        deadlines.set("events/default/a", start + Duration::from_secs(20), 3);
        assert_eq!(deadlines.next(), Some(start + Duration::from_secs(5)));
        assert_eq!(deadlines.take_due(start + Duration::from_secs(10)), [("events/default/b".to_string(), 2)]);
        assert!(deadlines.take_due(start + Duration::from_secs(19)).is_empty());
        deadlines.forget("events/default/a");
        assert_eq!(deadlines.next(), None);
    }

    #[test]
    fn the_last_write_is_the_latest_timestamp() {
        let event = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "lastTimestamp": "2026-01-01T00:10:00Z", "eventTime": null});
        assert_eq!(last_written(&event).unwrap().to_rfc3339(), "2026-01-01T00:10:00+00:00");
        assert!(last_written(&json!({})).is_none());
        let prefixes = prefixes();
        assert_eq!(prefixes, ["events/", "events.events.k8s.io/"]);
        assert!(is_event(&prefixes, "events/default/x") && !is_event(&prefixes, "eventsx/a"));
    }
}
