//! The Deployment runner: claims ReplicaSets, runs a [`plan`](super::plan()) and writes it.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::annotations::{equal_ignore_hash, REVISION};
use super::settings::Settings;
use super::status::{condition, set_condition, PROGRESSING, REPLICA_SET_CREATE_ERROR};
use super::{plan, Action, SyncInput};
use crate::claims::{claim_all, Claimant};
use crate::pods::controller_of;
use crate::runner::{keys, run_controller, SyncError, SyncResult};
use crate::selector::Selector;
use crate::writes;
use frontdoor_informers::{Change, Informer, InformerFactory};

const STATUS_FIELDS: &[&str] = &[
    "observedGeneration",
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
    "conditions",
    "collisionCount",
];

pub struct DeploymentController {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
}

/// Starts the Deployment controller on the shared informers.
pub fn spawn(
    client: Client,
    deployments: &Informer<Deployment>,
    replica_sets: &Informer<ReplicaSet>,
    pods: &Informer<Pod>,
    factory: &InformerFactory,
) -> tokio::task::JoinHandle<()> {
    let deployment_store = deployments.store();
    let rs_store = replica_sets.store();
    let pod_store = pods.store();
    let triggers = {
        let (for_rs, for_pods) = (deployment_store.clone(), rs_store.clone());
        futures::stream::select(
            futures::stream::select(
                keys(deployments.subscribe(), |change: Change<Deployment>| match change {
                    Change::Applied { new, .. } => vec![ObjectRef::from_obj(&*new)],
                    Change::Deleted(_) => Vec::new(),
                }),
                keys(replica_sets.subscribe(), move |change| replica_set_change_keys(change, &for_rs)),
            ),
            keys(pods.subscribe(), move |change| pod_change_keys(change, &for_pods)),
        )
    };
    let controller = Arc::new(DeploymentController { client, replica_sets: rs_store, pods: pod_store });
    let caches = futures::future::join(replica_sets.synced(), pods.synced());
    let factory = factory.clone();
    tokio::spawn(async move {
        run_controller(
            &factory,
            "deployment",
            deployment_store,
            triggers,
            async move {
                caches.await;
            },
            move |object| {
                let controller = controller.clone();
                async move { controller.sync(object).await }
            },
        )
        .await
    })
}

fn deployment_selector(deployment: &Deployment) -> Selector {
    deployment
        .spec
        .as_ref()
        .and_then(|s| Selector::from_label_selector(Some(&s.selector)).ok())
        .unwrap_or(Selector::Nothing)
}

fn deployment_key(
    reference: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    namespace: Option<&str>,
) -> Option<ObjectRef<Deployment>> {
    (reference.kind == "Deployment" && reference.api_version == "apps/v1")
        .then(|| ObjectRef::new(&reference.name).within(namespace.unwrap_or_default()))
}

/// Deployments a ReplicaSet change concerns: its controller (old and new), or for an orphan the
/// Deployments whose selector matches it.
fn replica_set_change_keys(change: Change<ReplicaSet>, deployments: &Store<Deployment>) -> Vec<ObjectRef<Deployment>> {
    let matching = |rs: &ReplicaSet| -> Vec<ObjectRef<Deployment>> {
        deployments
            .state()
            .iter()
            .filter(|d| {
                d.namespace() == rs.namespace()
                    && !deployment_selector(d).is_everything()
                    && deployment_selector(d).matches(rs.metadata.labels.as_ref())
            })
            .map(|d| ObjectRef::from_obj(&**d))
            .collect()
    };
    let controller_key =
        |rs: &ReplicaSet| controller_of(&rs.metadata).and_then(|r| deployment_key(r, rs.metadata.namespace.as_deref()));
    match change {
        Change::Deleted(rs) => controller_key(&rs).into_iter().collect(),
        Change::Applied { old, new } => {
            let mut keys: Vec<ObjectRef<Deployment>> = controller_key(&new).into_iter().collect();
            let controller_changed =
                old.as_ref().is_some_and(|o| controller_of(&o.metadata) != controller_of(&new.metadata));
            if controller_changed {
                keys.extend(old.as_ref().and_then(|o| controller_key(o)));
            }
            let labels_changed = old.as_ref().is_none_or(|o| o.metadata.labels != new.metadata.labels);
            if controller_of(&new.metadata).is_none() && (labels_changed || controller_changed) {
                keys.extend(matching(&new));
            }
            keys.dedup();
            keys
        }
    }
}

/// A deleted pod may be what a Recreate rollout waits for: its ReplicaSet's Deployment.
fn pod_change_keys(change: Change<Pod>, replica_sets: &Store<ReplicaSet>) -> Vec<ObjectRef<Deployment>> {
    let Change::Deleted(pod) = change else { return Vec::new() };
    let Some(reference) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else { return Vec::new() };
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    replica_sets
        .get(&ObjectRef::new(&reference.name).within(&namespace))
        .and_then(|rs| controller_of(&rs.metadata).and_then(|r| deployment_key(r, Some(&namespace))))
        .into_iter()
        .collect()
}

impl DeploymentController {
    pub async fn sync(&self, deployment: Arc<Deployment>) -> SyncResult {
        let namespace = deployment.namespace().unwrap_or_default();
        let name = deployment.name_any();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        let stored = deployment.status.clone().unwrap_or_default();
        let selector = match deployment.spec.as_ref().map(|s| Selector::from_label_selector(Some(&s.selector))) {
            Some(Ok(selector)) => selector,
            _ => {
                tracing::warn!(deployment = %name, "invalid or missing selector; not syncing");
                return Ok(None);
            }
        };
        if selector.is_everything() {
            // Upstream refuses to select every pod; it only records the generation it saw.
            if stored.observed_generation != deployment.metadata.generation {
                let status = DeploymentStatus { observed_generation: deployment.metadata.generation, ..stored };
                writes::write_status(&api, &name, &status, STATUS_FIELDS).await?;
            }
            return Ok(None);
        }
        let replica_sets = self.claim_replica_sets(&deployment, &selector).await?;
        let uids: Vec<String> = replica_sets.iter().filter_map(|rs| rs.uid()).collect();
        let pods = self.pods.state();
        let mut pods_by_replica_set: HashMap<String, Vec<&Pod>> = HashMap::new();
        for pod in pods.iter().filter(|p| p.metadata.namespace.as_deref() == Some(&namespace)) {
            if let Some(owner) = controller_of(&pod.metadata).filter(|r| uids.contains(&r.uid)) {
                pods_by_replica_set.entry(owner.uid.clone()).or_default().push(pod);
            }
        }
        let plan = plan(SyncInput { deployment: &deployment, replica_sets, pods_by_replica_set, now: writes::now() });
        if let Some(stop) = self.execute(&deployment, &plan.actions).await? {
            return Ok(Some(stop));
        }
        if let Some(status) = plan.status.filter(|s| *s != stored) {
            writes::write_status(&api, &name, &status, STATUS_FIELDS).await?;
        }
        Ok(plan.requeue_after)
    }

    /// The ReplicaSets this Deployment controls, adopting matching orphans and releasing those
    /// that stopped matching.
    async fn claim_replica_sets(
        &self,
        deployment: &Deployment,
        selector: &Selector,
    ) -> Result<Vec<ReplicaSet>, SyncError> {
        let claimant = Claimant::of(&self.client, deployment, "apps/v1", "Deployment");
        let namespace = &claimant.namespace;
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), namespace);
        let candidates =
            self.replica_sets.state().into_iter().filter(|rs| rs.namespace().as_deref() == Some(namespace));
        let owned = claim_all(
            &claimant,
            &api,
            candidates.map(|rs| {
                let matches = selector.matches(rs.metadata.labels.as_ref());
                (rs, matches)
            }),
        )
        .await?;
        Ok(owned.into_iter().map(|rs| (*rs).clone()).collect())
    }

    /// Runs the actions in order; `Some(delay)` to stop early and look again.
    async fn execute(&self, deployment: &Deployment, actions: &[Action]) -> Result<Option<Duration>, SyncError> {
        let namespace = deployment.namespace().unwrap_or_default();
        let rs_api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &namespace);
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        // resourceVersions of ReplicaSets this sync already wrote.
        let mut versions: HashMap<String, String> = HashMap::new();
        for action in actions {
            match action {
                Action::CreateReplicaSet(rs) => {
                    let rs_name = rs.name_any();
                    match rs_api.create(&PostParams::default(), rs).await {
                        Ok(created) => {
                            tracing::info!(deployment = %deployment.name_any(), replica_set = %rs_name, "created new replica set");
                            versions.insert(rs_name, created.resource_version().unwrap_or_default());
                        }
                        Err(e) if writes::is_already_exists(&e) => {
                            return self.on_name_taken(deployment, &rs_name).await
                        }
                        Err(e) => {
                            let settings = Settings::of(deployment);
                            if settings.progress_deadline_seconds.is_some() {
                                let mut status = deployment.status.clone().unwrap_or_default();
                                let message =
                                    format!("Failed to create new replica set {rs_name:?}: {}", writes::message(&e));
                                set_condition(
                                    &mut status,
                                    condition(PROGRESSING, "False", REPLICA_SET_CREATE_ERROR, message, writes::now()),
                                );
                                let _ =
                                    writes::write_status(&api, &deployment.name_any(), &status, STATUS_FIELDS).await;
                            }
                            return Err(e.into());
                        }
                    }
                }
                Action::UpdateReplicaSet(rs) => {
                    let rs_name = rs.name_any();
                    let spec = rs.spec.clone().unwrap_or_default();
                    let version = versions.get(&rs_name).cloned().or_else(|| rs.resource_version());
                    let patch = json!({
                        "metadata": {"annotations": rs.metadata.annotations, "resourceVersion": version},
                        "spec": {"replicas": spec.replicas, "minReadySeconds": spec.min_ready_seconds},
                    });
                    let updated = writes::merge_patch(&rs_api, &rs_name, &patch).await?;
                    versions.insert(rs_name, updated.resource_version().unwrap_or_default());
                }
                Action::DeleteReplicaSet { name, uid } => writes::delete_with_uid(&rs_api, name, uid).await?,
                Action::SetDeploymentRevision(revision) => {
                    let patch = json!({"metadata": {"annotations": {REVISION: revision}}});
                    writes::merge_patch(&api, &deployment.name_any(), &patch).await?;
                }
            }
        }
        Ok(None)
    }

    /// The new ReplicaSet's name exists: ours with the same template (the cache lags; look
    /// again shortly), or a hash collision (count it, so the next hash differs).
    async fn on_name_taken(&self, deployment: &Deployment, rs_name: &str) -> Result<Option<Duration>, SyncError> {
        let namespace = deployment.namespace().unwrap_or_default();
        let existing = Api::<ReplicaSet>::namespaced(self.client.clone(), &namespace).get(rs_name).await?;
        let ours = controller_of(&existing.metadata).is_some_and(|r| Some(&r.uid) == deployment.metadata.uid.as_ref());
        let template = deployment.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let same =
            existing.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, &template));
        if ours && same {
            return Ok(Some(Duration::from_millis(200)));
        }
        let mut status = deployment.status.clone().unwrap_or_default();
        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        writes::write_status(&api, &deployment.name_any(), &status, STATUS_FIELDS).await?;
        Err(SyncError::Failed(format!(
            "hash collision for replica set {rs_name:?}; collisionCount is now {}",
            status.collision_count.unwrap_or(0)
        )))
    }
}
