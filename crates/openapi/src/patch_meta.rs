//! The list-merge extensions upstream publishes for the fields of the served kinds.
//!
//! k8s-openapi's schemas carry the field types and descriptions but not the Go struct tags behind
//! `x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`, `x-kubernetes-list-type` and
//! `x-kubernetes-list-map-keys`. kubectl computes strategic merge patches from the first two (a
//! list without them is replaced wholesale), so this table restores them for every list in the
//! served kinds that upstream merges by key or as a set. Lists not named here are atomic, which is
//! also what a missing `x-kubernetes-list-type` means.

use serde_json::{json, Map, Value};

/// How upstream merges one list field.
pub(crate) struct ListMeta {
    /// Schema that owns the field, by upstream name.
    pub schema: &'static str,
    pub field: &'static str,
    /// `x-kubernetes-patch-merge-key`, if the list merges by key.
    pub merge_key: Option<&'static str>,
    /// `x-kubernetes-patch-strategy`, if any.
    pub strategy: Option<&'static str>,
    /// `x-kubernetes-list-type`: `map`, `set` or `atomic`.
    pub list_type: &'static str,
    /// `x-kubernetes-list-map-keys` for `map` lists.
    pub map_keys: &'static [&'static str],
}

const fn keyed(
    schema: &'static str,
    field: &'static str,
    key: &'static str,
    map_keys: &'static [&'static str],
) -> ListMeta {
    ListMeta { schema, field, merge_key: Some(key), strategy: Some("merge"), list_type: "map", map_keys }
}

const fn keyed_retain(schema: &'static str, field: &'static str, key: &'static str) -> ListMeta {
    ListMeta { strategy: Some("merge,retainKeys"), ..keyed(schema, field, key, &["name"]) }
}

const fn conditions(schema: &'static str) -> ListMeta {
    keyed(schema, "conditions", "type", &["type"])
}

/// Every keyed or set-like list reachable from the served kinds.
pub(crate) static LISTS: &[ListMeta] = &[
    // metadata
    ListMeta {
        schema: "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        field: "finalizers",
        merge_key: None,
        strategy: Some("merge"),
        list_type: "set",
        map_keys: &[],
    },
    keyed("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "uid", &["uid"]),
    // pods and pod templates
    keyed_retain("io.k8s.api.core.v1.PodSpec", "volumes", "name"),
    keyed("io.k8s.api.core.v1.PodSpec", "initContainers", "name", &["name"]),
    keyed("io.k8s.api.core.v1.PodSpec", "containers", "name", &["name"]),
    keyed("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "name", &["name"]),
    keyed("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "name", &["name"]),
    keyed("io.k8s.api.core.v1.PodSpec", "hostAliases", "ip", &["ip"]),
    keyed(
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "topologyKey",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    keyed_retain("io.k8s.api.core.v1.PodSpec", "resourceClaims", "name"),
    keyed("io.k8s.api.core.v1.PodSpec", "schedulingGates", "name", &["name"]),
    keyed("io.k8s.api.core.v1.Container", "ports", "containerPort", &["containerPort", "protocol"]),
    keyed("io.k8s.api.core.v1.Container", "env", "name", &["name"]),
    keyed("io.k8s.api.core.v1.Container", "volumeMounts", "mountPath", &["mountPath"]),
    keyed("io.k8s.api.core.v1.Container", "volumeDevices", "devicePath", &["devicePath"]),
    keyed("io.k8s.api.core.v1.EphemeralContainer", "ports", "containerPort", &["containerPort", "protocol"]),
    keyed("io.k8s.api.core.v1.EphemeralContainer", "env", "name", &["name"]),
    keyed("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", "mountPath", &["mountPath"]),
    keyed("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", "devicePath", &["devicePath"]),
    ListMeta {
        schema: "io.k8s.api.core.v1.ResourceRequirements",
        field: "claims",
        merge_key: None,
        strategy: None,
        list_type: "map",
        map_keys: &["name"],
    },
    conditions("io.k8s.api.core.v1.PodStatus"),
    keyed("io.k8s.api.core.v1.PodStatus", "podIPs", "ip", &["ip"]),
    ListMeta {
        schema: "io.k8s.api.core.v1.PodStatus",
        field: "hostIPs",
        merge_key: Some("ip"),
        strategy: Some("merge"),
        list_type: "atomic",
        map_keys: &[],
    },
    keyed_retain("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses", "name"),
    // services, nodes, namespaces, service accounts, replication controllers
    keyed("io.k8s.api.core.v1.ServiceSpec", "ports", "port", &["port", "protocol"]),
    conditions("io.k8s.api.core.v1.ServiceStatus"),
    ListMeta {
        schema: "io.k8s.api.core.v1.NodeSpec",
        field: "podCIDRs",
        merge_key: None,
        strategy: Some("merge"),
        list_type: "set",
        map_keys: &[],
    },
    conditions("io.k8s.api.core.v1.NodeStatus"),
    keyed("io.k8s.api.core.v1.NodeStatus", "addresses", "type", &["type"]),
    conditions("io.k8s.api.core.v1.NamespaceStatus"),
    keyed("io.k8s.api.core.v1.ServiceAccount", "secrets", "name", &["name"]),
    conditions("io.k8s.api.core.v1.ReplicationControllerStatus"),
    // apps
    conditions("io.k8s.api.apps.v1.DeploymentStatus"),
    conditions("io.k8s.api.apps.v1.ReplicaSetStatus"),
    conditions("io.k8s.api.apps.v1.StatefulSetStatus"),
];

/// Adds the table's extensions to the schemas in `defs`. Entries whose schema or field is absent
/// are skipped (a schema is absent when no served kind reaches it).
pub(crate) fn apply(defs: &mut Map<String, Value>) {
    for list in LISTS {
        let Some(field) = defs
            .get_mut(list.schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(list.field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        field.insert("x-kubernetes-list-type".into(), json!(list.list_type));
        if !list.map_keys.is_empty() {
            field.insert("x-kubernetes-list-map-keys".into(), json!(list.map_keys));
        }
        if let Some(key) = list.merge_key {
            field.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
        if let Some(strategy) = list.strategy {
            field.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LISTS;

    #[test]
    fn every_entry_names_a_list_field_of_a_generated_schema() {
        let defs = &crate::schemas::get().defs;
        for list in LISTS {
            let field = defs
                .get(list.schema)
                .and_then(|s| s.pointer(&format!("/properties/{}", list.field)))
                .unwrap_or_else(|| panic!("{}.{} is not generated", list.schema, list.field));
            assert_eq!(field["type"], "array", "{}.{}", list.schema, list.field);
            assert_eq!(field["x-kubernetes-list-type"], list.list_type);
        }
    }
}
