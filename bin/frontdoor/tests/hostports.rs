//! Pods' host ports through the kernel, as the CNI portmap plugin maps them: real connections
//! from the node, from a second network namespace on a LAN with the node, and from pods, DNATed
//! by table `ip frontdoor-hostports`. The conformance scenario "[sig-network] HostPort validates
//! that there is no conflict between pods with same hostPort but different hostIP and protocol"
//! (three pods on host port 54323: 127.0.0.1/TCP, the node's address/TCP, the node's
//! address/UDP) answers each on its own (address, protocol); a wildcard host port answers on
//! every address of the node; a pod reaches another through a host port and itself (hairpin);
//! a deleted pod's mapping goes, and the table goes with the node.
//! Every node runs in a network namespace made for its test; the LAN is another of the test's.
#![allow(clippy::unwrap_used)] // a test stops at the first broken assumption

use std::process::{Command, Output};
use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor, Lan};

const KUBECTL: &str = "1.33";
const WAIT: Duration = Duration::from_secs(40);
const PORT: u16 = 54323;

/// One UDP exchange with `host:port`: the answer, or "" after a second of silence.
const UDP_CLIENT: &str = r#"import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(b"hostname", (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recvfrom(2048)[0].decode())
except socket.timeout:
    pass
"#;

/// A LAN between the node's namespace (`192.168.<subnet>.1` on `lan0`, the node's address) and
/// a client's (`.2`), made before `frontdoor up` starts so the node can be given that address.
fn sh(script: &str) {
    let status = Command::new("sh").args(["-ec", script]).status().unwrap();
    assert!(status.success(), "{script}");
}

fn start_with_lan(subnet: u8) -> (Frontdoor, Lan) {
    let node_address = format!("192.168.{subnet}.1");
    let flags = ["--node-name", "n1", "--node-ip", &node_address];
    let mut lan = None;
    let fd = Frontdoor::start_node_prepared(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &flags, |node| {
        lan = Some(Lan::attach(node, subnet));
    });
    (fd, lan.expect("the LAN was attached"))
}

/// A pod running [`frontdoor_testkit::whoami_server`] with container port 8080 on host port
/// `host_port` (`host_ip` empty: none given).
fn pod(name: &str, host_ip: &str, protocol: &str, host_port: u16) -> String {
    let host_ip = if host_ip.is_empty() { String::new() } else { format!(", hostIP: {host_ip}") };
    let script = serde_json::to_string(&frontdoor_testkit::whoami_server(8080, 8080)).unwrap();
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: hostports}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    command: [python3, -c, {script}]
    ports: [{{containerPort: 8080, hostPort: {host_port}, protocol: {protocol}{host_ip}}}]
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

fn wait_running(fd: &Frontdoor, pods: &[&str]) {
    let running = wait_until(WAIT, || pods.iter().all(|pod| get(fd, pod, "{.status.phase}") == "Running"));
    assert!(running, "{}", fd.kubectl_ok(KUBECTL, &["get", "pods", "-o", "wide"]));
}

fn output(mut command: Command) -> Output {
    command.output().unwrap()
}

/// `curl http://<host>:<port>/` with `command` (in some namespace): (exit code, "pod client").
fn curl(mut command: Command, host: &str, port: u16) -> (i32, String) {
    command.args(["-s", "--max-time", "3", &format!("http://{host}:{port}/")]);
    let out = output(command);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One UDP exchange with `command` (`python3` in some namespace): "pod client", or "".
fn udp(mut command: Command, host: &str, port: u16) -> String {
    command.args(["-c", UDP_CLIENT, host, &port.to_string()]);
    String::from_utf8_lossy(&output(command).stdout).trim().to_string()
}

/// The pod that answered ("pod client" → "pod").
fn answered_by(answer: &str) -> &str {
    answer.split_whitespace().next().unwrap_or("")
}

/// Waits until `attempt` gives an answer from `pod`, and returns that answer.
fn answer_from(pod: &str, what: &str, mut attempt: impl FnMut() -> String) -> String {
    let mut last = String::new();
    let answered = wait_until(WAIT, || {
        last = attempt();
        answered_by(&last) == pod
    });
    assert!(answered, "{what}: expected an answer from {pod}, last answer {last:?}");
    last
}

#[test]
fn pods_with_one_host_port_on_different_host_ips_and_protocols_all_answer() {
    let (fd, lan) = start_with_lan(78);
    let node_ip = lan.node_address.clone();
    apply(
        &fd,
        &[
            pod("pod1", "127.0.0.1", "TCP", PORT),
            pod("pod2", &node_ip, "TCP", PORT),
            pod("pod3", &node_ip, "UDP", PORT),
        ]
        .concat(),
    );
    wait_running(&fd, &["pod1", "pod2", "pod3"]);

    // From the node: each (address, protocol) reaches its own pod.
    answer_from("pod1", "TCP 127.0.0.1 from the node", || curl(fd.command("curl"), "127.0.0.1", PORT).1);
    answer_from("pod2", "TCP node address from the node", || curl(fd.command("curl"), &node_ip, PORT).1);
    answer_from("pod3", "UDP node address from the node", || udp(fd.command("python3"), &node_ip, PORT));

    // From the LAN: the node's address, both protocols, and the pods see the client as it is.
    let answer = answer_from("pod2", "TCP from the LAN", || curl(lan.command("curl"), &node_ip, PORT).1);
    assert_eq!(answer, format!("pod2 {}", lan.client_address));
    let answer = answer_from("pod3", "UDP from the LAN", || udp(lan.command("python3"), &node_ip, PORT));
    assert_eq!(answer, format!("pod3 {}", lan.client_address));

    // Nothing else is mapped: another address of the node (the bridge's) refuses at once, and
    // UDP on 127.0.0.1 (pod1's is TCP only) goes unanswered.
    assert_eq!(curl(fd.command("curl"), "10.244.0.1", PORT).0, 7, "the bridge's address is not pod2's host IP");
    assert_eq!(udp(fd.command("python3"), "127.0.0.1", PORT), "");
    // 127.0.0.1 cannot be reached from the LAN (it is the client's own loopback there anyway),
    // nor from a pod: only the node's loopback is mapped.
    let (code, _) = curl(fd.kubectl_command(KUBECTL, &["exec", "pod2", "--", "curl"]), "127.0.0.1", PORT);
    assert_eq!(code, 7, "a pod's own 127.0.0.1 is its own");
}

#[test]
fn wildcard_host_ports_hairpin_and_removal() {
    let (mut fd, lan) = start_with_lan(79);
    let node_ip = lan.node_address.clone();
    apply(&fd, &[pod("wild", "", "TCP", PORT), pod("specific", &node_ip, "TCP", PORT + 1)].concat());
    wait_running(&fd, &["wild", "specific"]);

    // No host IP: every address of the node, from the node and from the LAN.
    for address in ["127.0.0.1", "10.244.0.1", node_ip.as_str()] {
        answer_from("wild", &format!("{address} from the node"), || curl(fd.command("curl"), address, PORT).1);
    }
    let answer = answer_from("wild", "from the LAN", || curl(lan.command("curl"), &node_ip, PORT).1);
    assert_eq!(answer, format!("wild {}", lan.client_address));
    // A connection that only passes through the node keeps its destination.
    let (code, _) = curl(lan.command("curl"), "10.244.0.250", PORT);
    assert_ne!(code, 0, "an address that is not the node's was mapped");

    // From a pod: another pod through its host port sees the caller's own address; a pod
    // reaching itself through its host port (hairpin) is masqueraded, and answered.
    let wild_ip = get(&fd, "wild", "{.status.podIP}");
    let specific_ip = get(&fd, "specific", "{.status.podIP}");
    let exec = |pod: &str| fd.kubectl_command(KUBECTL, &["exec", pod, "--", "curl"]);
    let answer = answer_from("specific", "pod to pod", || curl(exec("wild"), &node_ip, PORT + 1).1);
    assert_eq!(answer, format!("specific {wild_ip}"));
    let answer = answer_from("specific", "hairpin", || curl(exec("specific"), &node_ip, PORT + 1).1);
    assert_ne!(answer, format!("specific {specific_ip}"), "a hairpin connection must be masqueraded");

    // A deleted pod's mapping goes with it.
    fd.kubectl_ok(KUBECTL, &["delete", "pod", "specific", "--wait=true"]);
    let refused = wait_until(WAIT, || curl(fd.command("curl"), &node_ip, PORT + 1).0 == 7);
    assert!(refused, "the host port of a deleted pod still answers");
    answer_from("wild", "the other pod's port", || curl(fd.command("curl"), &node_ip, PORT).1);

    // The table goes when the node stops, and comes back with it (written whole).
    let tables = |fd: &Frontdoor| {
        let mut command = fd.command("nft");
        command.args(["list", "tables"]);
        String::from_utf8_lossy(&output(command).stdout).into_owned()
    };
    assert!(tables(&fd).contains("table ip frontdoor-hostports"), "{}", tables(&fd));
    let pid = fd.pid().to_string();
    sh(&format!("kill -TERM {pid}"));
    let gone = wait_until(WAIT, || {
        !Command::new("kill").args(["-0", &pid]).status().unwrap().success() || {
            // A zombie until the guard reaps it: look at its state.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.contains(") Z "))
        }
    });
    assert!(gone, "the node did not stop");
    assert!(!tables(&fd).contains("frontdoor-hostports"), "{}", tables(&fd));
    fd.kill_and_restart();
    wait_running(&fd, &["wild"]);
    answer_from("wild", "after a restart", || curl(fd.command("curl"), &node_ip, PORT).1);
}
