//! The Node's InternalIP as the kubelet picks it: the address of the interface that holds the
//! default route, the bridge's address where there is none, and `--node-ip` over both. Each node
//! runs in a network namespace made for the test; the default route leads over a veth into a
//! second one (also the test's), and nowhere beyond.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::process::Command;

use frontdoor_testkit::{Frontdoor, NetworkNamespace};

const BINARY: &str = env!("CARGO_BIN_EXE_frontdoor");

/// `ip -n <namespace> <args>`, which must succeed.
fn ip(namespace: &str, args: &[&str]) {
    let output = Command::new("ip").args(["-n", namespace]).args(args).output().unwrap();
    assert!(output.status.success(), "ip -n {namespace} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A node whose namespace has a default route via 192.168.77.1 out of `fdup0`, which holds
/// 192.168.77.2/24 and (secondary) 192.168.77.3/24; the router's end is in `router`.
fn start_routed(router: &NetworkNamespace, flags: &[&str]) -> Frontdoor {
    Frontdoor::start_node_prepared(BINARY.as_ref(), flags, |node| {
        ip(node, &["link", "add", "fdup0", "type", "veth", "peer", "name", "fdrt0", "netns", &router.name]);
        ip(&router.name, &["address", "add", "192.168.77.1/24", "dev", "fdrt0"]);
        ip(&router.name, &["link", "set", "fdrt0", "up"]);
        ip(node, &["address", "add", "192.168.77.2/24", "dev", "fdup0"]);
        ip(node, &["address", "add", "192.168.77.3/24", "dev", "fdup0"]);
        ip(node, &["link", "set", "fdup0", "up"]);
        ip(node, &["route", "add", "default", "via", "192.168.77.1", "dev", "fdup0"]);
    })
}

/// The INTERNAL-IP column of `kubectl get nodes -o wide`.
fn internal_ip(fd: &Frontdoor) -> String {
    let table = fd.kubectl_ok("1.32", &["get", "nodes", "-o", "wide"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let column = header.iter().position(|h| *h == "INTERNAL-IP").unwrap();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{table}");
    rows[0].split_whitespace().nth(column).unwrap().to_string()
}

#[test]
fn the_internal_ip_is_the_address_of_the_default_routes_interface() {
    let router = NetworkNamespace::create();
    let fd = start_routed(&router, &[]);
    assert_eq!(internal_ip(&fd), "192.168.77.2", "the primary address of the default route's interface");
    let addresses = fd.kubectl_ok("1.32", &["get", "nodes", "-o", "jsonpath={.items[0].status.addresses}"]);
    assert!(addresses.contains(r#"{"address":"192.168.77.2","type":"InternalIP"}"#), "{addresses}");
}

#[test]
fn node_ip_overrides_the_default_route() {
    let router = NetworkNamespace::create();
    let fd = start_routed(&router, &["--node-ip", "192.168.77.3"]);
    assert_eq!(internal_ip(&fd), "192.168.77.3");
}

#[test]
fn without_a_default_route_the_internal_ip_is_the_bridges_address() {
    let fd = Frontdoor::start_node(BINARY.as_ref(), &[]);
    assert_eq!(internal_ip(&fd), "10.244.0.1");
}
