//! One watched resource: a kube-rs reflector [`Store`] and a fan-out of its changes, each
//! published only after the store holds it.
//!
//! Because a change is published after the store applied it, work triggered by a change always
//! reads at least that change from the store. After a re-list (start-up, or a watch that fell
//! too far behind and got 410 Gone) every listed object is announced again, and every object
//! that vanished while the watch was down is announced as [`Change::Deleted`]: a subscriber
//! never misses a deletion. A subscriber that joins late first receives every object already
//! in the store as added, as client-go's `AddEventHandler` does.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::decode::GoDecoded;
use crate::Shutdown;

/// What every informed resource type must be.
pub trait Watched: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}

impl<K> Watched for K where K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}

/// A change to one object, published after the store applied it.
#[derive(Debug)]
pub enum Change<K> {
    /// Added (`old` is `None`) or modified (`old` is what the store held before).
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    /// Deleted, or found gone by a re-list.
    Deleted(Arc<K>),
}

/// A subscriber's end: every change from its subscription on.
pub struct Subscription<K> {
    receiver: mpsc::UnboundedReceiver<Change<K>>,
}

impl<K: Send + Sync + 'static> Subscription<K> {
    /// The next change; `None` once the informer has stopped.
    pub async fn recv(&mut self) -> Option<Change<K>> {
        self.receiver.recv().await
    }

    pub fn into_stream(mut self) -> impl futures::Stream<Item = Change<K>> + Send + 'static {
        futures::stream::poll_fn(move |cx| self.receiver.poll_recv(cx))
    }
}

/// A handle on one shared informer; clones share it.
pub struct Informer<K: Watched> {
    shared: Arc<Shared<K>>,
}

impl<K: Watched> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer { shared: self.shared.clone() }
    }
}

struct Shared<K: Watched> {
    store: Store<K>,
    /// The store's writer and the subscribers, under one lock: a change is applied and
    /// published in one step, so a late subscriber's snapshot is exact.
    fanout: Mutex<Fanout<K>>,
    synced: watch::Sender<bool>,
}

struct Fanout<K: Watched> {
    writer: Writer<K>,
    subscribers: Vec<mpsc::UnboundedSender<Change<K>>>,
}

impl<K: Watched> Fanout<K> {
    fn publish(&mut self, change: impl Fn() -> Change<K>) {
        self.subscribers.retain(|subscriber| subscriber.send(change()).is_ok());
    }
}

impl<K: Watched> Informer<K> {
    /// Starts watching `api` with `config` until `shutdown`. Watch errors are logged and retried
    /// with backoff; an expired resourceVersion makes the watcher re-list.
    pub(crate) fn start(api: Api<GoDecoded<K>>, config: watcher::Config, shutdown: &Shutdown) -> Informer<K> {
        let writer = Writer::default();
        let shared = Arc::new(Shared {
            store: writer.as_reader(),
            fanout: Mutex::new(Fanout { writer, subscribers: Vec::new() }),
            synced: watch::channel(false).0,
        });
        tokio::spawn(watch_into(shared.clone(), api, config, shutdown.triggered()));
        Informer { shared }
    }

    /// The cache (complete once [`Informer::synced`] has resolved).
    pub fn store(&self) -> Store<K> {
        self.shared.store.clone()
    }

    /// Resolves once the store has held a complete list. Any number of tasks may wait on it.
    /// It never resolves if the informer stops first: wait on it together with a shutdown.
    pub fn synced(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.shared.synced.subscribe();
        async move {
            if receiver.wait_for(|synced| *synced).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Every change from now on; objects already in the store come first, as added.
    pub fn subscribe(&self) -> Subscription<K> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut fanout = self.shared.fanout.lock().unwrap_or_else(PoisonError::into_inner);
        for object in self.shared.store.state() {
            let _ = sender.send(Change::Applied { old: None, new: object });
        }
        fanout.subscribers.push(sender);
        Subscription { receiver }
    }
}

async fn watch_into<K: Watched>(
    shared: Arc<Shared<K>>,
    api: Api<GoDecoded<K>>,
    config: watcher::Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let reader = shared.store.clone();
    let stream = watcher(api, config).default_backoff().take_until(shutdown);
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => unwrap_decoded(event),
            Err(error) => {
                tracing::warn!(resource = %K::plural(&()), %error, "watch failed; retrying");
                continue;
            }
        };
        let mut fanout = shared.fanout.lock().unwrap_or_else(PoisonError::into_inner);
        match &event {
            watcher::Event::Apply(object) => {
                let key = ObjectRef::from_obj(object);
                let old = reader.get(&key);
                fanout.writer.apply_watcher_event(&event);
                // The store's copy, shared with every subscriber.
                let new = reader.get(&key).unwrap_or_else(|| Arc::new(object.clone()));
                fanout.publish(|| Change::Applied { old: old.clone(), new: new.clone() });
            }
            watcher::Event::Delete(object) => {
                fanout.writer.apply_watcher_event(&event);
                let gone = Arc::new(object.clone());
                fanout.publish(|| Change::Deleted(gone.clone()));
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => fanout.writer.apply_watcher_event(&event),
            watcher::Event::InitDone => {
                let mut before: HashMap<ObjectRef<K>, Arc<K>> =
                    reader.state().into_iter().map(|o| (ObjectRef::from_obj(&*o), o)).collect();
                fanout.writer.apply_watcher_event(&event);
                for new in reader.state() {
                    let old = before.remove(&ObjectRef::from_obj(&*new));
                    fanout.publish(|| Change::Applied { old: old.clone(), new: new.clone() });
                }
                for (_, gone) in before {
                    fanout.publish(|| Change::Deleted(gone.clone()));
                }
                drop(fanout);
                shared.synced.send_replace(true);
            }
        }
    }
    tracing::debug!(resource = %K::plural(&()), "informer stopped");
}

/// The event of the object inside its decoding wrapper.
fn unwrap_decoded<K>(event: watcher::Event<GoDecoded<K>>) -> watcher::Event<K> {
    match event {
        watcher::Event::Apply(GoDecoded(object)) => watcher::Event::Apply(object),
        watcher::Event::Delete(GoDecoded(object)) => watcher::Event::Delete(object),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(GoDecoded(object)) => watcher::Event::InitApply(object),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}
