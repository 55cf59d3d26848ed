//! The informer factory (client-go's `SharedInformerFactory`): one informer per resource type
//! and scope per process, started on first request and shared by every component that asks.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::NamespaceResourceScope;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};

use crate::decode::GoDecoded;
use crate::informer::{Informer, Watched};
use crate::queue::QueueMetrics;
use crate::Shutdown;

/// Which objects of a type an informer holds: all of them, or those of one namespace, and
/// optionally only those matching field and label selectors (`spec.nodeName=n1`, `app=web`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    pub namespace: Option<String>,
    pub fields: Option<String>,
    pub labels: Option<String>,
}

impl Scope {
    pub fn all() -> Scope {
        Scope::default()
    }

    pub fn namespace(namespace: Option<&str>) -> Scope {
        Scope { namespace: namespace.map(str::to_string), ..Scope::default() }
    }

    pub fn fields(mut self, selector: impl Into<String>) -> Scope {
        self.fields = Some(selector.into());
        self
    }

    pub fn labels(mut self, selector: impl Into<String>) -> Scope {
        self.labels = Some(selector.into());
        self
    }

    fn watcher_config(&self) -> watcher::Config {
        let mut config = watcher::Config::default();
        if let Some(fields) = &self.fields {
            config = config.fields(fields);
        }
        if let Some(labels) = &self.labels {
            config = config.labels(labels);
        }
        config
    }
}

/// The shared client-side runtime of one process: its client, its informers, its shutdown
/// signal and its metrics. Cheap to clone.
#[derive(Clone)]
pub struct InformerFactory {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    shutdown: Shutdown,
    metrics: frontdoor_metrics::Registry,
    queue_metrics: QueueMetrics,
    informers: Mutex<HashMap<(TypeId, Scope), Box<dyn Any + Send + Sync>>>,
}

impl InformerFactory {
    /// Informers started by this factory watch through `client` until `shutdown`.
    pub fn new(client: Client, metrics: frontdoor_metrics::Registry, shutdown: Shutdown) -> InformerFactory {
        let queue_metrics = QueueMetrics::register(&metrics);
        InformerFactory {
            inner: Arc::new(Inner { client, shutdown, metrics, queue_metrics, informers: Mutex::new(HashMap::new()) }),
        }
    }

    pub fn client(&self) -> Client {
        self.inner.client.clone()
    }

    pub fn shutdown(&self) -> Shutdown {
        self.inner.shutdown.clone()
    }

    pub fn metrics(&self) -> &frontdoor_metrics::Registry {
        &self.inner.metrics
    }

    pub(crate) fn queue_metrics(&self) -> &QueueMetrics {
        &self.inner.queue_metrics
    }

    /// The informer of every `K` in the cluster.
    pub fn all<K: Watched>(&self) -> Informer<K> {
        self.cluster_wide(Scope::all())
    }

    /// The informer of the `K`s matching `scope`'s selectors, in every namespace (`scope`'s
    /// namespace must be `None`; use [`InformerFactory::namespaced`] for one namespace).
    pub fn cluster_wide<K: Watched>(&self, scope: Scope) -> Informer<K> {
        debug_assert!(scope.namespace.is_none(), "cluster_wide with a namespace");
        let client = self.inner.client.clone();
        self.informer(scope, move || Api::all(client))
    }

    /// The informer of the `K`s matching `scope` (all namespaces when it names none).
    pub fn namespaced<K>(&self, scope: Scope) -> Informer<K>
    where
        K: Watched + Resource<Scope = NamespaceResourceScope>,
    {
        let client = self.inner.client.clone();
        let namespace = scope.namespace.clone();
        self.informer(scope, move || match namespace {
            Some(namespace) => Api::namespaced(client, &namespace),
            None => Api::all(client),
        })
    }

    fn informer<K: Watched>(&self, scope: Scope, api: impl FnOnce() -> Api<GoDecoded<K>>) -> Informer<K> {
        let mut informers = self.inner.informers.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = informers.entry((TypeId::of::<K>(), scope.clone())).or_insert_with(|| {
            tracing::debug!(resource = %K::plural(&()), ?scope, "starting informer");
            Box::new(Informer::<K>::start(api(), scope.watcher_config(), &self.inner.shutdown))
        });
        match slot.downcast_ref::<Informer<K>>() {
            Some(informer) => informer.clone(),
            None => unreachable!("the factory's map is keyed by type"),
        }
    }
}
