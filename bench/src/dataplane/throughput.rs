//! Step 4: HTTP throughput and p99 latency through a ClusterIP vs straight to the pod, with the
//! real `frontdoor up`: one pod runs this bench's own HTTP server (`serve-http`, hyper) as its
//! container command, a Service selects it, and `wrk` runs from two places: the node's namespace,
//! and a second pod's (the in-cluster client a ClusterIP is for; `wrk` is started there with
//! `nsenter`): keep-alive, and a new connection per request (`Connection: close`), each to both
//! addresses; the runs are interleaved, several rounds, and the median of the rounds is kept.
//!
//! A third target is the floor any NAT data plane starts from: one static nftables `dnat` rule
//! (a table of the bench's own, `natfloor`, no maps, no chains per Service) from an address
//! outside the cluster's ranges to the same pod, measured in the same rounds. Its ratio to the
//! pod is what the kernel's connection tracking and NAT cost by themselves.
//!
//! The same server answers on three ports: the Service's target port, another for the direct
//! runs and a third for the floor's. With one port, a direct run after a ClusterIP run reuses the 4-tuples the pod still holds
//! in TIME_WAIT from the ClusterIP run, whose TCP timestamps came from another offset (the client
//! saw another destination), so some SYNs stall for a second: that measures the benchmark, not
//! the data path (ClusterIP runs do not suffer it: NAT picks another source port on a clash).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use frontdoor_testkit::{ApiClient, Frontdoor};
use serde_json::json;

use super::node::{create, wait_for};
use super::serve;

/// Seven rounds of three seconds: on two cores, one round's p99 swings by tens of percent.
pub const ROUNDS: usize = 7;
pub const SECONDS: u32 = 3;
pub const CONNECTIONS: u32 = 16;
/// Where the pod's HTTP server runs, and where `wrk` does.
pub const SERVER_CORE: usize = 0;
pub const CLIENT_CORE: usize = 1;
/// The Service's target port, and the port the direct runs use.
const SERVICE_TARGET: u16 = 8080;
const DIRECT: u16 = 8081;
const FLOOR_TARGET: u16 = 8082;
/// The floor rule's address: outside the service and pod ranges, routed to the bridge.
const FLOOR_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 255, 255, 250);

#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    pub requests_per_second: f64,
    pub p99: Duration,
    pub errors: u64,
}

/// One client and mode (keep-alive or a connection per request), both ways.
pub struct Mode {
    /// Where `wrk` ran: "node" or "pod".
    pub client: &'static str,
    pub name: &'static str,
    pub cluster_ip: Run,
    pub pod: Run,
    /// Through the one static `dnat` rule (when `nft` is installed).
    pub floor: Option<Run>,
    /// ClusterIP ÷ pod within each round (the two runs minutes apart at most, so what the
    /// machine did meanwhile weighs on both), throughput and p99, sorted: the verdict is their
    /// median, and their spread shows the noise.
    pub round_rates: Vec<f64>,
    pub round_p99s: Vec<f64>,
}

/// The middle of sorted `values`.
pub fn middle(values: &[f64]) -> f64 {
    values[values.len() / 2]
}

pub struct Throughput {
    pub modes: Vec<Mode>,
    pub pod_ip: Ipv4Addr,
    pub cluster_ip: Ipv4Addr,
    /// The peer the kernel holds for a socket connected to the ClusterIP from the node: the
    /// pod's address when frontdoor's connect-time balancer chose it, the ClusterIP when the
    /// rules NAT each packet (`getpeername` names the ClusterIP either way).
    pub connected_peer: Option<SocketAddrV4>,
}

fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Requests/s, the 99th percentile and errors from `wrk --latency`'s report.
fn parse_wrk(report: &str) -> Run {
    let mut run = Run::default();
    for line in report.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", value] => run.requests_per_second = value.parse().unwrap_or(0.0),
            ["99%", value] => run.p99 = duration(value).unwrap_or_default(),
            ["Socket", "errors:", rest @ ..] => {
                run.errors += rest.iter().filter_map(|v| v.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>();
            }
            ["Non-2xx", "or", "3xx", "responses:", value] => run.errors += value.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    run
}

/// `wrk` in the node's namespace (`pod` None) or in the network namespace of the process `pod`.
async fn wrk(url: &str, close: bool, pod: Option<u32>) -> Run {
    let mut command = tokio::process::Command::new("taskset");
    command.args(["-c", &CLIENT_CORE.to_string()]);
    if let Some(pid) = pod {
        command.arg("nsenter").arg(format!("--net=/proc/{pid}/ns/net"));
    }
    command.arg("wrk");
    command.args(["-t1", &format!("-c{CONNECTIONS}"), &format!("-d{SECONDS}s"), "--latency"]);
    if close {
        command.args(["-H", "Connection: close"]);
    }
    let output = command.arg(url).output().await.expect("wrk runs");
    assert!(output.status.success(), "wrk {url}: {}", String::from_utf8_lossy(&output.stderr));
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

fn median(runs: &[Run]) -> Run {
    let rates = sorted(runs.iter().map(|r| r.requests_per_second).collect());
    let p99s = sorted(runs.iter().map(|r| r.p99.as_secs_f64()).collect());
    let errors = runs.iter().map(|r| r.errors).sum();
    Run { requests_per_second: middle(&rates), p99: Duration::from_secs_f64(middle(&p99s)), errors }
}

/// Whether an HTTP GET to `address:port` is answered.
async fn answers(address: Ipv4Addr, port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect((address, port)).await else { return false };
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut answer)).await;
    answer.starts_with(b"HTTP/1.")
}

pub async fn measure(node: &Frontdoor, with_nft: bool) -> Throughput {
    let client = ApiClient::new(node);
    let exe = std::env::current_exe().expect("the bench's own path");
    // The server on core 0 and wrk on core 1, as the DNS benchmark pins its servers and dnsperf:
    // unpinned, the two trade cores mid-run and one round's p99 swings by tens of percent.
    let command = [
        "taskset".to_string(),
        "-c".to_string(),
        SERVER_CORE.to_string(),
        exe.to_string_lossy().into_owned(),
        serve::SUBCOMMAND.to_string(),
        SERVICE_TARGET.to_string(),
        DIRECT.to_string(),
        FLOOR_TARGET.to_string(),
    ];
    create(
        &client,
        "/api/v1/namespaces/default/pods",
        json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "http", "image": "none", "command": command, "ports": [{"containerPort": SERVICE_TARGET}]}]}
        }),
    )
    .await;
    let service = create(
        &client,
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": SERVICE_TARGET}]}}),
    )
    .await;
    let cluster_ip: Ipv4Addr =
        service["spec"]["clusterIP"].as_str().and_then(|ip| ip.parse().ok()).expect("a ClusterIP");
    let pod_ip: Ipv4Addr = wait_for("the pod's address", Duration::from_secs(30), || async {
        let (_, body) = client.send("GET", "/api/v1/namespaces/default/pods/web", None).await;
        let pod: serde_json::Value = serde_json::from_slice(&body).ok()?;
        pod["status"]["podIP"].as_str()?.parse().ok()
    })
    .await;
    wait_for("the pod to answer", Duration::from_secs(30), || async { answers(pod_ip, DIRECT).await.then_some(()) })
        .await;
    wait_for("the Service to answer", Duration::from_secs(30), || async {
        answers(cluster_ip, 80).await.then_some(())
    })
    .await;

    // The in-cluster client: a pod that only sleeps, found by its unique command line.
    let marker = format!("3600.{}", std::process::id());
    create(
        &client,
        "/api/v1/namespaces/default/pods",
        json!({
            "metadata": {"name": "client"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "sleep", "image": "none", "command": ["sleep", marker]}]}
        }),
    )
    .await;
    let client_pid = wait_for("the client pod's process", Duration::from_secs(30), || {
        let marker = marker.clone();
        async move { process_with_command(&["sleep", &marker]) }
    })
    .await;

    let connected_peer = kernel_peer_of_connection((cluster_ip, 80));
    let floor = with_nft && install_floor(pod_ip);
    if floor {
        wait_for("the floor rule to answer", Duration::from_secs(30), || async {
            answers(FLOOR_ADDRESS, 80).await.then_some(())
        })
        .await;
    }
    let mut targets = vec![format!("http://{cluster_ip}:80/"), format!("http://{pod_ip}:{DIRECT}/")];
    if floor {
        targets.push(format!("http://{FLOOR_ADDRESS}:80/"));
    }
    let mut modes = Vec::new();
    for (client, pod) in [("node", None), ("pod", Some(client_pid))] {
        for (name, close) in [("keep-alive", false), ("new connection per request", true)] {
            let mut runs: Vec<Vec<Run>> = targets.iter().map(|_| Vec::new()).collect();
            for round in 0..ROUNDS {
                // Each goes first in turn.
                for k in 0..targets.len() {
                    let i = (round + k) % targets.len();
                    runs[i].push(wrk(&targets[i], close, pod).await);
                }
            }
            let ratios = |value: fn(&Run) -> f64| {
                sorted(runs[0].iter().zip(&runs[1]).map(|(c, p)| value(c) / value(p)).collect())
            };
            modes.push(Mode {
                client,
                name,
                cluster_ip: median(&runs[0]),
                pod: median(&runs[1]),
                floor: runs.get(2).map(|r| median(r)),
                round_rates: ratios(|r| r.requests_per_second),
                round_p99s: ratios(|r| r.p99.as_secs_f64()),
            });
        }
    }
    Throughput { modes, pod_ip, cluster_ip, connected_peer }
}

/// The floor: one static `dnat` rule from [`FLOOR_ADDRESS`]:80 to the pod, for the node's own
/// connections (output) and for pods' (prerouting), with a route to the bridge. Whether it
/// was installed.
fn install_floor(pod_ip: Ipv4Addr) -> bool {
    let rule = format!("ip daddr {FLOOR_ADDRESS} tcp dport 80 dnat to {pod_ip}:{FLOOR_TARGET}");
    let ruleset = format!(
        "table ip natfloor {{\n\
         \x20 chain output {{ type nat hook output priority -100; policy accept; {rule}; }}\n\
         \x20 chain prerouting {{ type nat hook prerouting priority -100; policy accept; {rule}; }}\n\
         }}\n"
    );
    let loaded = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut nft| {
            use std::io::Write;
            nft.stdin.take().expect("piped").write_all(ruleset.as_bytes())?;
            nft.wait()
        })
        .is_ok_and(|status| status.success());
    if loaded {
        super::system::ip(&["route", "add", &format!("{FLOOR_ADDRESS}/32"), "dev", "frontdoor0"]);
    }
    loaded
}

/// Connects to `address` (blocking, from this thread) and returns the peer the kernel's socket
/// holds.
fn kernel_peer_of_connection(address: (Ipv4Addr, u16)) -> Option<SocketAddrV4> {
    let stream = std::net::TcpStream::connect_timeout(&address.into(), Duration::from_secs(2)).ok()?;
    frontdoor_socket_lb::kernel_peer(stream.local_addr().ok()?.port())
}

/// The pid of the process whose command line is exactly `command`.
fn process_with_command(command: &[&str]) -> Option<u32> {
    let wanted: Vec<u8> = command.iter().flat_map(|part| part.bytes().chain([0])).collect();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        (std::fs::read(entry.path().join("cmdline")).ok()? == wanted).then_some(pid)
    })
}
