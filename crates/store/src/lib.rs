//! The durable object store behind the API server.
//!
//! Objects are JSON values under string keys (the API server builds keys such as
//! `services/default/web`; the store only knows that keys sort and share prefixes). Every write
//! bumps one global, monotonic revision that the API server exposes as `resourceVersion`.
//!
//! * **Durable before acknowledged.** One writer thread owns the SQLite connection (WAL,
//!   `synchronous=FULL`). It takes every write that is waiting, applies them in one transaction
//!   (group commit: one fsync for many writers) and only then answers them and publishes them.
//! * **Reads never touch SQLite.** The committed state is mirrored in memory, so `get` and `list`
//!   are lock-and-clone operations on `Arc`s.
//! * **Watches** are served from a bounded in-memory window of recent events plus a broadcast
//!   channel; a watch that starts before the window gets [`StoreError::Expired`] (HTTP 410 upstream).
//! * **Transactions**: a [`Batch`] of writes with preconditions commits all or nothing, so an
//!   object and, say, the allocator state it depends on change together.
//!
//! The store must never know HTTP or Kubernetes semantics beyond "revision".
#![forbid(unsafe_code)]

mod sqlite;
mod state;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

pub use state::{Event, EventType};

/// A global revision: the `resourceVersion` of the store as a whole and of each object.
pub type Revision = u64;

/// An object as stored: its revision and its JSON (already stamped with that revision).
#[derive(Debug, Clone)]
pub struct Stored {
    pub revision: Revision,
    pub value: Arc<Value>,
    /// `value` serialized as JSON, made once at write time and shared by every reader.
    pub json: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {0} not found")]
    NotFound(String),
    /// The object changed since the revision the writer built on.
    #[error("key {key} is at revision {actual}, not {expected}")]
    Conflict { key: String, expected: Revision, actual: Revision },
    /// The requested revision is older than the event window.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: Revision, oldest: Revision },
    #[error("storage error: {0}")]
    Storage(String),
    #[error("the store is shut down")]
    Closed,
}

/// What must hold for one write in a batch to go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Create: the key must not exist.
    Absent,
    /// The key must exist (any revision).
    Exists,
    /// The key must exist at exactly this revision (optimistic concurrency).
    AtRevision(Revision),
    /// Nothing: create or overwrite.
    None,
}

/// Builds the value to store once the revision of the write is known.
pub type Build = Box<dyn FnOnce(Revision) -> Value + Send>;

/// One write of a [`Batch`].
pub struct Write {
    pub key: String,
    pub precondition: Precondition,
    pub action: Action,
}

pub enum Action {
    /// Store the built value under the key.
    Put(Build),
    /// Remove the key; the built value is what watchers see in the DELETED event.
    Delete(Build),
}

/// Writes that commit together or not at all, at one revision.
#[derive(Default)]
pub struct Batch {
    pub writes: Vec<Write>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(mut self, key: impl Into<String>, precondition: Precondition, build: Build) -> Self {
        self.writes.push(Write { key: key.into(), precondition, action: Action::Put(build) });
        self
    }

    pub fn delete(mut self, key: impl Into<String>, precondition: Precondition, build: Build) -> Self {
        self.writes.push(Write { key: key.into(), precondition, action: Action::Delete(build) });
        self
    }
}

/// Tuning of the in-memory parts.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many recent events watches can resume from.
    pub event_window: usize,
    /// Capacity of each watcher's queue before it is dropped as too slow (it then resumes).
    pub watch_queue: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { event_window: 100_000, watch_queue: 100_000 }
    }
}

/// A cheap-to-clone handle to the store.
#[derive(Clone)]
pub struct Store {
    state: Arc<RwLock<state::State>>,
    writer: std::sync::mpsc::Sender<sqlite::Request>,
}

/// A watch: the events after the starting revision that were already in the window, then live ones.
pub struct Watch {
    pub backlog: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
}

impl Store {
    /// Opens (or creates) the store in the SQLite file at `path` and loads it into memory.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        let (connection, objects, revision) = sqlite::open(path)?;
        let state = Arc::new(RwLock::new(state::State::new(objects, revision, &config)));
        let writer = sqlite::spawn_writer(connection, state.clone())?;
        Ok(Store { state, writer })
    }

    /// The current revision of the whole store.
    pub fn revision(&self) -> Revision {
        self.read().revision
    }

    pub fn get(&self, key: &str) -> Option<Stored> {
        self.read().objects.get(key).cloned()
    }

    /// Every object whose key starts with `prefix`, in key order, after `start_after` if given,
    /// at most `limit` (0 = all), with the revision the listing reflects.
    pub fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> (Revision, Vec<(String, Stored)>) {
        let state = self.read();
        let items = range(&state.objects, prefix, start_after)
            .take(if limit == 0 { usize::MAX } else { limit })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (state.revision, items)
    }

    /// Whether any key after `after` starts with `prefix` (for `remainingItemCount`/continue).
    pub fn count_after(&self, prefix: &str, after: &str) -> usize {
        range(&self.read().objects, prefix, Some(after)).count()
    }

    /// How many keys start with `prefix`: a walk over the in-memory keys, no copies.
    pub fn count(&self, prefix: &str) -> usize {
        range(&self.read().objects, prefix, None).count()
    }

    /// Starts a watch from `revision` (events with a greater revision are delivered).
    pub fn watch(&self, revision: Revision) -> Result<Watch, StoreError> {
        self.read().watch_from(revision)
    }

    /// Commits a batch atomically once it is durable. Returns the revision it committed at and
    /// the stored values of its `Put`s (in order; `None` for deletes).
    pub async fn commit(&self, batch: Batch) -> Result<(Revision, Vec<Option<Stored>>), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer.send(sqlite::Request { batch, reply }).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, state::State> {
        // A panic while holding the lock cannot leave the map half-updated (updates are single
        // inserts/removes), so a poisoned lock is still consistent.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn range<'a>(
    objects: &'a BTreeMap<String, Stored>,
    prefix: &'a str,
    start_after: Option<&str>,
) -> impl Iterator<Item = (&'a String, &'a Stored)> + 'a {
    use std::ops::Bound;
    let start = match start_after {
        Some(after) if after >= prefix => Bound::Excluded(after.to_string()),
        _ => Bound::Included(prefix.to_string()),
    };
    objects.range((start, Bound::Unbounded)).take_while(move |(k, _)| k.starts_with(prefix))
}

#[cfg(test)]
mod tests;
