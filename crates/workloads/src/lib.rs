//! Workload controllers: ReplicaSets, ReplicationControllers, Deployments and StatefulSets, as
//! kube-controller-manager runs them, talking to the API server only through `kube::Client`.
//!
//! # A short tour
//!
//! - [`run`] starts one shared watch per resource (`informer`) and four controllers on it,
//!   each a work queue of object keys (`runner`) that syncs one object at a time from the
//!   caches, level-triggered and idempotent. Nothing acts before every cache it reads has
//!   listed once; a failed sync is retried with per-key exponential backoff.
//! - Each controller is a pure core with table-driven tests and a thin runner:
//!   [`replica_set`] (also ReplicationControllers), [`deployment`] (ReplicaSets per pod
//!   template: rolling update, recreate, proportional scaling, revisions, conditions) and
//!   [`stateful_set`] (ordinal pods, ordered or parallel, rolling update with partition, its
//!   templates kept as ControllerRevisions).
//! - Shared pieces: label [`selector`]s, [`pods`] predicates and deletion order, template
//!   [`hash`]es, [`ownership`] (adopt/release), `expectations` (never over-create while a
//!   cache catches up), and the API `writes` with their preconditions.
//!
//! Controllers create and delete Pod objects and read pod status; scheduling and running pods is
//! another component's job. Defaults the API server would fill in (strategy, revision history
//! limit, progress deadline, pod management policy) are applied when reading specs.
//!
//! This crate must never touch the store or program the node: it only speaks the Kubernetes API.
#![forbid(unsafe_code)]

mod claims;
pub mod deployment;
mod expectations;
pub mod hash;
mod informer;
pub mod ownership;
pub mod pods;
pub mod replica_set;
mod runner;
pub mod selector;
pub mod stateful_set;
mod writes;

use futures::future::{BoxFuture, FutureExt, Shared};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::expectations::Expectations;
use crate::informer::Informer;
use crate::replica_set::controller::{owner_change_keys, pod_change_keys, ReplicaController, ReplicaKind};
use crate::runner::{keys, run_controller};

/// How the workload controllers run.
#[derive(Clone, Debug)]
pub struct WorkloadsConfig {
    /// Watch and manage only this namespace; `None` for all namespaces.
    pub namespace: Option<String>,
    /// How long an unobserved create or delete holds a ReplicaSet back before it syncs anyway
    /// (upstream: 5 minutes).
    pub expectations_timeout: Duration,
    /// At most this many pods created or deleted by one ReplicaSet sync (upstream: 500).
    pub burst_replicas: usize,
}

impl Default for WorkloadsConfig {
    fn default() -> Self {
        WorkloadsConfig { namespace: None, expectations_timeout: Duration::from_secs(300), burst_replicas: 500 }
    }
}

/// Why the controllers stopped other than by `shutdown`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("workload controller task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

type Shutdown = Shared<BoxFuture<'static, ()>>;

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

fn spawn_informer<K>(tasks: &mut Vec<tokio::task::JoinHandle<()>>, informer: Informer<K>, shutdown: &Shutdown)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    tasks.push(tokio::spawn(informer.run(shutdown.clone())));
}

/// Runs the ReplicaSet, ReplicationController, Deployment and StatefulSet controllers until
/// `shutdown` resolves.
///
/// On shutdown the watches stop, no new syncs start, and syncs in flight finish (a sync cut
/// short would be redone by the next run anyway: every sync is idempotent).
pub async fn run(client: Client, config: WorkloadsConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
    let shutdown: Shutdown = shutdown.boxed().shared();
    let namespace = config.namespace.clone();
    let mut pods = Informer::<Pod>::new(api(&client, &namespace));
    let mut replica_sets = Informer::<ReplicaSet>::new(api(&client, &namespace));
    let mut controllers_rc = Informer::<ReplicationController>::new(api(&client, &namespace));
    let mut deployments = Informer::<Deployment>::new(api(&client, &namespace));
    let mut stateful_sets = Informer::<StatefulSet>::new(api(&client, &namespace));
    let revisions = Informer::<ControllerRevision>::new(api(&client, &namespace));

    // Controllers subscribe to the informers before those start, so they miss nothing.
    let mut tasks = vec![
        replica_controller(&client, &config, &mut replica_sets, &mut pods, &shutdown),
        replica_controller(&client, &config, &mut controllers_rc, &mut pods, &shutdown),
        deployment::controller::spawn(client.clone(), &mut deployments, &mut replica_sets, &mut pods, shutdown.clone()),
        stateful_set::controller::spawn(client.clone(), &mut stateful_sets, &mut pods, &revisions, shutdown.clone()),
    ];

    spawn_informer(&mut tasks, pods, &shutdown);
    spawn_informer(&mut tasks, replica_sets, &shutdown);
    spawn_informer(&mut tasks, controllers_rc, &shutdown);
    spawn_informer(&mut tasks, deployments, &shutdown);
    spawn_informer(&mut tasks, stateful_sets, &shutdown);
    spawn_informer(&mut tasks, revisions, &shutdown);

    for task in tasks {
        task.await?;
    }
    Ok(())
}

fn replica_controller<K: ReplicaKind>(
    client: &Client,
    config: &WorkloadsConfig,
    owners: &mut Informer<K>,
    pods: &mut Informer<Pod>,
    shutdown: &Shutdown,
) -> tokio::task::JoinHandle<()> {
    let expectations = Arc::new(Expectations::new(config.expectations_timeout));
    let owner_store = owners.store();
    let pod_store = pods.store();
    let pods_synced = pods.synced();
    let triggers = {
        let (store, expectations_for_pods, expectations_for_owners) = (owner_store.clone(), expectations.clone(), expectations.clone());
        futures::stream::select(
            keys(owners.subscribe(), move |change| owner_change_keys(change, &expectations_for_owners)),
            keys(pods.subscribe(), move |change| pod_change_keys(change, &store, &expectations_for_pods)),
        )
    };
    let controller = Arc::new(ReplicaController { client: client.clone(), owners: owner_store.clone(), pods: pod_store, expectations, burst: config.burst_replicas });
    tokio::spawn(run_controller(K::KIND, owner_store, triggers, pods_synced, shutdown.clone(), move |object| {
        let controller = controller.clone();
        async move { controller.sync(object).await }
    }))
}
