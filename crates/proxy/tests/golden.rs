//! The ruleset in the kernel, read back with `nft list`: a full sync of a set of Services
//! against a golden listing, and partial syncs that must leave exactly what a full sync of the
//! final state leaves. Each test programs a network namespace of its own (root and the `nft`
//! program needed; nothing touches the machine's own rules).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use frontdoor_netfilter::Socket;
use frontdoor_proxy::programmed::Programmed;
use frontdoor_proxy::render::{render_service, Fragment, RenderConfig};
use frontdoor_proxy::{ProxyModel, SourceRange};
use frontdoor_proxy_model::ServiceKey;
use serde_json::json;

fn in_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): run as root");
            f()
        })
        .join()
        .unwrap()
    })
}

fn listing() -> String {
    let out = Command::new("nft").args(["list", "table", "ip", "frontdoor"]).output().expect("nft (nftables)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn config() -> RenderConfig {
    RenderConfig {
        service_cidrs: vec![SourceRange::parse("10.96.0.0/12").unwrap()],
        cluster_cidr: SourceRange::parse("10.244.0.0/16").unwrap(),
        node_local_dns: Some("10.96.0.10".parse().unwrap()),
    }
}

fn service(name: &str, spec: serde_json::Value, status: serde_json::Value) -> k8s_openapi::api::core::v1::Service {
    serde_json::from_value(json!({"metadata": {"namespace": "default", "name": name}, "spec": spec, "status": status}))
        .unwrap()
}

/// A slice of `service` with endpoints `(ip, ready, serving, terminating, node)`.
fn slice(
    service: &str,
    port: (&str, &str, u16),
    endpoints: &[(&str, bool, bool, bool, &str)],
) -> k8s_openapi::api::discovery::v1::EndpointSlice {
    let endpoints: Vec<_> = endpoints
        .iter()
        .map(|(ip, ready, serving, terminating, node)| {
            json!({"addresses": [ip], "nodeName": node,
                   "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": format!("{service}-x"), "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": port.0, "protocol": port.1, "port": port.2}],
        "endpoints": endpoints
    }))
    .unwrap()
}

const READY: (bool, bool, bool) = (true, true, false);

fn ep<'a>(ip: &'a str, node: &'a str) -> (&'a str, bool, bool, bool, &'a str) {
    (ip, READY.0, READY.1, READY.2, node)
}

/// Every shape of Service the renderer knows.
fn cluster() -> ProxyModel {
    let mut model = ProxyModel::new("n1");
    model.apply_service(&service(
        "api",
        json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}),
        json!({}),
    ));
    model.apply_slice(&slice("api", ("http", "TCP", 8080), &[ep("10.244.0.5", "n1"), ep("10.244.0.6", "n2")]));
    model.apply_service(&service(
        "web",
        json!({"type": "LoadBalancer", "clusterIP": "10.96.0.21", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32100,
               "externalIPs": ["192.0.2.10"], "loadBalancerSourceRanges": ["192.168.0.0/16"],
               "ports": [{"name": "", "port": 443, "nodePort": 30443}]}),
        json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.240"}]}}),
    ));
    model.apply_slice(&slice("web", ("", "TCP", 8443), &[ep("10.244.0.7", "n1"), ep("10.244.0.8", "n2")]));
    model.apply_service(&service(
        "sticky",
        json!({"type": "NodePort", "clusterIP": "10.96.0.22", "sessionAffinity": "ClientIP",
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
               "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}),
        json!({}),
    ));
    model.apply_slice(&slice("sticky", ("dns", "UDP", 5353), &[ep("10.244.0.9", "n1"), ep("10.244.0.10", "n1")]));
    model.apply_service(&service("empty", json!({"clusterIP": "10.96.0.23", "ports": [{"port": 80}]}), json!({})));
    model.apply_service(&service(
        "elsewhere",
        json!({"clusterIP": "10.96.0.24", "internalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        json!({}),
    ));
    model.apply_slice(&slice("elsewhere", ("", "TCP", 80), &[ep("10.244.0.11", "n2")]));
    model.take_changed();
    model
}

fn fragments(model: &ProxyModel) -> Vec<(ServiceKey, Fragment)> {
    let mut keys: Vec<ServiceKey> = model.services().cloned().collect();
    keys.sort();
    keys.into_iter().map(|key| (key.clone(), render_service(&model.resolve(&key), &config()))).collect()
}

fn full_sync(model: &ProxyModel) -> Programmed {
    let (state, plan) = Programmed::full("frontdoor", &config(), fragments(model));
    Socket::open().unwrap().apply(&plan.batch).unwrap();
    state
}

/// Compares with `tests/golden/<name>.nft`; `FRONTDOOR_BLESS=1` rewrites it.
fn check_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.nft"));
    if std::env::var_os("FRONTDOOR_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(expected == actual, "{} differs from what the kernel holds:\n{actual}", path.display());
}

#[test]
fn a_full_sync_programs_the_golden_ruleset() {
    let text = in_netns(|| {
        full_sync(&cluster());
        listing()
    });
    check_golden("full", &text);
}

#[test]
fn partial_syncs_leave_what_a_full_sync_of_the_final_state_leaves() {
    let (partial, full) = in_netns(|| {
        let mut model = cluster();
        let mut state = full_sync(&model);
        let mut socket = Socket::open().unwrap();
        let mut now = Instant::now();
        let mut sync = |model: &mut ProxyModel, state: &mut Programmed, now: Instant| {
            let changes = model
                .take_changed()
                .into_iter()
                .map(|key| {
                    let f = render_service(&model.resolve(&key), &config());
                    (key, Some(f))
                })
                .collect();
            let plan = state.plan(changes, now);
            socket.apply(&plan.batch).unwrap();
        };
        // An endpoint replaced, one turning terminating (kept: no ready one is left? no: one is),
        // a Service losing affinity, one gaining endpoints, one deleted, a new one.
        model.apply_slice(&slice("api", ("http", "TCP", 8080), &[ep("10.244.0.5", "n1"), ep("10.244.0.12", "n2")]));
        model.apply_slice(&slice(
            "web",
            ("", "TCP", 8443),
            &[ep("10.244.0.7", "n1"), ("10.244.0.8", false, true, true, "n2")],
        ));
        model.apply_service(&service(
            "sticky",
            json!({"type": "NodePort", "clusterIP": "10.96.0.22", "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]}),
            json!({}),
        ));
        sync(&mut model, &mut state, now);
        model.apply_slice(&slice("empty", ("", "TCP", 80), &[ep("10.244.0.5", "n1")]));
        model.delete_service("default", "elsewhere");
        model.apply_service(&service("new", json!({"clusterIP": "10.96.0.25", "ports": [{"port": 80}]}), json!({})));
        model.apply_slice(&slice(
            "new",
            ("", "TCP", 80),
            &[ep("10.244.0.5", "n1"), ep("10.244.0.6", "n2"), ep("10.244.0.13", "n2")],
        ));
        now += Duration::from_millis(10);
        sync(&mut model, &mut state, now);
        // Later: the chains the first syncs stopped using are deleted.
        now += Duration::from_secs(2);
        sync(&mut model, &mut state, now);
        assert!(!state.has_pending_cleanup());
        let partial = listing();
        full_sync(&model);
        (partial, listing())
    });
    assert_eq!(normalized(&partial), normalized(&full));
}

/// A listing with its blocks (sets, maps, chains) sorted by name and each set's elements sorted:
/// the kernel lists both in an order that depends on history, not content. Rules keep their
/// order.
fn normalized(listing: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
    let mut elements: Option<String> = None;
    for line in listing.lines() {
        if line.starts_with('\t') && !line.starts_with("\t\t") && line.trim_end().ends_with('{') {
            blocks.push((line.trim().to_string(), Vec::new()));
            continue;
        }
        let Some((_, body)) = blocks.last_mut() else { continue };
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("elements = { ") {
            elements = Some(rest.to_string());
        } else if let Some(text) = elements.as_mut() {
            text.push(' ');
            text.push_str(trimmed);
        } else if !trimmed.is_empty() && trimmed != "}" {
            body.push(trimmed.to_string());
        }
        if elements.as_ref().is_some_and(|text| text.ends_with('}')) {
            let text = elements.take().unwrap();
            let mut items: Vec<String> = text
                .trim_end_matches('}')
                .split(',')
                .map(|item| item.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect();
            items.sort();
            body.push(format!("elements: {}", items.join(", ")));
        }
    }
    blocks.sort();
    blocks
}
