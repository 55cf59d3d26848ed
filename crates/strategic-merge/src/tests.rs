//! Table-driven tests of [`crate::apply_patch`]: what `kubectl` (apply,
//! patch, rollout, cordon, ...) and the controllers send for every kind, and
//! every directive, including the malformed patches that must be refused.

use serde_json::{json, Value};

use crate::{apply_patch, supports_strategic_merge, PatchError};

/// What a case expects.
enum Want {
    /// The patched object (map key order is not compared; list order is).
    Object(Value),
    /// An error whose message contains this text.
    Error(&'static str),
}

struct Case {
    name: &'static str,
    api_version: &'static str,
    kind: &'static str,
    original: Value,
    patch: Value,
    want: Want,
}

fn ok(
    name: &'static str,
    api_version: &'static str,
    kind: &'static str,
    original: Value,
    patch: Value,
    want: Value,
) -> Case {
    Case { name, api_version, kind, original, patch, want: Want::Object(want) }
}

fn err(
    name: &'static str,
    api_version: &'static str,
    kind: &'static str,
    original: Value,
    patch: Value,
    message: &'static str,
) -> Case {
    Case { name, api_version, kind, original, patch, want: Want::Error(message) }
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let got = apply_patch(case.api_version, case.kind, &case.original, &case.patch);
        match (&case.want, got) {
            (Want::Object(want), Ok(got)) if *want == got => {}
            (Want::Error(fragment), Err(error)) if error.to_string().contains(fragment) => {}
            (Want::Object(want), got) => failures.push(format!("{}:\n  want {want}\n  got  {got:?}", case.name)),
            (Want::Error(fragment), got) => {
                failures.push(format!("{}:\n  want error containing {fragment:?}\n  got  {got:?}", case.name))
            }
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

/// A Deployment (or, with another kind, any pod-template workload) running `containers`.
fn workload(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers, "restartPolicy": "Always"}
            }
        }
    })
}

/// Wraps a pod spec patch in a workload patch.
fn template_patch(pod_spec_patch: Value) -> Value {
    json!({"spec": {"template": {"spec": pod_spec_patch}}})
}

fn web_container() -> Value {
    json!({
        "name": "web",
        "image": "nginx:1",
        "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
        "env": [{"name": "A", "value": "1"}, {"name": "X", "value": "gone soon"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}]
    })
}

#[test]
fn services() {
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "annotations": {"owner": "team"}},
        "spec": {
            "selector": {"app": "web", "tier": "front"},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP", "name": "http"}],
            "type": "ClusterIP"
        }
    });
    let with_spec = |spec_changes: Value| {
        let mut object = service.clone();
        for (key, value) in spec_changes.as_object().cloned().unwrap_or_default() {
            object["spec"][key] = value;
        }
        object
    };
    run(vec![
        ok(
            "kubectl apply updates a port in place",
            "v1",
            "Service",
            service.clone(),
            json!({
                "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                "spec": {"$setElementOrder/ports": [{"port": 80}], "ports": [{"port": 80, "targetPort": 9090}]}
            }),
            {
                let mut want =
                    with_spec(json!({"ports": [{"port": 80, "targetPort": 9090, "protocol": "TCP", "name": "http"}]}));
                want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json!("{}");
                want
            },
        ),
        ok(
            "kubectl apply adds a port after the existing one",
            "v1",
            "Service",
            service.clone(),
            json!({"spec": {
                "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                "ports": [{"name": "https", "port": 443, "targetPort": 8443}]
            }}),
            with_spec(json!({"ports": [
                {"port": 80, "targetPort": 8080, "protocol": "TCP", "name": "http"},
                {"name": "https", "port": 443, "targetPort": 8443}
            ]})),
        ),
        ok(
            "a new port without an order list goes first, as upstream",
            "v1",
            "Service",
            service.clone(),
            json!({"spec": {"ports": [{"name": "https", "port": 443}]}}),
            with_spec(json!({"ports": [
                {"name": "https", "port": 443},
                {"port": 80, "targetPort": 8080, "protocol": "TCP", "name": "http"}
            ]})),
        ),
        ok(
            "kubectl apply removes a port",
            "v1",
            "Service",
            with_spec(json!({"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]})),
            json!({"spec": {"$setElementOrder/ports": [{"port": 443}], "ports": [{"$patch": "delete", "port": 80}]}}),
            with_spec(json!({"ports": [{"port": 443, "name": "https"}]})),
        ),
        ok(
            "selector entries merge and null deletes one",
            "v1",
            "Service",
            service.clone(),
            json!({"spec": {"selector": {"tier": null, "version": "v2"}}}),
            with_spec(json!({"selector": {"app": "web", "version": "v2"}})),
        ),
        ok(
            "status load balancer ingress is replaced; conditions merge by type",
            "v1",
            "Service",
            {
                let mut object = service.clone();
                object["status"] = json!({
                    "loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]},
                    "conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]
                });
                object
            },
            json!({"status": {
                "loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]},
                "conditions": [{"type": "B", "status": "True"}]
            }}),
            {
                let mut object = service.clone();
                object["status"] = json!({
                    "loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]},
                    "conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]
                });
                object
            },
        ),
        ok(
            "type switch clears a field with null",
            "v1",
            "Service",
            with_spec(json!({"type": "NodePort", "externalTrafficPolicy": "Cluster"})),
            json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": null}}),
            with_spec(json!({"type": "ClusterIP"})).tap_remove(&["spec", "externalTrafficPolicy"]),
        ),
    ]);
}

/// Small helper for building expected objects.
trait TapRemove {
    fn tap_remove(self, path: &[&str]) -> Value;
}

impl TapRemove for Value {
    /// Removes the field at `path` (if any) and returns the value.
    fn tap_remove(mut self, path: &[&str]) -> Value {
        if let Some((last, parents)) = path.split_last() {
            let mut at = &mut self;
            for parent in parents {
                at = &mut at[*parent];
            }
            if let Value::Object(map) = at {
                map.shift_remove(*last);
            }
        }
        self
    }
}

#[test]
fn deployments() {
    let original = workload(json!([web_container()]));
    let web_with = |changes: Value| {
        let mut web = web_container();
        for (key, value) in changes.as_object().cloned().unwrap_or_default() {
            web[key] = value;
        }
        web
    };
    let sidecar = json!({"name": "sidecar", "image": "envoy:1"});
    run(vec![
        ok(
            "kubectl apply changes only the image",
            "apps/v1",
            "Deployment",
            original.clone(),
            template_patch(
                json!({"$setElementOrder/containers": [{"name": "web"}], "containers": [{"image": "nginx:2", "name": "web"}]}),
            ),
            workload(json!([web_with(json!({"image": "nginx:2"}))])),
        ),
        ok(
            "kubectl rollout restart adds a template annotation",
            "apps/v1",
            "Deployment",
            original.clone(),
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-22T02:25:10Z"}}}}}),
            {
                let mut want = original.clone();
                want["spec"]["template"]["metadata"]["annotations"] =
                    json!({"kubectl.kubernetes.io/restartedAt": "2026-11-22T02:25:10Z"});
                want
            },
        ),
        ok(
            "kubectl apply removes an env var",
            "apps/v1",
            "Deployment",
            original.clone(),
            template_patch(json!({
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "X"}], "name": "web"}]
            })),
            workload(json!([web_with(json!({"env": [{"name": "A", "value": "1"}]}))])),
        ),
        ok(
            "removing an env var without an order list",
            "apps/v1",
            "Deployment",
            original.clone(),
            template_patch(json!({"containers": [{"name": "web", "env": [{"$patch": "delete", "name": "X"}]}]})),
            workload(json!([web_with(json!({"env": [{"name": "A", "value": "1"}]}))])),
        ),
        ok(
            "$retainKeys switches the strategy from RollingUpdate to Recreate",
            "apps/v1",
            "Deployment",
            original.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
            {
                let mut want = original.clone();
                want["spec"]["strategy"] = json!({"type": "Recreate"});
                want
            },
        ),
        ok(
            "$retainKeys alone clears the fields it does not list",
            "apps/v1",
            "Deployment",
            original.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            {
                let mut want = original.clone();
                want["spec"]["strategy"] = json!({"type": "Recreate"});
                want
            },
        ),
        ok(
            "kubectl apply adds a sidecar after web",
            "apps/v1",
            "Deployment",
            original.clone(),
            template_patch(json!({
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [sidecar.clone()]
            })),
            workload(json!([web_container(), sidecar.clone()])),
        ),
        ok(
            "kubectl apply puts a new container first when the order says so",
            "apps/v1",
            "Deployment",
            original.clone(),
            template_patch(json!({
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                "containers": [sidecar.clone()]
            })),
            workload(json!([sidecar.clone(), web_container()])),
        ),
        ok(
            "$setElementOrder alone reorders",
            "apps/v1",
            "Deployment",
            workload(json!([web_container(), sidecar.clone()])),
            template_patch(json!({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]})),
            workload(json!([sidecar.clone(), web_container()])),
        ),
        ok(
            "kubectl apply removes a container",
            "apps/v1",
            "Deployment",
            workload(json!([web_container(), sidecar.clone()])),
            template_patch(json!({
                "$setElementOrder/containers": [{"name": "web"}],
                "containers": [{"$patch": "delete", "name": "sidecar"}]
            })),
            original.clone(),
        ),
        ok(
            "$patch: replace in the containers list replaces it",
            "apps/v1",
            "Deployment",
            workload(json!([web_container(), sidecar.clone()])),
            template_patch(json!({"containers": [{"$patch": "replace"}, {"name": "only", "image": "busybox"}]})),
            workload(json!([{"name": "only", "image": "busybox"}])),
        ),
        ok(
            "ports merge by containerPort, volume mounts by mountPath",
            "apps/v1",
            "Deployment",
            original.clone(),
            template_patch(json!({"containers": [{
                "name": "web",
                "ports": [{"containerPort": 80, "name": "web"}],
                "volumeMounts": [{"mountPath": "/data", "readOnly": true}]
            }]})),
            workload(json!([web_with(json!({
                "ports": [{"containerPort": 80, "protocol": "TCP", "name": "web"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]
            }))])),
        ),
        ok(
            "a null field inside a merged container deletes it",
            "apps/v1",
            "Deployment",
            original.clone(),
            template_patch(json!({"containers": [{"name": "web", "ports": null}]})),
            workload(json!([web_container().tap_remove(&["ports"])])),
        ),
        ok(
            "args and tolerations are replaced",
            "apps/v1",
            "Deployment",
            {
                let mut object = workload(json!([web_with(json!({"args": ["a", "b"]}))]));
                object["spec"]["template"]["spec"]["tolerations"] =
                    json!([{"key": "k1", "operator": "Exists"}, {"key": "k2", "operator": "Exists"}]);
                object
            },
            template_patch(
                json!({"containers": [{"name": "web", "args": ["c"]}], "tolerations": [{"key": "k3", "operator": "Exists"}]}),
            ),
            {
                let mut object = workload(json!([web_with(json!({"args": ["c"]}))]));
                object["spec"]["template"]["spec"]["tolerations"] = json!([{"key": "k3", "operator": "Exists"}]);
                object
            },
        ),
        ok(
            "a volume switches source with $retainKeys",
            "apps/v1",
            "Deployment",
            {
                let mut object = original.clone();
                object["spec"]["template"]["spec"]["volumes"] =
                    json!([{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {"medium": "Memory"}}]);
                object
            },
            template_patch(json!({
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "tmp"}],
                "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}]
            })),
            {
                let mut object = original.clone();
                object["spec"]["template"]["spec"]["volumes"] = json!([{"name": "data", "configMap": {"name": "cfg"}}, {"name": "tmp", "emptyDir": {"medium": "Memory"}}]);
                object
            },
        ),
        ok(
            "kubectl scale / edit replicas",
            "apps/v1",
            "Deployment",
            original.clone(),
            json!({"spec": {"replicas": 5}}),
            {
                let mut want = original.clone();
                want["spec"]["replicas"] = json!(5);
                want
            },
        ),
        ok(
            "status conditions merge by type",
            "apps/v1",
            "Deployment",
            {
                let mut object = original.clone();
                object["status"] = json!({"conditions": [
                    {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                    {"type": "Progressing", "status": "True"}
                ]});
                object
            },
            json!({"status": {"conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}}),
            {
                let mut object = original.clone();
                object["status"] = json!({"conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "True"}
                ]});
                object
            },
        ),
        ok(
            "pod template labels merge; template finalizers are a set",
            "apps/v1",
            "Deployment",
            original.clone(),
            json!({"spec": {"template": {"metadata": {"labels": {"version": "2"}, "finalizers": ["a"]}}}}),
            {
                let mut want = original.clone();
                want["spec"]["template"]["metadata"]["labels"]["version"] = json!("2");
                want["spec"]["template"]["metadata"]["finalizers"] = json!(["a"]);
                want
            },
        ),
    ]);
}

#[test]
fn other_workloads() {
    let as_kind = |api_version: &str, kind: &str, mut object: Value| {
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        object
    };
    let original = workload(json!([web_container()]));
    let image_patch = template_patch(json!({"containers": [{"name": "web", "image": "nginx:2"}]}));
    let mut patched_web = web_container();
    patched_web["image"] = json!("nginx:2");
    let patched = workload(json!([patched_web]));
    let mut cases = Vec::new();
    for (api_version, kind) in [("apps/v1", "ReplicaSet"), ("apps/v1", "StatefulSet"), ("v1", "ReplicationController")]
    {
        cases.push(ok(
            "a template container image changes in place",
            api_version,
            kind,
            as_kind(api_version, kind, original.clone()),
            image_patch.clone(),
            as_kind(api_version, kind, patched.clone()),
        ));
        cases.push(ok(
            "status conditions merge by type",
            api_version,
            kind,
            as_kind(api_version, kind, json!({"status": {"conditions": [{"type": "A", "status": "True"}]}})),
            json!({"status": {"$setElementOrder/conditions": [{"type": "A"}, {"type": "B"}], "conditions": [{"type": "B", "status": "False"}]}}),
            as_kind(
                api_version,
                kind,
                json!({"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]}}),
            ),
        ));
    }
    cases.push(ok(
        "StatefulSet volumeClaimTemplates are replaced",
        "apps/v1",
        "StatefulSet",
        json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}}),
        json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "c"}}]}}),
        json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "c"}}]}}),
    ));
    run(cases);
}

#[test]
fn pods() {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "finalizers": ["example.com/a"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}]
        },
        "spec": {
            "containers": [web_container()],
            "initContainers": [{"name": "init", "image": "busybox", "env": [{"name": "A", "value": "1"}]}],
            "imagePullSecrets": [{"name": "regcred"}],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}],
            "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]
        },
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}],
            "podIPs": [{"ip": "10.1.0.5"}],
            "containerStatuses": [{"name": "web", "ready": false, "volumeMounts": [{"mountPath": "/data", "name": "data"}]}]
        }
    });
    // Sets the values at the given JSON pointers (whose parents must exist).
    let edit = |changes: &[(&str, Value)]| {
        let mut object = pod.clone();
        for (pointer, value) in changes {
            let (parent, last) = pointer.rsplit_once('/').expect("a pointer");
            match object.pointer_mut(parent).expect("parent exists") {
                Value::Array(items) => items[last.parse::<usize>().expect("an index")] = value.clone(),
                other => other[last] = value.clone(),
            }
        }
        object
    };
    run(vec![
        ok(
            "a new finalizer is added in front, as upstream",
            "v1",
            "Pod",
            pod.clone(),
            json!({"metadata": {"finalizers": ["example.com/b"]}}),
            edit(&[("/metadata/finalizers", json!(["example.com/b", "example.com/a"]))]),
        ),
        ok(
            "finalizers union skips duplicates",
            "v1",
            "Pod",
            pod.clone(),
            json!({"metadata": {"finalizers": ["example.com/a"]}}),
            pod.clone(),
        ),
        ok(
            "kubectl apply adds a finalizer in order",
            "v1",
            "Pod",
            pod.clone(),
            json!({"metadata": {"$setElementOrder/finalizers": ["example.com/a", "example.com/b"], "finalizers": ["example.com/b"]}}),
            edit(&[("/metadata/finalizers", json!(["example.com/a", "example.com/b"]))]),
        ),
        ok(
            "$deleteFromPrimitiveList removes a finalizer",
            "v1",
            "Pod",
            edit(&[("/metadata/finalizers", json!(["example.com/a", "example.com/b", "example.com/c"]))]),
            json!({"metadata": {
                "$setElementOrder/finalizers": ["example.com/c", "example.com/a"],
                "$deleteFromPrimitiveList/finalizers": ["example.com/b"]
            }}),
            edit(&[("/metadata/finalizers", json!(["example.com/c", "example.com/a"]))]),
        ),
        ok(
            "$deleteFromPrimitiveList of a missing value or list changes nothing",
            "v1",
            "Pod",
            pod.clone(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["nope"], "$deleteFromPrimitiveList/other": ["x"]}}),
            pod.clone(),
        ),
        ok(
            "owner references merge by uid",
            "v1",
            "Pod",
            pod.clone(),
            json!({"metadata": {"ownerReferences": [
                {"uid": "u1", "blockOwnerDeletion": true},
                {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u2"}
            ]}}),
            edit(&[(
                "/metadata/ownerReferences",
                json!([
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true, "blockOwnerDeletion": true},
                    {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u2"}
                ]),
            )]),
        ),
        ok(
            "kubelet status patch: conditions by type, podIPs by ip, container statuses replaced",
            "v1",
            "Pod",
            pod.clone(),
            json!({"status": {
                "$setElementOrder/conditions": [{"type": "PodScheduled"}, {"type": "Initialized"}, {"type": "Ready"}],
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "podIPs": [{"ip": "fd00::5"}],
                "containerStatuses": [{"name": "web", "ready": true}],
                "phase": "Running"
            }}),
            edit(&[(
                "/status",
                json!({
                    "phase": "Running",
                    "conditions": [
                        {"type": "PodScheduled", "status": "True"},
                        {"type": "Initialized", "status": "True"},
                        {"type": "Ready", "status": "True"}
                    ],
                    "podIPs": [{"ip": "fd00::5"}, {"ip": "10.1.0.5"}],
                    "containerStatuses": [{"name": "web", "ready": true}]
                }),
            )]),
        ),
        ok(
            "init container env merges by name",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"initContainers": [{"name": "init", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}]}}),
            edit(&[("/spec/initContainers/0/env", json!([{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]))]),
        ),
        ok(
            "ephemeral containers are added by name (kubectl debug)",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"ephemeralContainers": [{"name": "debugger", "image": "busybox", "targetContainerName": "web"}]}}),
            edit(&[(
                "/spec/ephemeralContainers",
                json!([{"name": "debugger", "image": "busybox", "targetContainerName": "web"}]),
            )]),
        ),
        ok(
            "image pull secrets, host aliases and spread constraints merge by key",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {
                "$setElementOrder/imagePullSecrets": [{"name": "regcred"}, {"name": "other"}],
                "imagePullSecrets": [{"name": "other"}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}],
                "topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]
            }}),
            edit(&[
                ("/spec/imagePullSecrets", json!([{"name": "regcred"}, {"name": "other"}])),
                ("/spec/hostAliases", json!([{"ip": "10.0.0.1", "hostnames": ["b"]}])),
                (
                    "/spec/topologySpreadConstraints",
                    json!([{"topologyKey": "zone", "maxSkew": 2, "whenUnsatisfiable": "DoNotSchedule"}]),
                ),
            ]),
        ),
        ok(
            "container env and volume mounts merge inside pod spec",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"containers": [{"name": "web", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}, "value": null}]}]}}),
            edit(&[(
                "/spec/containers/0/env/1",
                json!({"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
            )]),
        ),
    ]);
}

#[test]
fn nodes_and_namespaces() {
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {"podCIDRs": ["10.244.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "lastHeartbeatTime": "t0"},
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "t0"}
            ],
            "addresses": [{"type": "InternalIP", "address": "192.168.0.10"}, {"type": "Hostname", "address": "n1"}],
            "images": [{"names": ["a"]}]
        }
    });
    let namespace = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ns", "labels": {"a": "1"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    });
    run(vec![
        ok("kubectl cordon", "v1", "Node", node.clone(), json!({"spec": {"unschedulable": true}}), {
            let mut want = node.clone();
            want["spec"]["unschedulable"] = json!(true);
            want
        }),
        ok(
            "node heartbeat: conditions and addresses merge by type, images replaced",
            "v1",
            "Node",
            node.clone(),
            json!({"status": {
                "$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}],
                "conditions": [{"type": "Ready", "lastHeartbeatTime": "t1"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.0.11"}],
                "images": [{"names": ["b"]}]
            }}),
            {
                let mut want = node.clone();
                want["status"]["conditions"][1]["lastHeartbeatTime"] = json!("t1");
                want["status"]["addresses"][0]["address"] = json!("192.168.0.11");
                want["status"]["images"] = json!([{"names": ["b"]}]);
                want
            },
        ),
        ok(
            "podCIDRs union; taints replaced (kubectl taint)",
            "v1",
            "Node",
            node.clone(),
            json!({"spec": {"podCIDRs": ["fd00::/64"], "taints": [{"key": "b", "effect": "NoExecute"}]}}),
            {
                let mut want = node.clone();
                want["spec"]["podCIDRs"] = json!(["fd00::/64", "10.244.0.0/24"]);
                want["spec"]["taints"] = json!([{"key": "b", "effect": "NoExecute"}]);
                want
            },
        ),
        ok(
            "kubectl label --overwrite and label removal",
            "v1",
            "Namespace",
            namespace.clone(),
            json!({"metadata": {"labels": {"a": null, "b": "2"}}}),
            {
                let mut want = namespace.clone();
                want["metadata"]["labels"] = json!({"b": "2"});
                want
            },
        ),
        ok(
            "namespace spec finalizers are replaced; status conditions merge by type",
            "v1",
            "Namespace",
            namespace.clone(),
            json!({"spec": {"finalizers": []}, "status": {"conditions": [{"type": "NamespaceDeletionDiscoveryFailure", "status": "False"}]}}),
            {
                let mut want = namespace.clone();
                want["spec"]["finalizers"] = json!([]);
                want["status"]["conditions"] =
                    json!([{"type": "NamespaceDeletionDiscoveryFailure", "status": "False"}]);
                want
            },
        ),
    ]);
}

#[test]
fn data_and_plain_kinds() {
    let config_map =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "data": {"u": "YQ=="}});
    let service_account = json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
        "secrets": [{"name": "t1"}], "imagePullSecrets": [{"name": "p1"}]
    });
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-abc"},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]
    });
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
        "spec": {"rules": [{"host": "a.example.com"}], "tls": [{"hosts": ["a.example.com"]}]}
    });
    run(vec![
        ok(
            "ConfigMap data merges; null removes a key",
            "v1",
            "ConfigMap",
            config_map.clone(),
            json!({"data": {"a": null, "c": "3"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"b": "2", "c": "3"}}),
        ),
        ok(
            "Secret data merges",
            "v1",
            "Secret",
            secret.clone(),
            json!({"data": {"p": "Yg=="}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "Opaque", "data": {"u": "YQ==", "p": "Yg=="}}),
        ),
        ok(
            "ServiceAccount secrets merge by name; imagePullSecrets are replaced",
            "v1",
            "ServiceAccount",
            service_account.clone(),
            json!({"secrets": [{"name": "t2"}], "imagePullSecrets": [{"name": "p2"}]}),
            json!({
                "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
                "secrets": [{"name": "t2"}, {"name": "t1"}], "imagePullSecrets": [{"name": "p2"}]
            }),
        ),
        ok(
            "Endpoints subsets are replaced",
            "v1",
            "Endpoints",
            endpoints.clone(),
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]}),
            json!({
                "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                "subsets": [{"addresses": [{"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]
            }),
        ),
        ok(
            "EndpointSlice endpoints are replaced",
            "discovery.k8s.io/v1",
            "EndpointSlice",
            slice.clone(),
            json!({"endpoints": [{"addresses": ["10.0.0.2"], "conditions": {"ready": true}}]}),
            {
                let mut want = slice.clone();
                want["endpoints"] = json!([{"addresses": ["10.0.0.2"], "conditions": {"ready": true}}]);
                want
            },
        ),
        ok(
            "Ingress rules are replaced, annotations merge",
            "networking.k8s.io/v1",
            "Ingress",
            ingress.clone(),
            json!({"metadata": {"annotations": {"x": "y"}}, "spec": {"rules": [{"host": "b.example.com"}]}}),
            {
                let mut want = ingress.clone();
                want["metadata"]["annotations"] = json!({"x": "y"});
                want["spec"]["rules"] = json!([{"host": "b.example.com"}]);
                want
            },
        ),
        ok(
            "IngressClass parameters merge",
            "networking.k8s.io/v1",
            "IngressClass",
            json!({"spec": {"controller": "example.com/c", "parameters": {"kind": "A", "name": "a"}}}),
            json!({"spec": {"parameters": {"name": "b"}}}),
            json!({"spec": {"controller": "example.com/c", "parameters": {"kind": "A", "name": "b"}}}),
        ),
        ok(
            "core Event count bump",
            "v1",
            "Event",
            json!({"count": 1, "lastTimestamp": "t0", "involvedObject": {"kind": "Pod", "name": "p"}}),
            json!({"count": 2, "lastTimestamp": "t1"}),
            json!({"count": 2, "lastTimestamp": "t1", "involvedObject": {"kind": "Pod", "name": "p"}}),
        ),
        ok(
            "events.k8s.io Event series update",
            "events.k8s.io/v1",
            "Event",
            json!({"reason": "R", "series": {"count": 1, "lastObservedTime": "t0"}}),
            json!({"series": {"count": 2, "lastObservedTime": "t1"}}),
            json!({"reason": "R", "series": {"count": 2, "lastObservedTime": "t1"}}),
        ),
        ok(
            "Lease renewal",
            "coordination.k8s.io/v1",
            "Lease",
            json!({"spec": {"holderIdentity": "a", "renewTime": "t0", "leaseDurationSeconds": 15}}),
            json!({"spec": {"renewTime": "t1"}}),
            json!({"spec": {"holderIdentity": "a", "renewTime": "t1", "leaseDurationSeconds": 15}}),
        ),
        ok(
            "Scale replicas",
            "autoscaling/v1",
            "Scale",
            json!({"spec": {"replicas": 1}, "status": {"replicas": 1}}),
            json!({"spec": {"replicas": 3}}),
            json!({"spec": {"replicas": 3}, "status": {"replicas": 1}}),
        ),
    ]);
}

#[test]
fn map_directives() {
    let original = json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
    run(vec![
        ok(
            "$patch: replace on a map replaces it",
            "v1",
            "ConfigMap",
            original.clone(),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
            json!({"metadata": {"name": "c", "labels": {"c": "3"}}, "data": {"k": "v"}}),
        ),
        ok(
            "$patch: delete on a map leaves it empty, as upstream",
            "v1",
            "ConfigMap",
            original.clone(),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
            json!({"metadata": {"name": "c", "labels": {}}, "data": {"k": "v"}}),
        ),
        ok(
            "a directive map for a field the object lacks is dropped, as upstream",
            "v1",
            "ConfigMap",
            original.clone(),
            json!({"metadata": {"annotations": {"$patch": "replace", "a": "1"}}, "binaryData": {"$patch": "delete"}}),
            original.clone(),
        ),
        ok(
            "new data loses nulls and nested directives",
            "v1",
            "Pod",
            json!({"spec": {}}),
            json!({"spec": {"containers": [{"name": "a", "image": null, "env": [{"name": "E", "value": "1"}], "$setElementOrder/env": [{"name": "E"}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "env": [{"name": "E", "value": "1"}]}]}}),
        ),
        ok(
            "a null for a missing field is ignored",
            "v1",
            "ConfigMap",
            original.clone(),
            json!({"immutable": null}),
            original.clone(),
        ),
        ok(
            "a value of another JSON type replaces the original",
            "v1",
            "ConfigMap",
            original.clone(),
            json!({"data": "oops"}),
            json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": "oops"}),
        ),
        ok(
            "$patch: replace at the top level replaces the object",
            "v1",
            "ConfigMap",
            original.clone(),
            json!({"$patch": "replace", "metadata": {"name": "c"}}),
            json!({"metadata": {"name": "c"}}),
        ),
        ok(
            "an empty merge list changes nothing",
            "v1",
            "Pod",
            json!({"spec": {"containers": [{"name": "a"}]}}),
            json!({"spec": {"containers": []}}),
            json!({"spec": {"containers": [{"name": "a"}]}}),
        ),
        ok(
            "a null merge list deletes it",
            "v1",
            "Pod",
            json!({"spec": {"containers": [{"name": "a"}], "volumes": [{"name": "v"}]}}),
            json!({"spec": {"volumes": null}}),
            json!({"spec": {"containers": [{"name": "a"}]}}),
        ),
    ]);
}

#[test]
fn malformed_patches_are_refused() {
    let pod =
        json!({"spec": {"containers": [{"name": "a", "env": [{"name": "E"}]}]}, "metadata": {"finalizers": ["f"]}});
    let deployment = workload(json!([web_container()]));
    run(vec![
        err(
            "$patch: merge on a map",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"$patch": "merge"}}),
            "unknown patch type \"merge\"",
        ),
        err(
            "unknown $patch value",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"$patch": "nope"}}),
            "invalid patch: unknown patch type",
        ),
        err(
            "$patch: merge in a list",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"containers": [{"$patch": "merge", "name": "a"}]}}),
            "merging lists cannot yet be specified",
        ),
        err(
            "unknown $patch in a list",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"containers": [{"$patch": "remove", "name": "a"}]}}),
            "unknown patch type \"remove\" in list element at spec.containers[0]",
        ),
        err(
            "$patch: delete without the merge key",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            "does not contain declared merge key \"name\"",
        ),
        err(
            "a patch element without the merge key",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"containers": [{"image": "x"}]}}),
            "list element at spec.containers[0] does not contain declared merge key \"name\"",
        ),
        err(
            "nested element without the merge key names its container",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"containers": [{"name": "a", "env": [{"value": "x"}]}]}}),
            "spec.containers[name=\"a\"].env[0]",
        ),
        err(
            "primitives in a keyed list",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"containers": ["a"]}}),
            "list element types are not identical",
        ),
        err(
            "objects in a primitive set",
            "v1",
            "Pod",
            json!({"metadata": {"finalizers": [{"a": 0}]}}),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
            "cannot merge lists of objects without a merge key",
        ),
        err(
            "objects added to a set of strings",
            "v1",
            "Pod",
            pod.clone(),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
            "list element types are not identical at metadata.finalizers",
        ),
        err("lists of lists", "v1", "Pod", pod.clone(), json!({"metadata": {"finalizers": [["x"]]}}), "lists of lists"),
        err(
            "$retainKeys that is not a list",
            "apps/v1",
            "Deployment",
            deployment.clone(),
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
            "invalid patch format of $retainKeys",
        ),
        err(
            "a patched field outside $retainKeys",
            "apps/v1",
            "Deployment",
            deployment.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            "the patch sets \"rollingUpdate\"",
        ),
        err(
            "$setElementOrder out of order with the patch list",
            "apps/v1",
            "Deployment",
            deployment.clone(),
            template_patch(json!({
                "$setElementOrder/containers": [{"name": "b"}, {"name": "web"}],
                "containers": [{"name": "web", "image": "x"}, {"name": "b", "image": "y"}]
            })),
            "invalid patch format of $setElementOrder list at spec.template.spec.containers",
        ),
        err(
            "$setElementOrder that is not a list",
            "apps/v1",
            "Deployment",
            deployment.clone(),
            template_patch(json!({"$setElementOrder/containers": {"name": "web"}})),
            "invalid patch format of $setElementOrder list",
        ),
        err(
            "$setElementOrder without a field name",
            "apps/v1",
            "Deployment",
            deployment.clone(),
            template_patch(json!({"$setElementOrder": []})),
            "invalid patch format of $setElementOrder list",
        ),
        err(
            "$deleteFromPrimitiveList without a field name",
            "v1",
            "Pod",
            pod.clone(),
            json!({"metadata": {"$deleteFromPrimitiveList": ["f"]}}),
            "invalid patch format of $deleteFromPrimitiveList",
        ),
        err(
            "$deleteFromPrimitiveList on a list of objects",
            "v1",
            "Pod",
            pod.clone(),
            json!({"spec": {"$deleteFromPrimitiveList/containers": [{"name": "a"}]}}),
            "invalid patch format of $deleteFromPrimitiveList",
        ),
        err(
            "a patch that is not an object",
            "v1",
            "Pod",
            pod.clone(),
            json!(["x"]),
            "invalid patch: the patch must be a JSON object",
        ),
        err("an original that is not an object", "v1", "Pod", json!("x"), json!({}), "not a JSON object"),
        err(
            "not an object for an unknown kind either",
            "example.com/v1",
            "Widget",
            pod.clone(),
            json!(1),
            "invalid patch",
        ),
    ]);
}

#[test]
fn unknown_kinds_use_json_merge_patch() {
    run(vec![
        ok(
            "lists are replaced, maps merge, null deletes",
            "example.com/v1",
            "Widget",
            json!({"spec": {"containers": [{"name": "a"}], "size": 1, "color": "red"}}),
            json!({"spec": {"containers": [{"name": "b"}], "color": null}}),
            json!({"spec": {"containers": [{"name": "b"}], "size": 1}}),
        ),
        ok(
            "known kinds in other versions are unknown",
            "apps/v1beta1",
            "Deployment",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}}),
        ),
    ]);
    assert!(supports_strategic_merge("v1", "Pod"));
    assert!(!supports_strategic_merge("example.com/v1", "Widget"));
}

/// Upstream's generic cases (k8s.io/apimachinery strategicpatch tests), on
/// real fields: a keyed list (`spec.containers`) and a primitive set
/// (`metadata.finalizers`).
#[test]
fn upstream_ordering_cases() {
    let names = |names: &[&str]| Value::Array(names.iter().map(|n| json!({"name": n})).collect());
    let pod = |containers: Value| json!({"spec": {"containers": containers}});
    let finalizers = |items: Value| json!({"metadata": {"finalizers": items}});
    run(vec![
        ok(
            "merge lists of maps",
            "v1",
            "Pod",
            pod(json!([{"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}])),
            json!({"spec": {
                "$setElementOrder/containers": names(&["4", "1", "2", "3"]),
                "containers": [{"name": "4", "value": "4"}, {"name": "3", "value": "3"}]
            }}),
            pod(json!([
                {"name": "4", "value": "4"},
                {"name": "1", "other": "a"},
                {"name": "2", "value": "2", "other": "b"},
                {"name": "3", "value": "3"}
            ])),
        ),
        ok(
            "set elements order with server-only items",
            "v1",
            "Pod",
            pod(names(&["1", "2", "7", "9", "8", "3", "4"])),
            json!({"spec": {"$setElementOrder/containers": names(&["2", "1", "4", "3"])}}),
            pod(names(&["2", "1", "7", "9", "8", "4", "3"])),
        ),
        ok(
            "add an item in a list and preserve order",
            "v1",
            "Pod",
            pod(names(&["1", "2"])),
            json!({"spec": {"$setElementOrder/containers": names(&["3", "1", "2"]), "containers": [{"name": "3", "value": "3"}]}}),
            pod(json!([{"name": "3", "value": "3"}, {"name": "1"}, {"name": "2"}])),
        ),
        ok(
            "delete an item and preserve order",
            "v1",
            "Pod",
            pod(names(&["1", "2", "3"])),
            json!({"spec": {"$setElementOrder/containers": names(&["3", "1"]), "containers": [{"$patch": "delete", "name": "2"}]}}),
            pod(names(&["3", "1"])),
        ),
        ok(
            "merge lists of scalars with a server-only item",
            "v1",
            "Pod",
            finalizers(json!(["1", "2", "4"])),
            json!({"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"], "finalizers": ["3"]}}),
            finalizers(json!(["1", "2", "3", "4"])),
        ),
        ok(
            "add and delete items in lists of scalars",
            "v1",
            "Pod",
            finalizers(json!(["1", "2", "3"])),
            json!({"metadata": {
                "$setElementOrder/finalizers": ["1", "4", "3"],
                "finalizers": ["4"],
                "$deleteFromPrimitiveList/finalizers": ["2"]
            }}),
            finalizers(json!(["1", "4", "3"])),
        ),
        ok(
            "delete all duplicates from a list of scalars",
            "v1",
            "Pod",
            finalizers(json!(["1", "2", "2", "3"])),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["2"]}}),
            finalizers(json!(["1", "3"])),
        ),
        ok(
            "merging into duplicate keys touches the first",
            "v1",
            "Pod",
            pod(json!([{"name": "1"}, {"name": "2", "value": "dup1"}, {"name": "2", "value": "dup2"}])),
            json!({"spec": {"containers": [{"name": "2", "image": "x"}]}}),
            pod(json!([{"name": "1"}, {"name": "2", "value": "dup1", "image": "x"}, {"name": "2", "value": "dup2"}])),
        ),
    ]);
}

#[test]
fn key_order_of_maps_is_preserved_and_new_keys_appended() {
    let original =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"z": "1", "a": "2"}});
    let patched =
        apply_patch("v1", "ConfigMap", &original, &json!({"data": {"m": "3", "z": "0"}})).expect("patch applies");
    assert_eq!(
        serde_json::to_string(&patched).expect("serializes"),
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"z":"0","a":"2","m":"3"}}"#
    );
}

#[test]
fn the_inputs_are_not_modified() {
    let original = workload(json!([web_container()]));
    let patch = template_patch(json!({"containers": [{"name": "web", "image": "nginx:2"}]}));
    let (before_original, before_patch) = (original.clone(), patch.clone());
    let _ = apply_patch("apps/v1", "Deployment", &original, &patch);
    assert_eq!(original, before_original);
    assert_eq!(patch, before_patch);
}

#[test]
fn errors_are_client_errors_with_readable_messages() {
    let error = apply_patch("v1", "Pod", &json!({"spec": {}}), &json!({"spec": {"$patch": 7}}))
        .expect_err("a numeric $patch is refused");
    assert_eq!(error, PatchError::UnknownDirective { path: "spec".into(), directive: "7".into() });
    assert_eq!(error.to_string(), "invalid patch: unknown patch type 7 in map at spec");
}

/// Odd values in every directive and list position must give a result or an
/// error, never a panic.
#[test]
fn odd_shapes_never_panic() {
    let odd = [
        json!(null),
        json!(1),
        json!("s"),
        json!(true),
        json!([]),
        json!([null]),
        json!([1, "a"]),
        json!([[1]]),
        json!([{}]),
        json!([{"$patch": "delete"}]),
        json!([{"$patch": "replace"}]),
        json!([{"$patch": 1, "name": "a"}]),
        json!({}),
        json!({"$patch": null}),
        json!({"$retainKeys": [1, null]}),
    ];
    let keys = [
        "containers",
        "$setElementOrder/containers",
        "$deleteFromPrimitiveList/containers",
        "$retainKeys",
        "$patch",
        "$setElementOrder/",
        "finalizers",
    ];
    let originals = [
        json!({}),
        json!({"spec": {"containers": [{"name": "a"}, {"image": "no-name"}], "finalizers": ["x"]}}),
        json!({"spec": {"containers": "oops", "finalizers": [1, 2]}}),
    ];
    for original in &originals {
        for key in keys {
            for value in &odd {
                let mut spec = serde_json::Map::new();
                spec.insert(key.to_owned(), value.clone());
                let patch = json!({"spec": Value::Object(spec.clone()), "metadata": Value::Object(spec)});
                let _ = apply_patch("v1", "Pod", original, &patch);
            }
        }
    }
}
