//! Shutdown: no new connections, requests in flight finish (up to the drain timeout), idle
//! connections close at once.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::TcpStream;

use crate::support::*;

async fn sleepy_proxy(drain_timeout: Duration) -> (Backend, Proxy) {
    let backend = Backend::start("sleepy").await;
    let mut cluster = Cluster::default();
    cluster
        .service("sleepy", &[backend.address], false)
        .ingress("sleepy", json!({"rules": [rule("", &[("/", "sleepy")])]}));
    let config = frontdoor_ingress::ProxyConfig { drain_timeout, ..config() };
    let proxy =
        Proxy::start_with(config, cluster.table(), frontdoor_ingress::Certificates::with_fake_default().unwrap()).await;
    (backend, proxy)
}

#[tokio::test]
async fn a_request_in_flight_finishes_during_the_drain() {
    let (backend, mut proxy) = sleepy_proxy(Duration::from_secs(5)).await;
    // An idle keep-alive connection and an HTTP/2 one must not hold the drain up.
    let idle_io = hyper_util::rt::TokioIo::new(TcpStream::connect(proxy.http).await.unwrap());
    let (mut idle, idle_connection) = hyper::client::conn::http1::handshake(idle_io).await.unwrap();
    let idle_connection = tokio::spawn(idle_connection);
    let sent = request("a.example", "/").body(empty()).unwrap();
    assert_eq!(read_whole(idle.send_request(sent).await.unwrap()).await.status, 200);
    let mut idle_http2 = http2(TcpStream::connect(proxy.http).await.unwrap()).await;
    let sent = http::Request::builder().uri("http://a.example/").body(empty()).unwrap();
    assert_eq!(read_whole(idle_http2.send_request(sent).await.unwrap()).await.status, 200);

    let address = proxy.http;
    let in_flight = tokio::spawn(async move { get(address, "a.example", "/sleep/700").await });
    eventually("the slow request reached the backend", || backend.seen().iter().any(|seen| seen.uri == "/sleep/700"))
        .await;

    let started = Instant::now();
    proxy.shut_down();
    let reply = tokio::time::timeout(PATIENCE, in_flight).await.unwrap().unwrap();
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "slept 700\n"));
    proxy.stopped().await;
    assert!(started.elapsed() < Duration::from_secs(3), "the drain waited for nothing else: {:?}", started.elapsed());

    // The idle connection was closed: its client's connection task ended without an error.
    tokio::time::timeout(PATIENCE, idle_connection).await.unwrap().unwrap().unwrap();
    assert!(TcpStream::connect(address).await.is_err(), "the listener is closed");
}

#[tokio::test]
async fn the_drain_timeout_cuts_what_is_left() {
    let (backend, mut proxy) = sleepy_proxy(Duration::from_millis(300)).await;
    let address = proxy.http;
    let in_flight = tokio::spawn(async move {
        let mut connection = http1(TcpStream::connect(address).await.unwrap()).await;
        connection.send_request(request("a.example", "/sleep/30000").body(empty()).unwrap()).await
    });
    eventually("the slow request reached the backend", || !backend.seen().is_empty()).await;
    let started = Instant::now();
    proxy.stopped().await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let outcome = tokio::time::timeout(PATIENCE, in_flight).await.unwrap().unwrap();
    assert!(outcome.is_err(), "the connection was closed under the request: {outcome:?}");
}
