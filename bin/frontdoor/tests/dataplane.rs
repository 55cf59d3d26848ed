//! Service traffic through the kernel: real packets from the node, from pods and from a second
//! network namespace on a LAN with the node, through the rules the proxy programmed.
//! Every node runs in a network namespace made for its test.
#![allow(clippy::unwrap_used)] // a test stops at the first broken assumption

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use frontdoor_testkit::{wait_until, Frontdoor, Lan};

fn start() -> Frontdoor {
    Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1"])
}

fn deployment(name: &str, replicas: u32) -> String {
    let script = serde_json::to_string(&frontdoor_testkit::whoami_server(8080, 5353)).unwrap();
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
      terminationGracePeriodSeconds: 1
      containers:
      - name: whoami
        image: python:3
        command: [python3, -c, {script}]
        ports: [{{containerPort: 8080, name: http}}]
        readinessProbe: {{httpGet: {{port: 8080}}, periodSeconds: 1}}
"
    )
}

fn wait_ready_endpoints(fd: &Frontdoor, service: &str, count: usize) {
    let selector = format!("kubernetes.io/service-name={service}");
    let ok = wait_until(Duration::from_secs(40), || {
        let ready = fd.jsonpath(
            &["endpointslices", "-l", &selector],
            "{.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}",
        );
        ready.split_whitespace().count() == count
    });
    assert!(
        ok,
        "{service} never had {count} ready endpoints: {}",
        fd.kubectl_ok("1.33", &["get", "pods", "-o", "wide"])
    );
}

fn cluster_ip(fd: &Frontdoor, service: &str) -> String {
    fd.jsonpath(&["service", service], "{.spec.clusterIP}")
}

fn run(mut command: std::process::Command) -> Output {
    command.output().unwrap()
}

/// `count` requests to `url`, each on a new connection (the server closes after each answer),
/// from the node; returns the (pod, client address) answers.
fn requests(fd: &Frontdoor, url: &str, count: usize) -> Vec<(String, String)> {
    let mut command = fd.command("curl");
    command.args(["-s", "--max-time", "10"]);
    for _ in 0..count {
        command.arg(url);
    }
    parse_answers(&run(command))
}

fn parse_answers(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(pod, client)| (pod.to_string(), client.to_string()))
        .collect()
}

fn spread(answers: &[(String, String)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (pod, _) in answers {
        *counts.entry(pod.clone()).or_default() += 1;
    }
    counts
}

/// curl's exit code and total time for one request to `url`.
fn attempt(fd: &Frontdoor, url: &str, max_time: &str) -> (i32, f64) {
    let out = run({
        let mut c = fd.command("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{time_total}", "--max-time", max_time, url]);
        c
    });
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(f64::NAN))
}

#[test]
fn cluster_ip_spreads_hairpins_and_refuses_at_once() {
    let fd = start();
    fd.apply(&deployment("api", 3));
    fd.apply(
        "apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
",
    );
    wait_ready_endpoints(&fd, "api", 3);
    let ip = cluster_ip(&fd, "api");

    // From the node: 300 connections reach all three pods.
    let answers = requests(&fd, &format!("http://{ip}/"), 300);
    assert_eq!(answers.len(), 300, "{answers:?}");
    let counts = spread(&answers);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| *n >= 50), "uneven spread: {counts:?}");

    // From a pod: the other pods see its own address (no masquerade inside the cluster), and a
    // connection that lands on itself (hairpin) works.
    let pods =
        fd.jsonpath(&["pods", "-l", "app=api"], "{range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}");
    let (pod, pod_ip) = pods.lines().next().unwrap().split_once(' ').unwrap();
    let mut args = vec!["exec", pod, "--", "curl", "-s", "--max-time", "10"];
    let url = format!("http://{ip}/");
    args.extend(std::iter::repeat_n(url.as_str(), 60));
    let answers = parse_answers(&fd.kubectl("1.33", &args));
    assert_eq!(answers.len(), 60, "{answers:?}");
    assert!(answers.iter().any(|(to, _)| to == pod), "never reached itself: {answers:?}");
    for (to, client) in &answers {
        if to != pod {
            assert_eq!(client, pod_ip, "{to} saw {client}");
        }
    }

    // A Service with no endpoints, and a port the Service does not have, refuse at once.
    // Refused in under 10 ms (the quickest of three tries: a loaded test machine may delay one).
    let refused = |url: &str| {
        let tries: Vec<(i32, f64)> = (0..3).map(|_| attempt(&fd, url, "5")).collect();
        assert!(tries.iter().all(|(code, _)| *code == 7), "{url}: curl exits {tries:?}");
        tries.iter().map(|(_, seconds)| *seconds).fold(f64::INFINITY, f64::min)
    };
    let seconds = refused(&format!("http://{}/", cluster_ip(&fd, "nobody")));
    assert!(seconds < 0.01, "no endpoints: refused after {seconds} s");
    let seconds = refused(&format!("http://{ip}:81/"));
    assert!(seconds < 0.01, "wrong port: refused after {seconds} s");
    // An address of the range no Service holds is dropped: the connection times out.
    let (code, _) = attempt(&fd, "http://10.96.123.123/", "0.5");
    assert_eq!(code, 28, "unallocated address: curl exit {code}");

    // A new Service answers within a second of its creation.
    fd.kubectl_ok("1.33", &["create", "service", "clusterip", "fresh", "--tcp=80:8080"]);
    let created = Instant::now();
    fd.kubectl_ok("1.33", &["set", "selector", "service", "fresh", "app=api"]);
    let fresh = format!("http://{}/", cluster_ip(&fd, "fresh"));
    let answered = wait_until(Duration::from_secs(5), || attempt(&fd, &fresh, "1").0 == 0);
    let took = created.elapsed();
    assert!(answered && took < Duration::from_secs(1), "the new Service answered after {took:?}");

    // kube-proxy's health and metrics endpoints.
    let fetch = |url: &str| {
        String::from_utf8_lossy(
            &run({
                let mut c = fd.command("curl");
                c.args(["-s", "--max-time", "5", url]);
                c
            })
            .stdout,
        )
        .into_owned()
    };
    let health: serde_json::Value = serde_json::from_str(&fetch("http://127.0.0.1:10256/healthz")).unwrap();
    assert!(health["lastUpdated"].is_string(), "{health}");
    let metrics = fetch("http://127.0.0.1:10249/metrics");
    for name in [
        "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
        "kubeproxy_sync_full_proxy_rules_duration_seconds_count",
        "kubeproxy_sync_partial_proxy_rules_duration_seconds_count",
        "kubeproxy_network_programming_duration_seconds_count",
        "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 0",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    let programmed = metrics
        .lines()
        .find_map(|line| line.strip_prefix("kubeproxy_network_programming_duration_seconds_count "))
        .and_then(|count| count.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(programmed >= 1.0, "no network programming latency recorded:\n{metrics}");
}

#[test]
fn node_ports_from_the_lan_affinity_and_local_policy() {
    let fd = start();
    let lan = Lan::attach(fd.netns().unwrap(), 77);
    fd.apply(&deployment("web", 3));
    fd.apply(
        "apiVersion: v1
kind: Service
metadata: {name: web-cluster}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30007}]
---
apiVersion: v1
kind: Service
metadata: {name: web-local}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30008}]
---
apiVersion: v1
kind: Service
metadata: {name: web-sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-external}
spec:
  selector: {app: web}
  externalIPs: [203.0.113.10]
  ports: [{port: 80, targetPort: 8080}]
",
    );
    wait_ready_endpoints(&fd, "web-cluster", 3);

    // An external IP routed to the node (the LAN's default route) is served.
    let answers = parse_answers(&lan.curl(&["http://203.0.113.10/", "http://203.0.113.10/"]));
    assert_eq!(answers.len(), 2, "{answers:?}");

    // From the LAN: the NodePort answers on the node's address; Cluster policy masquerades,
    // Local policy keeps the client's address.
    let url = format!("http://{}:30007/", lan.node_address);
    let answers = parse_answers(&lan.curl(&[&url, &url, &url, &url, &url, &url]));
    assert_eq!(answers.len(), 6, "{answers:?}");
    assert!(answers.iter().all(|(_, client)| client.starts_with("10.244.0.")), "{answers:?}");
    // Not on 127.0.0.1 (as kube-proxy's nftables mode): nothing listens there.
    assert_eq!(attempt(&fd, "http://127.0.0.1:30007/", "2").0, 7, "a NodePort answered on 127.0.0.1");
    let url = format!("http://{}:30008/", lan.node_address);
    let answers = parse_answers(&lan.curl(&[&url, &url, &url]));
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!(answers.iter().all(|(_, client)| *client == lan.client_address), "{answers:?}");

    // The health-check node port of the Local LoadBalancer Service: kube-proxy's answer.
    let health_port = fd.jsonpath(&["service", "web-local"], "{.spec.healthCheckNodePort}");
    let out = lan.curl(&["-i", &format!("http://{}:{health_port}/", lan.node_address)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body: serde_json::Value = serde_json::from_str(text.rsplit("\r\n\r\n").next().unwrap()).unwrap();
    assert_eq!(body["localEndpoints"], 3, "{text}");
    assert_eq!(body["serviceProxyHealthy"], true, "{text}");
    assert_eq!(body["service"]["name"], "web-local", "{text}");

    // Session affinity pins a client to one pod.
    let sticky = requests(&fd, &format!("http://{}/", cluster_ip(&fd, "web-sticky")), 30);
    assert_eq!(sticky.len(), 30);
    assert_eq!(spread(&sticky).len(), 1, "{sticky:?}");

    // With no endpoints left the health check says so (503), and the Local NodePort drops.
    fd.kubectl_ok("1.33", &["scale", "deployment", "web", "--replicas=0"]);
    let unhealthy = wait_until(Duration::from_secs(30), || {
        let out = lan.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}:{health_port}/", lan.node_address),
        ]);
        String::from_utf8_lossy(&out.stdout) == "503"
    });
    assert!(unhealthy);
    let out = lan.curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("http://{}:30007/", lan.node_address)]);
    assert_eq!(out.status.code(), Some(7), "a NodePort without endpoints is refused");
}

#[test]
fn udp_follows_a_replaced_endpoint() {
    let fd = start();
    fd.apply(&deployment("dns", 1));
    fd.apply(
        "apiVersion: v1
kind: Service
metadata: {name: dns}
spec:
  selector: {app: dns}
  ports: [{port: 53, targetPort: 5353, protocol: UDP}]
",
    );
    wait_ready_endpoints(&fd, "dns", 1);
    let ip = cluster_ip(&fd, "dns");
    // One socket, one request every 100 ms, each answer printed as it comes.
    let client = format!(
        "import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
s.connect(('{ip}', 53))
end = time.time() + 60
while time.time() < end:
    try:
        s.send(b'hi'); print(s.recv(2048).decode(), flush=True)
    except OSError:  # a timeout, or refused while the Service had no endpoint
        pass
    time.sleep(0.1)
"
    );
    let mut child = fd.command("python3").args(["-c", &client]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first = lines.next().unwrap().unwrap();
    let old_pod = first.split_whitespace().next().unwrap().to_string();
    fd.kubectl_ok("1.33", &["delete", "pod", &old_pod, "--wait=false"]);
    let mut followed = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        let pod = line.split_whitespace().next().unwrap_or_default().to_string();
        if pod != old_pod {
            followed = Some(pod);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let new_pod = followed.expect("the client never heard from the replacement pod");
    assert!(new_pod.starts_with("dns-"), "{new_pod}");
}

#[test]
fn load_balancer_addresses_answer_on_the_lan_and_honour_source_ranges() {
    let fd = Frontdoor::start_node(
        env!("CARGO_BIN_EXE_frontdoor").as_ref(),
        &["--node-name", "n1", "--lb-pool", "192.168.78.240/29", "--lb-internal-pool", "10.200.0.0/29"],
    );
    let lan = Lan::attach(fd.netns().unwrap(), 78);
    // A second client address on the LAN, outside the source ranges.
    let outsider = "192.168.78.3";
    let status = std::process::Command::new("ip")
        .args(["-n", &lan.namespace.name, "addr", "add", &format!("{outsider}/24"), "dev", "eth0"])
        .status()
        .unwrap();
    assert!(status.success());
    // The LAN remembers the pool's addresses at a machine that had them before: only a
    // gratuitous ARP from the node corrects that before the entries expire.
    const GONE: &str = "02:00:00:00:00:99";
    for last in 240..248 {
        let address = format!("192.168.78.{last}");
        let args =
            ["-n", &lan.namespace.name, "neigh", "replace", &address, "lladdr", GONE, "dev", "eth0", "nud", "stale"];
        assert!(std::process::Command::new("ip").args(args).status().unwrap().success());
    }
    fd.apply(&deployment("web", 2));
    fd.apply(&format!(
        "apiVersion: v1
kind: Service
metadata: {{name: open}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: guarded}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  loadBalancerSourceRanges: [{}/32]
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: internal
  annotations: {{networking.gke.io/load-balancer-type: Internal}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
",
        lan.client_address
    ));
    wait_ready_endpoints(&fd, "open", 2);
    let external_ip = |name: &str| {
        let mut ip = String::new();
        let assigned = wait_until(Duration::from_secs(20), || {
            ip = fd.jsonpath(&["service", name], "{.status.loadBalancer.ingress[0].ip}");
            !ip.is_empty()
        });
        assert!(assigned, "{name} has no address: {}", fd.kubectl_ok("1.33", &["describe", "service", name]));
        ip
    };
    let (open, guarded, internal) = (external_ip("open"), external_ip("guarded"), external_ip("internal"));
    assert!(open.starts_with("192.168.78.24") && guarded.starts_with("192.168.78.24"), "{open} {guarded}");
    assert!(internal.starts_with("10.200.0."), "{internal}");
    let row = fd.kubectl_ok("1.33", &["get", "service", "open", "--no-headers"]);
    assert!(row.split_whitespace().nth(3) == Some(open.as_str()), "EXTERNAL-IP column: {row}");

    // The node announced the address: the LAN's entry for it now names the node's interface,
    // before the LAN has sent it anything.
    let neighbour = |address: &str| {
        let mut show = std::process::Command::new("ip");
        show.args(["-n", &lan.namespace.name, "neigh", "show", address]);
        String::from_utf8_lossy(&run(show).stdout).into_owned()
    };
    let node_mac = {
        let mut show = std::process::Command::new("ip");
        show.args(["-n", fd.netns().unwrap(), "-o", "link", "show", "lan0"]);
        let line = String::from_utf8_lossy(&run(show).stdout).into_owned();
        line.split_whitespace().skip_while(|w| *w != "link/ether").nth(1).unwrap_or_default().to_string()
    };
    assert!(!node_mac.is_empty());
    let announced = wait_until(Duration::from_secs(10), || neighbour(&open).contains(&node_mac));
    assert!(announced, "the LAN still has {open} at {GONE}, not the node's {node_mac}: {}", neighbour(&open));

    // The LAN reaches the pool address on its own network: the node answers ARP for it.
    let code = |out: Output| (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned());
    let url = format!("http://{open}/");
    let answers = parse_answers(&lan.curl(&[&url, &url]));
    assert_eq!(answers.len(), 2, "{answers:?}");
    let neighbours = neighbour(&open);
    assert!(neighbours.contains("lladdr"), "no ARP answer for {open}: {neighbours}");

    // Source ranges: the client inside is served, the one outside is dropped.
    let guarded_url = format!("http://{guarded}/");
    let inside =
        code(lan.curl(&["--interface", &lan.client_address, "-o", "/dev/null", "-w", "%{http_code}", &guarded_url]));
    assert_eq!(inside, (Some(0), "200".to_string()));
    let outside = lan.curl(&["--interface", outsider, "--max-time", "1", "-o", "/dev/null", &guarded_url]);
    assert_eq!(outside.status.code(), Some(28), "the outsider was not dropped");

    // The internal address serves the node, but nobody answers for it on the LAN.
    assert_eq!(requests(&fd, &format!("http://{internal}/"), 2).len(), 2);
    let on_link = |address: &str| {
        let status = std::process::Command::new("ip")
            .args(["-n", &lan.namespace.name, "route", "replace", &format!("{address}/32"), "dev", "eth0"])
            .status()
            .unwrap();
        assert!(status.success());
    };
    on_link(&internal);
    let out = lan.curl(&["--max-time", "1", &format!("http://{internal}/")]);
    assert_ne!(out.status.code(), Some(0), "the internal address answered on the LAN");

    // A released address stops being answered for.
    fd.kubectl_ok("1.33", &["delete", "service", "open"]);
    let withdrawn = wait_until(Duration::from_secs(10), || {
        let _ = std::process::Command::new("ip").args(["-n", &lan.namespace.name, "neigh", "flush", "all"]).status();
        lan.curl(&["--max-time", "1", &url]).status.code() != Some(0)
    });
    assert!(withdrawn, "{open} still answers after its Service was deleted");
}

/// Where `br_netfilter` is not loaded (or, as here, is off in the node's namespace), pods'
/// bridge ports are isolated and the node routes between them: Service traffic between pods,
/// and a pod reaching itself, still works.
#[test]
fn pod_to_service_without_bridge_netfilter() {
    let fd = Frontdoor::start_node_prepared(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1"], |ns| {
        let setting = "/proc/sys/net/bridge/bridge-nf-call-iptables";
        // Absent: the module is not loaded, which is the case under test anyway.
        let _ = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "sh", "-c", &format!("[ ! -e {setting} ] || echo 0 > {setting}")])
            .status();
    });
    fd.apply(&deployment("api", 2));
    fd.apply(
        "apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
",
    );
    wait_ready_endpoints(&fd, "api", 2);
    let ports = String::from_utf8_lossy(
        &run({
            let mut c = fd.command("bridge");
            c.args(["-d", "link", "show"]);
            c
        })
        .stdout,
    )
    .into_owned();
    assert_eq!(ports.matches("isolated on").count(), 2, "{ports}");
    let ip = cluster_ip(&fd, "api");
    let pods =
        fd.jsonpath(&["pods", "-l", "app=api"], "{range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}");
    let (pod, pod_ip) = pods.lines().next().unwrap().split_once(' ').unwrap();
    let url = format!("http://{ip}/");
    let mut args = vec!["exec", pod, "--", "curl", "-s", "--max-time", "5"];
    args.extend(std::iter::repeat_n(url.as_str(), 30));
    let answers = parse_answers(&fd.kubectl("1.33", &args));
    assert_eq!(answers.len(), 30, "{answers:?}");
    assert_eq!(spread(&answers).len(), 2, "{answers:?}");
    assert!(answers.iter().filter(|(to, _)| to != pod).all(|(_, client)| client == pod_ip), "{answers:?}");
    // And straight to the other pod, through the node.
    let (other, other_ip) = pods.lines().nth(1).unwrap().split_once(' ').unwrap();
    let direct = parse_answers(
        &fd.kubectl("1.33", &["exec", pod, "--", "curl", "-s", "--max-time", "5", &format!("http://{other_ip}:8080/")]),
    );
    assert_eq!(direct, vec![(other.to_string(), pod_ip.to_string())]);
}

/// The API server as every pod finds it: the `kubernetes` Service at 10.96.0.1:443, through the
/// data plane, with a certificate valid for its names.
#[test]
fn pods_reach_the_api_server_through_the_kubernetes_service() {
    let fd = start();
    fd.apply(&deployment("client", 1));
    wait_ready_endpoints(&fd, "kubernetes", 1);
    let ready = wait_until(Duration::from_secs(30), || {
        fd.jsonpath(&["pods", "-l", "app=client"], "{.items[0].status.containerStatuses[0].ready}") == "true"
    });
    assert!(ready);
    let pod = fd.jsonpath(&["pods", "-l", "app=client"], "{.items[0].metadata.name}");
    let ca = fd.ca_path();
    let out = fd.kubectl(
        "1.33",
        &[
            "exec",
            &pod,
            "--",
            "curl",
            "-s",
            "--max-time",
            "5",
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            "kubernetes.default.svc:443:10.96.0.1",
            "https://kubernetes.default.svc/version",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let version: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}"));
    assert_eq!(version["major"], "1", "{text}");
}

/// The seed article's Services, verbatim, in front of an `api` Deployment, on a node whose
/// default route leaves through the LAN (so its InternalIP, and the LoadBalancer's address
/// without a pool, is its LAN address, as on a real machine): each answers where the article
/// says it does. The Ingress controller's HTTPS port is moved off 443, which it would otherwise
/// hold on the node address (see `ingress.rs`: there `api-public` waits for it).
#[test]
fn the_seed_services_answer_from_the_node_a_pod_and_the_lan() {
    let mut lan = None;
    let flags = ["--node-name", "n1", "--ingress-https-port", "8443"];
    let fd = Frontdoor::start_node_prepared(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &flags, |ns| {
        let attached = Lan::attach(ns, 79);
        let status = std::process::Command::new("ip")
            .args(["-n", ns, "route", "add", "default", "via", &attached.client_address])
            .status()
            .unwrap();
        assert!(status.success());
        lan = Some(attached);
    });
    let lan = lan.unwrap();
    let node_ip = fd.jsonpath(&["nodes", "n1"], "{.status.addresses[?(@.type==\"InternalIP\")].address}");
    assert_eq!(node_ip, lan.node_address);
    fd.apply(&deployment("api", 2));
    let manifests =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/manifests/seed3-devgains.yaml");
    let out = fd.kubectl("1.33", &["apply", "-f", manifests.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_ready_endpoints(&fd, "api", 2);
    let mut public = String::new();
    assert!(wait_until(Duration::from_secs(20), || {
        public = fd.jsonpath(&["service", "api-public"], "{.status.loadBalancer.ingress[0].ip}");
        !public.is_empty()
    }));
    assert_eq!(public, lan.node_address, "without a pool the LoadBalancer gets the node's address");
    let row = fd.kubectl_ok("1.33", &["get", "service", "api-public", "--no-headers"]);
    assert!(row.contains(&format!("{public}   443:3")), "{row}");

    // ClusterIP: from the node and from a pod.
    let cluster = format!("http://{}/", cluster_ip(&fd, "api"));
    assert_eq!(requests(&fd, &cluster, 4).len(), 4);
    let pod = fd.jsonpath(&["pods", "-l", "app=api"], "{.items[0].metadata.name}");
    let from_pod = parse_answers(&fd.kubectl("1.33", &["exec", &pod, "--", "curl", "-s", "--max-time", "5", &cluster]));
    assert_eq!(from_pod.len(), 1, "{from_pod:?}");
    // NodePort 30080 and the LoadBalancer's 443, from the LAN.
    let node_port = format!("http://{}:30080/", lan.node_address);
    assert_eq!(parse_answers(&lan.curl(&[&node_port, &node_port])).len(), 2);
    let balanced = format!("http://{public}:443/");
    assert_eq!(parse_answers(&lan.curl(&[&balanced, &balanced])).len(), 2);
}

/// Someone deletes the proxy's table behind its back: the next sync fails (it only sends
/// differences from what it believes is there), and the full sync that follows any failure puts
/// everything back.
#[test]
fn a_failed_sync_is_followed_by_a_full_one() {
    let fd = start();
    fd.apply(&deployment("api", 1));
    fd.apply(
        "apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
",
    );
    wait_ready_endpoints(&fd, "api", 1);
    let old = format!("http://{}/", cluster_ip(&fd, "api"));
    assert_eq!(requests(&fd, &old, 1).len(), 1);
    let deleted = fd.command("nft").args(["delete", "table", "ip", "frontdoor"]).status().unwrap();
    assert!(deleted.success());
    fd.kubectl_ok("1.33", &["create", "service", "clusterip", "later", "--tcp=80:8080"]);
    fd.kubectl_ok("1.33", &["set", "selector", "service", "later", "app=api"]);
    let new = format!("http://{}/", cluster_ip(&fd, "later"));
    let recovered =
        wait_until(Duration::from_secs(10), || attempt(&fd, &new, "1").0 == 0 && attempt(&fd, &old, "1").0 == 0);
    assert!(recovered, "the rules never came back");
    let metrics = String::from_utf8_lossy(
        &run({
            let mut c = fd.command("curl");
            c.args(["-s", "http://127.0.0.1:10249/metrics"]);
            c
        })
        .stdout,
    )
    .into_owned();
    let failures = metrics
        .lines()
        .find_map(|line| line.strip_prefix("kubeproxy_sync_proxy_rules_nftables_sync_failures_total "))
        .and_then(|n| n.trim().parse::<f64>().ok());
    assert!(failures.is_some_and(|n| n >= 1.0), "{metrics}");
}

/// `externalTrafficPolicy: Local` with no endpoint on this node: traffic from the LAN is
/// dropped, but a pod or the node itself reaching the Service's external address goes where the
/// cluster IP's traffic goes (kube-proxy's short-circuit), and the health check says 503.
#[test]
fn local_external_policy_short_circuits_traffic_from_inside_the_cluster() {
    let fd = Frontdoor::start_node(
        env!("CARGO_BIN_EXE_frontdoor").as_ref(),
        &["--node-name", "n1", "--lb-pool", "192.168.80.240/30"],
    );
    let lan = Lan::attach(fd.netns().unwrap(), 80);
    fd.apply(&deployment("web", 1));
    fd.apply(&deployment("client", 1));
    let ready = wait_until(Duration::from_secs(30), || {
        ["web", "client"].iter().all(|app| {
            let selector = format!("app={app}");
            fd.jsonpath(&["pods", "-l", &selector], "{.items[0].status.containerStatuses[0].ready}") == "true"
        })
    });
    assert!(ready);
    // The client is another pod: the endpoint, said to be elsewhere, is not in the hairpin set.
    let pod = fd.jsonpath(&["pods", "-l", "app=client"], "{.items[0].metadata.name}");
    let pod_ip = fd.jsonpath(&["pods", "-l", "app=web"], "{.items[0].status.podIP}");
    // The Service's only endpoint is said to be on another node.
    fd.apply(&format!(
        "apiVersion: v1
kind: Service
metadata: {{name: elsewhere}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: elsewhere-1
  labels: {{kubernetes.io/service-name: elsewhere}}
addressType: IPv4
ports: [{{name: '', port: 8080, protocol: TCP}}]
endpoints:
- addresses: [{pod_ip}]
  nodeName: n2
  conditions: {{ready: true}}
"
    ));
    let mut address = String::new();
    assert!(wait_until(Duration::from_secs(20), || {
        address = fd.jsonpath(&["service", "elsewhere"], "{.status.loadBalancer.ingress[0].ip}");
        !address.is_empty()
    }));
    let url = format!("http://{address}/");
    // From the node (masqueraded) and from a pod (its own address kept): served.
    assert!(wait_until(Duration::from_secs(10), || requests(&fd, &url, 1).len() == 1), "the node is not served");
    let from_pod =
        parse_answers(&fd.kubectl("1.33", &["exec", &pod, "--", "curl", "-s", "--max-time", "5", &url, &url]));
    assert_eq!(from_pod.len(), 2, "{from_pod:?}");
    // From the LAN: no local endpoint, dropped; the health check says so.
    let out = lan.curl(&["--max-time", "1", &url]);
    assert_eq!(out.status.code(), Some(28), "the LAN was served without a local endpoint");
    let health_port = fd.jsonpath(&["service", "elsewhere"], "{.spec.healthCheckNodePort}");
    let out =
        lan.curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("http://{}:{health_port}/", lan.node_address)]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "503");
}

/// `count` TCP connections to `ip:port` from `command` (python3 run on the node or in a pod),
/// each closed at once: for each, the peer `getpeername` names and the peer the kernel's socket
/// is connected to (its `/proc/net/tcp` line).
fn peers_of(mut command: std::process::Command, ip: &str, port: u16, count: usize) -> Vec<(String, String)> {
    let script = format!(
        "import socket
def kernel_peer(local):
    for line in open('/proc/self/net/tcp').readlines()[1:]:
        f = line.split()
        if int(f[1].split(':')[1], 16) == local and f[3] == '01':
            address, port = f[2].split(':')
            return '%s:%d' % (socket.inet_ntoa(bytes.fromhex(address)[::-1]), int(port, 16))
for _ in range({count}):
    s = socket.create_connection(('{ip}', {port}), timeout=5)
    print('%s:%d' % s.getpeername(), kernel_peer(s.getsockname()[1]))
    s.close()
"
    );
    command.args(["python3", "-c", &script]);
    let out = run(command);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(named, kernel)| (named.to_string(), kernel.to_string()))
        .collect()
}

fn pod_addresses(fd: &Frontdoor, app: &str) -> Vec<String> {
    let ips = fd.jsonpath(&["pods", "-l", &format!("app={app}")], "{.items[*].status.podIP}");
    let mut ips: Vec<String> = ips.split_whitespace().map(|ip| format!("{ip}:8080")).collect();
    ips.sort();
    ips
}

const STRAIGHT: &str = "apiVersion: v1
kind: Service
metadata: {name: straight}
spec:
  selector: {app: straight}
  ports: [{port: 80, targetPort: 8080}]
";

#[test]
fn connections_to_a_cluster_ip_are_balanced_at_connect_from_the_node_and_pods() {
    let fd = start();
    fd.apply(&deployment("straight", 2));
    fd.apply(STRAIGHT);
    wait_ready_endpoints(&fd, "straight", 2);
    let ip = cluster_ip(&fd, "straight");
    let pods = pod_addresses(&fd, "straight");
    // The node's namespace and its two pods' are in the balancer's scope.
    let namespaces = || balancer_gauge(&fd, "frontdoor_socket_lb_namespaces");
    assert!(wait_until(Duration::from_secs(10), || namespaces() == 3), "namespaces in scope: {}", namespaces());

    // From the node: each socket is connected to a pod itself (no NAT on its packets), both
    // pods are chosen, and getpeername still names the ClusterIP, as through NAT.
    let frontend = format!("{ip}:80");
    let peers = peers_of(fd.command("env"), &ip, 80, 60);
    assert_eq!(peers.len(), 60);
    assert!(peers.iter().all(|(named, _)| *named == frontend), "getpeername from the node: {peers:?}");
    let mut seen: Vec<String> = peers.iter().map(|(_, kernel)| kernel.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, pods, "the kernel's peers from the node: {peers:?}");

    // From a pod, the same.
    let pod = fd.jsonpath(&["pods", "-l", "app=straight"], "{.items[0].metadata.name}");
    let peers = peers_of(fd.kubectl_command("1.33", &["exec", &pod, "--", "env"]), &ip, 80, 60);
    assert_eq!(peers.len(), 60);
    assert!(peers.iter().all(|(named, kernel)| *named == frontend && pods.contains(kernel)), "from a pod: {peers:?}");

    // The endpoints follow the Service: one pod left, every connection goes to it.
    fd.kubectl_ok("1.33", &["scale", "deployment", "straight", "--replicas=1"]);
    wait_ready_endpoints(&fd, "straight", 1);
    let followed = wait_until(Duration::from_secs(10), || {
        let left = pod_addresses(&fd, "straight");
        left.len() == 1 && peers_of(fd.command("env"), &ip, 80, 20).iter().all(|(_, kernel)| *kernel == left[0])
    });
    assert!(followed, "connections still reach a removed endpoint");
    // The removed pod's namespace left the scope at its teardown.
    assert!(wait_until(Duration::from_secs(10), || namespaces() == 2), "namespaces in scope: {}", namespaces());

    // Still a Service: HTTP through it answers, from the node.
    assert_eq!(requests(&fd, &format!("http://{ip}/"), 3).len(), 3);

    // A deleted Service's port leaves the balancer.
    let frontends = || balancer_gauge(&fd, "frontdoor_socket_lb_frontends");
    let held = frontends();
    fd.kubectl_ok("1.33", &["delete", "service", "straight"]);
    assert!(wait_until(Duration::from_secs(10), || frontends() == held - 1), "frontends: {held} then {}", frontends());
}

/// A gauge of the connect-time balancer, from the API server's `/metrics`.
fn balancer_gauge(fd: &Frontdoor, name: &str) -> i64 {
    let text = fd.kubectl_ok("1.33", &["get", "--raw", "/metrics"]);
    frontdoor_testkit::metrics::total(&text, name, &[]).unwrap_or_else(|| panic!("no {name}")) as i64
}

#[test]
fn without_the_connect_time_balancer_the_rules_alone_serve_cluster_ips() {
    let fd =
        Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1", "--socket-lb=false"]);
    fd.apply(&deployment("straight", 2));
    fd.apply(STRAIGHT);
    wait_ready_endpoints(&fd, "straight", 2);
    let ip = cluster_ip(&fd, "straight");

    // The socket stays connected to the cluster IP; the rules rewrite each packet.
    let peers = peers_of(fd.command("env"), &ip, 80, 10);
    assert_eq!(peers.len(), 10);
    let frontend = format!("{ip}:80");
    assert!(peers.iter().all(|(named, kernel)| *named == frontend && *kernel == frontend), "{peers:?}");
    let answers = requests(&fd, &format!("http://{ip}/"), 100);
    assert_eq!(spread(&answers).len(), 2, "{answers:?}");
}
