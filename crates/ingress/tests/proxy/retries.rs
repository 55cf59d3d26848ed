//! Requests an endpoint fails after they were sent and before answering (a pod killed under
//! load): an idempotent bodiless one goes to another endpoint, any other is 502; each endpoint is
//! tried at most once, at most `max_connect_attempts` in all; a response timeout is not retried.

use std::net::SocketAddr;
use std::time::Duration;

use frontdoor_ingress::{Certificates, ProxyConfig};
use http::Method;
use serde_json::json;
use tokio::net::TcpStream;

use crate::support::*;

const HOST: &str = "retry.example";

/// The proxy with `config`, `HOST` routed to Service `flaky` of `endpoints`.
async fn proxy_for(config: ProxyConfig, endpoints: &[SocketAddr], h2c: bool) -> Proxy {
    let mut cluster = Cluster::default();
    cluster.service("flaky", endpoints, h2c).ingress("retry", json!({"rules": [rule(HOST, &[("/", "flaky")])]}));
    Proxy::start_with(config, cluster.table(), Certificates::with_fake_default().unwrap()).await
}

/// `method /` with `x-request: id` and `body` (none if empty) on a new HTTP/1.1 connection.
async fn send(address: SocketAddr, method: Method, id: usize, body: &'static str) -> Reply {
    let mut connection = http1(TcpStream::connect(address).await.unwrap()).await;
    let sent = request(HOST, "/").method(method).header("x-request", id.to_string());
    let sent = if body.is_empty() { sent.body(empty()) } else { sent.body(full(body)) };
    read_whole(connection.send_request(sent.unwrap()).await.unwrap()).await
}

/// `frontdoor_ingress_upstream_retries_total` of Service `flaky` (counted before the response).
fn retries(proxy: &Proxy) -> usize {
    let series = r#"frontdoor_ingress_upstream_retries_total{namespace="default",ingress="retry",service="flaky"} "#;
    let text = proxy.registry.encode();
    text.lines().find_map(|line| line.strip_prefix(series)).map_or(0, |count| count.parse().unwrap())
}

#[tokio::test]
async fn an_idempotent_bodiless_request_an_endpoint_dropped_goes_to_another() {
    let ways = [
        ("closed", Dying::default()),
        ("reset", Dying { reset: true, ..Dying::default() }),
        ("h2c", Dying { h2c: true, ..Dying::default() }),
    ];
    let methods = [Method::GET, Method::HEAD, Method::OPTIONS, Method::PUT, Method::DELETE];
    for (way, dying) in ways {
        let (dying, healthy) = (DyingBackend::start("dying", dying).await, Backend::start("healthy").await);
        let proxy = proxy_for(config(), &[dying.address, healthy.address], way == "h2c").await;
        // Endpoints are picked at random: in 30 requests the dying one comes first (all but surely).
        for id in 0..30 {
            let method = methods[id % methods.len()].clone();
            let reply = send(proxy.http, method.clone(), id, "").await;
            assert_eq!(reply.status, 200, "{way} {method}: {}", reply.text());
            if method != Method::HEAD {
                assert_eq!(reply.backend(), "healthy", "{way} {method}");
            }
        }
        let dropped = dying.dropped().len();
        assert!(dropped > 0, "{way}: the dying endpoint never came first");
        assert_eq!(healthy.seen().len(), 30, "{way}");
        assert_eq!(retries(&proxy), dropped);
    }
}

#[tokio::test]
async fn a_request_with_a_body_or_not_idempotent_is_not_sent_twice() {
    let (dying, healthy) = (DyingBackend::start("dying", Dying::default()).await, Backend::start("healthy").await);
    let proxy = proxy_for(config(), &[dying.address, healthy.address], false).await;
    let requests = [(Method::POST, "payload"), (Method::PUT, "payload"), (Method::PATCH, "")];
    let mut failed = Vec::new();
    for id in 0..30 {
        let (method, body) = requests[id % requests.len()].clone();
        let reply = send(proxy.http, method.clone(), id, body).await;
        match reply.status.as_u16() {
            200 => assert_eq!(reply.backend(), "healthy"),
            502 => {
                assert_eq!(reply.text(), "502 Bad Gateway\n");
                failed.push(id.to_string());
            }
            other => panic!("{method}: {other} {}", reply.text()),
        }
    }
    assert!(!failed.is_empty(), "the dying endpoint never came first");
    assert_eq!(dying.dropped(), failed, "each request the dying endpoint read was answered 502");
    let served: Vec<String> =
        healthy.seen().iter().map(|seen| seen.headers["x-request"].to_str().unwrap().to_string()).collect();
    assert_eq!(served.len() + failed.len(), 30);
    assert!(failed.iter().all(|id| !served.contains(id)), "no request was sent twice");
    assert_eq!(retries(&proxy), 0);
}

#[tokio::test]
async fn a_get_every_endpoint_drops_is_502_after_max_connect_attempts_endpoints() {
    let mut dying = Vec::new();
    for _ in 0..4 {
        dying.push(DyingBackend::start("dying", Dying::default()).await);
    }
    let endpoints: Vec<SocketAddr> = dying.iter().map(|backend| backend.address).collect();
    // 3 (the default), then every endpoint.
    for (max_connect_attempts, tries) in [(3, 3), (0, 4)] {
        let dropped = || dying.iter().map(|backend| backend.dropped().len()).collect::<Vec<_>>();
        let before = dropped();
        let proxy = proxy_for(ProxyConfig { max_connect_attempts, ..config() }, &endpoints, false).await;
        let reply = get(proxy.http, HOST, "/").await;
        assert_eq!((reply.status.as_u16(), reply.text()), (502, "502 Bad Gateway\n"));
        let each: Vec<usize> = dropped().iter().zip(&before).map(|(after, before)| after - before).collect();
        assert_eq!(each.iter().sum::<usize>(), tries, "requests each endpoint read: {each:?}");
        assert!(each.iter().all(|count| *count <= 1), "an endpoint tried twice: {each:?}");
        assert_eq!(retries(&proxy), tries - 1);
    }
}

#[tokio::test]
async fn a_pooled_connection_its_endpoint_closes_after_reading_the_request_loses_no_request() {
    // Each connection answers one request, then drops the next: only a pooled one fails.
    let dying = DyingBackend::start("dying", Dying { answer_first: 1, ..Dying::default() }).await;
    let healthy = Backend::start("healthy").await;
    let proxy = proxy_for(config(), &[dying.address, healthy.address], false).await;
    let mut connection = http1(TcpStream::connect(proxy.http).await.unwrap()).await;
    for id in 0..40 {
        let sent = request(HOST, "/").header("x-request", id.to_string()).body(empty()).unwrap();
        let reply = read_whole(connection.send_request(sent).await.unwrap()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let dropped = dying.dropped().len();
    assert!(dropped > 0, "the dying endpoint's pooled connection was never used");
    assert_eq!(dying.answered() + healthy.seen().len(), 40);
    assert_eq!(retries(&proxy), dropped);
}

#[tokio::test]
async fn a_response_timeout_is_not_retried() {
    let (one, two) = (Backend::start("one").await, Backend::start("two").await);
    let config = ProxyConfig { upstream_response_timeout: Some(Duration::from_millis(200)), ..config() };
    let proxy = proxy_for(config, &[one.address, two.address], false).await;
    let reply = get(proxy.http, HOST, "/sleep/5000").await;
    assert_eq!((reply.status.as_u16(), reply.text()), (504, "504 Gateway Time-out\n"));
    assert_eq!(one.seen().len() + two.seen().len(), 1, "the slow endpoint alone saw the request");
}

/// An endpoint whose connections hang (a listener that never accepts, its queue full, so its
/// SYNs are dropped, as for a pod whose address went away): with another endpoint left, the
/// request moves on after a second, not after the whole connect timeout.
#[tokio::test]
async fn a_connection_that_hangs_is_given_up_for_another_endpoint() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let stuck = socket.listen(0).unwrap();
    let stuck_address = stuck.local_addr().unwrap();
    // Fill the accept queue (backlog 0 holds one): from then on its SYNs go unanswered.
    let mut held = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(stuck_address)).await
        {
            held.push(stream);
        }
    }
    let hangs = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(stuck_address)).await.is_err();
    assert!(hangs, "the queue did not fill; the test cannot hang a connect here");
    let healthy = Backend::start("healthy").await;
    let slow_connect = ProxyConfig { connect_timeout: Duration::from_secs(30), ..config() };
    let proxy = proxy_for(slow_connect, &[stuck_address, healthy.address], false).await;
    // Endpoints are picked at random: in 16 requests the stuck one comes first (all but surely).
    let mut slowest = Duration::ZERO;
    for id in 0..16 {
        let started = std::time::Instant::now();
        let reply = send(proxy.http, Method::POST, id, "body").await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.backend(), "healthy");
    }
    assert!(slowest >= Duration::from_millis(900), "the stuck endpoint never came first ({slowest:?})");
    assert!(slowest < Duration::from_secs(5), "held for {slowest:?}, not moved on after a second");
    drop((held, stuck));
}
