//! Who controls an object: upstream's `ClaimObject` decision (keep, adopt, release, ignore) and
//! the merge patches that adopt or release. Pure: no I/O.
//!
//! Adoption and release rewrite `metadata.ownerReferences` whole and carry the object's
//! `resourceVersion`, so a concurrent change makes the patch fail with a conflict instead of
//! losing someone else's owner reference.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Value};

use crate::pods::controller_of;

/// What a controller does with one candidate object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Controlled by us and matching: ours.
    Owned,
    /// An orphan that matches: adopt it, then it is ours.
    Adopt,
    /// Controlled by us but no longer matching: let it go.
    Release,
    /// Someone else's, or not for us.
    Ignore,
}

/// The owner's side of a claim.
pub struct Owner<'a> {
    pub uid: &'a str,
    pub namespace: &'a str,
    pub deleting: bool,
}

/// Upstream's `ClaimObject` decision for one object whose labels `matches` the owner's selector.
pub fn claim(owner: &Owner<'_>, object: &ObjectMeta, matches: bool) -> Claim {
    if let Some(controller) = controller_of(object) {
        if controller.uid != owner.uid {
            return Claim::Ignore;
        }
        if matches {
            return Claim::Owned;
        }
        return if owner.deleting { Claim::Ignore } else { Claim::Release };
    }
    if owner.deleting || !matches || object.deletion_timestamp.is_some() {
        return Claim::Ignore;
    }
    if object.namespace.as_deref().unwrap_or("") != owner.namespace {
        return Claim::Ignore;
    }
    Claim::Adopt
}

/// The merge patch that adds `controller` to the object's owner references.
pub fn adopt_patch(object: &ObjectMeta, controller: &OwnerReference) -> Value {
    let mut references: Vec<OwnerReference> = object.owner_references.clone().unwrap_or_default();
    references.retain(|r| r.uid != controller.uid);
    references.push(controller.clone());
    json!({"metadata": {"ownerReferences": references, "resourceVersion": object.resource_version}})
}

/// The merge patch that removes the owner with `owner_uid` from the object's owner references.
pub fn release_patch(object: &ObjectMeta, owner_uid: &str) -> Value {
    let references: Vec<&OwnerReference> =
        object.owner_references.iter().flatten().filter(|r| r.uid != owner_uid).collect();
    let references = if references.is_empty() { Value::Null } else { json!(references) };
    json!({"metadata": {"ownerReferences": references, "resourceVersion": object.resource_version}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn reference(uid: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: uid.into(),
            controller: Some(controller),
            block_owner_deletion: Some(true),
        }
    }

    fn meta(owners: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("default".into()),
            resource_version: Some("7".into()),
            owner_references: Some(owners),
            ..Default::default()
        }
    }

    #[test]
    fn claim_table() {
        let live = Owner { uid: "me", namespace: "default", deleting: false };
        let dying = Owner { uid: "me", namespace: "default", deleting: true };
        let mut terminating = meta(vec![]);
        terminating.deletion_timestamp = Some(Time(crate::pods::tests::at(0)));
        let cases = [
            ("ours and matching", &live, meta(vec![reference("me", true)]), true, Claim::Owned),
            ("ours, not matching", &live, meta(vec![reference("me", true)]), false, Claim::Release),
            ("ours, not matching, owner dying", &dying, meta(vec![reference("me", true)]), false, Claim::Ignore),
            ("someone else's", &live, meta(vec![reference("other", true)]), true, Claim::Ignore),
            ("orphan matching", &live, meta(vec![reference("other", false)]), true, Claim::Adopt),
            ("orphan not matching", &live, meta(vec![]), false, Claim::Ignore),
            ("orphan, owner dying", &dying, meta(vec![]), true, Claim::Ignore),
            ("orphan terminating", &live, terminating, true, Claim::Ignore),
        ];
        for (name, owner, object, matches, expected) in cases {
            assert_eq!(claim(owner, &object, matches), expected, "{name}");
        }
    }

    #[test]
    fn patches_keep_other_owners_and_carry_the_resource_version() {
        let object = meta(vec![reference("other", false)]);
        let patch = adopt_patch(&object, &reference("me", true));
        assert_eq!(patch["metadata"]["ownerReferences"].as_array().unwrap().len(), 2);
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        let owned = meta(vec![reference("other", false), reference("me", true)]);
        let patch = release_patch(&owned, "me");
        assert_eq!(patch["metadata"]["ownerReferences"][0]["uid"], "other");
        assert_eq!(release_patch(&meta(vec![reference("me", true)]), "me")["metadata"]["ownerReferences"], Value::Null);
    }
}
