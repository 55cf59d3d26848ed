//! Bodies are relayed as they come, in both directions, never buffered whole.

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::support::*;

async fn streaming_proxy() -> (Backend, Proxy) {
    let backend = Backend::start("stream").await;
    let mut cluster = Cluster::default();
    cluster
        .service("stream", &[backend.address], false)
        .ingress("stream", json!({"rules": [rule("stream.example", &[("/", "stream")])]}));
    (backend, Proxy::start(cluster.table()).await)
}

fn pattern(len: usize) -> Bytes {
    (0..len).map(|at| (at % 251) as u8).collect::<Vec<u8>>().into()
}

#[tokio::test]
async fn a_large_body_goes_up_and_comes_back_whole_over_http1_and_http2() {
    let (_, proxy) = streaming_proxy().await;
    let body = pattern(8 * 1024 * 1024 + 17);
    let mut one = http1(TcpStream::connect(proxy.http).await.unwrap()).await;
    let sent = request("stream.example", "/echo").method("POST").body(full(body.clone())).unwrap();
    let reply = read_whole(one.send_request(sent).await.unwrap()).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body == body, "the echo differs ({} bytes back)", reply.body.len());

    let mut two = http2(TcpStream::connect(proxy.http).await.unwrap()).await;
    let sent =
        http::Request::builder().method("POST").uri("http://stream.example/echo").body(full(body.clone())).unwrap();
    let reply = read_whole(two.send_request(sent).await.unwrap()).await;
    assert!(reply.body == body, "the echo differs ({} bytes back)", reply.body.len());

    let reply = get(proxy.http, "stream.example", "/bytes/5000000").await;
    assert_eq!(reply.body.len(), 5_000_000);
}

#[tokio::test]
async fn a_response_is_relayed_before_it_ends() {
    let (backend, proxy) = streaming_proxy().await;
    let mut connection = http1(TcpStream::connect(proxy.http).await.unwrap()).await;
    let response = connection.send_request(request("stream.example", "/slow").body(empty()).unwrap()).await.unwrap();
    let mut body = response.into_body();
    // The backend sends its second chunk only once released: the first must come alone.
    let first = tokio::time::timeout(PATIENCE, body.frame()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first\n");
    backend.release.notify_one();
    let rest = tokio::time::timeout(PATIENCE, body.collect()).await.unwrap().unwrap().to_bytes();
    assert_eq!(rest, "second\n");
}

#[tokio::test]
async fn a_request_body_is_relayed_before_it_ends() {
    let (_, proxy) = streaming_proxy().await;
    let mut connection = http1(TcpStream::connect(proxy.http).await.unwrap()).await;
    let (chunks, receiver) = mpsc::channel(1);
    let sent = request("stream.example", "/echo").method("PUT").body(BodyExt::boxed(ChannelBody(receiver))).unwrap();
    chunks.send(Bytes::from_static(b"ping ")).await.unwrap();
    let response = tokio::time::timeout(PATIENCE, connection.send_request(sent)).await.unwrap().unwrap();
    let mut body = response.into_body();
    // The upload is not over, yet its first chunk made it to the backend and back.
    let echoed = tokio::time::timeout(PATIENCE, body.frame()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed.into_data().unwrap(), "ping ");
    chunks.send(Bytes::from_static(b"pong")).await.unwrap();
    drop(chunks);
    let rest = tokio::time::timeout(PATIENCE, body.collect()).await.unwrap().unwrap().to_bytes();
    assert_eq!(rest, "pong");
}
