//! The whole stack: `frontdoor up` (release build) from its start until every part serves —
//! the API (the testkit's start returns once it answers), the service proxy's first sync
//! (`:10256/healthz` 200), cluster DNS (`kubernetes.default.svc.cluster.local` answered on the
//! node's DNS address) and the Ingress proxy (port 80 accepts) — then its RSS once idle.

use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use frontdoor_testkit::Frontdoor;

use crate::dns::probe::{a_question, recv_within};
use crate::report;

/// The bridge's address, where DNS and the Ingress listen.
const NODE: &str = "10.244.0.1";
/// How long after ready the process is left alone before its idle RSS is read.
const SETTLE: Duration = Duration::from_secs(3);

pub fn measure(binary: &Path) {
    let started = Instant::now();
    let fd = Frontdoor::start_node_in_current_namespace(binary, &["--node-name", "bench"]);
    let api = started.elapsed();
    let deadline = started + Duration::from_secs(30);
    let mut parts: [(&str, Option<Duration>); 3] =
        [("rules programmed", None), ("DNS answering", None), ("ingress listening", None)];
    while parts.iter().any(|(_, at)| at.is_none()) {
        assert!(Instant::now() < deadline, "the stack was not ready within 30 s: {parts:?}");
        let checks = [proxy_synced, dns_answers, ingress_listens];
        for ((_, at), check) in parts.iter_mut().zip(checks) {
            if at.is_none() && check() {
                *at = Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ready = parts.iter().filter_map(|(_, at)| *at).max().unwrap_or_default().max(api);
    let detail: Vec<String> = parts
        .iter()
        .map(|(name, at)| format!("{name} {:.0} ms", at.unwrap_or_default().as_secs_f64() * 1000.0))
        .collect();
    println!("  frontdoor up: API serving {:.0} ms, {}", api.as_secs_f64() * 1000.0, detail.join(", "));
    report("frontdoor up: start to ready", ready.as_secs_f64() * 1000.0, "ms", 1000.0, None);
    std::thread::sleep(SETTLE);
    let rss = crate::dataplane::system::status_mib(&fd.pid().to_string(), "VmRSS:");
    report("frontdoor up: idle RSS (whole process)", rss, "MiB", 60.0, None);
    drop(fd);
}

fn proxy_synced() -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&"127.0.0.1:10256".parse().unwrap(), Duration::from_millis(100))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    if stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

fn dns_answers() -> bool {
    let query = a_question("kubernetes.default.svc.cluster.local", 0x4242);
    let Ok(socket) = UdpSocket::bind("0.0.0.0:0") else { return false };
    if socket.send_to(&query, (NODE, 53)).is_err() {
        return false;
    }
    let mut answer = [0u8; 512];
    // An answer on this machine takes well under a millisecond; a query sent before the server
    // listens gets none (no ICMP error reaches an unconnected socket), and a long wait here would
    // hold every check up with it. NOERROR with one answer.
    matches!(recv_within(&socket, &mut answer, Duration::from_millis(5)), Some(n) if n > 12 && answer[3] & 0x0f == 0 && answer[7] >= 1)
}

fn ingress_listens() -> bool {
    TcpStream::connect_timeout(&format!("{NODE}:80").parse().unwrap(), Duration::from_millis(100)).is_ok()
}
