//! `kubectl port-forward`, as the seeds use it to split a Service problem from a pod problem:
//! to a pod, and to a Service (kubectl picks a pod behind it), with the real kubectl of each
//! supported version (1.27: SPDY; 1.32, 1.33: SPDY tunnelled in WebSocket, and plain SPDY when
//! told to), real pods in the test's network namespace, and real clients. The pod
//! listens on its loopback only, so nothing but a connection made inside its network namespace
//! (as upstream's) reaches it.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor, KUBECTL_VERSIONS};

/// A pod serving HTTP on 127.0.0.1:8080, and one that answers each connection with the size
/// and SHA-256 of everything it read before the client's end of stream.
const PODS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: python:3
    command: [python3, -m, http.server, '8080', --bind, 127.0.0.1, --directory, DIRECTORY]
    ports:
    - containerPort: 8080
      name: http
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
---
apiVersion: v1
kind: Pod
metadata:
  name: digest
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: digest
    image: python:3
    command:
    - python3
    - -c
    - |
      import hashlib, socket
      server = socket.create_server(('127.0.0.1', 9000))
      while True:
          connection, _ = server.accept()
          digest, size = hashlib.sha256(), 0
          while chunk := connection.recv(65536):
              digest.update(chunk)
              size += len(chunk)
          connection.sendall(f'{size} {digest.hexdigest()}'.encode())
          connection.close()
";

/// A running `kubectl port-forward`, stopped (by its PID) when dropped.
struct PortForward {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

impl PortForward {
    /// Starts kubectl `version` forwarding `local:remote` to `target` and waits until it listens.
    fn start(fd: &Frontdoor, version: &str, target: &str, ports: &str) -> PortForward {
        PortForward::start_with(fd, version, &[target, ports], &[])
    }

    /// Likewise with more arguments (target and ports first) and environment variables.
    fn start_with(fd: &Frontdoor, version: &str, args: &[&str], env: &[(&str, &str)]) -> PortForward {
        let (target, ports) = (args[0], args[1]);
        let mut child = fd
            .kubectl_command(version, &[&["port-forward"], args].concat())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl port-forward starts");
        let stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("kubectl prints where it listens");
        let local = ports.split(':').next().unwrap_or_default();
        if !line.starts_with(&format!("Forwarding from 127.0.0.1:{local} ->")) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kubectl {version} port-forward {target} {ports}: {line:?}; stderr: {}",
                stderr.join().unwrap_or_default()
            );
        }
        // The rest of its output ("Handling connection for …") is not needed.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        PortForward { child, stderr }
    }

    /// Stops kubectl and returns what it wrote to stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.join().unwrap_or_default()
    }
}

/// Runs `curl` in the test's namespace; returns (HTTP code, body).
fn curl(fd: &Frontdoor, url: &str) -> (String, Vec<u8>) {
    let out = fd.command("curl").args(["-s", "--max-time", "10", "-w", "\n%{http_code}", url]).output().expect("curl");
    let mut body = out.stdout;
    let split = body.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[split..]).trim().to_string();
    body.truncate(split);
    (code, body)
}

#[test]
fn kubectl_port_forward_reaches_a_pod_and_a_service_with_every_kubectl() {
    let fd = Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &[]);
    // What the web pod serves: a page, and 3 MiB of varied bytes.
    let served = tempfile::tempdir().expect("served dir");
    std::fs::write(served.path().join("index.html"), "hello from the pod\n").unwrap();
    let big: Vec<u8> = (0..3u32 * 1024 * 1024).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(served.path().join("big"), &big).unwrap();
    let manifest = PODS.replace("DIRECTORY", served.path().to_str().unwrap());
    let out = fd.kubectl_with_stdin("1.33", &["apply", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let running = wait_until(Duration::from_secs(30), || {
        fd.kubectl_ok("1.33", &["get", "pods", "-o", "jsonpath={.items[*].status.phase}"]) == "Running Running"
    });
    assert!(running, "{}", fd.kubectl_ok("1.33", &["describe", "pods"]));
    let pod_ip = fd.kubectl_ok("1.33", &["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    let (code, _) = curl(&fd, &format!("http://{pod_ip}:8080/"));
    assert_eq!(code, "000", "the pod listens on its loopback only");

    for (i, version) in KUBECTL_VERSIONS.iter().enumerate() {
        let local = 18080 + 10 * i as u16;
        // To the pod, as the seeds' "bypassing the Service entirely".
        let forward = PortForward::start(&fd, version, "pod/web", &format!("{local}:8080"));
        for _ in 0..2 {
            let (code, body) = curl(&fd, &format!("http://127.0.0.1:{local}/index.html"));
            assert_eq!((code.as_str(), body.as_slice()), ("200", &b"hello from the pod\n"[..]), "kubectl {version}");
        }
        let (code, body) = curl(&fd, &format!("http://127.0.0.1:{local}/big"));
        assert_eq!(code, "200", "kubectl {version}");
        assert!(body == big, "kubectl {version}: {} bytes back, not the {} served", body.len(), big.len());
        let stderr = forward.stop();
        assert!(!stderr.contains("error"), "kubectl {version}: {stderr}");

        // To the Service: kubectl picks a pod behind it and resolves targetPort `http`. kubectl
        // 1.31+ tunnels SPDY in WebSocket, and says (at -v=4) when it has to fall back.
        let ports = format!("{}:80", local + 1);
        let forward = PortForward::start_with(&fd, version, &["svc/web", &ports, "-v=4"], &[]);
        let (code, body) = curl(&fd, &format!("http://127.0.0.1:{}/index.html", local + 1));
        assert_eq!((code.as_str(), body.as_slice()), ("200", &b"hello from the pod\n"[..]), "kubectl {version}");
        let stderr = forward.stop();
        assert!(!stderr.contains("fallback to secondary dialer"), "kubectl {version}: {stderr}");

        // Both directions and a half close: 5 MiB up, the pod's digest of it back.
        let forward = PortForward::start(&fd, version, "pod/digest", &format!("{}:9000", local + 2));
        let script = "import hashlib, socket, sys\n\
            data = bytes((i * 7919) % 251 for i in range(5 * 1024 * 1024))\n\
            s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n\
            s.sendall(data)\n\
            s.shutdown(socket.SHUT_WR)\n\
            reply = b''\n\
            while chunk := s.recv(65536):\n    reply += chunk\n\
            expected = f'{len(data)} {hashlib.sha256(data).hexdigest()}'\n\
            print('ok' if reply.decode() == expected else f'got {reply!r}, expected {expected}')\n";
        let out = fd.command("python3").args(["-c", script, &(local + 2).to_string()]).output().expect("python3");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ok",
            "kubectl {version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        forward.stop();

        // A port nothing listens on: the client's connection closes, kubectl says why.
        let forward = PortForward::start(&fd, version, "pod/web", &format!("{}:9999", local + 3));
        let (code, _) = curl(&fd, &format!("http://127.0.0.1:{}/", local + 3));
        assert_eq!(code, "000", "kubectl {version}");
        let stderr = forward.stop();
        assert!(
            stderr.contains("error forwarding port 9999 to pod web")
                && stderr.contains("failed to connect to localhost:9999 inside the pod's network namespace"),
            "kubectl {version}: {stderr}"
        );
    }

    // kubectl 1.33 with WebSocket tunnelling turned off speaks plain SPDY.
    let forward = PortForward::start_with(
        &fd,
        "1.33",
        &["pod/web", "18100:8080"],
        &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")],
    );
    let (code, body) = curl(&fd, "http://127.0.0.1:18100/big");
    assert!(code == "200" && body == big, "{code}: {} bytes", body.len());
    forward.stop();

    // Bad requests get upstream's answers.
    let out = fd.kubectl("1.33", &["port-forward", "pod/nothing", "18999:80"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pods \"nothing\" not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = fd.curl("POST", "/api/v1/namespaces/default/pods/web/portforward", "application/json", None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Upgrade request required"), "{body}");
}
