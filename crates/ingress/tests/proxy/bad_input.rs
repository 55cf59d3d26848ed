//! Hostile and broken clients: malformed requests, huge headers, request smuggling, slowloris,
//! connection floods. What hyper refuses by itself and what the proxy adds are tested alike.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

async fn guarded_proxy(config: frontdoor_ingress::ProxyConfig) -> (Backend, Proxy) {
    let backend = Backend::start("guarded").await;
    let mut cluster = Cluster::default();
    cluster
        .service("guarded", &[backend.address], false)
        .ingress("guarded", json!({"rules": [rule("", &[("/", "guarded")])]}));
    let proxy =
        Proxy::start_with(config, cluster.table(), frontdoor_ingress::Certificates::with_fake_default().unwrap()).await;
    (backend, proxy)
}

fn status_of(answer: &str) -> &str {
    answer.get(9..12).unwrap_or(answer)
}

#[tokio::test]
async fn malformed_and_smuggling_requests_are_refused_and_their_connection_closed() {
    let (backend, proxy) = guarded_proxy(config()).await;
    // (request, status, who refuses it)
    let cases: &[(&str, &str, &str)] = &[
        ("GET / HTTP/1.1\r\n\r\n", "400", "proxy: HTTP/1.1 without Host"),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400", "proxy: two Hosts"),
        ("GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", "400", "hyper: control byte in the target"),
        ("GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", "400", "hyper: space in a header name"),
        ("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n", "400", "hyper: obsolete line folding"),
        ("GET / HTTP/9.9\r\nHost: a\r\n\r\n", "400", "hyper: unknown version"),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            "400",
            "hyper: conflicting Content-Lengths",
        ),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello", "400", "hyper: a Content-Length list"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", "400", "hyper: a signed Content-Length"),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
            "400",
            "hyper: chunked not last",
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
            "400",
            "hyper: space before the colon",
        ),
        (
            "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "400",
            "hyper: Transfer-Encoding on HTTP/1.0",
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "400",
            "proxy: two Transfer-Encoding lines",
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            "400",
            "proxy: a coding besides chunked",
        ),
    ];
    for (bytes, status, what) in cases {
        // A second request follows on the same connection: it must never be read.
        let pipelined = format!("{bytes}GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
        let answer = raw(proxy.http, pipelined.as_bytes()).await;
        assert_eq!(status_of(&answer), *status, "{what}: {answer:?}");
        assert_eq!(answer.matches("HTTP/1.").count(), 1, "{what}: the connection closes: {answer:?}");
    }
    let answer = raw(proxy.http, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&answer), "405", "{answer}");
    assert!(backend.seen().is_empty(), "{:?}", backend.seen());
}

#[tokio::test]
async fn content_length_with_transfer_encoding_reads_chunked_and_closes() {
    // hyper (RFC 9112 §6.3): chunked wins, the length is dropped, and the connection closes
    // after the response, so what follows the chunked body is never taken for a request.
    let (backend, proxy) = guarded_proxy(config()).await;
    for headers in
        ["Content-Length: 44\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 44"]
    {
        let smuggling = format!(
            "POST /first HTTP/1.1\r\nHost: a\r\n{headers}\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        );
        let answer = raw(proxy.http, smuggling.as_bytes()).await;
        assert_eq!(status_of(&answer), "200", "{answer}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
        let last = backend.last();
        assert_eq!(last.uri, "/first");
        assert!(last.headers.get("content-length").is_none(), "{headers:?}: {:?}", last.headers);
    }
    let seen: Vec<String> = backend.seen().iter().map(|seen| seen.uri.clone()).collect();
    assert_eq!(seen, ["/first", "/first"]);
}

#[tokio::test]
async fn headers_over_the_limit_are_431() {
    let (backend, proxy) = guarded_proxy(config()).await;
    let big = "x".repeat(40 * 1024);
    let answer = raw(proxy.http, format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes()).await;
    assert_eq!(status_of(&answer), "431", "{answer}");
    let fits = "x".repeat(16 * 1024);
    let answer =
        raw(proxy.http, format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: {fits}\r\n\r\n").as_bytes())
            .await;
    assert_eq!(status_of(&answer), "200", "{answer}");
    assert_eq!(backend.seen().len(), 1);
}

#[tokio::test]
async fn slow_clients_are_cut_at_the_header_read_timeout() {
    let timeout = Duration::from_millis(300);
    let idle_timeout = Duration::from_millis(600);
    let config = frontdoor_ingress::ProxyConfig { header_read_timeout: timeout, idle_timeout, ..config() };
    let (_, proxy) = guarded_proxy(config).await;
    for first_bytes in [&b""[..], b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "] {
        let started = Instant::now();
        let mut stream = TcpStream::connect(proxy.http).await.unwrap();
        stream.write_all(first_bytes).await.unwrap();
        let mut answer = Vec::new();
        // The rest of the head never comes; the proxy closes (hyper answers nothing or 408).
        // A client that sent nothing is accepted only after the listener's deferral (1 s), and
        // its timer runs from then.
        tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await.unwrap().unwrap();
        let elapsed = started.elapsed();
        let deferred = if first_bytes.is_empty() { Duration::from_secs(1) } else { Duration::ZERO };
        assert!(elapsed >= timeout + deferred && elapsed < deferred + timeout * 10, "{elapsed:?} for {first_bytes:?}");
    }
    // Between requests on a kept-alive connection the same timer runs.
    let mut stream = TcpStream::connect(proxy.http).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert_eq!(status_of(&String::from_utf8_lossy(&answer)), "200");

    // HTTP/2: a connection that asks nothing is closed at the header read timeout, one whose
    // streams are all done at the idle timeout.
    for requests in [0, 1] {
        let stream = TcpStream::connect(proxy.http).await.unwrap();
        let started = Instant::now();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        let connection = tokio::spawn(connection);
        for _ in 0..requests {
            let sent = http::Request::builder().uri("http://a.example/").body(empty()).unwrap();
            assert_eq!(read_whole(sender.send_request(sent).await.unwrap()).await.status, 200);
        }
        tokio::time::timeout(PATIENCE, connection).await.unwrap().unwrap().unwrap();
        let (elapsed, expected) = (started.elapsed(), if requests == 0 { timeout } else { idle_timeout });
        assert!(elapsed >= expected && elapsed < expected * 5, "{elapsed:?} after {requests} requests");
    }
}

#[tokio::test]
async fn a_flood_of_idle_connections_does_not_stop_others_being_served() {
    let (_, proxy) = guarded_proxy(config()).await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(proxy.http).await.unwrap());
    }
    // Half of them start a request and stop.
    for stream in idle.iter_mut().step_by(2) {
        stream.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
    }
    let started = Instant::now();
    let reply = get(proxy.http, "any.example", "/").await;
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}
