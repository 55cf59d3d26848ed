//! The end-to-end story: a Deployment of real HTTP servers behind a Service, readiness
//! moving endpoints, a selector typo, and a rolling update that never leaves the Service without
//! a ready endpoint. Each test runs its node in a network namespace made for it.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::time::{Duration, Instant};

use frontdoor_testkit::{wait_until, Frontdoor};

fn start() -> Frontdoor {
    Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &[])
}

fn apply(fd: &Frontdoor, manifest: &str) {
    let out = fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn get(fd: &Frontdoor, args: &[&str]) -> String {
    String::from_utf8_lossy(&fd.kubectl("1.32", args).stdout).into_owned()
}

/// A Deployment of `python3 -m http.server` pods whose readiness is a file on the host that the
/// test creates or removes (pods see the host filesystem).
fn web(ready_dir: &std::path::Path, replicas: u32, version: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  strategy:
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
        version: '{version}'
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: python:3
        command: [sh, -c, 'touch {dir}/$HOSTNAME; exec python3 -m http.server 8080']
        ports:
        - containerPort: 8080
          name: http
        readinessProbe:
          exec:
            command: [sh, -c, 'test -f {dir}/$HOSTNAME']
          periodSeconds: 1
          failureThreshold: 2
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: http
",
        dir = ready_dir.display()
    )
}

fn ready_endpoints(fd: &Frontdoor) -> Vec<String> {
    let out = get(
        fd,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]} {end}",
        ],
    );
    let mut ips: Vec<String> = out.split_whitespace().map(String::from).collect();
    ips.sort();
    ips
}

#[test]
fn deployment_behind_a_service_follows_readiness() {
    let fd = start();
    let ready_dir = tempfile::tempdir().unwrap();
    apply(&fd, &web(ready_dir.path(), 3, "1"));
    let all_ready = wait_until(Duration::from_secs(60), || ready_endpoints(&fd).len() == 3);
    assert!(
        all_ready,
        "{}\n{}",
        get(&fd, &["get", "pods", "-o", "wide"]),
        get(&fd, &["get", "endpointslices", "-o", "yaml"])
    );
    let pod_ips = {
        let out = get(&fd, &["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}"]);
        let mut ips: Vec<String> = out.split_whitespace().map(String::from).collect();
        ips.sort();
        ips
    };
    assert_eq!(ready_endpoints(&fd), pod_ips);
    let endpoints = fd.kubectl_ok("1.32", &["get", "endpoints", "web", "--no-headers"]);
    for ip in &pod_ips {
        assert!(endpoints.contains(&format!("{ip}:8080")), "{endpoints}");
    }
    let slices = fd.kubectl_ok("1.32", &["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
    assert!(slices.contains("IPv4") && slices.contains("8080"), "{slices}");
    let labels = fd.kubectl_ok("1.32", &["get", "pods", "--show-labels"]);
    assert!(labels.contains("app=web,pod-template-hash="), "{labels}");
    // Each pod serves.
    for ip in &pod_ips {
        let out = fd
            .command("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", &format!("http://{ip}:8080/")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{ip}");
    }

    // A failing readiness probe removes the endpoint within period × failureThreshold (+ slack
    // for the probe's own timing), and a passing one brings it back.
    let pod = get(&fd, &["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    let ip = get(&fd, &["get", "pod", &pod, "-o", "jsonpath={.status.podIP}"]);
    std::fs::remove_file(ready_dir.path().join(&pod)).unwrap();
    let failed_at = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || !ready_endpoints(&fd).contains(&ip)));
    let removal = failed_at.elapsed();
    // period 1 s × failureThreshold 2 + 100 ms, plus up to one period before the first check
    // that sees the file gone, plus the polling of this test (one kubectl call).
    println!("readiness failure → endpoint removed after {removal:?}");
    assert!(removal < Duration::from_millis(3_100 + 300), "endpoint removed after {removal:?}");
    let none = fd.kubectl_ok("1.32", &["get", "endpoints", "web", "--no-headers"]);
    assert!(!none.contains(&format!("{ip}:8080")), "{none}");
    std::fs::write(ready_dir.path().join(&pod), "").unwrap();
    assert!(wait_until(Duration::from_secs(10), || ready_endpoints(&fd).contains(&ip)));
    let describe = fd.kubectl_ok("1.32", &["describe", "pod", &pod]);
    assert!(describe.contains("Readiness probe failed"), "{describe}");

    // The seeds' selector typo: nothing matches, `kubectl get endpoints` says <none>.
    apply(&fd, "apiVersion: v1\nkind: Service\nmetadata:\n  name: typo\nspec:\n  selector:\n    app: wbe\n  ports:\n  - port: 80\n");
    assert!(wait_until(Duration::from_secs(10), || get(&fd, &["get", "endpoints", "typo", "--no-headers"])
        .contains("<none>")));
    // `kubectl logs deployment/web` picks a pod; the curl above shows in some pod's log.
    assert!(fd.kubectl("1.32", &["logs", "deployment/web"]).status.success());
}

#[test]
fn rolling_update_never_leaves_the_service_without_a_ready_endpoint() {
    let fd = start();
    let ready_dir = tempfile::tempdir().unwrap();
    apply(&fd, &web(ready_dir.path(), 3, "1"));
    assert!(wait_until(Duration::from_secs(60), || ready_endpoints(&fd).len() == 3));
    // Every change to the Service's EndpointSlices, in order, from a watch: the ready count
    // after each one must stay above zero.
    let watch_path = format!(
        "https://{}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?watch=true&labelSelector=kubernetes.io%2Fservice-name%3Dweb",
        fd.address
    );
    let mut watcher = fd
        .command("curl")
        .args(["-sN", "--cacert"])
        .arg(fd.ca_path())
        .args(["-H", &format!("Authorization: Bearer {}", fd.token()), &watch_path])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel::<usize>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut per_slice: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            let name = event["object"]["metadata"]["name"].as_str().unwrap_or("").to_string();
            let ready = event["object"]["endpoints"]
                .as_array()
                .map_or(0, |e| e.iter().filter(|e| e["conditions"]["ready"] == true).count());
            if event["type"] == "DELETED" {
                per_slice.remove(&name);
            } else {
                per_slice.insert(name, ready);
            }
            let _ = sender.send(per_slice.values().sum());
        }
    });
    // The watch has listed once it reports the slices as they are (three ready endpoints).
    let mut counts: Vec<usize> = Vec::new();
    let listed = wait_until(Duration::from_secs(20), || {
        counts.extend(receiver.try_iter());
        counts.last() == Some(&3)
    });
    assert!(listed, "the EndpointSlice watch reported {counts:?}");
    apply(&fd, &web(ready_dir.path(), 3, "2"));
    let started = Instant::now();
    let mut done = false;
    while started.elapsed() < Duration::from_secs(90) {
        if fd.kubectl("1.32", &["rollout", "status", "deployment/web", "--timeout=2s"]).status.success() {
            done = true;
            break;
        }
    }
    // The rollout's slice changes reach the watch: more than the initial list's.
    let initial = counts.len();
    let seen_changes = wait_until(Duration::from_secs(20), || {
        counts.extend(receiver.try_iter());
        counts.len() > initial + 3
    });
    let _ = watcher.kill();
    let _ = watcher.wait();
    counts.extend(receiver.try_iter());
    assert!(seen_changes, "too few EndpointSlice events seen: {counts:?}");
    assert!(done, "rollout did not finish: {}", get(&fd, &["get", "rs,pods"]));
    assert!(counts.iter().all(|c| *c >= 1), "the Service had no ready endpoint during the rollout: {counts:?}");
    // The rollout is complete once the old ReplicaSet is scaled to zero; its pods may still be
    // terminating (grace period 2 s), as on a real cluster. Once they are gone only version 2 runs.
    let versions = || get(&fd, &["get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.labels.version}"]);
    let only_new = wait_until(Duration::from_secs(20), || {
        let v = versions();
        v.split_whitespace().count() == 3 && v.split_whitespace().all(|v| v == "2")
    });
    assert!(only_new, "{}", versions());
    assert!(wait_until(Duration::from_secs(20), || ready_endpoints(&fd).len() == 3));
}
