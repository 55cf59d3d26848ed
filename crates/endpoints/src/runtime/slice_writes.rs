//! Carries out [`SliceChanges`] through the API (creates, then updates, then deletes, as
//! upstream's `finalize`), recording each write in the controller's [`SliceTracker`].

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::Api;

use super::tracker::SliceTracker;
use crate::error::{is_namespace_terminating, is_not_found, SyncError};
use crate::service::ObjectKey;
use crate::slices::{self, SliceChanges};

const KIND: &str = "EndpointSlice";

/// Writes `changes` for `owner`'s slices. A create refused because the namespace is being
/// deleted ends the sync quietly (nothing more can be created there).
pub async fn apply(
    api: &Api<EndpointSlice>,
    tracker: &SliceTracker,
    owner: &ObjectKey,
    changes: SliceChanges,
) -> Result<(), SyncError> {
    let params = PostParams::default();
    for slice in &changes.create {
        match api.create(&params, slice).await {
            Ok(created) => tracker.wrote(owner, &created),
            Err(error) if is_namespace_terminating(&error) => return Ok(()),
            Err(error) => return Err(SyncError::api("create", KIND, format!("for {owner}"), error)),
        }
    }
    for slice in &changes.update {
        let name = slices::name(slice);
        match api.replace(name, &params, slice).await {
            Ok(updated) => tracker.wrote(owner, &updated),
            Err(error) => return Err(SyncError::api("update", KIND, format!("{}/{name}", owner.namespace), error)),
        }
    }
    for slice in &changes.delete {
        let name = slices::name(slice);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => tracker.deleted(owner, name),
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(SyncError::api("delete", KIND, format!("{}/{name}", owner.namespace), error)),
        }
    }
    Ok(())
}
