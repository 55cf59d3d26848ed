//! Whole StatefulSet syncs: member pods in, writes and status out.

use super::*;
use crate::pods::tests::{at, pod};
use k8s_openapi::api::apps::v1::{RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

fn set(replicas: i32, policy: &str, image: &str, partition: Option<i32>) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("sts-uid".into()),
            generation: Some(2),
            ..Default::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("nginx".into()),
            pod_management_policy: Some(policy.into()),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some([("app".to_string(), "web".to_string())].into()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container { name: "web".into(), image: Some(image.into()), ..Default::default() }],
                    ..Default::default()
                }),
            },
            update_strategy: partition.map(|p| StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy { partition: Some(p), ..Default::default() }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// A member pod at `revision`: ready (Running and Ready) or just Pending.
fn member(name: &str, revision: &str, ready: bool) -> Pod {
    let mut p = pod(name, "node", if ready { "Running" } else { "Pending" }, ready.then_some(0), 0);
    let ordinal = parent_and_ordinal(name).unwrap().1;
    p.metadata.labels = Some(
        [
            (POD_NAME_LABEL.to_string(), name.to_string()),
            (POD_INDEX_LABEL.to_string(), ordinal.to_string()),
            (REVISION_LABEL.to_string(), revision.to_string()),
        ]
        .into(),
    );
    p
}

/// The actions as short strings: `create web-1`, `delete web-2`, `relabel web-0`.
fn summary(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::CreatePod(p) => format!("create {}", p.metadata.name.as_deref().unwrap()),
            Action::DeletePod { name, .. } => format!("delete {name}"),
            Action::RepairIdentity { name, .. } => format!("relabel {name}"),
        })
        .collect()
}

#[test]
fn ordinals_parse_like_upstream() {
    assert_eq!(parent_and_ordinal("web-2"), Some(("web", 2)));
    assert_eq!(parent_and_ordinal("my-web-10"), Some(("my-web", 10)));
    assert_eq!(parent_and_ordinal("web-x"), None);
    assert_eq!(parent_and_ordinal("web-01"), None);
    assert_eq!(parent_and_ordinal("web"), None);
}

#[test]
fn ordered_ready_steps() {
    let v1 = update_revision(&set(3, "OrderedReady", "v1", None));
    let cases: Vec<(&str, i32, Vec<Pod>, Vec<&str>)> = vec![
        ("first pod", 3, vec![], vec!["create web-0"]),
        ("waits for web-0 to be ready", 3, vec![member("web-0", &v1, false)], vec![]),
        ("next ordinal once ready", 3, vec![member("web-0", &v1, true)], vec!["create web-1"]),
        ("fills a gap first", 3, vec![member("web-0", &v1, true), member("web-2", &v1, true)], vec!["create web-1"]),
        (
            "scale down from the highest ordinal",
            1,
            vec![member("web-0", &v1, true), member("web-1", &v1, true), member("web-2", &v1, true)],
            vec!["delete web-2"],
        ),
        (
            "scale down waits for terminating pods",
            1,
            vec![member("web-0", &v1, true), member("web-1", &v1, true), {
                let mut p = member("web-2", &v1, true);
                p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)));
                p
            }],
            vec![],
        ),
    ];
    for (name, replicas, pods, expected) in cases {
        let s = set(replicas, "OrderedReady", "v1", None);
        let refs: Vec<&Pod> = pods.iter().collect();
        assert_eq!(summary(&plan(&s, &Revisions::unchanged(&s), &refs, at(100))), expected, "{name}");
    }
}

#[test]
fn new_pods_have_stable_identity() {
    let s = set(1, "OrderedReady", "v1", None);
    let plan = plan(&s, &Revisions::unchanged(&s), &[], at(0));
    let Action::CreatePod(p) = &plan.actions[0] else { panic!() };
    let spec = p.spec.as_ref().unwrap();
    assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (Some("web-0"), Some("nginx")));
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels.get(POD_NAME_LABEL).map(String::as_str), Some("web-0"));
    assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("0"));
    assert_eq!(labels.get(REVISION_LABEL), Some(&update_revision(&s)));
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller, owner.block_owner_deletion),
        ("StatefulSet", Some(true), Some(true))
    );
}

#[test]
fn parallel_creates_and_deletes_at_once() {
    let s = set(3, "Parallel", "v1", None);
    assert_eq!(
        summary(&plan(&s, &Revisions::unchanged(&s), &[], at(0))),
        ["create web-0", "create web-1", "create web-2"]
    );
    let v1 = update_revision(&s);
    let pods = [
        member("web-0", &v1, false),
        member("web-1", &v1, false),
        member("web-2", &v1, false),
        member("web-3", &v1, false),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let s = set(2, "Parallel", "v1", None);
    assert_eq!(summary(&plan(&s, &Revisions::unchanged(&s), &refs, at(0))), ["delete web-3", "delete web-2"]);
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let old = update_revision(&set(3, "OrderedReady", "v1", None));
    let s = set(3, "OrderedReady", "v2", Some(0));
    let new = update_revision(&s);
    let pods = [member("web-0", &old, true), member("web-1", &old, true), member("web-2", &old, true)];
    let refs: Vec<&Pod> = pods.iter().collect();
    assert_eq!(summary(&plan(&s, &Revisions::unchanged(&s), &refs, at(0))), ["delete web-2"]);

    let pods = [member("web-0", &old, true), member("web-1", &old, true), member("web-2", &new, true)];
    let refs: Vec<&Pod> = pods.iter().collect();
    assert_eq!(summary(&plan(&s, &Revisions::unchanged(&s), &refs, at(0))), ["delete web-1"]);

    // With partition 2, web-1 and web-0 stay at the old revision.
    let partitioned = set(3, "OrderedReady", "v2", Some(2));
    let p = plan(&partitioned, &Revisions::unchanged(&partitioned), &refs, at(0));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.status.updated_replicas, Some(1));
}

#[test]
fn status_counts_and_completes_the_rollout() {
    let s = set(2, "OrderedReady", "v2", None);
    let new = update_revision(&s);
    let revisions = Revisions { current: "web-old".into(), ..Revisions::unchanged(&s) };
    let pods = [member("web-0", &new, true), member("web-1", &new, true)];
    let refs: Vec<&Pod> = pods.iter().collect();
    let status = plan(&s, &revisions, &refs, at(0)).status;
    assert_eq!(status.replicas, 2);
    assert_eq!(status.ready_replicas, Some(2));
    assert_eq!(status.available_replicas, Some(2));
    assert_eq!(status.updated_replicas, Some(2));
    assert_eq!(status.current_replicas, Some(2));
    assert_eq!(status.current_revision.as_deref(), Some(new.as_str()));
    assert_eq!(status.update_revision.as_deref(), Some(new.as_str()));
    assert_eq!(status.observed_generation, Some(2));
}

#[test]
fn failed_pods_are_replaced_and_wrong_labels_repaired() {
    let s = set(2, "OrderedReady", "v1", None);
    let v1 = update_revision(&s);
    let mut failed = member("web-0", &v1, false);
    failed.status.as_mut().unwrap().phase = Some("Failed".into());
    let refs = [&failed];
    assert_eq!(summary(&plan(&s, &Revisions::unchanged(&s), &refs, at(0))), ["delete web-0"]);

    let mut unlabeled = member("web-0", &v1, true);
    unlabeled.metadata.labels.as_mut().unwrap().remove(POD_INDEX_LABEL);
    let ready = member("web-1", &v1, true);
    let refs = [&unlabeled, &ready];
    assert_eq!(summary(&plan(&s, &Revisions::unchanged(&s), &refs, at(0))), ["relabel web-0"]);
}

#[test]
fn the_revision_does_not_change_when_status_records_collision_count_zero() {
    let mut s = set(1, "OrderedReady", "v1", None);
    let before = update_revision(&s);
    s.status = Some(StatefulSetStatus { collision_count: Some(0), ..Default::default() });
    assert_eq!(update_revision(&s), before);
    s.status = Some(StatefulSetStatus { collision_count: Some(1), ..Default::default() });
    assert_ne!(update_revision(&s), before);
}

/// The revisions of a set rolling from `from`'s template to its own.
fn rolling(from: &StatefulSet, to: &StatefulSet) -> Revisions {
    let current = Revisions::unchanged(from);
    Revisions { current: current.current, current_template: current.current_template, ..Revisions::unchanged(to) }
}

#[test]
fn pods_made_below_the_partition_keep_the_current_template() {
    let old = set(3, "Parallel", "v1", None);
    let new = set(3, "Parallel", "v2", Some(2));
    let plan = plan(&new, &rolling(&old, &new), &[], at(0));
    let made: Vec<(String, String, String)> = plan
        .actions
        .iter()
        .map(|a| {
            let Action::CreatePod(p) = a else { panic!("{a:?}") };
            let image = p.spec.as_ref().unwrap().containers[0].image.clone().unwrap();
            (p.metadata.name.clone().unwrap(), image, p.metadata.labels.as_ref().unwrap()[REVISION_LABEL].clone())
        })
        .collect();
    let (v1, v2) = (update_revision(&old), update_revision(&new));
    assert_eq!(
        made,
        [
            ("web-0".into(), "v1".into(), v1.clone()),
            ("web-1".into(), "v1".into(), v1),
            ("web-2".into(), "v2".into(), v2)
        ]
    );
}
