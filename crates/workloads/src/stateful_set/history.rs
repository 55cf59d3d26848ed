//! A StatefulSet's revisions, as upstream keeps them (`pkg/controller/history` and the set
//! controller's `getStatefulSetRevisions`/`truncateHistory`): every distinct pod template is a
//! ControllerRevision owned by the set, named `<set>-<hash>`, whose `data` is the strategic
//! merge patch that puts the template back (`{"spec":{"template":{"$patch":"replace",…}}}`) and
//! whose `revision` numbers it in the set's history. Pods carry the name of their revision in
//! `controller-revision-hash`; `kubectl rollout history|undo statefulset` read and apply these.
//!
//! Pure: the controller does the writes.

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::ObjectMeta;
use serde_json::{json, Value};
use std::collections::BTreeSet;

use crate::hash::{canonical_json, fnv32, normalize, safe_encode};
use crate::pods::controller_ref;

/// The label holding a revision's hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// How many old revisions a set keeps when its spec does not say (the API's default).
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// The revisions one sync works with: which the pods below the partition stay at, which the
/// rest roll to.
#[derive(Clone, Debug, PartialEq)]
pub struct Revisions {
    pub current: String,
    pub current_template: PodTemplateSpec,
    pub update: String,
    pub collisions: i32,
}

#[cfg(test)]
impl Revisions {
    /// A set whose only revision is its own template (its first sync, or a set never changed).
    pub(crate) fn unchanged(set: &StatefulSet) -> Revisions {
        let update = update_revision(set);
        Revisions {
            current: update.clone(),
            current_template: template_of(set),
            update,
            collisions: collisions_of(set),
        }
    }
}

fn template_of(set: &StatefulSet) -> PodTemplateSpec {
    set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
}

fn collisions_of(set: &StatefulSet) -> i32 {
    set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0)
}

/// Upstream's `getPatch`: the strategic merge patch that replaces the set's template whole.
pub fn patch_of(set: &StatefulSet) -> Value {
    let mut template = serde_json::to_value(template_of(set)).unwrap_or_else(|_| json!({}));
    if let Some(fields) = template.as_object_mut() {
        fields.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// Upstream's `HashControllerRevision`: FNV-1 (32-bit) of the data, then of the collision count
/// in decimal, safely encoded. The data is hashed in a canonical rendering (sorted keys, empty
/// values left out), so a template reads the same before and after a round trip through the API.
pub fn hash_of(data: &Value, collisions: i32) -> String {
    let hash = fnv32(canonical_json(data).bytes().chain(collisions.to_string().into_bytes()));
    safe_encode(&hash.to_string())
}

/// `<set>-<hash>`, the set's name cut to 223 bytes so the whole fits a name's 253.
pub fn revision_name(set_name: &str, hash: &str) -> String {
    let mut end = set_name.len().min(223);
    while !set_name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &set_name[..end])
}

/// The name the set's own template has as a revision, with the set's collision count.
pub fn update_revision(set: &StatefulSet) -> String {
    revision_name(set.metadata.name.as_deref().unwrap_or_default(), &hash_of(&patch_of(set), collisions_of(set)))
}

/// Upstream's `newRevision`: the set's template as revision `number`, named with `collisions`,
/// labelled like the template plus its hash, annotated like the set, controlled by the set.
pub fn new_revision(set: &StatefulSet, number: i64, collisions: i32) -> ControllerRevision {
    let data = patch_of(set);
    let hash = hash_of(&data, collisions);
    let mut labels = template_of(set).metadata.and_then(|m| m.labels).unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(set.metadata.name.as_deref().unwrap_or_default(), &hash)),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: set.metadata.annotations.clone().filter(|a| !a.is_empty()),
            owner_references: Some(vec![controller_ref("apps/v1", "StatefulSet", &set.metadata)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision: number,
    }
}

/// `revision` renamed for the next collision count (after its name was found taken).
pub fn renamed(revision: &ControllerRevision, set_name: &str, collisions: i32) -> ControllerRevision {
    let mut renamed = revision.clone();
    let hash = hash_of(data_of(revision), collisions);
    renamed.metadata.name = Some(revision_name(set_name, &hash));
    renamed.metadata.labels.get_or_insert_with(Default::default).insert(HASH_LABEL.into(), hash);
    renamed
}

fn data_of(revision: &ControllerRevision) -> &Value {
    revision.data.as_ref().map_or(&Value::Null, |d| &d.0)
}

/// Whether two revisions record the same template.
pub fn same_data(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    normalize(data_of(a)) == normalize(data_of(b))
}

/// Upstream's `SortControllerRevisions`: by revision number, then creation time, then name.
pub fn sort(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        let key = |r: &ControllerRevision| {
            (r.revision, r.metadata.creation_timestamp.as_ref().map(|t| t.0), r.metadata.name.clone())
        };
        key(a).cmp(&key(b))
    });
}

/// The set as `revision` records it: upstream's `ApplyRevision` (the patch replaces the
/// template whole, so only the template changes).
pub fn template_at(set: &StatefulSet, revision: &ControllerRevision) -> PodTemplateSpec {
    let mut template = data_of(revision).pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if let Some(fields) = template.as_object_mut() {
        fields.remove("$patch");
    }
    serde_json::from_value(template).unwrap_or_else(|_| template_of(set))
}

/// Where the update revision comes from, given the set's revisions sorted oldest first.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateRevision {
    /// The newest revision already records the set's template.
    Newest,
    /// An older revision records it (a rollback): it becomes the newest by taking this number.
    Renumber { index: usize, number: i64 },
    /// No revision records it: create this one.
    Create(Box<ControllerRevision>),
}

/// Upstream's choice in `getStatefulSetRevisions`.
pub fn choose_update(set: &StatefulSet, sorted: &[ControllerRevision]) -> UpdateRevision {
    let number = sorted.last().map_or(1, |r| r.revision + 1);
    let wanted = new_revision(set, number, collisions_of(set));
    match sorted.iter().rposition(|r| same_data(r, &wanted)) {
        Some(index) if index + 1 == sorted.len() => UpdateRevision::Newest,
        Some(index) => UpdateRevision::Renumber { index, number },
        None => UpdateRevision::Create(Box::new(wanted)),
    }
}

/// Upstream's `truncateHistory`: the oldest revisions that are neither current, nor the
/// update, nor any pod's, beyond the set's `revisionHistoryLimit`.
pub fn to_delete<'a>(
    set: &StatefulSet,
    pods: &[&Pod],
    sorted: &'a [ControllerRevision],
    current: &str,
    update: &str,
) -> Vec<&'a ControllerRevision> {
    let live: BTreeSet<&str> = pods.iter().filter_map(|p| super::revision_of(p)).chain([current, update]).collect();
    let mut old: Vec<&ControllerRevision> =
        sorted.iter().filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default())).collect();
    let limit = set.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(DEFAULT_HISTORY_LIMIT);
    let Ok(limit) = usize::try_from(limit) else { return Vec::new() };
    let excess = old.len().saturating_sub(limit);
    old.truncate(excess);
    old
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use kube::ResourceExt;

    fn set(image: &str) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("sts-uid".into()),
                annotations: Some([("kubernetes.io/change-cause".to_string(), format!("to {image}"))].into()),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "web".to_string())].into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn numbered(image: &str, number: i64) -> ControllerRevision {
        new_revision(&set(image), number, 0)
    }

    #[test]
    fn a_revision_is_the_patch_that_restores_the_template() {
        let s = set("v1");
        let revision = new_revision(&s, 4, 0);
        let data = &revision.data.as_ref().unwrap().0;
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(data["spec"]["template"]["spec"]["containers"][0]["image"], "v1");
        assert_eq!(revision.revision, 4);
        let hash = hash_of(data, 0);
        assert_eq!(revision.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
        let labels = revision.metadata.labels.as_ref().unwrap();
        assert_eq!((labels["app"].as_str(), labels[HASH_LABEL].as_str()), ("web", hash.as_str()));
        assert_eq!(revision.metadata.annotations.as_ref().unwrap()["kubernetes.io/change-cause"], "to v1");
        let owner = &revision.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("StatefulSet", "sts-uid", Some(true)));
        assert_eq!(update_revision(&s), revision.metadata.name.unwrap());
        // The set as the revision records it has the revision's template.
        assert_eq!(template_at(&set("v2"), &numbered("v1", 1)), s.spec.unwrap().template);
    }

    #[test]
    fn the_name_depends_on_the_template_and_the_collision_count() {
        let (a, b) = (set("v1"), set("v2"));
        assert_ne!(update_revision(&a), update_revision(&b));
        let mut collided = a.clone();
        collided.status = Some(StatefulSetStatus { collision_count: Some(1), ..Default::default() });
        assert_ne!(update_revision(&collided), update_revision(&a));
        let again = renamed(&numbered("v1", 1), "web", 1);
        assert_eq!(again.metadata.name, Some(update_revision(&collided)));
        assert_eq!(again.metadata.labels.unwrap()[HASH_LABEL], update_revision(&collided).trim_start_matches("web-"));
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "h").len(), 225);
    }

    #[test]
    fn the_update_revision_is_the_newest_an_older_one_renumbered_or_a_new_one() {
        assert_eq!(choose_update(&set("v1"), &[]), UpdateRevision::Create(Box::new(numbered("v1", 1))));
        let history = [numbered("v1", 1), numbered("v2", 2)];
        assert_eq!(choose_update(&set("v2"), &history), UpdateRevision::Newest);
        assert_eq!(choose_update(&set("v1"), &history), UpdateRevision::Renumber { index: 0, number: 3 });
        assert_eq!(choose_update(&set("v3"), &history), UpdateRevision::Create(Box::new(numbered("v3", 3))));
    }

    #[test]
    fn history_keeps_live_revisions_and_the_newest_old_ones() {
        let mut s = set("v6");
        s.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let mut history: Vec<ControllerRevision> = (1..=6).map(|n| numbered(&format!("v{n}"), n)).collect();
        history.reverse();
        sort(&mut history);
        assert_eq!(history.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        let name = |n: usize| history[n - 1].metadata.name.clone().unwrap();
        // v2 still has a pod; v5 is current, v6 the update: of v1, v3 and v4 one (v4) is kept.
        let mut pod = Pod::default();
        pod.metadata.labels = Some([(super::super::REVISION_LABEL.to_string(), name(2))].into());
        let deleted: Vec<String> =
            to_delete(&s, &[&pod], &history, &name(5), &name(6)).iter().map(|r| r.name_any()).collect();
        assert_eq!(deleted, [name(1), name(3)]);
        s.spec.as_mut().unwrap().revision_history_limit = None;
        assert!(to_delete(&s, &[], &history, &name(5), &name(6)).is_empty(), "ten kept by default");
    }
}
