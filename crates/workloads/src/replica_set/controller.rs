//! The ReplicaSet / ReplicationController runner: claims pods, creates and deletes them through
//! the API with expectations, writes status. One generic runner serves both kinds through
//! [`ReplicaKind`].

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::NamespaceResourceScope;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    availability_recheck, calculate_status, replica_diff, slow_start_batches, Diff, ManageFailure, ReplicaView,
};
use crate::claims::{claim_all, Claimant};
use crate::expectations::Expectations;
use crate::pods::{controller_of, controller_ref, deletion_order, is_active, is_terminating, pod_from_template};
use crate::runner::{SyncError, SyncResult};
use crate::selector::Selector;
use crate::writes;
use frontdoor_informers::Change;

/// A kind that keeps N pods from a template.
pub trait ReplicaKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    const KIND: &'static str;
    const API_VERSION: &'static str;
    /// The common view, or why the object cannot be acted on (an invalid selector).
    fn view(&self) -> Result<ReplicaView, String>;
    /// The selector alone (for mapping pods to owners).
    fn selector(&self) -> Selector;
}

impl ReplicaKind for ReplicaSet {
    const KIND: &'static str = "ReplicaSet";
    const API_VERSION: &'static str = "apps/v1";

    fn view(&self) -> Result<ReplicaView, String> {
        let spec = self.spec.clone().unwrap_or_default();
        Ok(ReplicaView {
            namespace: self.namespace().unwrap_or_default(),
            name: self.name_any(),
            uid: self.uid().unwrap_or_default(),
            generation: self.metadata.generation,
            deleting: self.metadata.deletion_timestamp.is_some(),
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector: Selector::from_label_selector(Some(&spec.selector))?,
            template: spec.template,
            status: self.status.clone().unwrap_or_default(),
            pod_owner: controller_ref(Self::API_VERSION, Self::KIND, &self.metadata),
            controller_uid: controller_of(&self.metadata).map(|r| r.uid.clone()),
        })
    }

    fn selector(&self) -> Selector {
        self.spec
            .as_ref()
            .and_then(|s| Selector::from_label_selector(Some(&s.selector)).ok())
            .unwrap_or(Selector::Nothing)
    }
}

impl ReplicaKind for ReplicationController {
    const KIND: &'static str = "ReplicationController";
    const API_VERSION: &'static str = "v1";

    fn view(&self) -> Result<ReplicaView, String> {
        let spec = self.spec.clone().unwrap_or_default();
        let status =
            self.status.as_ref().map(|s| serde_json::to_value(s).and_then(serde_json::from_value::<ReplicaSetStatus>));
        Ok(ReplicaView {
            namespace: self.namespace().unwrap_or_default(),
            name: self.name_any(),
            uid: self.uid().unwrap_or_default(),
            generation: self.metadata.generation,
            deleting: self.metadata.deletion_timestamp.is_some(),
            replicas: spec.replicas.unwrap_or(1),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            selector: self.selector(),
            template: spec.template,
            status: status.transpose().map_err(|e| e.to_string())?.unwrap_or_default(),
            pod_owner: controller_ref(Self::API_VERSION, Self::KIND, &self.metadata),
            controller_uid: controller_of(&self.metadata).map(|r| r.uid.clone()),
        })
    }

    /// `spec.selector`, defaulting (as the API does) to the template's labels.
    fn selector(&self) -> Selector {
        let spec = self.spec.as_ref();
        let selector = spec.and_then(|s| s.selector.clone()).filter(|s| !s.is_empty());
        let template_labels =
            || spec.and_then(|s| s.template.as_ref()).and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
        match selector.or_else(template_labels) {
            Some(labels) if !labels.is_empty() => Selector::from_map(&labels),
            _ => Selector::Nothing,
        }
    }
}

/// Status fields removed when absent from a new status.
const STATUS_FIELDS: &[&str] =
    &["fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration", "conditions"];

/// The runner's state: caches, expectations and limits.
pub struct ReplicaController<K: ReplicaKind> {
    pub client: Client,
    pub owners: Store<K>,
    pub pods: Store<Pod>,
    pub expectations: Arc<Expectations>,
    pub burst: usize,
}

impl<K: ReplicaKind> ReplicaController<K> {
    pub async fn sync(&self, object: Arc<K>) -> SyncResult {
        let view = match object.view() {
            Ok(view) => view,
            Err(reason) => {
                tracing::warn!(kind = K::KIND, name = %object.name_any(), %reason, "invalid selector; not syncing");
                return Ok(None);
            }
        };
        let key = view.key();
        let needs_sync = self.expectations.satisfied(&key, Instant::now());
        let pods = self.claim_pods(&view).await?;
        let owned: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
        let now = writes::now();
        let mut outcome = Ok(());
        if needs_sync && !view.deleting {
            outcome = self.manage_replicas(&view, &owned, now).await;
        }
        let failure = outcome.as_ref().err().map(|(failure, _)| failure.clone());
        let status = calculate_status(&view, &owned, failure.as_ref(), now);
        if status != view.status {
            let api: Api<K> = Api::namespaced(self.client.clone(), &view.namespace);
            writes::write_status(&api, &view.name, &status, STATUS_FIELDS).await?;
        }
        if let Err((_, error)) = outcome {
            return Err(error);
        }
        let recheck = availability_recheck(&view, &owned, now);
        let expectation_timeout = self.expectations.time_left(&key, Instant::now()).map(|d| d + Duration::from_secs(1));
        Ok([recheck, expectation_timeout].into_iter().flatten().min())
    }

    /// The active pods this object controls after adopting matching orphans and releasing
    /// pods that stopped matching (upstream's `ClaimPods`).
    async fn claim_pods(&self, view: &ReplicaView) -> Result<Vec<Arc<Pod>>, SyncError> {
        let claimant = Claimant {
            api: Api::<K>::namespaced(self.client.clone(), &view.namespace),
            name: view.name.clone(),
            uid: view.uid.clone(),
            namespace: view.namespace.clone(),
            deleting: view.deleting,
            reference: view.pod_owner.clone(),
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &view.namespace);
        let candidates =
            self.pods.state().into_iter().filter(|p| p.namespace().as_deref() == Some(&view.namespace) && is_active(p));
        claim_all(
            &claimant,
            &api,
            candidates.map(|pod| {
                let matches = view.selector.matches(pod.metadata.labels.as_ref());
                (pod, matches)
            }),
        )
        .await
    }

    async fn manage_replicas(
        &self,
        view: &ReplicaView,
        owned: &[&Pod],
        now: k8s_openapi::jiff::Timestamp,
    ) -> Result<(), (ManageFailure, SyncError)> {
        let key = view.key();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &view.namespace);
        match replica_diff(view.replicas, owned.len(), self.burst) {
            Diff::Nothing => Ok(()),
            Diff::Create(count) => {
                let Some(template) = view.template.as_ref() else {
                    let message = "spec.template is missing".to_string();
                    return Err((
                        ManageFailure { reason: "FailedCreate", message: message.clone() },
                        SyncError::Failed(message),
                    ));
                };
                self.expectations.expect_creations(&key, count, Instant::now());
                let pod = pod_from_template(
                    template,
                    &view.namespace,
                    view.pod_owner.clone(),
                    None,
                    Some(format!("{}-", view.name)),
                );
                let params = PostParams::default();
                let mut created = 0;
                for batch in slow_start_batches(count) {
                    let results = join_all((0..batch).map(|_| api.create(&params, &pod))).await;
                    created += batch;
                    let failures = results.iter().filter(|r| r.is_err()).count();
                    if let Some(error) = results.into_iter().find_map(Result::err) {
                        // Failed creations and the batches never tried will not show up.
                        for _ in 0..failures + (count - created) {
                            self.expectations.creation_observed(&key);
                        }
                        tracing::info!(kind = K::KIND, %key, error = %writes::message(&error), "failed to create pods");
                        return Err((
                            ManageFailure { reason: "FailedCreate", message: writes::message(&error) },
                            error.into(),
                        ));
                    }
                }
                tracing::debug!(kind = K::KIND, %key, count, "created pods");
                Ok(())
            }
            Diff::Delete(count) => {
                let related = self.related_pods(view);
                let related: Vec<&Pod> = related.iter().map(|p| &**p).collect();
                let doomed: Vec<&Pod> = deletion_order(owned, if related.is_empty() { owned } else { &related }, now)
                    .into_iter()
                    .take(count)
                    .collect();
                self.expectations.expect_deletions(&key, doomed.iter().filter_map(|p| p.uid()), Instant::now());
                let results = join_all(doomed.iter().map(|pod| async {
                    let uid = pod.uid().unwrap_or_default();
                    let result = writes::delete_with_uid(&api, &pod.name_any(), &uid).await;
                    if result.is_err() {
                        self.expectations.deletion_observed(&key, &uid);
                    }
                    result
                }))
                .await;
                if let Some(error) = results.into_iter().find_map(Result::err) {
                    return Err((
                        ManageFailure { reason: "FailedDelete", message: writes::message(&error) },
                        error.into(),
                    ));
                }
                tracing::debug!(kind = K::KIND, %key, count, "deleted pods");
                Ok(())
            }
        }
    }

    /// Active pods of every object sharing this object's controller (the Deployment's other
    /// ReplicaSets), for ranking which pods to delete.
    fn related_pods(&self, view: &ReplicaView) -> Vec<Arc<Pod>> {
        let Some(controller_uid) = view.controller_uid.as_deref() else { return Vec::new() };
        let siblings: Vec<String> = self
            .owners
            .state()
            .iter()
            .filter(|o| {
                o.namespace().as_deref() == Some(&view.namespace)
                    && controller_of(o.meta()).is_some_and(|r| r.uid == controller_uid)
            })
            .filter_map(|o| o.uid())
            .collect();
        self.pods
            .state()
            .into_iter()
            .filter(|p| is_active(p) && controller_of(&p.metadata).is_some_and(|r| siblings.contains(&r.uid)))
            .collect()
    }
}

/// The owner keys a pod change concerns, observing expectations on the way (upstream's
/// `addPod`/`updatePod`/`deletePod` handlers).
pub fn pod_change_keys<K: ReplicaKind>(
    change: Change<Pod>,
    owners: &Store<K>,
    expectations: &Expectations,
) -> Vec<ObjectRef<K>> {
    let controlling = |pod: &Pod| -> Option<ObjectRef<K>> {
        let reference = controller_of(&pod.metadata)?;
        if reference.kind != K::KIND || reference.api_version != K::API_VERSION {
            return None;
        }
        let key = ObjectRef::new(&reference.name).within(pod.metadata.namespace.as_deref().unwrap_or_default());
        owners.get(&key).filter(|o| o.uid().as_deref() == Some(reference.uid.as_str())).map(|_| key)
    };
    let matching = |pod: &Pod| -> Vec<ObjectRef<K>> {
        owners
            .state()
            .iter()
            .filter(|o| o.namespace() == pod.metadata.namespace && o.selector().matches(pod.metadata.labels.as_ref()))
            .map(|o| ObjectRef::from_obj(&**o))
            .collect()
    };
    let key_string = |key: &ObjectRef<K>| format!("{}/{}", key.namespace.as_deref().unwrap_or_default(), key.name);
    let uid = |pod: &Pod| pod.metadata.uid.clone().unwrap_or_default();
    match change {
        Change::Deleted(pod) => {
            let Some(key) = controlling(&pod) else { return Vec::new() };
            expectations.deletion_observed(&key_string(&key), &uid(&pod));
            vec![key]
        }
        Change::Applied { old: None, new } => match controlling(&new) {
            Some(key) if is_terminating(&new) => {
                expectations.deletion_observed(&key_string(&key), &uid(&new));
                vec![key]
            }
            Some(key) => {
                expectations.creation_observed(&key_string(&key));
                vec![key]
            }
            None if controller_of(&new.metadata).is_none() && !is_terminating(&new) => matching(&new),
            None => Vec::new(),
        },
        Change::Applied { old: Some(old), new } => {
            let mut keys = Vec::new();
            if let Some(key) = controlling(&new) {
                if is_terminating(&new) {
                    expectations.deletion_observed(&key_string(&key), &uid(&new));
                }
                keys.push(key);
            }
            let labels_changed = old.metadata.labels != new.metadata.labels;
            let controller_changed = controller_of(&old.metadata) != controller_of(&new.metadata);
            if controller_changed {
                keys.extend(controlling(&old));
            }
            if controller_of(&new.metadata).is_none() && (labels_changed || controller_changed) {
                keys.extend(matching(&new));
            }
            keys.dedup();
            keys
        }
    }
}

/// Owner keys for a change to the owners themselves; a deleted owner's expectations go.
pub fn owner_change_keys<K: ReplicaKind>(change: Change<K>, expectations: &Expectations) -> Vec<ObjectRef<K>> {
    match change {
        Change::Applied { new, .. } => vec![ObjectRef::from_obj(&*new)],
        Change::Deleted(gone) => {
            expectations.forget(&format!("{}/{}", gone.namespace().unwrap_or_default(), gone.name_any()));
            Vec::new()
        }
    }
}
