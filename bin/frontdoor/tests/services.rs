//! Service semantics through the real binary: allocation under concurrency and restarts, the
//! seeds' shapes in `kubectl get svc`, and upstream's errors for the seeds' common mistakes.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::collections::HashMap;
use std::time::Duration;

use frontdoor_testkit::{manifest, ApiClient, Frontdoor};
use http_body_util::BodyExt;
use serde_json::Value;

fn binary() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_frontdoor").as_ref()
}

fn node_port_service(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{name}"}},"spec":{{"type":"NodePort","selector":{{"app":"{name}"}},"ports":[{{"port":80,"targetPort":8080}}]}}}}"#
    )
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
    // Allocation alone: no controllers writing EndpointSlices for 20,000 short-lived Services.
    let fd = Frontdoor::start_with(
        binary(),
        &["--without-controllers", "--service-node-port-range", "30000-30199", "--service-cidr", "10.100.0.0/24"],
    );
    let client = ApiClient::new(&fd);
    const CLIENTS: usize = 64;
    const TOTAL: usize = 20_000;

    // Replay every change in revision order, checking the invariant at each step.
    let mut events =
        ApiClient::new(&fd).stream("/api/v1/namespaces/default/services?watch=true&resourceVersion=0").await;
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
                    let (status, body) = client
                        .send("POST", "/api/v1/namespaces/default/services", Some(node_port_service(&name)))
                        .await;
                    if status == 201 {
                        break;
                    }
                    // With 64 clients and 200 ports the range can be momentarily full.
                    assert!(
                        String::from_utf8_lossy(&body).contains("range is full"),
                        "create {name}: {status} {}",
                        String::from_utf8_lossy(&body)
                    );
                    full += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let (status, body) =
                    client.send("DELETE", &format!("/api/v1/namespaces/default/services/{name}"), None).await;
                assert_eq!(status, 200, "delete {name}: {}", String::from_utf8_lossy(&body));
            }
            full
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let (deleted, violations) =
        tokio::time::timeout(Duration::from_secs(120), checker).await.expect("watch caught up").unwrap();
    assert_eq!(deleted, TOTAL);
    assert!(violations.is_empty(), "values held twice: {:?}", &violations[..violations.len().min(10)]);

    // Everything freed is reusable: the whole node port range can be taken again, then it is full.
    for i in 0..200 {
        let (status, body) = client
            .send("POST", "/api/v1/namespaces/default/services", Some(node_port_service(&format!("again-{i}"))))
            .await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }
    let (status, body) =
        client.send("POST", "/api/v1/namespaces/default/services", Some(node_port_service("one-too-many"))).await;
    assert_eq!(status, 500);
    assert!(
        String::from_utf8_lossy(&body).contains("failed to allocate a nodePort: range is full"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[test]
fn allocations_survive_restart_and_deletion_frees_them() {
    let mut fd = Frontdoor::start(binary());
    fd.kubectl_ok("1.32", &["apply", "-f", manifest("seed3-devgains.yaml").to_str().unwrap()]);
    let ip = fd.kubectl_ok("1.32", &["get", "svc", "api", "-o", "jsonpath={.spec.clusterIP}"]);
    fd.kill_and_restart();
    let requested = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: copy\nspec:\n  clusterIP: {ip}\n  ports:\n  - port: 80\n"
    );
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
    assert!(
        err.contains("failed to allocate IP 192.168.0.10: provided IP 192.168.0.10 is not in the valid range"),
        "{err}"
    );
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
    let endpoints = fd.kubectl_ok(
        "1.32",
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=kubernetes",
            "-o",
            "jsonpath={.items[0].ports[0].port}",
        ],
    );
    assert_eq!(endpoints, port);
    let endpoints = fd.kubectl_ok("1.32", &["get", "endpoints", "kubernetes", "--no-headers"]);
    assert!(endpoints.starts_with(&format!("kubernetes   192.0.2.10:{port}")), "{endpoints}");
}

fn apply_stdin(fd: &Frontdoor, manifest: &str) -> (bool, String) {
    let out = fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(manifest));
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn seed_services_print_as_the_articles_show() {
    let fd = Frontdoor::start(binary());
    fd.kubectl_ok("1.32", &["apply", "-f", manifest("seed3-devgains.yaml").to_str().unwrap()]);
    fd.kubectl_ok("1.32", &["apply", "-f", manifest("seed0-service-types.yaml").to_str().unwrap()]);
    let headless = "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\nspec:\n  clusterIP: None\n  selector:\n    app: db\n  ports:\n  - port: 5432\n";
    assert!(apply_stdin(&fd, headless).0);
    let table = fd.kubectl_ok("1.32", &["get", "svc", "--no-headers"]);
    let row = |name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name}: {table}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let in_range = |ip: &str| {
        ip.starts_with("10.") && {
            let o: Vec<u8> = ip.split('.').map(|p| p.parse().unwrap()).collect();
            (96..=111).contains(&o[1])
        }
    };
    let api = row("api");
    assert_eq!((api[1].as_str(), api[3].as_str(), api[4].as_str()), ("ClusterIP", "<none>", "80/TCP"));
    assert!(in_range(&api[2]), "{api:?}");
    let nodeport = row("api-nodeport");
    assert_eq!((nodeport[1].as_str(), nodeport[4].as_str()), ("NodePort", "80:30080/TCP"));
    let public = row("api-public");
    assert_eq!((public[1].as_str(), public[3].as_str()), ("LoadBalancer", "<pending>"));
    let port: u16 = public[4].strip_prefix("443:").and_then(|p| p.strip_suffix("/TCP")).unwrap().parse().unwrap();
    assert!((30000..=32767).contains(&port));
    let external = row("external-db");
    assert_eq!(
        (external[1].as_str(), external[2].as_str(), external[3].as_str(), external[4].as_str()),
        ("ExternalName", "<none>", "db.example.com", "<none>")
    );
    assert_eq!(row("db")[2], "None");

    let describe = fd.kubectl_ok("1.32", &["describe", "svc", "api-nodeport"]);
    for line in [
        "Selector:                 app=api",
        "Type:                     NodePort",
        "Port:                     <unset>  80/TCP",
        "TargetPort:               8080/TCP",
        "NodePort:                 <unset>  30080/TCP",
        "Session Affinity:         None",
        "External Traffic Policy:  Cluster",
    ] {
        assert!(describe.contains(line), "missing {line:?} in\n{describe}");
    }
    assert!(describe.contains(&format!("IP:                       {}", nodeport[2])), "{describe}");
    // No pod matches: kubectl 1.31+ reads the (empty) EndpointSlice and prints nothing.
    let endpoints = describe.lines().find(|l| l.starts_with("Endpoints:")).unwrap_or_default();
    assert_eq!(endpoints.trim(), "Endpoints:", "{describe}");

    // Status only through the status subresource; then EXTERNAL-IP shows the address.
    let status = r#"{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.24"}]}}}"#;
    fd.kubectl_ok("1.32", &["patch", "svc", "api-public", "--type=merge", "-p", status]);
    assert_eq!(row_of(&fd, "api-public")[3], "<pending>");
    fd.kubectl_ok("1.32", &["patch", "svc", "api-public", "--subresource=status", "--type=merge", "-p", status]);
    assert_eq!(row_of(&fd, "api-public")[3], "203.0.113.24");
}

fn row_of(fd: &Frontdoor, name: &str) -> Vec<String> {
    fd.kubectl_ok("1.32", &["get", "svc", name, "--no-headers"]).split_whitespace().map(String::from).collect()
}

#[test]
fn type_changes_in_both_directions_allocate_and_free() {
    let fd = Frontdoor::start(binary());
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: flip\nspec:\n  type: NodePort\n  selector:\n    app: flip\n  ports:\n  - port: 80\n    nodePort: 30100\n";
    assert!(apply_stdin(&fd, svc).0);
    // NodePort → ClusterIP frees the node port; another Service can take it.
    fd.kubectl_ok("1.32", &["patch", "svc", "flip", "--type=merge", "-p", r#"{"spec":{"type":"ClusterIP"}}"#]);
    assert_eq!(row_of(&fd, "flip")[4], "80/TCP");
    let other = svc.replace("name: flip", "name: other");
    let (ok, err) = apply_stdin(&fd, &other);
    assert!(ok, "{err}");
    // ClusterIP → ExternalName frees the address; back again allocates a new one.
    let ip = row_of(&fd, "flip")[2].clone();
    fd.kubectl_ok(
        "1.32",
        &[
            "patch",
            "svc",
            "flip",
            "--type=merge",
            "-p",
            r#"{"spec":{"type":"ExternalName","externalName":"db.example.com","clusterIP":null,"clusterIPs":null}}"#,
        ],
    );
    let row = row_of(&fd, "flip");
    assert_eq!((row[1].as_str(), row[2].as_str(), row[3].as_str()), ("ExternalName", "<none>", "db.example.com"));
    let reuse = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: reuse\nspec:\n  clusterIP: {ip}\n  ports:\n  - port: 80\n"
    );
    let (ok, err) = apply_stdin(&fd, &reuse);
    assert!(ok, "the freed address must be reusable: {err}");
    fd.kubectl_ok(
        "1.32",
        &["patch", "svc", "flip", "--type=merge", "-p", r#"{"spec":{"type":"ClusterIP","externalName":null}}"#],
    );
    let row = row_of(&fd, "flip");
    assert_eq!(row[1], "ClusterIP");
    assert!(row[2].starts_with("10.") && row[2] != ip, "{row:?}");
    // ClusterIP → NodePort allocates a node port.
    fd.kubectl_ok("1.32", &["patch", "svc", "flip", "--type=merge", "-p", r#"{"spec":{"type":"NodePort"}}"#]);
    assert!(row_of(&fd, "flip")[4].starts_with("80:3"));
}

#[test]
fn invalid_services_get_upstream_messages() {
    let fd = Frontdoor::start(binary());
    let cases = [
        ("spec:\n  ports:\n  - port: 80\n  - port: 443\n", "spec.ports[0].name: Required value"),
        (
            "spec:\n  sessionAffinity: Sticky\n  ports:\n  - port: 80\n",
            "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
        ),
        (
            "spec:\n  ports:\n  - port: 80\n    nodePort: 30001\n",
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            "spec:\n  type: ExternalName\n  externalName: bad_name\n",
            "spec.externalName: Invalid value: \"bad_name\": a lowercase RFC 1123 subdomain must consist of",
        ),
        (
            "spec:\n  ports:\n  - port: 0\n",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ),
        (
            "spec:\n  type: NodePort\n  clusterIP: None\n  ports:\n  - port: 80\n",
            "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services",
        ),
    ];
    for (i, (spec, expected)) in cases.iter().enumerate() {
        let manifest = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: bad-{i}\n{spec}");
        let (ok, err) = apply_stdin(&fd, &manifest);
        assert!(
            !ok && err.contains(&format!("The Service \"bad-{i}\" is invalid:")) && err.contains(expected),
            "case {i}: {err}"
        );
        assert!(!fd.kubectl("1.32", &["get", "svc", &format!("bad-{i}")]).status.success());
    }
    // clusterIP is immutable.
    assert!(
        apply_stdin(&fd, "apiVersion: v1\nkind: Service\nmetadata:\n  name: fixed\nspec:\n  ports:\n  - port: 80\n").0
    );
    let out = fd.kubectl(
        "1.32",
        &[
            "patch",
            "svc",
            "fixed",
            "--type=merge",
            "-p",
            r#"{"spec":{"clusterIP":"10.96.0.99","clusterIPs":["10.96.0.99"]}}"#,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("may not change once set"), "{err}");
}
