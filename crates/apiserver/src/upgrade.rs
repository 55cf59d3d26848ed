//! Upgraded connections, as kubectl's streaming commands ask for them: SPDY/3.1 with a stream
//! protocol named in `X-Stream-Protocol-Version`, or WebSocket with a subprotocol. Each
//! handler (`portforward`, `exec`) picks its protocol, answers 101 with [`switching`] and
//! serves the connection it gets from [`on_upgrade`].

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::errors::{ApiError, ApiResult};
use crate::registry::ObjectRef;
use crate::ApiState;

pub const STREAM_PROTOCOL: HeaderName = HeaderName::from_static("x-stream-protocol-version");

/// The pod at `at`, which must be bound to a node (whose runtime answers).
pub fn bound_pod(state: &ApiState, at: &ObjectRef<'_>) -> ApiResult<Arc<Value>> {
    let pod = state.registry.get(at)?.value;
    if pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(format!("pod {} does not have a host assigned", at.name)));
    }
    Ok(pod)
}

/// How a request asks to be upgraded.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    /// SPDY/3.1, offering these stream protocols (maybe none).
    Spdy(Vec<String>),
    /// WebSocket, offering these subprotocols; `accept` answers its key.
    WebSocket {
        protocols: Vec<String>,
        accept: String,
    },
    Nothing,
}

/// The comma-separated values of header `name`, trimmed.
pub fn list(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub fn asked(headers: &HeaderMap) -> Asked {
    let upgrade = |protocol: &str| {
        list(headers, header::CONNECTION).any(|v| v.eq_ignore_ascii_case("upgrade"))
            && list(headers, header::UPGRADE).any(|v| v.eq_ignore_ascii_case(protocol))
    };
    if upgrade("websocket") {
        if let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) {
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            return Asked::WebSocket {
                protocols: list(headers, header::SEC_WEBSOCKET_PROTOCOL).map(String::from).collect(),
                accept,
            };
        }
    }
    if upgrade("spdy/3.1") {
        return Asked::Spdy(list(headers, STREAM_PROTOCOL).map(String::from).collect());
    }
    Asked::Nothing
}

/// The 101 answer: SPDY with `protocol` as the stream protocol (if the client named any), or
/// WebSocket with `protocol` as the subprotocol.
pub fn switching(asked: &Asked, protocol: &'static str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    match asked {
        Asked::WebSocket { accept, .. } => {
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
            if let Ok(accept) = HeaderValue::from_str(accept) {
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
            }
        }
        Asked::Spdy(offered) => {
            headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
            if !offered.is_empty() {
                headers.insert(STREAM_PROTOCOL, HeaderValue::from_static(protocol));
            }
        }
        Asked::Nothing => {}
    }
    response
}

/// The upgraded connection, once the 101 has gone out (`None` if the client went away).
pub async fn on_upgrade(request: Request<Body>) -> Option<TokioIo<hyper::upgrade::Upgraded>> {
    match hyper::upgrade::on(request).await {
        Ok(upgraded) => Some(TokioIo::new(upgraded)),
        Err(error) => {
            tracing::debug!(%error, "upgrade failed");
            None
        }
    }
}

/// `reader`'s bytes as they come, in pieces of up to 32 KiB, until its end (or an error).
pub fn chunks<R: tokio::io::AsyncRead>(reader: R) -> impl futures::Stream<Item = bytes::Bytes> {
    use futures::{future, StreamExt};
    tokio_util::io::ReaderStream::with_capacity(reader, 32 * 1024)
        .take_while(|piece| future::ready(piece.is_ok()))
        .filter_map(|piece| future::ready(piece.ok()))
}

/// The WebSocket spoken over an upgraded connection, as its server.
pub async fn websocket(
    io: TokioIo<hyper::upgrade::Upgraded>,
) -> tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
    tokio_tungstenite::WebSocketStream::from_raw_socket(
        io,
        tokio_tungstenite::tungstenite::protocol::Role::Server,
        None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn what_kubectl_asks_for_is_read() {
        let spdy = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
        ]);
        assert_eq!(asked(&spdy), Asked::Spdy(vec!["v4.channel.k8s.io".into(), "v3.channel.k8s.io".into()]));
        let websocket = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        // RFC 6455's own example key and answer.
        assert_eq!(
            asked(&websocket),
            Asked::WebSocket {
                protocols: vec!["v5.channel.k8s.io".into()],
                accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
            }
        );
        assert_eq!(asked(&headers(&[("upgrade", "SPDY/3.1")])), Asked::Nothing, "no Connection: Upgrade");
    }
}
