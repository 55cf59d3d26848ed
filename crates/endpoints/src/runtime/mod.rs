//! The machinery the three controllers share: caches filled by watches, work queues keyed
//! by `namespace/name`, the write tracker, and EndpointSlice writes.

pub mod cache;
pub mod queue;
pub mod slice_writes;
pub mod tracker;

use std::future::Future;
use std::sync::Arc;

use crate::error::SyncError;
use crate::service::ObjectKey;
use queue::WorkQueue;

/// A controller: brings the objects for one key in line with the caches. Level-triggered
/// and idempotent, so running it twice, or after any missed event, is harmless.
pub trait Reconciler: Send + Sync + 'static {
    const NAME: &'static str;
    fn sync(&self, key: &ObjectKey) -> impl Future<Output = Result<(), SyncError>> + Send;
}

/// One worker: takes keys from `queue` and syncs them until cancelled. A failed sync comes
/// back after a backoff. Cancelling mid-sync is safe: every write is re-derived from state
/// on the next start.
pub async fn work<R: Reconciler>(reconciler: Arc<R>, queue: Arc<WorkQueue<ObjectKey>>) {
    loop {
        let key = queue.next().await;
        let result = reconciler.sync(&key).await;
        match &result {
            Ok(()) => {}
            Err(error) if error.is_stale() => {
                tracing::debug!(controller = R::NAME, %key, %error, "retrying")
            }
            Err(error) => {
                tracing::warn!(controller = R::NAME, %key, %error, "sync failed; retrying")
            }
        }
        queue.done(key, result.is_ok());
    }
}
