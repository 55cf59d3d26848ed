//! What backends are told about the client, what the proxy strips both ways, HTTP/2 on both
//! sides, and upgrades. The access log has its own test binary (`tests/access_log.rs`).

use http::Version;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test]
async fn backends_learn_the_client_and_keep_the_host_it_sent() {
    let (_, proxy) = one_backend("app", "app.example", false).await;
    let mut connection = http1(TcpStream::connect(proxy.http).await.unwrap()).await;
    let sent = request("App.Example:80", "/whoami")
        .header("x-forwarded-for", "203.0.113.9")
        .header("forwarded", "for=203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "203.0.113.9")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy", "http://attacker.example")
        .header("proxy-authorization", "Basic eA==")
        .header("x-custom", "kept")
        .body(empty())
        .unwrap();
    let reply = read_whole(connection.send_request(sent).await.unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let port = proxy.http.port().to_string();
    let expected = [
        ("host", Some("App.Example:80")),
        ("x-forwarded-for", Some("203.0.113.9, 127.0.0.1")),
        ("forwarded", Some("for=203.0.113.9, for=127.0.0.1;host=\"App.Example:80\";proto=http")),
        ("x-forwarded-proto", Some("http")),
        ("x-forwarded-host", Some("App.Example:80")),
        ("x-forwarded-port", Some(port.as_str())),
        ("x-real-ip", Some("127.0.0.1")),
        ("x-custom", Some("kept")),
        ("x-hop", None),
        ("keep-alive", None),
        ("proxy", None),
        ("proxy-authorization", None),
        ("connection", None),
    ];
    for (name, value) in expected {
        assert_eq!(reply.seen_header(name).as_deref(), value, "{name}");
    }
}

#[tokio::test]
async fn hop_by_hop_response_headers_stay_between_backend_and_proxy() {
    let (_, proxy) = one_backend("hop", "hop.example", false).await;
    let reply = get(proxy.http, "hop.example", "/hop").await;
    assert_eq!(reply.text(), "hop\n");
    assert_eq!(reply.headers["x-kept"], "yes");
    assert!(reply.headers.get("x-backend-private").is_none());
    assert!(reply.headers.get("keep-alive").is_none());
}

#[tokio::test]
async fn http2_with_prior_knowledge_on_the_plain_port() {
    let (backend, proxy) = one_backend("h2", "h2.example", false).await;
    let mut connection = http2(TcpStream::connect(proxy.http).await.unwrap()).await;
    for path in ["/one", "/two?q=1"] {
        let sent = http::Request::builder().uri(format!("http://h2.example{path}")).body(empty()).unwrap();
        let reply = read_whole(connection.send_request(sent).await.unwrap()).await;
        assert_eq!((reply.status.as_u16(), reply.version), (200, Version::HTTP_2));
        assert_eq!(reply.backend(), "h2");
        // The backend speaks HTTP/1.1: it gets an origin-form target and the authority as Host.
        assert_eq!(reply.json()["uri"], path);
        assert_eq!(reply.seen_header("host").as_deref(), Some("h2.example"));
        assert_eq!(reply.seen_header("x-forwarded-host").as_deref(), Some("h2.example"));
    }
    assert!(backend.seen().iter().all(|seen| seen.version == Version::HTTP_11));
}

#[tokio::test]
async fn h2c_backends_are_spoken_to_in_http2() {
    let (backend, proxy) = one_backend("grpc", "grpc.example", true).await;
    for _ in 0..3 {
        let reply = get(proxy.http, "grpc.example", "/svc.Method").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["version"], "HTTP/2.0");
    }
    let seen = backend.last();
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.uri, "http://grpc.example/svc.Method");
    assert_eq!(backend.connections(), 1, "one multiplexed connection");
}

#[tokio::test]
async fn an_upgrade_is_spliced_both_ways() {
    let (_, proxy) = one_backend("ws", "ws.example", false).await;
    let mut stream = TcpStream::connect(proxy.http).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut byte)).await.unwrap().unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket") && head.contains("connection: upgrade"), "{head}");
    for message in ["hello", "again, with more bytes"] {
        stream.write_all(message.as_bytes()).await.unwrap();
        let mut echo = vec![0u8; message.len()];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut echo)).await.unwrap().unwrap();
        assert_eq!(echo, message.as_bytes());
    }
}
