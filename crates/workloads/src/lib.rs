//! Workload controllers: ReplicaSets, ReplicationControllers, Deployments and StatefulSets, as
//! kube-controller-manager runs them, talking to the API server only through `kube::Client`.
//!
//! # A short tour
//!
//! - [`run`] takes the shared informers of the resources it reads (`frontdoor-informers`) and
//!   starts four controllers on them, each a work queue of object keys (`runner`) that syncs
//!   one object at a time from the caches, level-triggered and idempotent. Nothing acts before every cache it reads has
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
pub mod ownership;
pub mod pods;
pub mod replica_set;
mod runner;
pub mod selector;
pub mod stateful_set;
mod writes;

use frontdoor_informers::{Informer, InformerFactory, Scope};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use std::sync::Arc;
use std::time::Duration;

use crate::expectations::Expectations;
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

/// Why the controllers stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("workload controller task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs the ReplicaSet, ReplicationController, Deployment and StatefulSet controllers on
/// `factory`'s informers until its shutdown signal.
///
/// On shutdown no new syncs start, and syncs in flight finish (a sync cut short would be
/// redone by the next run anyway: every sync is idempotent).
pub async fn run(factory: InformerFactory, config: WorkloadsConfig) -> Result<(), Error> {
    let scope = Scope::namespace(config.namespace.as_deref());
    let pods = factory.namespaced::<Pod>(scope.clone());
    let replica_sets = factory.namespaced::<ReplicaSet>(scope.clone());
    let controllers_rc = factory.namespaced::<ReplicationController>(scope.clone());
    let deployments = factory.namespaced::<Deployment>(scope.clone());
    let stateful_sets = factory.namespaced::<StatefulSet>(scope.clone());
    let revisions = factory.namespaced::<ControllerRevision>(scope);

    let tasks = vec![
        replica_controller(&factory, &config, "replicaset", &replica_sets, &pods),
        replica_controller(&factory, &config, "replicationmanager", &controllers_rc, &pods),
        deployment::controller::spawn(factory.client(), &deployments, &replica_sets, &pods, &factory),
        stateful_set::controller::spawn(factory.client(), &stateful_sets, &pods, &revisions, &factory),
    ];
    for task in tasks {
        task.await?;
    }
    Ok(())
}

fn replica_controller<K: ReplicaKind>(
    factory: &InformerFactory,
    config: &WorkloadsConfig,
    name: &'static str,
    owners: &Informer<K>,
    pods: &Informer<Pod>,
) -> tokio::task::JoinHandle<()> {
    let expectations = Arc::new(Expectations::new(config.expectations_timeout));
    let owner_store = owners.store();
    let pod_store = pods.store();
    let pods_synced = pods.synced();
    let triggers = {
        let (store, expectations_for_pods, expectations_for_owners) =
            (owner_store.clone(), expectations.clone(), expectations.clone());
        futures::stream::select(
            keys(owners.subscribe(), move |change| owner_change_keys(change, &expectations_for_owners)),
            keys(pods.subscribe(), move |change| pod_change_keys(change, &store, &expectations_for_pods)),
        )
    };
    let controller = Arc::new(ReplicaController {
        client: factory.client(),
        owners: owner_store.clone(),
        pods: pod_store,
        expectations,
        burst: config.burst_replicas,
    });
    let factory = factory.clone();
    tokio::spawn(async move {
        run_controller(&factory, name, owner_store, triggers, pods_synced, move |object| {
            let controller = controller.clone();
            async move { controller.sync(object).await }
        })
        .await
    })
}
