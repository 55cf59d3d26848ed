//! Service semantics through the real binary: allocation under concurrency and restarts, the
//! seeds' shapes in `kubectl get svc`, and upstream's errors for the seeds' common mistakes.

use std::collections::HashMap;
use std::time::Duration;

use frontdoor_testkit::{manifest, ApiClient, Frontdoor};
use http_body_util::BodyExt;
use serde_json::Value;

fn binary() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_frontdoor").as_ref()
}

fn node_port_service(name: &str) -> String {
    format!(r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{name}"}},"spec":{{"type":"NodePort","selector":{{"app":"{name}"}},"ports":[{{"port":80,"targetPort":8080}}]}}}}"#)
}

/// What one Service event says it holds.
fn holdings(service: &Value) -> Vec<String> {
    let mut held = Vec::new();
    if let Some(ip) = service.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|ip| *ip != "None") {
        held.push(format!("ip {ip}"));
    }
    for port in service.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
        if let Some(p) = port.get("nodePort").and_then(Value::as_u64) {
            held.push(format!("port {p}"));
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_create_delete_never_holds_a_value_twice() {
    // Small ranges force constant reuse: 200 node ports and 254 addresses for 64 clients.
    let fd = Frontdoor::start_with(binary(), &["--service-node-port-range", "30000-30199", "--service-cidr", "10.100.0.0/24"]);
    let client = ApiClient::new(&fd);
    const CLIENTS: usize = 64;
    const TOTAL: usize = 20_000;

    // Replay every change in revision order, checking the invariant at each step.
    let mut events = ApiClient::new(&fd).stream("/api/v1/namespaces/default/services?watch=true&resourceVersion=0").await;
    let checker = tokio::spawn(async move {
        let mut owner: HashMap<String, String> = HashMap::new();
        let mut by_service: HashMap<String, Vec<String>> = HashMap::new();
        let (mut buffer, mut deleted, mut violations) = (Vec::new(), 0usize, Vec::new());
        while deleted < TOTAL {
            let Some(Ok(frame)) = events.frame().await else { break };
            let Ok(data) = frame.into_data() else { continue };
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line).unwrap();
                let name = event["object"]["metadata"]["name"].as_str().unwrap().to_string();
                if name == "kubernetes" {
                    continue;
                }
                for value in by_service.remove(&name).unwrap_or_default() {
                    owner.remove(&value);
                }
                if event["type"] == "DELETED" {
                    deleted += 1;
                    continue;
                }
                let held = holdings(&event["object"]);
                for value in &held {
                    if let Some(other) = owner.insert(value.clone(), name.clone()) {
                        violations.push(format!("{value} held by {other} and {name}"));
                    }
                }
                by_service.insert(name, held);
            }
        }
        (deleted, violations)
    });

    let mut workers = Vec::new();
    for worker in 0..CLIENTS {
        let client = ApiClient::new(&fd);
        workers.push(tokio::spawn(async move {
            let mut full = 0;
            for i in (worker..TOTAL).step_by(CLIENTS) {
                let name = format!("s-{i}");
                loop {
                    let (status, body) = client.send("POST", "/api/v1/namespaces/default/services", Some(node_port_service(&name))).await;
                    if status == 201 {
                        break;
                    }
                    // With 64 clients and 200 ports the range can be momentarily full.
                    assert!(String::from_utf8_lossy(&body).contains("range is full"), "create {name}: {status} {}", String::from_utf8_lossy(&body));
                    full += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let (status, body) = client.send("DELETE", &format!("/api/v1/namespaces/default/services/{name}"), None).await;
                assert_eq!(status, 200, "delete {name}: {}", String::from_utf8_lossy(&body));
            }
            full
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let (deleted, violations) = tokio::time::timeout(Duration::from_secs(120), checker).await.expect("watch caught up").unwrap();
    assert_eq!(deleted, TOTAL);
    assert!(violations.is_empty(), "values held twice: {:?}", &violations[..violations.len().min(10)]);

    // Everything freed is reusable: the whole node port range can be taken again, then it is full.
    for i in 0..200 {
        let (status, body) = client.send("POST", "/api/v1/namespaces/default/services", Some(node_port_service(&format!("again-{i}")))).await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }
    let (status, body) = client.send("POST", "/api/v1/namespaces/default/services", Some(node_port_service("one-too-many"))).await;
    assert_eq!(status, 500);
    assert!(String::from_utf8_lossy(&body).contains("failed to allocate a nodePort: range is full"), "{}", String::from_utf8_lossy(&body));
}

#[test]
fn allocations_survive_restart_and_deletion_frees_them() {
    let mut fd = Frontdoor::start(binary());
    fd.kubectl_ok("1.32", &["apply", "-f", manifest("seed3-devgains.yaml").to_str().unwrap()]);
    let ip = fd.kubectl_ok("1.32", &["get", "svc", "api", "-o", "jsonpath={.spec.clusterIP}"]);
    fd.kill_and_restart();
    let requested = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: copy\nspec:\n  clusterIP: {ip}\n  ports:\n  - port: 80\n");
    let out = fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(&requested));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("The Service \"copy\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated")),
        "{err}"
    );
    let clash = "apiVersion: v1\nkind: Service\nmetadata:\n  name: clash\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30080\n";
    let out = fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(clash));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("The Service \"clash\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"), "{err}");
    fd.kubectl_ok("1.32", &["delete", "svc", "api", "api-nodeport"]);
    assert!(fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(&requested)).status.success());
    assert!(fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(clash)).status.success());
    assert_eq!(fd.kubectl_ok("1.32", &["get", "svc", "copy", "-o", "jsonpath={.spec.clusterIP}"]), ip);
}

#[test]
fn node_ports_outside_the_range_are_refused() {
    let fd = Frontdoor::start(binary());
    let low = "apiVersion: v1\nkind: Service\nmetadata:\n  name: low\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 29999\n";
    let out = fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(low));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.ports[0].nodePort: Invalid value: 29999: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{err}"
    );
    let far = "apiVersion: v1\nkind: Service\nmetadata:\n  name: far\nspec:\n  clusterIP: 192.168.0.10\n  ports:\n  - port: 80\n";
    let out = fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(far));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed to allocate IP 192.168.0.10: provided IP 192.168.0.10 is not in the valid range"), "{err}");
    assert!(!fd.kubectl("1.32", &["get", "svc", "low"]).status.success());
    assert!(!fd.kubectl("1.32", &["get", "svc", "far"]).status.success());
}

#[test]
fn the_kubernetes_service_points_at_the_api_server() {
    // A documentation address (TEST-NET-1): the test only reads it back, nothing is sent there.
    let fd = Frontdoor::start_with(binary(), &["--advertise-address", "192.0.2.10"]);
    let row = fd.kubectl_ok("1.32", &["get", "svc", "kubernetes", "--no-headers"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..5], ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]);
    let port = fd.address.rsplit(':').next().unwrap();
    let endpoints = fd.kubectl_ok("1.32", &["get", "endpointslices", "-l", "kubernetes.io/service-name=kubernetes", "-o", "jsonpath={.items[0].ports[0].port}"]);
    assert_eq!(endpoints, port);
    let endpoints = fd.kubectl_ok("1.32", &["get", "endpoints", "kubernetes", "--no-headers"]);
    assert!(endpoints.starts_with(&format!("kubernetes   192.0.2.10:{port}")), "{endpoints}");
}
