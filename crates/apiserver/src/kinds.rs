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
    matches!(
        (resource.group, resource.kind),
        ("apps", _) | ("", "ReplicationController") | ("networking.k8s.io", _) | ("discovery.k8s.io", _)
    )
}

/// Decodes the object into its k8s-openapi type to catch type errors, as upstream's decoder does.
pub fn check_types(resource: &ResourceType, object: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coordination, core::v1 as core};
    use k8s_openapi::api::{discovery::v1 as discovery, events::v1 as events, networking::v1 as networking};
    macro_rules! decode {
        ($t:ty) => {
            // From the borrowed value: no copy of the whole object on every write.
            <$t as serde::Deserialize>::deserialize(object).map(|_| ()).map_err(|e| e.to_string())
        };
    }
    match (resource.group, resource.kind) {
        ("", "Namespace") => decode!(core::Namespace),
        ("", "Node") => decode!(core::Node),
        ("", "Pod") => decode!(core::Pod),
        ("", "ReplicationController") => decode!(core::ReplicationController),
        ("", "Service") => decode!(core::Service),
        ("", "Endpoints") => decode!(core::Endpoints),
        ("", "Event") => decode!(core::Event),
        ("", "ConfigMap") => decode!(core::ConfigMap),
        ("", "Secret") => decode!(core::Secret),
        ("", "ServiceAccount") => decode!(core::ServiceAccount),
        ("apps", "Deployment") => decode!(apps::Deployment),
        ("apps", "ReplicaSet") => decode!(apps::ReplicaSet),
        ("apps", "StatefulSet") => decode!(apps::StatefulSet),
        ("discovery.k8s.io", "EndpointSlice") => decode!(discovery::EndpointSlice),
        ("networking.k8s.io", "Ingress") => decode!(networking::Ingress),
        ("networking.k8s.io", "IngressClass") => decode!(networking::IngressClass),
        ("events.k8s.io", "Event") => decode!(events::Event),
        ("coordination.k8s.io", "Lease") => decode!(coordination::Lease),
        _ => Ok(()),
    }
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

/// A status update changes only status: everything else comes from the old object.
pub fn prepare_for_status_update(resource: &ResourceType, old: &Value, new: &Value) -> Value {
    let mut merged = old.clone();
    merged["status"] = new.get("status").cloned().unwrap_or(json!({}));
    carry_generation(resource, old, &mut merged);
    merged
}

fn carry_generation(resource: &ResourceType, old: &Value, new: &mut Value) {
    if !tracks_generation(resource) {
        return;
    }
    let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    let changed = |v: &Value| {
        v.as_object().map(|m| m.iter().filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>())
    };
    let bump = changed(old) != changed(new);
    new["metadata"]["generation"] = json!(if bump { generation + 1 } else { generation });
}

/// Upstream's defaulting for the kind (`old` on update: server-owned fields the client left out
/// are kept).
pub fn default(resource: &ResourceType, object: &mut Value, old: Option<&Value>) {
    use frontdoor_validation::{service, workloads};
    match (resource.group, resource.kind) {
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
    use frontdoor_validation::{endpoints, endpointslice, ingress, service};
    let errors = match (resource.group, resource.kind, status) {
        ("", "Service", false) => service::validate(object, old),
        ("", "Service", true) => service::validate_status(object, old),
        ("", "Endpoints", _) => endpoints::validate(object, old),
        ("discovery.k8s.io", "EndpointSlice", _) => endpointslice::validate(object, old),
        ("networking.k8s.io", "Ingress", false) => ingress::validate(object, old),
        ("networking.k8s.io", "IngressClass", _) => ingress::validate_class(object, old),
        _ => Vec::new(),
    };
    errors.into_iter().map(|e| Cause { reason: e.reason, field: e.field, message: e.message }).collect()
}
