//! Upstream's `ClaimObjects` with its writes: a controller keeps the candidates it controls
//! that match, adopts matching orphans (once it has read itself fresh from the API and found
//! itself unchanged and not being deleted, upstream's `RecheckDeletionTimestamp`) and releases
//! those it controls that stopped matching. The decision for each object is
//! [`crate::ownership::claim`].

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::ownership::{adopt_patch, claim, release_patch, Claim, Owner};
use crate::runner::SyncError;
use crate::writes;

/// The controller doing the claiming: where to read it fresh, and what it is.
pub struct Claimant<O> {
    pub api: Api<O>,
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub deleting: bool,
    /// Its reference, as adopted objects get it.
    pub reference: OwnerReference,
}

impl<O: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>> Claimant<O> {
    /// `owner` (a namespaced object), referred to as `api_version` `kind`.
    pub fn of(client: &kube::Client, owner: &O, api_version: &str, kind: &str) -> Claimant<O> {
        let namespace = owner.namespace().unwrap_or_default();
        Claimant {
            api: Api::namespaced(client.clone(), &namespace),
            name: owner.name_any(),
            uid: owner.uid().unwrap_or_default(),
            deleting: owner.meta().deletion_timestamp.is_some(),
            reference: crate::pods::controller_ref(api_version, kind, owner.meta()),
            namespace,
        }
    }
}

/// The candidates (each with whether it matches the claimant's selector) that the claimant
/// controls after adopting and releasing.
pub async fn claim_all<O, K>(
    claimant: &Claimant<O>,
    api: &Api<K>,
    candidates: impl IntoIterator<Item = (Arc<K>, bool)>,
) -> Result<Vec<Arc<K>>, SyncError>
where
    O: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let owner = Owner { uid: &claimant.uid, namespace: &claimant.namespace, deleting: claimant.deleting };
    let mut owned = Vec::new();
    let mut adoption_checked = false;
    for (object, matches) in candidates {
        let result = match claim(&owner, object.meta(), matches) {
            Claim::Owned => {
                owned.push(object);
                continue;
            }
            Claim::Ignore => continue,
            Claim::Release => {
                writes::merge_patch(api, &object.name_any(), &release_patch(object.meta(), &claimant.uid))
                    .await
                    .map(|_| ())
            }
            Claim::Adopt => {
                if !adoption_checked {
                    recheck(claimant).await?;
                    adoption_checked = true;
                }
                writes::merge_patch(api, &object.name_any(), &adopt_patch(object.meta(), &claimant.reference))
                    .await
                    .map(|adopted| owned.push(Arc::new(adopted)))
            }
        };
        match result {
            Ok(()) => {}
            // Gone meanwhile: nothing to claim.
            Err(e) if writes::is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(owned)
}

/// Upstream's `RecheckDeletionTimestamp`: adopt only if the claimant, read fresh from the API,
/// is still itself and not being deleted.
async fn recheck<O>(claimant: &Claimant<O>) -> Result<(), SyncError>
where
    O: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let fresh = claimant.api.get(&claimant.name).await?;
    let kind = O::kind(&());
    if fresh.meta().uid.as_deref() != Some(claimant.uid.as_str()) {
        return Err(SyncError::Failed(format!(
            "original {kind} {}/{} is gone: got uid {:?}, wanted {}",
            claimant.namespace,
            claimant.name,
            fresh.meta().uid,
            claimant.uid
        )));
    }
    if fresh.meta().deletion_timestamp.is_some() {
        return Err(SyncError::Failed(format!(
            "{kind} {}/{} has just been deleted",
            claimant.namespace, claimant.name
        )));
    }
    Ok(())
}
