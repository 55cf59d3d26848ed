//! Per-kind rules: name validation, typed decoding, what create and update reset or default.
//! Pure functions over JSON objects.

use serde_json::{json, Value};

use frontdoor_resources::ResourceType;

use crate::errors::Cause;
use crate::validation::NameRule;

/// Which rule the kind's names follow (upstream's `ValidateXName`).
pub fn name_rule(resource: &ResourceType) -> NameRule {
    match (resource.group, resource.kind) {
        ("", "Namespace") => NameRule::Dns1123Label,
        ("", "Service") => NameRule::Dns1035Label,
        ("", "Event") | ("events.k8s.io", "Event") => NameRule::PathSegment,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// Kinds whose `metadata.generation` tracks spec changes.
fn tracks_generation(resource: &ResourceType) -> bool {
    // A ControllerRevision's strategy sets no generation: its data never changes.
    matches!(
        (resource.group, resource.kind),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet")
            | ("", "ReplicationController")
            | ("networking.k8s.io", _)
            | ("discovery.k8s.io", _)
    )
}

/// Decodes the object into its k8s-openapi type to catch type errors, as upstream's decoder does:
/// as Go's, a field that is absent or `null` is its zero value, not an error (k8s-openapi refuses
/// both for required fields, so a refusal is checked again on a copy with zero values filled in).
pub fn check_types(resource: &ResourceType, object: &Value) -> Result<(), String> {
    strict_types(resource, object).or_else(|error| with_go_zero_values(resource, object, error, strict_types))
}

/// [`check_types`] for a status update: its metadata and status decode.
pub fn check_status_types(resource: &ResourceType, object: &Value) -> Result<(), String> {
    strict_status_types(resource, object)
        .or_else(|error| with_go_zero_values(resource, object, error, strict_status_types))
}

/// `check` again, on a copy of `object` with Go's zero values for what is absent or null; a kind
/// without a schema keeps the strict check's `error` (checking the same object twice would only
/// repeat it).
fn with_go_zero_values(
    resource: &ResourceType,
    object: &Value,
    error: String,
    check: fn(&ResourceType, &Value) -> Result<(), String>,
) -> Result<(), String> {
    match frontdoor_openapi::with_zero_values(&resource.api_version(), resource.kind, object) {
        Some(lenient) => check(resource, &lenient),
        None => Err(error),
    }
}

fn strict_types(resource: &ResourceType, object: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coordination, core::v1 as core};
    use k8s_openapi::api::{discovery::v1 as discovery, events::v1 as events, networking::v1 as networking};
    match (resource.group, resource.kind) {
        ("", "Namespace") => decodes::<core::Namespace>(object),
        ("", "Node") => decodes::<core::Node>(object),
        ("", "Pod") => decodes::<core::Pod>(object),
        ("", "ReplicationController") => decodes::<core::ReplicationController>(object),
        ("", "Service") => decodes::<core::Service>(object),
        ("", "Endpoints") => decodes::<core::Endpoints>(object),
        ("", "Event") => decodes::<core::Event>(object),
        ("", "ConfigMap") => decodes::<core::ConfigMap>(object),
        ("", "Secret") => decodes::<core::Secret>(object),
        ("", "ServiceAccount") => decodes::<core::ServiceAccount>(object),
        ("apps", "Deployment") => decodes::<apps::Deployment>(object),
        ("apps", "ReplicaSet") => decodes::<apps::ReplicaSet>(object),
        ("apps", "StatefulSet") => decodes::<apps::StatefulSet>(object),
        ("apps", "ControllerRevision") => decodes::<apps::ControllerRevision>(object),
        ("discovery.k8s.io", "EndpointSlice") => decodes::<discovery::EndpointSlice>(object),
        ("networking.k8s.io", "Ingress") => decodes::<networking::Ingress>(object),
        ("networking.k8s.io", "IngressClass") => decodes::<networking::IngressClass>(object),
        ("events.k8s.io", "Event") => decodes::<events::Event>(object),
        ("coordination.k8s.io", "Lease") => decodes::<coordination::Lease>(object),
        _ => Ok(()),
    }
}

/// The strict check of a status update, whose object is the stored one (checked when it was
/// written) but for its metadata and status: only those are decoded.
fn strict_status_types(resource: &ResourceType, object: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, networking::v1 as networking};
    let metadata = object.get("metadata").unwrap_or(&Value::Null);
    decodes::<Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>>(metadata)?;
    let status = object.get("status").unwrap_or(&Value::Null);
    match (resource.group, resource.kind) {
        ("", "Pod") => decodes::<Option<core::PodStatus>>(status),
        ("", "Node") => decodes::<Option<core::NodeStatus>>(status),
        ("", "Namespace") => decodes::<Option<core::NamespaceStatus>>(status),
        ("", "Service") => decodes::<Option<core::ServiceStatus>>(status),
        ("", "ReplicationController") => decodes::<Option<core::ReplicationControllerStatus>>(status),
        ("apps", "Deployment") => decodes::<Option<apps::DeploymentStatus>>(status),
        ("apps", "ReplicaSet") => decodes::<Option<apps::ReplicaSetStatus>>(status),
        ("apps", "StatefulSet") => decodes::<Option<apps::StatefulSetStatus>>(status),
        ("networking.k8s.io", "Ingress") => decodes::<Option<networking::IngressStatus>>(status),
        _ => strict_types(resource, object),
    }
}

/// Whether `value` decodes as a `T` (from the borrowed value: no copy of the object).
fn decodes<T: serde::de::DeserializeOwned>(value: &Value) -> Result<(), String> {
    T::deserialize(value).map(drop).map_err(|e| e.to_string())
}

/// What a create resets or defaults before validation (upstream's `PrepareForCreate` + defaults).
pub fn prepare_for_create(resource: &ResourceType, object: &mut Value) {
    if tracks_generation(resource) {
        object["metadata"]["generation"] = json!(1);
    }
    match (resource.group, resource.kind) {
        ("", "Namespace") => {
            object["spec"] = json!({"finalizers": ["kubernetes"]});
            object["status"] = json!({"phase": "Active"});
        }
        ("", "Service") => object["status"] = json!({"loadBalancer": {}}),
        ("", "Pod") => {
            if object.get("status").is_none_or(|s| s.get("phase").is_none()) {
                object["status"] = json!({"phase": "Pending"});
            }
        }
        ("", "Secret") => {
            if object.get("type").is_none() {
                object["type"] = json!("Opaque");
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet") | ("", "ReplicationController") => {
            object["status"] = json!({});
        }
        _ => {
            if resource.subresource("status").is_some() {
                object["status"] = json!({});
            }
        }
    }
}

/// What an update keeps from the old object (upstream's `PrepareForUpdate`): status for kinds with
/// a status subresource, and the generation, bumped when anything outside metadata/status changed.
pub fn prepare_for_update(resource: &ResourceType, old: &Value, new: &mut Value) {
    if resource.subresource("status").is_some() {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    if resource.kind == "Namespace" {
        new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
    }
    carry_generation(resource, old, new);
}

/// A status update changes status and metadata only (upstream's status strategies reset the spec,
/// not the metadata: an annotation sent with a status patch stays); everything else comes from
/// the old object, and so do the metadata fields the kind's status strategy protects. `new` (a
/// patched copy of it, or what a client sent) is turned into that in place, copying from `old`
/// only the fields that differ.
pub fn prepare_for_status_update(resource: &ResourceType, old: &Value, mut new: Value) -> Value {
    let kept_by_status = |key: &str| matches!(key, "status" | "metadata");
    match (old.as_object(), new.as_object_mut()) {
        (Some(old_fields), Some(fields)) => {
            fields.retain(|key, _| kept_by_status(key) || old_fields.contains_key(key));
            for (key, value) in old_fields.iter().filter(|(key, _)| !kept_by_status(key)) {
                if fields.get(key) != Some(value) {
                    fields.insert(key.clone(), value.clone());
                }
            }
            fields.entry("status").or_insert_with(|| json!({}));
            let old_metadata = old_fields.get("metadata");
            match (fields.get_mut("metadata").and_then(Value::as_object_mut), old_metadata.and_then(Value::as_object)) {
                (Some(metadata), Some(old_metadata)) => {
                    for key in metadata_kept_from_old(resource) {
                        match old_metadata.get(*key) {
                            Some(value) => metadata.insert(key.to_string(), value.clone()),
                            None => metadata.remove(*key),
                        };
                    }
                }
                (Some(_), None) => {}
                (None, _) => {
                    fields.insert("metadata".into(), old_metadata.cloned().unwrap_or_else(|| json!({})));
                }
            }
        }
        _ => {
            let status = new.get_mut("status").map(Value::take).unwrap_or(json!({}));
            new = old.clone();
            new["status"] = status;
        }
    }
    carry_generation(resource, old, &mut new);
    new
}

/// Metadata a status write may not change, by kind (upstream's status strategies: the apps
/// workloads keep their labels, a pod its owner references).
fn metadata_kept_from_old(resource: &ResourceType) -> &'static [&'static str] {
    match (resource.group, resource.kind) {
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => &["labels"],
        ("", "Pod") => &["ownerReferences"],
        _ => &[],
    }
}

fn carry_generation(resource: &ResourceType, old: &Value, new: &mut Value) {
    if !tracks_generation(resource) {
        return;
    }
    let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let bump = !same_content(old, new);
    new["metadata"]["generation"] = json!(if bump { generation + 1 } else { generation });
}

/// Whether two objects agree on everything but metadata, status, apiVersion and kind (what a
/// generation counts).
fn same_content(a: &Value, b: &Value) -> bool {
    let counted = |(key, _): &(&String, &Value)| !matches!(key.as_str(), "metadata" | "status" | "apiVersion" | "kind");
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            a.iter().filter(counted).count() == b.iter().filter(counted).count()
                && a.iter().filter(counted).all(|(key, value)| b.get(key) == Some(value))
        }
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// Upstream's defaulting for the kind (`old` on update: server-owned fields the client left out
/// are kept).
pub fn default(resource: &ResourceType, object: &mut Value, old: Option<&Value>, status: bool) {
    use frontdoor_validation::{service, workloads};
    // Status counters without `omitempty` in Go are always written, 0 included (clients such as
    // the Python one refuse a ReplicationController status without `replicas`).
    if matches!((resource.group, resource.kind), ("apps", "ReplicaSet" | "StatefulSet") | ("", "ReplicationController"))
    {
        if let Some(status) = object.get_mut("status").and_then(Value::as_object_mut) {
            status.entry("replicas").or_insert(json!(0));
        }
    }
    match (resource.group, resource.kind) {
        ("", "Service") if status => service::default_status(object),
        ("", "Service") => service::default(object, old),
        ("", "Pod") => workloads::default_pod(object),
        ("", "ReplicationController") | ("apps", "ReplicaSet") => workloads::default_replica_set(object),
        ("apps", "Deployment") => workloads::default_deployment(object),
        ("apps", "StatefulSet") => workloads::default_stateful_set(object),
        _ => {}
    }
}

/// The kind's own validation rules, as field causes.
pub fn validate(resource: &ResourceType, object: &Value, old: Option<&Value>, status: bool) -> Vec<Cause> {
    use frontdoor_validation::{endpoints, endpointslice, ingress, service, workloads};
    let errors = match (resource.group, resource.kind, status) {
        ("", "Pod", false) => match old {
            Some(old) => workloads::validate_pod_update(object, old),
            None => workloads::validate_pod(object),
        },
        ("", "Service", false) => service::validate(object, old),
        ("", "Service", true) => service::validate_status(object, old),
        ("", "Endpoints", _) => endpoints::validate(object, old),
        ("discovery.k8s.io", "EndpointSlice", _) => endpointslice::validate(object, old),
        ("networking.k8s.io", "Ingress", false) => ingress::validate(object, old),
        ("networking.k8s.io", "IngressClass", _) => ingress::validate_class(object, old),
        ("apps", "ControllerRevision", _) => workloads::validate_controller_revision(object, old),
        _ => Vec::new(),
    };
    errors.into_iter().map(|e| Cause { reason: e.reason, field: e.field, message: e.message }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(group: &str, plural: &str) -> &'static ResourceType {
        frontdoor_resources::lookup(group, "v1", plural).expect("served")
    }

    #[test]
    fn a_status_update_keeps_everything_but_the_status_and_metadata() {
        let pods = resource("", "pods");
        let old = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}, "ownerReferences": [{"uid": "u"}]}, "spec": {"nodeName": "n"}, "status": {"phase": "Pending"}});
        // A patched copy that also tried to change the spec, labels and owners, and dropped a field.
        let sent = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "2"}}, "status": {"phase": "Running"}, "extra": 1});
        let next = prepare_for_status_update(pods, &old, sent);
        let mut expected = old.clone();
        expected["status"] = json!({"phase": "Running"});
        // Labels may change through pods/status upstream; owner references may not.
        expected["metadata"]["labels"] = json!({"a": "2"});
        assert_eq!(next, expected);
        // No status sent: an empty one; no metadata sent: the old.
        let next = prepare_for_status_update(pods, &old, json!({"spec": {}}));
        assert_eq!(next["status"], json!({}));
        assert_eq!(next["spec"], old["spec"]);
        assert_eq!(next["metadata"], old["metadata"]);

        // Per kind: what a status write may change in metadata.
        let cases = [
            (("", "services"), json!({"patchedstatus": "true"}), true),
            (("networking.k8s.io", "ingresses"), json!({"patchedstatus": "true"}), true),
            (("apps", "deployments"), json!({"patchedstatus": "true"}), true),
        ];
        for ((group, plural), annotations, kept) in cases {
            let kind = resource(group, plural);
            let old = json!({"metadata": {"name": "x", "labels": {"l": "1"}}, "spec": {"a": 1}, "status": {}});
            let sent = json!({"metadata": {"name": "x", "labels": {"l": "2"}, "annotations": annotations}, "spec": {"a": 2}, "status": {"s": 1}});
            let next = prepare_for_status_update(kind, &old, sent);
            assert_eq!(next["metadata"]["annotations"]["patchedstatus"] == "true", kept, "{plural}");
            assert_eq!(next["spec"], json!({"a": 1}), "{plural}: the spec is the old one");
            let labels_kept = plural == "deployments";
            assert_eq!(next["metadata"]["labels"]["l"], if labels_kept { "1" } else { "2" }, "{plural}");
        }
    }

    #[test]
    fn the_generation_counts_changes_outside_metadata_and_status() {
        let deployments = resource("apps", "deployments");
        let old = json!({"metadata": {"name": "d", "generation": 3}, "spec": {"replicas": 1}, "status": {}});
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        relabelled["status"] = json!({"replicas": 1});
        prepare_for_update(deployments, &old, &mut relabelled);
        assert_eq!(relabelled["metadata"]["generation"], 3);
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(2);
        prepare_for_update(deployments, &old, &mut scaled);
        assert_eq!(scaled["metadata"]["generation"], 4);
        let mut added = old.clone();
        added["template"] = json!({});
        prepare_for_update(deployments, &old, &mut added);
        assert_eq!(added["metadata"]["generation"], 4);
        let status_only =
            prepare_for_status_update(deployments, &old, json!({"status": {"replicas": 5}, "spec": {"replicas": 9}}));
        assert_eq!(status_only["metadata"]["generation"], 3);
        assert_eq!(status_only["spec"]["replicas"], 1);
    }

    #[test]
    fn a_status_update_checks_the_types_of_its_status() {
        let pods = resource("", "pods");
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": []}, "status": {"phase": "Running", "podIP": "10.0.0.1"}});
        assert_eq!(check_status_types(pods, &pod), Ok(()));
        assert_eq!(check_status_types(pods, &json!({"metadata": {"name": "p"}})), Ok(()));
        let mut bad = pod.clone();
        bad["status"]["phase"] = json!(5);
        assert!(check_status_types(pods, &bad).unwrap_err().contains("expected a string"));
        assert_eq!(check_status_types(pods, &bad), check_types(pods, &bad));
        // A kind without a status of its own is checked whole.
        let leases = frontdoor_resources::lookup("coordination.k8s.io", "v1", "leases").unwrap();
        assert!(check_status_types(leases, &json!({"spec": {"holderIdentity": 1}})).is_err());
    }
}
