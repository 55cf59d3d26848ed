use std::net::Ipv4Addr;
use std::time::Instant;
use frontdoor_netns::*;

fn main() {
    run_in_fresh_network_namespace(|| {
        ensure_bridge("fdbench0", Ipv4Addr::new(10, 250, 0, 1), 22).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let _g = rt.enter();
        let n: u32 = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
        let t = Instant::now();
        let mut sandboxes = Vec::new();
        for i in 0..n {
            let ip = Ipv4Addr::new(10, 250, (2 + i / 250) as u8, (i % 250 + 2) as u8);
            sandboxes.push(PodSandbox::create(&SandboxConfig {
                name: format!("p{i}"), hostname: format!("p{i}"), ip, prefix_len: 22,
                gateway: Ipv4Addr::new(10, 250, 0, 1), bridge: "fdbench0".into(),
                veth_host_name: format!("fdb{i}"), mtu: None,
                resolv_conf: "nameserver 10.96.0.10\n".into(), hosts: "127.0.0.1 localhost\n".into(),
            }).unwrap());
        }
        let created = t.elapsed();
        let t = Instant::now();
        let mut children = Vec::new();
        for s in &sandboxes {
            children.push(s.spawn(ProcessSpec::new(["sleep", "100"])).unwrap());
        }
        let spawned = t.elapsed();
        println!("create {n}: {:?} ({:?}/each); spawn {n}: {:?} ({:?}/each)", created, created / n, spawned, spawned / n);
        for c in &children { signal_process_group(c.id().unwrap(), Signal::Kill).unwrap(); }
        let t = Instant::now();
        if std::env::var("NODESTROY").is_err() { for s in &sandboxes { s.destroy().unwrap(); } }
        println!("destroy: {:?}", t.elapsed());
    }).unwrap();
}
