//! The one keyed controller runner: level-triggered reconciles of keys from a [`WorkQueue`],
//! at most one reconcile per key at a time, per-key exponential backoff after a failure,
//! requeue-after on request, and workers that start only once the caches they read have
//! synced.
//!
//! A reconciler reads only caches and writes the difference, so running it again for the same
//! key (a duplicate trigger, a retry, a requeue) is always safe. On shutdown no new reconcile
//! starts and those in flight finish.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::informer::{Change, Subscription};
use crate::queue::{Backoff, Done, WorkQueue};
use crate::{InformerFactory, Shutdown};

/// What a successful reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes.
    Done,
    /// Look again after this long even if nothing changes (a deadline, a delayed step).
    RequeueAfter(Duration),
}

/// A controller: brings the world in line with the caches for one key.
pub trait Reconciler: Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;
    type Error: Display + Send + 'static;

    fn reconcile(&self, key: &Self::Key) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// A failure that is part of normal operation (a lagging cache, a lost update race): the
    /// retry is logged quietly.
    fn is_expected(_error: &Self::Error) -> bool {
        false
    }
}

/// How a controller runs.
#[derive(Clone, Copy, Debug)]
pub struct ControllerConfig {
    /// Upstream's controller name; labels the queue's metrics (`endpoint_slice`, `replicaset`).
    pub name: &'static str,
    /// Keys reconciled at once (upstream's `--concurrent-*-syncs`).
    pub workers: usize,
    pub backoff: Backoff,
}

/// A reconciler and its queue. Feed the queue from informers' changes, then [`Controller::run`].
pub struct Controller<R: Reconciler> {
    name: &'static str,
    reconciler: Arc<R>,
    queue: Arc<WorkQueue<R::Key>>,
    workers: usize,
}

impl<R: Reconciler> Controller<R> {
    pub fn new(factory: &InformerFactory, reconciler: Arc<R>, config: ControllerConfig) -> Controller<R> {
        let queue = WorkQueue::new(config.name, config.backoff, factory.queue_metrics());
        Controller { name: config.name, reconciler, queue, workers: config.workers.max(1) }
    }

    pub fn queue(&self) -> Arc<WorkQueue<R::Key>> {
        self.queue.clone()
    }

    /// Reconciles keys until `shutdown`, once `caches_synced` has resolved.
    pub async fn run(self, caches_synced: impl Future<Output = ()>, shutdown: Shutdown) {
        tokio::select! {
            () = caches_synced => {}
            () = shutdown.triggered() => return,
        }
        tracing::debug!(controller = self.name, "caches synced; starting workers");
        let mut workers = JoinSet::new();
        for _ in 0..self.workers {
            workers.spawn(work(self.name, self.reconciler.clone(), self.queue.clone(), shutdown.clone()));
        }
        while workers.join_next().await.is_some() {}
        tracing::debug!(controller = self.name, "stopped");
    }
}

async fn work<R: Reconciler>(
    name: &'static str,
    reconciler: Arc<R>,
    queue: Arc<WorkQueue<R::Key>>,
    shutdown: Shutdown,
) {
    loop {
        let key = tokio::select! {
            biased;
            () = shutdown.triggered() => return,
            key = queue.next() => key,
        };
        let done = match reconciler.reconcile(&key).await {
            Ok(Action::Done) => Done::Succeeded { requeue_after: None },
            Ok(Action::RequeueAfter(delay)) => Done::Succeeded { requeue_after: Some(delay) },
            Err(error) => {
                if R::is_expected(&error) {
                    tracing::debug!(controller = name, %key, %error, "retrying");
                } else {
                    tracing::warn!(controller = name, %key, %error, "sync failed; retrying");
                }
                Done::Failed
            }
        };
        queue.done(key, done);
    }
}

/// Calls `handler` with each change of `subscription` until `shutdown` (or the informer stops).
pub fn on_change<K: Send + Sync + 'static>(
    mut subscription: Subscription<K>,
    shutdown: &Shutdown,
    mut handler: impl FnMut(Change<K>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let stop = shutdown.triggered();
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                change = subscription.recv() => match change {
                    Some(change) => handler(change),
                    None => return,
                },
            }
        }
    })
}

/// Feeds every change of `K` (cluster-wide) into a model many informers share: `apply` gets each
/// new version, `remove` the namespace and name of a deleted object; then `changed` is notified,
/// so one task can rebuild from the model once a burst of changes is in (cluster DNS's index,
/// the Ingress route table).
/// (What `apply` and `remove` return, such as a builder's "changed" flag, is not used.)
pub fn feed<K, M, A, R>(
    factory: &crate::InformerFactory,
    model: &std::sync::Arc<std::sync::Mutex<M>>,
    changed: &std::sync::Arc<tokio::sync::Notify>,
    apply: impl Fn(&mut M, &K) -> A + Send + 'static,
    remove: impl Fn(&mut M, &str, &str) -> R + Send + 'static,
) where
    K: crate::Watched + kube::Resource<DynamicType = ()>,
    M: Send + 'static,
{
    let (model, changed) = (model.clone(), changed.clone());
    on_change(factory.all::<K>().subscribe(), &factory.shutdown(), move |change| {
        let mut model = model.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match change {
            Change::Applied { new, .. } => {
                apply(&mut model, &new);
            }
            Change::Deleted(old) => {
                let meta = old.meta();
                remove(
                    &mut model,
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name.as_deref().unwrap_or_default(),
                );
            }
        }
        changed.notify_one();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Fails each key the first `fail` times, records every call, never runs one key twice at once.
    struct Recording {
        calls: Mutex<Vec<String>>,
        active: Mutex<std::collections::HashSet<String>>,
        fail: usize,
    }

    impl Reconciler for Recording {
        type Key = String;
        type Error = String;

        async fn reconcile(&self, key: &String) -> Result<Action, String> {
            assert!(self.active.lock().unwrap().insert(key.clone()), "{key} reconciled twice at once");
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.active.lock().unwrap().remove(key);
            let mut calls = self.calls.lock().unwrap();
            calls.push(key.clone());
            let so_far = calls.iter().filter(|k| *k == key).count();
            if so_far <= self.fail {
                Err(format!("failure {so_far}"))
            } else {
                Ok(Action::Done)
            }
        }
    }

    #[tokio::test]
    async fn keys_wait_for_the_caches_are_retried_and_stop_on_shutdown() {
        let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let factory = InformerFactory::new(client, frontdoor_metrics::Registry::default(), shutdown.clone());
        let reconciler = Arc::new(Recording { calls: Mutex::default(), active: Mutex::default(), fail: 2 });
        let config = ControllerConfig {
            name: "test",
            workers: 4,
            backoff: Backoff { min: Duration::from_millis(1), max: Duration::from_millis(4) },
        };
        let controller = Controller::new(&factory, reconciler.clone(), config);
        let queue = controller.queue();
        let (synced, caches_synced) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(controller.run(
            async move {
                let _ = caches_synced.await;
            },
            shutdown,
        ));
        for key in ["a", "b", "a", "c"] {
            queue.add(key.to_string());
        }
        tokio::task::yield_now().await;
        assert!(reconciler.calls.lock().unwrap().is_empty(), "nothing before the caches synced");
        synced.send(()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while reconciler.calls.lock().unwrap().len() < 9 {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", reconciler.calls.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap();
        let mut calls = reconciler.calls.lock().unwrap().clone();
        calls.sort();
        assert_eq!(calls, ["a", "a", "a", "b", "b", "b", "c", "c", "c"], "two failures and one success each");
    }
}
