//! The patch metadata of the built-in kinds: a small static type graph.
//!
//! Upstream reads the `patchStrategy` / `patchMergeKey` struct tags of the Go
//! API types (k8s.io/api and k8s.io/apimachinery `meta/v1`). This module
//! records the same facts as a graph of [`Type`]s: a type lists the fields
//! that matter for patching, and each field says how a list in it is patched
//! and which [`Type`] its value (or each list element) has. Types are shared,
//! so `PodSpec` is written once and reached from `Pod.spec` as well as from
//! `spec.template.spec` of Deployments, ReplicaSets, StatefulSets and
//! ReplicationControllers, and `Container` from three lists of `PodSpec`.
//!
//! Only fields that carry a strategy, or that lead to one, are listed. Every
//! other field gets the defaults, which are also the Go defaults for an
//! untagged field: maps merge recursively, lists are replaced wholesale.
//! Lists whose elements hold tagged lists but are themselves replaced (e.g.
//! `PodStatus.containerStatuses`) need no entry either: a replaced list is
//! never looked into.
//!
//! Struct fields tagged `retainKeys` (`DeploymentSpec.strategy`,
//! `PodSpec.volumes`, ...) need no entry: upstream honours a `$retainKeys`
//! directive wherever it appears when applying a patch; the tag only steers
//! clients that compute patches.

/// How a list-valued field is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// No `patchStrategy` tag: the list in the patch replaces the original.
    Replace,
    /// `patchStrategy:"merge"` on a list of primitives: the lists are unioned.
    MergeSet,
    /// `patchStrategy:"merge"` with `patchMergeKey`: elements with the same
    /// value under the key are merged, others are added.
    MergeByKey(&'static str),
}

/// One field of a [`Type`].
#[derive(Debug)]
pub(crate) struct Field {
    /// The JSON name of the field.
    pub(crate) name: &'static str,
    /// How the field is patched when it holds a list.
    pub(crate) list: ListStrategy,
    /// The type of the field's value, or of each element when it is a list;
    /// `None` when nothing below the field needs metadata.
    pub(crate) ty: Option<&'static Type>,
}

/// A Go struct type, reduced to the fields that matter for patching.
#[derive(Debug)]
pub(crate) struct Type {
    /// The Go type name, for documentation and debugging.
    #[allow(dead_code)]
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [Field],
}

/// What the engine knows about the value at some position: its type when it
/// is a known struct, `None` for free-form data (map-valued fields such as
/// labels, unlisted fields, and every unknown kind).
pub(crate) type Schema = Option<&'static Type>;

/// The metadata of one field, as looked up by the merge engine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldMeta {
    pub(crate) list: ListStrategy,
    pub(crate) ty: Schema,
}

/// Looks up field `name` of the value described by `schema`. Unlisted and
/// untyped fields get the defaults: replace lists, no nested type.
pub(crate) fn lookup(schema: Schema, name: &str) -> FieldMeta {
    schema.and_then(|ty| ty.fields.iter().find(|field| field.name == name)).map_or(
        FieldMeta { list: ListStrategy::Replace, ty: None },
        |field| FieldMeta { list: field.list, ty: field.ty },
    )
}

/// The root type for objects of `kind` in `api_version`, or `None` when the
/// kind is not one of the built-in kinds this crate knows.
pub(crate) fn root_type(api_version: &str, kind: &str) -> Option<&'static Type> {
    let ty: &'static Type = match (api_version, kind) {
        ("v1", "Pod") => &POD,
        ("v1", "Node") => &NODE,
        ("v1", "Namespace") => &NAMESPACE,
        ("v1", "Service") => &SERVICE,
        ("v1", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("v1", "ReplicationController") => &WORKLOAD,
        ("apps/v1", "Deployment" | "ReplicaSet" | "StatefulSet") => &WORKLOAD,
        // Kinds whose only patch metadata is in their ObjectMeta: Endpoints
        // (subsets, addresses and ports are all replaced), Events, ConfigMaps
        // and Secrets (free-form data maps), EndpointSlices, Ingresses
        // (rules, tls, status.loadBalancer.ingress are replaced), and so on.
        ("v1", "Endpoints" | "Event" | "ConfigMap" | "Secret")
        | ("discovery.k8s.io/v1", "EndpointSlice")
        | ("networking.k8s.io/v1", "Ingress" | "IngressClass")
        | ("events.k8s.io/v1", "Event")
        | ("coordination.k8s.io/v1", "Lease")
        | ("apps/v1", "ControllerRevision")
        | ("autoscaling/v1", "Scale") => &METADATA_ONLY,
        _ => return None,
    };
    Some(ty)
}

/// A field holding a nested struct (or a list replaced wholesale).
const fn nested(name: &'static str, ty: &'static Type) -> Field {
    Field { name, list: ListStrategy::Replace, ty: Some(ty) }
}

/// A list of objects merged by `key`, whose elements need no metadata.
const fn keyed(name: &'static str, key: &'static str) -> Field {
    Field { name, list: ListStrategy::MergeByKey(key), ty: None }
}

/// A list of objects of type `ty`, merged by `key`.
const fn keyed_of(name: &'static str, key: &'static str, ty: &'static Type) -> Field {
    Field { name, list: ListStrategy::MergeByKey(key), ty: Some(ty) }
}

/// A list of primitives merged as a set.
const fn set(name: &'static str) -> Field {
    Field { name, list: ListStrategy::MergeSet, ty: None }
}

/// meta/v1 ObjectMeta.
static OBJECT_META: Type = Type { name: "ObjectMeta", fields: &[keyed("ownerReferences", "uid"), set("finalizers")] };

/// An object with nothing but ObjectMeta to know about.
static METADATA_ONLY: Type = Type { name: "Object", fields: &[nested("metadata", &OBJECT_META)] };

/// The status of any kind whose only merged status list is `conditions` keyed
/// by `type`: NamespaceStatus, ServiceStatus, ReplicationControllerStatus and
/// the apps/v1 Deployment, ReplicaSet and StatefulSet statuses.
static CONDITIONS_STATUS: Type = Type { name: "*Status", fields: &[keyed("conditions", "type")] };

/// core/v1 Container, and EphemeralContainer (whose inlined
/// EphemeralContainerCommon carries the same tags).
static CONTAINER: Type = Type {
    name: "Container",
    fields: &[
        keyed("ports", "containerPort"),
        keyed("env", "name"),
        keyed("volumeMounts", "mountPath"),
        keyed("volumeDevices", "devicePath"),
    ],
};

/// core/v1 PodSpec. `volumes` and `resourceClaims` are tagged
/// `merge,retainKeys`; see the module documentation for retainKeys.
static POD_SPEC: Type = Type {
    name: "PodSpec",
    fields: &[
        keyed("volumes", "name"),
        keyed_of("initContainers", "name", &CONTAINER),
        keyed_of("containers", "name", &CONTAINER),
        keyed_of("ephemeralContainers", "name", &CONTAINER),
        keyed("imagePullSecrets", "name"),
        keyed("hostAliases", "ip"),
        keyed("topologySpreadConstraints", "topologyKey"),
        keyed("schedulingGates", "name"),
        keyed("resourceClaims", "name"),
    ],
};

/// core/v1 PodStatus. The container status lists are replaced.
static POD_STATUS: Type = Type {
    name: "PodStatus",
    fields: &[
        keyed("conditions", "type"),
        keyed("hostIPs", "ip"),
        keyed("podIPs", "ip"),
        keyed("resourceClaimStatuses", "name"),
    ],
};

/// core/v1 PodTemplateSpec.
static POD_TEMPLATE_SPEC: Type =
    Type { name: "PodTemplateSpec", fields: &[nested("metadata", &OBJECT_META), nested("spec", &POD_SPEC)] };

/// core/v1 Pod.
static POD: Type = Type {
    name: "Pod",
    fields: &[nested("metadata", &OBJECT_META), nested("spec", &POD_SPEC), nested("status", &POD_STATUS)],
};

/// The spec of every kind that runs pods from a template: ReplicationController
/// and apps/v1 Deployment, ReplicaSet, StatefulSet. (StatefulSet's
/// volumeClaimTemplates and Deployment's strategy need no entry.)
static WORKLOAD_SPEC: Type = Type { name: "*Spec", fields: &[nested("template", &POD_TEMPLATE_SPEC)] };

/// ReplicationController, Deployment, ReplicaSet and StatefulSet.
static WORKLOAD: Type = Type {
    name: "Workload",
    fields: &[nested("metadata", &OBJECT_META), nested("spec", &WORKLOAD_SPEC), nested("status", &CONDITIONS_STATUS)],
};

/// core/v1 NodeSpec. `taints` is replaced.
static NODE_SPEC: Type = Type { name: "NodeSpec", fields: &[set("podCIDRs")] };

/// core/v1 NodeStatus. `images` and `volumesAttached` are replaced.
static NODE_STATUS: Type =
    Type { name: "NodeStatus", fields: &[keyed("conditions", "type"), keyed("addresses", "type")] };

/// core/v1 Node.
static NODE: Type = Type {
    name: "Node",
    fields: &[nested("metadata", &OBJECT_META), nested("spec", &NODE_SPEC), nested("status", &NODE_STATUS)],
};

/// core/v1 Namespace. `spec.finalizers` is untagged, so it is replaced.
static NAMESPACE: Type =
    Type { name: "Namespace", fields: &[nested("metadata", &OBJECT_META), nested("status", &CONDITIONS_STATUS)] };

/// core/v1 ServiceSpec. Ports merge by `port` alone, as upstream does (two
/// ports that share a number but differ in protocol collide).
static SERVICE_SPEC: Type = Type { name: "ServiceSpec", fields: &[keyed("ports", "port")] };

/// core/v1 Service. `status.loadBalancer.ingress` is replaced.
static SERVICE: Type = Type {
    name: "Service",
    fields: &[nested("metadata", &OBJECT_META), nested("spec", &SERVICE_SPEC), nested("status", &CONDITIONS_STATUS)],
};

/// core/v1 ServiceAccount. `imagePullSecrets` is untagged here (unlike in
/// PodSpec), so it is replaced.
static SERVICE_ACCOUNT: Type =
    Type { name: "ServiceAccount", fields: &[nested("metadata", &OBJECT_META), keyed("secrets", "name")] };

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_at(api_version: &str, kind: &str, path: &[&str]) -> FieldMeta {
        let mut schema = root_type(api_version, kind);
        let mut meta = FieldMeta { list: ListStrategy::Replace, ty: schema };
        for name in path {
            meta = lookup(schema, name);
            schema = meta.ty;
        }
        meta
    }

    #[test]
    fn lists_resolve_through_the_type_graph() {
        use ListStrategy::*;
        let cases: &[(&str, &str, &[&str], ListStrategy)] = &[
            ("v1", "Pod", &["spec", "containers"], MergeByKey("name")),
            ("v1", "Pod", &["spec", "containers", "env"], MergeByKey("name")),
            ("v1", "Pod", &["spec", "initContainers", "volumeMounts"], MergeByKey("mountPath")),
            ("v1", "Pod", &["spec", "ephemeralContainers", "ports"], MergeByKey("containerPort")),
            ("v1", "Pod", &["spec", "tolerations"], Replace),
            ("v1", "Pod", &["spec", "containers", "args"], Replace),
            ("v1", "Pod", &["status", "conditions"], MergeByKey("type")),
            ("v1", "Pod", &["status", "containerStatuses"], Replace),
            ("v1", "Pod", &["metadata", "finalizers"], MergeSet),
            ("v1", "Pod", &["metadata", "ownerReferences"], MergeByKey("uid")),
            (
                "apps/v1",
                "Deployment",
                &["spec", "template", "spec", "containers", "volumeDevices"],
                MergeByKey("devicePath"),
            ),
            ("apps/v1", "StatefulSet", &["spec", "template", "metadata", "finalizers"], MergeSet),
            ("apps/v1", "StatefulSet", &["spec", "volumeClaimTemplates"], Replace),
            ("apps/v1", "ReplicaSet", &["status", "conditions"], MergeByKey("type")),
            ("v1", "ReplicationController", &["spec", "template", "spec", "hostAliases"], MergeByKey("ip")),
            ("v1", "Service", &["spec", "ports"], MergeByKey("port")),
            ("v1", "Service", &["status", "loadBalancer", "ingress"], Replace),
            ("v1", "Node", &["spec", "podCIDRs"], MergeSet),
            ("v1", "Node", &["spec", "taints"], Replace),
            ("v1", "Node", &["status", "addresses"], MergeByKey("type")),
            ("v1", "Namespace", &["spec", "finalizers"], Replace),
            ("v1", "ServiceAccount", &["secrets"], MergeByKey("name")),
            ("v1", "ServiceAccount", &["imagePullSecrets"], Replace),
            ("v1", "Endpoints", &["subsets"], Replace),
            ("discovery.k8s.io/v1", "EndpointSlice", &["endpoints"], Replace),
            ("networking.k8s.io/v1", "Ingress", &["spec", "rules"], Replace),
        ];
        for (api_version, kind, path, expected) in cases {
            assert_eq!(meta_at(api_version, kind, path).list, *expected, "{kind} {path:?}");
        }
    }

    #[test]
    fn every_listed_kind_is_known_and_others_are_not() {
        let known = [
            ("v1", "Namespace"),
            ("v1", "Node"),
            ("v1", "Pod"),
            ("v1", "ReplicationController"),
            ("v1", "Service"),
            ("v1", "Endpoints"),
            ("v1", "Event"),
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "ServiceAccount"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "ReplicaSet"),
            ("apps/v1", "StatefulSet"),
            ("discovery.k8s.io/v1", "EndpointSlice"),
            ("networking.k8s.io/v1", "Ingress"),
            ("networking.k8s.io/v1", "IngressClass"),
            ("events.k8s.io/v1", "Event"),
            ("coordination.k8s.io/v1", "Lease"),
            ("apps/v1", "ControllerRevision"),
            ("autoscaling/v1", "Scale"),
        ];
        for (api_version, kind) in known {
            assert!(root_type(api_version, kind).is_some(), "{api_version} {kind}");
        }
        assert!(root_type("example.com/v1", "Widget").is_none());
        assert!(root_type("apps/v1", "Pod").is_none());
    }
}
