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
        fd.jsonpath(&["service", "-n", "kube-system", "kube-dns"], "{.spec.clusterIP}") == "10.96.0.10"
    });
    assert!(kube_dns, "no kube-dns Service at 10.96.0.10");
    let cluster_ip = fd.jsonpath(&["service", "api"], "{.spec.clusterIP}");
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
        wait_until(Duration::from_secs(30), || fd.jsonpath(&["deployment", "api"], "{.status.readyReplicas}") == "1");
    assert!(ready);
    let pod = fd.jsonpath(&["pods", "-l", "app=api"], "{.items[0].metadata.name}");
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
    let fresh = fd.jsonpath(&["service", "fresh"], "{.spec.clusterIP}");
    assert!(
        wait_until(Duration::from_secs(5), || dig(&fd, &["+short", "fresh.default.svc.cluster.local"]).trim() == fresh)
    );
    assert!(created.elapsed() < Duration::from_secs(1), "resolved after {:?}", created.elapsed());
}

/// An upstream of the test's own, inside the node's namespace, on 127.0.0.1:5353 (UDP and TCP):
/// `nx.example.test` is NXDOMAIN (with an SOA); `big.example.test` has 60 A records, too many
/// for 512 bytes (truncated over UDP without EDNS0); every other A question gets 192.0.2.7 (TTL
/// 60). So forwarding, the cache and TCP fallback can be seen without the machine's resolver.
const UPSTREAM: &str = r#"import socket, struct, threading
def answer(query, udp):
    end = 12
    while query[end] != 0:
        end += query[end] + 1
    name = query[12:end + 1].lower()
    question = query[12:end + 5]
    edns = len(query) > end + 5
    def reply(flags, records, authority=b"", nscount=0):
        header = query[:2] + flags + struct.pack(">HHHH", 1, len(records), nscount, 0)
        return header + question + b"".join(records) + authority
    a = lambda ip: b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes(ip)
    if name.startswith(b"\x02nx"):
        soa = b"\xc0\x0f" + struct.pack(">HHIH", 6, 1, 60, 22) + b"\x00\x00" + struct.pack(">IIIII", 1, 7200, 1800, 86400, 60)
        return reply(b"\x81\x83", [], soa, 1)
    if name.startswith(b"\x03big"):
        if udp and not edns:
            return reply(b"\x83\x80", [])
        return reply(b"\x81\x80", [a([192, 0, 2, i]) for i in range(1, 61)])
    return reply(b"\x81\x80", [a([192, 0, 2, 7])])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 5353))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.1", 5353))
tcp.listen(16)
def serve_tcp():
    while True:
        conn, _ = tcp.accept()
        length = struct.unpack(">H", conn.recv(2))[0]
        query = b""
        while len(query) < length:
            query += conn.recv(length - len(query))
        response = answer(query, False)
        conn.sendall(struct.pack(">H", len(response)) + response)
        conn.close()
threading.Thread(target=serve_tcp, daemon=True).start()
print("ready", flush=True)
while True:
    query, peer = udp.recvfrom(4096)
    udp.sendto(answer(query, True), peer)
"#;

/// Runs the test upstream in the node's namespace until dropped.
struct Upstream(std::process::Child);

impl Upstream {
    fn start(fd: &Frontdoor) -> Upstream {
        use std::io::BufRead;
        let mut child =
            fd.command("python3").args(["-c", UPSTREAM]).stdout(std::process::Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Upstream(child)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn names_outside_the_cluster_are_forwarded_cached_and_chased() {
    let fd = Frontdoor::start_node(
        env!("CARGO_BIN_EXE_frontdoor").as_ref(),
        &["--node-name", "n1", "--dns-upstream", "127.0.0.1:5353"],
    );
    let upstream = Upstream::start(&fd);
    let forwarded =
        wait_until(Duration::from_secs(20), || dig(&fd, &["+short", "www.example.test"]).trim() == "192.0.2.7");
    assert!(forwarded, "{}", dig(&fd, &["www.example.test"]));
    let nx = dig(&fd, &["nx.example.test"]);
    assert!(nx.contains("status: NXDOMAIN") && nx.contains("SOA"), "{nx}");
    // Too large for UDP without EDNS0: truncated, and dig's retry over TCP gets all 60.
    let big = dig(&fd, &["+noedns", "+short", "big.example.test"]);
    assert_eq!(big.lines().count(), 60, "{big}");
    let truncated = dig(&fd, &["+noedns", "+ignore", "big.example.test"]);
    assert!(truncated.contains(" tc") && truncated.contains("ANSWER: 0"), "{truncated}");

    // An ExternalName's target is looked up upstream: the CNAME and the target's address.
    fd.kubectl_ok(KUBECTL, &["create", "service", "externalname", "ext", "--external-name", "db.example.test"]);
    let chased = wait_until(Duration::from_secs(10), || {
        let short = dig(&fd, &["+short", "ext.default.svc.cluster.local"]);
        short.lines().collect::<Vec<_>>() == ["db.example.test.", "192.0.2.7"]
    });
    assert!(chased, "{}", dig(&fd, &["ext.default.svc.cluster.local"]));

    // With the upstream gone, what was asked is answered from the cache (TTLs counting down),
    // a new name gets SERVFAIL.
    drop(upstream);
    let cached = dig(&fd, &["www.EXAMPLE.test"]);
    assert!(cached.contains("status: NOERROR") && cached.contains("192.0.2.7"), "{cached}");
    assert!(dig(&fd, &["nx.example.test"]).contains("status: NXDOMAIN"));
    let failed = dig(&fd, &["+time=5", "new.example.test"]);
    assert!(failed.contains("status: SERVFAIL"), "{failed}");
    let out = fd.command("curl").args(["-s", "--max-time", "5", "http://10.96.0.10:9153/metrics"]).output().unwrap();
    let metrics = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let mut wanted = vec![("server", "dns://10.244.0.1:53")];
        wanted.extend_from_slice(labels);
        frontdoor_testkit::metrics::total(&metrics, name, &wanted).unwrap_or_else(|| panic!("{name}:\n{metrics}"))
    };
    assert!(value("coredns_cache_hits_total", &[("type", "success"), ("zones", ".")]) >= 1.0);
    assert!(value("coredns_cache_hits_total", &[("type", "denial"), ("zones", ".")]) >= 1.0);
    assert!(value("coredns_cache_misses_total", &[("zones", ".")]) >= 3.0);
    assert!(value("coredns_cache_entries", &[("type", "success"), ("zones", ".")]) >= 2.0);
    let servfail = [("zone", "."), ("rcode", "SERVFAIL"), ("plugin", "forward")];
    assert!(value("coredns_dns_responses_total", &servfail) >= 1.0);
}

#[test]
fn only_the_node_and_its_pods_are_served() {
    let fd = Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1"]);
    let lan = frontdoor_testkit::Lan::attach(fd.netns().unwrap(), 61);
    let name = "kubernetes.default.svc.cluster.local";
    let served = wait_until(Duration::from_secs(20), || dig(&fd, &["+short", name]).trim() == "10.96.0.1");
    assert!(served);
    // The node from another of its addresses (its LAN one): served.
    let from_node = dig(&fd, &["@10.244.0.1", "-b", &lan.node_address, name]);
    assert!(from_node.contains("status: NOERROR") && from_node.contains("10.96.0.1"), "{from_node}");
    // A machine on the LAN: refused, whatever it asks, at the server's address or at the
    // kube-dns Service's (the LAN's default route is the node; untracked, the query keeps its
    // source, where the Service's DNAT would have masqueraded it as the node's).
    for args in [
        &["@10.244.0.1", name][..],
        &["@10.244.0.1", "www.example.test"],
        &["@10.96.0.10", name],
        &["@10.96.0.10", "+tcp", name],
    ] {
        let out = lan.command("dig").args(["+time=2", "+tries=1"]).args(args).output().unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("status: REFUSED") && out.contains("ANSWER: 0"), "{out}");
    }
}

/// The node answers on the kube-dns Service's address itself (NodeLocal DNSCache's way): a
/// pod's queries there skip conntrack and the Service's DNAT, so none leaves a conntrack entry,
/// over UDP or TCP (the connect-time balancer leaves that port to the node), while one to the
/// server's own address (DNS traffic like any other) leaves one.
#[test]
fn queries_to_the_service_address_are_answered_untracked() {
    let fd = Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1"]);
    let name = "kubernetes.default.svc.cluster.local";
    assert!(wait_until(Duration::from_secs(20), || dig(&fd, &["+short", name]).trim() == "10.96.0.1"));
    fd.kubectl_ok(KUBECTL, &["run", "client", "--image=busybox", "--restart=Never", "--command", "--", "sleep", "600"]);
    assert!(wait_until(Duration::from_secs(30), || fd.jsonpath(&["pod", "client"], "{.status.phase}") == "Running"));
    let from_pod = |args: &str| {
        let script = format!("for i in 1 2 3 4 5; do dig +time=2 +tries=1 +short {args} {name}; done");
        fd.kubectl_ok(KUBECTL, &["exec", "client", "--", "sh", "-c", &script])
    };
    // Five queries (five source ports) over UDP, and over TCP, to the Service address; as many
    // to the server's own address.
    for args in ["@10.96.0.10", "+tcp @10.96.0.10", "@10.244.0.1", "+tcp @10.244.0.1"] {
        assert_eq!(from_pod(args), "10.96.0.1\n".repeat(5), "{args}");
    }
    let flows = dns_flows(fd.netns().unwrap());
    let to = |address: [u8; 4], protocol: u8| {
        let address = std::net::Ipv4Addr::from(address);
        flows.iter().filter(|f| f.original.dst == address && f.original.proto == protocol).count()
    };
    let (udp, tcp) = (17, 6);
    // The node's conntrack saw the DNS traffic it tracks: the queries to the server's address
    // (TCP's connections linger in TIME_WAIT), and no more over TCP.
    assert!(to([10, 244, 0, 1], udp) >= 5, "{flows:?}");
    assert_eq!(to([10, 244, 0, 1], tcp), 5, "{flows:?}");
    // And none of the Service address's, the node's own (`dig` above) included.
    assert_eq!(to([10, 96, 0, 10], udp), 0, "{flows:?}");
    assert_eq!(to([10, 96, 0, 10], tcp), 0, "{flows:?}");
}

/// The flows to port 53 that conntrack holds in the network namespace `netns` (read from a
/// thread that enters it).
fn dns_flows(netns: &str) -> Vec<frontdoor_netfilter::conntrack::Flow> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let namespace = std::fs::File::open(format!("/run/netns/{netns}")).unwrap();
                nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let mut flows = frontdoor_netfilter::conntrack::list_flows().unwrap();
                flows.retain(|f| f.original.dst_port == 53);
                flows
            })
            .join()
            .unwrap()
    })
}

/// Sends 100 bursts of 1,000 hostile datagrams to the server's UDP socket (random bytes of every
/// length up to 5,000, a valid header over garbage, compression-pointer loops, responses, absurd
/// counts), each burst followed by a real query that must be answered (the socket is a queue: its
/// answer proves the burst was read; it is retried, as a resolver would, when the burst filled the
/// socket's buffer). Prints `answered <n> of <m>`.
const GARBAGE: &str = r#"
import os, random, socket, struct, sys
random.seed(7)
server = (sys.argv[1], 53)
query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"".join(
    bytes([len(l)]) + l.encode() for l in "kubernetes.default.svc.cluster.local".split(".")) + b"\x00\x00\x01\x00\x01"
def hostile(i):
    kind = i % 6
    if kind == 0:
        return os.urandom(random.randrange(0, 5000))
    if kind == 1:
        return os.urandom(random.randrange(0, 13))
    if kind == 2:
        return struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + os.urandom(random.randrange(0, 300))
    if kind == 3:
        return struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
    if kind == 4:
        return bytes([query[0], query[1], query[2] | 0x80]) + query[3:]
    return struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF) + query[12:]
send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
probe.settimeout(1)
answered = 0
for burst in range(100):
    for i in range(1000):
        send.sendto(hostile(burst * 1000 + i), server)
    # A burst can fill the socket's buffer (the kernel drops what does not fit, as on any
    # server): the probe is retried as a resolver would.
    for attempt in range(3):
        probe.sendto(query, server)
        try:
            while True:
                reply = probe.recv(4096)
                if reply[:2] == b"\x12\x34":
                    break
        except socket.timeout:
            continue
        rcode, count = reply[3] & 0xF, struct.unpack(">H", reply[6:8])[0]
        answered += rcode == 0 and count == 1 and reply.endswith(bytes([10, 96, 0, 1]))
        break
print(f"answered {answered} of 100")
"#;

#[test]
fn hostile_datagrams_get_formerr_or_nothing_and_the_server_keeps_answering() {
    let fd = Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1"]);
    let name = "kubernetes.default.svc.cluster.local";
    let served = wait_until(Duration::from_secs(20), || dig(&fd, &["+short", name]).trim() == "10.96.0.1");
    assert!(served);
    let formerr = || {
        let metrics = fd.command("curl").args(["-s", "http://10.244.0.1:9153/metrics"]).output().unwrap();
        let text = String::from_utf8_lossy(&metrics.stdout);
        frontdoor_testkit::metrics::total(&text, "coredns_dns_responses_total", &[("rcode", "FORMERR")]).unwrap_or(0.0)
    };
    let before = formerr();
    let out = fd.command("python3").args(["-c", GARBAGE, "10.244.0.1"]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report.trim(), "answered 100 of 100");
    // The garbage was read and answered where an answer is due (a header that decodes), not lost.
    let answered_formerr = formerr() - before;
    assert!(answered_formerr >= 10_000.0, "only {answered_formerr} FORMERR answers to 100,000 hostile datagrams");
    // And the server still answers everything correctly, over UDP and TCP.
    assert_eq!(dig(&fd, &["+short", name]).trim(), "10.96.0.1");
    assert_eq!(dig(&fd, &["+tcp", "+short", name]).trim(), "10.96.0.1");
    assert!(dig(&fd, &["nope.default.svc.cluster.local"]).contains("status: NXDOMAIN"));
}
