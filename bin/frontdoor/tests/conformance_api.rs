//! The API-level `[sig-network]` conformance behaviours, replayed over HTTPS against the real
//! binary: EndpointSlice, Ingress and IngressClass API operations, the Service status lifecycle,
//! deleting a collection of Services, and finding `kubernetes` when listing all namespaces.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use frontdoor_testkit::Frontdoor;
use serde_json::{json, Value};

fn start() -> Frontdoor {
    Frontdoor::start(env!("CARGO_BIN_EXE_frontdoor").as_ref())
}

fn call(fd: &Frontdoor, method: &str, path: &str, content_type: &str, body: Option<&Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    let (code, answer) = fd.curl(method, path, content_type, text.as_deref());
    let value = if answer.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&answer).unwrap_or(Value::String(answer))
    };
    (code, value)
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| items.iter().map(|i| i["metadata"]["name"].as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

/// create, get, list, watch, update, patch, delete, deletecollection — as the conformance test does.
fn api_operations(fd: &Frontdoor, group_version: &str, plural: &str, namespaced: bool, make: impl Fn(&str) -> Value) {
    let (group, _) = group_version.split_once('/').unwrap();
    // Discovery.
    let (code, apis) = call(fd, "GET", "/apis", "", None);
    assert_eq!(code, 200);
    assert!(apis["groups"].as_array().unwrap().iter().any(|g| g["name"] == group), "{group} missing from /apis");
    let (code, group_doc) = call(fd, "GET", &format!("/apis/{group}"), "", None);
    assert_eq!(code, 200);
    assert!(group_doc["versions"].as_array().unwrap().iter().any(|v| v["groupVersion"] == group_version));
    let (_, resources) = call(fd, "GET", &format!("/apis/{group_version}"), "", None);
    assert!(resources["resources"].as_array().unwrap().iter().any(|r| r["name"] == plural));

    let collection = if namespaced {
        format!("/apis/{group_version}/namespaces/default/{plural}")
    } else {
        format!("/apis/{group_version}/{plural}")
    };
    let (_, before) = call(fd, "GET", &collection, "", None);
    let rv = before["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    for name in ["e2e-a", "e2e-b", "e2e-c"] {
        let (code, created) = call(fd, "POST", &collection, "application/json", Some(&make(name)));
        assert_eq!(code, 201, "{plural} create {name}: {created}");
    }
    let (code, got) = call(fd, "GET", &format!("{collection}/e2e-a"), "", None);
    assert_eq!(code, 200);
    assert_eq!(got["metadata"]["name"], "e2e-a");
    let (_, listed) = call(fd, "GET", &format!("{collection}?labelSelector=e2e%3Dyes"), "", None);
    assert_eq!(names(&listed), ["e2e-a", "e2e-b", "e2e-c"]);
    if namespaced {
        let (_, all) = call(fd, "GET", &format!("/apis/{group_version}/{plural}?labelSelector=e2e%3Dyes"), "", None);
        assert_eq!(names(&all).len(), 3);
    }

    // Patch and update, then the watch from before the creates shows every step.
    let (code, patched) = call(
        fd,
        "PATCH",
        &format!("{collection}/e2e-a"),
        "application/merge-patch+json",
        Some(&json!({"metadata": {"annotations": {"patched": "true"}}})),
    );
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["metadata"]["annotations"]["patched"], "true");
    let mut updated = patched.clone();
    updated["metadata"]["annotations"]["updated"] = json!("true");
    let (code, updated) = call(fd, "PUT", &format!("{collection}/e2e-a"), "application/json", Some(&updated));
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["metadata"]["annotations"]["updated"], "true");
    let (_, watched) = fd.curl(
        "GET",
        &format!("{collection}?watch=true&resourceVersion={rv}&labelSelector=e2e%3Dyes&timeoutSeconds=1"),
        "",
        None,
    );
    let types: Vec<String> = watched
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["ADDED", "ADDED", "ADDED", "MODIFIED", "MODIFIED"], "{plural} watch");

    // Delete one, then the collection.
    let (code, _) = call(fd, "DELETE", &format!("{collection}/e2e-a"), "", None);
    assert_eq!(code, 200);
    assert_eq!(call(fd, "GET", &format!("{collection}/e2e-a"), "", None).0, 404);
    let (code, _) = call(fd, "DELETE", &format!("{collection}?labelSelector=e2e%3Dyes"), "", None);
    assert_eq!(code, 200);
    let (_, left) = call(fd, "GET", &format!("{collection}?labelSelector=e2e%3Dyes"), "", None);
    assert!(names(&left).is_empty(), "{plural}: {left}");
}

#[test]
fn endpointslice_api_operations() {
    let fd = start();
    api_operations(&fd, "discovery.k8s.io/v1", "endpointslices", true, |name| {
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"e2e": "yes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["1.2.3.4", "5.6.7.8"]}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        })
    });
    // The kubernetes Service has an EndpointSlice pointing at the API server (given an address).
    let fd = Frontdoor::start_with(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--advertise-address", "192.0.2.10"]);
    let (_, slices) = call(&fd, "GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes", "", None);
    assert_eq!(slices["items"][0]["endpoints"][0]["addresses"][0], "192.0.2.10");
    let (_, endpoints) = call(&fd, "GET", "/api/v1/namespaces/default/endpoints/kubernetes", "", None);
    assert_eq!(endpoints["subsets"][0]["addresses"][0]["ip"], "192.0.2.10");
}

#[test]
fn ingress_api_operations_and_status() {
    let fd = start();
    let make = |name: &str| {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "labels": {"e2e": "yes"}},
            "spec": {"defaultBackend": {"service": {"name": "default-backend", "port": {"number": 8080}}}},
        })
    };
    api_operations(&fd, "networking.k8s.io/v1", "ingresses", true, make);
    let path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";
    assert_eq!(call(&fd, "POST", path, "application/json", Some(&make("st"))).0, 201);
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "169.1.1.1"}]}}});
    let (code, patched) =
        call(&fd, "PATCH", &format!("{path}/st/status"), "application/merge-patch+json", Some(&status));
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["status"]["loadBalancer"]["ingress"][0]["ip"], "169.1.1.1");
    let mut object = patched.clone();
    object["status"]["loadBalancer"]["ingress"] = json!([{"ip": "169.1.1.2"}]);
    let (code, updated) = call(&fd, "PUT", &format!("{path}/st/status"), "application/json", Some(&object));
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["status"]["loadBalancer"]["ingress"][0]["ip"], "169.1.1.2");
    let (_, got) = call(&fd, "GET", &format!("{path}/st/status"), "", None);
    assert_eq!(got["status"]["loadBalancer"]["ingress"][0]["ip"], "169.1.1.2");
}

#[test]
fn ingressclass_api_operations() {
    let fd = start();
    api_operations(&fd, "networking.k8s.io/v1", "ingressclasses", false, |name| {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name, "labels": {"e2e": "yes"}},
            "spec": {"controller": "example.com/controller"},
        })
    });
}

#[test]
fn service_status_lifecycle_collections_and_all_namespaces() {
    let fd = start();
    let path = "/api/v1/namespaces/default/services";
    let service = |name: &str, label: &str| json!({"metadata": {"name": name, "labels": {"e2e": label}}, "spec": {"ports": [{"port": 80, "name": "http"}]}});
    assert_eq!(call(&fd, "POST", path, "application/json", Some(&service("status-svc", "status"))).0, 201);
    let (code, got) = call(&fd, "GET", &format!("{path}/status-svc/status"), "", None);
    assert_eq!(code, 200);
    assert_eq!(got["status"], json!({"loadBalancer": {}}));
    let status = json!({"status": {"conditions": [{"type": "StatusUpdate", "status": "True", "reason": "E2E", "message": "Set from e2e test", "lastTransitionTime": "2026-11-22T00:00:00Z"}]}});
    let (code, patched) =
        call(&fd, "PATCH", &format!("{path}/status-svc/status"), "application/merge-patch+json", Some(&status));
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["status"]["conditions"][0]["reason"], "E2E");
    let mut object = patched.clone();
    object["status"]["conditions"][0]["message"] = json!("Updated from e2e test");
    let (code, updated) = call(&fd, "PUT", &format!("{path}/status-svc/status"), "application/json", Some(&object));
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["status"]["conditions"][0]["message"], "Updated from e2e test");
    let (code, patched) = call(
        &fd,
        "PATCH",
        &format!("{path}/status-svc"),
        "application/merge-patch+json",
        Some(&json!({"metadata": {"labels": {"patched": "true"}}})),
    );
    assert_eq!(code, 200);
    assert_eq!(patched["metadata"]["labels"]["patched"], "true");
    assert_eq!(patched["status"]["conditions"][0]["message"], "Updated from e2e test", "a spec patch keeps status");

    // Delete a collection by label: three created, one left.
    for (name, label) in [("c1", "collection"), ("c2", "collection"), ("c3", "other")] {
        assert_eq!(call(&fd, "POST", path, "application/json", Some(&service(name, label))).0, 201);
    }
    let (code, _) = call(&fd, "DELETE", &format!("{path}?labelSelector=e2e%3Dcollection"), "", None);
    assert_eq!(code, 200);
    let (_, left) = call(&fd, "GET", &format!("{path}?labelSelector=e2e%20in%20%28collection%2Cother%29"), "", None);
    assert_eq!(names(&left), ["c3"]);

    // Listing all namespaces finds `kubernetes` in `default`.
    let (_, all) = call(&fd, "GET", "/api/v1/services", "", None);
    assert!(all["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["metadata"]["name"] == "kubernetes" && s["metadata"]["namespace"] == "default"));
}

/// "Ingress API" and "complete ServiceStatus lifecycle" patch `/status` with metadata too: the
/// annotation stays (upstream's status strategies reset only the spec).
#[test]
fn a_status_patch_keeps_the_metadata_it_carries() {
    let fd = start();
    let ingresses = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";
    let ingress = json!({"metadata": {"name": "i"}, "spec": {"defaultBackend": {"service": {"name": "b", "port": {"number": 80}}}}});
    assert_eq!(call(&fd, "POST", ingresses, "application/json", Some(&ingress)).0, 201);
    let services = "/api/v1/namespaces/default/services";
    let service = json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    assert_eq!(call(&fd, "POST", services, "application/json", Some(&service)).0, 201);
    // A ClusterIP Service may not carry load-balancer ingress in its status (upstream's
    // AllowServiceLBStatusOnNonLB is off), and a status write says so instead of dropping it.
    let cluster_ip = json!({"metadata": {"name": "c"}, "spec": {"ports": [{"port": 80}]}});
    assert_eq!(call(&fd, "POST", services, "application/json", Some(&cluster_ip)).0, 201);
    let lb = json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}});
    let (code, refused) =
        call(&fd, "PATCH", &format!("{services}/c/status"), "application/merge-patch+json", Some(&lb));
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["details"]["causes"][0]["field"], "status.loadBalancer.ingress");
    for (path, status) in [
        (format!("{ingresses}/i/status"), json!({"loadBalancer": {"ingress": [{"ip": "169.1.1.1"}]}})),
        (format!("{services}/s/status"), json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.2"}]}})),
    ] {
        let patch = json!({"metadata": {"annotations": {"patchedstatus": "true"}}, "status": status});
        let (code, patched) = call(&fd, "PATCH", &path, "application/merge-patch+json", Some(&patch));
        assert_eq!(code, 200, "{patched}");
        assert_eq!(patched["metadata"]["annotations"]["patchedstatus"], "true", "{path}: {patched}");
        assert_eq!(
            patched["status"]["loadBalancer"]["ingress"][0]["ip"], status["loadBalancer"]["ingress"][0]["ip"],
            "{path}"
        );
        let (_, got) = call(&fd, "GET", &path, "", None);
        assert_eq!(got["metadata"]["annotations"]["patchedstatus"], "true", "{path}: stored");
        // The spec cannot change through status.
        let spec_patch = json!({"spec": {"defaultBackend": null, "ports": [{"port": 81}]}});
        let (code, unchanged) = call(&fd, "PATCH", &path, "application/merge-patch+json", Some(&spec_patch));
        assert_eq!(code, 200, "{unchanged}");
        assert_eq!(unchanged["spec"], got["spec"], "{path}");
    }
}

/// client-go sends a zero `metav1.Time` as null: "complete ServiceStatus lifecycle" adds a
/// condition without lastTransitionTime, and upstream accepts it.
#[test]
fn a_service_status_condition_without_a_transition_time_is_accepted() {
    let fd = start();
    let services = "/api/v1/namespaces/default/services";
    let service = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
    assert_eq!(call(&fd, "POST", services, "application/json", Some(&service)).0, 201);
    let (_, mut object) = call(&fd, "GET", &format!("{services}/s"), "", None);
    object["status"]["conditions"] = json!([
        {"type": "StatusUpdate", "status": "True", "reason": "E2E", "message": "Set from e2e test", "lastTransitionTime": null},
        {"type": "Other", "status": "False", "reason": "E2E", "message": "no time at all"},
    ]);
    let (code, updated) = call(&fd, "PUT", &format!("{services}/s/status"), "application/json", Some(&object));
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["status"]["conditions"][0]["reason"], "E2E");
    // A real type error in the same place is still refused.
    let mut object = updated.clone();
    object["status"]["conditions"][0]["lastTransitionTime"] = json!(42);
    let (code, refused) = call(&fd, "PUT", &format!("{services}/s/status"), "application/json", Some(&object));
    assert_eq!((code, refused["kind"].as_str()), (400, Some("Status")), "{refused}");
}

/// Workload statuses carry the counters Go always writes: a new ReplicationController's status
/// is `replicas: 0`, not `{}` (the Python client refuses the latter).
#[test]
fn workload_statuses_carry_their_required_counters() {
    let fd = start();
    let rc = json!({"metadata": {"name": "rc"}, "spec": {"replicas": 0, "selector": {"app": "x"}, "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let (code, created) =
        call(&fd, "POST", "/api/v1/namespaces/default/replicationcontrollers", "application/json", Some(&rc));
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"]["replicas"], 0, "{created}");
    let rs = json!({"metadata": {"name": "rs"}, "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "y"}}, "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let (code, created) =
        call(&fd, "POST", "/apis/apps/v1/namespaces/default/replicasets", "application/json", Some(&rs));
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"]["replicas"], 0, "{created}");
    // A status written without it gets it back.
    let (code, updated) = call(
        &fd,
        "PATCH",
        "/api/v1/namespaces/default/replicationcontrollers/rc/status",
        "application/merge-patch+json",
        Some(&json!({"status": {"replicas": null, "observedGeneration": 1}})),
    );
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["status"]["replicas"], 0, "{updated}");
}

/// "should test the lifecycle of an Endpoint": create, find by label across namespaces, update
/// a label, patch in a new address and port, delete the collection by label; a watch from the
/// start sees it added, modified twice and deleted.
#[test]
fn endpoint_lifecycle() {
    let fd = start();
    let path = "/api/v1/namespaces/default/endpoints";
    let (_, list) = call(&fd, "GET", path, "", None);
    let start_rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let endpoints = json!({
        "metadata": {"name": "testservice", "labels": {"test-endpoint-static": "true"}},
        "subsets": [{"addresses": [{"ip": "10.0.0.24"}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}],
    });
    assert_eq!(call(&fd, "POST", path, "application/json", Some(&endpoints)).0, 201);
    let (_, all) = call(&fd, "GET", "/api/v1/endpoints?labelSelector=test-endpoint-static%3Dtrue", "", None);
    assert_eq!(names(&all), ["testservice"]);

    let (_, mut object) = call(&fd, "GET", &format!("{path}/testservice"), "", None);
    object["metadata"]["labels"]["test-service"] = json!("updated");
    let (code, updated) = call(&fd, "PUT", &format!("{path}/testservice"), "application/json", Some(&object));
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["metadata"]["labels"]["test-service"], "updated");

    let patch = json!({
        "metadata": {"labels": {"test-service": "patched"}},
        "subsets": [{"addresses": [{"ip": "10.0.0.25"}], "ports": [{"name": "http-test", "port": 8080}]}],
    });
    let (code, patched) =
        call(&fd, "PATCH", &format!("{path}/testservice"), "application/strategic-merge-patch+json", Some(&patch));
    assert_eq!(code, 200, "{patched}");
    let (_, got) = call(&fd, "GET", &format!("{path}/testservice"), "", None);
    assert_eq!(got["metadata"]["labels"]["test-service"], "patched");
    assert_eq!(got["subsets"][0]["addresses"][0]["ip"], "10.0.0.25");
    assert_eq!(got["subsets"][0]["ports"][0]["port"], 8080);
    assert_eq!(got["subsets"][0]["ports"][0]["name"], "http-test");

    let (code, _) = call(&fd, "DELETE", &format!("{path}?labelSelector=test-endpoint-static%3Dtrue"), "", None);
    assert_eq!(code, 200);
    let (_, left) = call(&fd, "GET", &format!("{path}?labelSelector=test-endpoint-static%3Dtrue"), "", None);
    assert!(names(&left).is_empty(), "{left}");

    let (_, body) = fd.curl(
        "GET",
        &format!(
            "{path}?watch=true&resourceVersion={start_rv}&labelSelector=test-endpoint-static%3Dtrue&timeoutSeconds=1"
        ),
        "",
        None,
    );
    let types: Vec<String> = body
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "MODIFIED", "DELETED"], "{body}");
}
