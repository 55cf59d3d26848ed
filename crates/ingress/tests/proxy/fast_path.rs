//! The HTTP/1.1 fast path against endpoints that answer with exact bytes: pipelining, pooled
//! endpoint sockets, every response framing relayed as it came, broken responses, and a
//! connection moving to the hyper path at its first request outside the plain case.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// An endpoint that reads each request head (and its `Content-Length` body), records it, and
/// writes the bytes `answer` gives for its path; after an answer whose flag is set, it closes.
/// It counts the connections it accepted and those the proxy closed.
#[derive(Clone)]
struct Scripted {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    closed_by_proxy: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start(answer: fn(&str) -> (&'static str, bool)) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scripted = Scripted {
            address: listener.local_addr().unwrap(),
            requests: Arc::default(),
            connections: Arc::default(),
            closed_by_proxy: Arc::default(),
        };
        let serving = scripted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                serving.connections.fetch_add(1, Ordering::SeqCst);
                let requests = serving.requests.clone();
                let closed_by_proxy = serving.closed_by_proxy.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some(end) = buf.windows(4).position(|window| window == b"\r\n\r\n") else {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => {
                                    closed_by_proxy.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                        let body_len = head
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string)
                            })
                            .map_or(0, |len| len.trim().parse::<usize>().unwrap());
                        while buf.len() < end + 4 + body_len {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let request: Vec<u8> = buf.drain(..end + 4 + body_len).collect();
                        requests.lock().unwrap().push(String::from_utf8_lossy(&request).into_owned());
                        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                        let (bytes, close) = answer(&path);
                        if stream.write_all(bytes.as_bytes()).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        scripted
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn answers(path: &str) -> (&'static str, bool) {
    match path {
        "/one" => ("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\none\n", false),
        "/two" => ("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ntwo\n", false),
        "/three" => ("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nthree\n", false),
        "/chunked" => (
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
             HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 1\r\n\r\n",
            false,
        ),
        "/until-close" => ("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the close\n", true),
        "/large" => (large(), false),
        "/bad-length" => ("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", false),
        "/upgrade" => ("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n", false),
        "/truncated" => ("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort", true),
        // Never answered.
        "/hang" => ("", false),
        _ => ("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", false),
    }
}

/// A body the proxy relays in several reads and writes.
const LARGE: usize = 200_000;

/// The large body: `LARGE` bytes, the last a newline.
fn large_body() -> String {
    format!("{}\n", "x".repeat(LARGE - 1))
}

fn large() -> &'static str {
    static ANSWER: OnceLock<String> = OnceLock::new();
    ANSWER.get_or_init(|| format!("HTTP/1.1 200 OK\r\ncontent-length: {LARGE}\r\n\r\n{}", large_body()))
}

/// The proxy with `host` ("" for any) routed to a Service whose one endpoint is `endpoint`.
async fn proxy_to(endpoint: SocketAddr, host: &str) -> Proxy {
    let mut cluster = Cluster::default();
    cluster.service("fast", &[endpoint], false).ingress("fast", json!({"rules": [rule(host, &[("/", "fast")])]}));
    Proxy::start(cluster.table()).await
}

async fn scripted_proxy() -> (Scripted, Proxy) {
    let endpoint = Scripted::start(answers).await;
    let proxy = proxy_to(endpoint.address, "").await;
    (endpoint, proxy)
}

/// Reads from `stream` until what came contains `needle` (panics after a while).
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let reading = async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await.unwrap() {
                0 => break,
                n => seen.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading).await.expect("the answer came");
    String::from_utf8_lossy(&seen).into_owned()
}

/// Whether the proxy closed `stream` (reads to the end, or times out).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await, Ok(Ok(_)))
}

/// A new connection that asked for `path` and read its answer until `until` came.
async fn ask(proxy: &Proxy, path: &str, until: &str) -> (TcpStream, String) {
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client.write_all(get(path).as_bytes()).await.unwrap();
    let answer = read_until(&mut client, until).await;
    (client, answer)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: fast.example\r\n\r\n")
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_over_one_endpoint_socket() {
    let (endpoint, proxy) = scripted_proxy().await;
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client.write_all(format!("{}{}{}", get("/one"), get("/two"), get("/three")).as_bytes()).await.unwrap();
    let answer = read_until(&mut client, "three\n").await;
    let bodies: Vec<usize> = ["one\n", "two\n", "three\n"].iter().map(|body| answer.find(body).unwrap()).collect();
    assert!(bodies.windows(2).all(|pair| pair[0] < pair[1]), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    // Ten more, one at a time: still the one pooled socket.
    for _ in 0..10 {
        client.write_all(get("/two").as_bytes()).await.unwrap();
        read_until(&mut client, "two\n").await;
    }
    assert_eq!(endpoint.connections.load(Ordering::SeqCst), 1);
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 13);
    assert!(
        requests[0].starts_with("GET /one HTTP/1.1\r\nHost: fast.example\r\nx-forwarded-for: 127.0.0.1\r\n"),
        "{}",
        requests[0]
    );
}

#[tokio::test]
async fn a_chunked_response_is_relayed_as_it_came_and_early_hints_are_dropped() {
    let (_endpoint, proxy) = scripted_proxy().await;
    let (mut client, answer) = ask(&proxy, "/chunked", "x-sum: 1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: "), "{answer}");
    assert!(answer.ends_with("\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 1\r\n\r\n"), "{answer}");
    assert!(!answer.contains("103"), "{answer}");
    // The connection goes on.
    client.write_all(get("/one").as_bytes()).await.unwrap();
    assert!(read_until(&mut client, "one\n").await.starts_with("HTTP/1.1 200 OK\r\n"));
}

#[tokio::test]
async fn a_body_that_runs_to_the_endpoint_s_close_closes_the_client_s_connection() {
    let (_endpoint, proxy) = scripted_proxy().await;
    let (mut client, answer) = ask(&proxy, "/until-close", "until the close\n").await;
    assert!(answer.contains("\r\nconnection: close\r\n\r\nuntil the close\n"), "{answer}");
    assert!(closed(&mut client).await);
}

#[tokio::test]
async fn broken_responses_are_502_and_a_truncated_body_closes_the_connection() {
    let (_endpoint, proxy) = scripted_proxy().await;
    for path in ["/bad-length", "/upgrade"] {
        let (_client, answer) = ask(
            &proxy,
            path,
            "502 Bad Gateway
",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{path}: {answer}");
    }
    let (mut client, answer) = ask(&proxy, "/truncated", "short").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n"), "{answer}");
    assert!(closed(&mut client).await, "a response cut short is not followed by another");
}

#[tokio::test]
async fn a_connection_moves_to_hyper_at_its_first_request_outside_the_plain_case() {
    let backend = Backend::start("mixed").await;
    let proxy = proxy_to(backend.address, "").await;
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    // Plain, then a chunked upload (hyper's), then plain again on the same connection.
    client.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    read_until(&mut client, "\"/first\"").await;
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut client, "hello").await;
    client.write_all(b"GET /third HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    read_until(&mut client, "\"/third\"").await;
    let uris: Vec<String> = backend.seen().iter().map(|seen| seen.uri.clone()).collect();
    assert_eq!(uris, ["/first", "/echo", "/third"]);
}

#[tokio::test]
async fn a_body_sent_after_its_head_goes_up_whole() {
    let backend = Backend::start("late").await;
    let proxy = proxy_to(backend.address, "").await;
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client.write_all(b"PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello").await.unwrap();
    client.flush().await.unwrap();
    tokio::task::yield_now().await;
    client.write_all(b" world").await.unwrap();
    let answer = read_until(&mut client, "hello world").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(backend.seen().len(), 1);
}

#[tokio::test]
async fn the_proxy_s_own_answer_to_head_has_no_body_and_the_connection_goes_on() {
    let endpoint = Scripted::start(answers).await;
    let proxy = proxy_to(endpoint.address, "fast.example").await;
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client.write_all(b"HEAD /x HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n").await.unwrap();
    client.write_all(get("/one").as_bytes()).await.unwrap();
    let answer = read_until(&mut client, "one\n").await;
    let (not_found, found) = answer.split_once("\r\n\r\n").unwrap();
    assert!(not_found.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    assert!(not_found.contains("\r\ncontent-length: 22\r\n"), "the length GET's body would have: {answer}");
    assert!(found.starts_with("HTTP/1.1 200 OK\r\n"), "no body between the two: {answer}");
}

#[tokio::test]
async fn over_tls_a_body_that_runs_to_the_close_ends_with_close_notify() {
    let (_endpoint, proxy) = scripted_proxy().await;
    let tcp = TcpStream::connect(proxy.https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("fast.example").unwrap();
    let mut tls = trusting_client().connect(name, tcp).await.unwrap();
    tls.write_all(get("/until-close").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // rustls reports an end without close_notify as an error (UnexpectedEof).
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.ends_with("\r\nconnection: close\r\n\r\nuntil the close\n"), "{answer}");
}

#[tokio::test]
async fn a_client_that_leaves_while_its_request_is_at_an_endpoint_is_let_go_there_too() {
    let (endpoint, proxy) = scripted_proxy().await;
    let mut client = TcpStream::connect(proxy.http).await.unwrap();
    client.write_all(get("/hang").as_bytes()).await.unwrap();
    eventually("the endpoint got the request", || endpoint.requests().len() == 1).await;
    drop(client);
    eventually("the proxy closed the endpoint's connection", || endpoint.closed_by_proxy.load(Ordering::SeqCst) == 1)
        .await;
    let metrics = proxy.registry.encode();
    let counted = metrics.lines().any(|line| {
        line.starts_with("nginx_ingress_controller_requests{status=\"499\",method=\"GET\"") && line.ends_with(" 1")
    });
    assert!(counted, "{metrics}");
}

#[tokio::test]
async fn a_client_that_asks_to_close_gets_its_answer_whole_then_the_end() {
    let (_endpoint, proxy) = scripted_proxy().await;
    let close = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: fast.example\r\nConnection: close\r\n\r\n");
    // Its first request; one whose body takes many writes; the second on a kept connection.
    for (before, path, body) in [("", "/one", "one\n".to_string()), ("", "/large", large_body())].into_iter().chain([(
        "/two",
        "/three",
        "three\n".to_string(),
    )]) {
        let mut client = TcpStream::connect(proxy.http).await.unwrap();
        if !before.is_empty() {
            client.write_all(get(before).as_bytes()).await.unwrap();
            read_until(&mut client, "two\n").await;
        }
        client.write_all(close(path).as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut answer))
            .await
            .expect("the proxy closed the connection")
            .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, rest) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\nconnection: close"), "{head}");
        assert!(rest == body, "{path}: {} bytes of body, {} expected", rest.len(), body.len());
    }
}
