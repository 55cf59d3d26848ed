//! Wiring: the shared informers of Services, Pods, EndpointSlices and Endpoints feed three
//! controllers (one work queue each); each change is routed to the keys it concerns, and once
//! every cache is filled the controllers' workers drain their queues until shutdown.
//!
//! Routing rules (which keys a change wakes):
//! - a Service: its own key, in all three queues;
//! - a Pod: the Services whose selector matches its labels before or after the change
//!   (EndpointSlice and Endpoints queues), unless nothing endpoints depend on changed;
//! - an EndpointSlice: the Service (or mirrored Endpoints) it belongs to, unless the change
//!   is the echo of the controller's own write;
//! - an Endpoints object: its key in the mirroring queue, and in the Endpoints queue when
//!   deleted (so a selector Service gets its Endpoints back);
//! - once every cache is filled: every key (changes seen before then may have found a cache
//!   still empty). A re-list later announces every object again, and the vanished as deleted.

use std::sync::Arc;

use futures::FutureExt;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use tokio::task::JoinSet;

use frontdoor_informers::{on_change, Change, Controller, ControllerConfig, InformerFactory, WorkQueue};

use crate::endpoints::EndpointsController;
use crate::endpointslice::EndpointSliceController;
use crate::error::Error;
use crate::mirroring::{should_mirror, MirroringController};
use crate::pods;
use crate::runtime::cache::Caches;
use crate::runtime::Reconciled;
use crate::service::ObjectKey;
use crate::EndpointsConfig;

type Queue = Arc<WorkQueue<ObjectKey>>;

/// Runs the EndpointSlice, Endpoints and mirroring controllers on `factory`'s informers until
/// its shutdown signal.
///
/// Returns an error only when the controllers cannot start (the API refuses to list what
/// they watch). Once started, API errors are retried with backoff and never end the run.
/// On shutdown no new sync starts and those in flight finish; every write is re-derived from
/// the API state on the next start anyway.
pub async fn run(factory: InformerFactory, config: EndpointsConfig) -> Result<(), Error> {
    let client = factory.client();
    check_access(&client).await?;
    let shutdown = factory.shutdown();

    let services = factory.all::<Service>();
    let pods = factory.all::<Pod>();
    let slices = factory.all::<EndpointSlice>();
    let endpoints = factory.all::<Endpoints>();
    let caches =
        Caches { services: services.store(), pods: pods.store(), slices: slices.store(), endpoints: endpoints.store() };
    let synced = {
        let waits = (services.synced(), pods.synced(), slices.synced(), endpoints.synced());
        async move {
            tokio::join!(waits.0, waits.1, waits.2, waits.3);
        }
    };

    let controller_config = |name| ControllerConfig {
        name,
        workers: config.workers_per_controller,
        backoff: frontdoor_informers::Backoff { min: config.retry_backoff_min, max: config.retry_backoff_max },
    };
    let slice_controller =
        Arc::new(EndpointSliceController::new(client.clone(), caches.clone(), config.max_endpoints_per_slice));
    let endpoints_controller = Arc::new(EndpointsController::new(client.clone(), caches.clone()));
    let mirroring_controller =
        Arc::new(MirroringController::new(client.clone(), caches.clone(), config.mirroring_max_endpoints_per_subset));
    // Upstream's controller names, which label the queues' metrics.
    let slices_run =
        Controller::new(&factory, Arc::new(Reconciled(slice_controller.clone())), controller_config("endpoint_slice"));
    let endpoints_run =
        Controller::new(&factory, Arc::new(Reconciled(endpoints_controller)), controller_config("endpoint"));
    let mirroring_run = Controller::new(
        &factory,
        Arc::new(Reconciled(mirroring_controller.clone())),
        controller_config("endpoint_slice_mirroring"),
    );
    let router = Arc::new(Router {
        caches: caches.clone(),
        slice_queue: slices_run.queue(),
        endpoints_queue: endpoints_run.queue(),
        mirroring_queue: mirroring_run.queue(),
        slice_controller,
        mirroring_controller,
    });

    let r = router.clone();
    on_change(services.subscribe(), &shutdown, move |change| r.service_changed(change));
    let r = router.clone();
    on_change(pods.subscribe(), &shutdown, move |change| r.pod_changed(change));
    let r = router.clone();
    on_change(slices.subscribe(), &shutdown, move |change| r.slice_changed(change));
    let r = router.clone();
    on_change(endpoints.subscribe(), &shutdown, move |change| r.endpoints_changed(change));

    // Never act on partial state: every key once every cache holds a full list.
    let resync = {
        let router = router.clone();
        let synced = synced.shared();
        let for_workers = synced.clone();
        tokio::spawn(async move {
            synced.await;
            tracing::info!("endpoints controllers: caches filled, starting workers");
            router.resync_everything();
        });
        for_workers
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(slices_run.run(resync.clone(), shutdown.clone()));
    tasks.spawn(endpoints_run.run(resync.clone(), shutdown.clone()));
    tasks.spawn(mirroring_run.run(resync, shutdown.clone()));
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Fails fast when the API will not list one of the watched resources.
async fn check_access(client: &Client) -> Result<(), Error> {
    let probe = ListParams::default().limit(1);
    let checks = [
        ("services", Api::<Service>::all(client.clone()).list_metadata(&probe).await.err()),
        ("pods", Api::<Pod>::all(client.clone()).list_metadata(&probe).await.err()),
        ("endpointslices", Api::<EndpointSlice>::all(client.clone()).list_metadata(&probe).await.err()),
        ("endpoints", Api::<Endpoints>::all(client.clone()).list_metadata(&probe).await.err()),
    ];
    for (resource, error) in checks {
        if let Some(source) = error {
            return Err(Error::Access { resource, source });
        }
    }
    Ok(())
}

/// Turns cache changes into queued keys (see the module docs for the rules).
struct Router {
    caches: Caches,
    slice_queue: Queue,
    endpoints_queue: Queue,
    mirroring_queue: Queue,
    slice_controller: Arc<EndpointSliceController>,
    mirroring_controller: Arc<MirroringController>,
}

impl Router {
    fn resync_everything(&self) {
        for service in self.caches.services.state() {
            let key = ObjectKey::of(service.as_ref());
            self.slice_queue.add(key.clone());
            self.endpoints_queue.add(key.clone());
            self.mirroring_queue.add(key);
        }
        // Endpoints whose Service is gone are deleted; custom ones may need mirroring.
        for endpoints in self.caches.endpoints.state() {
            let key = ObjectKey::of(endpoints.as_ref());
            self.endpoints_queue.add(key.clone());
            self.mirroring_queue.add(key);
        }
    }

    fn service_changed(&self, change: Change<Service>) {
        let key = match change {
            Change::Applied { new: current, .. } => ObjectKey::of(current.as_ref()),
            Change::Deleted(service) => ObjectKey::of(service.as_ref()),
        };
        self.slice_queue.add(key.clone());
        self.endpoints_queue.add(key.clone());
        self.mirroring_queue.add(key);
    }

    fn pod_changed(&self, change: Change<Pod>) {
        let (previous, current) = match change {
            Change::Applied { old: previous, new: current } => {
                if previous.as_deref().is_some_and(|p| !pods::endpoints_may_differ(p, &current)) {
                    return;
                }
                (previous, current)
            }
            Change::Deleted(pod) => (None, pod),
        };
        let namespace = current.metadata.namespace.clone().unwrap_or_default();
        let empty = Default::default();
        let mut services =
            self.caches.services_selecting(&namespace, current.metadata.labels.as_ref().unwrap_or(&empty));
        if let Some(previous) = previous.filter(|p| p.metadata.labels != current.metadata.labels) {
            services.extend(
                self.caches.services_selecting(&namespace, previous.metadata.labels.as_ref().unwrap_or(&empty)),
            );
        }
        for key in services {
            self.slice_queue.add(key.clone());
            self.endpoints_queue.add(key);
        }
    }

    fn slice_changed(&self, change: Change<EndpointSlice>) {
        match change {
            Change::Applied { old: previous, new: current } => {
                let slice_owner = EndpointSliceController::owner_of(&current);
                let mirror_owner = MirroringController::owner_of(&current);
                let before = previous.as_deref();
                let moved = |owner: &Option<ObjectKey>, of: fn(&EndpointSlice) -> Option<ObjectKey>| {
                    before.and_then(of).filter(|b| Some(b) != owner.as_ref())
                };
                // A slice relabelled away from its Service: that Service needs a look too.
                if let Some(old) = moved(&slice_owner, EndpointSliceController::owner_of) {
                    self.slice_queue.add(old);
                }
                if let Some(old) = moved(&mirror_owner, MirroringController::owner_of) {
                    self.mirroring_queue.add(old);
                }
                if let Some(owner) = slice_owner.filter(|o| !self.slice_controller.tracker().is_own_write(o, &current))
                {
                    self.slice_queue.add(owner);
                }
                if let Some(owner) =
                    mirror_owner.filter(|o| !self.mirroring_controller.tracker().is_own_write(o, &current))
                {
                    self.mirroring_queue.add(owner);
                }
            }
            Change::Deleted(slice) => {
                let name = slice.metadata.name.clone().unwrap_or_default();
                if let Some(owner) = EndpointSliceController::owner_of(&slice) {
                    if !self.slice_controller.tracker().observed_deletion(&owner, &name) {
                        self.slice_queue.add(owner);
                    }
                }
                if let Some(owner) = MirroringController::owner_of(&slice) {
                    if !self.mirroring_controller.tracker().observed_deletion(&owner, &name) {
                        self.mirroring_queue.add(owner);
                    }
                }
            }
        }
    }

    fn endpoints_changed(&self, change: Change<Endpoints>) {
        match change {
            Change::Applied { old: previous, new: current } => {
                if should_mirror(&current) || previous.as_deref().is_some_and(should_mirror) {
                    self.mirroring_queue.add(ObjectKey::of(current.as_ref()));
                }
            }
            Change::Deleted(endpoints) => {
                let key = ObjectKey::of(endpoints.as_ref());
                self.mirroring_queue.add(key.clone());
                self.endpoints_queue.add(key);
            }
        }
    }
}
