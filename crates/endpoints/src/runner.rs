//! Wiring: four watches fill the caches and route each change to the keys it concerns;
//! once every cache is filled, workers drain three queues (one per controller) until
//! shutdown.
//!
//! Routing rules (which keys a change wakes):
//! - a Service: its own key, in all three queues;
//! - a Pod: the Services whose selector matches its labels before or after the change
//!   (EndpointSlice and Endpoints queues), unless nothing endpoints depend on changed;
//! - an EndpointSlice: the Service (or mirrored Endpoints) it belongs to, unless the change
//!   is the echo of the controller's own write;
//! - an Endpoints object: its key in the mirroring queue, and in the Endpoints queue when
//!   deleted (so a selector Service gets its Endpoints back);
//! - a relist of anything (start-up, or a watch that fell too far behind): every key.

use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::runtime::reflector;
use kube::{Api, Client};
use tokio::task::JoinSet;

use crate::endpoints::EndpointsController;
use crate::endpointslice::EndpointSliceController;
use crate::error::Error;
use crate::mirroring::{should_mirror, MirroringController};
use crate::pods;
use crate::runtime::cache::{watch, Caches, Change};
use crate::runtime::queue::{Backoff, WorkQueue};
use crate::runtime::work;
use crate::service::ObjectKey;
use crate::EndpointsConfig;

type Queue = Arc<WorkQueue<ObjectKey>>;

/// Runs the EndpointSlice, Endpoints and mirroring controllers until `shutdown` resolves.
///
/// Returns an error only when the controllers cannot start (the API refuses to list what
/// they watch). Once started, API errors are retried with backoff and never end the run.
/// On shutdown every task is cancelled, mid-write or not: all writes are re-derived from
/// the API state on the next start, so nothing is left half done that a restart would not
/// finish.
pub async fn run(
    client: Client,
    config: EndpointsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    check_access(&client).await?;

    let (services, services_writer) = reflector::store::<Service>();
    let (pods, pods_writer) = reflector::store::<Pod>();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let (endpoints, endpoints_writer) = reflector::store::<Endpoints>();
    let caches = Caches {
        services,
        pods,
        slices,
        endpoints,
    };

    let backoff = Backoff {
        min: config.retry_backoff_min,
        max: config.retry_backoff_max,
    };
    let router = Arc::new(Router {
        caches: caches.clone(),
        slice_queue: WorkQueue::new(backoff),
        endpoints_queue: WorkQueue::new(backoff),
        mirroring_queue: WorkQueue::new(backoff),
        slice_controller: Arc::new(EndpointSliceController::new(
            client.clone(),
            caches.clone(),
            config.max_endpoints_per_slice,
        )),
        endpoints_controller: Arc::new(EndpointsController::new(client.clone(), caches.clone())),
        mirroring_controller: Arc::new(MirroringController::new(
            client.clone(),
            caches.clone(),
            config.mirroring_max_endpoints_per_subset,
        )),
    });

    let mut tasks = JoinSet::new();
    let r = router.clone();
    tasks.spawn(watch(
        Api::<Service>::all(client.clone()),
        services_writer,
        move |change| r.service_changed(change),
    ));
    let r = router.clone();
    tasks.spawn(watch(
        Api::<Pod>::all(client.clone()),
        pods_writer,
        move |change| r.pod_changed(change),
    ));
    let r = router.clone();
    tasks.spawn(watch(
        Api::<EndpointSlice>::all(client.clone()),
        slices_writer,
        move |change| r.slice_changed(change),
    ));
    let r = router.clone();
    tasks.spawn(watch(
        Api::<Endpoints>::all(client.clone()),
        endpoints_writer,
        move |change| r.endpoints_changed(change),
    ));

    // Never act on partial state: wait until every cache holds a full list.
    let mut shutdown = Box::pin(shutdown);
    tokio::select! {
        filled = caches_filled(&caches) => filled?,
        () = &mut shutdown => {
            tasks.shutdown().await;
            return Ok(());
        }
    }
    tracing::info!("endpoints controllers: caches filled, starting workers");
    router.resync_everything();

    for _ in 0..config.workers_per_controller.max(1) {
        tasks.spawn(work(
            router.slice_controller.clone(),
            router.slice_queue.clone(),
        ));
        tasks.spawn(work(
            router.endpoints_controller.clone(),
            router.endpoints_queue.clone(),
        ));
        tasks.spawn(work(
            router.mirroring_controller.clone(),
            router.mirroring_queue.clone(),
        ));
    }
    shutdown.await;
    tasks.shutdown().await;
    Ok(())
}

/// Fails fast when the API will not list one of the watched resources.
async fn check_access(client: &Client) -> Result<(), Error> {
    let probe = ListParams::default().limit(1);
    let checks = [
        (
            "services",
            Api::<Service>::all(client.clone())
                .list_metadata(&probe)
                .await
                .err(),
        ),
        (
            "pods",
            Api::<Pod>::all(client.clone())
                .list_metadata(&probe)
                .await
                .err(),
        ),
        (
            "endpointslices",
            Api::<EndpointSlice>::all(client.clone())
                .list_metadata(&probe)
                .await
                .err(),
        ),
        (
            "endpoints",
            Api::<Endpoints>::all(client.clone())
                .list_metadata(&probe)
                .await
                .err(),
        ),
    ];
    for (resource, error) in checks {
        if let Some(source) = error {
            return Err(Error::Access { resource, source });
        }
    }
    Ok(())
}

async fn caches_filled(caches: &Caches) -> Result<(), Error> {
    caches
        .services
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped("services"))?;
    caches
        .pods
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped("pods"))?;
    caches
        .slices
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped("endpointslices"))?;
    caches
        .endpoints
        .wait_until_ready()
        .await
        .map_err(|_| Error::CacheStopped("endpoints"))?;
    Ok(())
}

/// Turns cache changes into queued keys (see the module docs for the rules).
struct Router {
    caches: Caches,
    slice_queue: Queue,
    endpoints_queue: Queue,
    mirroring_queue: Queue,
    slice_controller: Arc<EndpointSliceController>,
    endpoints_controller: Arc<EndpointsController>,
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
            Change::Applied { current, .. } => ObjectKey::of(&current),
            Change::Deleted(service) => ObjectKey::of(&service),
            Change::Relisted => return self.resync_everything(),
        };
        self.slice_queue.add(key.clone());
        self.endpoints_queue.add(key.clone());
        self.mirroring_queue.add(key);
    }

    fn pod_changed(&self, change: Change<Pod>) {
        let (previous, current) = match change {
            Change::Applied { previous, current } => {
                if previous
                    .as_deref()
                    .is_some_and(|p| !pods::endpoints_may_differ(p, &current))
                {
                    return;
                }
                (previous, current)
            }
            Change::Deleted(pod) => (None, pod),
            Change::Relisted => return self.resync_everything(),
        };
        let namespace = current.metadata.namespace.clone().unwrap_or_default();
        let empty = Default::default();
        let mut services = self.caches.services_selecting(
            &namespace,
            current.metadata.labels.as_ref().unwrap_or(&empty),
        );
        if let Some(previous) = previous.filter(|p| p.metadata.labels != current.metadata.labels) {
            services.extend(self.caches.services_selecting(
                &namespace,
                previous.metadata.labels.as_ref().unwrap_or(&empty),
            ));
        }
        for key in services {
            self.slice_queue.add(key.clone());
            self.endpoints_queue.add(key);
        }
    }

    fn slice_changed(&self, change: Change<EndpointSlice>) {
        match change {
            Change::Applied { previous, current } => {
                let slice_owner = EndpointSliceController::owner_of(&current);
                let mirror_owner = MirroringController::owner_of(&current);
                let before = previous.as_deref();
                let moved =
                    |owner: &Option<ObjectKey>, of: fn(&EndpointSlice) -> Option<ObjectKey>| {
                        before.and_then(of).filter(|b| Some(b) != owner.as_ref())
                    };
                // A slice relabelled away from its Service: that Service needs a look too.
                if let Some(old) = moved(&slice_owner, EndpointSliceController::owner_of) {
                    self.slice_queue.add(old);
                }
                if let Some(old) = moved(&mirror_owner, MirroringController::owner_of) {
                    self.mirroring_queue.add(old);
                }
                if let Some(owner) = slice_owner
                    .filter(|o| !self.slice_controller.tracker().is_own_write(o, &current))
                {
                    self.slice_queue.add(owner);
                }
                if let Some(owner) = mirror_owner.filter(|o| {
                    !self
                        .mirroring_controller
                        .tracker()
                        .is_own_write(o, &current)
                }) {
                    self.mirroring_queue.add(owner);
                }
            }
            Change::Deleted(slice) => {
                let name = slice.metadata.name.clone().unwrap_or_default();
                if let Some(owner) = EndpointSliceController::owner_of(&slice) {
                    if !self
                        .slice_controller
                        .tracker()
                        .observed_deletion(&owner, &name)
                    {
                        self.slice_queue.add(owner);
                    }
                }
                if let Some(owner) = MirroringController::owner_of(&slice) {
                    if !self
                        .mirroring_controller
                        .tracker()
                        .observed_deletion(&owner, &name)
                    {
                        self.mirroring_queue.add(owner);
                    }
                }
            }
            Change::Relisted => self.resync_everything(),
        }
    }

    fn endpoints_changed(&self, change: Change<Endpoints>) {
        match change {
            Change::Applied { previous, current } => {
                if should_mirror(&current) || previous.as_deref().is_some_and(should_mirror) {
                    self.mirroring_queue.add(ObjectKey::of(&current));
                }
            }
            Change::Deleted(endpoints) => {
                let key = ObjectKey::of(&endpoints);
                self.mirroring_queue.add(key.clone());
                self.endpoints_queue.add(key);
            }
            Change::Relisted => self.resync_everything(),
        }
    }
}
