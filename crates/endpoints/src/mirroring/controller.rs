//! The mirroring sync of one Endpoints object (same key as its Service): mirror it while it
//! should be mirrored, otherwise delete whatever was mirrored (once the server agrees its source
//! is gone when the caches miss it).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Api, Client};

use super::reconcile::{reconcile, should_mirror};
use crate::error::SyncError;
use crate::runtime::cache::Caches;
use crate::runtime::tracker::SliceTracker;
use crate::runtime::{on_server, slice_writes, KeySync};
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
        // Missing from a cache but not from the server (see `on_server`): nothing to delete yet.
        if source.is_none() && !slices.is_empty() && (endpoints.is_none() || service.is_none()) {
            let endpoints_there = endpoints.is_some() || on_server::<Endpoints>(&self.client, key).await?;
            if endpoints_there && (service.is_some() || on_server::<Service>(&self.client, key).await?) {
                return Ok(());
            }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use k8s_openapi::api::core::v1::{Endpoints, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::{DeleteParams, PostParams};
    use kube::Api;
    use serde_json::json;

    use super::MirroringController;
    use crate::runtime::cache::Caches;
    use crate::runtime::KeySync;
    use crate::service::ObjectKey;
    use crate::wellknown::{MANAGED_BY, MIRRORING_CONTROLLER, SERVICE_NAME};

    /// A mirrored slice whose Endpoints and Service are missing from the caches but not from the
    /// server stays (deleted at start-up, the Service's traffic would stop until mirrored
    /// again); once the server has no Endpoints either, it goes.
    #[tokio::test]
    async fn mirrored_slices_go_only_when_the_server_has_no_source() {
        let server = frontdoor_testkit::InProcessServer::start().await;
        let client = server.client();
        let params = PostParams::default();
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        let service = json!({"metadata": {"name": "external"}, "spec": {"ports": [{"port": 80}]}});
        services.create(&params, &serde_json::from_value(service).unwrap()).await.unwrap();
        let source = json!({
            "metadata": {"name": "external"},
            "subsets": [{"addresses": [{"ip": "10.1.2.3"}], "ports": [{"port": 80}]}],
        });
        endpoints.create(&params, &serde_json::from_value(source).unwrap()).await.unwrap();
        let mirrored = json!({
            "metadata": {"name": "external-mirrored", "labels": {MANAGED_BY: MIRRORING_CONTROLLER, SERVICE_NAME: "external"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.2.3"]}],
            "ports": [{"port": 80}],
        });
        let created = slices.create(&params, &serde_json::from_value(mirrored).unwrap()).await.unwrap();
        let controller = MirroringController::new(client.clone(), Caches::holding_only(&[], &[created]), 1000);
        let key = ObjectKey::new("default", "external");

        controller.sync(&key).await.unwrap();
        assert!(slices.get_opt("external-mirrored").await.unwrap().is_some(), "kept while the source exists");

        endpoints.delete("external", &DeleteParams::default()).await.unwrap();
        controller.sync(&key).await.unwrap();
        assert!(slices.get_opt("external-mirrored").await.unwrap().is_none(), "deleted with its source");
    }
}
