//! The EndpointSlice controller's sync of one Service: read the Service, its pods and its
//! slices from the caches, reconcile, write the difference.

use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, Client};

use super::reconcile::reconcile;
use crate::error::SyncError;
use crate::runtime::cache::Caches;
use crate::runtime::tracker::SliceTracker;
use crate::runtime::trigger_time::TriggerTimes;
use crate::runtime::{slice_writes, KeySync};
use crate::service::{self, ObjectKey};
use crate::wellknown::{LAST_CHANGE_TRIGGER_TIME, MANAGED_BY, SERVICE_NAME, SLICE_CONTROLLER};

pub struct EndpointSliceController {
    client: Client,
    caches: Caches,
    tracker: SliceTracker,
    triggers: TriggerTimes,
    max_per_slice: usize,
}

impl EndpointSliceController {
    pub fn new(client: Client, caches: Caches, max_per_slice: usize) -> EndpointSliceController {
        EndpointSliceController {
            client,
            caches,
            tracker: SliceTracker::default(),
            triggers: TriggerTimes::default(),
            max_per_slice,
        }
    }

    pub fn tracker(&self) -> &SliceTracker {
        &self.tracker
    }

    /// The Service a slice belongs to, if this controller manages it.
    pub fn owner_of(slice: &EndpointSlice) -> Option<ObjectKey> {
        let labels = slice.metadata.labels.as_ref()?;
        if labels.get(MANAGED_BY).map(String::as_str) != Some(SLICE_CONTROLLER) {
            return None;
        }
        let service = labels.get(SERVICE_NAME).filter(|s| !s.is_empty())?;
        Some(ObjectKey::new(slice.metadata.namespace.clone().unwrap_or_default(), service.clone()))
    }
}

impl KeySync for EndpointSliceController {
    async fn sync(&self, key: &ObjectKey) -> Result<(), SyncError> {
        let Some(service) = self.caches.service(key) else {
            // The garbage collector deletes the slices with their owner.
            self.tracker.forget(key);
            self.triggers.forget(key);
            return Ok(());
        };
        // ExternalName Services get no endpoints; selector-less ones get theirs out of band.
        if service::is_external_name(&service) {
            return Ok(());
        }
        let Some(selector) = service::selector(&service) else {
            return Ok(());
        };

        let pods = self.caches.pods_selected(&key.namespace, selector);
        let slices = self.caches.slices_of(key, SLICE_CONTROLLER);
        let slices: Vec<&EndpointSlice> = slices.iter().map(Arc::as_ref).collect();
        if self.tracker.is_stale(key, &slices) {
            return Err(SyncError::StaleCache(key.clone()));
        }
        let pods: Vec<_> = pods.iter().map(Arc::as_ref).collect();
        let mut changes = reconcile(&service, &pods, &slices, self.max_per_slice);
        let trigger = self.triggers.compute(key, &service, &pods);
        if changes.is_empty() {
            return Ok(());
        }
        if let Some(time) = trigger {
            for slice in changes.create.iter_mut().chain(changes.update.iter_mut()) {
                slice
                    .metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(LAST_CHANGE_TRIGGER_TIME.to_string(), time.clone());
            }
        }
        tracing::debug!(service = %key, create = changes.create.len(), update = changes.update.len(), delete = changes.delete.len(), "writing EndpointSlices");
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &key.namespace);
        slice_writes::apply(&api, &self.tracker, key, changes).await
    }
}
