//! What the three controllers share beyond the common runtime (`frontdoor-informers`): read
//! access to the caches, the write tracker, and EndpointSlice writes.

pub mod cache;
pub mod slice_writes;
pub mod tracker;
pub mod trigger_time;

use std::future::Future;
use std::sync::Arc;

use frontdoor_informers::{Action, Reconciler};

use crate::error::SyncError;
use crate::service::ObjectKey;

/// One of the three controllers: brings the objects of one key in line with the caches.
pub trait KeySync: Send + Sync + 'static {
    fn sync(&self, key: &ObjectKey) -> impl Future<Output = Result<(), SyncError>> + Send;
}

/// A [`KeySync`] as the shared runner's [`Reconciler`]: a lagging cache or a lost update race
/// is an expected retry.
pub struct Reconciled<C>(pub Arc<C>);

impl<C: KeySync> Reconciler for Reconciled<C> {
    type Key = ObjectKey;
    type Error = SyncError;

    async fn reconcile(&self, key: &ObjectKey) -> Result<Action, SyncError> {
        self.0.sync(key).await.map(|()| Action::Done)
    }

    fn is_expected(error: &SyncError) -> bool {
        error.is_stale()
    }
}
