//! Step 3: network programming latency (EndpointSlice change → rule in the kernel) through the
//! real `frontdoor up`. A Service without selector and an EndpointSlice this bench manages; each
//! update moves the slice's one endpoint between two servers on the node's loopback
//! (10.244.255.1 and .2, port 8080, each answering with its own letter) and stamps
//! `endpoints.kubernetes.io/last-change-trigger-time` with the moment it is sent (RFC 3339,
//! microseconds; the proxy's `trigger_time` parses it with chrono's `parse_from_rfc3339`).
//!
//! Two readings of the same updates: the proxy's own histogram
//! `kubeproxy_network_programming_duration_seconds` (trigger time → batch applied, bucketed), and
//! end to end, probed here: update sent → the first new connection to the ClusterIP that reaches
//! the new server (a probe every millisecond). The same-run baseline is the update's API round
//! trip.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use frontdoor_testkit::{ApiClient, Frontdoor};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::node::{create, wait_for};

pub const SERVERS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 244, 255, 1), Ipv4Addr::new(10, 244, 255, 2)];
const SERVER_PORT: u16 = 8080;
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const METRIC: &str = "kubeproxy_network_programming_duration_seconds";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";

pub struct Programming {
    pub updates: usize,
    /// From the proxy's histogram (observations during the updates): p50 and p99 as
    /// (interpolated, bucket upper bound) in seconds, and the count.
    pub histogram: Option<([(f64, f64); 2], u64)>,
    /// Update sent → new server reached, sorted.
    pub probed: Vec<Duration>,
    /// The update's API round trip, sorted.
    pub writes: Vec<Duration>,
    pub missed: usize,
}

/// Cumulative bucket counts `(le, count)` of the histogram, from `/metrics` on 127.0.0.1:10249.
async fn histogram() -> Vec<(f64, u64)> {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", 10249)).await else { return Vec::new() };
    let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text).await;
    let prefix = format!("{METRIC}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The `q` quantile of the observations between two snapshots: interpolated within its bucket
/// (as Prometheus' `histogram_quantile`) and the bucket's upper bound.
fn quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Option<(f64, f64)> {
    let counts: Vec<(f64, u64)> =
        after.iter().map(|(le, n)| (*le, n - before.iter().find(|(l, _)| l == le).map_or(0, |(_, m)| *m))).collect();
    let total = counts.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let (mut lower, mut below) = (0.0, 0);
    for (le, cumulative) in counts {
        if cumulative as f64 >= rank {
            let within = (rank - below as f64) / (cumulative - below).max(1) as f64;
            let upper = if le.is_finite() { le } else { lower };
            return Some((lower + (upper - lower) * within, le));
        }
        (lower, below) = (le, cumulative);
    }
    None
}

/// Serves `letter` on `address:8080` until the runtime stops.
async fn letter_server(address: Ipv4Addr, letter: u8) {
    let listener = tokio::net::TcpListener::bind((address, SERVER_PORT)).await.expect("probe server binds");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(&[letter]).await;
        }
    });
}

/// Which server a new connection to `service` reaches (`None`: refused or nothing read).
async fn reached(service: (Ipv4Addr, u16)) -> Option<u8> {
    let mut stream = tokio::net::TcpStream::connect(service).await.ok()?;
    let mut letter = [0u8];
    tokio::time::timeout(Duration::from_millis(200), stream.read_exact(&mut letter)).await.ok()?.ok()?;
    Some(letter[0])
}

fn slice_patch(server: Ipv4Addr) -> String {
    let now = chrono::Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    json!({
        "metadata": {"annotations": {TRIGGER_TIME: now}},
        "endpoints": [{"addresses": [server.to_string()], "conditions": {"ready": true}}]
    })
    .to_string()
}

pub async fn measure(node: &Frontdoor, updates: usize) -> Programming {
    let client = ApiClient::new(node);
    for (address, letter) in SERVERS.iter().zip([b'A', b'B']) {
        letter_server(*address, letter).await;
    }
    let service = create(
        &client,
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": "probe"}, "spec": {"ports": [{"port": 80, "targetPort": SERVER_PORT}]}}),
    )
    .await;
    let cluster_ip: Ipv4Addr =
        service["spec"]["clusterIP"].as_str().and_then(|ip| ip.parse().ok()).expect("a ClusterIP");
    let labels =
        json!({"kubernetes.io/service-name": "probe", "endpointslice.kubernetes.io/managed-by": "frontdoor-bench"});
    create(
        &client,
        SLICES,
        json!({
            "metadata": {"name": "probe-1", "labels": labels},
            "addressType": "IPv4",
            "ports": [{"port": SERVER_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [SERVERS[0].to_string()], "conditions": {"ready": true}}]
        }),
    )
    .await;
    let target = (cluster_ip, 80);
    wait_for("the probe Service to reach its first server", Duration::from_secs(20), || async {
        (reached(target).await == Some(b'A')).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let before = histogram().await;
    let (mut probed, mut writes, mut missed) = (Vec::new(), Vec::new(), 0);
    let path = format!("{SLICES}/probe-1");
    for update in 0..updates {
        let (server, letter) = if update % 2 == 0 { (SERVERS[1], b'B') } else { (SERVERS[0], b'A') };
        let body = slice_patch(server);
        let sent = Instant::now();
        let (status, answer) =
            client.send_with("PATCH", &path, "application/merge-patch+json", body.into(), None).await;
        writes.push(sent.elapsed());
        assert_eq!(status, 200, "patch the slice: {}", String::from_utf8_lossy(&answer));
        let switched = tokio::time::timeout(Duration::from_secs(5), async {
            while reached(target).await != Some(letter) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sent.elapsed()
        })
        .await;
        match switched {
            Ok(latency) => probed.push(latency),
            Err(_) => missed += 1,
        }
        // Changes apart, so that each is one sync (the proxy's min sync period is 5 ms).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = histogram().await;
    let histogram = match (quantile(&before, &after, 0.5), quantile(&before, &after, 0.99)) {
        (Some(p50), Some(p99)) => {
            let count = after.last().map_or(0, |(_, n)| *n) - before.last().map_or(0, |(_, n)| *n);
            Some(([p50, p99], count))
        }
        _ => None,
    };
    probed.sort();
    writes.sort();
    Programming { updates, histogram, probed, writes, missed }
}
