//! `frontdoor cleanup` after a `kill -9` of `frontdoor up`: the pods' processes the node left
//! running are stopped, its bridge (with its address and routes) is gone, so are the
//! load-balancer addresses it answered for on the LAN, and a second run has nothing to do; a
//! node that stops normally withdraws those addresses itself. Everything happens inside network
//! namespaces made for the test.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::process::{Command, Output};
use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor, Lan};

const BINARY: &str = env!("CARGO_BIN_EXE_frontdoor");
const WAIT: Duration = Duration::from_secs(30);

/// The pids of live processes (zombies count as gone) whose command line is exactly `args`.
fn processes(args: &[&str]) -> Vec<String> {
    let wanted: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted))
        .filter(|e| alive(&e.file_name().to_string_lossy()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Whether process `pid` exists with a thread that is not a zombie. Every thread counts: a
/// killed multi-threaded process's main thread can be a zombie while another thread is still
/// exiting, and with it the process's open files, such as the lock on the node's pid journal
/// that `frontdoor cleanup` then found still held.
fn alive(pid: &str) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    threads.filter_map(Result::ok).any(|thread| {
        let stat = std::fs::read_to_string(thread.path().join("stat")).unwrap_or_default();
        stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

/// Kills, on the way out (a failed test included), the pod processes this test started.
struct KillOnDrop(Vec<String>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let args: Vec<&str> = self.0.iter().map(String::as_str).collect();
        for pid in processes(&args) {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    }
}

/// `ip` inside the test's namespace; its stdout.
fn ip(fd: &Frontdoor, args: &[&str]) -> String {
    let output = fd.command("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn cleanup(fd: &Frontdoor) -> Output {
    fd.command(BINARY).args(["cleanup", "--data-dir"]).arg(fd.data_dir()).output().unwrap()
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn cleanup_after_a_crash_stops_the_pods_and_removes_the_bridge() {
    let fd = Frontdoor::start_node(BINARY.as_ref(), &[]);
    let marker = format!("3600.{}", std::process::id());
    let command = ["sleep", marker.as_str()];
    let _guard = KillOnDrop(command.iter().map(|s| s.to_string()).collect());
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: sleeper
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleep
    image: busybox
    command: [sleep, '{marker}']
"
    );
    let out = fd.kubectl_with_stdin("1.32", &["apply", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let running = wait_until(WAIT, || {
        fd.kubectl_ok("1.32", &["get", "pod", "sleeper", "-o", "jsonpath={.status.phase}"]) == "Running"
    });
    assert!(running, "{}", fd.kubectl_ok("1.32", &["describe", "pod", "sleeper"]));
    assert_eq!(processes(&command).len(), 1, "the pod's process runs");
    assert!(ip(&fd, &["-4", "-o", "address", "show", "dev", "frontdoor0"]).contains("10.244.0.1/24"));
    // The cluster DNS address, made the node's.
    let local = ip(&fd, &["-4", "route", "show", "table", "local"]);
    assert!(local.contains("local 10.96.0.10 dev frontdoor0 proto 253 scope host"), "{local}");

    // While the node runs, cleanup refuses and leaves everything alone.
    let refused = cleanup(&fd);
    let (stdout, stderr) = text(&refused);
    assert!(!refused.status.success(), "cleanup ran beside a live node: {stdout}");
    assert!(stderr.contains("is running") && stderr.contains("stop it first"), "{stderr}");
    assert_eq!(processes(&command).len(), 1, "the pod still runs");
    assert!(ip(&fd, &["-o", "link", "show"]).contains("frontdoor0"));

    // The node crashes: its pod keeps running, its bridge stays.
    let pid = fd.pid().to_string();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    assert!(wait_until(WAIT, || !alive(&pid)), "frontdoor up did not die");
    assert_eq!(processes(&command).len(), 1, "the crash left the pod's process running");
    assert!(ip(&fd, &["-o", "link", "show"]).contains("frontdoor0"), "the crash left the bridge");
    assert!(nft_tables(&fd).lines().any(|t| t == "table ip frontdoor"), "the crash left the proxy's table");

    let cleaned = cleanup(&fd);
    let (stdout, stderr) = text(&cleaned);
    assert!(cleaned.status.success(), "cleanup failed: {stdout}{stderr}");
    assert!(stdout.contains("stopped pod process group"), "{stdout}");
    assert!(stdout.contains("deleted bridge frontdoor0"), "{stdout}");
    assert!(stdout.contains("removed nftables table ip frontdoor"), "{stdout}");
    let tables = nft_tables(&fd);
    assert!(!tables.lines().any(|table| table.starts_with("table ip frontdoor")), "tables left: {tables}");
    assert!(stdout.contains("with its address 10.244.0.1/24"), "{stdout}");
    assert!(stdout.contains("with its route 10.244.0.0/24 dev frontdoor0 proto kernel scope link"), "{stdout}");
    assert!(
        stdout.contains("with its route local 10.96.0.10 dev frontdoor0 table local proto 0xfd scope host"),
        "{stdout}"
    );
    assert!(wait_until(WAIT, || processes(&command).is_empty()), "the pod's process still runs");
    let links = ip(&fd, &["-o", "link", "show"]);
    assert!(!links.contains("frontdoor0") && !links.contains("fdv"), "{links}");
    let addresses = ip(&fd, &["-4", "-o", "address", "show"]);
    assert!(!addresses.contains("10.244.0.1"), "{addresses}");
    let routes = ip(&fd, &["-4", "route", "show", "table", "all"]);
    assert!(!routes.contains("frontdoor0"), "{routes}");

    // Again: nothing left to do, and that is no failure.
    let again = cleanup(&fd);
    let (stdout, stderr) = text(&again);
    assert!(again.status.success(), "a second cleanup failed: {stdout}{stderr}");
    assert!(stdout.starts_with("nothing to clean up"), "{stdout}");
}

/// `nft list tables` in the node's namespace.
fn nft_tables(fd: &Frontdoor) -> String {
    let out = fd.command("nft").args(["list", "tables"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The node's addresses on its LAN interface, as `ip -4 -o address` lists them.
fn lan_addresses(fd: &Frontdoor) -> String {
    ip(fd, &["-4", "-o", "address", "show", "dev", "lan0"])
}

#[test]
fn load_balancer_addresses_go_with_cleanup_and_with_a_normal_stop() {
    let mut fd = Frontdoor::start_node(BINARY.as_ref(), &["--lb-pool", "192.168.84.240/30"]);
    let _lan = Lan::attach(fd.netns().unwrap(), 84);
    // An address of the admin's own, on the same interface and of the same shape: never ours.
    assert!(fd.command("ip").args(["address", "add", "192.168.84.250/32", "dev", "lan0"]).status().unwrap().success());
    fd.apply(
        "apiVersion: v1
kind: Service
metadata: {name: front}
spec:
  type: LoadBalancer
  ports: [{port: 80, targetPort: 8080}]
",
    );
    let mut address = String::new();
    let assigned = wait_until(WAIT, || {
        address = fd.jsonpath(&["service", "front"], "{.status.loadBalancer.ingress[0].ip}");
        !address.is_empty()
    });
    assert!(assigned, "{}", fd.kubectl_ok("1.33", &["describe", "service", "front"]));
    let on_lan = format!("inet {address}/32");
    assert!(wait_until(WAIT, || lan_addresses(&fd).contains(&on_lan)), "not answered for: {}", lan_addresses(&fd));

    // A crash leaves the address on the LAN interface; cleanup removes it, and only it. Cleanup
    // runs at once, as a script's `kill -9` then `frontdoor cleanup` would: the node may still be
    // exiting, holding its pid journal's lock, and cleanup waits for it.
    let pid = fd.pid().to_string();
    assert!(Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let cleaned = cleanup(&fd);
    let (stdout, stderr) = text(&cleaned);
    assert!(cleaned.status.success(), "cleanup failed: {stdout}{stderr}");
    assert!(wait_until(WAIT, || !alive(&pid)), "frontdoor up did not die");
    assert!(stdout.contains(&format!("removed load-balancer address {address}/32 from lan0")), "{stdout}");
    let left = lan_addresses(&fd);
    assert!(!left.contains(&on_lan), "{left}");
    assert!(left.contains("inet 192.168.84.1/24") && left.contains("inet 192.168.84.250/32"), "{left}");

    // Started again, the node answers for the Service's address once more; stopped normally, it
    // withdraws it (as a MetalLB speaker that stops no longer answers).
    fd.kill_and_restart();
    assert!(wait_until(WAIT, || lan_addresses(&fd).contains(&on_lan)), "not announced again: {}", lan_addresses(&fd));
    assert!(fd.stop(), "frontdoor up did not stop on SIGTERM");
    let left = lan_addresses(&fd);
    assert!(!left.contains(&on_lan), "a stopped node still answers for {address}: {left}");
    assert!(left.contains("inet 192.168.84.250/32"), "the admin's address went too: {left}");
}
