//! The StatefulSet runner: claims member pods and revisions, settles the current and update
//! revisions, runs a [`plan`](super::plan()), writes it and trims the history.

use futures::future::join_all;
use futures::FutureExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;

use super::history::{self, UpdateRevision};
use super::{is_member, plan, Action, Revisions, Settings};
use crate::claims::{claim_all, Claimant};
use crate::pods::controller_of;
use crate::runner::{keys, run_controller, SyncError, SyncResult};
use crate::selector::Selector;
use crate::writes;
use frontdoor_informers::{Change, Informer, InformerFactory};

const STATUS_FIELDS: &[&str] = &[
    "observedGeneration",
    "replicas",
    "readyReplicas",
    "currentReplicas",
    "updatedReplicas",
    "availableReplicas",
    "currentRevision",
    "updateRevision",
    "collisionCount",
];

pub struct StatefulSetController {
    client: Client,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
}

fn set_selector(set: &StatefulSet) -> Selector {
    set.spec.as_ref().and_then(|s| Selector::from_label_selector(Some(&s.selector)).ok()).unwrap_or(Selector::Nothing)
}

/// Starts the StatefulSet controller on the shared informers.
pub fn spawn(
    client: Client,
    sets: &Informer<StatefulSet>,
    pods: &Informer<Pod>,
    revisions: &Informer<ControllerRevision>,
    factory: &InformerFactory,
) -> tokio::task::JoinHandle<()> {
    let set_store = sets.store();
    let pod_store = pods.store();
    let triggers = {
        let store = set_store.clone();
        futures::stream::select(
            keys(sets.subscribe(), |change: Change<StatefulSet>| match change {
                Change::Applied { new, .. } => vec![ObjectRef::from_obj(&*new)],
                Change::Deleted(_) => Vec::new(),
            }),
            keys(pods.subscribe(), move |change| pod_change_keys(change, &store)),
        )
    };
    let controller = Arc::new(StatefulSetController { client, pods: pod_store, revisions: revisions.store() });
    let caches = futures::future::join(pods.synced(), revisions.synced()).map(|_| ());
    let factory = factory.clone();
    tokio::spawn(async move {
        run_controller(&factory, "statefulset", set_store, triggers, caches, move |object| {
            let controller = controller.clone();
            async move { controller.sync(object).await }
        })
        .await
    })
}

/// The StatefulSets a pod change concerns: its controller (before and after), or for an orphan
/// the sets whose selector matches.
fn pod_change_keys(change: Change<Pod>, sets: &Store<StatefulSet>) -> Vec<ObjectRef<StatefulSet>> {
    let controller_key = |pod: &Pod| {
        controller_of(&pod.metadata)
            .filter(|r| r.kind == "StatefulSet" && r.api_version == "apps/v1")
            .map(|r| ObjectRef::new(&r.name).within(pod.metadata.namespace.as_deref().unwrap_or_default()))
    };
    let matching = |pod: &Pod| -> Vec<ObjectRef<StatefulSet>> {
        sets.state()
            .iter()
            .filter(|s| {
                s.namespace() == pod.metadata.namespace && set_selector(s).matches(pod.metadata.labels.as_ref())
            })
            .map(|s| ObjectRef::from_obj(&**s))
            .collect()
    };
    let (old, new) = match change {
        Change::Deleted(pod) => return controller_key(&pod).into_iter().collect(),
        Change::Applied { old, new } => (old, new),
    };
    let mut keys: Vec<_> = controller_key(&new).into_iter().collect();
    let controller_changed = old.as_ref().is_some_and(|o| controller_of(&o.metadata) != controller_of(&new.metadata));
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

impl StatefulSetController {
    pub async fn sync(&self, set: Arc<StatefulSet>) -> SyncResult {
        let namespace = set.namespace().unwrap_or_default();
        let name = set.name_any();
        let selector = match set.spec.as_ref().map(|s| Selector::from_label_selector(Some(&s.selector))) {
            Some(Ok(selector)) => selector,
            _ => {
                tracing::warn!(statefulset = %name, "invalid or missing selector; not syncing");
                return Ok(None);
            }
        };
        let mut history: Vec<ControllerRevision> =
            self.claim_revisions(&set, &selector).await?.into_iter().map(Arc::unwrap_or_clone).collect();
        history::sort(&mut history);
        let pods = self.claim_pods(&set, &selector).await?;
        let refs: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
        let revisions_api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &namespace);
        let (update, collisions) = settle_update(&revisions_api, &set, &history).await?;
        let status_current = set.status.as_ref().and_then(|s| s.current_revision.as_deref()).unwrap_or_default();
        let current = history.iter().find(|r| r.metadata.name.as_deref() == Some(status_current)).unwrap_or(&update);
        let revisions = Revisions {
            current: current.name_any(),
            current_template: history::template_at(&set, current),
            update: update.name_any(),
            collisions,
        };
        let plan = plan(&set, &revisions, &refs, writes::now());
        let pod_api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let parallel = !Settings::of(&set).ordered_ready;
        let mut creates = Vec::new();
        for action in &plan.actions {
            match action {
                Action::CreatePod(pod) if parallel => creates.push(&**pod),
                Action::CreatePod(pod) => create_pod(&pod_api, pod).await?,
                Action::DeletePod { name, uid } => writes::delete_with_uid(&pod_api, name, uid).await?,
                Action::RepairIdentity { name, patch } => {
                    writes::merge_patch(&pod_api, name, patch).await?;
                }
            }
        }
        for result in join_all(creates.into_iter().map(|pod| create_pod(&pod_api, pod))).await {
            result?;
        }
        if Some(&plan.status) != set.status.as_ref() {
            let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &namespace);
            writes::write_status(&api, &name, &plan.status, STATUS_FIELDS).await?;
        }
        for old in history::to_delete(&set, &refs, &history, &revisions.current, &revisions.update) {
            writes::delete_with_uid(&revisions_api, &old.name_any(), old.metadata.uid.as_deref().unwrap_or_default())
                .await?;
        }
        Ok(plan.requeue_after)
    }

    /// The revisions matching the set's selector that it controls, adopting orphans (upstream's
    /// `adoptOrphanRevisions` and `ListControllerRevisions`).
    async fn claim_revisions(
        &self,
        set: &StatefulSet,
        selector: &Selector,
    ) -> Result<Vec<Arc<ControllerRevision>>, SyncError> {
        let claimant = Claimant::of(&self.client, set, "apps/v1", "StatefulSet");
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &claimant.namespace);
        let candidates = self
            .revisions
            .state()
            .into_iter()
            .filter(|r| r.namespace().as_deref() == Some(claimant.namespace.as_str()));
        claim_all(
            &claimant,
            &api,
            candidates.map(|revision| {
                let matches = selector.matches(revision.metadata.labels.as_ref());
                (revision, matches)
            }),
        )
        .await
    }

    /// Member pods (named `<set>-<ordinal>`) this set controls, adopting and releasing as
    /// upstream's `getPodsForStatefulSet`. Terminating pods count: order depends on them.
    async fn claim_pods(&self, set: &StatefulSet, selector: &Selector) -> Result<Vec<Arc<Pod>>, SyncError> {
        let claimant = Claimant::of(&self.client, set, "apps/v1", "StatefulSet");
        let namespace = &claimant.namespace;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let candidates = self.pods.state().into_iter().filter(|p| p.namespace().as_deref() == Some(namespace));
        claim_all(
            &claimant,
            &api,
            candidates.map(|pod| {
                let matches = selector.matches(pod.metadata.labels.as_ref()) && is_member(set, &pod);
                (pod, matches)
            }),
        )
        .await
    }
}

/// The update revision and the collision count, after upstream's `getStatefulSetRevisions`:
/// the newest revision if it records the set's template, else an older one that does
/// (renumbered as the newest: a rollback), else a new one. A new revision whose name is taken
/// by another template is renamed with the next collision count.
async fn settle_update(
    api: &Api<ControllerRevision>,
    set: &StatefulSet,
    history: &[ControllerRevision],
) -> Result<(ControllerRevision, i32), SyncError> {
    let mut collisions = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    match history::choose_update(set, history) {
        UpdateRevision::Newest => Ok((history[history.len() - 1].clone(), collisions)),
        UpdateRevision::Renumber { index, number } => {
            let old = &history[index];
            let patch =
                serde_json::json!({"revision": number, "metadata": {"resourceVersion": old.metadata.resource_version}});
            Ok((writes::merge_patch(api, &old.name_any(), &patch).await?, collisions))
        }
        UpdateRevision::Create(mut revision) => loop {
            match api.create(&PostParams::default(), &revision).await {
                Ok(created) => return Ok((created, collisions)),
                Err(e) if writes::is_already_exists(&e) => {
                    // Ours from a sync the cache has not caught up with, or another template's.
                    let existing = api.get(&revision.name_any()).await?;
                    if history::same_data(&existing, &revision) {
                        return Ok((existing, collisions));
                    }
                    collisions += 1;
                    *revision = history::renamed(&revision, &set.name_any(), collisions);
                }
                Err(e) => return Err(e.into()),
            }
        },
    }
}

/// Creates a pod; one that already exists (the cache lags) is fine.
async fn create_pod(api: &Api<Pod>, pod: &Pod) -> Result<(), SyncError> {
    match api.create(&PostParams::default(), pod).await {
        Ok(_) => Ok(()),
        Err(e) if writes::is_already_exists(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
