//! Graceful pod termination as the kubelet does it, and what it is for: container lifecycle
//! hooks (postStart before the container counts as running; preStop before SIGTERM, inside the
//! grace period, which still bounds the stop; failures as `FailedPostStartHook` and
//! `FailedPreStopHook` events), and a Deployment's rolling update under steady load through its
//! ClusterIP losing no request: the proxy stops sending new connections to a terminating pod
//! while its preStop hook holds it up; and a node shutting down running its pods' preStop hooks.
//! Every node runs in a network namespace made for its test.
#![allow(clippy::unwrap_used)] // a test stops at the first broken assumption

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use frontdoor_testkit::{wait_until, Frontdoor};

const KUBECTL: &str = "1.33";
const WAIT: Duration = Duration::from_secs(60);

fn start() -> Frontdoor {
    Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1"])
}

fn apply(fd: &Frontdoor, manifest: &str) {
    let out = fd.kubectl_with_stdin(KUBECTL, &["apply", "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn get(fd: &Frontdoor, what: &[&str], path: &str) -> String {
    let mut args: Vec<&str> = vec!["get"];
    args.extend_from_slice(what);
    let expression = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &expression]);
    String::from_utf8_lossy(&fd.kubectl(KUBECTL, &args).stdout).into_owned()
}

fn now() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A time (seconds since the epoch) a pod wrote to `dir/name`.
fn stamp(dir: &Path, name: &str) -> Option<f64> {
    std::fs::read_to_string(dir.join(name)).ok()?.trim().parse().ok()
}

fn events(fd: &Frontdoor, pod: &str) -> String {
    let selector = format!("involvedObject.name={pod}");
    get(
        fd,
        &["events", "--field-selector", &selector],
        "{range .items[*]}{.type} {.reason} {.involvedObject.fieldPath}: {.message}{\"\\n\"}{end}",
    )
}

fn pod_gone(fd: &Frontdoor, pod: &str) -> bool {
    let out = fd.kubectl(KUBECTL, &["get", "pod", pod, "--ignore-not-found", "-o", "name"]);
    out.status.success() && out.stdout.is_empty()
}

#[test]
fn pre_stop_runs_before_sigterm_and_the_grace_period_still_bounds_it() {
    let fd = start();
    let dir = fd.data_dir().join("hooks");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    // `shell`: exec hooks; its TERM trap notes the time. `web`: an HTTP preStop hook that the
    // server notes, then SIGTERM (noted too).
    let web = serde_json::to_string(&format!(
        r#"import http.server, signal, sys, time
def term(*a):
    open("{d}/web-term", "w").write(str(time.time())); sys.exit(0)
signal.signal(signal.SIGTERM, term)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(s):
        if s.path == "/drain":
            open("{d}/web-drain", "w").write(str(time.time()))
        s.send_response(200); s.send_header("Content-Length", "0"); s.end_headers()
    def log_message(s, *a): pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"#
    ))
    .unwrap();
    apply(
        &fd,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: shell
    image: busybox
    command: [sh, -c, 'trap "date +%s.%N > {d}/shell-term; exit 0" TERM; while true; do sleep 0.05; done']
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'sleep 1; date +%s.%N > {d}/post-start']}}}}
      preStop: {{exec: {{command: [sh, -c, 'date +%s.%N > {d}/pre-stop-start; sleep 2; date +%s.%N > {d}/pre-stop-end']}}}}
  - name: web
    image: python
    command: [python3, -c, {web}]
    lifecycle:
      preStop: {{httpGet: {{path: /drain, port: 8080}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: sleeper
    image: busybox
    command: [sh, -c, 'trap "date +%s.%N > {d}/stubborn-term" TERM; while true; do sleep 0.05; done']
    lifecycle:
      preStop: {{sleep: {{seconds: 60}}}}
  - name: failing
    image: busybox
    command: [sleep, '3600']
    lifecycle:
      preStop: {{exec: {{command: [sh, -c, 'exit 3']}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: broken}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, '3600']
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'echo no; exit 1']}}}}
"#
        ),
    );
    // postStart has run (it takes a second) by the time the container is reported running.
    let running = wait_until(WAIT, || {
        !get(&fd, &["pod", "hooks"], r#"{.status.containerStatuses[?(@.name=="shell")].state.running.startedAt}"#)
            .is_empty()
    });
    assert!(running, "{}", fd.kubectl_ok(KUBECTL, &["describe", "pod", "hooks"]));
    assert!(stamp(&dir, "post-start").is_some(), "shell was reported running before its postStart hook ended");
    let ready = wait_until(WAIT, || get(&fd, &["pod", "hooks"], "{.status.phase}") == "Running");
    assert!(ready);

    // A failed postStart hook: an event with the hook's message, and the container is killed
    // (then restarted by the pod's policy).
    let failed = wait_until(WAIT, || events(&fd, "broken").contains("Warning FailedPostStartHook spec.containers{c}"));
    assert!(failed, "{}", events(&fd, "broken"));
    let text = events(&fd, "broken");
    assert!(
        text.contains(r#"Exec lifecycle hook ([sh -c echo no; exit 1]) for Container "c" in Pod "broken_default("#),
        "{text}"
    );
    assert!(text.contains(r#"message: "no\n""#), "{text}");
    let restarted =
        wait_until(WAIT, || get(&fd, &["pod", "broken"], "{.status.containerStatuses[0].restartCount}") != "0");
    assert!(restarted, "{}", fd.kubectl_ok(KUBECTL, &["describe", "pod", "broken"]));

    // Graceful deletion: each preStop hook, then SIGTERM.
    let deleted = now();
    fd.kubectl_ok(KUBECTL, &["delete", "pod", "hooks", "stubborn", "--wait=false"]);
    let gone = wait_until(WAIT, || pod_gone(&fd, "hooks") && pod_gone(&fd, "stubborn"));
    assert!(gone, "{}", fd.kubectl_ok(KUBECTL, &["get", "pods"]));
    let all_gone = now();

    let (start, end, term) = (
        stamp(&dir, "pre-stop-start").expect("shell's preStop hook ran"),
        stamp(&dir, "pre-stop-end").expect("shell's preStop hook finished"),
        stamp(&dir, "shell-term").expect("shell got SIGTERM"),
    );
    assert!(start >= deleted - 0.5 && end - start >= 2.0, "hook from {start} to {end}, deleted at {deleted}");
    assert!(term >= end, "SIGTERM at {term}, before the preStop hook ended at {end}");
    let (drain, web_term) = (stamp(&dir, "web-drain").expect("web's httpGet hook"), stamp(&dir, "web-term").unwrap());
    assert!(web_term >= drain, "web: SIGTERM at {web_term}, preStop request at {drain}");

    // The grace period bounds a hook that outlasts it: SIGTERM when it is over (3 s), SIGKILL
    // two seconds later (the kubelet's minimum after a hook), however long the hook wanted.
    let term = stamp(&dir, "stubborn-term").expect("stubborn got SIGTERM");
    assert!((deleted + 2.5..deleted + 5.0).contains(&term), "SIGTERM {:.1} s after the deletion", term - deleted);
    assert!(all_gone - deleted < 10.0, "the pods took {:.1} s to go", all_gone - deleted);
    let text = events(&fd, "stubborn");
    assert!(text.contains("Warning FailedPreStopHook spec.containers{failing}: PreStopHook failed"), "{text}");
    assert!(!text.contains("FailedPreStopHook spec.containers{sleeper}"), "{text}");
}

/// A server that answers every request with its pod's name.
const SERVER: &str = r#"import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(s):
        b = (socket.gethostname() + "\n").encode()
        s.send_response(200); s.send_header("Content-Length", str(len(b))); s.end_headers(); s.wfile.write(b)
    def log_message(s, *a): pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"#;

/// Sends ~200 requests a second to http://<argv[1]>/ (4 threads, each a new connection per
/// request, 1 s timeout each) until its standard input closes; prints each failure as it
/// happens (`FAIL <time> <error>`), an `OK` line after the first success, and at the end
/// `DONE <total> <failures> <pod>=<count>...`.
const CLIENT: &str = r#"import socket, sys, threading, time
host = sys.argv[1]
stop = threading.Event(); lock = threading.Lock()
counts = {}; failures = []; total = [0]; first = threading.Event()
def one():
    s = socket.create_connection((host, 80), timeout=1)
    try:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200"):
        raise Exception("answer %r" % data[:60])
    return body.decode().strip()
def worker():
    while not stop.is_set():
        t = time.time()
        try:
            pod = one()
            with lock:
                total[0] += 1; counts[pod] = counts.get(pod, 0) + 1
            first.set()
        except Exception as e:
            with lock:
                total[0] += 1; failures.append((t, repr(e)))
            print("FAIL %.3f %r" % (t, e), flush=True)
        time.sleep(max(0, 0.02 - (time.time() - t)))
threads = [threading.Thread(target=worker) for _ in range(4)]
for th in threads: th.start()
first.wait(30); print("OK", flush=True)
sys.stdin.read()
stop.set()
for th in threads: th.join()
print("DONE %d %d %s" % (total[0], len(failures), " ".join("%s=%d" % kv for kv in sorted(counts.items()))), flush=True)
"#;

fn pods_of(fd: &Frontdoor) -> BTreeSet<String> {
    get(fd, &["pods", "-l", "app=web"], "{.items[*].metadata.name}").split_whitespace().map(str::to_string).collect()
}

/// A node that shuts down (SIGTERM to `frontdoor up`) stops its pods as the kubelet's graceful
/// node shutdown does: each preStop hook first, then SIGTERM, within the node's shutdown grace
/// (the pod's own 30 s would hold the node up).
#[test]
fn a_node_shutting_down_runs_pre_stop_hooks_before_sigterm() {
    let mut fd = start();
    let dir = fd.data_dir().join("shutdown");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    apply(
        &fd,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: leaving}}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: shell
    image: busybox
    command: [sh, -c, 'trap "date +%s.%N > {d}/term; exit 0" TERM; while true; do sleep 0.05; done']
    lifecycle:
      preStop: {{exec: {{command: [sh, -c, 'date +%s.%N > {d}/pre-stop; sleep 0.5; date +%s.%N > {d}/pre-stop-end']}}}}
"#
        ),
    );
    let running = wait_until(WAIT, || {
        !get(&fd, &["pod", "leaving"], "{.status.containerStatuses[0].state.running.startedAt}").is_empty()
    });
    assert!(running, "{}", fd.kubectl_ok(KUBECTL, &["describe", "pod", "leaving"]));
    assert_eq!(stamp(&dir, "pre-stop"), None, "the hook ran before anything asked the pod to stop");

    let stopping = now();
    assert!(fd.stop(), "frontdoor up did not stop within 10 s of SIGTERM");
    let stopped = now();
    let (start, end, term) = (
        stamp(&dir, "pre-stop").expect("the preStop hook ran at shutdown"),
        stamp(&dir, "pre-stop-end").expect("the preStop hook finished"),
        stamp(&dir, "term").expect("the container got SIGTERM"),
    );
    assert!(start >= stopping - 0.5 && end - start >= 0.4, "hook from {start} to {end}, shutdown at {stopping}");
    assert!(term >= end, "SIGTERM at {term}, before the preStop hook ended at {end}");
    assert!(stopped - stopping < 9.0, "shutdown took {:.1} s", stopped - stopping);
}

#[test]
fn a_rolling_update_under_load_loses_no_request() {
    let fd = start();
    let script = serde_json::to_string(SERVER).unwrap();
    apply(
        &fd,
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: web
        image: python:3
        command: [python3, -c, {script}]
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{port: 8080}}, periodSeconds: 1}}
        lifecycle:
          preStop: {{sleep: {{seconds: 2}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"
        ),
    );
    let ready = wait_until(WAIT, || {
        get(&fd, &["deployment", "web"], "{.status.readyReplicas}") == "3"
            && get(
                &fd,
                &["endpointslices", "-l", "kubernetes.io/service-name=web"],
                "{.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}",
            )
            .split_whitespace()
            .count()
                == 3
    });
    assert!(ready, "{}", fd.kubectl_ok(KUBECTL, &["get", "pods", "-o", "wide"]));
    let before = pods_of(&fd);
    assert_eq!(before.len(), 3);
    let ip = get(&fd, &["service", "web"], "{.spec.clusterIP}");

    let mut client =
        fd.command("python3").args(["-c", CLIENT, &ip]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "OK", "the client never got an answer");
    // Failures are printed as they happen; keep them with their time.
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());
    let load_started = Instant::now();

    let restarted = now();
    fd.kubectl_ok(KUBECTL, &["rollout", "restart", "deployment/web"]);
    let status = fd.kubectl(KUBECTL, &["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    // The old pods finish terminating (preStop, SIGTERM) under load too.
    let replaced = wait_until(WAIT, || {
        let now = pods_of(&fd);
        now.len() == 3 && now.is_disjoint(&before)
    });
    let after = pods_of(&fd);
    // One more second of load after the last old pod went (load, not a wait for anything).
    std::thread::sleep(Duration::from_secs(1));
    drop(client.stdin.take());
    let status = client.wait().unwrap();
    let mut lines = reader.join().unwrap();
    let mut rest = String::new();
    if let Some(mut stderr) = client.stderr.take() {
        let _ = stderr.read_to_string(&mut rest);
    }
    assert!(status.success(), "the client failed: {rest}");
    assert!(replaced, "not all pods were replaced: before {before:?}, after {after:?}");

    let done = lines.pop().unwrap_or_default();
    let fields: Vec<&str> = done.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"DONE"), "{done}");
    let (total, failed): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let seconds = load_started.elapsed().as_secs_f64();
    let failures: Vec<String> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("FAIL "))
        .map(|line| {
            let (time, error) = line.split_once(' ').unwrap_or((line, ""));
            format!("{:+.3} s after the restart: {error}", time.parse::<f64>().unwrap_or(0.0) - restarted)
        })
        .collect();
    assert_eq!(failed, 0, "{failed} of {total} requests failed:\n{}", failures.join("\n"));
    assert!(total as f64 > 100.0 * seconds, "only {total} requests in {seconds:.1} s");
    // Every new pod served.
    for pod in &after {
        assert!(done.contains(&format!("{pod}=")), "{pod} never answered: {done}");
    }
}
