//! StatefulSets: pods with stable names `<set>-<ordinal>`, created in order (or all at once),
//! removed from the highest ordinal, rolled from the highest ordinal down to the partition.
//!
//! The pure core ([`plan`]) follows upstream's `updateStatefulSet`; [`controller`] runs it.
//! Each template the set has had is a ControllerRevision ([`history`]); a pod below the
//! partition that has to be recreated gets the current revision's template, the others the
//! update revision's.

pub mod controller;
pub mod history;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use std::time::Duration;

use crate::pods::{
    controller_ref, is_available, is_ready, is_terminating, phase, pod_from_template, seconds_until_available,
};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";

pub use history::{update_revision, Revisions};

/// A StatefulSet's spec with the API's defaults (OrderedReady, RollingUpdate, partition 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub replicas: i32,
    pub start_ordinal: i32,
    pub ordered_ready: bool,
    pub min_ready_seconds: i32,
    /// `None` for OnDelete; the partition for RollingUpdate.
    pub rolling_partition: Option<i32>,
    pub service_name: String,
}

impl Settings {
    pub fn of(set: &StatefulSet) -> Settings {
        let spec = set.spec.clone().unwrap_or_default();
        let strategy = spec.update_strategy.unwrap_or_default();
        Settings {
            replicas: spec.replicas.unwrap_or(1).max(0),
            start_ordinal: spec.ordinals.and_then(|o| o.start).unwrap_or(0).max(0),
            ordered_ready: spec.pod_management_policy.as_deref() != Some("Parallel"),
            min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
            rolling_partition: match strategy.type_.as_deref() {
                Some("OnDelete") => None,
                _ => Some(strategy.rolling_update.and_then(|r| r.partition).unwrap_or(0).max(0)),
            },
            service_name: spec.service_name.unwrap_or_default(),
        }
    }
}

/// One write, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    CreatePod(Box<Pod>),
    DeletePod {
        name: String,
        uid: String,
    },
    /// Put back the identity labels of an existing pod (a merge patch).
    RepairIdentity {
        name: String,
        patch: Value,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub status: StatefulSetStatus,
    pub requeue_after: Option<Duration>,
}

/// The parent name and ordinal a pod name encodes (`web-2` → (`web`, 2)).
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, ordinal) = name.rsplit_once('-')?;
    if ordinal.is_empty()
        || !ordinal.bytes().all(|b| b.is_ascii_digit())
        || (ordinal.len() > 1 && ordinal.starts_with('0'))
    {
        return None;
    }
    Some((parent, ordinal.parse().ok()?))
}

pub fn is_member(set: &StatefulSet, pod: &Pod) -> bool {
    let set_name = set.metadata.name.as_deref().unwrap_or_default();
    pod.metadata.name.as_deref().and_then(parent_and_ordinal).is_some_and(|(parent, _)| parent == set_name)
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref().and_then(|l| l.get(REVISION_LABEL)).map(String::as_str)
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

fn healthy(pod: &Pod, settings: &Settings, now: Timestamp) -> bool {
    running_and_ready(pod) && !is_terminating(pod) && is_available(pod, settings.min_ready_seconds, now)
}

/// A new pod for `ordinal` from `template` at `revision` (upstream's `newStatefulSetPod` +
/// `initIdentity` + revision label).
pub fn new_pod(
    set: &StatefulSet,
    settings: &Settings,
    ordinal: i32,
    template: &PodTemplateSpec,
    revision: &str,
) -> Pod {
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let name = format!("{set_name}-{ordinal}");
    let owner = controller_ref("apps/v1", "StatefulSet", &set.metadata);
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let mut pod = pod_from_template(template, &namespace, owner, Some(name.clone()), None);
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    if !settings.service_name.is_empty() {
        spec.subdomain = Some(settings.service_name.clone());
    }
    pod
}

/// Upstream's `updateStatefulSet` for the member pods this set controls, at `revisions`.
pub fn plan(set: &StatefulSet, revisions: &Revisions, pods: &[&Pod], now: Timestamp) -> Plan {
    let settings = Settings::of(set);
    let count = settings.replicas as usize;
    let mut replicas: Vec<Option<Pod>> = vec![None; count];
    let mut condemned: Vec<Pod> = Vec::new();
    for pod in pods {
        let Some((_, ordinal)) = parent_and_ordinal(pod_name(pod)) else { continue };
        let index = i64::from(ordinal) - i64::from(settings.start_ordinal);
        if (0..count as i64).contains(&index) {
            replicas[index as usize] = Some((*pod).clone());
        } else {
            condemned.push((*pod).clone());
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(parent_and_ordinal(pod_name(p)).map(|(_, o)| o).unwrap_or(0)));
    let mut step = Step { set, settings, revisions, actions: Vec::new(), requeue: None, now };
    if set.metadata.deletion_timestamp.is_none() {
        step.run(&mut replicas, &mut condemned);
    }
    let status = step.status(&replicas, &condemned, &revisions.current);
    Plan { actions: step.actions, status, requeue_after: step.requeue }
}

struct Step<'a> {
    set: &'a StatefulSet,
    settings: Settings,
    revisions: &'a Revisions,
    actions: Vec<Action>,
    requeue: Option<Duration>,
    now: Timestamp,
}

impl Step<'_> {
    /// Upstream's `newVersionedStatefulSetPod`: below the partition a pod is made at the
    /// current revision, from there on at the update revision.
    fn new_pod(&self, ordinal: i32) -> Pod {
        let below_partition =
            self.settings.rolling_partition.is_some_and(|p| ordinal < self.settings.start_ordinal + p);
        if below_partition {
            new_pod(self.set, &self.settings, ordinal, &self.revisions.current_template, &self.revisions.current)
        } else {
            let none = PodTemplateSpec::default();
            let template = self.set.spec.as_ref().map_or(&none, |s| &s.template);
            new_pod(self.set, &self.settings, ordinal, template, &self.revisions.update)
        }
    }

    fn delete(&mut self, pod: &mut Pod) {
        self.actions.push(Action::DeletePod {
            name: pod_name(pod).to_string(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        });
        pod.metadata.deletion_timestamp = Some(Time(self.now));
    }

    fn wait_available(&mut self, pod: &Pod) {
        if let Some(seconds) = seconds_until_available(pod, self.settings.min_ready_seconds, self.now) {
            let after = Duration::from_secs(seconds.max(1) as u64);
            self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
        }
    }

    /// Creates, replaces, scales down and rolls; returns early where OrderedReady must wait.
    fn run(&mut self, replicas: &mut [Option<Pod>], condemned: &mut [Pod]) {
        let monotonic = self.settings.ordered_ready;
        let first_unhealthy = replicas
            .iter()
            .flatten()
            .chain(condemned.iter())
            .find(|p| !healthy(p, &self.settings, self.now))
            .map(|p| pod_name(p).to_string());

        for (index, slot) in replicas.iter_mut().enumerate() {
            let ordinal = self.settings.start_ordinal + index as i32;
            match slot {
                Some(pod) if matches!(phase(pod), "Failed" | "Succeeded") => {
                    // Replaced on a later sync, once the old pod is gone.
                    if !is_terminating(pod) {
                        self.delete(pod);
                    }
                    if monotonic {
                        return;
                    }
                }
                None => {
                    let pod = self.new_pod(ordinal);
                    self.actions.push(Action::CreatePod(Box::new(pod.clone())));
                    let mut created = pod;
                    created.status = Some(k8s_openapi::api::core::v1::PodStatus {
                        phase: Some("Pending".into()),
                        ..Default::default()
                    });
                    *slot = Some(created);
                    if monotonic {
                        return;
                    }
                }
                Some(pod) => {
                    if monotonic && (is_terminating(pod) || !running_and_ready(pod)) {
                        return;
                    }
                    if monotonic && !is_available(pod, self.settings.min_ready_seconds, self.now) {
                        self.wait_available(&pod.clone());
                        return;
                    }
                    if let Some(patch) = identity_repair(pod, ordinal) {
                        self.actions.push(Action::RepairIdentity { name: pod_name(pod).to_string(), patch });
                    }
                }
            }
        }

        for pod in condemned.iter_mut() {
            if is_terminating(pod) {
                if monotonic {
                    return;
                }
                continue;
            }
            let first = first_unhealthy.as_deref() == Some(pod_name(pod));
            if monotonic && !running_and_ready(pod) && !first {
                return;
            }
            if monotonic && !is_available(pod, self.settings.min_ready_seconds, self.now) && !first {
                self.wait_available(&pod.clone());
                return;
            }
            self.delete(pod);
            if monotonic {
                return;
            }
        }

        let Some(partition) = self.settings.rolling_partition else { return };
        for index in (partition.max(0) as usize..replicas.len()).rev() {
            let Some(pod) = replicas[index].as_mut() else { continue };
            if revision_of(pod) != Some(self.revisions.update.as_str()) && !is_terminating(pod) {
                self.delete(pod);
                return;
            }
            if !healthy(pod, &self.settings, self.now) {
                let pod = pod.clone();
                self.wait_available(&pod);
                return;
            }
        }
    }

    /// Upstream's status computation plus `completeRollingUpdate`.
    fn status(&self, replicas: &[Option<Pod>], condemned: &[Pod], current: &str) -> StatefulSetStatus {
        let mut status = StatefulSetStatus {
            observed_generation: self.set.metadata.generation,
            current_revision: Some(current.to_string()),
            update_revision: Some(self.revisions.update.clone()),
            collision_count: Some(self.revisions.collisions),
            conditions: self.set.status.as_ref().and_then(|s| s.conditions.clone()),
            available_replicas: Some(0),
            ..Default::default()
        };
        let (mut ready, mut available, mut current_count, mut updated) = (0, 0, 0, 0);
        for pod in replicas.iter().flatten().chain(condemned.iter()) {
            status.replicas += 1;
            if running_and_ready(pod) {
                ready += 1;
                if is_available(pod, self.settings.min_ready_seconds, self.now) {
                    available += 1;
                }
            }
            if !is_terminating(pod) {
                let revision = revision_of(pod);
                if revision == Some(current) {
                    current_count += 1;
                }
                if revision == Some(self.revisions.update.as_str()) {
                    updated += 1;
                }
            }
        }
        let some = |n: i32| (n != 0).then_some(n);
        status.ready_replicas = some(ready);
        status.available_replicas = Some(available);
        status.current_replicas = some(current_count);
        status.updated_replicas = some(updated);
        if self.settings.rolling_partition.is_some() && updated == status.replicas && ready == status.replicas {
            status.current_replicas = status.updated_replicas;
            status.current_revision = status.update_revision.clone();
        }
        status
    }
}

/// A merge patch restoring the pod-name and pod-index labels, if either is wrong.
fn identity_repair(pod: &Pod, ordinal: i32) -> Option<Value> {
    let name = pod_name(pod);
    let labels = pod.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    let index = ordinal.to_string();
    if label(POD_NAME_LABEL) == Some(name) && label(POD_INDEX_LABEL) == Some(index.as_str()) {
        return None;
    }
    Some(
        json!({"metadata": {"labels": {POD_NAME_LABEL: name, POD_INDEX_LABEL: index}, "resourceVersion": pod.metadata.resource_version}}),
    )
}

#[cfg(test)]
mod tests;
