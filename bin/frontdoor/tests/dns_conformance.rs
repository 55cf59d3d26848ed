//! The `[sig-network] DNS` conformance behaviours (upstream's `test/e2e/network/dns.go`), seen
//! from inside pods as those tests see them: the pod's `/etc/hosts` and hostname, the cluster's,
//! Services' and pods' names through the pod's own resolver (`getent`, `dig +search`) and by
//! full name (`dig`), ExternalName CNAMEs through a change of type, and the `/etc/resolv.conf`
//! each `dnsPolicy` and `dnsConfig` give. Each node runs in a network namespace made for its test;
//! no name outside the cluster domain is asked for (the namespace has no route out), and the
//! machine's own resolv.conf is only read, as the node reads it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use frontdoor_node::pod_dns::ResolverConfig;
use frontdoor_testkit::{wait_until, Frontdoor};
use serde_json::{json, Value};

const KUBECTL: &str = "1.33";
/// How long a pod may take to run, or a name to resolve once its objects exist.
const DEADLINE: Duration = Duration::from_secs(30);

fn start() -> Frontdoor {
    Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--node-name", "n1"])
}

fn apply(fd: &Frontdoor, objects: &[Value]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string();
    fd.apply(&list);
}

/// A pod that sleeps (the host's `sleep`; the image is not pulled), with `spec` set over the
/// defaults.
fn sleeper(name: &str, labels: Value, spec: Value) -> Value {
    let mut pod_spec = json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "querier", "image": "busybox", "command": ["sleep", "3600"]}],
    });
    for (key, value) in spec.as_object().unwrap() {
        pod_spec[key] = value.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": pod_spec})
}

/// A Service named `name` selecting `app: <app>`, port 80 named `http`; headless when asked.
fn service(name: &str, app: &str, headless: bool) -> Value {
    let mut spec = json!({"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": 80}]});
    if headless {
        spec["clusterIP"] = json!("None");
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

/// Waits until `pod` runs; its address.
fn running(fd: &Frontdoor, pod: &str) -> String {
    let mut ip = String::new();
    let up = wait_until(DEADLINE, || {
        let status = fd.jsonpath(&["pod", pod], "{.status.phase} {.status.podIP}");
        match status.split_once(' ') {
            Some(("Running", address)) if !address.is_empty() => {
                ip = address.to_string();
                true
            }
            _ => false,
        }
    });
    assert!(up, "pod {pod} is not running: {}", fd.kubectl_ok(KUBECTL, &["describe", "pod", pod]));
    ip
}

/// `command` run in `pod`: its output, whether or not it succeeded.
fn exec(fd: &Frontdoor, pod: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(command);
    String::from_utf8_lossy(&fd.kubectl(KUBECTL, &args).stdout).into_owned()
}

/// `dig +short` in `pod` through its resolv.conf: the answers, without dig's comments.
fn dig(fd: &Frontdoor, pod: &str, args: &[&str]) -> Vec<String> {
    let mut command = vec!["dig", "+short", "+time=2", "+tries=1"];
    command.extend_from_slice(args);
    exec(fd, pod, &command).lines().filter(|l| !l.is_empty() && !l.starts_with(';')).map(String::from).collect()
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

/// Waits until `dig args` in `pod` answers exactly `want` (in any order).
fn wait_for_answer(fd: &Frontdoor, pod: &str, args: &[&str], want: &[&str]) {
    let want = sorted(want.iter().map(|s| s.to_string()).collect());
    let answered = wait_until(DEADLINE, || sorted(dig(fd, pod, args)) == want);
    assert!(answered, "dig {args:?} in {pod}: want {want:?}, got {:?}", dig(fd, pod, args));
}

/// `getent hosts name` in `pod` (its /etc/hosts, then its resolver): the first address.
fn getent(fd: &Frontdoor, pod: &str, name: &str) -> String {
    exec(fd, pod, &["getent", "hosts", name]).split_whitespace().next().unwrap_or_default().to_string()
}

fn wait_for_getent(fd: &Frontdoor, pod: &str, name: &str, want: &str) {
    let resolved = wait_until(DEADLINE, || getent(fd, pod, name) == want);
    assert!(resolved, "getent hosts {name} in {pod}: want {want}, got {:?}", getent(fd, pod, name));
}

/// The node's resolver configuration as the node reads it: /etc/resolv.conf, or
/// systemd-resolved's list where that names only its stub.
fn node_resolver() -> ResolverConfig {
    let read = |path: &str| ResolverConfig::parse(&std::fs::read_to_string(path).unwrap_or_default());
    let etc = read("/etc/resolv.conf");
    let stub_only = !etc.nameservers.is_empty() && etc.nameservers.iter().all(|n| n == "127.0.0.53");
    if stub_only && Path::new("/run/systemd/resolve/resolv.conf").exists() {
        return read("/run/systemd/resolve/resolv.conf");
    }
    etc
}

const HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";

/// "DNS should provide /etc/hosts entries for the cluster": the pod's hostname and, with a
/// subdomain, its FQDN resolve through its /etc/hosts, written as the kubelet writes it (with
/// `hostAliases`); its UTS hostname is its hostname, or its FQDN under `setHostnameAsFQDN`.
#[test]
fn etc_hosts_names_the_pod_its_fqdn_and_host_aliases() {
    let fd = start();
    let aliases = json!([{"ip": "192.0.2.10", "hostnames": ["foo.local", "bar.local"]}]);
    apply(
        &fd,
        &[
            sleeper(
                "dns-querier-1",
                json!({}),
                json!({"hostname": "dns-querier-1", "subdomain": "dns-test-service", "hostAliases": aliases}),
            ),
            sleeper("plain-querier", json!({}), json!({})),
            sleeper(
                "fqdn-querier",
                json!({}),
                json!({"hostname": "fqdn", "subdomain": "dns-test-service", "setHostnameAsFQDN": true}),
            ),
        ],
    );
    let ip = running(&fd, "dns-querier-1");
    assert_eq!(
        exec(&fd, "dns-querier-1", &["cat", "/etc/hosts"]),
        format!(
            "{HOSTS_HEADER}{ip}\tdns-querier-1.dns-test-service.default.svc.cluster.local\tdns-querier-1\n\n# Entries added by HostAliases.\n192.0.2.10\tfoo.local\tbar.local\n"
        )
    );
    for name in ["dns-querier-1.dns-test-service.default.svc.cluster.local", "dns-querier-1"] {
        assert_eq!(getent(&fd, "dns-querier-1", name), ip, "{name}");
    }
    assert_eq!(getent(&fd, "dns-querier-1", "bar.local"), "192.0.2.10");
    assert_eq!(exec(&fd, "dns-querier-1", &["cat", "/proc/sys/kernel/hostname"]), "dns-querier-1\n");

    let plain = running(&fd, "plain-querier");
    assert_eq!(exec(&fd, "plain-querier", &["cat", "/etc/hosts"]), format!("{HOSTS_HEADER}{plain}\tplain-querier\n"));
    assert_eq!(getent(&fd, "plain-querier", "plain-querier"), plain);
    assert_eq!(exec(&fd, "plain-querier", &["cat", "/proc/sys/kernel/hostname"]), "plain-querier\n");

    running(&fd, "fqdn-querier");
    let hostname = exec(&fd, "fqdn-querier", &["cat", "/proc/sys/kernel/hostname"]);
    assert_eq!(hostname, "fqdn.dns-test-service.default.svc.cluster.local\n");
}

/// "DNS should provide DNS for the cluster": `kubernetes.default` by its partial and full names,
/// over UDP and TCP, and the pod's own A record, from a pod through its resolver.
#[test]
fn the_cluster_resolves_from_a_pod() {
    let fd = start();
    apply(&fd, &[sleeper("dns-querier", json!({}), json!({}))]);
    let ip = running(&fd, "dns-querier");
    let kubernetes = fd.jsonpath(&["service", "kubernetes"], "{.spec.clusterIP}");
    assert!(!kubernetes.is_empty());
    wait_for_answer(&fd, "dns-querier", &["+search", "kubernetes.default"], &[&kubernetes]);
    for name in ["kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"] {
        for transport in ["+notcp", "+tcp"] {
            assert_eq!(
                dig(&fd, "dns-querier", &[transport, "+search", name]),
                [kubernetes.as_str()],
                "{name} {transport}"
            );
        }
        assert_eq!(getent(&fd, "dns-querier", name), kubernetes, "{name}");
    }
    let pod_name = format!("{}.default.pod.cluster.local", ip.replace('.', "-"));
    wait_for_answer(&fd, "dns-querier", &[&pod_name], &[&ip]);
    assert_eq!(dig(&fd, "dns-querier", &["+tcp", &pod_name]), [ip]);
}

/// "DNS should provide DNS for services": a headless Service's members and a ClusterIP
/// Service's address by their full names (UDP and TCP), the SRV records of their named port,
/// and the ClusterIP's PTR.
#[test]
fn services_resolve_by_full_name_with_srv_and_ptr() {
    let fd = start();
    apply(
        &fd,
        &[
            service("dns-test-service", "dns-test", true),
            service("test-service-2", "dns-test", false),
            sleeper("member-a", json!({"app": "dns-test"}), json!({})),
            sleeper("member-b", json!({"app": "dns-test"}), json!({})),
            sleeper("dns-querier", json!({}), json!({})),
        ],
    );
    let members = [running(&fd, "member-a"), running(&fd, "member-b")];
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    running(&fd, "dns-querier");
    let cluster_ip = fd.jsonpath(&["service", "test-service-2"], "{.spec.clusterIP}");

    let headless = "dns-test-service.default.svc.cluster.local";
    wait_for_answer(&fd, "dns-querier", &[headless], &members);
    assert_eq!(
        sorted(dig(&fd, "dns-querier", &["+tcp", headless])),
        sorted(members.iter().map(|s| s.to_string()).collect())
    );
    let regular = "test-service-2.default.svc.cluster.local";
    wait_for_answer(&fd, "dns-querier", &[regular], &[&cluster_ip]);
    assert_eq!(dig(&fd, "dns-querier", &["+tcp", regular]), [cluster_ip.as_str()]);

    // SRV: one per member, each naming a member's own A record; one for the ClusterIP.
    let srv = dig(&fd, "dns-querier", &["SRV", &format!("_http._tcp.{headless}")]);
    assert_eq!(srv.len(), 2, "{srv:?}");
    let mut targets = Vec::new();
    for record in &srv {
        let fields: Vec<&str> = record.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "{record}");
        assert_eq!(fields[2], "80", "{record}");
        assert!(fields[3].ends_with(&format!(".{headless}.")), "{record}");
        targets.extend(dig(&fd, "dns-querier", &[fields[3]]));
    }
    assert_eq!(sorted(targets), sorted(members.iter().map(|s| s.to_string()).collect()));
    let srv = dig(&fd, "dns-querier", &["+tcp", "SRV", &format!("_http._tcp.{regular}")]);
    assert_eq!(srv.len(), 1, "{srv:?}");
    assert!(srv[0].ends_with(&format!(" 80 {regular}.")), "{srv:?}");

    assert_eq!(dig(&fd, "dns-querier", &["-x", &cluster_ip]), [format!("{regular}.")]);
}

/// "DNS should resolve DNS of partial qualified names for services": a headless and a ClusterIP
/// Service by their partial names through the pod's search path, with `getent` (the pod's libc
/// resolver) and `dig +search`, A and SRV.
#[test]
fn partial_names_resolve_through_the_search_path() {
    let fd = start();
    apply(
        &fd,
        &[
            service("dns-test-service", "dns-test", true),
            service("test-service-2", "dns-test", false),
            sleeper("member", json!({"app": "dns-test"}), json!({})),
            sleeper("dns-querier", json!({}), json!({})),
        ],
    );
    let member = running(&fd, "member");
    running(&fd, "dns-querier");
    let cluster_ip = fd.jsonpath(&["service", "test-service-2"], "{.spec.clusterIP}");

    wait_for_answer(&fd, "dns-querier", &["+search", "dns-test-service"], &[&member]);
    wait_for_answer(&fd, "dns-querier", &["+search", "test-service-2"], &[&cluster_ip]);
    for (service, address) in [("dns-test-service", &member), ("test-service-2", &cluster_ip)] {
        for name in [service.to_string(), format!("{service}.default"), format!("{service}.default.svc")] {
            for transport in ["+notcp", "+tcp"] {
                assert_eq!(dig(&fd, "dns-querier", &[transport, "+search", &name]), [address.as_str()], "{name}");
            }
            assert_eq!(getent(&fd, "dns-querier", &name), *address, "{name}");
            let srv = dig(&fd, "dns-querier", &["+search", "SRV", &format!("_http._tcp.{name}")]);
            assert_eq!(srv.len(), 1, "_http._tcp.{name}: {srv:?}");
            assert!(srv[0].contains(" 80 ") && srv[0].ends_with(".svc.cluster.local."), "{srv:?}");
        }
    }
}

/// "DNS should provide DNS for pods for Hostname" and "… for Subdomain": a pod whose hostname and
/// subdomain name a headless Service that selects it resolves at
/// `<hostname>.<subdomain>.<namespace>.svc.cluster.local`, and the subdomain at the Service's
/// name, over UDP and TCP, from itself and from another pod.
#[test]
fn pods_resolve_by_hostname_and_subdomain() {
    let fd = start();
    apply(
        &fd,
        &[
            service("dns-test-service-2", "dns-test-2", true),
            sleeper(
                "dns-querier-2",
                json!({"app": "dns-test-2"}),
                json!({"hostname": "dns-querier-2", "subdomain": "dns-test-service-2"}),
            ),
            sleeper("other-querier", json!({}), json!({})),
        ],
    );
    let ip = running(&fd, "dns-querier-2");
    running(&fd, "other-querier");
    let fqdn = "dns-querier-2.dns-test-service-2.default.svc.cluster.local";
    let subdomain = "dns-test-service-2.default.svc.cluster.local";
    for pod in ["dns-querier-2", "other-querier"] {
        wait_for_answer(&fd, pod, &[fqdn], &[&ip]);
        for transport in ["+notcp", "+tcp"] {
            assert_eq!(dig(&fd, pod, &[transport, fqdn]), [ip.as_str()], "{pod} {transport}");
            assert_eq!(dig(&fd, pod, &[transport, subdomain]), [ip.as_str()], "{pod} {transport}");
        }
        assert_eq!(getent(&fd, pod, fqdn), ip, "{pod}");
    }
    // The other pod's libc finds the partial name through its search path (not in its hosts file).
    wait_for_getent(&fd, "other-querier", "dns-querier-2.dns-test-service-2", &ip);
    assert_eq!(exec(&fd, "dns-querier-2", &["cat", "/proc/sys/kernel/hostname"]), "dns-querier-2\n");
}

/// "DNS should provide DNS for ExternalName services": the CNAME, the new CNAME after the
/// externalName changes, and the A record once the Service is turned into a ClusterIP one.
#[test]
fn external_name_answers_a_cname_until_it_turns_cluster_ip() {
    let fd = start();
    apply(
        &fd,
        &[
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns-test-service-3"},
                   "spec": {"type": "ExternalName", "externalName": "foo.example.com"}}),
            sleeper("dns-querier", json!({}), json!({})),
        ],
    );
    running(&fd, "dns-querier");
    let name = "dns-test-service-3.default.svc.cluster.local";
    // CNAME questions only: an A question would chase the target outside the cluster.
    wait_for_answer(&fd, "dns-querier", &["CNAME", name], &["foo.example.com."]);

    fd.kubectl_ok(
        KUBECTL,
        &["patch", "service", "dns-test-service-3", "-p", r#"{"spec":{"externalName":"bar.example.com"}}"#],
    );
    wait_for_answer(&fd, "dns-querier", &["CNAME", name], &["bar.example.com."]);

    // As upstream: the type and a port. The externalName stays (the API server wipes only
    // allocated fields on a change of type); the type decides what DNS answers.
    let to_cluster_ip = r#"{"spec":{"type":"ClusterIP","ports":[{"name":"http","port":80,"protocol":"TCP"}]}}"#;
    fd.kubectl_ok(KUBECTL, &["patch", "service", "dns-test-service-3", "-p", to_cluster_ip]);
    let cluster_ip = fd.jsonpath(&["service", "dns-test-service-3"], "{.spec.clusterIP}");
    assert!(cluster_ip.parse::<std::net::Ipv4Addr>().is_ok(), "no ClusterIP: {cluster_ip:?}");
    wait_for_answer(&fd, "dns-querier", &["CNAME", name], &[]);
    wait_for_answer(&fd, "dns-querier", &[name], &[&cluster_ip]);
    assert_eq!(dig(&fd, "dns-querier", &["+tcp", "+search", "dns-test-service-3"]), [cluster_ip]);
}

/// "DNS should support configurable pod DNS nameservers", and the resolv.conf every other policy
/// gives, as the kubelet writes it: `None` is exactly `dnsConfig`; `ClusterFirst` the cluster's
/// with the node's search domains after, `dnsConfig` merged on top (and cut to three
/// nameservers, with the kubelet's warning); `Default` the node's; a `hostNetwork` pod's
/// `ClusterFirst` is `Default`, its `ClusterFirstWithHostNet` the cluster's.
#[test]
fn each_dns_policy_and_dns_config_make_the_pods_resolv_conf() {
    let fd = start();
    let options = json!([{"name": "ndots", "value": "2"}, {"name": "edns0"}]);
    apply(
        &fd,
        &[
            sleeper(
                "none",
                json!({}),
                json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["resolv.conf.local"], "options": options}}),
            ),
            sleeper("cluster-first", json!({}), json!({})),
            sleeper(
                "cluster-first-merged",
                json!({}),
                json!({"dnsConfig": {"nameservers": ["192.0.2.1"], "searches": ["my.dns.search.suffix"], "options": options}}),
            ),
            sleeper(
                "cluster-first-capped",
                json!({}),
                json!({"dnsConfig": {"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"]}}),
            ),
            sleeper("default", json!({}), json!({"dnsPolicy": "Default"})),
            sleeper("host-network", json!({}), json!({"hostNetwork": true})),
            sleeper(
                "host-network-cluster",
                json!({}),
                json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
            ),
        ],
    );
    let node = node_resolver();
    let searches: String = node.searches.iter().map(|s| format!(" {s}")).collect();
    let cluster = format!(
        "search default.svc.cluster.local svc.cluster.local cluster.local{searches}\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
    let cases = [
        ("none", "search resolv.conf.local\nnameserver 1.1.1.1\noptions ndots:2 edns0\n".to_string()),
        ("cluster-first", cluster.clone()),
        (
            "cluster-first-merged",
            format!("search default.svc.cluster.local svc.cluster.local cluster.local{searches} my.dns.search.suffix\nnameserver 10.96.0.10\nnameserver 192.0.2.1\noptions ndots:2 edns0\n"),
        ),
        (
            "cluster-first-capped",
            format!("search default.svc.cluster.local svc.cluster.local cluster.local{searches}\nnameserver 10.96.0.10\nnameserver 192.0.2.1\nnameserver 192.0.2.2\noptions ndots:5\n"),
        ),
        ("default", node.render()),
        ("host-network", node.render()),
        ("host-network-cluster", cluster),
    ];
    for (pod, want) in cases {
        running(&fd, pod);
        assert_eq!(exec(&fd, pod, &["cat", "/etc/resolv.conf"]), want, "{pod}");
    }
    let warned = wait_until(DEADLINE, || {
        let events =
            fd.jsonpath(&["events"], r#"{range .items[*]}{.involvedObject.name} {.reason} {.message}{"\n"}{end}"#);
        events.lines().any(|line| {
            line == "cluster-first-capped DNSConfigForming Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 192.0.2.1 192.0.2.2"
        })
    });
    assert!(warned, "{}", fd.kubectl_ok(KUBECTL, &["get", "events"]));
}
