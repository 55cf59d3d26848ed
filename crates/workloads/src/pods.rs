//! Pod predicates shared by every workload controller (active, ready, available, terminating),
//! the order in which a ReplicaSet prefers to delete pods, and building a Pod from a template.
//! Pure: no I/O.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Upstream's `controller.kubernetes.io/pod-deletion-cost` annotation.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

pub use frontdoor_informers::pods::{is_terminating, node_name, phase};

/// Not finished and not being deleted (upstream's `IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !is_terminating(pod)
}

/// The time the Ready condition last turned True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let condition = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (condition.status == "True").then(|| condition.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` (upstream's `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since.as_second() + i64::from(min_ready_seconds) < now.as_second(),
    }
}

/// Seconds until a ready pod becomes available, if it is ready but not yet available.
pub fn seconds_until_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<i64> {
    match ready_since(pod)? {
        Some(since) if min_ready_seconds > 0 => {
            let left = since.as_second() + i64::from(min_ready_seconds) - now.as_second() + 1;
            (left > 0).then_some(left)
        }
        _ => None,
    }
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.iter().flatten().find(|r| r.controller == Some(true))
}

/// A controller reference to `owner` (`controller` and `blockOwnerDeletion` set), as
/// `metav1.NewControllerRef` builds it.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A Pod from a controller's template (upstream's `GetPodFromTemplate`): labels, annotations
/// and finalizers of the template, the controller reference, and the template's spec. Either
/// `name` or `generate_name` names it.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner: OwnerReference,
    name: Option<String>,
    generate_name: Option<String>,
) -> Pod {
    let template_meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name,
            generate_name,
            namespace: Some(namespace.to_string()),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The pods a controller should delete first, in order (upstream's `ActivePodsWithRanks` with
/// `LogarithmicScaleDown`): unassigned before assigned; Pending before Unknown before Running;
/// not ready before ready; lower pod-deletion-cost first; pods on nodes crowded with related
/// pods first; ready more recently first (log₂ buckets); more restarts first; newer first
/// (log₂ buckets, then UID).
pub fn deletion_order<'a>(pods: &[&'a Pod], related: &[&Pod], now: Timestamp) -> Vec<&'a Pod> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for pod in related.iter().filter(|p| is_active(p)) {
        *on_node.entry(node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(&Pod, usize)> =
        pods.iter().map(|p| (*p, on_node.get(node_name(p)).copied().unwrap_or(0))).collect();
    ranked.sort_by(|(a, rank_a), (b, rank_b)| compare_for_deletion(a, *rank_a, b, *rank_b, now));
    ranked.into_iter().map(|(p, _)| p).collect()
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(POD_DELETION_COST)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// `Less` from upstream as an `Ordering`: `Less` means "delete `a` before `b`".
fn compare_for_deletion(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> Ordering {
    let (node_a, node_b) = (node_name(a), node_name(b));
    if node_a != node_b && (node_a.is_empty() || node_b.is_empty()) {
        return if node_a.is_empty() { Ordering::Less } else { Ordering::Greater };
    }
    let by = |ordering: Ordering| (ordering != Ordering::Equal).then_some(ordering);
    by(phase_ordinal(a).cmp(&phase_ordinal(b)))
        .or_else(|| by(is_ready(a).cmp(&is_ready(b))))
        .or_else(|| by(deletion_cost(a).cmp(&deletion_cost(b))))
        .or_else(|| by(rank_b.cmp(&rank_a)))
        .or_else(|| {
            let (ready_a, ready_b) = (ready_since(a).flatten(), ready_since(b).flatten());
            if !(is_ready(a) && is_ready(b)) || ready_a == ready_b {
                return None;
            }
            Some(compare_newer_first(ready_a, ready_b, a, b, now))
        })
        .or_else(|| by(max_restarts(b).cmp(&max_restarts(a))))
        .or_else(|| {
            let (created_a, created_b) = (
                a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
            );
            (created_a != created_b).then(|| compare_newer_first(created_a, created_b, a, b, now))
        })
        .unwrap_or(Ordering::Equal)
}

/// Zero times first, then newer before older in log₂ buckets of age; ties by UID.
fn compare_newer_first(t_a: Option<Timestamp>, t_b: Option<Timestamp>, a: &Pod, b: &Pod, now: Timestamp) -> Ordering {
    match (t_a, t_b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(t_a), Some(t_b)) => {
            let bucket = |t: Timestamp| {
                let age = now.as_nanosecond() - t.as_nanosecond();
                if age > 0 {
                    (age as f64).log2() as i64
                } else {
                    -1
                }
            };
            match bucket(t_a).cmp(&bucket(t_b)) {
                Ordering::Equal => a.metadata.uid.cmp(&b.metadata.uid),
                other => other,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub(crate) fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    /// A pod for tests: `ready_at` = Some(t) makes it Running and Ready since t.
    pub(crate) fn pod(name: &str, node: &str, phase: &str, ready_at: Option<i64>, created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(at(created))),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: (!node.is_empty()).then(|| node.to_string()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(at(t))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    fn names(pods: Vec<&Pod>) -> Vec<&str> {
        pods.into_iter().map(|p| p.metadata.name.as_deref().unwrap()).collect()
    }

    #[test]
    fn deletion_order_table() {
        let now = at(100_000);
        let cases: Vec<(&str, Vec<Pod>, Vec<&str>)> = vec![
            (
                "unscheduled first",
                vec![pod("scheduled", "n1", "Pending", None, 0), pod("unscheduled", "", "Pending", None, 0)],
                vec!["unscheduled", "scheduled"],
            ),
            (
                "pending < unknown < running",
                vec![
                    pod("running", "n1", "Running", None, 0),
                    pod("unknown", "n1", "Unknown", None, 0),
                    pod("pending", "n1", "Pending", None, 0),
                ],
                vec!["pending", "unknown", "running"],
            ),
            (
                "not ready first",
                vec![pod("ready", "n1", "Running", Some(0), 0), pod("notready", "n1", "Running", None, 0)],
                vec!["notready", "ready"],
            ),
            (
                "ready more recently first",
                vec![pod("long", "n1", "Running", Some(10), 0), pod("recent", "n1", "Running", Some(99_990), 0)],
                vec!["recent", "long"],
            ),
            (
                "newer first",
                vec![pod("old", "n1", "Pending", None, 0), pod("new", "n1", "Pending", None, 99_000)],
                vec!["new", "old"],
            ),
        ];
        for (name, pods, expected) in cases {
            let refs: Vec<&Pod> = pods.iter().collect();
            assert_eq!(names(deletion_order(&refs, &refs, now)), expected, "{name}");
        }
    }

    #[test]
    fn crowded_nodes_and_deletion_cost_and_restarts() {
        let now = at(100_000);
        let a = pod("alone", "n1", "Running", Some(0), 0);
        let b = pod("crowded", "n2", "Running", Some(0), 0);
        let c = pod("crowded-peer", "n2", "Running", Some(0), 0);
        let all = [&a, &b, &c];
        assert_eq!(names(deletion_order(&[&a, &b], &all, now)), ["crowded", "alone"]);

        let mut cheap = pod("cheap", "n1", "Running", Some(0), 0);
        cheap.metadata.annotations = Some([(POD_DELETION_COST.to_string(), "-5".to_string())].into());
        let mut restarted = pod("restarted", "n1", "Running", Some(0), 0);
        restarted.status.as_mut().unwrap().container_statuses =
            Some(vec![ContainerStatus { restart_count: 3, ..Default::default() }]);
        assert_eq!(names(deletion_order(&[&a, &cheap], &[&a, &cheap], now)), ["cheap", "alone"]);
        assert_eq!(names(deletion_order(&[&a, &restarted], &[&a, &restarted], now)), ["restarted", "alone"]);
    }

    #[test]
    fn availability_needs_min_ready_seconds() {
        let p = pod("p", "n", "Running", Some(0), 0);
        assert!(is_available(&p, 0, at(0)));
        assert!(!is_available(&p, 10, at(5)));
        assert!(is_available(&p, 10, at(11)));
        assert_eq!(seconds_until_available(&p, 10, at(5)), Some(6));
        assert!(!is_available(&pod("q", "n", "Running", None, 0), 0, at(0)));
    }

    #[test]
    fn active_excludes_finished_and_terminating() {
        let mut p = pod("p", "n", "Running", None, 0);
        assert!(is_active(&p));
        p.metadata.deletion_timestamp = Some(Time(at(1)));
        assert!(!is_active(&p));
        assert!(!is_active(&pod("f", "n", "Failed", None, 0)));
    }
}
