//! The committed state mirrored in memory: objects, the revision, the event window, subscribers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::{Revision, StoreConfig, StoreError, Stored, Watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed change to one key.
#[derive(Debug)]
pub struct Event {
    pub revision: Revision,
    pub key: String,
    pub event_type: EventType,
    /// The new object (for `Deleted`, the object as it was deleted).
    pub object: Arc<Value>,
    /// `object` serialized as JSON (made once, shared by every watcher).
    pub object_json: bytes::Bytes,
    /// The object before the change, if it existed: selector-filtered watches need it to tell
    /// "stopped matching" from "never matched".
    pub previous: Option<Arc<Value>>,
}

pub(crate) struct State {
    pub objects: BTreeMap<String, Stored>,
    pub revision: Revision,
    window: VecDeque<Arc<Event>>,
    /// Watches may resume from any revision >= this one.
    window_start: Revision,
    window_capacity: usize,
    sender: broadcast::Sender<Arc<Event>>,
}

impl State {
    pub fn new(objects: BTreeMap<String, Stored>, revision: Revision, config: &StoreConfig) -> State {
        let (sender, _) = broadcast::channel(config.watch_queue.max(16));
        State {
            objects,
            revision,
            window: VecDeque::new(),
            window_start: revision,
            window_capacity: config.event_window.max(1),
            sender,
        }
    }

    pub fn watch_from(&self, revision: Revision) -> Result<Watch, StoreError> {
        if revision < self.window_start {
            return Err(StoreError::Expired { requested: revision, oldest: self.window_start });
        }
        let skip = self.window.partition_point(|e| e.revision <= revision);
        let backlog = self.window.iter().skip(skip).cloned().collect();
        Ok(Watch { backlog, live: self.sender.subscribe() })
    }

    /// Makes committed events visible: objects, revision, window, subscribers.
    pub fn publish(&mut self, revision: Revision, events: Vec<Event>) {
        self.revision = revision;
        for event in events {
            match event.event_type {
                EventType::Deleted => {
                    self.objects.remove(&event.key);
                }
                _ => {
                    let stored = Stored {
                        revision: event.revision,
                        value: event.object.clone(),
                        json: event.object_json.clone(),
                    };
                    self.objects.insert(event.key.clone(), stored);
                }
            }
            let event = Arc::new(event);
            if self.window.len() == self.window_capacity {
                if let Some(old) = self.window.pop_front() {
                    self.window_start = old.revision;
                }
            }
            self.window.push_back(event.clone());
            // No receivers is fine: nobody is watching.
            let _ = self.sender.send(event);
        }
    }
}
