//! What pod sandboxes cost on their own, with no API server or node around them:
//! `cargo run --release -p frontdoor-netns --example burst [N]` makes N sandboxes (100 by
//! default) one after another, starts `sleep` in each, then removes them, and prints the time
//! per sandbox for each step and the kernel memory they held. Everything happens in a network
//! namespace made for the run.

#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::time::Instant;

use frontdoor_netns::{
    ensure_bridge, run_in_fresh_network_namespace, signal_process_group, PodSandbox, ProcessSpec, SandboxConfig,
    SandboxFactory, Signal,
};

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);

fn config(i: u32) -> SandboxConfig {
    let [_, _, high, low] = (u32::from(GATEWAY) + 1 + i).to_be_bytes();
    SandboxConfig {
        name: format!("burst/p{i}"),
        hostname: format!("p{i}"),
        ip: Ipv4Addr::new(10, 250, high, low),
        prefix_len: 16,
        gateway: GATEWAY,
        bridge: "fdburst0".into(),
        veth_host_name: format!("fdbv{i}"),
        mtu: None,
        resolv_conf: "nameserver 10.96.0.10\n".into(),
        hosts: "127.0.0.1\tlocalhost\n".into(),
        volumes: Vec::new(),
    }
}

fn main() {
    let count: u32 = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100).clamp(1, 60_000);
    run_in_fresh_network_namespace(|| {
        ensure_bridge("fdburst0", GATEWAY, 16).expect("bridge");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let _context = runtime.enter();

        let memory_before = kernel_memory_kib();
        let started = Instant::now();
        let mut factory = SandboxFactory::for_this_thread().expect("factory");
        let sandboxes: Vec<PodSandbox> = (0..count).map(|i| factory.create(&config(i)).expect("sandbox")).collect();
        let created = started.elapsed();
        let kernel_memory = kernel_memory_kib().saturating_sub(memory_before);

        let started = Instant::now();
        let children: Vec<_> =
            sandboxes.iter().map(|s| s.spawn(ProcessSpec::new(["sleep", "600"])).expect("spawn")).collect();
        let spawned = started.elapsed();
        for child in &children {
            let _ = signal_process_group(child.id().expect("running"), Signal::Kill);
        }

        let started = Instant::now();
        for sandbox in &sandboxes {
            sandbox.destroy().expect("destroy");
        }
        let destroyed = started.elapsed();

        println!("{count} sandboxes, per sandbox:");
        println!("  create  {:?}", created / count);
        println!("  spawn   {:?}", spawned / count);
        println!("  destroy {:?}", destroyed / count);
        println!("  kernel memory while they existed: {} KiB (slab and per-CPU)", kernel_memory / u64::from(count));
    })
    .expect("a private network namespace");
}

/// The kernel's slab and per-CPU memory (`/proc/meminfo`), where namespaces and links live.
fn kernel_memory_kib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .filter(|line| line.starts_with("Slab:") || line.starts_with("Percpu:"))
        .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}
