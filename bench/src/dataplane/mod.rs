//! The data-plane benchmark (`FRONTDOOR_BENCH=dataplane`): the service proxy's rules in the
//! kernel, each measurement in network namespaces made for it.
//!
//! 1. sync time at 1,000, 10,000 and 30,000 Services × 8 endpoints: a full sync and one-endpoint
//!    changes (`sync_time`), beside the same Services in kube-proxy's nftables layout loaded with
//!    `nft -f` (`kube_proxy`), the same-run baseline;
//! 2. first-packet latency at 1,000 vs 30,000 Services (`first_packet`);
//! 3. network programming latency through the real `frontdoor up` (`programming`);
//! 4. HTTP throughput and p99 through a ClusterIP vs straight to the pod (`throughput`);
//! 5. the memory the proxy's state takes at 30,000 Services (`memory`).
//!
//! Each step prints its figures as soon as it has them.

mod first_packet;
mod kube_proxy;
pub(crate) mod memory;
pub(crate) mod node;
mod programming;
mod serve;
mod sync_time;
mod synthetic;
pub(crate) mod system;
mod throughput;

use std::time::Duration;

use crate::{ms, percentile, report};

const SIZES: [usize; 3] = [1_000, 10_000, 30_000];
const CHANGES: usize = 200;
/// kube-proxy-shaped changes go on for at most this long per size (each one runs `nft`).
const KUBE_PROXY_CHANGE_BUDGET: Duration = Duration::from_secs(20);
/// A kube-proxy-shaped load predicted to take longer than this is skipped.
const KUBE_PROXY_LOAD_LIMIT: Duration = Duration::from_secs(150);
const CONNECTS: usize = 2_000;
const PROGRAMMING_UPDATES: usize = 200;
const MEMORY_SERVICES: usize = 30_000;
/// kube-proxy nftables' published peak RSS at 10,000 Services × 2 endpoints (PR #126013).
const KUBE_PROXY_PEAK_MIB: f64 = 260.0;

/// Runs a subcommand of the bench binary (the pod's HTTP server, the memory child), if asked.
pub fn subcommand() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let numbers: Vec<usize> = args.iter().skip(2).filter_map(|v| v.parse().ok()).collect();
    match args.get(1).map(String::as_str) {
        Some(serve::SUBCOMMAND) => {
            serve::serve(&numbers.iter().filter_map(|p| u16::try_from(*p).ok()).collect::<Vec<_>>())
        }
        Some(memory::SUBCOMMAND) => memory::child(numbers.first().copied().unwrap_or(MEMORY_SERVICES)),
        _ => return false,
    }
    true
}

pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A line in `report`'s layout for a figure that must reach `target` or more.
pub(crate) fn report_at_least(name: &str, value: f64, unit: &str, target: f64) {
    let verdict = if value >= target { "ok" } else { "UNDER" };
    println!("{name:<40} {value:>9.2} {unit:<3}  target ≥ {target:<6} ({:>5.2} of target, {verdict})", value / target);
}

pub fn run(binary: &std::path::Path) {
    println!();
    println!("data-plane benchmark (each measurement in network namespaces made for it)");
    let missing = system::check_tools();
    if missing.contains(&"ip") {
        return;
    }
    sync_times(!missing.contains(&"nft"));
    first_packets();
    on_node(binary, !missing.contains(&"wrk"), !missing.contains(&"nft"));
    memory_at_scale();
}

/// Steps 3 and 4 alone: those that run `frontdoor up`.
pub fn run_on_node(binary: &std::path::Path) {
    let missing = system::check_tools();
    if !missing.contains(&"ip") {
        on_node(binary, !missing.contains(&"wrk"), !missing.contains(&"nft"));
    }
}

/// Whether to load the kube-proxy-shaped ruleset for `count` Services, from the growth of the
/// loads so far: `Err` with the extrapolation when it would take too long.
fn kube_proxy_fits(done: &[kube_proxy::KubeProxy], count: usize) -> Result<(), String> {
    let [.., smaller, larger] = done else { return Ok(()) };
    let growth = larger.load.as_secs_f64() / smaller.load.as_secs_f64();
    let exponent = growth.ln() / (larger.services as f64 / smaller.services as f64).ln();
    let scale = count as f64 / larger.services as f64;
    let predicted = larger.load.as_secs_f64() * scale.powf(exponent.max(1.0));
    let linear = larger.load.as_secs_f64() * scale;
    if predicted > KUBE_PROXY_LOAD_LIMIT.as_secs_f64() {
        return Err(format!(
            "skipped: extrapolated ≈ {predicted:.0} s (load time grew as services^{exponent:.2} from {} to {}; ≥ {linear:.0} s even if linear), over the bench's {} s limit",
            thousands(smaller.services),
            thousands(larger.services),
            KUBE_PROXY_LOAD_LIMIT.as_secs()
        ));
    }
    Ok(())
}

fn sync_times(with_nft: bool) {
    let mut ours = Vec::new();
    let mut theirs: Vec<kube_proxy::KubeProxy> = Vec::new();
    let mut skipped: Vec<(usize, String)> = Vec::new();
    for count in SIZES {
        ours.push(sync_time::measure(count, CHANGES));
        if !with_nft {
            skipped.push((count, "skipped: nft is not installed".into()));
            continue;
        }
        match kube_proxy_fits(&theirs, count) {
            Ok(()) => theirs.push(kube_proxy::measure(count, CHANGES, KUBE_PROXY_CHANGE_BUDGET)),
            Err(why) => skipped.push((count, why)),
        }
    }
    println!();
    println!("step 1: sync time, IPv4 ClusterIP Services × 8 endpoints, each run into a fresh network namespace");
    println!("  frontdoor: categorize + render_service + Programmed::full in process, then one netlink batch (Socket::apply)");
    println!("  kube-proxy-shaped: the same Services in kube-proxy's nftables layout (per-Service and per-endpoint chains, numgen vmap), one `nft -f -`");
    for sync in &ours {
        let baseline = theirs.iter().find(|k| k.services == sync.services);
        println!(
            "  {:>6} Services: frontdoor full sync {:.0} ms = render+plan {:.0} ms + apply {:.0} ms ({}); batch {} messages, {:.1} MiB",
            thousands(sync.services),
            ms(sync.full()),
            ms(sync.render_plan),
            ms(sync.apply),
            sync.apply_cpu.describe(),
            thousands(sync.messages),
            sync.bytes as f64 / (1024.0 * 1024.0)
        );
        match baseline {
            Some(k) => println!(
                "  {:>6} Services: kube-proxy-shaped `nft -f` load {:.0} ms ({}), {} lines; frontdoor takes {:.3} of it",
                "",
                ms(k.load),
                k.load_cpu.describe(),
                thousands(k.lines),
                sync.full().as_secs_f64() / k.load.as_secs_f64()
            ),
            None => {
                let why = skipped.iter().find(|(n, _)| *n == sync.services).map_or("", |(_, why)| why.as_str());
                println!("  {:>6} Services: kube-proxy-shaped `nft -f` load {why}", "");
            }
        }
        let kube_changes = baseline.map_or_else(
            || "kube-proxy-shaped: not measured".to_string(),
            |k| {
                format!(
                    "kube-proxy-shaped p50 {:.1} / p99 {:.1} ms over {} changes ({:.0}x frontdoor's p99)",
                    ms(percentile(&k.changes, 0.5)),
                    ms(percentile(&k.changes, 0.99)),
                    k.changes.len(),
                    percentile(&k.changes, 0.99).as_secs_f64() / percentile(&sync.changes, 0.99).as_secs_f64()
                )
            },
        );
        match &sync.socket_lb {
            Some(lb) => println!(
                "  {:>6} connect-time balancer (frontdoor up's default, after the rules): every frontend written in {:.0} ms (full sync with it {:.0} ms), one-endpoint change p50 {:.3} / p99 {:.3} ms, its maps {} in the kernel",
                "",
                ms(lb.full),
                ms(sync.full() + lb.full),
                ms(percentile(&lb.changes, 0.5)),
                ms(percentile(&lb.changes, 0.99)),
                lb.kernel_bytes.map_or("(size not reported)".to_string(), |b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)))
            ),
            None => println!("  {:>6} connect-time balancer: not measured (no cgroup v2 BPF here)", ""),
        }
        println!(
            "  {:>6} one-endpoint changes: frontdoor p50 {:.2} / p99 {:.2} ms over {} (apply alone p50 {:.2} / p99 {:.2} ms); {kube_changes}",
            "",
            ms(percentile(&sync.changes, 0.5)),
            ms(percentile(&sync.changes, 0.99)),
            sync.changes.len(),
            ms(percentile(&sync.change_applies, 0.5)),
            ms(percentile(&sync.change_applies, 0.99)),
        );
    }
    // The kube-proxy-shaped figures, the same-run baseline, are in the lines above (as ratios).
    for sync in &ours {
        // With the connect-time balancer's writes, which `frontdoor up` makes after the rules'.
        let lb_full = sync.socket_lb.as_ref().map_or(Duration::ZERO, |lb| lb.full);
        if sync.services == 30_000 {
            report("full sync at 30,000 Services", ms(sync.full() + lb_full), "ms", 5000.0, None);
        }
        let lb_change = sync.socket_lb.as_ref().map_or(Duration::ZERO, |lb| percentile(&lb.changes, 0.99));
        let name = format!("one-endpoint change p99 at {}", thousands(sync.services));
        report(&name, ms(percentile(&sync.changes, 0.99) + lb_change), "ms", 20.0, None);
    }
}

fn first_packets() {
    let runs = first_packet::measure(&[SIZES[0], SIZES[2]], CONNECTS);
    let [small, large] = &runs[..] else { unreachable!("two sizes asked") };
    println!();
    println!(
        "step 2: first-packet latency: connect() to a ClusterIP (DNAT to local endpoint addresses), {} per size, interleaved with connect() straight to an endpoint (the baseline); both sizes side by side, 100 at a time in turn",
        thousands(CONNECTS)
    );
    for run in [small, large] {
        let failures = if run.failures > 0 { format!("; {} FAILED connects", run.failures) } else { String::new() };
        println!(
            "  {:>6} Services: ClusterIP p50 {:.1} µs / p99 {:.1} µs; direct p50 {:.1} µs / p99 {:.1} µs{failures}",
            thousands(run.services),
            us(percentile(&run.cluster_ip, 0.5)),
            us(percentile(&run.cluster_ip, 0.99)),
            us(percentile(&run.direct, 0.5)),
            us(percentile(&run.direct, 0.99)),
        );
    }
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        let ratio = percentile(&large.cluster_ip, p).as_secs_f64() / percentile(&small.cluster_ip, p).as_secs_f64();
        let baseline = percentile(&large.direct, p).as_secs_f64() / percentile(&small.direct, p).as_secs_f64();
        report(&format!("connect {label} via ClusterIP, 30k ÷ 1k"), ratio, "x", 1.10, Some(baseline));
    }
    println!("  (`x baseline` here: the ClusterIP ratio ÷ the same ratio for direct connects, i.e. drift not due to the machine)");
}

fn on_node(binary: &std::path::Path, with_wrk: bool, with_nft: bool) {
    let (programming, throughput) = system::in_fresh_netns(|| {
        let node = node::start(binary, || {
            for server in programming::SERVERS {
                system::ip(&["addr", "add", &format!("{server}/32"), "dev", "lo"]);
            }
        });
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
        let results = runtime.block_on(async {
            let programming = programming::measure(&node, PROGRAMMING_UPDATES).await;
            let throughput = if with_wrk { Some(throughput::measure(&node, with_nft).await) } else { None };
            (programming, throughput)
        });
        drop(node);
        results
    });
    print_programming(&programming);
    match throughput {
        Some(throughput) => print_throughput(&throughput),
        None => println!("step 4: skipped (wrk is not installed)"),
    }
}

fn print_programming(p: &programming::Programming) {
    println!();
    println!(
        "step 3: network programming latency, `frontdoor up` in a private namespace: {} EndpointSlice updates (merge patch, trigger time = send time), one endpoint moved between two servers",
        p.updates
    );
    let write_p50 = ms(percentile(&p.writes, 0.5));
    println!(
        "  baseline: the PATCH round trip p50 {write_p50:.2} ms / p99 {:.2} ms; probed {} of {} (missed {})",
        ms(percentile(&p.writes, 0.99)),
        p.probed.len(),
        p.updates,
        p.missed
    );
    match p.histogram {
        Some(([p50, p99], count)) => {
            println!(
                "  proxy histogram kubeproxy_network_programming_duration_seconds: {count} observations; p50 in bucket ≤ {:.0} ms, p99 in bucket ≤ {:.0} ms (interpolated below)",
                p50.1 * 1000.0,
                p99.1 * 1000.0
            );
            report("network programming p50 (histogram)", p50.0 * 1000.0, "ms", 50.0, Some(write_p50));
            report("network programming p99 (histogram)", p99.0 * 1000.0, "ms", 50.0, Some(write_p50));
        }
        None => println!("  proxy histogram: no observations read from http://127.0.0.1:10249/metrics"),
    }
    report("network programming p50 (probed e2e)", ms(percentile(&p.probed, 0.5)), "ms", 50.0, Some(write_p50));
    report("network programming p99 (probed e2e)", ms(percentile(&p.probed, 0.99)), "ms", 50.0, Some(write_p50));
}

fn print_throughput(t: &throughput::Throughput) {
    println!();
    println!(
        "step 4: HTTP through ClusterIP {}:80 vs straight to pod {} (the same hyper server on a second port; server on core {}, wrk -t1 -c{} -d{}s on core {} from the node and from another pod, {} interleaved rounds, ratios the median of each round's; with nft, also through one static dnat rule to a third port: the floor of any NAT data plane)",
        t.cluster_ip, t.pod_ip, throughput::SERVER_CORE, throughput::CONNECTIONS, throughput::SECONDS, throughput::CLIENT_CORE, throughput::ROUNDS
    );
    match t.connected_peer {
        Some(peer) if *peer.ip() == t.pod_ip => println!(
            "  a socket connected to the ClusterIP from the node runs to the pod ({peer} in /proc/net/tcp): frontdoor's connect-time balancer chose the endpoint, no packet is NATed"
        ),
        Some(peer) => println!(
            "  a socket connected to the ClusterIP from the node runs to {peer} (/proc/net/tcp): the nftables rules NAT each packet (no connect-time balancer)"
        ),
        None => println!("  (could not connect to the ClusterIP from the bench to see how it is served)"),
    }
    for mode in &t.modes {
        let floor = mode.floor.map_or(String::new(), |f| {
            format!("; one static dnat rule {:.0} req/s, p99 {:.2} ms", f.requests_per_second, ms(f.p99))
        });
        println!(
            "  from the {}, {}: ClusterIP {:.0} req/s, p99 {:.2} ms; pod {:.0} req/s, p99 {:.2} ms{floor}; errors {} / {}",
            mode.client,
            mode.name,
            mode.cluster_ip.requests_per_second,
            ms(mode.cluster_ip.p99),
            mode.pod.requests_per_second,
            ms(mode.pod.p99),
            mode.cluster_ip.errors,
            mode.pod.errors
        );
    }
    for mode in &t.modes {
        let short = if mode.name == "keep-alive" { "keep-alive" } else { "conn/request" };
        let short = format!("{short}, from {}", mode.client);
        let spread = |ratios: &[f64]| {
            format!("{:.2}–{:.2}", ratios.first().copied().unwrap_or(0.0), ratios.last().copied().unwrap_or(0.0))
        };
        println!(
            "  ClusterIP ÷ pod, {short}, round by round: throughput {}, p99 {}; ratio of the medians: {:.2} x, {:.2} x",
            spread(&mode.round_rates),
            spread(&mode.round_p99s),
            mode.cluster_ip.requests_per_second / mode.pod.requests_per_second,
            mode.cluster_ip.p99.as_secs_f64() / mode.pod.p99.as_secs_f64(),
        );
        report_at_least(
            &format!("throughput ClusterIP ÷ pod, {short}"),
            throughput::middle(&mode.round_rates),
            "x",
            0.97,
        );
        report(&format!("p99 ClusterIP ÷ pod, {short}"), throughput::middle(&mode.round_p99s), "x", 1.05, None);
        if let Some(floor) = mode.floor {
            println!(
                "  the floor, {short}: one static dnat rule ÷ pod {:.2} x throughput, {:.2} x p99; ClusterIP ÷ that rule {:.2} x, {:.2} x",
                floor.requests_per_second / mode.pod.requests_per_second,
                floor.p99.as_secs_f64() / mode.pod.p99.as_secs_f64(),
                mode.cluster_ip.requests_per_second / floor.requests_per_second,
                mode.cluster_ip.p99.as_secs_f64() / floor.p99.as_secs_f64()
            );
        }
    }
}

/// A figure beside a published one it is compared with (no target).
fn compare(name: &str, value: f64, unit: &str, published: f64, what: &str) {
    println!("{name:<40} {value:>9.2} {unit:<3}  {:.2} of {what} ({published} {unit})", value / published);
}

fn memory_at_scale() {
    let m = memory::measure(MEMORY_SERVICES);
    println!();
    println!(
        "step 5: memory of the proxy's state at {} Services × 8 endpoints (a child process, with frontdoor's allocator, jemalloc)",
        thousands(m.services)
    );
    println!(
        "  RSS {:.1} MiB before; every Service resolved {:+.1} MiB; rendered + programmed state + the full sync's batch {:+.1} MiB; batch applied and dropped: {:.1} MiB ({:+.1} MiB in all); peak {:.1} MiB",
        m.before,
        m.resolved - m.before,
        m.planned - m.resolved,
        m.after,
        m.after - m.before,
        m.peak
    );
    println!("  live heap held after the sync (resolved Services + programmed state): {:.1} MiB", m.live);
    let published = "kube-proxy nftables' published peak at 10,000 Services × 2 endpoints";
    compare("proxy state live heap at 30,000", m.live, "MiB", KUBE_PROXY_PEAK_MIB, published);
    compare("proxy state RSS added at 30,000", m.after - m.before, "MiB", KUBE_PROXY_PEAK_MIB, published);
    compare("peak RSS building it at 30,000", m.peak, "MiB", KUBE_PROXY_PEAK_MIB, published);
}
