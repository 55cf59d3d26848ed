//! Pods' host ports (`containers[].ports[].hostPort`), as the CNI `portmap` plugin maps them on a
//! real node: a connection to one of the node's addresses at a host port is DNATed to the pod's
//! address and container port.
//!
//! The mappings live in a table of their own, `ip frontdoor-hostports`, apart from the Service
//! proxy's, as portmap keeps its `cni_hostport` apart from kube-proxy's. Where portmap writes a
//! rule per mapping, this table has two verdict-free DNAT maps, whose elements are the mappings:
//!
//! ```text
//! chain prerouting { type nat hook prerouting priority dstnat  (and chain output: hook output)
//!     dnat ip to ip daddr . meta l4proto . th dport map @hostip-hostports
//!     fib daddr type local dnat ip to meta l4proto . th dport map @hostports }
//! chain postrouting { type nat hook postrouting priority srcnat
//!     ip saddr . ip daddr @masquerade masquerade }
//! ```
//!
//! * A `hostIP` of its own (other than `0.0.0.0`) maps only that address (`hostip-hostports`,
//!   consulted first, so it wins over a wildcard mapping of the same port); none or `0.0.0.0`
//!   maps every local address of the node (`hostports`, behind `fib daddr type local`; portmap's
//!   nftables backend checks that only on output, its iptables backend on both hooks, as here:
//!   without it a pod's connection *through* the node to some other host at that port would be
//!   taken). An IPv6 `hostIP` is skipped (pods here are IPv4-only), as portmap skips mappings of
//!   the other family.
//! * TCP, UDP and SCTP; `meta l4proto . th dport` reads the port of each.
//! * From the node itself (nat `output`), from the LAN and from other pods (`prerouting`).
//! * Masquerade as portmap does (its `snat` default): a pod reaching itself through its host
//!   port (hairpin: source and destination are the pod) and a connection from `127.0.0.1`.
//! * Loopback: like portmap, host ports answer on `127.0.0.1` (a `hostIP: 127.0.0.1` mapping,
//!   and the wildcard ones, since `fib daddr type local` holds for loopback addresses on
//!   output). A packet from 127.0.0.1 DNATed to a pod must be routed out of the bridge, which
//!   the kernel allows only with `route_localnet` on it, so the node turns that on for the bridge
//!   (portmap does the same on the host interface) and, as kube-proxy guards the same setting
//!   (CVE-2020-8558), drops new connections arriving on the bridge for a loopback address
//!   (`chain localnet-guard`), which `route_localnet` would otherwise deliver to the node's
//!   loopback-only listeners. Packets from the LAN to 127.0.0.1 stay martians, as before.
//!
//! A mapping exists while its pod is bound to this node, has an address and has not finished
//! (a terminating pod keeps its mappings until its object is gone, as a sandbox keeps its
//! portmap entries until CNI DEL). Two pods claiming one (hostIP, protocol, port) — the scheduler
//! prevents it, but a pod being replaced may overlap its successor — resolve to the pod not
//! terminating, then the newest.
//!
//! The table is written whole when the node starts (and after any failure), then changed by
//! difference, element by element, in one transaction per change; it is removed when the node
//! stops, and by `frontdoor cleanup` ([`remove_hostports_table`]) after a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use frontdoor_informers::{on_change, Backoff, InformerFactory, Scope};
use frontdoor_netfilter::phrases::{
    ct_state_new, daddr_proto_dport, dnat_via_map, fib_daddr_local, iifname_is, ip_daddr, ip_in_range, ip_saddr,
    proto_dport, verdict,
};
use frontdoor_netfilter::{
    ApplyError, BaseChain, Batch, ChainType, CmpOp, DataType, Element, ElementData, Expr, Family, Hook, Register,
    SetData, SetSpec, Socket, Value, Verdict,
};
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;

use crate::dedicated::Dedicated;

/// The table host ports live in (family `ip`).
pub const TABLE: &str = "frontdoor-hostports";

const HOSTIP_HOSTPORTS: &str = "hostip-hostports";
const HOSTPORTS: &str = "hostports";
const MASQUERADE: &str = "masquerade";

/// nft's `dstnat` and `srcnat` priorities; the guard filters just before DNAT.
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;

/// What a connection is addressed to: a host port on one address (`host_ip`) or on all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub host_ip: Option<Ipv4Addr>,
    /// `IPPROTO_*`: 6 TCP, 17 UDP, 132 SCTP.
    pub protocol: u8,
    pub port: u16,
}

/// Where it goes: the pod's address and container port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// Everything the table holds besides its fixed chains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mappings {
    pub ports: BTreeMap<Frontend, Target>,
    /// (source, destination) pairs to masquerade: (pod, pod) and (127.0.0.1, pod).
    pub masquerade: BTreeSet<(Ipv4Addr, Ipv4Addr)>,
}

fn protocol_number(protocol: Option<&str>) -> Option<u8> {
    match protocol.unwrap_or("TCP") {
        "TCP" => Some(6),
        "UDP" => Some(17),
        "SCTP" => Some(132),
        _ => None,
    }
}

/// The host ports `pod` asks for, if it is a pod that gets them: not on the host network, with
/// an IPv4 address, not finished. Pure.
pub fn pod_mappings(pod: &Pod) -> Vec<(Frontend, Target)> {
    let Some(spec) = pod.spec.as_ref() else { return Vec::new() };
    if spec.host_network == Some(true) || frontdoor_informers::pods::is_terminal(pod) {
        return Vec::new();
    }
    let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for port in spec.containers.iter().flat_map(|c| c.ports.as_deref().unwrap_or_default()) {
        let Some(host_port) = port.host_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) else {
            continue;
        };
        let Ok(container_port) = u16::try_from(port.container_port) else { continue };
        let Some(protocol) = protocol_number(port.protocol.as_deref()) else { continue };
        let host_ip = match port.host_ip.as_deref().unwrap_or_default() {
            "" => None,
            text => match text.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(address)) if address.is_unspecified() => None,
                Ok(std::net::IpAddr::V4(address)) => Some(address),
                // The other family (or nonsense, which validation refuses): not mapped.
                _ => continue,
            },
        };
        out.push((Frontend { host_ip, protocol, port: host_port }, Target { ip, port: container_port }));
    }
    out
}

/// The mappings of all of `pods` (this node's), one pod per frontend. Pure.
pub fn mappings<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Mappings {
    // Per frontend: the pod that keeps it (not terminating first, then the newest, then by name).
    type Rank = (bool, std::cmp::Reverse<Option<k8s_openapi::jiff::Timestamp>>, String);
    let mut chosen: BTreeMap<Frontend, (Rank, Target)> = BTreeMap::new();
    for pod in pods {
        let rank: Rank = (
            pod.metadata.deletion_timestamp.is_some(),
            std::cmp::Reverse(pod.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or(""),
                pod.metadata.name.as_deref().unwrap_or("")
            ),
        );
        for (frontend, target) in pod_mappings(pod) {
            match chosen.get(&frontend) {
                Some((held, _)) if *held <= rank => {}
                _ => {
                    chosen.insert(frontend, (rank.clone(), target));
                }
            }
        }
    }
    let mut out = Mappings::default();
    for (frontend, (_, target)) in chosen {
        out.masquerade.insert((target.ip, target.ip));
        out.masquerade.insert((Ipv4Addr::LOCALHOST, target.ip));
        out.ports.insert(frontend, target);
    }
    out
}

fn set_specs() -> [SetSpec; 3] {
    use DataType::*;
    let target = Some(SetData::Types(vec![Ipv4Addr, InetService]));
    let spec = |name: &str, key: Vec<DataType>, data: Option<SetData>| SetSpec {
        name: name.to_string(),
        key,
        data,
        timeout: None,
        dynamic: false,
    };
    [
        spec(HOSTIP_HOSTPORTS, vec![Ipv4Addr, InetProto, InetService], target.clone()),
        spec(HOSTPORTS, vec![InetProto, InetService], target),
        spec(MASQUERADE, vec![Ipv4Addr, Ipv4Addr], None),
    ]
}

/// The rules of the `prerouting` and `output` chains.
fn dnat_rules() -> Vec<Vec<Expr>> {
    let mut specific = daddr_proto_dport().to_vec();
    specific.extend(dnat_via_map(HOSTIP_HOSTPORTS));
    let mut wildcard = fib_daddr_local().to_vec();
    wildcard.extend(proto_dport());
    wildcard.extend(dnat_via_map(HOSTPORTS));
    vec![specific, wildcard]
}

/// `iifname "<bridge>" ip daddr 127.0.0.0/8 ct state new drop`.
fn localnet_guard(bridge: &str) -> Vec<Expr> {
    let mut rule = iifname_is(bridge).to_vec();
    rule.extend(ip_in_range(ip_daddr, std::net::Ipv4Addr::new(127, 0, 0, 0), 8, CmpOp::Eq));
    rule.extend(ct_state_new());
    rule.push(verdict(Verdict::Drop));
    rule
}

fn port_element(frontend: &Frontend, target: &Target) -> (usize, Element) {
    let data = Some(ElementData::Values(vec![Value::Ipv4(target.ip), Value::Port(target.port)]));
    match frontend.host_ip {
        Some(ip) => (
            0,
            Element { key: vec![Value::Ipv4(ip), Value::Proto(frontend.protocol), Value::Port(frontend.port)], data },
        ),
        None => (1, Element { key: vec![Value::Proto(frontend.protocol), Value::Port(frontend.port)], data }),
    }
}

fn masquerade_element(pair: &(Ipv4Addr, Ipv4Addr)) -> Element {
    Element { key: vec![Value::Ipv4(pair.0), Value::Ipv4(pair.1)], data: None }
}

/// Adds the elements of `mappings` (`add`) or deletes them (by key) to `batch`.
fn put_elements<'a>(
    batch: &mut Batch,
    add: bool,
    ports: impl IntoIterator<Item = (&'a Frontend, &'a Target)>,
    masquerade: impl IntoIterator<Item = &'a (Ipv4Addr, Ipv4Addr)>,
) {
    let specs = set_specs();
    let mut by_map: [Vec<Element>; 3] = Default::default();
    for (frontend, target) in ports {
        let (map, element) = port_element(frontend, target);
        by_map[map].push(element);
    }
    by_map[2].extend(masquerade.into_iter().map(masquerade_element));
    for (spec, elements) in specs.iter().zip(by_map.iter()) {
        if add {
            batch.add_elements(TABLE, spec, elements);
        } else {
            batch.delete_elements(TABLE, spec, elements);
        }
    }
}

/// The whole table, replacing whatever is there. Pure.
pub fn full_batch(bridge: &str, mappings: &Mappings) -> Batch {
    let mut batch = Batch::new(Family::Ipv4);
    // Adding first makes the delete succeed whether or not the table exists.
    batch.add_table(TABLE);
    batch.delete_table(TABLE);
    batch.add_table(TABLE);
    for spec in &set_specs() {
        batch.add_set(TABLE, spec);
    }
    let base = |hook, priority, kind| Some(BaseChain { hook, priority, kind });
    type Chain<'a> = (&'a str, Option<BaseChain>, Vec<Vec<Expr>>);
    let chains: [Chain; 4] = [
        ("localnet-guard", base(Hook::Prerouting, DSTNAT - 10, ChainType::Filter), vec![localnet_guard(bridge)]),
        ("prerouting", base(Hook::Prerouting, DSTNAT, ChainType::Nat), dnat_rules()),
        ("output", base(Hook::Output, DSTNAT, ChainType::Nat), dnat_rules()),
        (
            "postrouting",
            base(Hook::Postrouting, SRCNAT, ChainType::Nat),
            vec![vec![
                ip_saddr(Register::R1),
                ip_daddr(Register::R32(1)),
                Expr::Lookup { set: MASQUERADE.to_string(), sreg: Register::R1, dreg: None, invert: false },
                Expr::Masquerade { fully_random: false },
            ]],
        ),
    ];
    for (name, base, _) in &chains {
        batch.add_chain(TABLE, name, base.as_ref());
    }
    for (name, _, rules) in &chains {
        for rule in rules {
            batch.add_rule(TABLE, name, rule);
        }
    }
    put_elements(&mut batch, true, &mappings.ports, &mappings.masquerade);
    batch
}

/// The change from `old` to `new`, element by element (empty when nothing changed). Pure.
pub fn difference(old: &Mappings, new: &Mappings) -> Batch {
    let mut batch = Batch::new(Family::Ipv4);
    let gone_ports = old.ports.iter().filter(|(frontend, target)| new.ports.get(frontend) != Some(target));
    let gone_masquerade = old.masquerade.difference(&new.masquerade);
    put_elements(&mut batch, false, gone_ports, gone_masquerade);
    let new_ports = new.ports.iter().filter(|(frontend, target)| old.ports.get(frontend) != Some(target));
    let new_masquerade = new.masquerade.difference(&old.masquerade);
    put_elements(&mut batch, true, new_ports, new_masquerade);
    batch
}

/// Removes the host-port table from the calling thread's network namespace (for `frontdoor
/// cleanup`, after a node was killed). `Ok(false)` when there was none.
pub fn remove_hostports_table() -> Result<bool, ApplyError> {
    let mut socket = Socket::open().map_err(ApplyError::Io)?;
    let mut batch = Batch::new(Family::Ipv4);
    batch.delete_table(TABLE);
    match socket.apply(&batch) {
        Ok(()) => Ok(true),
        Err(ApplyError::Kernel { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// `route_localnet` on `bridge`, in the calling thread's network namespace.
fn set_route_localnet(bridge: &str, on: bool) -> std::io::Result<()> {
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"), if on { "1" } else { "0" })
}

/// Keeps the table in step with this node's pods until `stop` completes, then removes it (and
/// turns `route_localnet` off again). Runs in the node's network namespace.
pub(crate) async fn run(factory: InformerFactory, node_name: String, bridge: String, stop: impl std::future::Future) {
    let socket = match Dedicated::start("hostports", || Socket::open().map_err(|e| e.to_string())) {
        Ok(socket) => socket,
        Err(error) => {
            tracing::error!(%error, "host ports: could not start the nftables thread");
            return;
        }
    };
    let informer = factory.cluster_wide::<Pod>(Scope::all().fields(format!("spec.nodeName={node_name}")));
    let store = informer.store();
    let wake = Arc::new(Notify::new());
    let shutdown = factory.shutdown();
    let changes = {
        let wake = wake.clone();
        on_change(informer.subscribe(), &shutdown, move |_| wake.notify_one())
    };
    tokio::pin!(stop);
    tokio::select! {
        _ = &mut stop => return,
        () = informer.synced() => {}
    }
    let backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(5) };
    let mut failures = 0u32;
    // What the kernel holds; `None`: unknown, so the next write is a whole table.
    let mut programmed: Option<Mappings> = None;
    loop {
        let pods = store.state();
        let wanted = mappings(pods.iter().map(|pod| pod.as_ref()));
        let (batch, full) = match &programmed {
            Some(old) => (difference(old, &wanted), false),
            None => (full_batch(&bridge, &wanted), true),
        };
        let outcome = if batch.is_empty() {
            Ok(())
        } else {
            let bridge = bridge.clone();
            socket
                .run(move |socket| {
                    if full {
                        set_route_localnet(&bridge, true)
                            .map_err(|e| format!("setting route_localnet on {bridge}: {e}"))?;
                    }
                    socket.apply(&batch).map_err(|e| e.to_string())
                })
                .await
                .and_then(|applied| applied)
        };
        match outcome {
            Ok(()) => {
                if programmed.as_ref() != Some(&wanted) {
                    tracing::debug!(mappings = wanted.ports.len(), full, "host ports written");
                }
                programmed = Some(wanted);
                failures = 0;
                tokio::select! {
                    _ = &mut stop => break,
                    () = wake.notified() => {}
                }
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "writing the host-port table failed; it is written whole on the next try");
                programmed = None;
                tokio::select! {
                    _ = &mut stop => break,
                    () = tokio::time::sleep(backoff.delay(failures)) => {}
                }
            }
        }
    }
    changes.abort();
    let removed = socket
        .run(move |socket| {
            let _ = set_route_localnet(&bridge, false);
            let mut batch = Batch::new(Family::Ipv4);
            batch.add_table(TABLE);
            batch.delete_table(TABLE);
            socket.apply(&batch).map_err(|e| e.to_string())
        })
        .await
        .and_then(|removed| removed);
    if let Err(error) = removed {
        tracing::warn!(%error, "removing the host-port table");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: Option<&str>, ports: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "ports": ports}]},
            "status": {"podIP": ip, "phase": "Running"},
        }))
        .unwrap()
    }

    const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

    #[test]
    fn reads_host_ports_as_portmap_maps_them() {
        let p = pod(
            "p",
            Some("10.244.0.7"),
            serde_json::json!([
                {"containerPort": 8080, "hostPort": 54323, "hostIP": "127.0.0.1"},
                {"containerPort": 8080, "hostPort": 54323, "hostIP": "192.168.1.1", "protocol": "UDP"},
                {"containerPort": 9090, "hostPort": 9000, "hostIP": "0.0.0.0", "protocol": "SCTP"},
                {"containerPort": 9091, "hostPort": 9001},
                {"containerPort": 9092, "hostPort": 9002, "hostIP": "::1"},
                {"containerPort": 80},
            ]),
        );
        let target = |port| Target { ip: "10.244.0.7".parse().unwrap(), port };
        assert_eq!(
            pod_mappings(&p),
            vec![
                (Frontend { host_ip: Some(LOCALHOST), protocol: 6, port: 54323 }, target(8080)),
                (Frontend { host_ip: Some("192.168.1.1".parse().unwrap()), protocol: 17, port: 54323 }, target(8080)),
                (Frontend { host_ip: None, protocol: 132, port: 9000 }, target(9090)),
                (Frontend { host_ip: None, protocol: 6, port: 9001 }, target(9091)),
            ]
        );
        // No address yet, finished, or on the host's network: nothing to map.
        assert!(pod_mappings(&pod("p", None, serde_json::json!([{"containerPort": 1, "hostPort": 2}]))).is_empty());
        let mut done = p.clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(pod_mappings(&done).is_empty());
        let mut host = p.clone();
        host.spec.as_mut().unwrap().host_network = Some(true);
        assert!(pod_mappings(&host).is_empty());
    }

    #[test]
    fn one_pod_per_frontend_the_live_one_then_the_newest() {
        let ports = serde_json::json!([{"containerPort": 80, "hostPort": 8080}]);
        let old = pod("old", Some("10.244.0.2"), ports.clone());
        let mut new = pod("new", Some("10.244.0.3"), ports.clone());
        new.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2024-01-02T00:00:00Z".parse().unwrap()));
        let wanted = mappings([&old, &new]);
        let frontend = Frontend { host_ip: None, protocol: 6, port: 8080 };
        assert_eq!(wanted.ports[&frontend].ip, "10.244.0.3".parse::<Ipv4Addr>().unwrap());
        let mut leaving = new.clone();
        leaving.metadata.deletion_timestamp = new.metadata.creation_timestamp.clone();
        let wanted = mappings([&leaving, &old]);
        assert_eq!(wanted.ports[&frontend].ip, "10.244.0.2".parse::<Ipv4Addr>().unwrap());
        let pod_ip: Ipv4Addr = "10.244.0.2".parse().unwrap();
        assert_eq!(wanted.masquerade, BTreeSet::from([(pod_ip, pod_ip), (LOCALHOST, pod_ip)]));
    }

    #[test]
    fn a_change_is_written_as_its_difference() {
        let a = pod("a", Some("10.244.0.2"), serde_json::json!([{"containerPort": 80, "hostPort": 8080}]));
        let b = pod("b", Some("10.244.0.3"), serde_json::json!([{"containerPort": 80, "hostPort": 9090}]));
        let before = mappings([&a]);
        let after = mappings([&a, &b]);
        assert!(difference(&before, &before).is_empty());
        let batch = difference(&before, &after);
        let operations: Vec<&str> = (0..batch.message_count()).filter_map(|i| batch.operation(i)).collect();
        assert_eq!(
            operations,
            ["add element frontdoor-hostports hostports", "add element frontdoor-hostports masquerade"]
        );
        let batch = difference(&after, &before);
        let operations: Vec<&str> = (0..batch.message_count()).filter_map(|i| batch.operation(i)).collect();
        assert_eq!(
            operations,
            ["delete element frontdoor-hostports hostports", "delete element frontdoor-hostports masquerade"]
        );
    }

    /// What `nft list table ip frontdoor-hostports` shows of the table this module writes.
    #[test]
    fn the_table_in_the_kernel() {
        let a = pod(
            "a",
            Some("10.244.0.2"),
            serde_json::json!([
                {"containerPort": 8080, "hostPort": 54323, "hostIP": "127.0.0.1"},
                {"containerPort": 8080, "hostPort": 54323, "protocol": "UDP"},
            ]),
        );
        let listing = frontdoor_netns::run_in_fresh_network_namespace(|| {
            let mut socket = Socket::open().unwrap();
            socket.apply(&full_batch("frontdoor0", &mappings([&a]))).unwrap();
            // Written again whole: replaces, never fails on what is there.
            socket.apply(&full_batch("frontdoor0", &mappings([&a]))).unwrap();
            let out = std::process::Command::new("nft").args(["list", "table", "ip", TABLE]).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let listing = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(remove_hostports_table().unwrap());
            assert!(!remove_hostports_table().unwrap());
            listing
        })
        .unwrap();
        for line in [
            "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service",
            "elements = { 127.0.0.1 . tcp . 54323 : 10.244.0.2 . 8080 }",
            "elements = { udp . 54323 : 10.244.0.2 . 8080 }",
            "type ipv4_addr . ipv4_addr",
            "127.0.0.1 . 10.244.0.2",
            "10.244.0.2 . 10.244.0.2 }",
            "iifname \"frontdoor0\" ip daddr 127.0.0.0/8 ct state new drop",
            "dnat ip to ip daddr . meta l4proto . th dport map @hostip-hostports",
            "fib daddr type local dnat ip to meta l4proto . th dport map @hostports",
            "ip saddr . ip daddr @masquerade masquerade",
        ] {
            assert!(listing.contains(line), "{line:?} not in:\n{listing}");
        }
    }
}
