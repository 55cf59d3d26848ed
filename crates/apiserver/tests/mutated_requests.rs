//! A seeded fuzz of the write path: mutated bodies and patches (JSON, merge, strategic, JSON
//! patch, server-side apply) sent to every served kind and its status, against the API server
//! in process. Every request must be answered (no panic), a refusal as a `Status`, and never
//! with a server error. The seed and the count are fixed, so a failure replays; set
//! `FRONTDOOR_FUZZ_REQUESTS` for a longer run and `FRONTDOOR_FUZZ_SEED` for other inputs.
#![allow(clippy::unwrap_used)] // a test stops at the first broken assumption

use bytes::Bytes;
use frontdoor_testkit::InProcessServer;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A valid object of `kind` named `name`, for mutations to start from.
fn seed_object(resource: &frontdoor_resources::ResourceType, name: &str) -> Value {
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}]}});
    let selector = json!({"matchLabels": {"app": "web"}});
    let spec = match resource.kind {
        "Service" => {
            json!({"ports": [{"name": "http", "port": 80, "targetPort": 8080}], "selector": {"app": "web"}, "type": "NodePort"})
        }
        "Pod" => template["spec"].clone(),
        "Deployment" | "ReplicaSet" => json!({"replicas": 1, "selector": selector, "template": template}),
        "StatefulSet" => json!({"replicas": 1, "serviceName": "web", "selector": selector, "template": template}),
        "ReplicationController" => json!({"replicas": 1, "selector": {"app": "web"}, "template": template}),
        "Ingress" => {
            json!({"rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]})
        }
        "IngressClass" => json!({"controller": "example.com/ingress"}),
        _ => Value::Null,
    };
    let mut object = json!({"apiVersion": resource.api_version(), "kind": resource.kind, "metadata": {"name": name, "labels": {"app": "web"}, "annotations": {"a": "b"}}});
    if !spec.is_null() {
        object["spec"] = spec;
    }
    match resource.kind {
        "EndpointSlice" => {
            object["addressType"] = json!("IPv4");
            object["endpoints"] = json!([{"addresses": ["10.244.0.5"], "conditions": {"ready": true}}]);
            object["ports"] = json!([{"name": "http", "port": 8080, "protocol": "TCP"}]);
        }
        "Endpoints" => object["subsets"] = json!([{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 8080}]}]),
        "ConfigMap" | "Secret" => object["data"] = json!({"k": "dmFsdWU="}),
        "Event" => {
            object["involvedObject"] = json!({"kind": "Pod", "name": "p", "namespace": "default"});
            object["reason"] = json!("Test");
        }
        "ControllerRevision" => object["revision"] = json!(1),
        "Binding" => object["target"] = json!({"kind": "Node", "name": "n1"}),
        _ => {}
    }
    object
}

/// A random JSON value of any type (small).
fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..10) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random_range(-5i64..70000)),
        3 => [json!(-1), json!(0), json!(65536), json!(i64::MAX), json!(u64::MAX)][rng.random_range(0..5)].clone(),
        4 => json!(1.5e300),
        5 => {
            let long = "x".repeat(300);
            json!(
                ["", "None", "a", "10.96.0.5", "not an ip", "-", long.as_str(), "Local", "ClusterIP", "TCP"]
                    [rng.random_range(0..10)]
            )
        }
        6 if depth < 2 => Value::Array((0..rng.random_range(0..3)).map(|_| random_value(rng, depth + 1)).collect()),
        7 if depth < 2 => {
            let keys =
                ["metadata", "spec", "status", "name", "ports", "uid", "generation", "resourceVersion", "labels", "x"];
            Value::Object(
                (0..rng.random_range(0..3))
                    .map(|_| (keys[rng.random_range(0..keys.len())].to_string(), random_value(rng, depth + 1)))
                    .collect(),
            )
        }
        _ => json!("v"),
    }
}

/// A value of the same JSON type as `like`, often an edge case (for validators, not decoders).
fn same_type(rng: &mut StdRng, like: &Value) -> Value {
    match like {
        Value::String(_) => {
            let choices = [
                "",
                "None",
                "a",
                "A_B",
                "-x-",
                "10.96.0.5",
                "10.96.0.0/12",
                "::1",
                "999.1.1.1",
                "Local",
                "Cluster",
                "NodePort",
                "LoadBalancer",
                "ExternalName",
                "SCTP",
                "UDP",
                "Prefix",
                "Exact",
                "*.example.com",
                "a..b",
                "/",
                "http",
            ];
            let long = "a".repeat(rng.random_range(60..300));
            if rng.random_bool(0.1) {
                json!(long)
            } else {
                json!(choices[rng.random_range(0..choices.len())])
            }
        }
        Value::Number(_) => [
            json!(0),
            json!(-1),
            json!(1),
            json!(65535),
            json!(65536),
            json!(30000),
            json!(32768),
            json!(2147483648i64),
            json!(-2147483649i64),
        ][rng.random_range(0..9)]
        .clone(),
        Value::Bool(b) => json!(!b),
        Value::Array(items) if !items.is_empty() && rng.random_bool(0.5) => {
            let mut items = items.clone();
            let copy = items[rng.random_range(0..items.len())].clone();
            items.push(copy);
            Value::Array(items)
        }
        Value::Array(_) => json!([]),
        Value::Object(_) => json!({}),
        Value::Null => Value::Null,
    }
}

/// Every path (as JSON pointer segments) in `value`.
fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(key.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                prefix.push(index.to_string());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn pointer(path: &[String]) -> String {
    path.iter().map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1"))).collect()
}

/// `value` with one to three random changes: a subtree replaced, a key removed, or the whole
/// thing replaced.
fn mutate(rng: &mut StdRng, mut value: Value) -> Value {
    for _ in 0..rng.random_range(1..=3) {
        let mut all = Vec::new();
        paths(&value, &mut Vec::new(), &mut all);
        let path = all[rng.random_range(0..all.len())].clone();
        if path.is_empty() {
            if rng.random_bool(0.1) {
                value = random_value(rng, 0);
            }
            continue;
        }
        let (last, parent) = path.split_last().unwrap();
        let Some(parent) = value.pointer_mut(&pointer(parent)) else { continue };
        match parent {
            Value::Object(map) if rng.random_bool(0.3) => {
                map.remove(last);
            }
            Value::Object(map) => {
                let keep_type = rng.random_bool(0.5);
                let value = match map.get(last) {
                    Some(like) if keep_type => same_type(rng, like),
                    _ => random_value(rng, 0),
                };
                map.insert(last.clone(), value);
            }
            Value::Array(items) => {
                if let Ok(index) = last.parse::<usize>() {
                    items[index] =
                        if rng.random_bool(0.5) { same_type(rng, &items[index]) } else { random_value(rng, 0) };
                }
            }
            _ => {}
        }
    }
    value
}

fn json_patch(rng: &mut StdRng, object: &Value) -> Value {
    let mut all = Vec::new();
    paths(object, &mut Vec::new(), &mut all);
    let ops = ["add", "replace", "remove", "test", "move", "copy"];
    let count = rng.random_range(1..3);
    Value::Array(
        (0..count)
            .map(|_| {
                let path = pointer(&all[rng.random_range(0..all.len())]);
                let from = pointer(&all[rng.random_range(0..all.len())]);
                json!({"op": ops[rng.random_range(0..ops.len())], "path": path, "from": from, "value": random_value(rng, 0)})
            })
            .collect(),
    )
}

fn collection(resource: &frontdoor_resources::ResourceType) -> String {
    let root = if resource.group.is_empty() {
        format!("/api/{}", resource.version)
    } else {
        format!("/apis/{}/{}", resource.group, resource.version)
    };
    if resource.namespaced {
        format!("{root}/namespaces/default/{}", resource.plural)
    } else {
        format!("{root}/{}", resource.plural)
    }
}

struct Outcome {
    code: u16,
    body: Value,
}

async fn send(
    server: &InProcessServer,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Outcome, String> {
    let request = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let service = server.server.local_service();
    // A panic while answering must not end the test silently: run it as a task and look.
    let answer = tokio::spawn(async move { tower::ServiceExt::oneshot(service, request).await }).await;
    let response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(error) => {
            return Err(format!(
                "{method} {path} ({content_type}) panicked: {error}\nbody: {}",
                String::from_utf8_lossy(&body)
            ))
        }
    };
    let code = response.status().as_u16();
    let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    Ok(Outcome { code, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_writes_are_answered_and_refusals_are_statuses() {
    let requests: usize = std::env::var("FRONTDOOR_FUZZ_REQUESTS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let seed: u64 = std::env::var("FRONTDOOR_FUZZ_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(20261206);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = InProcessServer::start().await;
    let writable: Vec<_> = frontdoor_resources::all()
        .iter()
        .filter(|r| {
            r.verbs.contains(&"create")
                && !matches!(
                    r.kind,
                    "Namespace" | "Binding" | "TokenReview" | "SubjectAccessReview" | "SelfSubjectAccessReview"
                )
        })
        .collect();
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..requests {
        let resource = writable[rng.random_range(0..writable.len())];
        let name = format!("f{}", n % 50);
        let base = collection(resource);
        let object = seed_object(resource, &name);
        // Make sure there is something to update or patch most of the time.
        if rng.random_bool(0.3) {
            let _ = send(&server, Method::POST, &base, "application/json", object.to_string().into_bytes()).await;
        }
        let has_status = resource.subresource("status").is_some();
        let target =
            if has_status && rng.random_bool(0.3) { format!("{base}/{name}/status") } else { format!("{base}/{name}") };
        let (method, content_type, body) = match rng.random_range(0..10) {
            9 => {
                // A protobuf envelope (`k8s\0` magic) around random bytes, or the start of one.
                let mut bytes = b"k8s\0".to_vec();
                bytes.extend((0..rng.random_range(0..64)).map(|_| rng.random::<u8>()));
                bytes.truncate(rng.random_range(0..=bytes.len()));
                let method = if rng.random_bool(0.5) { Method::POST } else { Method::PUT };
                (method, "application/vnd.kubernetes.protobuf", bytes)
            }
            0 => (Method::POST, "application/json", mutate(&mut rng, object.clone()).to_string().into_bytes()),
            1 => (Method::PUT, "application/json", mutate(&mut rng, object.clone()).to_string().into_bytes()),
            2 => (
                Method::PATCH,
                "application/merge-patch+json",
                mutate(&mut rng, object.clone()).to_string().into_bytes(),
            ),
            3 => (
                Method::PATCH,
                "application/strategic-merge-patch+json",
                mutate(&mut rng, object.clone()).to_string().into_bytes(),
            ),
            4 => (Method::PATCH, "application/json-patch+json", json_patch(&mut rng, &object).to_string().into_bytes()),
            5 => (
                Method::PATCH,
                "application/apply-patch+yaml",
                mutate(&mut rng, object.clone()).to_string().into_bytes(),
            ),
            6 => (
                Method::PATCH,
                "application/apply-patch+yaml",
                [&b"[]"[..], b"''", b"", b"null", b"- a", b"42"][rng.random_range(0..6)].to_vec(),
            ),
            7 => (Method::PATCH, "application/merge-patch+json", random_value(&mut rng, 0).to_string().into_bytes()),
            _ => (Method::PUT, "application/json", random_value(&mut rng, 0).to_string().into_bytes()),
        };
        let target = if method == Method::POST { base.clone() } else { target };
        // JSON is YAML: a body sent as YAML goes through the YAML decoder.
        let content_type =
            if content_type == "application/json" && rng.random_bool(0.2) { "application/yaml" } else { content_type };
        let target =
            if content_type == "application/apply-patch+yaml" { format!("{target}?fieldManager=fuzz") } else { target };
        match send(&server, method.clone(), &target, content_type, body.clone()).await {
            Err(panic) => failures.push(panic),
            Ok(outcome) => {
                *codes.entry(outcome.code).or_default() += 1;
                let is_status = outcome.body.get("kind").and_then(Value::as_str) == Some("Status");
                if outcome.code >= 500 || (outcome.code >= 400 && !is_status) {
                    failures.push(format!(
                        "{method} {target} ({content_type}) answered {}: {}\nbody: {}",
                        outcome.code,
                        outcome.body,
                        String::from_utf8_lossy(&body)
                    ));
                }
            }
        }
        if failures.len() >= 10 {
            break;
        }
    }
    assert!(failures.is_empty(), "{} failures (seed {seed}); first ones:\n{}", failures.len(), failures.join("\n\n"));
    // The fuzz reached the write path: some writes went through, some were refused.
    assert!(codes.keys().any(|c| *c < 300) && codes.keys().any(|c| (400..500).contains(c)), "{codes:?}");
    eprintln!("answers by code: {codes:?}");
}
