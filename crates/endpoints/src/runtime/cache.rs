//! The shared caches (reflector stores of Services, Pods, EndpointSlices and Endpoints) and
//! the watch loop that fills one and reports each change with the object's previous state.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

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

fn object_ref<K: Resource<DynamicType = ()>>(key: &ObjectKey) -> ObjectRef<K> {
    ObjectRef::new(&key.name).within(&key.namespace)
}

impl Caches {
    pub fn service(&self, key: &ObjectKey) -> Option<Arc<Service>> {
        self.services.get(&object_ref(key))
    }

    pub fn endpoints(&self, key: &ObjectKey) -> Option<Arc<Endpoints>> {
        self.endpoints.get(&object_ref(key))
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
                && service::selector_matches(
                    selector,
                    pod.metadata.labels.as_ref().unwrap_or(&empty),
                )
        })
    }

    /// The slices labelled as belonging to `service` and managed by `manager`.
    pub fn slices_of(&self, service: &ObjectKey, manager: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices.state_filter(|slice| {
            let labels = slice.metadata.labels.as_ref();
            slice.metadata.namespace.as_deref() == Some(service.namespace.as_str())
                && labels.and_then(|l| l.get(SERVICE_NAME)).map(String::as_str)
                    == Some(service.name.as_str())
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

/// One change seen by a watch, after the cache has applied it.
pub enum Change<K> {
    /// Added or modified; `previous` is what the cache held before.
    Applied {
        previous: Option<Arc<K>>,
        current: K,
    },
    Deleted(K),
    /// The watch (re)listed everything. Objects deleted while the watch was down are
    /// simply absent afterwards: no `Deleted` is reported for them.
    Relisted,
}

/// Watches `api` forever, keeping `writer`'s store current and calling `on_change` after
/// each change is in the store. Watch errors are logged and the watch is retried with
/// backoff. Cancel-safe: dropping the future stops the watch.
pub async fn watch<K>(
    api: Api<K>,
    mut writer: Writer<K>,
    mut on_change: impl FnMut(Change<K>) + Send,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let store = writer.as_reader();
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(kind = K::kind(&()).as_ref(), %error, "watch failed; retrying");
                continue;
            }
        };
        let previous = match &event {
            watcher::Event::Apply(object) => store.get(&ObjectRef::from_obj(object)),
            _ => None,
        };
        writer.apply_watcher_event(&event);
        match event {
            watcher::Event::Apply(current) => on_change(Change::Applied { previous, current }),
            watcher::Event::Delete(object) => on_change(Change::Deleted(object)),
            watcher::Event::InitDone => on_change(Change::Relisted),
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}
