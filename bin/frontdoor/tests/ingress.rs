//! The Ingress controller through the real path: the seeds' Ingress applied with kubectl, served
//! by `frontdoor up` on the node's address, reached with curl from a second network namespace on
//! the node's LAN over HTTP/1.1, HTTP/2 and HTTPS (a Secret's certificate, rotated while
//! running); a backend's rolling update under load loses no request. Each node runs in a network
//! namespace made for its test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor, Lan};

const KUBECTL: &str = "1.33";

/// A Deployment whose pods answer `<name> <pod> <path>` on 8080, and its ClusterIP Service on 80.
fn backend(name: &str, replicas: u32) -> String {
    let script = format!(
        r#"import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(s):
        b = ("{name} " + socket.gethostname() + " " + s.path + " " + str(s.headers.get("X-Forwarded-For")) + " " + str(s.headers.get("X-Forwarded-Proto")) + "\n").encode()
        s.send_response(200); s.send_header("Content-Length", str(len(b))); s.end_headers(); s.wfile.write(b)
    def log_message(s, *a): pass
http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
"#
    );
    let script = serde_json::to_string(&script).unwrap();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: serve
        image: python:3
        command: [python3, -c, {script}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"
    )
}

fn wait_ready(fd: &Frontdoor, deployment: &str, replicas: u32) {
    let ready = wait_until(Duration::from_secs(40), || {
        fd.jsonpath(&["deployment", deployment], "{.status.readyReplicas}") == replicas.to_string()
    });
    assert!(ready, "{deployment} not ready");
}

/// A node whose default route leaves through a LAN (so its InternalIP is its LAN address), and
/// that LAN's client.
fn node_on_a_lan(subnet: u8, flags: &[&str]) -> (Frontdoor, Lan) {
    let mut lan = None;
    let mut all = vec!["--node-name", "n1"];
    all.extend_from_slice(flags);
    let fd = Frontdoor::start_node_prepared(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &all, |ns| {
        let attached = Lan::attach(ns, subnet);
        let status = Command::new("ip")
            .args(["-n", ns, "route", "add", "default", "via", &attached.client_address])
            .status()
            .unwrap();
        assert!(status.success());
        lan = Some(attached);
    });
    (fd, lan.unwrap())
}

/// The seed article's manifests, verbatim: the `api` Services (ClusterIP, NodePort,
/// LoadBalancer on 443) and the `web` Ingress.
fn seed_manifests() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/manifests/seed3-devgains.yaml");
    std::fs::read_to_string(path).unwrap()
}

fn curl(lan: &Lan, args: &[&str]) -> String {
    String::from_utf8_lossy(&lan.curl(args).stdout).into_owned()
}

/// A self-signed certificate for `host` (and its key), as PEM files in `dir`.
fn certificate(dir: &Path, host: &str, tag: &str) -> (String, String) {
    let (cert, key) = (dir.join(format!("{tag}.crt")), dir.join(format!("{tag}.key")));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", &format!("/CN={host}/O={tag}"), "-addext", &format!("subjectAltName=DNS:{host}")])
        .args(["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (cert.to_str().unwrap().to_string(), key.to_str().unwrap().to_string())
}

#[test]
fn the_seed_ingress_routes_from_the_lan_over_http1_http2_and_https() {
    let (fd, lan) = node_on_a_lan(91, &[]);
    fd.apply(&backend("api", 1));
    fd.apply(&backend("frontend", 1));
    fd.apply(&seed_manifests());
    wait_ready(&fd, "api", 1);
    wait_ready(&fd, "frontend", 1);

    // The default class was given by the API server; the status shows the node's address.
    assert_eq!(fd.jsonpath(&["ingressclass", "frontdoor"], "{.spec.controller}"), "frontdoor.dev/ingress");
    let addressed = wait_until(Duration::from_secs(20), || {
        fd.jsonpath(&["ingress", "web"], "{.status.loadBalancer.ingress[0].ip}") == lan.node_address
    });
    assert!(addressed, "{}", fd.kubectl_ok(KUBECTL, &["get", "ingress", "web", "-o", "yaml"]));
    let row = fd.kubectl_ok(KUBECTL, &["get", "ingress", "web", "--no-headers"]);
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns[..5], ["web", "frontdoor", "app.example.com", lan.node_address.as_str(), "80"], "{row}");

    // Host and path routing, from the LAN.
    let host = "Host: app.example.com";
    let base = format!("http://{}", lan.node_address);
    let routed = wait_until(Duration::from_secs(10), || {
        curl(&lan, &["-H", host, &format!("{base}/api/users")]).starts_with("api ")
    });
    assert!(routed, "{}", curl(&lan, &["-i", "-H", host, &format!("{base}/api/users")]));
    let api = curl(&lan, &["-H", host, &format!("{base}/api/users?x=1")]);
    let fields: Vec<&str> = api.split_whitespace().collect();
    assert_eq!(fields[0], "api");
    assert_eq!(fields[2], "/api/users?x=1", "the path goes to the backend unchanged");
    assert_eq!(fields[3], lan.client_address, "X-Forwarded-For is the LAN client");
    assert_eq!(fields[4], "http");
    assert!(curl(&lan, &["-H", host, &format!("{base}/apix")]).starts_with("frontend "));
    assert!(curl(&lan, &["-H", host, &format!("{base}/")]).starts_with("frontend "));
    let status = |args: &[&str]| curl(&lan, &[&["-o", "/dev/null", "-w", "%{http_code}"][..], args].concat());
    assert_eq!(status(&["-H", "Host: other.example.com", &format!("{base}/api")]), "404");

    // HTTP/2 with prior knowledge (h2c).
    let h2 = curl(&lan, &["--http2-prior-knowledge", "-H", host, "-w", " %{http_version}", &format!("{base}/api/h2")]);
    assert!(h2.starts_with("api ") && h2.ends_with(" 2"), "{h2}");

    // HTTPS with a Secret's certificate, chosen by SNI; then rotated without a restart.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path(), "app.example.com", "first");
    fd.kubectl_ok(KUBECTL, &["create", "secret", "tls", "app-tls", "--cert", &cert, "--key", &key]);
    fd.kubectl_ok(
        KUBECTL,
        &[
            "patch",
            "ingress",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"tls":[{"hosts":["app.example.com"],"secretName":"app-tls"}]}}"#,
        ],
    );
    let resolve = format!("app.example.com:443:{}", lan.node_address);
    let https = |ca: &str| curl(&lan, &["--resolve", &resolve, "--cacert", ca, "https://app.example.com/api/tls"]);
    let served = wait_until(Duration::from_secs(10), || https(&cert).starts_with("api "));
    assert!(
        served,
        "{}",
        String::from_utf8_lossy(
            &lan.command("curl")
                .args(["-v", "--resolve", &resolve, "--cacert", &cert, "https://app.example.com/api/tls"])
                .output()
                .unwrap()
                .stderr
        )
    );
    let fields: Vec<String> = https(&cert).split_whitespace().map(String::from).collect();
    assert_eq!(fields[4], "https", "X-Forwarded-Proto");
    let h2s = curl(
        &lan,
        &["--http2", "--resolve", &resolve, "--cacert", &cert, "-w", " %{http_version}", "https://app.example.com/"],
    );
    assert!(h2s.starts_with("frontend ") && h2s.ends_with(" 2"), "{h2s}");
    // The PORTS column now says 80, 443.
    let row = fd.kubectl_ok(KUBECTL, &["get", "ingress", "web", "--no-headers"]);
    assert!(row.contains("80, 443"), "{row}");

    let (rotated, rotated_key) = certificate(dir.path(), "app.example.com", "second");
    let secret = fd.kubectl_ok(
        KUBECTL,
        &[
            "create",
            "secret",
            "tls",
            "app-tls",
            "--cert",
            &rotated,
            "--key",
            &rotated_key,
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    fd.apply(&secret);
    let rotated_served = wait_until(Duration::from_secs(10), || https(&rotated).starts_with("api "));
    assert!(rotated_served, "the rotated certificate is served");
    assert!(https(&cert).is_empty(), "the old certificate is no longer served");

    // `kubectl describe` shows the rules with their backends' endpoints.
    let described = fd.kubectl_ok(KUBECTL, &["describe", "ingress", "web"]);
    let api_ip = fd.jsonpath(&["pods", "-l", "app=api"], "{.items[0].status.podIP}");
    assert!(described.contains(&format!("api:80 ({api_ip}:8080)")), "{described}");
    assert!(described.contains("Sync"), "{described}");

    // Without an address pool, LoadBalancer Services share the node's address as k3s's do; the
    // Ingress holds its ports 80 and 443 there, so the seed's `api-public` (443) waits, saying why.
    let events = fd.kubectl_ok(KUBECTL, &["get", "events", "--field-selector", "involvedObject.name=api-public"]);
    assert!(events.contains("AllocationFailed") && events.contains("443"), "{events}");
    assert_eq!(fd.jsonpath(&["service", "api-public"], "{.status.loadBalancer}"), "{}");
}

#[test]
fn problems_become_events_and_other_classes_are_left_alone() {
    let (fd, lan) = node_on_a_lan(92, &[]);
    fd.apply(&backend("api", 1));
    wait_ready(&fd, "api", 1);
    fd.apply(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: broken}
spec:
  rules:
  - host: broken.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: missing, port: {number: 80}}}}
  tls:
  - {hosts: [broken.example.com], secretName: absent}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: elsewhere}
spec:
  ingressClassName: other
  rules:
  - host: elsewhere.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
",
    );
    let events = || fd.kubectl_ok(KUBECTL, &["get", "events", "--field-selector", "involvedObject.name=broken"]);
    let reported = wait_until(Duration::from_secs(10), || {
        let e = events();
        e.contains("ServiceNotFound") && e.contains("SecretNotFound")
    });
    assert!(reported, "{}", events());
    let base = format!("http://{}/", lan.node_address);
    let code =
        |host: &str| curl(&lan, &["-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("Host: {host}"), &base]);
    assert_eq!(code("broken.example.com"), "503");
    // The other class's Ingress is not served and its status is not ours to write.
    assert_eq!(code("elsewhere.example.com"), "404");
    assert_eq!(fd.jsonpath(&["ingress", "elsewhere"], "{.status.loadBalancer.ingress}"), "");
    // `kubectl create ingress`, as the README shows it: no class given, the default one taken.
    fd.kubectl_ok(KUBECTL, &["create", "ingress", "simple", "--rule=simple.example.com/*=api:80"]);
    assert_eq!(fd.jsonpath(&["ingress", "simple"], "{.spec.ingressClassName}"), "frontdoor");
    let served = wait_until(Duration::from_secs(10), || code("simple.example.com") == "200");
    assert!(served, "{}", code("simple.example.com"));
    // The broken one is served (503 above) and shows our address.
    assert_eq!(fd.jsonpath(&["ingress", "broken"], "{.status.loadBalancer.ingress[0].ip}"), lan.node_address);
}

/// Load from the LAN: four keep-alive clients, each a request every 20 ms (200 requests/s in
/// all), until stdin closes; then one JSON line: responses by status, and errors by kind.
const LOAD: &str = r#"import http.client, json, sys, threading, time
host, address = sys.argv[1], sys.argv[2]
stop = threading.Event()
lock = threading.Lock()
results = {"statuses": {}, "errors": {}}
def count(kind, key):
    with lock:
        results[kind][key] = results[kind].get(key, 0) + 1
def client():
    conn = None
    next_at = time.monotonic()
    while not stop.is_set():
        next_at += 0.02
        try:
            if conn is None:
                conn = http.client.HTTPConnection(address, 80, timeout=5)
            conn.request("GET", "/api/load", headers={"Host": host})
            response = conn.getresponse()
            response.read()
            count("statuses", str(response.status))
        except Exception as error:
            count("errors", type(error).__name__)
            conn = None
        time.sleep(max(0, next_at - time.monotonic()))
threads = [threading.Thread(target=client) for _ in range(4)]
for t in threads: t.start()
print("started", flush=True)
sys.stdin.read()
stop.set()
for t in threads: t.join()
print(json.dumps(results), flush=True)
"#;

#[test]
fn a_rolling_update_under_load_loses_no_request() {
    use std::io::{BufRead, BufReader, Write};
    let (fd, lan) = node_on_a_lan(93, &[]);
    fd.apply(&backend("api", 2));
    fd.apply(&backend("frontend", 1));
    fd.apply(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: app.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
",
    );
    wait_ready(&fd, "api", 2);
    let base = format!("http://{}/api/", lan.node_address);
    let routed =
        wait_until(Duration::from_secs(10), || curl(&lan, &["-H", "Host: app.example.com", &base]).starts_with("api "));
    assert!(routed);
    let before = fd.jsonpath(&["pods", "-l", "app=api"], "{.items[*].metadata.name}");

    let mut load = lan
        .command("python3")
        .args(["-c", LOAD, "app.example.com", &lan.node_address])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(load.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "started");
    // One pod at a time, each counted available only after 2 s: the update lasts long enough
    // to carry real load.
    let strategy = r#"{"spec":{"minReadySeconds":2,"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}"#;
    fd.kubectl_ok(KUBECTL, &["patch", "deployment", "api", "--type", "merge", "-p", strategy]);
    fd.kubectl_ok(KUBECTL, &["rollout", "restart", "deployment/api"]);
    fd.kubectl_ok(KUBECTL, &["rollout", "status", "deployment/api", "--timeout=90s"]);
    // The new pods serve, and the old ones are gone.
    let replaced = wait_until(Duration::from_secs(30), || {
        let now = fd.jsonpath(&["pods", "-l", "app=api"], "{.items[*].metadata.name}");
        now.split_whitespace().count() == 2 && now.split_whitespace().all(|pod| !before.contains(pod))
    });
    assert!(replaced);
    let served_by_new = wait_until(Duration::from_secs(10), || {
        let answer = curl(&lan, &["-H", "Host: app.example.com", &base]);
        answer.split_whitespace().nth(1).is_some_and(|pod| !before.contains(pod))
    });
    assert!(served_by_new);
    drop(load.stdin.take().unwrap().flush());
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = load.wait();
    let results: serde_json::Value = serde_json::from_str(&line).unwrap();
    let ok = results["statuses"]["200"].as_u64().unwrap_or(0);
    assert!(ok >= 800, "too little load to mean anything: {results}");
    assert_eq!(results["statuses"].as_object().unwrap().len(), 1, "every response a 200: {results}");
    assert!(results["errors"].as_object().unwrap().is_empty(), "no request failed: {results}");
}

/// `--ingress-http-port 0 --ingress-https-port 0`: no Ingress controller at all. No IngressClass
/// is made, nothing listens on the node's 80, and the node's address port 80 is free for a
/// LoadBalancer Service (which the controller's reservation would otherwise refuse), served
/// from the LAN through the data plane.
#[test]
fn without_ingress_ports_there_is_no_controller_and_port_80_is_free() {
    let (fd, lan) = node_on_a_lan(93, &["--ingress-http-port", "0", "--ingress-https-port", "0"]);
    fd.apply(&backend("api", 1));
    fd.apply(
        "apiVersion: v1
kind: Service
metadata: {name: api-lb}
spec:
  type: LoadBalancer
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
",
    );
    wait_ready(&fd, "api", 1);
    let node_ip = lan.node_address.clone();
    let assigned = wait_until(Duration::from_secs(20), || {
        fd.jsonpath(&["service", "api-lb"], "{.status.loadBalancer.ingress[0].ip}") == node_ip
    });
    assert!(assigned, "{}", fd.kubectl_ok(KUBECTL, &["describe", "service", "api-lb"]));
    let served = wait_until(Duration::from_secs(20), || {
        curl(&lan, &["-s", "--max-time", "2", &format!("http://{node_ip}/lb")]).starts_with("api ")
    });
    assert!(served, "the LoadBalancer on the node's port 80 does not answer from the LAN");
    // No Ingress controller exists: no class was made, so admission gives a new Ingress none
    // (admission is part of the create: the object read back is what it decided).
    let classes = fd.kubectl_ok(KUBECTL, &["get", "ingressclass", "-o", "name"]);
    assert_eq!(classes.trim(), "", "{classes}");
    fd.apply(&seed_manifests().split("\n---").filter(|doc| doc.contains("kind: Ingress")).collect::<String>());
    let class = fd.jsonpath(&["ingress", "web"], "{.spec.ingressClassName}");
    assert_eq!(class, "", "an Ingress was given a class with no controller running");
}
