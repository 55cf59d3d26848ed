//! How the workload controllers run on the shared runtime: each is a `frontdoor-informers`
//! [`Controller`] keyed by its object's reference, whose reconcile looks the object up in the
//! cache and, if it is still there, runs the controller's sync on it (a sync of an object that
//! is gone has nothing to do: its dependents go by garbage collection).
//!
//! A controller's sync reads only caches and is idempotent, so running it again for the same
//! key (a duplicate trigger, a retry, a periodic requeue) is always safe.

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use frontdoor_informers::{
    Action, Backoff, Controller, ControllerConfig, InformerFactory, Reconciler, Subscription, Watched,
};

/// Why a sync failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Failed(String),
}

/// A sync's verdict: done until something changes, or look again after a while.
pub type SyncResult = Result<Option<Duration>, SyncError>;

/// Retries of a failing key: 50 ms doubling to a minute.
const RETRY: Backoff = Backoff { min: Duration::from_millis(50), max: Duration::from_secs(60) };

/// Objects synced at once per controller (upstream's `--concurrent-*-syncs` default).
const WORKERS: usize = 5;

/// A sync function over the objects of one cache.
struct ObjectSync<K: Watched, F> {
    store: Store<K>,
    sync: F,
}

impl<K, F, Fut> Reconciler for ObjectSync<K, F>
where
    K: Watched,
    F: Fn(Arc<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SyncResult> + Send + 'static,
{
    type Key = ObjectRef<K>;
    type Error = SyncError;

    async fn reconcile(&self, key: &ObjectRef<K>) -> Result<Action, SyncError> {
        let Some(object) = self.store.get(key) else { return Ok(Action::Done) };
        Ok(match (self.sync)(object).await? {
            None => Action::Done,
            Some(after) => Action::RequeueAfter(after),
        })
    }
}

/// Runs `sync` for every key `triggers` yields, once `caches_synced` resolved and `store` holds a
/// complete list, until the factory's shutdown (syncs in flight then finish). `name` is
/// upstream's controller name (`replicaset`, `deployment`, ...), which labels the queue metrics.
pub async fn run_controller<K, F, Fut>(
    factory: &InformerFactory,
    name: &'static str,
    store: Store<K>,
    triggers: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    caches_synced: impl Future<Output = ()>,
    sync: F,
) where
    K: Watched,
    F: Fn(Arc<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SyncResult> + Send + 'static,
{
    let config = ControllerConfig { name, workers: WORKERS, backoff: RETRY };
    let controller = Controller::new(factory, Arc::new(ObjectSync { store, sync }), config);
    let queue = controller.queue();
    let shutdown = factory.shutdown();
    tokio::spawn(triggers.take_until(shutdown.triggered()).for_each(move |key| {
        queue.add(key);
        async {}
    }));
    controller.run(caches_synced, shutdown).await;
}

/// Turns a subscription's changes into keys with `map`, which may yield any number of keys.
pub fn keys<C, K>(
    subscription: Subscription<C>,
    map: impl FnMut(frontdoor_informers::Change<C>) -> Vec<ObjectRef<K>> + Send + 'static,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
where
    C: Send + Sync + 'static,
    K: kube::Resource<DynamicType = ()> + 'static,
{
    let mut map = map;
    subscription.into_stream().flat_map(move |change| futures::stream::iter(map(change)))
}
