//! ReplicaSets and ReplicationControllers: keep `spec.replicas` pods from the template.
//!
//! This module is the pure core (how many to create or delete, which to delete, what the status
//! says); [`controller`] is the runner that reads caches and talks to the API. ReplicaSets and
//! ReplicationControllers share both through [`ReplicaView`], the fields the two kinds have in
//! common.

pub mod controller;

use k8s_openapi::api::apps::v1::{ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

use crate::pods::{is_available, is_ready, seconds_until_available};
use crate::selector::Selector;

/// What the core needs from a ReplicaSet or ReplicationController.
#[derive(Clone, Debug)]
pub struct ReplicaView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: Option<i64>,
    pub deleting: bool,
    pub replicas: i32,
    pub min_ready_seconds: i32,
    pub selector: Selector,
    pub template: Option<PodTemplateSpec>,
    /// The status as stored (a ReplicationController's has the same shape).
    pub status: ReplicaSetStatus,
    /// The controller reference that created pods carry.
    pub pod_owner: OwnerReference,
    /// The UID of this object's own controller (a Deployment), whose other ReplicaSets' pods
    /// count as related when ranking pods for deletion.
    pub controller_uid: Option<String>,
}

impl ReplicaView {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What a sync does to the pod count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diff {
    Nothing,
    Create(usize),
    Delete(usize),
}

/// Upstream's `manageReplicas` arithmetic: at most `burst` pods per sync.
pub fn replica_diff(desired: i32, active: usize, burst: usize) -> Diff {
    let diff = active as i64 - i64::from(desired.max(0));
    match diff {
        d if d < 0 => Diff::Create(((-d) as usize).min(burst)),
        d if d > 0 => Diff::Delete((d as usize).min(burst)),
        _ => Diff::Nothing,
    }
}

/// Batch sizes for creating `count` pods: 1, 2, 4, … (upstream's `slowStartBatch`), so a
/// template the server rejects costs one failed request, not hundreds.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut left, mut size) = (count, 1usize);
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size *= 2;
    }
    batches
}

/// A failed create or delete, reported in the `ReplicaFailure` condition.
#[derive(Clone, Debug, PartialEq)]
pub struct ManageFailure {
    /// `FailedCreate` or `FailedDelete`.
    pub reason: &'static str,
    pub message: String,
}

/// The status upstream's `calculateStatus` produces for the active pods this object owns.
pub fn calculate_status(
    view: &ReplicaView,
    pods: &[&Pod],
    failure: Option<&ManageFailure>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let template_labels =
        view.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    let fully_labeled = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            template_labels.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .count();
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let available = pods.iter().filter(|p| is_available(p, view.min_ready_seconds, now)).count();
    let mut conditions = view.status.conditions.clone().unwrap_or_default();
    match failure {
        Some(failure) => {
            let unchanged = conditions.iter().any(|c| {
                c.type_ == "ReplicaFailure" && c.status == "True" && c.reason.as_deref() == Some(failure.reason)
            });
            if !unchanged {
                conditions.retain(|c| c.type_ != "ReplicaFailure");
                conditions.push(ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some(failure.reason.into()),
                    message: Some(failure.message.clone()),
                    last_transition_time: Some(Time(now)),
                });
            }
        }
        None => conditions.retain(|c| c.type_ != "ReplicaFailure"),
    }
    let some = |n: usize| (n > 0).then_some(n as i32);
    ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: some(fully_labeled),
        ready_replicas: some(ready),
        available_replicas: some(available),
        observed_generation: view.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        ..Default::default()
    }
}

/// When to look again so availability (`minReadySeconds`) is noticed without a pod event.
pub fn availability_recheck(view: &ReplicaView, pods: &[&Pod], now: Timestamp) -> Option<std::time::Duration> {
    pods.iter()
        .filter_map(|p| seconds_until_available(p, view.min_ready_seconds, now))
        .min()
        .map(|s| std::time::Duration::from_secs(s.max(1) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::tests::{at, pod};

    pub(crate) fn view(replicas: i32, min_ready: i32) -> ReplicaView {
        let template = PodTemplateSpec {
            metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string()), ("tier".to_string(), "fe".to_string())].into()),
                ..Default::default()
            }),
            spec: None,
        };
        ReplicaView {
            namespace: "default".into(),
            name: "web".into(),
            uid: "rs-uid".into(),
            generation: Some(3),
            deleting: false,
            replicas,
            min_ready_seconds: min_ready,
            selector: Selector::from_map(&[("app".to_string(), "web".to_string())].into()),
            template: Some(template),
            status: ReplicaSetStatus::default(),
            pod_owner: OwnerReference::default(),
            controller_uid: None,
        }
    }

    #[test]
    fn diff_table() {
        let cases = [
            (3, 0, 500, Diff::Create(3)),
            (3, 3, 500, Diff::Nothing),
            (1, 3, 500, Diff::Delete(2)),
            (1000, 0, 500, Diff::Create(500)),
            (0, 2, 500, Diff::Delete(2)),
            (-1, 0, 500, Diff::Nothing),
        ];
        for (desired, active, burst, expected) in cases {
            assert_eq!(replica_diff(desired, active, burst), expected, "desired {desired} active {active}");
        }
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    }

    #[test]
    fn status_counts_labels_readiness_and_availability() {
        let mut labeled = pod("a", "n", "Running", Some(0), 0);
        labeled.metadata.labels =
            Some([("app".to_string(), "web".to_string()), ("tier".to_string(), "fe".to_string())].into());
        let partly = pod("b", "n", "Running", Some(95), 0);
        let pending = pod("c", "", "Pending", None, 0);
        let pods = [&labeled, &partly, &pending];
        let status = calculate_status(&view(3, 10), &pods, None, at(100));
        assert_eq!(status.replicas, 3);
        assert_eq!(status.fully_labeled_replicas, Some(1));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(1));
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.conditions, None);
        assert_eq!(availability_recheck(&view(3, 10), &pods, at(100)), Some(std::time::Duration::from_secs(6)));
    }

    #[test]
    fn replica_failure_condition_is_set_kept_and_cleared() {
        let failure = ManageFailure { reason: "FailedCreate", message: "quota".into() };
        let mut v = view(1, 0);
        let status = calculate_status(&v, &[], Some(&failure), at(1));
        let condition = &status.conditions.as_ref().unwrap()[0];
        assert_eq!((condition.type_.as_str(), condition.reason.as_deref()), ("ReplicaFailure", Some("FailedCreate")));
        v.status = status.clone();
        // The same failure again keeps the first transition time.
        let again = calculate_status(&v, &[], Some(&failure), at(50));
        assert_eq!(again.conditions, status.conditions);
        assert_eq!(calculate_status(&v, &[], None, at(60)).conditions, None);
    }
}
