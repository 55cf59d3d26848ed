//! The Endpoints controller's sync of one Service: write its Endpoints when they differ
//! from what its pods say, delete them when the Service is gone.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Endpoints;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

use super::desired::plan;
use crate::error::{is_namespace_terminating, is_not_found, SyncError};
use crate::runtime::cache::Caches;
use crate::runtime::KeySync;
use crate::service::{self, ObjectKey};
use crate::wellknown::LEADER_ELECTION;

const KIND: &str = "Endpoints";

pub struct EndpointsController {
    client: Client,
    caches: Caches,
}

impl EndpointsController {
    pub fn new(client: Client, caches: Caches) -> EndpointsController {
        EndpointsController { client, caches }
    }
}

impl KeySync for EndpointsController {
    async fn sync(&self, key: &ObjectKey) -> Result<(), SyncError> {
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), &key.namespace);
        let current = self.caches.endpoints(key);
        let Some(service) = self.caches.service(key) else {
            // Endpoints have no owner reference: remove them with their Service (leader
            // election locks excepted, which live in Endpoints without a Service).
            let lock = current
                .as_ref()
                .is_some_and(|e| e.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(LEADER_ELECTION)));
            if current.is_none() || lock {
                return Ok(());
            }
            return match api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => Ok(()),
                Err(error) if is_not_found(&error) => Ok(()),
                Err(error) => Err(SyncError::api("delete", KIND, key.to_string(), error)),
            };
        };
        if service::is_external_name(&service) {
            return Ok(());
        }
        let Some(selector) = service::selector(&service) else {
            return Ok(());
        };

        let pods = self.caches.pods_selected(&key.namespace, selector);
        let pods: Vec<_> = pods.iter().map(Arc::as_ref).collect();
        let Some(next) = plan(&service, &pods, current.as_deref()) else {
            return Ok(());
        };
        tracing::debug!(service = %key, "writing Endpoints");
        let params = PostParams::default();
        let written = match current {
            Some(_) => api
                .replace(&key.name, &params, &next)
                .await
                .map_err(|e| SyncError::api("update", KIND, key.to_string(), e)),
            None => match api.create(&params, &next).await {
                Err(error) if is_namespace_terminating(&error) => return Ok(()),
                other => other.map_err(|e| SyncError::api("create", KIND, key.to_string(), e)),
            },
        };
        written.map(|_| ())
    }
}
