//! `cargo run --release -p frontdoor-bench`: the control-plane benchmark.
//!
//! Starts the real `frontdoor up` (release build, temporary data directory, free loopback port),
//! opens 100 watches on Services, creates 10,000 Services with 32 concurrent clients (one
//! HTTP/1.1 keep-alive connection each), lists them, and prints p50/p99 create latency, list
//! latency, watch delivery latency (ack of the create → event at the watcher), start-to-ready
//! and peak RSS, each with its target and with its ratio to a baseline measured in the same run
//! (the p50 of an authenticated `GET /version` round trip on the same connections).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

type Https = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

const SERVICES: usize = 10_000;
const CLIENTS: usize = 32;
const WATCHERS: usize = 100;

struct Server {
    child: Child,
    address: String,
    token: String,
    ca_pem: Vec<u8>,
    ready_after: Duration,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> std::path::PathBuf {
    let here = std::env::current_exe().expect("current exe");
    here.parent().expect("target dir").join("frontdoor")
}

fn start_server() -> Server {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let mut child = Command::new(binary())
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run target/release/frontdoor (build it with `cargo build --release -p frontdoor`)");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    let ready_after = started.elapsed();
    std::thread::spawn(move || for _ in lines {});
    let address = line.split("https://").nth(1).and_then(|r| r.split_whitespace().next()).expect("ready line").to_string();
    let token = std::fs::read_to_string(dir.path().join("token")).expect("token").trim().to_string();
    let ca_pem = std::fs::read(dir.path().join("ca.crt")).expect("ca");
    Server { child, address, token, ca_pem, ready_after, _dir: dir }
}

fn client(ca_pem: &[u8], http2: bool) -> Https {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only();
    let connector = if http2 { builder.enable_http2().build() } else { builder.enable_http1().build() };
    let mut client = Client::builder(TokioExecutor::new());
    client.pool_max_idle_per_host(1);
    if http2 {
        client.http2_only(true);
    }
    client.build(connector)
}

fn request(server: &Server, method: &str, path: &str, body: Option<String>) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(format!("https://{}{path}", server.address))
        .header("Authorization", format!("Bearer {}", server.token))
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn report(name: &str, value: f64, unit: &str, target: f64, baseline: Option<f64>) {
    let vs_baseline = baseline.map(|b| format!("{:>8.1}x baseline", value / b)).unwrap_or_default();
    let verdict = if value <= target { "ok" } else { "OVER" };
    println!("{name:<34} {value:>10.2} {unit:<3}  target < {target:<8} ({:>5.2} of target, {verdict}) {vs_baseline}", value / target);
}

#[tokio::main]
async fn main() {
    let server = start_server();
    let pid = server.child.id();
    let plain = client(&server.ca_pem, false);

    // Same-run baseline: an authenticated round trip that does no storage work.
    let mut baseline = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let response = plain.request(request(&server, "GET", "/version", None)).await.expect("version");
        let _ = response.into_body().collect().await;
        baseline.push(t.elapsed());
    }
    baseline.sort();
    let baseline_ms = ms(percentile(&baseline, 0.5));

    // Watchers: 100 watch streams, each on its own connection as separate clients would be.
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::with_capacity(SERVICES)));
    let delivery: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::with_capacity(SERVICES * WATCHERS)));
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        let watch_client = client(&server.ca_pem, false);
        let response = watch_client
            .request(request(&server, "GET", "/api/v1/namespaces/default/services?watch=true&resourceVersion=0", None))
            .await
            .expect("watch");
        let (acked, delivery) = (acked.clone(), delivery.clone());
        watchers.push(tokio::spawn(async move {
            let mut body = response.into_body();
            let mut buffer = Vec::new();
            let mut seen = 0;
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else { continue };
                let arrived = Instant::now();
                buffer.extend_from_slice(&data);
                while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    // A byte scan, not a JSON parse: the benchmark client must not starve the server.
                    let Some(name) = service_name(&line) else { continue };
                    let sent = acked.lock().unwrap().get(&name).copied();
                    if let Some(sent) = sent {
                        delivery.lock().unwrap().push(arrived.saturating_duration_since(sent));
                    }
                    seen += 1;
                    if seen == SERVICES {
                        return;
                    }
                }
            }
        }));
    }

    // Creates.
    let created = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..CLIENTS {
        let http = client(&server.ca_pem, false);
        let acked = acked.clone();
        let requests: Vec<_> = (worker..SERVICES)
            .step_by(CLIENTS)
            .map(|i| {
                let body = format!(
                    r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"svc-{i}","labels":{{"app":"bench"}}}},"spec":{{"type":"NodePort","selector":{{"app":"bench-{i}"}},"ports":[{{"port":80,"targetPort":8080}}]}}}}"#
                );
                (format!("svc-{i}"), request(&server, "POST", "/api/v1/namespaces/default/services", Some(body)))
            })
            .collect();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests.len());
            for (name, req) in requests {
                let t = Instant::now();
                let response = http.request(req).await.expect("create");
                let status = response.status();
                let _ = response.into_body().collect().await;
                latencies.push(t.elapsed());
                assert_eq!(status, 201, "create {name}");
                acked.lock().unwrap().insert(name, Instant::now());
            }
            latencies
        }));
    }
    let mut creates = Vec::new();
    for w in workers {
        creates.extend(w.await.expect("worker"));
    }
    let create_wall = created.elapsed();
    creates.sort();

    // Watch delivery: wait until every watcher saw every Service (bounded).
    let _ = tokio::time::timeout(Duration::from_secs(60), futures_join(watchers)).await;
    let mut deliveries = delivery.lock().unwrap().clone();
    deliveries.sort();

    // Lists: full JSON list and the Table kubectl asks for.
    let mut lists = Vec::new();
    let mut tables = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let response = plain.request(request(&server, "GET", "/api/v1/namespaces/default/services", None)).await.expect("list");
        let bytes = response.into_body().collect().await.expect("list body").to_bytes();
        lists.push(t.elapsed());
        let count = serde_json::from_slice::<serde_json::Value>(&bytes).expect("list json")["items"].as_array().map_or(0, Vec::len);
        assert_eq!(count, SERVICES);
        let mut table_request = request(&server, "GET", "/api/v1/namespaces/default/services?limit=500", None);
        table_request.headers_mut().insert("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json".parse().unwrap());
        let t = Instant::now();
        let response = plain.request(table_request).await.expect("table");
        let _ = response.into_body().collect().await;
        tables.push(t.elapsed());
    }
    lists.sort();
    tables.sort();
    let rss = peak_rss_mib(pid);

    println!("frontdoor control-plane benchmark: {SERVICES} Services, {CLIENTS} clients, {WATCHERS} watchers");
    println!("baseline: authenticated GET /version round trip p50 = {baseline_ms:.3} ms (same run, same connections)");
    println!("creates: {:.0}/s over {:.2} s; watch events received: {}", SERVICES as f64 / create_wall.as_secs_f64(), create_wall.as_secs_f64(), deliveries.len());
    report("start to ready", ms(server.ready_after), "ms", 300.0, None);
    report("create latency p50", ms(percentile(&creates, 0.5)), "ms", 20.0, Some(baseline_ms));
    report("create latency p99", ms(percentile(&creates, 0.99)), "ms", 20.0, Some(baseline_ms));
    report("list 10,000 (JSON) median", ms(percentile(&lists, 0.5)), "ms", 200.0, Some(baseline_ms));
    report("list first page (Table, 500) median", ms(percentile(&tables, 0.5)), "ms", 200.0, Some(baseline_ms));
    report("watch delivery p50", ms(percentile(&deliveries, 0.5)), "ms", 10.0, Some(baseline_ms));
    report("watch delivery p99", ms(percentile(&deliveries, 0.99)), "ms", 10.0, Some(baseline_ms));
    report("peak RSS", rss, "MiB", 200.0, None);
    if deliveries.len() < SERVICES * WATCHERS {
        println!("warning: only {} of {} watch events arrived", deliveries.len(), SERVICES * WATCHERS);
    }
}

fn service_name(line: &[u8]) -> Option<String> {
    let needle = b"\"name\":\"svc-";
    let start = line.windows(needle.len()).position(|w| w == needle)? + needle.len() - 4;
    let end = start + line[start..].iter().position(|b| *b == b'"')?;
    Some(String::from_utf8_lossy(&line[start..end]).into_owned())
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}
