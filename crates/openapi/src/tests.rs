use serde_json::{json, Value};

use super::*;

fn parsed(path: &str) -> Value {
    serde_json::from_slice(document(path).unwrap_or_else(|| panic!("no document {path}")).json()).unwrap()
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/components/schemas/{}", name.replace('/', "~1")))
        .unwrap_or_else(|| panic!("no schema {name}"))
}

/// Follows `$ref` / `allOf: [{$ref}]` inside one document, as kubectl does.
fn deref<'a>(doc: &'a Value, mut s: &'a Value) -> &'a Value {
    loop {
        let r = s.get("$ref").or_else(|| s.pointer("/allOf/0/$ref")).and_then(Value::as_str);
        match r {
            Some(r) => s = schema(doc, r.strip_prefix("#/components/schemas/").unwrap()),
            None => return s,
        }
    }
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    frontdoor_resources::groups().into_iter().flat_map(|(g, vs)| vs.into_iter().map(move |v| (g, v))).collect()
}

#[test]
fn index_lists_every_catalogue_group_version_with_its_hash() {
    let index = index();
    let paths = index["paths"].as_object().unwrap();
    assert_eq!(paths.len(), group_versions().len());
    for (group, version) in group_versions() {
        let doc = document_for(group, version).unwrap();
        let key = if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") };
        assert_eq!(doc.path(), key);
        let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
        assert_eq!(url, format!("/openapi/v3/{key}?hash={}", doc.hash()));
        assert_eq!(doc.hash().len(), 128);
        assert!(doc.hash().chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
    }
    assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
}

#[test]
fn document_lookup_tolerates_url_forms_and_rejects_unknown() {
    let apps = document("apis/apps/v1").unwrap();
    assert!(std::ptr::eq(apps, document("/openapi/v3/apis/apps/v1").unwrap()));
    assert!(std::ptr::eq(apps, document("/apis/apps/v1/").unwrap()));
    assert!(document("apis/batch/v1").is_none());
    assert!(document("").is_none());
    // Built once: the same bytes every time.
    assert!(std::ptr::eq(document("api/v1").unwrap().json(), document("api/v1").unwrap().json()));
}

#[test]
fn service_patch_accepts_field_validation_and_strategic_merge_patch() {
    let doc = parsed("api/v1");
    assert_eq!(doc["openapi"], "3.0.0");
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"], json!({"group": "", "kind": "Service", "version": "v1"}));
    assert_eq!(patch["x-kubernetes-action"], "patch");
    let names: Vec<&str> =
        patch["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dryRun", "fieldManager", "fieldValidation", "force"]);
    let content = patch["requestBody"]["content"].as_object().unwrap();
    for media in [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        assert!(content.contains_key(media), "{media}");
    }
    assert_eq!(
        patch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.Service"
    );
}

#[test]
fn every_patch_operation_lists_field_validation() {
    // kubectl's query-parameter verifier looks at whichever PATCH of the kind it meets first.
    for doc in documents() {
        let doc: Value = serde_json::from_slice(doc.json()).unwrap();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                assert!(op["x-kubernetes-action"].is_string(), "{path} {method}");
                assert!(op["x-kubernetes-group-version-kind"]["kind"].is_string(), "{path} {method}");
                if method == "patch" || method == "put" || method == "post" {
                    assert!(
                        op["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation"),
                        "{path} {method}"
                    );
                }
            }
        }
    }
}

#[test]
fn paths_follow_verbs_scope_and_subresources() {
    let core = parsed("api/v1");
    let paths = core["paths"].as_object().unwrap();
    let services = &paths["/api/v1/namespaces/{namespace}/services"];
    assert_eq!(services["get"]["x-kubernetes-action"], "list");
    assert_eq!(services["get"]["operationId"], "listCoreV1NamespacedService");
    assert_eq!(services["post"]["x-kubernetes-action"], "post");
    assert_eq!(services["delete"]["x-kubernetes-action"], "deletecollection");
    assert!(paths.contains_key("/api/v1/services"), "list across namespaces");
    assert!(paths.contains_key("/api/v1/namespaces/{namespace}/services/{name}/status"));
    assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/log"));
    // Cluster-scoped: no namespace segment. Namespaces have no deletecollection.
    assert!(paths.contains_key("/api/v1/nodes/{name}"));
    assert!(paths["/api/v1/namespaces"].get("delete").is_none());
    assert!(paths["/api/v1/namespaces/{name}"]["delete"].is_object());

    let apps = parsed("apis/apps/v1");
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["patch"]["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})
    );
    assert_eq!(
        scale["put"]["requestBody"]["content"]["*/*"]["schema"]["$ref"],
        "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
    );
    assert_eq!(scale["get"]["operationId"], "readAppsV1NamespacedDeploymentScale");
    assert!(schema(&apps, "io.k8s.api.autoscaling.v1.Scale")["x-kubernetes-group-version-kind"].is_array());
    let lease_list = &parsed("apis/coordination.k8s.io/v1")["paths"]
        ["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"]["get"];
    assert_eq!(lease_list["operationId"], "listCoordinationV1NamespacedLease");
    assert_eq!(lease_list["tags"], json!(["coordination_v1"]));
}

#[test]
fn every_catalogue_kind_has_a_tagged_schema_and_every_ref_resolves() {
    for (group, version) in group_versions() {
        let doc: Value = serde_json::from_slice(document_for(group, version).unwrap().json()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for r in frontdoor_resources::in_group_version(group, version) {
            for kind in [r.kind.to_string(), format!("{}List", r.kind)] {
                let want = json!({"group": group, "kind": kind, "version": version});
                let tagged = schemas.values().filter(|s| {
                    s["x-kubernetes-group-version-kind"].as_array().is_some_and(|gvks| gvks.contains(&want))
                });
                assert_eq!(tagged.count(), 1, "{group}/{version} {kind}");
            }
        }
        let mut refs = Vec::new();
        schemas::references(&doc, &mut refs);
        for r in refs {
            assert!(schemas.contains_key(&r), "{group}/{version}: dangling $ref {r}");
        }
    }
}

#[test]
fn service_schema_is_described_and_tagged() {
    let doc = parsed("api/v1");
    let service = schema(&doc, "io.k8s.api.core.v1.Service");
    assert_eq!(service["x-kubernetes-group-version-kind"], json!([{"group": "", "kind": "Service", "version": "v1"}]));
    assert!(service.get("required").is_none(), "upstream does not require metadata");
    let spec = &service["properties"]["spec"];
    assert!(spec["description"].as_str().unwrap().contains("behavior of a service"));
    assert_eq!(spec["allOf"][0]["$ref"], "#/components/schemas/io.k8s.api.core.v1.ServiceSpec");
    let ports = &deref(&doc, spec)["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
    assert_eq!(ports["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(ports["x-kubernetes-list-type"], "map");
    assert_eq!(ports["x-kubernetes-list-map-keys"], json!(["port", "protocol"]));
    let target_port = &deref(&doc, &ports["items"])["properties"]["targetPort"];
    assert_eq!(deref(&doc, target_port)["format"], "int-or-string");
    let list = schema(&doc, "io.k8s.api.core.v1.ServiceList");
    assert_eq!(list["properties"]["items"]["items"]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Service");
    assert!(schema(&doc, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")["properties"]["labels"]
        ["additionalProperties"]
        .is_object());
}

#[test]
fn deployment_containers_can_be_explained_and_merged_by_name() {
    // `kubectl explain deployment.spec.template.spec.containers` walks exactly this.
    let doc = parsed("apis/apps/v1");
    let mut s = schema(&doc, "io.k8s.api.apps.v1.Deployment");
    for field in ["spec", "template", "spec"] {
        s = deref(&doc, &s["properties"][field]);
    }
    let containers = &s["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert!(containers["description"].as_str().unwrap().contains("containers"));
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    let container = deref(&doc, &containers["items"]);
    assert_eq!(container["properties"]["image"]["type"], "string");
    assert!(container["properties"]["image"]["description"].as_str().unwrap().contains("image name"));
    assert_eq!(container["properties"]["env"]["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(container["properties"]["ports"]["x-kubernetes-patch-merge-key"], "containerPort");
    assert_eq!(s["properties"]["volumes"]["x-kubernetes-patch-strategy"], "merge,retainKeys");
}

#[test]
fn unknown_fields_are_found_with_upstream_paths_in_document_order() {
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"app": "web"}, "colour": "blue"},
        "spec": {
            "foo": 1,
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": "http"}, {"port": 443, "bar": true, "targetPort": 8443}],
        },
        "extra": {},
    });
    let found = unknown_fields("v1", "Service", &service);
    assert_eq!(found, ["metadata.colour", "spec.foo", "spec.ports[1].bar", "extra"]);
    assert_eq!(
        strict_decoding_error(&found[1..3]),
        r#"strict decoding error: unknown field "spec.foo", unknown field "spec.ports[1].bar""#
    );
    assert_eq!(unknown_field_warning("spec.\"odd\""), r#"unknown field "spec.\"odd\"""#);
}

#[test]
fn unknown_fields_accepts_a_realistic_deployment() {
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "creationTimestamp": null,
            "labels": {"app.kubernetes.io/name": "web", "tier": "frontend"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "x"},
            "finalizers": ["example.com/keep"],
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {"f:replicas": {}}}}],
        },
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {
                    "serviceAccountName": "web",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app": "web"}}}}]}},
                    "securityContext": {"runAsNonRoot": true, "fsGroup": 2000},
                    "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}],
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["--port", "8080"],
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [
                            {"name": "MODE", "value": "prod"},
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                        ],
                        "envFrom": [{"configMapRef": {"name": "web-config"}}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "256Mi"}},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 5, "periodSeconds": 10},
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "failureThreshold": 3},
                        "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}},
                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "config", "mountPath": "/etc/web", "readOnly": true}],
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                    }],
                    "volumes": [
                        {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "config", "configMap": {"name": "web-config", "items": [{"key": "a", "path": "a"}]}},
                    ],
                },
            },
        },
        "status": {},
    });
    assert_eq!(unknown_fields("apps/v1", "Deployment", &deployment), Vec::<String>::new());

    let mut bad = deployment.clone();
    bad["spec"]["template"]["spec"]["containers"][0]["imagePolicy"] = json!("Always");
    bad["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["gpu"] = json!(1);
    assert_eq!(unknown_fields("apps/v1", "Deployment", &bad), ["spec.template.spec.containers[0].imagePolicy"]);
}

#[test]
fn unknown_fields_covers_other_kinds_and_ignores_unknown_kinds() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {}, "dta": {}});
    assert_eq!(unknown_fields("v1", "ConfigMap", &cm), ["dta"]);
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 2, "replica": 3}});
    assert_eq!(unknown_fields("autoscaling/v1", "Scale", &scale), ["spec.replica"]);
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "a", "renewTime": "2024-01-01T00:00:00.000000Z"}});
    assert!(unknown_fields("coordination.k8s.io/v1", "Lease", &lease).is_empty());
    assert!(unknown_fields("example.com/v1", "Widget", &json!({"anything": 1})).is_empty());
    assert!(unknown_fields("v1", "Service", &json!("not an object")).is_empty());
}
