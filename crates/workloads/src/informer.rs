//! One watch per resource, shared by every controller that reads it: a kube-rs reflector
//! [`Store`] plus a fan-out of changes, each delivered only after the store holds it.
//!
//! Controllers read objects from the store and turn changes into work-queue keys; because a
//! change is published after the store applied it, a reconcile triggered by a change always sees
//! at least that change. After a re-list (the watch expired) every object is re-announced and
//! objects that vanished meanwhile are announced as deleted, so nothing is missed.

use futures::StreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;

/// A change to one object, published after the store applied it.
#[derive(Debug)]
pub enum Change<K> {
    /// Added (`old` is `None`) or modified.
    Applied { old: Option<Arc<K>>, new: Arc<K> },
    Deleted(Arc<K>),
}

/// A watched resource: its cache and the subscribers to its changes.
pub struct Informer<K: Resource<DynamicType = ()> + Clone + 'static> {
    api: Api<K>,
    writer: Writer<K>,
    subscribers: Vec<mpsc::UnboundedSender<Change<K>>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    pub fn new(api: Api<K>) -> Informer<K> {
        Informer { api, writer: Writer::default(), subscribers: Vec::new(), synced: tokio::sync::watch::channel(false).0 }
    }

    /// Resolves once the store holds a complete list. (Any number of tasks may wait on this;
    /// kube-rs's `Store::wait_until_ready` wakes only the last of several concurrent waiters.)
    pub fn synced(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.synced.subscribe();
        async move {
            let _ = receiver.wait_for(|synced| *synced).await;
        }
    }

    /// The cache (complete once [`Informer::synced`] resolved).
    pub fn store(&self) -> Store<K> {
        self.writer.as_reader()
    }

    /// A receiver of every change from now on (subscribe before [`Informer::run`]).
    pub fn subscribe(&mut self) -> mpsc::UnboundedReceiver<Change<K>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.subscribers.push(sender);
        receiver
    }

    /// Watches until `shutdown` resolves. Watch errors are retried with backoff (the watcher
    /// re-lists when its resourceVersion expired).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let reader = self.writer.as_reader();
        let stream = watcher(self.api.clone(), watcher::Config::default()).default_backoff().take_until(shutdown);
        let mut stream = std::pin::pin!(stream);
        let mut relisted: Vec<K> = Vec::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(resource = %K::plural(&()), %error, "watch failed; retrying");
                    continue;
                }
            };
            match &event {
                watcher::Event::Apply(object) => {
                    let key = ObjectRef::from_obj(object);
                    let old = reader.get(&key);
                    self.writer.apply_watcher_event(&event);
                    // The store's copy, shared with every subscriber (no copy of the object each).
                    let new = reader.get(&key).unwrap_or_else(|| Arc::new(object.clone()));
                    self.publish(|| Change::Applied { old: old.clone(), new: new.clone() });
                }
                watcher::Event::Delete(object) => {
                    self.writer.apply_watcher_event(&event);
                    let gone = Arc::new(object.clone());
                    self.publish(|| Change::Deleted(gone.clone()));
                }
                watcher::Event::Init => {
                    relisted.clear();
                    self.writer.apply_watcher_event(&event);
                }
                watcher::Event::InitApply(object) => {
                    relisted.push(object.clone());
                    self.writer.apply_watcher_event(&event);
                }
                watcher::Event::InitDone => {
                    let mut before: HashMap<ObjectRef<K>, Arc<K>> = reader.state().into_iter().map(|o| (ObjectRef::from_obj(&*o), o)).collect();
                    self.writer.apply_watcher_event(&event);
                    for object in relisted.drain(..) {
                        let old = before.remove(&ObjectRef::from_obj(&object));
                        let new = Arc::new(object);
                        self.publish(|| Change::Applied { old: old.clone(), new: new.clone() });
                    }
                    for (_, gone) in before {
                        self.publish(|| Change::Deleted(gone.clone()));
                    }
                    self.synced.send_replace(true);
                }
            }
        }
    }

    fn publish(&mut self, change: impl Fn() -> Change<K>) {
        self.subscribers.retain(|subscriber| subscriber.send(change()).is_ok());
    }
}
