//! `pods/portforward`, as `kubectl port-forward` uses it: the connection is upgraded to SPDY/3.1
//! (protocol `portforward.k8s.io`). For each connection kubectl accepts locally it opens two
//! streams with the same `requestID`: `error` and `data`, both naming the pod's `port`. The data
//! stream is joined to a TCP connection to that port on the pod's own loopback, made inside its
//! network namespace by the node (upstream: the kubelet); if that fails, the error stream says
//! why. kubectl 1.31+ asks for the same SPDY tunnelled in WebSocket binary messages (protocol
//! `SPDY/3.1+portforward.k8s.io`), and falls back to plain SPDY if that upgrade fails.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use frontdoor_spdy::{Read, Stream, StreamSender};
use http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::errors::{ApiError, ApiResult};
use crate::registry::ObjectRef;
use crate::ApiState;

const PROTOCOL: &str = "portforward.k8s.io";
const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// The WebSocket subprotocol of SPDY tunnelled in WebSocket.
const TUNNELLED: &str = "SPDY/3.1+portforward.k8s.io";

/// Where port-forward connections go: the node runtime, attached after it starts.
pub trait PortForwarder: Send + Sync {
    /// A TCP connection to `port` on the pod's loopback, inside its network namespace.
    fn connect(&self, pod: &Value, port: u16) -> futures::future::BoxFuture<'static, Result<tokio::net::TcpStream, String>>;
}

/// Answers a `pods/portforward` request: upgrades it and serves the streams, or says why not.
pub async fn serve(state: &ApiState, at: &ObjectRef<'_>, request: Request<Body>) -> Response {
    match upgrade(state, at, request) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn upgrade(state: &ApiState, at: &ObjectRef<'_>, request: Request<Body>) -> ApiResult<Response> {
    let pod = state.registry.get(at)?.value;
    if pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!("pod {} does not have a host assigned", at.name)));
    }
    let forwarder = state.port_forwarder.get().cloned().ok_or_else(|| ApiError::bad_request("port forwarding is not available: this server runs no node"))?;
    let headers = request.headers();
    if wants_upgrade_to(headers, "websocket") {
        return upgrade_to_websocket(request, pod, forwarder);
    }
    if !wants_upgrade_to(headers, "spdy/3.1") {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let offered: Vec<String> = list(headers, header::HeaderName::from_static(PROTOCOL_HEADER)).map(String::from).collect();
    if !offered.is_empty() && !offered.iter().any(|p| p == PROTOCOL) {
        return Err(ApiError::forbidden(format!("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [{PROTOCOL:?}]")));
    }
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => run(TokioIo::new(upgraded), pod, forwarder).await,
            Err(error) => tracing::debug!(%error, "port-forward upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    response_headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if !offered.is_empty() {
        response_headers.insert(PROTOCOL_HEADER, HeaderValue::from_static(PROTOCOL));
    }
    Ok(response)
}

/// Upgrades to WebSocket with the tunnelling subprotocol (or refuses, and kubectl falls back to
/// SPDY) and serves SPDY over its binary messages.
fn upgrade_to_websocket(request: Request<Body>, pod: Arc<Value>, forwarder: Arc<dyn PortForwarder>) -> ApiResult<Response> {
    let headers = request.headers();
    let tunnelled = list(headers, header::SEC_WEBSOCKET_PROTOCOL).any(|p| p == TUNNELLED);
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| tokio_tungstenite::tungstenite::handshake::derive_accept_key(k.as_bytes()));
    let (true, Some(accept)) = (tunnelled, key) else {
        return Err(ApiError::bad_request(format!("unable to upgrade: the WebSocket subprotocol must be {TUNNELLED}")));
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let socket = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), tokio_tungstenite::tungstenite::protocol::Role::Server, None).await;
                run(tunnel(socket), pod, forwarder).await;
            }
            Err(error) => tracing::debug!(%error, "port-forward upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    response_headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    response_headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(TUNNELLED));
    response_headers.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).map_err(ApiError::internal)?);
    Ok(response)
}

/// The byte stream carried in a WebSocket's binary messages, as one end of a pipe.
fn tunnel<IO>(socket: tokio_tungstenite::WebSocketStream<IO>) -> tokio::io::DuplexStream
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut from_pipe, mut into_pipe) = tokio::io::split(ours);
    let (mut sink, mut messages) = socket.split();
    tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            let bytes = match message {
                Message::Binary(bytes) => bytes,
                Message::Close(_) => break,
                _ => continue,
            };
            if into_pipe.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = into_pipe.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buffer = BytesMut::with_capacity(32 * 1024);
        loop {
            buffer.reserve(32 * 1024);
            match from_pipe.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if sink.send(Message::Binary(buffer.split().freeze())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.close().await;
    });
    theirs
}

/// The comma-separated values of header `name`, trimmed.
fn list(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers.get_all(name).into_iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim)
}

/// `Connection: Upgrade` and `Upgrade: <protocol>` (case-insensitive).
fn wants_upgrade_to(headers: &HeaderMap, protocol: &str) -> bool {
    list(headers, header::CONNECTION).any(|v| v.eq_ignore_ascii_case("upgrade")) && list(headers, header::UPGRADE).any(|v| v.eq_ignore_ascii_case(protocol))
}

/// Serves one upgraded connection: pairs each request's error and data streams and forwards.
async fn run<IO>(io: IO, pod: Arc<Value>, forwarder: Arc<dyn PortForwarder>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (streams_tx, mut streams) = mpsc::channel(16);
    let connection = tokio::spawn(frontdoor_spdy::serve(io, streams_tx));
    let mut pending: HashMap<String, Pair> = HashMap::new();
    while let Some(stream) = streams.recv().await {
        let id = request_id(&stream);
        let pair = pending.entry(id.clone()).or_default();
        match stream.header("streamtype") {
            Some("error") => pair.error = Some(stream),
            Some("data") => pair.data = Some(stream),
            other => {
                tracing::debug!(kind = ?other, "port-forward stream of unknown type");
                let _ = stream.sender().finish().await;
                continue;
            }
        }
        if pending.get(&id).is_some_and(|pair| pair.error.is_some() && pair.data.is_some()) {
            if let Some(Pair { error: Some(error), data: Some(data) }) = pending.remove(&id) {
                tokio::spawn(forward(pod.clone(), forwarder.clone(), data, error));
            }
        }
    }
    let _ = connection.await;
}

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

/// The stream's `requestID`; without one (older clients) upstream pairs a data stream with the
/// error stream opened just before it.
fn request_id(stream: &Stream) -> String {
    match stream.header("requestid") {
        Some(id) => id.to_string(),
        None if stream.header("streamtype") == Some("data") => stream.id.saturating_sub(2).to_string(),
        None => stream.id.to_string(),
    }
}

async fn forward(pod: Arc<Value>, forwarder: Arc<dyn PortForwarder>, mut data: Stream, error: Stream) {
    let (data_out, error_out) = (data.sender(), error.sender());
    let port_text = data.header("port").unwrap_or("").to_string();
    let connected = match port_text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("unable to parse '{port_text}' as a port")),
        Ok(port) => forwarder.connect(&pod, port).await.map_err(|reason| {
            let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
            format!("error forwarding port {port} to pod {name}, uid {uid}: {reason}")
        }),
    };
    match connected {
        Ok(connection) => pump(&mut data, &data_out, connection).await,
        Err(message) => {
            tracing::debug!(%message, "port-forward");
            let _ = error_out.send(Bytes::from(message)).await;
            let _ = data_out.finish().await;
        }
    }
    let _ = error_out.finish().await;
}

/// Copies both ways until the pod closes the connection, the client resets the stream, or the
/// connection to the client is gone. The client's FIN is passed on as a half close.
async fn pump(data: &mut Stream, out: &StreamSender, connection: tokio::net::TcpStream) {
    const BUFFER: usize = 32 * 1024;
    let (mut from_pod, mut to_pod) = connection.into_split();
    let upstream = async {
        loop {
            match data.read().await {
                Read::Data(bytes) => {
                    if to_pod.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Read::End => {
                    let _ = to_pod.shutdown().await;
                    std::future::pending::<()>().await;
                }
                Read::Reset => return,
            }
        }
    };
    let downstream = async {
        let mut buffer = BytesMut::with_capacity(BUFFER);
        loop {
            buffer.reserve(BUFFER);
            match from_pod.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if out.send(buffer.split().freeze()).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = out.finish().await;
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = out.closed() => {}
    }
}
