//! The catalogue of API resources that frontdoor's API server serves.
//!
//! Everything that needs to know "which resources exist" reads this one table: the HTTP router,
//! discovery (legacy and aggregated), the OpenAPI documents and kubectl's short names. It is pure
//! data: no I/O, no serde, no knowledge of how objects are stored.
#![forbid(unsafe_code)]

/// The verbs of an ordinary, fully featured resource.
pub const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// Namespaces have no `deletecollection` upstream.
const NAMESPACE_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// A subresource such as `status` or `scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    /// Group, version and kind of the object the subresource speaks (`autoscaling/v1 Scale` for
    /// `scale`, the parent's own kind for `status`).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// One resource type, e.g. `services` in the core group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    /// Plural, lower case: the name in URLs (`services`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [Subresource],
}

impl ResourceType {
    /// `v1` for the core group, `apps/v1` otherwise: the `apiVersion` field of objects.
    pub fn api_version(&self) -> String {
        group_version_string(self.group, self.version)
    }

    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// `services` or `deployments.apps`: how upstream names the resource in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// `v1` for the core group, `group/version` otherwise.
pub fn group_version_string(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

const fn status(group: &'static str, version: &'static str, kind: &'static str) -> Subresource {
    Subresource { name: "status", group, version, kind, verbs: STATUS_VERBS }
}

const fn scale() -> Subresource {
    Subresource { name: "scale", group: "autoscaling", version: "v1", kind: "Scale", verbs: STATUS_VERBS }
}

const fn pod_binding() -> Subresource {
    Subresource { name: "binding", group: "", version: "v1", kind: "Binding", verbs: &["create"] }
}

const fn pod_log() -> Subresource {
    Subresource { name: "log", group: "", version: "v1", kind: "Pod", verbs: &["get"] }
}

/// `kubectl port-forward`: an upgraded connection (SPDY, or SPDY tunnelled in WebSocket), as
/// upstream's connect subresource.
const fn pod_port_forward() -> Subresource {
    Subresource {
        name: "portforward",
        group: "",
        version: "v1",
        kind: "PodPortForwardOptions",
        verbs: &["create", "get"],
    }
}

/// `kubectl exec`: likewise upgraded (SPDY, or WebSocket with the v5 channel protocol).
const fn pod_exec() -> Subresource {
    Subresource { name: "exec", group: "", version: "v1", kind: "PodExecOptions", verbs: &["create", "get"] }
}

/// The verbs upstream lists for a `proxy` connect subresource: the HTTP methods it relays
/// (GET, POST, PUT, PATCH, DELETE; HEAD and OPTIONS are relayed too but name no verb).
const PROXY_VERBS: &[&str] = &["create", "delete", "get", "patch", "update"];

/// `pods/proxy`, `services/proxy`, `nodes/proxy`: HTTP relayed to the pod, a ready endpoint of
/// the Service, or the node's kubelet (`<name>[:port]/proxy/<path>`).
const fn proxy(kind: &'static str) -> Subresource {
    Subresource { name: "proxy", group: "", version: "v1", kind, verbs: PROXY_VERBS }
}

const fn plain(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        categories: &[],
        verbs: ALL_VERBS,
        subresources: &[],
    }
}

static CATALOG: &[ResourceType] = &[
    ResourceType {
        verbs: NAMESPACE_VERBS,
        subresources: &[status("", "v1", "Namespace")],
        ..plain("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"])
    },
    ResourceType {
        subresources: &[status("", "v1", "Node"), proxy("NodeProxyOptions")],
        ..plain("", "v1", "nodes", "node", "Node", false, &["no"])
    },
    ResourceType {
        categories: &["all"],
        subresources: &[
            status("", "v1", "Pod"),
            pod_binding(),
            pod_log(),
            pod_port_forward(),
            pod_exec(),
            proxy("PodProxyOptions"),
        ],
        ..plain("", "v1", "pods", "pod", "Pod", true, &["po"])
    },
    ResourceType {
        categories: &["all"],
        subresources: &[status("", "v1", "ReplicationController"), scale()],
        ..plain("", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", true, &["rc"])
    },
    ResourceType {
        categories: &["all"],
        subresources: &[status("", "v1", "Service"), proxy("ServiceProxyOptions")],
        ..plain("", "v1", "services", "service", "Service", true, &["svc"])
    },
    plain("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"]),
    plain("", "v1", "events", "event", "Event", true, &["ev"]),
    plain("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"]),
    plain("", "v1", "secrets", "secret", "Secret", true, &[]),
    plain("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, &["sa"]),
    ResourceType {
        categories: &["all"],
        subresources: &[status("apps", "v1", "Deployment"), scale()],
        ..plain("apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"])
    },
    ResourceType {
        categories: &["all"],
        subresources: &[status("apps", "v1", "ReplicaSet"), scale()],
        ..plain("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"])
    },
    ResourceType {
        categories: &["all"],
        subresources: &[status("apps", "v1", "StatefulSet"), scale()],
        ..plain("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, &["sts"])
    },
    plain("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true, &[]),
    plain("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, &[]),
    ResourceType {
        subresources: &[status("networking.k8s.io", "v1", "Ingress")],
        ..plain("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, &["ing"])
    },
    plain("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", false, &[]),
    plain("events.k8s.io", "v1", "events", "event", "Event", true, &["ev"]),
    plain("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[]),
];

/// Every served resource, core group first, in a stable order.
pub fn all() -> &'static [ResourceType] {
    CATALOG
}

/// The resource served at `/api[s]/<group>/<version>/<plural>`.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    CATALOG.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource whose objects have this `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    let (group, version) = split_api_version(api_version);
    CATALOG.iter().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The API groups served (the core group `""` first), each with its versions, preferred first.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in CATALOG {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version)
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// The resources of one group-version, in catalogue order.
pub fn in_group_version<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static ResourceType> + 'a {
    CATALOG.iter().filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        let svc = lookup("", "v1", "services").unwrap();
        assert_eq!(svc.kind, "Service");
        assert_eq!(svc.api_version(), "v1");
        assert_eq!(by_kind("apps/v1", "Deployment").unwrap().plural, "deployments");
        assert_eq!(lookup("apps", "v1", "deployments").unwrap().subresource("scale").unwrap().kind, "Scale");
        assert!(lookup("", "v1", "nosuch").is_none());
    }

    #[test]
    fn plurals_are_unique_per_group_version_and_core_comes_first() {
        let groups = groups();
        assert_eq!(groups[0].0, "");
        for (i, a) in all().iter().enumerate() {
            for b in &all()[i + 1..] {
                assert!(!(a.group == b.group && a.version == b.version && a.plural == b.plural));
            }
        }
    }
}
