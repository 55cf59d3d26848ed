//! `pods/proxy`, `services/proxy` and `nodes/proxy` through the real binary with the real kubectl
//! (`get --raw`, `proxy`) and curl, inside a network namespace made for each test; and the
//! `kubernetes` Service's endpoints: the API server at the node's bridge address, with a
//! certificate for the names pods use.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor};
use serde_json::Value;

fn start() -> Frontdoor {
    Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &[])
}

fn apply(fd: &Frontdoor, manifest: &str) {
    let out = fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn jsonpath(fd: &Frontdoor, what: &[&str], path: &str) -> String {
    let expression = format!("jsonpath={path}");
    let args: Vec<&str> = [&["get"], what, &["-o", &expression]].concat();
    String::from_utf8_lossy(&fd.kubectl("1.32", &args).stdout).into_owned()
}

/// `kubectl get --raw <path>`: Ok(stdout) or Err(stderr).
fn raw(fd: &Frontdoor, path: &str) -> Result<String, String> {
    let out = fd.kubectl("1.32", &["get", "--raw", path]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn echo_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not the echo server's answer ({e}): {text:?}"))
}

/// An HTTP request to the API server with curl (inside the test's namespace): (code, body,
/// where a redirect points).
fn request(fd: &Frontdoor, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    let mut command = fd.command("curl");
    command
        .args(["-sS", "--path-as-is", "--max-time", "20", "-o", "-", "-w", "\n%{http_code} %{redirect_url}"])
        .arg("--cacert")
        .arg(fd.ca_path())
        .args(["-H", &format!("Authorization: Bearer {}", fd.token())]);
    if method == "HEAD" {
        command.arg("--head");
    } else {
        command.args(["-X", method]);
    }
    if let Some(body) = body {
        command.args(["-H", "Content-Type: text/plain", "--data-binary", body]);
    }
    let output = command.arg(format!("https://{}{path}", fd.address)).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", ""));
    let (code, redirect) = tail.split_once(' ').unwrap_or((tail, ""));
    (code.trim().parse().unwrap_or(0), body.to_string(), redirect.trim().to_string())
}

/// An HTTP server that answers every method with what it was asked: method, path (with the
/// query), body and the Authorization header it got; asked to upgrade to `echo`, it sends back
/// whatever it receives.
const ECHO: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: echo
  labels:
    app: echo
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: python:3
    command:
    - python3
    - -c
    - |
      import gzip, http.server, json, sys
      class Echo(http.server.BaseHTTPRequestHandler):
          protocol_version = 'HTTP/1.1'
          def answer(self):
              if self.path == '/moved':
                  self.send_response(302)
                  self.send_header('Location', '/docs/')
                  self.send_header('Content-Length', '0')
                  self.end_headers()
                  return
              if self.path in ('/page', '/page.gz'):
                  host, port = self.connection.getsockname()[:2]
                  out = (f'<html><body><a href="/docs/">docs</a><img src="http://{host}:{port}/logo.png">'
                         '<a href="https://example.com/out">out</a><a href="relative">r</a></body></html>').encode()
                  self.send_response(200)
                  self.send_header('Content-Type', 'text/html; charset=utf-8')
                  if self.path.endswith('.gz'):
                      out = gzip.compress(out)
                      self.send_header('Content-Encoding', 'gzip')
                  self.send_header('Content-Length', str(len(out)))
                  self.end_headers()
                  self.wfile.write(out)
                  return
              if self.headers.get('Upgrade') == 'echo':
                  self.send_response(101)
                  self.send_header('Upgrade', 'echo')
                  self.send_header('Connection', 'Upgrade')
                  self.end_headers()
                  self.wfile.flush()
                  while data := self.connection.recv(65536):
                      self.connection.sendall(data)
                  self.close_connection = True
                  return
              length = int(self.headers.get('Content-Length') or 0)
              body = self.rfile.read(length).decode() if length else ''
              out = json.dumps({'method': self.command, 'path': self.path, 'body': body,
                                'authorization': self.headers.get('Authorization')}).encode()
              self.send_response(200)
              self.send_header('Content-Type', 'application/json')
              self.send_header('Content-Length', str(len(out)))
              self.end_headers()
              if self.command != 'HEAD':
                  self.wfile.write(out)
          do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = answer
          def log_message(self, *args):
              pass
      http.server.ThreadingHTTPServer(('', int(sys.argv[1])), Echo).serve_forever()
    - '8080'
    ports:
    - containerPort: 8080
      name: http
    readinessProbe:
      httpGet:
        port: http
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector:
    app: echo
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: v1
kind: Service
metadata:
  name: idle
spec:
  selector:
    app: nobody
  ports:
  - port: 80
---
apiVersion: v1
kind: Pod
metadata:
  name: gated
spec:
  schedulingGates:
  - name: example.com/wait
  containers:
  - name: app
    image: busybox
    command: [sleep, '3600']
"#;

#[test]
fn services_and_pods_proxy_every_method_with_upstreams_errors() {
    let fd = start();
    apply(&fd, ECHO);
    assert!(
        wait_until(Duration::from_secs(30), || !jsonpath(&fd, &["endpoints", "api"], "{.subsets[0].addresses[0].ip}")
            .is_empty()),
        "{}",
        fd.kubectl_ok("1.32", &["describe", "pod", "echo"])
    );

    // A Service by port number, by port name, with a scheme; kubectl's own checks pass.
    let mut answer = String::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            answer = raw(&fd, "/api/v1/namespaces/default/services/api:80/proxy/").unwrap_or_else(|e| e);
            answer.contains("\"method\"")
        }),
        "{answer}"
    );
    let echo = echo_of(&answer);
    assert_eq!((echo["method"].as_str(), echo["path"].as_str()), (Some("GET"), Some("/")));
    assert_eq!(echo["authorization"], Value::Null, "the client's token stays with the API server");
    let echo = echo_of(&raw(&fd, "/api/v1/namespaces/default/services/api:http/proxy/by/name").unwrap());
    assert_eq!(echo["path"], "/by/name");
    let echo = echo_of(&raw(&fd, "/api/v1/namespaces/default/services/http:api:80/proxy/with/scheme/").unwrap());
    assert_eq!(echo["path"], "/with/scheme/");

    // A pod, with a path and query: its first container port, or the one named.
    let echo = echo_of(&raw(&fd, "/api/v1/namespaces/default/pods/echo/proxy/some/path?x=1&y=two").unwrap());
    assert_eq!(echo["path"], "/some/path?x=1&y=two");
    let echo = echo_of(&raw(&fd, "/api/v1/namespaces/default/pods/http:echo:8080/proxy/").unwrap());
    assert_eq!(echo["path"], "/");

    // Every method upstream relays, with its body, to the pod and through the Service.
    for base in ["/api/v1/namespaces/default/pods/echo/proxy", "/api/v1/namespaces/default/services/api:http/proxy"] {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            let sent = format!("body of {method}");
            let body = (method != "GET").then_some(sent.as_str());
            let path = format!("{base}/some/path/with/{method}?q={method}");
            let (code, text, _) = request(&fd, method, &path, body);
            assert_eq!(code, 200, "{method} {path}: {text}");
            let echo = echo_of(&text);
            assert_eq!(echo["method"], method, "{text}");
            assert_eq!(echo["path"], format!("/some/path/with/{method}?q={method}"), "{text}");
            assert_eq!(echo["body"], if body.is_some() { sent.as_str() } else { "" }, "{text}");
        }
        let (code, text, _) = request(&fd, "HEAD", &format!("{base}/head"), None);
        assert_eq!(code, 200, "HEAD: {text}");
        // Path-less: GET and HEAD are redirected to the path with a slash, the others relayed.
        for method in ["GET", "HEAD"] {
            let (code, _, location) = request(&fd, method, &format!("{base}?method={method}"), None);
            assert_eq!(code, 301, "{method} {base}");
            assert!(location.ends_with(&format!("{base}/?method={method}")), "{location}");
        }
        let (code, text, _) = request(&fd, "DELETE", &format!("{base}?method=DELETE"), None);
        assert_eq!((code, echo_of(&text)["path"].as_str()), (200, Some("/?method=DELETE")), "{text}");
    }

    // An upgraded connection is relayed both ways.
    let client = r#"
import socket, ssl, sys
host, port, token, ca, path = sys.argv[1:6]
context = ssl.create_default_context(cafile=ca)
connection = context.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname=host)
connection.sendall(f'GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n'
                   'Connection: Upgrade\r\nUpgrade: echo\r\n\r\n'.encode())
head = b''
while not head.endswith(b'\r\n\r\n'):
    head += connection.recv(1) or sys.exit('closed: ' + head.decode())
connection.sendall(b'ping through the proxy')
echoed = b''
while len(echoed) < 22:
    echoed += connection.recv(100) or sys.exit('closed')
print(head.split(b'\r\n')[0].decode(), echoed.decode())
"#;
    let (host, port) = fd.address.rsplit_once(':').unwrap();
    let out = fd
        .command("python3")
        .args(["-c", client, host, port, &fd.token()])
        .arg(fd.ca_path())
        .arg("/api/v1/namespaces/default/services/api:http/proxy/upgrade")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with("HTTP/1.1 101") && said.trim_end().ends_with("ping through the proxy"),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Upstream's errors.
    let idle = "/api/v1/namespaces/default/services/idle:80/proxy/";
    let mut error = String::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            error = raw(&fd, idle).unwrap_err();
            error.contains("ServiceUnavailable")
        }),
        "{error}"
    );
    assert!(
        error.contains(r#"Error from server (ServiceUnavailable): no endpoints available for service "idle""#),
        "{error}"
    );
    assert_eq!(request(&fd, "GET", idle, None).0, 503);
    let cases = [
        ("/api/v1/namespaces/default/pods/nosuch/proxy/", r#"Error from server (NotFound): pods "nosuch" not found"#),
        (
            "/api/v1/namespaces/default/services/nosuch/proxy/",
            r#"Error from server (NotFound): endpoints "nosuch" not found"#,
        ),
        (
            "/api/v1/namespaces/default/services/api:99/proxy/",
            r#"Error from server (ServiceUnavailable): no service port 99 found for service "api""#,
        ),
        (
            "/api/v1/namespaces/default/services/api:nosuch/proxy/",
            r#"Error from server (ServiceUnavailable): no endpoints available for service "api:nosuch""#,
        ),
        (
            "/api/v1/namespaces/default/services/a:b:c:d/proxy/",
            r#"Error from server (BadRequest): invalid service request "a:b:c:d""#,
        ),
        (
            "/api/v1/namespaces/default/pods/echo:abc/proxy/",
            r#"Error from server (BadRequest): invalid pod request "echo:abc""#,
        ),
        ("/api/v1/namespaces/default/pods/gated/proxy/", "Error from server (BadRequest): address not allowed"),
        (
            "/api/v1/namespaces/default/pods/echo:9/proxy/",
            "Error from server (ServiceUnavailable): error trying to reach service: dial tcp 10.244.0.",
        ),
    ];
    for (path, expected) in cases {
        let error = raw(&fd, path).unwrap_err();
        assert!(error.contains(expected), "{path}: {error}");
    }
    assert!(raw(&fd, "/api/v1/namespaces/default/pods/echo:9/proxy/")
        .unwrap_err()
        .contains(":9: connect: connection refused"));
    assert_eq!(request(&fd, "GET", "/api/v1/namespaces/default/pods/nosuch/proxy/", None).0, 404);
    assert_eq!(request(&fd, "GET", "/api/v1/namespaces/default/services/a:b:c:d/proxy/", None).0, 400);

    // Discovery names the subresources.
    let core: Value = serde_json::from_str(&raw(&fd, "/api/v1").unwrap()).unwrap();
    for name in ["pods/proxy", "services/proxy", "nodes/proxy"] {
        let entry = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == name);
        assert_eq!(
            entry.unwrap()["verbs"],
            serde_json::json!(["create", "delete", "get", "patch", "update"]),
            "{name}"
        );
    }

    // `kubectl proxy` on a free loopback port, then curl through it to the Service.
    let mut proxy = fd.kubectl_command("1.32", &["proxy", "--port=0"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(proxy.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let local = line.trim().strip_prefix("Starting to serve on ").map(str::to_string);
    let through = |method: &str| {
        let url = format!(
            "http://{}/api/v1/namespaces/default/services/api:http/proxy/via/kubectl?x=1",
            local.as_deref().unwrap_or("?")
        );
        let out = fd
            .command("curl")
            .args(["-sS", "--max-time", "20", "-X", method, "--data-binary", "through kubectl", &url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (got, posted) = (through("GET"), through("POST"));
    // Links in pages and redirects come back through the proxy, on kubectl proxy's own address.
    let base = "/api/v1/namespaces/default/services/api:http/proxy";
    let curl = |args: &[&str], path: &str| {
        let url = format!("http://{}{base}{path}", local.as_deref().unwrap_or("?"));
        let out = fd.command("curl").args(["-sS", "--max-time", "20"]).args(args).arg(url).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let pages = [curl(&[], "/page"), curl(&["--compressed"], "/page.gz")];
    let moved = curl(&["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"], "/moved");
    let _ = proxy.kill();
    let _ = proxy.wait();
    for page in &pages {
        for link in [
            format!("href=\"{base}/docs/\""),
            format!("src=\"{base}/logo.png\""),
            "href=\"https://example.com/out\"".to_string(),
            "href=\"relative\"".to_string(),
        ] {
            assert!(page.contains(&link), "{link} not in {page}");
        }
    }
    assert_eq!(moved, format!("302 http://{}{base}/docs/", local.as_deref().unwrap_or("?")));
    assert!(local.as_deref().is_some_and(|l| l.starts_with("127.0.0.1:")), "{line:?}");
    assert_eq!(echo_of(&got)["path"], "/via/kubectl?x=1", "{got}");
    let posted = echo_of(&posted);
    assert_eq!((posted["method"].as_str(), posted["body"].as_str()), (Some("POST"), Some("through kubectl")));
}

#[test]
fn nodes_proxy_answers_with_the_kubelets_logs_and_health() {
    let fd = start();
    let node = fd.kubectl_ok("1.32", &["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    assert!(!node.is_empty());

    // `/logs/`: the node's /var/log, listed as the kubelet's file server lists it.
    let mut expected = Vec::new();
    let mut smallest: Option<(u64, std::path::PathBuf)> = None;
    for entry in std::fs::read_dir("/var/log").unwrap().flatten() {
        let kind = entry.file_type().unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        expected.push(if kind.is_dir() { format!("{name}/") } else { name });
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if kind.is_file() && size > 0 && size < 1 << 20 && smallest.as_ref().is_none_or(|(s, _)| size < *s) {
            smallest = Some((size, entry.path()));
        }
    }
    for form in [format!("/api/v1/nodes/{node}/proxy/logs/"), format!("/api/v1/nodes/{node}:10250/proxy/logs/")] {
        let listing = raw(&fd, &form).unwrap();
        assert!(listing.starts_with("<!doctype html>\n") && listing.contains("<pre>\n"), "{form}: {listing}");
        for name in &expected {
            assert!(listing.contains(&format!(">{name}</a>\n")), "{form} misses {name}: {listing}");
        }
    }
    if let Some((_, path)) = smallest {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let out = fd.kubectl("1.32", &["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/logs/{name}")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, std::fs::read(&path).unwrap(), "{name}");
    }
    assert_eq!(raw(&fd, &format!("/api/v1/nodes/{node}/proxy/healthz")).unwrap(), "ok");

    // Nothing outside the log directory, however the path climbs.
    for climbing in ["logs/../../../etc/passwd", "logs/%2e%2e/%2e%2e/etc/passwd", "logs/..%2f..%2fetc/passwd"] {
        let (code, body, _) = request(&fd, "GET", &format!("/api/v1/nodes/{node}/proxy/{climbing}"), None);
        assert!(code == 400 || code == 404, "{climbing}: {code} {body}");
        assert!(!body.contains("root:"), "{climbing}: {body}");
    }
    let error = raw(&fd, "/api/v1/nodes/nosuch/proxy/logs/").unwrap_err();
    assert!(error.contains(r#"Error from server (NotFound): nodes "nosuch" not found"#), "{error}");
}

#[test]
fn the_kubernetes_service_points_at_the_api_server_on_the_bridge() {
    let mut fd = start();
    let port: u16 = fd.address.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(jsonpath(&fd, &["service", "kubernetes"], "{.spec.clusterIP}"), "10.96.0.1");

    let endpoints: Value =
        serde_json::from_str(&fd.kubectl_ok("1.32", &["get", "endpoints", "kubernetes", "-o", "json"])).unwrap();
    assert_eq!(
        endpoints["subsets"],
        serde_json::json!([{"addresses": [{"ip": "10.244.0.1"}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]),
        "{endpoints}"
    );
    assert_eq!(endpoints["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"], "true");
    let slices: Value = serde_json::from_str(
        &fd.kubectl_ok("1.32", &["get", "endpointslices", "-l", "kubernetes.io/service-name=kubernetes", "-o", "json"]),
    )
    .unwrap();
    let items = slices["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{slices}");
    assert_eq!(items[0]["metadata"]["name"], "kubernetes");
    assert_eq!(items[0]["addressType"], "IPv4");
    assert_eq!(
        items[0]["endpoints"],
        serde_json::json!([{"addresses": ["10.244.0.1"], "conditions": {"ready": true}}])
    );
    assert_eq!(items[0]["ports"], serde_json::json!([{"name": "https", "port": port, "protocol": "TCP"}]));

    // The server answers there once the node has made its bridge, with a certificate for every
    // name pods know it by.
    let curl = |fd: &Frontdoor, args: &[&str]| {
        let out = fd
            .command("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(fd.ca_path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let version = format!("https://10.244.0.1:{port}/version");
    let mut answer = (false, String::new());
    assert!(
        wait_until(Duration::from_secs(20), || {
            answer = curl(&fd, &[&version]);
            answer.0
        }),
        "{}",
        answer.1
    );
    assert!(answer.1.contains("\"gitVersion\""), "{}", answer.1);
    for name in ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"] {
        let resolve = format!("{name}:{port}:10.244.0.1");
        let (ok, text) = curl(&fd, &["--resolve", &resolve, &format!("https://{name}:{port}/version")]);
        assert!(ok && text.contains("gitVersion"), "{name}: {text}");
    }
    let connect_to = format!("10.96.0.1:443:10.244.0.1:{port}");
    let (ok, text) = curl(&fd, &["--connect-to", &connect_to, "https://10.96.0.1/version"]);
    assert!(ok, "the ClusterIP is in the certificate: {text}");
    let (ok, text) = curl(
        &fd,
        &[
            "--resolve",
            &format!("elsewhere.example:{port}:10.244.0.1"),
            &format!("https://elsewhere.example:{port}/version"),
        ],
    );
    assert!(!ok, "a name the certificate lacks is refused: {text}");

    // From inside a pod.
    apply(
        &fd,
        "apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: busybox
    command: [sleep, '3600']
",
    );
    assert!(wait_until(Duration::from_secs(20), || jsonpath(&fd, &["pod", "client"], "{.status.phase}") == "Running"));
    let ca = fd.ca_path().to_string_lossy().into_owned();
    let from_pod =
        fd.kubectl_ok("1.32", &["exec", "client", "--", "curl", "-sS", "--max-time", "10", "--cacert", &ca, &version]);
    assert!(from_pod.contains("\"gitVersion\""), "{from_pod}");

    // A restart keeps the CA: the kubeconfig written before still works.
    let ca_before = std::fs::read(fd.ca_path()).unwrap();
    fd.kill_and_restart();
    assert_eq!(std::fs::read(fd.ca_path()).unwrap(), ca_before);
    assert!(fd.kubectl_ok("1.32", &["get", "service", "kubernetes", "-o", "name"]).contains("service/kubernetes"));
    assert!(wait_until(Duration::from_secs(20), || curl(&fd, &[&version]).0));
}
