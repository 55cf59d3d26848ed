//! The `[sig-network] Services` conformance behaviours that need packets to flow, as the e2e
//! tests check them: session affinity switched off and on again, one port number with two
//! protocols, and an ExternalName Service turned into a NodePort one. Each node runs in a
//! network namespace made for its test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor};

const KUBECTL: &str = "1.33";

fn start() -> Frontdoor {
    Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1"])
}

/// A Deployment of `replicas` pods answering on TCP and UDP 8080 with their names.
fn serve_hostnames(fd: &Frontdoor, replicas: u32) {
    let script = serde_json::to_string(&frontdoor_testkit::whoami_server(8080, 8080)).unwrap();
    fd.apply(&format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: hostnames}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: hostnames}}}}
  template:
    metadata: {{labels: {{app: hostnames}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: serve
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        command: [python3, -c, {script}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"
    ));
    let ready = wait_until(Duration::from_secs(40), || {
        fd.jsonpath(&["deployment", "hostnames"], "{.status.readyReplicas}") == replicas.to_string()
    });
    assert!(ready, "{}", fd.kubectl_ok(KUBECTL, &["get", "pods", "-o", "wide"]));
}

/// The pods that answered `count` new connections to `url`.
fn hostnames(fd: &Frontdoor, url: &str, count: usize) -> Vec<String> {
    let mut command = fd.command("curl");
    command.args(["-s", "--max-time", "5"]);
    for _ in 0..count {
        command.arg(url);
    }
    let out = command.output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect()
}

fn distinct(names: &[String]) -> usize {
    names.iter().collect::<BTreeSet<_>>().len()
}

/// One UDP exchange with `host:port` from the node: the pod that answered, or "" after a second.
fn udp_hostname(fd: &Frontdoor, host: &str, port: &str) -> String {
    let client = "import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
try:
    s.sendto(b'hi', (sys.argv[1], int(sys.argv[2]))); print(s.recvfrom(2048)[0].decode().split()[0])
except OSError:
    pass
";
    let out = fd.command("python3").args(["-c", client, host, port]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn session_affinity_can_be_switched_off_and_on_for_cluster_ip_and_node_port() {
    let fd = start();
    serve_hostnames(&fd, 3);
    fd.apply(
        "apiVersion: v1
kind: Service
metadata: {name: affinity}
spec:
  type: NodePort
  selector: {app: hostnames}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
",
    );
    let cluster = format!("http://{}/", fd.jsonpath(&["service", "affinity"], "{.spec.clusterIP}"));
    let node_port =
        format!("http://10.244.0.1:{}/", fd.jsonpath(&["service", "affinity"], "{.spec.ports[0].nodePort}"));
    let pinned = |url: &str| {
        let names = hostnames(&fd, url, 20);
        names.len() == 20 && distinct(&names) == 1
    };
    assert!(wait_until(Duration::from_secs(20), || pinned(&cluster)), "ClientIP affinity does not pin");
    assert!(pinned(&node_port), "ClientIP affinity does not pin on the NodePort");
    fd.kubectl_ok(KUBECTL, &["patch", "service", "affinity", "-p", r#"{"spec":{"sessionAffinity":"None"}}"#]);
    let spread = wait_until(Duration::from_secs(20), || distinct(&hostnames(&fd, &cluster, 60)) > 1);
    assert!(spread, "with affinity off, one pod still answers everything");
    assert!(distinct(&hostnames(&fd, &node_port, 60)) > 1);
    fd.kubectl_ok(KUBECTL, &["patch", "service", "affinity", "-p", r#"{"spec":{"sessionAffinity":"ClientIP"}}"#]);
    assert!(wait_until(Duration::from_secs(20), || pinned(&cluster)), "affinity switched back on does not pin");
}

#[test]
fn one_port_number_serves_tcp_and_udp_and_each_can_be_removed() {
    let fd = start();
    serve_hostnames(&fd, 1);
    let both = "apiVersion: v1
kind: Service
metadata: {name: dual}
spec:
  selector: {app: hostnames}
  ports:
  - {name: tcp, port: 80, targetPort: 8080, protocol: TCP}
  - {name: udp, port: 80, targetPort: 8080, protocol: UDP}
";
    fd.apply(both);
    let ip = fd.jsonpath(&["service", "dual"], "{.spec.clusterIP}");
    let url = format!("http://{ip}/");
    let tcp = || hostnames(&fd, &url, 1).len() == 1;
    let udp = || !udp_hostname(&fd, &ip, "80").is_empty();
    assert!(wait_until(Duration::from_secs(20), || tcp() && udp()), "TCP and UDP on port 80");
    // Updated whole, as the e2e test does (a strategic merge keys ports by number alone, so
    // `apply` would drop both).
    let replace = |manifest: String| {
        let out = fd.kubectl_with_stdin(KUBECTL, &["replace", "-f", "-"], Some(&manifest));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    replace(both.replace("  - {name: udp, port: 80, targetPort: 8080, protocol: UDP}\n", ""));
    assert!(wait_until(Duration::from_secs(20), || tcp() && !udp()), "only TCP should answer");
    replace(both.replace("  - {name: tcp, port: 80, targetPort: 8080, protocol: TCP}\n", ""));
    assert!(wait_until(Duration::from_secs(20), || !tcp() && udp()), "only UDP should answer");
}

#[test]
fn an_external_name_service_turned_node_port_is_served() {
    let fd = start();
    serve_hostnames(&fd, 2);
    fd.apply(
        "apiVersion: v1
kind: Service
metadata: {name: changing}
spec:
  type: ExternalName
  externalName: example.com
",
    );
    assert_eq!(fd.jsonpath(&["service", "changing"], "{.spec.clusterIP}"), "");
    let patch = r#"{"spec":{"type":"NodePort","externalName":null,"selector":{"app":"hostnames"},"ports":[{"port":80,"targetPort":8080,"protocol":"TCP"}]}}"#;
    fd.kubectl_ok(KUBECTL, &["patch", "service", "changing", "-p", patch]);
    let cluster = format!("http://{}/", fd.jsonpath(&["service", "changing"], "{.spec.clusterIP}"));
    let node_port =
        format!("http://10.244.0.1:{}/", fd.jsonpath(&["service", "changing"], "{.spec.ports[0].nodePort}"));
    let served = wait_until(Duration::from_secs(20), || {
        hostnames(&fd, &cluster, 2).len() == 2 && hostnames(&fd, &node_port, 2).len() == 2
    });
    assert!(served, "the ClusterIP and the NodePort do not answer");
    // And back: the NodePort is released and no longer answers.
    fd.kubectl_ok(
        KUBECTL,
        &[
            "patch",
            "service",
            "changing",
            "-p",
            r#"{"spec":{"type":"ExternalName","externalName":"example.com","selector":null,"ports":null}}"#,
        ],
    );
    assert!(wait_until(Duration::from_secs(20), || hostnames(&fd, &node_port, 1).is_empty()));
}
