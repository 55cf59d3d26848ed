//! The annotations a Deployment keeps on its ReplicaSets: revision, revision history, desired
//! and max replicas, and the Deployment's own annotations copied over (upstream's
//! `deployment_util.go`).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use std::collections::BTreeMap;

use super::POD_TEMPLATE_HASH;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upstream caps `revision-history` at this many characters, dropping the oldest.
const REVISION_HISTORY_LIMIT_CHARS: usize = 2000;

fn skipped(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | "deployment.kubernetes.io/error-selector-overlapping-with"
            | "deployment.kubernetes.io/selector-updated-at"
    )
}

fn annotations_mut(rs: &mut ReplicaSet) -> &mut BTreeMap<String, String> {
    rs.metadata.annotations.get_or_insert_with(BTreeMap::new)
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

/// A ReplicaSet's revision (0 when absent; `None` when unparsable).
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match annotation(rs, REVISION) {
        None => Some(0),
        Some(text) => text.parse().ok(),
    }
}

pub fn max_revision(replica_sets: &[&ReplicaSet]) -> i64 {
    replica_sets.iter().filter_map(|rs| revision(rs)).max().unwrap_or(0).max(0)
}

pub fn desired_replicas(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse().ok())
}

pub fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, MAX_REPLICAS).and_then(|v| v.parse().ok())
}

/// Copies the Deployment's annotations (but not the skipped ones) onto the ReplicaSet.
fn copy_deployment_annotations(deployment: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let target = annotations_mut(rs);
    for (key, value) in deployment.metadata.annotations.iter().flatten() {
        if skipped(key) || target.get(key) == Some(value) {
            continue;
        }
        target.insert(key.clone(), value.clone());
        changed = true;
    }
    changed
}

/// Upstream's `SetNewReplicaSetAnnotations`: copy the Deployment's annotations, raise the
/// revision to `new_revision` (recording the previous one in the history: a rollback), and on
/// creation set the replicas annotations. True if anything changed.
pub fn set_new_replica_set_annotations(
    deployment: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    desired: i32,
    max: i32,
) -> bool {
    let mut changed = copy_deployment_annotations(deployment, rs);
    let old_text = annotation(rs, REVISION).map(str::to_string);
    let old_revision = match old_text.as_deref() {
        None | Some("") => 0,
        Some(text) => match text.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_revision < new_revision {
        annotations_mut(rs).insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old_text) = old_text.filter(|t| !t.is_empty()) {
            let history = annotation(rs, REVISION_HISTORY).unwrap_or("").to_string();
            let updated = append_history(&history, &old_text);
            if let Some(updated) = updated {
                annotations_mut(rs).insert(REVISION_HISTORY.into(), updated);
            }
        }
    }
    if !exists && set_replicas_annotations(rs, desired, max) {
        changed = true;
    }
    changed
}

/// The history with `old` appended, oldest entries dropped to stay within the limit.
fn append_history(history: &str, old: &str) -> Option<String> {
    if history.is_empty() {
        return Some(old.to_string());
    }
    let entries: Vec<&str> = history.split(',').collect();
    let mut total = history.len() + old.len() + 1;
    let mut start = 0;
    while total > REVISION_HISTORY_LIMIT_CHARS && start < entries.len() {
        total -= entries[start].len() + 1;
        start += 1;
    }
    if total > REVISION_HISTORY_LIMIT_CHARS {
        return None;
    }
    let mut kept: Vec<&str> = entries[start..].to_vec();
    kept.push(old);
    Some(kept.join(","))
}

/// Sets `desired-replicas` and `max-replicas`; true if either changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = annotations_mut(rs);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.into(), value);
            changed = true;
        }
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    desired_replicas(rs) != Some(desired) || max_replicas(rs) != Some(max)
}

/// Templates equal apart from the `pod-template-hash` label, nil and empty alike (upstream's
/// `EqualIgnoreHash` with semantic equality).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH);
        }
        crate::hash::normalize(&serde_json::to_value(t).unwrap_or_default())
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs_with(annotations: &[(&str, &str)]) -> ReplicaSet {
        let mut rs = ReplicaSet::default();
        rs.metadata.annotations = Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        rs
    }

    fn deployment_with(annotations: &[(&str, &str)]) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.annotations = Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        d
    }

    #[test]
    fn new_replica_set_gets_revision_and_replica_annotations_and_copies() {
        let d = deployment_with(&[("team", "a"), (LAST_APPLIED, "{}"), (REVISION, "9")]);
        let mut rs = ReplicaSet::default();
        assert!(set_new_replica_set_annotations(&d, &mut rs, 3, false, 4, 5));
        let a = rs.metadata.annotations.unwrap();
        assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
        assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("4"));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("5"));
        assert_eq!(a.get("team").map(String::as_str), Some("a"));
        assert!(!a.contains_key(LAST_APPLIED));
        assert!(!a.contains_key(REVISION_HISTORY));
    }

    #[test]
    fn rollback_records_history_and_never_lowers_revision() {
        let d = deployment_with(&[]);
        let mut rs = rs_with(&[(REVISION, "1")]);
        assert!(set_new_replica_set_annotations(&d, &mut rs, 3, true, 1, 2));
        assert_eq!(annotation(&rs, REVISION), Some("3"));
        assert_eq!(annotation(&rs, REVISION_HISTORY), Some("1"));
        assert!(set_new_replica_set_annotations(&d, &mut rs, 5, true, 1, 2));
        assert_eq!(annotation(&rs, REVISION_HISTORY), Some("1,3"));
        assert!(!set_new_replica_set_annotations(&d, &mut rs, 4, true, 1, 2));
        assert_eq!(annotation(&rs, REVISION), Some("5"));
        // An existing ReplicaSet's replicas annotations are left to scaling.
        assert_eq!(desired_replicas(&rs), None);
    }

    #[test]
    fn history_is_capped() {
        let long: Vec<String> = (0..600).map(|n| n.to_string()).collect();
        let updated = append_history(&long.join(","), "600").unwrap();
        assert!(updated.len() <= REVISION_HISTORY_LIMIT_CHARS);
        assert!(updated.ends_with(",599,600"));
    }

    #[test]
    fn revisions() {
        let a = rs_with(&[(REVISION, "2")]);
        let b = rs_with(&[(REVISION, "7")]);
        let c = rs_with(&[(REVISION, "junk")]);
        assert_eq!(max_revision(&[&a, &b, &c]), 7);
        assert_eq!(revision(&ReplicaSet::default()), Some(0));
        assert_eq!(revision(&c), None);
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let mut a = PodTemplateSpec { metadata: Some(Default::default()), ..Default::default() };
        a.metadata.as_mut().unwrap().labels = Some([("app".to_string(), "web".to_string())].into());
        let mut b = a.clone();
        b.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(POD_TEMPLATE_HASH.into(), "abc".into());
        assert!(equal_ignore_hash(&a, &b));
        b.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert("v".into(), "2".into());
        assert!(!equal_ignore_hash(&a, &b));
        let mut empty_annotations = a.clone();
        empty_annotations.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        assert!(equal_ignore_hash(&a, &empty_annotations));
    }
}
