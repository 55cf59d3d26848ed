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

/// Whether the server has the `K` named by `key`. A controller asks before it deletes because
/// a cache misses an object: the informers list on their own, so at start-up one cache may hold
/// an object before another holds the one it depends on, and a delete cannot be taken back. An
/// object the server still has reaches its cache as an event that syncs the key again.
pub async fn on_server<K>(client: &kube::Client, key: &ObjectKey) -> Result<bool, SyncError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: kube::Api<K> = kube::Api::namespaced(client.clone(), &key.namespace);
    match api.get_opt(&key.name).await {
        Ok(found) => Ok(found.is_some()),
        Err(error) => Err(SyncError::api("get", <K as k8s_openapi::Resource>::KIND, key.to_string(), error)),
    }
}

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
