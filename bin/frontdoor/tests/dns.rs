//! Cluster DNS through the real path: `dig` from the node and a pod's own resolver (`getent`,
//! `curl http://api/`) through the kube-dns Service's address, which the data plane DNATs to the
//! node's server. Each node runs in a network namespace made for its test; nothing is forwarded
//! to the machine's resolver (the namespace has no route out).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use frontdoor_testkit::{wait_until, Frontdoor};

const KUBECTL: &str = "1.33";

fn dig(fd: &Frontdoor, args: &[&str]) -> String {
    let out =
        fd.command("dig").args(["@10.96.0.10", "+time=2", "+tries=1"]).args(args).output().expect("dig (dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(fd: &Frontdoor, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let expression = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &expression]);
    String::from_utf8_lossy(&fd.kubectl(KUBECTL, &args).stdout).into_owned()
}

#[test]
fn services_resolve_from_the_node_and_from_pods() {
    let fd = Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1"]);
    let script = serde_json::to_string(&frontdoor_testkit::whoami_server(8080, 8080)).unwrap();
    let manifest = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers:
      - name: serve
        image: python:3
        command: [python3, -c, {script}]
        readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: api}}
spec:
  selector: {{app: api}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
"
    );
    let out = fd.kubectl_with_stdin(KUBECTL, &["apply", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The kube-dns Service, as on every cluster.
    let kube_dns = wait_until(Duration::from_secs(20), || {
        get(&fd, &["service", "-n", "kube-system", "kube-dns"], "{.spec.clusterIP}") == "10.96.0.10"
    });
    assert!(kube_dns, "no kube-dns Service at 10.96.0.10");
    let cluster_ip = get(&fd, &["service", "api"], "{.spec.clusterIP}");
    let resolved = wait_until(Duration::from_secs(20), || {
        dig(&fd, &["+short", "api.default.svc.cluster.local"]).trim() == cluster_ip
    });
    assert!(resolved, "{}", dig(&fd, &["api.default.svc.cluster.local"]));
    // SRV for the named port, a name that does not exist, and an existing parent.
    let srv = dig(&fd, &["+short", "SRV", "_http._tcp.api.default.svc.cluster.local"]);
    assert!(srv.contains(" 80 api.default.svc.cluster.local."), "{srv}");
    assert!(dig(&fd, &["nope.default.svc.cluster.local"]).contains("status: NXDOMAIN"));
    let parent = dig(&fd, &["default.svc.cluster.local"]);
    assert!(parent.contains("status: NOERROR") && parent.contains("SOA"), "{parent}");
    // Over TCP too.
    assert_eq!(dig(&fd, &["+tcp", "+short", "api.default.svc.cluster.local"]).trim(), cluster_ip);

    // From a pod, through its resolv.conf (search path, ndots:5): the short name.
    let ready =
        wait_until(Duration::from_secs(30), || get(&fd, &["deployment", "api"], "{.status.readyReplicas}") == "1");
    assert!(ready);
    let pod = get(&fd, &["pods", "-l", "app=api"], "{.items[0].metadata.name}");
    let hosts = fd.kubectl_ok(KUBECTL, &["exec", &pod, "--", "getent", "hosts", "api"]);
    assert!(hosts.starts_with(&format!("{cluster_ip} ")), "{hosts}");
    let answer = fd.kubectl_ok(KUBECTL, &["exec", &pod, "--", "curl", "-s", "--max-time", "5", "http://api/"]);
    assert!(answer.starts_with(&pod), "{answer}");
    let full = "http://api.default.svc.cluster.local/";
    let answer = fd.kubectl_ok(KUBECTL, &["exec", &pod, "--", "curl", "-s", "--max-time", "5", full]);
    assert!(answer.starts_with(&pod), "{answer}");

    // CoreDNS's metrics (through the kube-dns Service's metrics port), health and readiness.
    let fetch = |url: &str| {
        let out = fd.command("curl").args(["-s", "--max-time", "5", url]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let metrics = fetch("http://10.96.0.10:9153/metrics");
    for line in [
        "coredns_dns_requests_total{server=\"dns://10.244.0.1:53\",zone=\"cluster.local.\",proto=\"udp\",family=\"1\",type=\"A\"}",
        "coredns_dns_responses_total{server=\"dns://10.244.0.1:53\",zone=\"cluster.local.\",rcode=\"NXDOMAIN\",plugin=\"kubernetes\"}",
        "coredns_dns_request_duration_seconds_bucket{",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert_eq!(fetch("http://127.0.0.1:10055/health"), "OK");
    assert_eq!(fetch("http://127.0.0.1:10055/ready"), "OK");

    // A new Service resolves at once.
    fd.kubectl_ok(KUBECTL, &["create", "service", "clusterip", "fresh", "--tcp=80:8080"]);
    let created = Instant::now();
    let fresh = get(&fd, &["service", "fresh"], "{.spec.clusterIP}");
    assert!(
        wait_until(Duration::from_secs(5), || dig(&fd, &["+short", "fresh.default.svc.cluster.local"]).trim() == fresh)
    );
    assert!(created.elapsed() < Duration::from_secs(1), "resolved after {:?}", created.elapsed());
}

/// An upstream of the test's own, inside the node's namespace: answers every A question with
/// 192.0.2.7 (TTL 60), so forwarding can be seen without touching the machine's resolver.
const UPSTREAM: &str = r#"import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5353))
while True:
    query, peer = s.recvfrom(4096)
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    question = query[12:end + 5]
    header = query[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00"
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7])
    s.sendto(header + question + answer, peer)
"#;

#[test]
fn names_outside_the_cluster_are_forwarded_to_the_upstream() {
    let fd = Frontdoor::start_node(
        env!("CARGO_BIN_EXE_frontdoor").as_ref(),
        &["--node-name", "n1", "--dns-upstream", "127.0.0.1:5353"],
    );
    let mut upstream = fd.command("python3").args(["-c", UPSTREAM]).spawn().unwrap();
    let forwarded =
        wait_until(Duration::from_secs(20), || dig(&fd, &["+short", "www.example.test"]).trim() == "192.0.2.7");
    let _ = upstream.kill();
    let _ = upstream.wait();
    assert!(forwarded, "{}", dig(&fd, &["www.example.test"]));
}
