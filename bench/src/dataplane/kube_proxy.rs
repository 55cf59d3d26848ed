//! Step 1's same-run baseline: the ruleset kube-proxy's nftables mode writes for the same
//! Services (research/dataplane.md §1.3), generated as `nft` text and loaded with `nft -f -`
//! (as knftables does) into a fresh network namespace.
//!
//! Layout: table `ip kube-proxy` with kube-proxy's base chains (numeric priorities: nft 1.0.6
//! rejects `dstnat` on output), maps and fixed chains; per Service a `service-…` chain (off-cluster
//! masquerade mark, then `numgen random mod 8 vmap { i : goto endpoint-… }`) reached from the
//! `service-ips` verdict map, and per endpoint an `endpoint-…` chain (hairpin mark, `dnat`).
//! Chain names have kube-proxy's shape (`service-<HASH8>-ns/name/tcp/`); the hash is a stand-in
//! of the same length. A one-endpoint change is what kube-proxy's partial sync sends: the new
//! endpoint chain, the Service chain flushed and rewritten, the old endpoint chain flushed (and
//! deleted by a later transaction). Not included: kube-proxy's own work around `nft` (computing
//! the text, and the `nft list` of chains and sets it does on every sync).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::synthetic::{self, ENDPOINTS, NAMESPACE, SERVICE_PORT};
use super::system::{children_cpu, in_fresh_netns, Cpu};

const TABLE: &str = "kube-proxy";
const MASQUERADE_MARK: &str = "0x4000";

pub struct KubeProxy {
    pub services: usize,
    pub lines: usize,
    pub load: Duration,
    pub load_cpu: Cpu,
    /// One-endpoint changes (each one `nft -f -`), sorted; fewer than asked when the time
    /// budget ran out.
    pub changes: Vec<Duration>,
}

/// A stand-in for kube-proxy's 8-character base32 hash prefix.
fn hash8(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..8)
        .map(|_| {
            x = x.rotate_left(5);
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[(x & 31) as usize] as char
        })
        .collect()
}

fn service_chain(i: usize) -> String {
    format!("service-{}-{NAMESPACE}/svc-{i}/tcp/", hash8(i as u64))
}

fn endpoint_chain(i: usize, endpoint: SocketAddrV4) -> String {
    let id = u64::from(u32::from(*endpoint.ip())) << 16 | u64::from(endpoint.port());
    format!("endpoint-{}-{NAMESPACE}/svc-{i}/tcp/__{}/{}", hash8(id), endpoint.ip(), endpoint.port())
}

fn add_endpoint_chain(out: &mut String, i: usize, endpoint: SocketAddrV4) {
    let chain = endpoint_chain(i, endpoint);
    let ip = endpoint.ip();
    let _ = writeln!(out, "add chain ip {TABLE} {chain}");
    let _ = writeln!(out, "add rule ip {TABLE} {chain} ip saddr {ip} jump mark-for-masquerade");
    let _ = writeln!(out, "add rule ip {TABLE} {chain} meta l4proto tcp dnat to {endpoint}");
}

fn service_rules(out: &mut String, i: usize, endpoints: &[SocketAddrV4]) {
    let chain = service_chain(i);
    let ip = synthetic::cluster_ip(i);
    let _ = writeln!(
        out,
        "add rule ip {TABLE} {chain} ip daddr {ip} tcp dport {SERVICE_PORT} ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    );
    let targets: Vec<String> =
        endpoints.iter().enumerate().map(|(n, e)| format!("{n} : goto {}", endpoint_chain(i, *e))).collect();
    let _ = writeln!(
        out,
        "add rule ip {TABLE} {chain} numgen random mod {} vmap {{ {} }}",
        endpoints.len(),
        targets.join(", ")
    );
}

/// The whole ruleset for `count` Services, as one transaction.
pub fn ruleset(count: usize) -> String {
    let mut out = String::with_capacity(count * ENDPOINTS * 300);
    let _ = writeln!(out, "add table ip {TABLE}");
    let base = [
        ("filter-prerouting", "filter", "prerouting", -110),
        ("filter-input", "filter", "input", -110),
        ("filter-forward", "filter", "forward", -110),
        ("filter-output", "filter", "output", -110),
        ("filter-output-post-dnat", "filter", "output", -90),
        ("nat-prerouting", "nat", "prerouting", -100),
        ("nat-output", "nat", "output", -100),
        ("nat-postrouting", "nat", "postrouting", 100),
    ];
    for (name, kind, hook, priority) in base {
        let _ = writeln!(out, "add chain ip {TABLE} {name} {{ type {kind} hook {hook} priority {priority} ; }}");
    }
    for map in ["service-ips", "no-endpoint-services", "firewall-ips"] {
        let _ = writeln!(out, "add map ip {TABLE} {map} {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}");
    }
    for map in ["service-nodeports", "no-endpoint-nodeports"] {
        let _ = writeln!(out, "add map ip {TABLE} {map} {{ type inet_proto . inet_service : verdict ; }}");
    }
    let _ = writeln!(out, "add set ip {TABLE} cluster-ips {{ type ipv4_addr ; }}");
    let fixed = [
        "services",
        "masquerading",
        "mark-for-masquerade",
        "reject-chain",
        "service-endpoints-check",
        "nodeport-endpoints-check",
        "firewall-check",
        "cluster-ips-check",
    ];
    for chain in fixed {
        let _ = writeln!(out, "add chain ip {TABLE} {chain}");
    }
    let local = "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport";
    let rules = [
        ("filter-prerouting", "ct state new jump firewall-check".to_string()),
        ("filter-input", "ct state new jump nodeport-endpoints-check".into()),
        ("filter-input", "ct state new jump service-endpoints-check".into()),
        ("filter-forward", "ct state new jump service-endpoints-check".into()),
        ("filter-forward", "ct state new jump cluster-ips-check".into()),
        ("filter-output", "ct state new jump service-endpoints-check".into()),
        ("filter-output", "ct state new jump firewall-check".into()),
        ("filter-output-post-dnat", "ct state new jump cluster-ips-check".into()),
        ("nat-prerouting", "jump services".into()),
        ("nat-output", "jump services".into()),
        ("nat-postrouting", "jump masquerading".into()),
        ("services", "ip daddr . meta l4proto . th dport vmap @service-ips".into()),
        ("services", format!("{local} vmap @service-nodeports")),
        ("firewall-check", "ip daddr . meta l4proto . th dport vmap @firewall-ips".into()),
        ("service-endpoints-check", "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into()),
        ("nodeport-endpoints-check", format!("{local} vmap @no-endpoint-nodeports")),
        ("cluster-ips-check", "ip daddr @cluster-ips reject".into()),
        ("cluster-ips-check", "ip daddr 10.96.0.0/12 drop".into()),
        ("reject-chain", "reject".into()),
        ("mark-for-masquerade", format!("mark set mark or {MASQUERADE_MARK}")),
        ("masquerading", format!("mark and {MASQUERADE_MARK} == 0 return")),
        ("masquerading", format!("mark set mark xor {MASQUERADE_MARK}")),
        ("masquerading", "masquerade fully-random".into()),
    ];
    for (chain, rule) in rules {
        let _ = writeln!(out, "add rule ip {TABLE} {chain} {rule}");
    }
    for i in 0..count {
        let endpoints = synthetic::endpoint_addresses(i, None);
        for endpoint in &endpoints {
            add_endpoint_chain(&mut out, i, *endpoint);
        }
        let _ = writeln!(out, "add chain ip {TABLE} {}", service_chain(i));
        service_rules(&mut out, i, &endpoints);
        let ip = synthetic::cluster_ip(i);
        let _ = writeln!(out, "add element ip {TABLE} cluster-ips {{ {ip} }}");
        let _ = writeln!(
            out,
            "add element ip {TABLE} service-ips {{ {ip} . tcp . {SERVICE_PORT} : goto {} }}",
            service_chain(i)
        );
    }
    out
}

/// The `generation`-th one-endpoint change, and the chain it leaves to delete later.
fn change(count: usize, generation: usize, stale: Option<&str>) -> (String, String) {
    let i = synthetic::changed_service(count, generation);
    let mut out = String::new();
    add_endpoint_chain(&mut out, i, synthetic::replacement_address(generation));
    let _ = writeln!(out, "flush chain ip {TABLE} {}", service_chain(i));
    service_rules(&mut out, i, &synthetic::endpoint_addresses(i, Some(generation)));
    let old = endpoint_chain(i, synthetic::endpoint_address(i, 0));
    let _ = writeln!(out, "flush chain ip {TABLE} {old}");
    if let Some(stale) = stale {
        let _ = writeln!(out, "delete chain ip {TABLE} {stale}");
    }
    (out, old)
}

/// Runs `nft -f -` with `script` on stdin; its wall time and CPU time.
fn nft(script: &str) -> (Duration, Cpu) {
    let cpu = children_cpu();
    let started = Instant::now();
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nft runs");
    let mut stdin = child.stdin.take().expect("nft's stdin");
    let output = std::thread::scope(|scope| {
        scope.spawn(move || {
            let _ = stdin.write_all(script.as_bytes());
        });
        child.wait_with_output().expect("nft finishes")
    });
    let wall = started.elapsed();
    assert!(output.status.success(), "nft -f failed: {}", String::from_utf8_lossy(&output.stderr));
    (wall, children_cpu() - cpu)
}

/// Loads the ruleset for `count` Services into a fresh namespace, then applies up to `changes`
/// one-endpoint changes for at most `budget`.
pub fn measure(count: usize, changes: usize, budget: Duration) -> KubeProxy {
    let text = ruleset(count);
    let lines = text.lines().count();
    in_fresh_netns(|| {
        let (load, load_cpu) = nft(&text);
        let mut times = Vec::new();
        let mut stale: Option<String> = None;
        let started = Instant::now();
        for generation in 0..changes {
            if started.elapsed() > budget && times.len() >= 10 {
                break;
            }
            let (script, old) = change(count, generation, stale.as_deref());
            times.push(nft(&script).0);
            stale = Some(old);
        }
        times.sort();
        KubeProxy { services: count, lines, load, load_cpu, changes: times }
    })
}
