//! The DNS benchmark (`FRONTDOOR_BENCH=dns`): frontdoor's cluster DNS against Knot DNS and NSD
//! serving the same records from zone files, and its forwarding against Unbound's; everything in
//! a network namespace made for it (a thread that `unshare`s one, as the data-plane steps do),
//! which goes away with the thread: no query leaves it, none reaches the machine's resolver.
//!
//! 1. memory: the DNS index (builder + index) for 10,000 Services and their pods, in process,
//!    against CoreDNS's published (Pods + Services) / 1000 MB (`memory`); and the cost of a
//!    change in one namespace of 5,000 Services (Kubernetes' limit for a namespace);
//! 2. the real `frontdoor up` (its `--dns-upstream` the bench's own upstream) with 1,000 Services
//!    and their EndpointSlices created through the API (`cluster`); Knot and NSD load the same
//!    records from zone files (`zone`, `daemons`); a sample of the query mix is asked of all three
//!    and must get the expected rcode and the same answers before anything is timed (`probe`);
//! 3. throughput: dnsperf (`dnsperf`) over the mix — Service A, `ndots:5` search-path NXDOMAINs,
//!    SRV, PTR, headless A (ExternalName names are checked, not timed: see `Category::weight`) —
//!    saturating each server in turn, rounds interleaved, the best round kept (the machine may be
//!    shared: each run also reports what else kept it busy); every server runs on core 0 from its
//!    start (frontdoor's whole process, so its runtime sizes itself to that core), dnsperf on core 1;
//!    3b. the same on an equal CPU budget, each server held to half of core 0 by a cgroup CPU
//!    quota (`crate::budget`), so that the server, not dnsperf's core, is the limit;
//! 4. latency: every query's latency at one fixed rate (half the slowest server's throughput), the
//!    same for all three, from the bench's own client (`latency`: kernel receive timestamps);
//!    several rounds, each server's median by p99;
//! 5. forwarding: names of `example.test` on an upstream Knot (core 1), asked of frontdoor and of
//!    Unbound forwarding to it, each warmed by one pass over the names first;
//! 6. DNS programming latency: 200 Services created one after another, each timed from its create
//!    sent until its name answers with its ClusterIP (`programming`); target p99 ≤ 50 ms.
//!
//! frontdoor is queried where pods ask it, at the `kube-dns` Service's address: the node makes
//! that address its own and answers there itself, its port 53 untracked by conntrack (see
//! `frontdoor_proxy::RenderConfig::node_local_dns`). The peers answer on that same address, on
//! ports of their own (Knot 5301, NSD 5302, Unbound 5303), which the bench leaves untracked the
//! same way: every server is reached by the same kernel path. (Peers on 127.0.0.x would measure
//! their address as much as themselves: the kernel's path to a loopback address costs less per
//! datagram than to a bridge's, about 172k q/s for Knot on 127.0.0.2 against 149k.)

mod cluster;
mod daemons;
mod dnsperf;
mod latency;
mod memory;
pub(crate) mod probe;
mod programming;
mod zone;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use frontdoor_testkit::{ApiClient, Frontdoor};
use serde_json::Value;

use crate::budget::{self, Budget};
use cluster::{Category, Cluster, Kind, Query};
use daemons::Daemon;
use dnsperf::{Load, Run};

use crate::dataplane::node::{create, wait_for};
use crate::dataplane::system::{in_fresh_netns, installed};
use crate::dataplane::{report_at_least, thousands};
use crate::{ms, percentile, report};

const SERVICES: usize = 1_000;
const MEMORY_SERVICES: usize = 10_000;
/// Services in one namespace: the Kubernetes scalability threshold for a namespace.
const CROWDED_NAMESPACE: usize = 5_000;
const MIX_QUERIES: usize = 50_000;
const SAMPLE_PER_CATEGORY: usize = 25;
const ROUNDS: usize = 4;
const SECONDS: u32 = 4;
const LATENCY_SECONDS: u32 = 3;
const LATENCY_ROUNDS: usize = 5;
/// Step 4's rate when step 3 is not run to choose it (`FRONTDOOR_DNS_RATE` sets another).
const DEFAULT_RATE: u32 = 55_000;
const FORWARD_NAMES: usize = 5_000;
const FORWARD_ROUNDS: usize = 2;
/// Cores other processes may keep busy during a run before its figures are flagged.
const OTHERS_TOLERATED: f64 = 0.3;
/// Concurrent API clients creating the cluster.
const CREATORS: usize = 16;
const SERVER_CORE: usize = 0;
const CLIENT_CORE: usize = 1;
/// The peers' ports on frontdoor's address (the bridge's; frontdoor answers on 53 there).
const KNOT_PORT: u16 = 5301;
const NSD_PORT: u16 = 5302;
const UNBOUND_PORT: u16 = 5303;
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
const UPSTREAM_ZONE: &str = "example.test";
/// CoreDNS's published memory per 1,000 (Pods + Services): `MB = (Pods + Services) / 1000 + 54`
/// (coredns/deployment, kubernetes/Scaling_CoreDNS.md), in bytes.
const COREDNS_BYTES_PER_THOUSAND: f64 = 1_000_000.0;
/// Step 3b's share of core 0 for each server: less than what dnsperf's core can ask of any of
/// them (each answers > 100k q/s at 7–9 µs per answer when unbounded), so the server is the limit.
const BUDGET: f64 = 0.5;
/// Saturating load: 4 client sockets, 200 queries outstanding.
const SATURATE: Load = Load { seconds: Some(SECONDS), clients: 4, outstanding: 200 };

/// The tools each part needs, with the Debian package that has each.
struct Tools {
    knot: bool,
    nsd: bool,
    unbound: bool,
}

fn check_tools() -> Option<Tools> {
    let need = |tool: &str, package: &str, needed_for: &str| {
        let there = installed(tool);
        if !there {
            println!("MISSING: `{tool}` (Debian package {package}; apt-get install -y {package}) is not installed: skipping {needed_for}");
        }
        there
    };
    let ip = need("ip", "iproute2", "everything but the memory step");
    let taskset = need("taskset", "util-linux", "everything but the memory step");
    let setpriv = need("setpriv", "util-linux", "everything but the memory step");
    let dnsperf = need("dnsperf", "dnsperf", "every query step");
    let knot = need("knotd", "knot", "Knot's figures and the forwarding step (its upstream is Knot)");
    let nsd = need("nsd", "nsd", "NSD's figures");
    let unbound = need("unbound", "unbound", "the forwarding step");
    (ip && taskset && setpriv && dnsperf).then_some(Tools { knot, nsd, unbound })
}

/// The machine and the peers' versions, so figures from different runs can be told apart.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown CPU");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let total = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().unwrap_or(0.0))
        })
        .unwrap_or(0.0);
    format!("machine: {model}, {cpus} CPUs, {:.1} GiB, Linux {}", total / 1_048_576.0, kernel.trim())
}

/// Whether to run step `n`: all of them, or those `FRONTDOOR_DNS_STEPS` lists (`3,5`; the
/// cluster of step 2 is always made when a later step needs it).
fn step(n: u32) -> bool {
    match std::env::var("FRONTDOOR_DNS_STEPS") {
        Ok(steps) => steps.split(',').any(|s| s.trim() == n.to_string()),
        Err(_) => true,
    }
}

pub fn run(binary: &Path) {
    println!();
    println!(
        "DNS benchmark (a private network namespace; servers on core {SERVER_CORE}, dnsperf on core {CLIENT_CORE})"
    );
    println!("{}", machine());
    if step(1) {
        memory_step();
    }
    let Some(tools) = check_tools() else { return };
    let versions: Vec<String> = [
        Some(dnsperf::version()),
        tools.knot.then(|| format!("Knot DNS {}", daemons::version("knotd", "--version"))),
        tools.nsd.then(|| format!("NSD {}", daemons::version("nsd", "-v"))),
        tools.unbound.then(|| format!("Unbound {}", daemons::version("unbound", "-V"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    println!("peers: {}", versions.join("; "));
    in_fresh_netns(|| serve(binary, &tools));
}

fn memory_step() {
    let cluster = Cluster::new(MEMORY_SERVICES);
    let results = memory::measure(&cluster);
    println!();
    println!(
        "step 1: DNS memory, {} Services ({} ClusterIP, {} headless, {} ExternalName) + {} pods behind them, built in process with frontdoor's allocator and index configuration",
        thousands(MEMORY_SERVICES),
        thousands(cluster.count(Kind::ClusterIp)),
        thousands(cluster.count(Kind::Headless)),
        thousands(cluster.count(Kind::ExternalName)),
        thousands(cluster.pods())
    );
    for m in &results {
        println!(
            "  pods {:?}: builder {:.2} MiB + index {:.2} MiB ({} names, {:.2} MiB of them encoded records; built whole in {:.0} ms, again after one Service's endpoints changed in {:.1} ms, the fastest of {} each) = {:.2} MiB live heap; {:.0} KiB per 1,000 Services + pods",
            m.pod_mode,
            m.builder / 1_048_576.0,
            m.index / 1_048_576.0,
            thousands(m.names),
            m.arena as f64 / 1_048_576.0,
            ms(m.build_time),
            ms(m.change_time),
            memory::BUILDS,
            m.total() / 1_048_576.0,
            m.per_thousand_objects() / 1024.0
        );
    }
    println!("  (not included: the informers' caches of the objects, shared with the rest of the process; the second index alive while a rebuild is swapped in)");
    // Kubernetes' scalability limit for one namespace: what a change there costs.
    let crowded = Cluster::in_namespaces(CROWDED_NAMESPACE, 1);
    if let Some(m) = memory::measure(&crowded).first() {
        println!(
            "  one namespace at Kubernetes' limit, {} Services + {} pods in it: built whole in {:.0} ms, again after one Service's endpoints changed in {:.1} ms (pods {:?})",
            thousands(CROWDED_NAMESPACE),
            thousands(crowded.pods()),
            ms(m.build_time),
            ms(m.change_time),
            m.pod_mode
        );
    }
    if let Some(m) = results.first() {
        let name = "DNS memory per 1,000 Services + pods";
        let value = m.per_thousand_objects() / 1_000_000.0;
        report(name, value, "MB", COREDNS_BYTES_PER_THOUSAND / 1_000_000.0, None);
        println!("  (target: CoreDNS's published (Pods + Services) / 1000 MB; frontdoor runs `pods insecure`, the first line)");
    }
}

/// A server under test: its name, where it answers, its main process.
struct Target {
    name: &'static str,
    address: SocketAddr,
    pid: u32,
}

fn server_of(daemon: &Daemon) -> Target {
    Target { name: daemon.name, address: daemon.address, pid: daemon.pid() }
}

/// Creates `objects` (collection, body) from `CREATORS` clients at once.
async fn create_all(node: &Frontdoor, objects: Vec<(String, Value)>) {
    let mut workers = Vec::new();
    for worker in 0..CREATORS {
        let client = ApiClient::new(node);
        let mine: Vec<(String, Value)> = objects.iter().skip(worker).step_by(CREATORS).cloned().collect();
        workers.push(tokio::spawn(async move {
            for (collection, body) in mine {
                create(&client, &collection, body).await;
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a creating client");
    }
}

/// Creates the cluster through the API; returns the address pods ask cluster DNS at (the
/// `kube-dns` Service's ClusterIP, which the node answers on itself), once the Service has its
/// endpoint.
async fn populate(node: &Frontdoor, cluster: &Cluster) -> Ipv4Addr {
    let client = ApiClient::new(node);
    for namespace in cluster.namespaces() {
        create(&client, "/api/v1/namespaces", namespace).await;
    }
    let namespaced = |prefix: &str, kind: &str, object: Value| {
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
        (format!("{prefix}/namespaces/{namespace}/{kind}"), object)
    };
    let services = cluster.service_objects().into_iter().map(|s| namespaced("/api/v1", "services", s)).collect();
    create_all(node, services).await;
    let slices = cluster
        .slice_objects()
        .into_iter()
        .map(|s| namespaced("/apis/discovery.k8s.io/v1", "endpointslices", s))
        .collect();
    create_all(node, slices).await;
    let path = "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkube-dns";
    wait_for("the kube-dns EndpointSlice", Duration::from_secs(30), || async {
        let (_, body) = client.send("GET", path, None).await;
        let list: Value = serde_json::from_slice(&body).ok()?;
        list["items"][0]["endpoints"][0]["addresses"][0].as_str()?.parse::<Ipv4Addr>().ok()
    })
    .await;
    wait_for("the kube-dns Service", Duration::from_secs(30), || async {
        let (_, body) = client.send("GET", "/api/v1/namespaces/kube-system/services/kube-dns", None).await;
        let service: Value = serde_json::from_slice(&body).ok()?;
        service["spec"]["clusterIP"].as_str()?.parse().ok()
    })
    .await
}

/// Leaves the peers' traffic on `address` untracked with the rules frontdoor's proxy writes for
/// its own port 53 there, so every server is reached by the same path: a table of the bench's
/// own, in the bench's namespace.
fn untrack_like_frontdoor(address: Ipv4Addr, ports: &[u16]) {
    use frontdoor_netfilter::{Batch, Family, Socket};
    const TABLE: &str = "dnsbench-untracked";
    let mut batch = Batch::new(Family::Ipv4);
    batch.add_table(TABLE);
    frontdoor_proxy::programmed::add_chains(
        &mut batch,
        TABLE,
        &frontdoor_proxy::render::untracked_chains(address, ports),
    );
    Socket::open().unwrap().apply(&batch).expect("the peers' untracked rules");
}

/// Waits until the process tree of `pid` uses less than 5% of a core over 200 ms (at most 15 s):
/// what the creates set off (controllers, the proxy's syncs, index builds) must not be measured.
fn wait_quiet(pid: u32) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = daemons::tree_cpu(pid);
        std::thread::sleep(Duration::from_millis(200));
        let busy = (daemons::tree_cpu(pid).saturating_sub(before)).as_secs_f64() / 0.2;
        if busy < 0.05 || Instant::now() > deadline {
            return busy;
        }
    }
}

/// The calling thread's CPU affinity, set to one core while it lives: a process spawned from the
/// thread meanwhile inherits it, as one started with `taskset -c <core>` does (so frontdoor's
/// runtime sizes itself to the one core it is given, as Knot's and NSD's defaults do; pinned after
/// its start, its runtime's two workers would pass the DNS socket back and forth on one core).
/// The thread's own affinity comes back on drop.
struct ThreadPinned {
    thread: String,
    original: String,
}

impl ThreadPinned {
    fn to(core: usize) -> ThreadPinned {
        let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
        let thread = link.file_name().and_then(|t| t.to_str()).expect("a thread id").to_string();
        let current = taskset(&["-c", "-p", &thread]);
        let original = current.rsplit(':').next().unwrap_or_default().trim().to_string();
        taskset(&["-c", "-p", &core.to_string(), &thread]);
        ThreadPinned { thread, original }
    }
}

impl Drop for ThreadPinned {
    fn drop(&mut self) {
        taskset(&["-c", "-p", &self.original, &self.thread]);
    }
}

fn taskset(args: &[&str]) -> String {
    let output = std::process::Command::new("taskset").args(args).output().expect("taskset runs");
    assert!(output.status.success(), "taskset {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The CPUs a process may run on (`Cpus_allowed_list`).
fn allowed_cpus(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

/// A sample of the mix: the first `SAMPLE_PER_CATEGORY` queries of each category, and as many
/// ExternalName queries.
fn sample(cluster: &Cluster, mix: &[Query]) -> Vec<Query> {
    let mut sample: Vec<Query> = Category::ALL
        .iter()
        .flat_map(|c| mix.iter().filter(move |q| q.category == *c).take(SAMPLE_PER_CATEGORY).cloned())
        .collect();
    sample.extend(cluster.external_name_queries(SAMPLE_PER_CATEGORY));
    sample
}

/// Waits until `server` gives every query of `sample` the expected answer (a server loads its
/// zones, or builds its index, in the background); the problems left at the deadline.
fn wait_answering(name: &str, server: SocketAddr, sample: &[Query], timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let problems = probe::compare(&[(name, server)], sample);
        if problems.is_empty() || Instant::now() > deadline {
            return problems;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn serve(binary: &Path, tools: &Tools) {
    let directory = tempfile::Builder::new().prefix("frontdoor-dnsbench-").tempdir().expect("a temporary directory");
    let dir = directory.path();
    let cluster = Cluster::new(SERVICES);
    let mix = cluster.query_mix(MIX_QUERIES, 1);
    let mix_path = dir.join("mix.txt");
    std::fs::write(&mix_path, cluster::dnsperf_input(mix.iter().map(|q| (q.name.as_str(), q.qtype))))
        .expect("write the query mix");
    let forward_names: Vec<String> = (0..FORWARD_NAMES).map(|i| format!("host-{i}.{UPSTREAM_ZONE}")).collect();
    let forward_path = dir.join("forward.txt");
    std::fs::write(&forward_path, cluster::dnsperf_input(forward_names.iter().map(|n| (n.as_str(), "A"))))
        .expect("write the forwarded names");

    // The upstream first: frontdoor forwards there and nowhere else (never the machine's resolver).
    let upstream_address = SocketAddr::from((UPSTREAM, 53));
    let upstream = tools.knot.then(|| {
        let zone = zone::write_upstream_zone(dir, &forward_names);
        daemons::knot(dir, "upstream", upstream_address, CLIENT_CORE, &[zone])
    });
    let upstream_flag = upstream_address.to_string();
    let node = {
        let _pinned = ThreadPinned::to(SERVER_CORE);
        Frontdoor::start_node_in_current_namespace(binary, &["--node-name", "bench", "--dns-upstream", &upstream_flag])
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let created = Instant::now();
    let dns_ip = runtime.block_on(populate(&node, &cluster));
    let created = created.elapsed();
    let frontdoor = Target { name: "frontdoor", address: SocketAddr::from((dns_ip, 53)), pid: node.pid() };
    let slices = cluster.services.iter().filter(|s| !s.endpoints.is_empty()).count();
    println!();
    println!(
        "step 2: `frontdoor up` with {} Services ({} ClusterIP with a named port and 2 endpoints, {} headless with 3, {} ExternalName) and {} EndpointSlices ({} pods) in {} namespaces, created through the API in {:.1} s",
        thousands(SERVICES),
        cluster.count(Kind::ClusterIp),
        cluster.count(Kind::Headless),
        cluster.count(Kind::ExternalName),
        slices,
        thousands(cluster.pods()),
        cluster::NAMESPACES,
        created.as_secs_f64()
    );
    println!(
        "  frontdoor's DNS queried at {} (the kube-dns Service's address, which the node answers on itself, untracked, as pods reach it); the peers on the same address, Knot :{KNOT_PORT}, NSD :{NSD_PORT}, Unbound :{UNBOUND_PORT}, their ports untracked as frontdoor's",
        frontdoor.address
    );
    untrack_like_frontdoor(dns_ip, &[KNOT_PORT, NSD_PORT, UNBOUND_PORT]);

    let sample = sample(&cluster, &mix);
    let problems = wait_answering("frontdoor", frontdoor.address, &sample, Duration::from_secs(30));
    for problem in problems.iter().take(10) {
        println!("  WRONG: {problem}");
    }

    let zones = zone::write_cluster_zones(dir, &cluster.records());
    let mut peers: Vec<Daemon> = Vec::new();
    if tools.knot {
        peers.push(daemons::knot(dir, "knot", SocketAddr::from((dns_ip, KNOT_PORT)), SERVER_CORE, &zones));
    }
    if tools.nsd {
        peers.push(daemons::nsd(dir, SocketAddr::from((dns_ip, NSD_PORT)), SERVER_CORE, &zones));
    }
    for peer in &mut peers {
        let problems = wait_answering(peer.name, peer.address, &sample, Duration::from_secs(30));
        if !problems.is_empty() && !peer.running() {
            println!("  {} stopped: {}", peer.name, peer.log());
        }
    }
    if !peers.is_empty() {
        let names: Vec<&str> = peers.iter().map(|p| p.name).collect();
        println!(
            "  {} load {} zone files ({} records: cluster.local and the reverse zones of 10.96.0.0/12 and 10.244.0.0/16)",
            names.join(" and "),
            zones.len(),
            thousands(cluster.records().len())
        );
    }

    // Every server must give the expected answers, and the same ones, before anything is timed.
    let mut servers: Vec<Target> = vec![frontdoor];
    servers.extend(peers.iter().map(server_of));
    let addresses: Vec<(&str, SocketAddr)> = servers.iter().map(|s| (s.name, s.address)).collect();
    let problems = probe::compare(&addresses, &sample);
    println!(
        "  answers checked: {} sample queries ({} of each kind) × {} servers: {} disagreements (rcode, answer count, answer records)",
        sample.len(),
        SAMPLE_PER_CATEGORY,
        servers.len(),
        problems.len()
    );
    for problem in problems.iter().take(20) {
        println!("  WRONG: {problem}");
    }
    let wrong = |name: &str| problems.iter().any(|p| p.starts_with(&format!("{name}:")));
    if wrong("frontdoor") {
        println!("  frontdoor answers wrongly: no throughput comparison (it would be worthless)");
    } else {
        let excluded: Vec<&str> = servers.iter().filter(|s| wrong(s.name)).map(|s| s.name).collect();
        if !excluded.is_empty() {
            println!("  left out for wrong answers: {}", excluded.join(", "));
        }
        servers.retain(|s| !wrong(s.name));
        let quiet = wait_quiet(servers[0].pid);
        println!(
            "  frontdoor started pinned to core {} (as `taskset -c {SERVER_CORE}`: its runtime sized to that core), busy {:.0}% of it before measuring",
            allowed_cpus(servers[0].pid),
            quiet * 100.0
        );
        if step(3) || step(4) {
            throughput_and_latency(&servers, &mix_path, upstream.as_ref().map(Daemon::pid));
        }
    }

    if !step(5) {
        // Not asked for.
    } else if let (Some(upstream), true) = (&upstream, tools.unbound) {
        let unbound = daemons::unbound(
            dir,
            SocketAddr::from((dns_ip, UNBOUND_PORT)),
            SERVER_CORE,
            UPSTREAM_ZONE,
            upstream.address,
        );
        forwarding(&node, &unbound, upstream, &forward_names, &forward_path, dns_ip);
        drop(unbound);
    } else {
        println!("step 5: skipped (needs knotd for the upstream and unbound)");
    }
    if step(6) {
        let latency = runtime.block_on(programming::measure(&node));
        print_programming(&latency);
    }
    drop(peers);
    drop(node);
    drop(upstream);
    drop(runtime);
    drop(directory);
}

/// What one dnsperf run measured, and the CPU the upstream used meanwhile.
struct Measured {
    run: Run,
    upstream_cpu: Duration,
}

/// `rounds` dnsperf runs against each server, interleaved (each server goes first in turn), with
/// the upstream's CPU time (if there is one) taken around each run.
fn interleaved(
    servers: &[&Target],
    input: &Path,
    load: Load,
    rounds: usize,
    upstream: Option<u32>,
) -> Vec<Vec<Measured>> {
    // This thread waits on dnsperf and reads its report: kept off the servers' core.
    let _pinned = ThreadPinned::to(CLIENT_CORE);
    interleave(servers, rounds, |server| {
        let upstream_before = upstream.map(daemons::tree_cpu).unwrap_or_default();
        let run = dnsperf::run(server.address, input, load, CLIENT_CORE, server.pid);
        let upstream_cpu = upstream.map(daemons::tree_cpu).unwrap_or_default().saturating_sub(upstream_before);
        Measured { run, upstream_cpu }
    })
}

/// `rounds` rounds of `measure` over every server, each round starting one server further on,
/// so that a drift in the machine hits them alike; each server's results in round order.
fn interleave<T>(servers: &[&Target], rounds: usize, mut measure: impl FnMut(&Target) -> T) -> Vec<Vec<T>> {
    let mut results: Vec<Vec<T>> = servers.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            results[i].push(measure(servers[i]));
        }
    }
    results
}

/// The round with the most queries/s: the machine is shared, and another process can only
/// lower a round.
fn best(rounds: &[Measured]) -> &Measured {
    rounds.iter().max_by(|a, b| a.run.qps.total_cmp(&b.run.qps)).expect("at least one round")
}

fn median_qps(rounds: &[Measured]) -> f64 {
    let mut qps: Vec<f64> = rounds.iter().map(|m| m.run.qps).collect();
    qps.sort_by(f64::total_cmp);
    qps[qps.len() / 2]
}

fn describe(measured: &Measured) -> String {
    let run = &measured.run;
    let (server, client) = run.busy();
    format!(
        "{:.0} q/s, avg {:.2} ms, lost {} of {}; CPU: server {:.0}% ({:.1} µs per answer), dnsperf {:.0}%, upstream {:.0}% of a core, whole machine {:.2} of {} cores",
        run.qps,
        ms(run.average),
        run.lost,
        run.sent,
        server * 100.0,
        run.server_cpu.as_secs_f64() * 1e6 / (run.completed.max(1) as f64),
        client * 100.0,
        measured.upstream_cpu.as_secs_f64() / run.wall.as_secs_f64().max(1e-9) * 100.0,
        run.machine_busy(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// Prints each server's best round, its rounds and its response codes; the best rounds.
fn print_rounds<'a>(servers: &[&Target], runs: &'a [Vec<Measured>]) -> Vec<&'a Measured> {
    let bests: Vec<&Measured> = runs.iter().map(|r| best(r)).collect();
    for ((server, rounds), best) in servers.iter().zip(runs).zip(&bests) {
        let each: Vec<String> = rounds.iter().map(|m| format!("{:.0}", m.run.qps)).collect();
        println!(
            "  {:<9} {} (rounds: {} q/s; median {:.0})",
            server.name,
            describe(best),
            each.join(", "),
            median_qps(rounds)
        );
        println!("  {:<9} response codes: {}", "", best.run.response_codes);
    }
    let disturbed: Vec<String> = servers
        .iter()
        .zip(&bests)
        .filter(|(_, m)| m.run.others_busy() > OTHERS_TOLERATED)
        .map(|(s, m)| format!("{} ({:.2} cores)", s.name, m.run.others_busy()))
        .collect();
    if !disturbed.is_empty() {
        println!(
            "  WARNING: other processes were busy during the best rounds of {}: the machine is shared, these figures are not reliable",
            disturbed.join(", ")
        );
    }
    let generator_bound: Vec<&str> =
        servers.iter().zip(&bests).filter(|(_, m)| m.run.busy().1 >= 0.9).map(|(s, _)| s.name).collect();
    if !generator_bound.is_empty() {
        println!(
            "  (dnsperf's core was ≥ 90% busy against {}: what one dnsperf core can ask may be the limit there, not the server)",
            generator_bound.join(", ")
        );
    }
    bests
}

fn throughput_and_latency(servers: &[Target], mix: &Path, upstream: Option<u32>) {
    let servers: Vec<&Target> = servers.iter().collect();
    let qps = if step(3) { Some(throughput(&servers, mix, upstream)) } else { None };
    if let Some(qps) = &qps {
        let summary: Vec<String> = servers.iter().zip(qps).map(|(s, q)| format!("{} {q:.0} q/s", s.name)).collect();
        if let Some(faster) = faster_peer(qps) {
            let peers: Vec<&str> = servers[1..].iter().map(|s| s.name).collect();
            println!(
                "dns: {}; ratio frontdoor/max({}) = {:.2} (target ≥ 1.0)",
                summary.join("; "),
                peers.join(","),
                qps[0] / qps[faster]
            );
            report_at_least(&format!("DNS q/s frontdoor ÷ {}", servers[faster].name), qps[0] / qps[faster], "x", 1.0);
        }
    }
    if !step(4) {
        return;
    }
    // Latency at one rate every server sustains: half the slowest's throughput (or, with step
    // 3 not run, FRONTDOOR_DNS_RATE's).
    let rate = match &qps {
        Some(qps) => {
            let slowest = qps.iter().copied().fold(f64::INFINITY, f64::min);
            ((slowest / 2.0 / 1000.0).floor() * 1000.0).max(1000.0) as u32
        }
        None => std::env::var("FRONTDOOR_DNS_RATE").ok().and_then(|r| r.parse().ok()).unwrap_or(DEFAULT_RATE),
    };
    let p99 = latency(&servers, mix, rate);
    // "p99 no worse" is held to the peer with the lower p99.
    if let Some(quicker) = (1..p99.len()).min_by_key(|i| p99[*i]) {
        report(
            &format!("DNS p99 frontdoor ÷ {} at {}k q/s", servers[quicker].name, rate / 1000),
            p99[0].as_secs_f64() / p99[quicker].as_secs_f64().max(1e-9),
            "x",
            1.0,
            None,
        );
    }
}

/// Steps 3 and 3b; each server's best queries/s of step 3.
fn throughput(servers: &[&Target], mix: &Path, upstream: Option<u32>) -> Vec<f64> {
    let runs = interleaved(servers, mix, SATURATE, ROUNDS, upstream);
    println!();
    println!(
        "step 3: throughput, dnsperf -c {} -q {} -l {} over {} queries ({}), {} rounds interleaved, best round",
        SATURATE.clients,
        SATURATE.outstanding,
        SECONDS,
        thousands(MIX_QUERIES),
        Category::ALL
            .iter()
            .filter(|c| c.weight() > 0)
            .map(|c| format!("{}% {}", c.weight(), c.describe()))
            .collect::<Vec<_>>()
            .join(", "),
        ROUNDS
    );
    let bests = print_rounds(servers, &runs);
    let qps: Vec<f64> = bests.iter().map(|m| m.run.qps).collect();
    // When dnsperf's core is the limit, every server answers about as fast as it is asked: what
    // each spends per answer (its processes' CPU time, best rounds) still tells them apart.
    let per_answer: Vec<f64> =
        bests.iter().map(|m| m.run.server_cpu.as_secs_f64() / (m.run.completed.max(1) as f64)).collect();
    if let Some(cheapest_peer) = (1..servers.len()).min_by(|a, b| per_answer[*a].total_cmp(&per_answer[*b])) {
        println!(
            "  server CPU per answer: frontdoor {:.1} µs, {} {:.1} µs (the cheaper peer): frontdoor needs {:.2}x its CPU per answer",
            per_answer[0] * 1e6,
            servers[cheapest_peer].name,
            per_answer[cheapest_peer] * 1e6,
            per_answer[0] / per_answer[cheapest_peer].max(1e-12)
        );
    }
    budgeted_throughput(servers, mix);
    qps
}

/// Step 4; each server's median p99.
fn latency(servers: &[&Target], mix: &Path, rate: u32) -> Vec<Duration> {
    let rounds = latency_rounds(servers, mix, rate);
    println!();
    println!(
        "step 4: latency at a fixed {} q/s, the bench's own client (`latency`: each query timed from its send to the kernel's receive timestamp of its answer, so the client's own scheduling is not counted), {LATENCY_SECONDS} s a round, {LATENCY_ROUNDS} rounds interleaved; each server's median round by p99",
        thousands(rate as usize)
    );
    let mut p99 = Vec::new();
    for (server, rounds) in servers.iter().zip(&rounds) {
        let mut by_p99: Vec<&(latency::Timed, f64)> = rounds.iter().collect();
        by_p99.sort_by_key(|(timed, _)| percentile(&timed.latencies, 0.99));
        let (median, busy) = by_p99[by_p99.len() / 2];
        let each: Vec<String> =
            rounds.iter().map(|(timed, _)| format!("{:.3}", ms(percentile(&timed.latencies, 0.99)))).collect();
        let l = &median.latencies;
        println!(
            "  {:<9} p50 {:.3} ms, p98 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms over {} answers; lost {}; sent late {}; server {:.0}% of a core (p99 of each round: {} ms)",
            server.name,
            ms(percentile(l, 0.5)),
            ms(percentile(l, 0.98)),
            ms(percentile(l, 0.99)),
            ms(percentile(l, 0.999)),
            ms(l.last().copied().unwrap_or_default()),
            thousands(l.len()),
            median.lost,
            median.late,
            busy * 100.0,
            each.join(", ")
        );
        p99.push(percentile(l, 0.99));
    }
    p99
}

/// The peer (an index past frontdoor's, the first) with the most queries/s: the one frontdoor
/// must match.
fn faster_peer(qps: &[f64]) -> Option<usize> {
    (1..qps.len()).max_by(|a, b| qps[*a].total_cmp(&qps[*b]))
}

/// Step 4's rounds: every server asked the mix at `rate` by [`latency::run`] from the client's
/// core, rounds interleaved; each round with its server's busy share of a core.
fn latency_rounds(servers: &[&Target], mix: &Path, rate: u32) -> Vec<Vec<(latency::Timed, f64)>> {
    let text = std::fs::read_to_string(mix).expect("the query mix reads back");
    let pairs: Vec<(&str, &str)> = text.lines().filter_map(|line| line.split_once(' ')).collect();
    let queries = latency::encode(&pairs);
    let _pinned = ThreadPinned::to(CLIENT_CORE);
    interleave(servers, LATENCY_ROUNDS, |server| {
        let before = daemons::tree_cpu(server.pid);
        let timed = latency::run(server.address, &queries, rate, LATENCY_SECONDS);
        let busy =
            daemons::tree_cpu(server.pid).saturating_sub(before).as_secs_f64() / timed.wall.as_secs_f64().max(1e-9);
        (timed, busy)
    })
}

/// Step 3's question with the server, not dnsperf, the limit: each server's processes held to
/// the same share of core 0 by a cgroup CPU quota ([`budget`](crate::budget)); frontdoor's best queries/s over
/// the faster peer's is reported.
fn budgeted_throughput(servers: &[&Target], mix: &Path) {
    let mut budgets = Vec::new();
    for server in servers {
        let pids = daemons::process_tree(server.pid);
        let Some(budget) = Budget::holding("dnsbench", server.name, BUDGET, &pids) else { return };
        budgets.push(budget);
    }
    let throttled_before: Vec<_> = budgets.iter().map(Budget::throttled).collect();
    let runs = interleaved(servers, mix, SATURATE, ROUNDS, None);
    println!();
    println!(
        "step 3b: throughput on an equal CPU budget: each server's processes held to {:.0}% of core 0 (a cgroup CPU quota of {} ms per {} ms), dnsperf as in step 3",
        BUDGET * 100.0,
        (budget::PERIOD.as_secs_f64() * BUDGET * 1000.0).round(),
        budget::PERIOD.as_millis()
    );
    let bests = print_rounds(servers, &runs);
    for ((server, budget), (count, time)) in servers.iter().zip(&budgets).zip(throttled_before) {
        let (count_after, time_after) = budget.throttled();
        println!(
            "  {:<9} throttled {} times, {:.1} s in all, over its {} rounds",
            server.name,
            count_after.saturating_sub(count),
            time_after.saturating_sub(time).as_secs_f64(),
            ROUNDS
        );
    }
    drop(budgets);
    let qps: Vec<f64> = bests.iter().map(|m| m.run.qps).collect();
    if let Some(faster) = faster_peer(&qps) {
        let name = format!("DNS q/s frontdoor ÷ {}, equal budget", servers[faster].name);
        report_at_least(&name, qps[0] / qps[faster], "x", 1.0);
    }
}

fn forwarding(node: &Frontdoor, unbound: &Daemon, upstream: &Daemon, names: &[String], input: &Path, dns_ip: Ipv4Addr) {
    let frontdoor = Target { name: "frontdoor", address: SocketAddr::from((dns_ip, 53)), pid: node.pid() };
    let unbound = server_of(unbound);
    let sample: Vec<Query> = names
        .iter()
        .step_by(names.len() / 50)
        .map(|name| Query {
            category: Category::Forwarded,
            name: name.clone(),
            qtype: "A",
            nxdomain: false,
            answers: 1,
        })
        .collect();
    for (name, address) in [("upstream", upstream.address), ("unbound", unbound.address)] {
        let problems = wait_answering(name, address, &sample[..1], Duration::from_secs(30));
        for problem in problems.iter().take(3) {
            println!("  WRONG: {problem}");
        }
    }
    let problems = probe::compare(
        &[("upstream", upstream.address), ("frontdoor", frontdoor.address), ("unbound", unbound.address)],
        &sample,
    );
    println!();
    println!(
        "step 5: forwarding {} names of {UPSTREAM_ZONE} (A, TTL 1 h) from an upstream Knot at {} (core {CLIENT_CORE}): frontdoor (--dns-upstream) vs Unbound (forward-zone), each warmed by one pass over the names",
        thousands(names.len()),
        upstream.address
    );
    println!("  answers checked: {} names × 3 servers: {} disagreements", sample.len(), problems.len());
    for problem in problems.iter().take(10) {
        println!("  WRONG: {problem}");
    }
    if problems.iter().any(|p| p.starts_with("frontdoor:") || p.starts_with("unbound:")) {
        println!("  skipped: the forwarders disagree");
        return;
    }
    let servers = [&frontdoor, &unbound];
    let warm = Load { seconds: None, clients: 4, outstanding: 50 };
    let warmed = interleaved(&servers, input, warm, 1, Some(upstream.pid()));
    for (server, warm) in servers.iter().zip(&warmed) {
        let warm = &warm[0].run;
        println!(
            "  {:<9} warm-up pass: {} of {} answered at {:.0} q/s, lost {}",
            server.name, warm.completed, warm.sent, warm.qps, warm.lost
        );
    }
    let runs = interleaved(&servers, input, SATURATE, FORWARD_ROUNDS, Some(upstream.pid()));
    println!("  then dnsperf -c {} -q {} -l {SECONDS} over the same names, {FORWARD_ROUNDS} rounds interleaved, best round (the upstream's CPU: a cache that misses asks it)", SATURATE.clients, SATURATE.outstanding);
    let bests = print_rounds(&servers, &runs);
    let (ours, theirs) = (bests[0].run.qps, bests[1].run.qps);
    println!(
        "dns forwarding: frontdoor {ours:.0} q/s; unbound {theirs:.0} q/s; ratio frontdoor/unbound = {:.2} (target ≥ 1.0)",
        ours / theirs
    );
    report_at_least("DNS forwarding q/s frontdoor ÷ unbound", ours / theirs, "x", 1.0);
}

fn print_programming(p: &programming::Programming) {
    let (p50, p99) = (crate::percentile(&p.resolved, 0.5), crate::percentile(&p.resolved, 0.99));
    let create = crate::percentile(&p.creates, 0.5);
    println!(
        "step 6: DNS programming latency, {} Services created one by one: create sent → name answered p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} never answered within 5 s); the create's own round trip p50 {:.1} ms",
        programming::CREATIONS,
        crate::ms(p50),
        crate::ms(p99),
        crate::ms(p.resolved.last().copied().unwrap_or_default()),
        p.missed,
        crate::ms(create)
    );
    crate::report("DNS programming latency p99", crate::ms(p99), "ms", 50.0, Some(crate::ms(create)));
    println!(
        "  meanwhile, a query every millisecond for a name that does not change: answered in p50 {:.3} ms, p99 {:.3} ms, max {:.1} ms over {} queries ({} unanswered within 1 s): each rebuild's cost to the queries that arrive during it",
        crate::ms(crate::percentile(&p.steady, 0.5)),
        crate::ms(crate::percentile(&p.steady, 0.99)),
        crate::ms(p.steady.last().copied().unwrap_or_default()),
        thousands(p.steady.len()),
        p.unanswered
    );
}
