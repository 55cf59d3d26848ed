//! The mirroring sync of one Endpoints object (same key as its Service): mirror it while it
//! should be mirrored, otherwise delete whatever was mirrored.

use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, Client};

use super::reconcile::{reconcile, should_mirror};
use crate::error::SyncError;
use crate::runtime::cache::Caches;
use crate::runtime::tracker::SliceTracker;
use crate::runtime::{slice_writes, KeySync};
use crate::service::{self, ObjectKey};
use crate::slices::SliceChanges;
use crate::wellknown::{MANAGED_BY, MIRRORING_CONTROLLER, SERVICE_NAME};

pub struct MirroringController {
    client: Client,
    caches: Caches,
    tracker: SliceTracker,
    max_per_subset: usize,
}

impl MirroringController {
    pub fn new(client: Client, caches: Caches, max_per_subset: usize) -> MirroringController {
        MirroringController { client, caches, tracker: SliceTracker::default(), max_per_subset }
    }

    pub fn tracker(&self) -> &SliceTracker {
        &self.tracker
    }

    /// The Endpoints a slice was mirrored from, if this controller manages it.
    pub fn owner_of(slice: &EndpointSlice) -> Option<ObjectKey> {
        let labels = slice.metadata.labels.as_ref()?;
        if labels.get(MANAGED_BY).map(String::as_str) != Some(MIRRORING_CONTROLLER) {
            return None;
        }
        let name = labels.get(SERVICE_NAME).filter(|s| !s.is_empty())?;
        Some(ObjectKey::new(slice.metadata.namespace.clone().unwrap_or_default(), name.clone()))
    }
}

impl KeySync for MirroringController {
    async fn sync(&self, key: &ObjectKey) -> Result<(), SyncError> {
        let endpoints = self.caches.endpoints(key);
        let service = self.caches.service(key);
        let source = match (&endpoints, &service) {
            (Some(endpoints), Some(service)) if should_mirror(endpoints) && service::selector(service).is_none() => {
                Some(endpoints)
            }
            _ => None,
        };
        let slices = self.caches.slices_of(key, MIRRORING_CONTROLLER);
        let slices: Vec<&EndpointSlice> = slices.iter().map(Arc::as_ref).collect();
        if self.tracker.is_stale(key, &slices) {
            return Err(SyncError::StaleCache(key.clone()));
        }
        let changes = match source {
            Some(endpoints) => reconcile(endpoints, &slices, self.max_per_subset),
            None => SliceChanges { delete: slices.iter().map(|s| (*s).clone()).collect(), ..Default::default() },
        };
        if changes.is_empty() {
            if source.is_none() {
                self.tracker.forget(key);
            }
            return Ok(());
        }
        tracing::debug!(endpoints = %key, create = changes.create.len(), update = changes.update.len(), delete = changes.delete.len(), "mirroring");
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.namespace);
        slice_writes::apply(&api, &self.tracker, key, changes).await
    }
}
