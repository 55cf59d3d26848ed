//! The work queue every controller runs on: kube-rs's `applier` over a cache, fed with object
//! keys, one sync at a time per key, failed syncs retried with per-key exponential backoff.
//!
//! A controller's sync function reads only caches and is idempotent, so running it again for the
//! same key (a duplicate trigger, a retry, a periodic requeue) is always safe.

use futures::{Stream, StreamExt};
use kube::runtime::controller::{Action, ReconcileRequest};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{applier, Config};
use kube::Resource;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// The delay before retry number `attempt` (1-based) of a failing key.
pub fn retry_delay(attempt: u32) -> Duration {
    FIRST_RETRY.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20))).min(LAST_RETRY)
}

struct Retries<K: Resource<DynamicType = ()>> {
    attempts: Mutex<HashMap<ObjectRef<K>, u32>>,
}

/// Runs `sync` for every key `triggers` yields, once `caches_synced` resolved and `store` holds a
/// complete list, until `shutdown` resolves (syncs in flight then finish).
pub async fn run_controller<K, F, Fut>(
    name: &'static str,
    store: Store<K>,
    triggers: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    caches_synced: impl Future<Output = ()>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    sync: F,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(Arc<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SyncResult> + Send + 'static,
{
    caches_synced.await;
    tracing::debug!(controller = name, "caches synced; starting");
    let retries = Arc::new(Retries::<K> { attempts: Mutex::new(HashMap::new()) });
    let queue = triggers.map(|key| Ok::<_, Infallible>(ReconcileRequest::from(key))).take_until(shutdown);
    let sync = Arc::new(sync);
    let reconcile = move |object: Arc<K>, retries: Arc<Retries<K>>| {
        let sync = sync.clone();
        Box::pin(async move {
            let key = ObjectRef::from_obj(&*object);
            let verdict = sync(object).await;
            if verdict.is_ok() {
                retries.attempts.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            }
            verdict.map(|after| after.map(Action::requeue).unwrap_or_else(Action::await_change))
        })
    };
    let error_policy = move |object: Arc<K>, error: &SyncError, retries: Arc<Retries<K>>| {
        let key = ObjectRef::from_obj(&*object);
        let mut attempts = retries.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let attempt = attempts.entry(key.clone()).or_default();
        *attempt += 1;
        tracing::info!(controller = name, object = %key, attempt = *attempt, %error, "sync failed; retrying");
        Action::requeue(retry_delay(*attempt))
    };
    applier(reconcile, error_policy, retries, store, queue, Config::default())
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                match error {
                    kube::runtime::controller::Error::ObjectNotFound(_) => {}
                    error => tracing::debug!(controller = name, %error, "reconcile outcome"),
                }
            }
        })
        .await;
    tracing::debug!(controller = name, "stopped");
}

/// Turns a stream of changes into keys with `map`, which may yield any number of keys.
pub fn keys<C, K>(
    receiver: tokio::sync::mpsc::UnboundedReceiver<C>,
    map: impl FnMut(C) -> Vec<ObjectRef<K>> + Send + 'static,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
where
    C: Send + 'static,
    K: Resource<DynamicType = ()> + 'static,
{
    let mut map = map;
    tokio_stream_from(receiver).flat_map(move |change| futures::stream::iter(map(change)))
}

fn tokio_stream_from<C: Send + 'static>(mut receiver: tokio::sync::mpsc::UnboundedReceiver<C>) -> impl Stream<Item = C> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_minute() {
        assert_eq!(retry_delay(1), Duration::from_millis(50));
        assert_eq!(retry_delay(2), Duration::from_millis(100));
        assert_eq!(retry_delay(5), Duration::from_millis(800));
        assert_eq!(retry_delay(40), Duration::from_secs(60));
    }
}
