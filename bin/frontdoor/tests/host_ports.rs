//! Host ports in the scheduler, as kube-scheduler's NodePorts filter: the conformance test's
//! three pods on one host port (different host IPs and protocols) all run; a pod whose host port
//! is taken stays Pending, marked Unschedulable with upstream's message and a FailedScheduling
//! event, until the pod holding it is gone; of two pods asking for one port at once, one runs.
//! The node runs in a network namespace made for the test.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor};

const WAIT: Duration = Duration::from_secs(30);
const KUBECTL: &str = "1.32";
const UNSCHEDULABLE: &str = "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. \
     preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";

/// A pod running `sleep` with one container port on `host_port` (`host_ip` empty: unset).
fn pod(name: &str, host_ip: &str, protocol: &str, host_port: u16) -> String {
    let host_ip = if host_ip.is_empty() { String::new() } else { format!("\n      hostIP: {host_ip}") };
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sleep, '3600']
    ports:
    - containerPort: {host_port}
      hostPort: {host_port}
      protocol: {protocol}{host_ip}
---
"
    )
}

fn apply(fd: &Frontdoor, manifest: &str) {
    let out = fd.kubectl_with_stdin(KUBECTL, &["apply", "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn get(fd: &Frontdoor, pod: &str, path: &str) -> String {
    let out = fd.kubectl(KUBECTL, &["get", "pod", pod, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn running(fd: &Frontdoor, pod: &str) -> bool {
    get(fd, pod, "{.status.phase}") == "Running"
}

fn unschedulable(fd: &Frontdoor, pod: &str) -> bool {
    get(fd, pod, r#"{.status.conditions[?(@.type=="PodScheduled")].reason}"#) == "Unschedulable"
}

fn describe(fd: &Frontdoor, pod: &str) -> String {
    fd.kubectl_ok(KUBECTL, &["describe", "pod", pod])
}

#[test]
fn host_ports_conflict_only_as_kube_scheduler_says() {
    let fd = Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &[]);
    let node_ip = fd.kubectl_ok(
        KUBECTL,
        &["get", "nodes", "-o", r#"jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}"#],
    );
    assert!(!node_ip.is_empty());

    // The conformance test: same hostPort, different hostIP and protocol.
    let manifest = [
        pod("pod1", "127.0.0.1", "TCP", 54323),
        pod("pod2", &node_ip, "TCP", 54323),
        pod("pod3", &node_ip, "UDP", 54323),
    ]
    .concat();
    apply(&fd, &manifest);
    for name in ["pod1", "pod2", "pod3"] {
        assert!(wait_until(WAIT, || running(&fd, name)), "{}", describe(&fd, name));
    }

    // Every address, UDP: pod3 holds that port on the node's address.
    apply(&fd, &pod("blocked", "", "UDP", 54323));
    assert!(wait_until(WAIT, || unschedulable(&fd, "blocked")), "{}", describe(&fd, "blocked"));
    assert_eq!(get(&fd, "blocked", "{.spec.nodeName}"), "");
    assert_eq!(get(&fd, "blocked", "{.status.phase}"), "Pending");
    assert_eq!(get(&fd, "blocked", r#"{.status.conditions[?(@.type=="PodScheduled")].status}"#), "False");
    assert_eq!(get(&fd, "blocked", r#"{.status.conditions[?(@.type=="PodScheduled")].message}"#), UNSCHEDULABLE);
    let event = || {
        let out = fd.kubectl(
            KUBECTL,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=blocked,reason=FailedScheduling",
                "-o",
                "jsonpath={range .items[*]}{.type}|{.source.component}|{.message}{end}",
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(wait_until(WAIT, || !event().is_empty()), "no FailedScheduling event");
    assert_eq!(event(), format!("Warning|default-scheduler|{UNSCHEDULABLE}"));
    let described = describe(&fd, "blocked");
    assert!(described.contains("FailedScheduling") && described.contains("didn't have free ports"), "{described}");

    // The holder goes: the waiting pod is scheduled and runs.
    fd.kubectl_ok(KUBECTL, &["delete", "pod", "pod3", "--timeout=20s"]);
    assert!(wait_until(WAIT, || running(&fd, "blocked")), "{}", describe(&fd, "blocked"));
    assert_eq!(get(&fd, "blocked", r#"{.status.conditions[?(@.type=="PodScheduled")].status}"#), "True");
    for name in ["pod1", "pod2"] {
        assert!(running(&fd, name), "{}", describe(&fd, name));
    }

    // Two pods asking for one free port at once: one is bound, the other waits.
    apply(&fd, &[pod("race-a", "", "TCP", 54400), pod("race-b", "", "TCP", 54400)].concat());
    let settled = wait_until(WAIT, || {
        (running(&fd, "race-a") && unschedulable(&fd, "race-b"))
            || (running(&fd, "race-b") && unschedulable(&fd, "race-a"))
    });
    assert!(settled, "{}{}", describe(&fd, "race-a"), describe(&fd, "race-b"));
    let bound: Vec<String> = ["race-a", "race-b"].iter().map(|p| get(&fd, p, "{.spec.nodeName}")).collect();
    assert_eq!(bound.iter().filter(|n| n.is_empty()).count(), 1, "{bound:?}");
}
