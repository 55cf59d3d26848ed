//! SQLite persistence and the single writer thread (group commit).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, RwLock};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::state::{Event, EventType, State};
use crate::{Action, Batch, Precondition, Revision, StoreError, Stored};

/// How many queued batches one transaction takes at most.
const MAX_GROUP: usize = 256;

/// What a committed batch answers: its revision and the stored values of its puts.
pub(crate) type Committed = Result<(Revision, Vec<Option<Stored>>), StoreError>;

pub(crate) struct Request {
    pub batch: Batch,
    pub reply: oneshot::Sender<Committed>,
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

pub(crate) fn open(path: &Path) -> Result<(Connection, BTreeMap<String, Stored>, Revision), StoreError> {
    let connection = Connection::open(path).map_err(storage)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, revision INTEGER NOT NULL, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(storage)?;
    let revision: Revision = connection
        .query_row("SELECT value FROM meta WHERE name = 'revision'", [], |row| row.get::<_, i64>(0))
        .optional()
        .map_err(storage)?
        .unwrap_or(0) as Revision;
    let mut objects = BTreeMap::new();
    {
        let mut statement = connection.prepare("SELECT key, revision, value FROM objects").map_err(storage)?;
        let rows = statement
            .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, Vec<u8>>(2)?)))
            .map_err(storage)?;
        for row in rows {
            let (key, object_revision, bytes) = row.map_err(storage)?;
            let value: Value = serde_json::from_slice(&bytes).map_err(storage)?;
            objects.insert(
                key,
                Stored { revision: object_revision as Revision, value: Arc::new(value), json: bytes.into() },
            );
        }
    }
    Ok((connection, objects, revision))
}

pub(crate) fn spawn_writer(connection: Connection, state: Arc<RwLock<State>>) -> Result<Sender<Request>, StoreError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer_loop(connection, state, receiver))
        .map_err(storage)?;
    Ok(sender)
}

/// The outcome of staging one batch: its events, or why it was refused.
type Staged = Result<(Revision, Vec<Event>), StoreError>;

fn writer_loop(mut connection: Connection, state: Arc<RwLock<State>>, requests: Receiver<Request>) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        commit_group(&mut connection, &state, group);
    }
}

fn commit_group(connection: &mut Connection, state: &Arc<RwLock<State>>, group: Vec<Request>) {
    let mut revision = state.read().unwrap_or_else(|e| e.into_inner()).revision;
    // What earlier batches of this group wrote, on top of the committed state.
    let mut overlay: HashMap<String, Option<Stored>> = HashMap::new();
    let mut outcomes: Vec<(oneshot::Sender<_>, Staged)> = Vec::with_capacity(group.len());
    for request in group {
        let staged = stage(state, &mut overlay, revision + 1, request.batch);
        if staged.is_ok() {
            revision += 1;
        }
        outcomes.push((request.reply, staged));
    }

    let persisted = persist(connection, revision, outcomes.iter().filter_map(|(_, s)| s.as_ref().ok()));
    if let Err(error) = persisted {
        tracing::error!(%error, "store commit failed");
        for (reply, _) in outcomes {
            let _ = reply.send(Err(StoreError::Storage(error.to_string())));
        }
        return;
    }

    let mut answers = Vec::with_capacity(outcomes.len());
    {
        let mut state = state.write().unwrap_or_else(|e| e.into_inner());
        for (reply, staged) in outcomes {
            match staged {
                Ok((batch_revision, events)) => {
                    let stored = events
                        .iter()
                        .map(|e| match e.event_type {
                            EventType::Deleted => None,
                            _ => Some(Stored {
                                revision: batch_revision,
                                value: e.object.clone(),
                                json: e.object_json.clone(),
                            }),
                        })
                        .collect();
                    state.publish(batch_revision, events);
                    answers.push((reply, Ok((batch_revision, stored))));
                }
                Err(error) => answers.push((reply, Err(error))),
            }
        }
    }
    for (reply, answer) in answers {
        let _ = reply.send(answer);
    }
}

/// Checks a batch's preconditions against the committed state plus the overlay and builds its
/// values; on success the overlay records the batch's writes.
fn stage(
    state: &Arc<RwLock<State>>,
    overlay: &mut HashMap<String, Option<Stored>>,
    revision: Revision,
    batch: Batch,
) -> Staged {
    let mut local: HashMap<String, Option<Stored>> = HashMap::new();
    let mut events = Vec::with_capacity(batch.writes.len());
    for write in batch.writes {
        let current = match local.get(&write.key).or_else(|| overlay.get(&write.key)) {
            Some(entry) => entry.clone(),
            None => state.read().unwrap_or_else(|e| e.into_inner()).objects.get(&write.key).cloned(),
        };
        check(&write.key, write.precondition, current.as_ref())?;
        let previous = current.map(|c| c.value);
        let (event_type, object, object_json) = match write.action {
            Action::Put(build) => {
                let object = Arc::new(build(revision));
                let json = to_json(&object);
                local.insert(write.key.clone(), Some(Stored { revision, value: object.clone(), json: json.clone() }));
                (if previous.is_some() { EventType::Modified } else { EventType::Added }, object, json)
            }
            Action::Delete(build) => {
                if previous.is_none() {
                    return Err(StoreError::NotFound(write.key));
                }
                local.insert(write.key.clone(), None);
                let object = Arc::new(build(revision));
                let json = to_json(&object);
                (EventType::Deleted, object, json)
            }
        };
        events.push(Event { revision, key: write.key, event_type, object, object_json, previous });
    }
    overlay.extend(local);
    Ok((revision, events))
}

fn to_json(value: &Value) -> bytes::Bytes {
    serde_json::to_vec(value).expect("a JSON value always serializes").into()
}

fn check(key: &str, precondition: Precondition, current: Option<&Stored>) -> Result<(), StoreError> {
    match (precondition, current) {
        (Precondition::Absent, Some(_)) => Err(StoreError::AlreadyExists(key.to_string())),
        (Precondition::Exists | Precondition::AtRevision(_), None) => Err(StoreError::NotFound(key.to_string())),
        (Precondition::AtRevision(expected), Some(c)) if c.revision != expected => {
            Err(StoreError::Conflict { key: key.to_string(), expected, actual: c.revision })
        }
        _ => Ok(()),
    }
}

fn persist<'a>(
    connection: &mut Connection,
    revision: Revision,
    staged: impl Iterator<Item = &'a (Revision, Vec<Event>)>,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut put = transaction
            .prepare_cached("INSERT INTO objects (key, revision, value) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET revision = excluded.revision, value = excluded.value")?;
        let mut delete = transaction.prepare_cached("DELETE FROM objects WHERE key = ?1")?;
        for (batch_revision, events) in staged {
            for event in events {
                match event.event_type {
                    EventType::Deleted => {
                        delete.execute(params![event.key])?;
                    }
                    _ => {
                        put.execute(params![event.key, *batch_revision as i64, &event.object_json[..]])?;
                    }
                }
            }
        }
        transaction
            .prepare_cached("INSERT INTO meta (name, value) VALUES ('revision', ?1) ON CONFLICT(name) DO UPDATE SET value = excluded.value")?
            .execute(params![revision as i64])?;
    }
    transaction.commit()
}
