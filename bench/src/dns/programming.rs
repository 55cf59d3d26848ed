//! DNS programming latency through the real `frontdoor up` (in a network namespace made for it):
//! 200 Services created one after another through the API, as `kubectl create service` sends
//! them; each is timed from the moment its create is sent until the node's DNS server answers
//! its name with its ClusterIP (asked every 0.2 ms). Target: p99 ≤ 50 ms. The
//! same-run baseline is the create's own round trip.

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use frontdoor_testkit::{ApiClient, Frontdoor};
use serde_json::json;

use super::latency::{realtime_ns, recv_stamped, stamp_arrivals};
use super::probe::{a_question, readable_within, recv_within};
use crate::dataplane::node::create;

pub const CREATIONS: usize = 200;
/// The node's DNS address (the bridge's).
const NODE: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
const GIVE_UP: Duration = Duration::from_secs(5);
/// How often a new Service's name is asked until it answers: the measurement's resolution.
const ASK_EVERY: Duration = Duration::from_micros(200);
/// How often the steady stream asks its unchanging name.
const STEADY_EVERY: Duration = Duration::from_millis(1);

pub struct Programming {
    /// Create sent → name answered with the ClusterIP, sorted.
    pub resolved: Vec<Duration>,
    /// The create's round trip, sorted.
    pub creates: Vec<Duration>,
    pub missed: usize,
    /// Meanwhile, the answer time of a steady stream of queries for a name that does not change
    /// (one every millisecond, from dnsperf's core, each timed to its answer's kernel receive
    /// stamp): what each rebuild of the index costs the
    /// queries that arrive while it runs. Sorted; `unanswered` got no answer within a second.
    pub steady: Vec<Duration>,
    pub unanswered: usize,
}

/// Asks `kubernetes.default.svc.cluster.local` every millisecond until `stop`, timing each answer;
/// the answers' times, and how many got none within a second.
fn steady_queries(stop: &AtomicBool) -> (Vec<Duration>, usize) {
    let _pinned = super::ThreadPinned::to(super::CLIENT_CORE);
    let socket = UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    stamp_arrivals(&socket);
    // Each outstanding query's send time, on the clock the kernel stamps arrivals with: an
    // answer is timed to its arrival, not to when this thread got round to reading it.
    let mut sent: HashMap<u16, u64> = HashMap::new();
    let (mut answered, mut unanswered, mut buffer) = (Vec::new(), 0, [0u8; 512]);
    let (mut next, mut id) = (Instant::now(), 0u16);
    let mut question = a_question("kubernetes.default.svc.cluster.local", id);
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            id = id.wrapping_add(1);
            question[..2].copy_from_slice(&id.to_be_bytes());
            sent.insert(id, realtime_ns());
            let _ = socket.send_to(&question, (NODE, 53));
            next += STEADY_EVERY;
        }
        if readable_within(&socket, next.saturating_duration_since(Instant::now())) {
            while let Some((n, arrived)) = recv_stamped(&socket, &mut buffer) {
                let id = (n >= 2).then(|| u16::from_be_bytes([buffer[0], buffer[1]]));
                if let Some(at) = id.and_then(|id| sent.remove(&id)) {
                    answered.push(Duration::from_nanos(arrived.saturating_sub(at)));
                }
            }
        }
        let before = sent.len();
        let now = realtime_ns();
        sent.retain(|_, at| now.saturating_sub(*at) < 1_000_000_000);
        unanswered += before - sent.len();
    }
    answered.sort();
    (answered, unanswered)
}

/// Whether `answer` holds `ip` as an A record (the last four bytes of a one-answer response).
fn answers_with(answer: &[u8], ip: Ipv4Addr) -> bool {
    answer.len() > 16 && answer[3] & 0x0f == 0 && answer[7] >= 1 && answer.ends_with(&ip.octets())
}

pub async fn measure(node: &Frontdoor) -> Programming {
    let client = ApiClient::new(node);
    let socket = UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    let mut buffer = [0u8; 512];
    let (mut resolved, mut creates, mut missed) = (Vec::new(), Vec::new(), 0);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let steady = std::thread::spawn({
        let stop = stop.clone();
        move || steady_queries(&stop)
    });
    for i in 0..CREATIONS {
        let name = format!("dns-{i}");
        let body = json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}]}
        });
        let sent = Instant::now();
        let created = create(&client, "/api/v1/namespaces/default/services", body).await;
        creates.push(sent.elapsed());
        let ip: Ipv4Addr = created["spec"]["clusterIP"].as_str().and_then(|ip| ip.parse().ok()).expect("a ClusterIP");
        let question = a_question(&format!("{name}.default.svc.cluster.local"), i as u16);
        let answered = loop {
            let _ = socket.send_to(&question, (NODE, 53));
            // Asked again ASK_EVERY later, whatever came meanwhile (the NXDOMAIN of a name not
            // yet built, or a late answer to an earlier ask).
            let again = Instant::now() + ASK_EVERY;
            let mut hit = false;
            while let Some(n) = recv_within(&socket, &mut buffer, again.saturating_duration_since(Instant::now())) {
                if buffer[..2] == question[..2] && answers_with(&buffer[..n], ip) {
                    hit = true;
                    break;
                }
            }
            if hit {
                break Some(sent.elapsed());
            }
            if sent.elapsed() > GIVE_UP {
                break None;
            }
        };
        match answered {
            Some(latency) => resolved.push(latency),
            None => missed += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (steady, unanswered) = steady.join().expect("the steady queries' thread");
    resolved.sort();
    creates.sort();
    Programming { resolved, creates, missed, steady, unanswered }
}
