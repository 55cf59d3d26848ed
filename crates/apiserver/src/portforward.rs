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
use axum::response::Response;
use bytes::Bytes;
use frontdoor_spdy::{Read, Stream, StreamSender};
use http::Request;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::errors::{ApiError, ApiResult};
use crate::registry::ObjectRef;
use crate::upgrade::{self, Asked};
use crate::{ApiState, PodAccess};

const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of SPDY tunnelled in WebSocket.
const TUNNELLED: &str = "SPDY/3.1+portforward.k8s.io";

/// Answers a `pods/portforward` request: upgrades it and serves the streams, or says why not.
pub fn serve(state: &ApiState, at: &ObjectRef<'_>, request: Request<Body>) -> ApiResult<Response> {
    let pod = upgrade::bound_pod(state, at)?;
    let access = state
        .pod_access
        .get()
        .cloned()
        .ok_or_else(|| ApiError::bad_request("port forwarding is not available: this server runs no node"))?;
    let asked = upgrade::asked(request.headers());
    let protocol = match &asked {
        Asked::WebSocket { protocols, .. } if protocols.iter().any(|p| p == TUNNELLED) => TUNNELLED,
        // kubectl falls back to SPDY when this upgrade fails.
        Asked::WebSocket { .. } => return Err(ApiError::bad_request(format!("unable to upgrade: the WebSocket subprotocol must be {TUNNELLED}"))),
        Asked::Spdy(offered) if offered.is_empty() || offered.iter().any(|p| p == PROTOCOL) => PROTOCOL,
        Asked::Spdy(offered) => {
            return Err(ApiError::forbidden(format!("unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts [{PROTOCOL:?}]")))
        }
        Asked::Nothing => return Err(ApiError::bad_request("Upgrade request required")),
    };
    let response = upgrade::switching(&asked, protocol);
    tokio::spawn(async move {
        let Some(io) = upgrade::on_upgrade(request).await else { return };
        match asked {
            Asked::WebSocket { .. } => run(tunnel(upgrade::websocket(io).await), pod, access).await,
            _ => run(io, pod, access).await,
        }
    });
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
    let (from_pipe, mut into_pipe) = tokio::io::split(ours);
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
        let mut chunks = std::pin::pin!(upgrade::chunks(from_pipe));
        while let Some(bytes) = chunks.next().await {
            if sink.send(Message::Binary(bytes)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    theirs
}

/// Serves one upgraded connection: pairs each request's error and data streams and forwards.
async fn run<IO>(io: IO, pod: Arc<Value>, access: Arc<dyn PodAccess>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (streams_tx, mut streams) = mpsc::channel(16);
    let connection = tokio::spawn(frontdoor_spdy::serve(io, streams_tx));
    let mut pending: HashMap<String, Pair> = HashMap::new();
    while let Some(stream) = streams.recv().await {
        let id = request_id(&stream);
        match stream.header("streamtype") {
            Some("error") => pending.entry(id.clone()).or_default().error = Some(stream),
            Some("data") => pending.entry(id.clone()).or_default().data = Some(stream),
            other => {
                tracing::debug!(kind = ?other, "port-forward stream of unknown type");
                let _ = stream.sender().finish().await;
                continue;
            }
        }
        if pending.get(&id).is_some_and(|pair| pair.error.is_some() && pair.data.is_some()) {
            if let Some(Pair { error: Some(error), data: Some(data) }) = pending.remove(&id) {
                tokio::spawn(forward(pod.clone(), access.clone(), data, error));
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

async fn forward(pod: Arc<Value>, access: Arc<dyn PodAccess>, mut data: Stream, error: Stream) {
    let (data_out, error_out) = (data.sender(), error.sender());
    let port_text = data.header("port").unwrap_or("").to_string();
    let connected = match port_text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("unable to parse '{port_text}' as a port")),
        Ok(port) => access.connect(&pod, port).await.map_err(|reason| {
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
        let mut chunks = std::pin::pin!(upgrade::chunks(&mut from_pod));
        while let Some(bytes) = futures::StreamExt::next(&mut chunks).await {
            if out.send(bytes).await.is_err() {
                return;
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
