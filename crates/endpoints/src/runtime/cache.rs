//! Read access to the four caches every controller reads (the shared informers' stores of
//! Services, Pods, EndpointSlices and Endpoints), with the lookups the controllers make.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Store;

use crate::service::{self, ObjectKey};
use crate::wellknown::{MANAGED_BY, SERVICE_NAME};

/// Read handles on the four caches every controller reads from.
#[derive(Clone)]
pub struct Caches {
    pub services: Store<Service>,
    pub pods: Store<Pod>,
    pub slices: Store<EndpointSlice>,
    pub endpoints: Store<Endpoints>,
}

impl Caches {
    /// Caches holding these Endpoints and slices and nothing else: the other informers lagging
    /// behind (for tests of what a controller does with a cache that misses an object).
    #[cfg(test)]
    pub fn holding_only(endpoints: &[Endpoints], slices: &[EndpointSlice]) -> Caches {
        use kube::runtime::{reflector, watcher};
        fn store<K>(objects: &[K]) -> Store<K>
        where
            K: kube::Resource<DynamicType = ()> + Clone + 'static,
        {
            let (store, mut writer) = reflector::store::<K>();
            for object in objects {
                writer.apply_watcher_event(&watcher::Event::Apply(object.clone()));
            }
            store
        }
        Caches { services: store(&[]), pods: store(&[]), slices: store(slices), endpoints: store(endpoints) }
    }

    pub fn service(&self, key: &ObjectKey) -> Option<Arc<Service>> {
        self.services.get(&key.object_ref())
    }

    pub fn endpoints(&self, key: &ObjectKey) -> Option<Arc<Endpoints>> {
        self.endpoints.get(&key.object_ref())
    }

    /// The pods in `namespace` whose labels match `selector`.
    pub fn pods_selected(
        &self,
        namespace: &str,
        selector: &std::collections::BTreeMap<String, String>,
    ) -> Vec<Arc<Pod>> {
        self.pods.state_filter(|pod| {
            let empty = Default::default();
            pod.metadata.namespace.as_deref() == Some(namespace)
                && service::selector_matches(selector, pod.metadata.labels.as_ref().unwrap_or(&empty))
        })
    }

    /// The slices labelled as belonging to `service` and managed by `manager`.
    pub fn slices_of(&self, service: &ObjectKey, manager: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices.state_filter(|slice| {
            let labels = slice.metadata.labels.as_ref();
            slice.metadata.namespace.as_deref() == Some(service.namespace.as_str())
                && labels.and_then(|l| l.get(SERVICE_NAME)).map(String::as_str) == Some(service.name.as_str())
                && labels.and_then(|l| l.get(MANAGED_BY)).map(String::as_str) == Some(manager)
        })
    }

    /// The Services in `namespace` with a selector matching `labels`.
    pub fn services_selecting(
        &self,
        namespace: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Vec<ObjectKey> {
        self.services
            .state_filter(|svc| {
                svc.metadata.namespace.as_deref() == Some(namespace)
                    && service::selector(svc).is_some_and(|s| service::selector_matches(s, labels))
            })
            .iter()
            .map(|svc| ObjectKey::of(svc.as_ref()))
            .collect()
    }
}
