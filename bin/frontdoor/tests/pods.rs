//! Pods that run: real processes in their own network namespaces, inside a network namespace
//! made for each test, driven with the real kubectl.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor};

fn start() -> Frontdoor {
    Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &[])
}

fn apply(fd: &Frontdoor, manifest: &str) {
    let out = fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn jsonpath(fd: &Frontdoor, what: &[&str], path: &str) -> String {
    let mut args: Vec<&str> = vec!["get"];
    args.extend_from_slice(what);
    let expression = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &expression]);
    let out = fd.kubectl("1.32", &args);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const WEB: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: web
    image: python:3
    command: [python3, -m, http.server, '8080']
    ports:
    - containerPort: 8080
      name: http
    readinessProbe:
      httpGet:
        port: http
      periodSeconds: 1
";

#[test]
fn a_pod_runs_becomes_ready_serves_and_logs() {
    let fd = start();
    let node = fd.kubectl_ok("1.32", &["get", "nodes", "--no-headers"]);
    assert!(node.split_whitespace().nth(1) == Some("Ready"), "{node}");
    apply(&fd, WEB);
    let ready = wait_until(Duration::from_secs(20), || {
        jsonpath(&fd, &["pod", "web"], "{.status.conditions[?(@.type==\"Ready\")].status}") == "True"
    });
    let describe = fd.kubectl_ok("1.32", &["describe", "pod", "web"]);
    assert!(ready, "{describe}");
    let ip = jsonpath(&fd, &["pod", "web"], "{.status.podIP}");
    assert!(ip.starts_with("10.244.0."), "{ip}");
    // From the node (inside the test's namespace) to the pod.
    let out = fd
        .command("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", &format!("http://{ip}:8080/")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    let row = fd.kubectl_ok("1.32", &["get", "pods", "--no-headers", "-o", "wide"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..3], ["web", "1/1", "Running"], "{row}");
    assert_eq!(cells[5], ip);
    assert!(describe.contains("Started container web"), "{describe}");
    // The request above shows in the container's log.
    assert!(wait_until(Duration::from_secs(5), || fd
        .kubectl_ok("1.32", &["logs", "web"])
        .contains("\"GET / HTTP/1.1\" 200")));
    let tail = fd.kubectl_ok("1.32", &["logs", "web", "--tail=1", "--timestamps"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("20"), "{tail}");
    // Graceful deletion: the pod is gone once its process stopped.
    fd.kubectl_ok("1.32", &["delete", "pod", "web", "--timeout=20s"]);
    assert!(!fd.kubectl("1.32", &["get", "pod", "web"]).status.success());
}

#[test]
fn hostname_resolv_conf_hosts_and_environment() {
    let fd = start();
    let manifest = "apiVersion: v1
kind: Pod
metadata:
  name: probe-me
  namespace: default
spec:
  hostname: box
  subdomain: lab
  containers:
  - name: shell
    image: busybox
    command: [sh, -c]
    args: ['hostname; cat /etc/resolv.conf; grep box /etc/hosts; echo POD=$MY_POD SVC=$KUBERNETES_SERVICE_HOST; sleep 1000']
    env:
    - name: MY_POD
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
";
    apply(&fd, manifest);
    let logged = wait_until(Duration::from_secs(15), || fd.kubectl("1.32", &["logs", "probe-me"]).stdout.len() > 20);
    let logs = fd.kubectl_ok("1.32", &["logs", "probe-me"]);
    assert!(logged, "{logs}");
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines[0], "box");
    assert!(logs.contains("search default.svc.cluster.local svc.cluster.local cluster.local"), "{logs}");
    assert!(logs.contains("nameserver 10.96.0.10") && logs.contains("options ndots:5"), "{logs}");
    assert!(logs.contains("box.lab.default.svc.cluster.local"), "{logs}");
    assert!(logs.contains("POD=probe-me SVC=10.96.0.1"), "{logs}");
    // The host's own resolv.conf is untouched.
    assert!(!std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default().contains("svc.cluster.local"));
}

#[test]
fn bad_commands_and_crashes_show_as_upstream() {
    let fd = start();
    let manifest = "apiVersion: v1
kind: Pod
metadata:
  name: broken
spec:
  containers:
  - name: missing
    image: nothing
    command: [no-such-command-anywhere]
---
apiVersion: v1
kind: Pod
metadata:
  name: imageonly
spec:
  containers:
  - name: app
    image: nginx
---
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: app
    image: busybox
    command: [sh, -c, 'echo dying; exit 3']
";
    apply(&fd, manifest);
    let crashloop = wait_until(Duration::from_secs(20), || {
        let pods = fd.kubectl_ok("1.32", &["get", "pods", "--no-headers"]);
        pods.lines().any(|l| l.starts_with("crasher ") && (l.contains("CrashLoopBackOff") || l.contains("Error")))
    });
    let pods = fd.kubectl_ok("1.32", &["get", "pods"]);
    assert!(crashloop, "{pods}");
    let describe = fd.kubectl_ok("1.32", &["describe", "pod", "broken"]);
    assert!(describe.contains("no-such-command-anywhere"), "{describe}");
    let describe = fd.kubectl_ok("1.32", &["describe", "pod", "imageonly"]);
    assert!(describe.contains("CreateContainerConfigError") && describe.contains("has no command"), "{describe}");
    // As upstream: the crashed instance's log is the current log until the next instance starts
    // (after the 10 s back-off); then it is the previous one.
    assert!(fd.kubectl_ok("1.32", &["logs", "crasher"]).contains("dying"));
    let previous =
        || String::from_utf8_lossy(&fd.kubectl("1.32", &["logs", "crasher", "--previous"]).stdout).contains("dying");
    assert!(wait_until(Duration::from_secs(25), previous));
    let describe = fd.kubectl_ok("1.32", &["describe", "pod", "crasher"]);
    assert!(describe.contains("Back-off restarting failed container"), "{describe}");
}

#[test]
fn liveness_failures_restart_and_logs_follow_per_container() {
    let fd = start();
    let manifest = "apiVersion: v1
kind: Pod
metadata:
  name: two
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: ticker
    image: busybox
    command: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done']
  - name: unhealthy
    image: busybox
    command: [sleep, '1000']
    livenessProbe:
      tcpSocket:
        port: 9999
      periodSeconds: 1
      failureThreshold: 2
";
    apply(&fd, manifest);
    // The server needs the container named when there are two (kubectl names the first).
    let (code, body) = fd.curl("GET", "/api/v1/namespaces/default/pods/two/log", "", None);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("a container name must be specified for pod two, choose one of: [ticker unhealthy]"),
        "{body}"
    );
    let out = fd.kubectl("1.32", &["logs", "two"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Defaulted container \"ticker\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wait_until(Duration::from_secs(10), || String::from_utf8_lossy(
        &fd.kubectl("1.32", &["logs", "two", "-c", "ticker"]).stdout
    )
    .contains("tick 3")));
    // -f streams new lines as they are written.
    let mut follow = fd
        .command(frontdoor_testkit::kubectl_dir().join("kubectl.1.32"))
        .args(["logs", "-f", "two", "-c", "ticker", "--tail=1"])
        .env("KUBECONFIG", fd.kubeconfig())
        .env("HOME", fd.data_dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut lines = Vec::new();
    let streamed = wait_until(Duration::from_secs(10), || {
        lines.extend(receiver.try_iter());
        lines.len() >= 5
    });
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(streamed, "{lines:?}");
    let numbers: Vec<u64> = lines.iter().filter_map(|l| l.strip_prefix("tick ")?.parse().ok()).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{lines:?}");

    // The liveness probe to a closed port fails twice, and the container is restarted.
    let restarted = wait_until(Duration::from_secs(30), || {
        jsonpath(&fd, &["pod", "two"], "{.status.containerStatuses[?(@.name==\"unhealthy\")].restartCount}")
            .parse::<u32>()
            .unwrap_or(0)
            >= 1
    });
    let describe = fd.kubectl_ok("1.32", &["describe", "pod", "two"]);
    assert!(restarted, "{describe}");
    assert!(
        describe.contains("Liveness probe failed: dial tcp")
            && describe.contains("failed liveness probe, will be restarted"),
        "{describe}"
    );
}

const GATED: &str = "apiVersion: v1
kind: Pod
metadata:
  name: gated
spec:
  terminationGracePeriodSeconds: 1
  schedulingGates:
  - name: example.com/quota
  - name: example.com/arch
  containers:
  - name: sleep
    image: busybox
    command: [sleep, '3600']
";

#[test]
fn a_gated_pod_waits_until_its_last_gate_is_removed() {
    let fd = start();
    apply(&fd, GATED);
    let reason = || jsonpath(&fd, &["pod", "gated"], "{.status.conditions[?(@.type==\"PodScheduled\")].reason}");
    assert!(
        wait_until(Duration::from_secs(10), || reason() == "SchedulingGated"),
        "{}",
        fd.kubectl_ok("1.32", &["get", "pod", "gated", "-o", "yaml"])
    );
    for version in ["1.27", "1.33"] {
        let row = fd.kubectl_ok(version, &["get", "pod", "gated", "--no-headers"]);
        assert_eq!(
            row.split_whitespace().take(3).collect::<Vec<_>>(),
            ["gated", "0/1", "SchedulingGated"],
            "kubectl {version}: {row}"
        );
    }
    assert_eq!(
        jsonpath(&fd, &["pod", "gated"], "{.status.conditions[?(@.type==\"PodScheduled\")].message}"),
        "Scheduling is blocked due to non-empty scheduling gates"
    );
    assert_eq!(jsonpath(&fd, &["pod", "gated"], "{.spec.nodeName}"), "", "not bound");

    // Gates are only ever removed; a pod naming its node has none.
    let added = fd.kubectl_err(
        "1.32",
        &[
            "patch",
            "pod",
            "gated",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/spec/schedulingGates/-","value":{"name":"x"}}]"#,
        ],
    );
    assert!(
        added.contains(
            "spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate 'x'"
        ),
        "{added}"
    );
    let bound = fd.kubectl_with_stdin(
        "1.32",
        &["apply", "-f", "-"],
        Some(
            &GATED
                .replace("name: gated", "name: placed")
                .replace("  schedulingGates:", "  nodeName: elsewhere\n  schedulingGates:"),
        ),
    );
    let stderr = String::from_utf8_lossy(&bound.stderr);
    assert!(
        stderr.contains("spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"),
        "{stderr}"
    );
    // Narrowing where it may run is allowed while it waits.
    fd.kubectl_ok(
        "1.32",
        &["patch", "pod", "gated", "-p", r#"{"spec":{"nodeSelector":{"kubernetes.io/os":"linux"}}}"#],
    );

    fd.kubectl_ok(
        "1.32",
        &["patch", "pod", "gated", "--type=json", "-p", r#"[{"op":"remove","path":"/spec/schedulingGates/0"}]"#],
    );
    // A pod created after the patch is bound: the scheduler has seen the patch by then.
    apply(&fd, WITNESS);
    assert!(wait_until(Duration::from_secs(20), || !jsonpath(&fd, &["pod", "witness"], "{.spec.nodeName}").is_empty()));
    assert_eq!(jsonpath(&fd, &["pod", "gated"], "{.spec.nodeName}"), "", "one gate left: still waiting");
    fd.kubectl_ok(
        "1.32",
        &["patch", "pod", "gated", "--type=json", "-p", r#"[{"op":"remove","path":"/spec/schedulingGates"}]"#],
    );
    let ready = wait_until(Duration::from_secs(20), || {
        jsonpath(&fd, &["pod", "gated"], "{.status.conditions[?(@.type==\"Ready\")].status}") == "True"
    });
    assert!(ready, "{}", fd.kubectl_ok("1.32", &["describe", "pod", "gated"]));
    assert_eq!(jsonpath(&fd, &["pod", "gated"], "{.status.conditions[?(@.type==\"PodScheduled\")].status}"), "True");
    let row = fd.kubectl_ok("1.33", &["get", "pod", "gated", "--no-headers"]);
    assert_eq!(row.split_whitespace().take(3).collect::<Vec<_>>(), ["gated", "1/1", "Running"], "{row}");
    let events = fd.kubectl_ok(
        "1.32",
        &["get", "events", "--field-selector", "involvedObject.name=gated", "-o", "jsonpath={.items[*].reason}"],
    );
    assert!(events.starts_with("Scheduled") || events.contains("Scheduled"), "{events}");
    assert!(!events.contains("FailedScheduling"), "{events}");
}

const WITNESS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: witness
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
";

const NEVER_READY: &str = "apiVersion: v1
kind: Pod
metadata:
  name: never-ready
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
    readinessProbe:
      exec:
        command: ['false']
      periodSeconds: 1
";

/// The pod's events with `reason`: (count, message) each.
fn events_of(fd: &Frontdoor, pod: &str, reason: &str) -> Vec<(u64, String)> {
    let selector = format!("involvedObject.name={pod},reason={reason}");
    let out = fd.kubectl_ok("1.32", &["get", "events", "--field-selector", &selector, "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let items = list.get("items").and_then(|i| i.as_array()).cloned().unwrap_or_default();
    items
        .iter()
        .map(|e| {
            (
                e.get("count").and_then(|c| c.as_u64()).unwrap_or(0),
                e.get("message").and_then(|m| m.as_str()).unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_probe_failing_every_second_for_a_minute_is_one_event_counted() {
    let fd = start();
    apply(&fd, NEVER_READY);
    // A minute of failures, once a second: one Event whose count follows them.
    let counted = wait_until(Duration::from_secs(90), || {
        events_of(&fd, "never-ready", "Unhealthy").first().is_some_and(|(count, _)| *count >= 50)
    });
    let events = events_of(&fd, "never-ready", "Unhealthy");
    assert!(counted, "{events:?}");
    assert_eq!(events.len(), 1, "one Event, not one per failure: {events:?}");
    assert!(events[0].1.starts_with("Readiness probe failed"), "{events:?}");
    let describe = fd.kubectl_ok("1.32", &["describe", "pod", "never-ready"]);
    let line = describe.lines().find(|l| l.contains("Unhealthy")).unwrap_or_default().to_string();
    assert!(line.contains("(x"), "describe shows the count: {line}");
}
