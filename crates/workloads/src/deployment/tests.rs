//! Table-style tests of whole Deployment syncs: inputs (Deployment, ReplicaSets, pods) in,
//! writes and status out.

use super::annotations::{DESIRED_REPLICAS, MAX_REPLICAS, REVISION, REVISION_HISTORY};
use super::status::{get_condition, AVAILABLE, PROGRESSING};
use super::*;
use crate::hash::template_hash;
use crate::pods::tests::{at, pod};
use k8s_openapi::api::apps::v1::{
    DeploymentCondition, DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "web".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

struct D {
    replicas: i32,
    strategy: &'static str,
    surge: IntOrString,
    unavailable: IntOrString,
    image: &'static str,
    paused: bool,
    history: Option<i32>,
}

impl Default for D {
    fn default() -> Self {
        D {
            replicas: 3,
            strategy: "RollingUpdate",
            surge: IntOrString::Int(1),
            unavailable: IntOrString::Int(0),
            image: "v2",
            paused: false,
            history: None,
        }
    }
}

fn deployment(d: D) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(d.replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            template: template(d.image),
            paused: Some(d.paused),
            revision_history_limit: d.history,
            strategy: Some(DeploymentStrategy {
                type_: Some(d.strategy.into()),
                rolling_update: (d.strategy == "RollingUpdate").then_some(RollingUpdateDeployment {
                    max_surge: Some(d.surge),
                    max_unavailable: Some(d.unavailable),
                }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// A ReplicaSet of `image` with `replicas` (all of them existing) of which `available` are
/// available, at `revision`, created at `created`, last scaled for a Deployment of `desired`.
fn rs(image: &str, replicas: i32, available: i32, revision: i64, created: i64, desired: i32, max: i32) -> ReplicaSet {
    let mut t = template(image);
    let hash = template_hash(&t, None);
    t.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let annotations: BTreeMap<String, String> = [
        (REVISION.to_string(), revision.to_string()),
        (DESIRED_REPLICAS.to_string(), desired.to_string()),
        (MAX_REPLICAS.to_string(), max.to_string()),
    ]
    .into();
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("web-{hash}")),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{image}")),
            creation_timestamp: Some(Time(at(created))),
            generation: Some(1),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                controller: Some(true),
                uid: "d-uid".into(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(0),
            template: Some(t),
            ..Default::default()
        }),
        status: Some(ReplicaSetStatus {
            replicas,
            ready_replicas: Some(available),
            available_replicas: Some(available),
            observed_generation: Some(1),
            ..Default::default()
        }),
    }
}

fn run(deployment: &Deployment, replica_sets: Vec<ReplicaSet>) -> Plan {
    run_at(deployment, replica_sets, HashMap::new(), at(1000))
}

fn run_at<'a>(
    deployment: &'a Deployment,
    replica_sets: Vec<ReplicaSet>,
    pods: HashMap<String, Vec<&'a Pod>>,
    now: Timestamp,
) -> Plan {
    plan(SyncInput { deployment, replica_sets, pods_by_replica_set: pods, now })
}

/// The replica counts the plan writes, as (image, replicas).
fn scaled(plan: &Plan) -> Vec<(String, i32)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdateReplicaSet(rs) | Action::CreateReplicaSet(rs) => {
                let spec = rs.spec.as_ref().unwrap();
                let image = spec.template.as_ref().unwrap().spec.as_ref().unwrap().containers[0].image.clone().unwrap();
                Some((image, spec.replicas.unwrap()))
            }
            _ => None,
        })
        .collect()
}

fn reason<'a>(plan: &'a Plan, type_: &str) -> Option<&'a str> {
    get_condition(plan.status.as_ref().unwrap(), type_).and_then(|c| c.reason.as_deref())
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, i32)> {
    pairs.iter().map(|(image, n)| (image.to_string(), n.parse().unwrap())).collect()
}

#[test]
fn a_new_deployment_creates_its_first_replica_set() {
    let d = deployment(D {
        strategy: "RollingUpdate",
        surge: IntOrString::String("25%".into()),
        unavailable: IntOrString::String("25%".into()),
        ..D::default()
    });
    let plan = run(&d, vec![]);
    let Action::CreateReplicaSet(created) = &plan.actions[0] else { panic!("{:?}", plan.actions) };
    let hash = template_hash(&template("v2"), None);
    assert_eq!(created.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.match_labels.as_ref().unwrap().get(POD_TEMPLATE_HASH), Some(&hash));
    assert_eq!(
        spec.template.as_ref().unwrap().metadata.as_ref().unwrap().labels.as_ref().unwrap().get(POD_TEMPLATE_HASH),
        Some(&hash)
    );
    let annotations = created.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations.get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(annotations.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
    assert_eq!(annotations.get(MAX_REPLICAS).map(String::as_str), Some("4"));
    assert_eq!(created.metadata.owner_references.as_ref().unwrap()[0].kind, "Deployment");
    assert_eq!(plan.actions[1], Action::SetDeploymentRevision("1".into()));
    assert_eq!(reason(&plan, PROGRESSING), Some("NewReplicaSetCreated"));
    assert_eq!(reason(&plan, AVAILABLE), Some("MinimumReplicasUnavailable"));
}

#[test]
fn rolling_update_steps() {
    // (description, old (replicas, available), new (replicas, available) or none, expected writes)
    type Case = (&'static str, (i32, i32), Option<(i32, i32)>, Vec<(String, i32)>);
    let cases: Vec<Case> = vec![
        ("surge first: the new ReplicaSet starts at maxSurge", (3, 3), None, owned(&[("v2", "1")])),
        ("maxUnavailable 0: wait while the new pod is unavailable", (3, 3), Some((1, 0)), owned(&[])),
        ("the new pod is available: one old pod goes", (3, 3), Some((1, 1)), owned(&[("v1", "2")])),
        ("room under the surge: the new ReplicaSet grows", (2, 2), Some((1, 1)), owned(&[("v2", "2")])),
        (
            "maxUnavailable 0 holds while the new pod is unavailable, even with unhealthy old pods",
            (3, 1),
            Some((1, 0)),
            owned(&[]),
        ),
        ("last step", (1, 1), Some((3, 3)), owned(&[("v1", "0")])),
    ];
    for (name, (old_replicas, old_available), new, expected) in cases {
        let d = deployment(D::default());
        let mut replica_sets = vec![rs("v1", old_replicas, old_available, 1, 0, 3, 4)];
        if let Some((replicas, available)) = new {
            replica_sets.push(rs("v2", replicas, available, 2, 10, 3, 4));
        }
        let plan = run(&d, replica_sets);
        assert_eq!(scaled(&plan), expected, "{name}: {:?}", plan.actions);
    }
}

#[test]
fn unhealthy_old_replicas_are_removed_within_max_unavailable() {
    let d = deployment(D { unavailable: IntOrString::Int(1), surge: IntOrString::Int(0), ..D::default() });
    // old: 3 replicas, 2 available; new: 0 → total 3, minAvailable 2: one unhealthy old pod goes.
    let plan = run(&d, vec![rs("v1", 3, 2, 1, 0, 3, 3), rs("v2", 0, 0, 2, 10, 3, 3)]);
    assert_eq!(scaled(&plan), owned(&[("v1", "2")]));
}

#[test]
fn a_complete_rollout_reports_success() {
    let d = deployment(D::default());
    let plan = run(&d, vec![rs("v1", 0, 0, 1, 0, 3, 4), rs("v2", 3, 3, 2, 10, 3, 4)]);
    assert!(scaled(&plan).is_empty(), "{:?}", plan.actions);
    let status = plan.status.as_ref().unwrap();
    assert_eq!(
        (status.replicas, status.updated_replicas, status.available_replicas, status.unavailable_replicas),
        (Some(3), Some(3), Some(3), None)
    );
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(reason(&plan, PROGRESSING), Some("NewReplicaSetAvailable"));
    assert_eq!(reason(&plan, AVAILABLE), Some("MinimumReplicasAvailable"));
    let message = get_condition(status, PROGRESSING).unwrap().message.clone().unwrap();
    assert!(
        message.starts_with("ReplicaSet \"web-") && message.ends_with("\" has successfully progressed."),
        "{message}"
    );
}

#[test]
fn recreate_scales_old_down_waits_for_pods_then_creates() {
    let d = deployment(D { strategy: "Recreate", ..D::default() });
    let plan = run(&d, vec![rs("v1", 2, 2, 1, 0, 3, 3)]);
    assert_eq!(scaled(&plan), owned(&[("v1", "0")]));

    // Scaled to zero but a pod is still running: wait.
    let running = pod("web-old", "n", "Running", Some(0), 0);
    let mut old = rs("v1", 0, 0, 1, 0, 3, 3);
    old.status.as_mut().unwrap().replicas = 0;
    let pods = HashMap::from([("uid-v1".to_string(), vec![&running])]);
    let plan = run_at(&d, vec![old.clone()], pods, at(1000));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);

    // All old pods gone: the new ReplicaSet is created at full size.
    let plan = run(&d, vec![old]);
    assert_eq!(scaled(&plan), owned(&[("v2", "3")]));
}

#[test]
fn scaling_during_a_rollout_is_proportional() {
    let d = deployment(D {
        replicas: 20,
        surge: IntOrString::String("25%".into()),
        unavailable: IntOrString::Int(0),
        ..D::default()
    });
    // Last scaled for 10 replicas (max 13): old has 6, new has 4 (mid-rollout, not saturated).
    let plan = run(&d, vec![rs("v1", 6, 6, 1, 0, 10, 13), rs("v2", 4, 0, 2, 10, 10, 13)]);
    let writes = scaled(&plan);
    let total: i32 = writes.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 25, "{writes:?}");
    assert_eq!(writes, owned(&[("v1", "17"), ("v2", "8")]));
    for action in &plan.actions {
        if let Action::UpdateReplicaSet(rs) = action {
            assert_eq!(rs.metadata.annotations.as_ref().unwrap().get(DESIRED_REPLICAS).map(String::as_str), Some("20"));
            assert_eq!(rs.metadata.annotations.as_ref().unwrap().get(MAX_REPLICAS).map(String::as_str), Some("25"));
        }
    }
    // Scaling down to zero removes everything.
    let d = deployment(D { replicas: 0, ..D::default() });
    let plan = run(&d, vec![rs("v1", 6, 6, 1, 0, 10, 13), rs("v2", 4, 0, 2, 10, 10, 13)]);
    assert_eq!(scaled(&plan), owned(&[("v1", "0"), ("v2", "0")]));
}

#[test]
fn scaling_a_settled_deployment_resizes_its_one_replica_set() {
    let d = deployment(D { replicas: 5, ..D::default() });
    let plan = run(&d, vec![rs("v1", 0, 0, 1, 0, 3, 4), rs("v2", 3, 3, 2, 10, 3, 4)]);
    assert_eq!(scaled(&plan), owned(&[("v2", "5")]));
}

#[test]
fn old_revisions_beyond_the_history_limit_are_deleted() {
    let mut d = deployment(D { history: Some(1), ..D::default() });
    d.status = Some(DeploymentStatus {
        replicas: Some(3),
        updated_replicas: Some(3),
        available_replicas: Some(3),
        observed_generation: Some(1),
        ..Default::default()
    });
    let plan = run(
        &d,
        vec![
            rs("v0", 0, 0, 1, 0, 3, 4),
            rs("v1", 0, 0, 2, 5, 3, 4),
            rs("v1b", 0, 0, 3, 7, 3, 4),
            rs("v2", 3, 3, 4, 10, 3, 4),
        ],
    );
    let deleted: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| if let Action::DeleteReplicaSet { uid, .. } = a { Some(uid.as_str()) } else { None })
        .collect();
    assert_eq!(deleted, ["uid-v0", "uid-v1"]);
}

#[test]
fn rolling_back_reuses_the_old_replica_set_with_the_next_revision() {
    // kubectl rollout undo put v1's template back into the Deployment.
    let d = deployment(D { image: "v1", ..D::default() });
    let plan = run(&d, vec![rs("v1", 0, 0, 1, 0, 3, 4), rs("v2", 3, 3, 2, 10, 3, 4)]);
    let Action::UpdateReplicaSet(updated) = &plan.actions[0] else { panic!("{:?}", plan.actions) };
    let annotations = updated.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations.get(REVISION).map(String::as_str), Some("3"));
    assert_eq!(annotations.get(REVISION_HISTORY).map(String::as_str), Some("1"));
    assert!(!plan.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))));
}

#[test]
fn a_paused_deployment_does_not_roll_out() {
    let d = deployment(D { paused: true, ..D::default() });
    let plan = run(&d, vec![rs("v1", 3, 3, 1, 0, 3, 4)]);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    let progressing = get_condition(plan.status.as_ref().unwrap(), PROGRESSING).unwrap();
    assert_eq!((progressing.status.as_str(), progressing.reason.as_deref()), ("Unknown", Some("DeploymentPaused")));
}

#[test]
fn no_progress_past_the_deadline_times_out() {
    let mut d = deployment(D::default());
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(60);
    d.status = Some(DeploymentStatus {
        replicas: Some(4),
        updated_replicas: Some(1),
        available_replicas: Some(3),
        ready_replicas: Some(3),
        observed_generation: Some(1),
        conditions: Some(vec![DeploymentCondition {
            type_: PROGRESSING.into(),
            status: "True".into(),
            reason: Some("ReplicaSetUpdated".into()),
            last_update_time: Some(Time(at(0))),
            last_transition_time: Some(Time(at(0))),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let replica_sets = vec![rs("v1", 3, 3, 1, 0, 3, 4), rs("v2", 1, 0, 2, 10, 3, 4)];
    let early = run_at(&d, replica_sets.clone(), HashMap::new(), at(30));
    assert_eq!(reason(&early, PROGRESSING), Some("ReplicaSetUpdated"));
    assert_eq!(early.requeue_after, Some(std::time::Duration::from_secs(31)));
    let late = run_at(&d, replica_sets, HashMap::new(), at(61));
    let condition = get_condition(late.status.as_ref().unwrap(), PROGRESSING).unwrap();
    assert_eq!((condition.status.as_str(), condition.reason.as_deref()), ("False", Some("ProgressDeadlineExceeded")));
}
