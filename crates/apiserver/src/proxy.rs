//! `pods/proxy`, `services/proxy` and `nodes/proxy`, as kube-apiserver serves them: HTTP relayed
//! to a pod, to a ready endpoint of a Service, or to a node's kubelet.
//!
//! URLs: `/api/v1/namespaces/{ns}/pods/{[scheme:]name[:port]}/proxy[/{path}]`, the same for
//! `services` (port by number or by name) and `/api/v1/nodes/{[scheme:]name[:port]}/proxy[/{path}]`.
//! Every method upstream relays (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS) goes with its
//! headers (less the client's credentials and hop-by-hop headers), query and body, streamed; the
//! backend's status, headers and body come back streamed. Where to go is decided as upstream's
//! `ResourceLocation`s do, with their errors:
//! * a pod: its IP (which must be a unicast address: `address not allowed`), at the port named,
//!   or the first container port, or the scheme's;
//! * a Service: a port number becomes the Service port's name, and a ready address of the
//!   Service's Endpoints with that port name, backed by a pod of the namespace with that IP, is
//!   picked at random (`no endpoints available for service "x"`, 503, when there is none);
//! * a node: its kubelet (no port, or the kubelet's port) — frontdoor's kubelet answers in
//!   process through the [`NodeProxy`] attached at wiring — or another port at its address.
//!
//! A backend that cannot be reached is a 503 `error trying to reach service: …`. A path-less GET
//! or HEAD (`…/proxy`) is redirected to `…/proxy/` (301), as upstream does. `https` backends are
//! not verified (upstream's proxy transport skips verification too). Connection upgrades
//! (WebSocket) are relayed both ways. A `Location` pointing back at the backend, and the links
//! of HTML pages, are rewritten to go through the proxy again ([`crate::proxy_links`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde_json::Value;

use frontdoor_resources::{self as resources, ResourceType};

use crate::errors::{ApiError, ApiResult};
use crate::proxy_links::{self, Encoding, Links};
use crate::registry::ObjectRef;
use crate::{ApiState, NodeProxy};

/// How long connecting to a backend may take (upstream's proxy dialer: 30 s).
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// The kubelet's port when the Node does not say.
const DEFAULT_KUBELET_PORT: u16 = 10250;

/// What a proxy URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pod,
    Service,
    Node,
}

/// A proxy URL, split.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ProxyPath<'a> {
    pub kind: Kind,
    pub namespace: Option<&'a str>,
    /// `[scheme:]name[:port]`, as sent (percent-encoded).
    pub id: &'a str,
    /// What follows `proxy` in the request path: empty, or starting with `/`.
    pub rest: &'a str,
}

/// The proxy URL `path` is, if it is one.
pub(crate) fn parse(path: &str) -> Option<ProxyPath<'_>> {
    let tail = path.strip_prefix("/api/v1/")?;
    let (kind, namespace, tail) = match tail.strip_prefix("namespaces/") {
        Some(tail) => {
            let (namespace, tail) = tail.split_once('/')?;
            let (plural, tail) = tail.split_once('/')?;
            let kind = match plural {
                "pods" => Kind::Pod,
                "services" => Kind::Service,
                _ => return None,
            };
            (kind, Some(namespace), tail)
        }
        None => (Kind::Node, None, tail.strip_prefix("nodes/")?),
    };
    let (id, tail) = tail.split_once('/')?;
    let rest = tail.strip_prefix("proxy")?;
    let well_formed = (rest.is_empty() || rest.starts_with('/')) && !id.is_empty() && namespace != Some("");
    well_formed.then_some(ProxyPath { kind, namespace, id, rest })
}

/// `name`, `name:port` or `scheme:name:port` (scheme `http` or `https`), as upstream's
/// `SplitSchemeNamePort`: (scheme, name, port), or `None` if malformed.
pub(crate) fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// The path to ask the backend for: `rest` with `.` and `..` resolved (never above the root) and
/// empty segments dropped, keeping a trailing slash; empty when `rest` is.
pub(crate) fn backend_path(rest: &str) -> String {
    if rest.is_empty() {
        return String::new();
    }
    proxy_links::clean_path(rest)
}

/// Percent-decodes a path segment (`+` stays itself).
pub(crate) fn decode_path(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where a proxied request goes.
enum Backend {
    /// An address reached over TCP.
    Remote { tls: bool, address: SocketAddr },
    /// This process's own kubelet.
    Kubelet(Arc<dyn NodeProxy>),
}

fn resource(plural: &str) -> &'static ResourceType {
    resources::lookup("", "v1", plural).expect("core resources are served")
}

/// The methods upstream relays.
const METHODS: [Method; 7] =
    [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS];

/// Answers a proxy request.
pub(crate) async fn serve(state: &ApiState, target: ProxyPath<'_>, request: Request<Body>) -> Response {
    match relay(state, &target, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn relay(state: &ApiState, target: &ProxyPath<'_>, mut request: Request<Body>) -> ApiResult<Response> {
    if !METHODS.contains(request.method()) {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ));
    }
    let id = decode_path(target.id);
    let namespace = target.namespace.unwrap_or("");
    let backend = match target.kind {
        Kind::Pod => pod_location(state, namespace, &id)?,
        Kind::Service => service_location(state, namespace, &id)?,
        Kind::Node => node_location(state, &id)?,
    };
    let path = backend_path(target.rest);
    let query = request.uri().query().map(str::to_string);
    if path.is_empty() && matches!(*request.method(), Method::GET | Method::HEAD) {
        let location = match &query {
            Some(query) => format!("{}/?{query}", request.uri().path()),
            None => format!("{}/", request.uri().path()),
        };
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return Ok(response);
    }
    let path = if path.is_empty() { "/".to_string() } else { path };
    let full_path = request.uri().path();
    let prefix = full_path.strip_suffix(target.rest).unwrap_or(full_path).to_string();
    let request_host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let path_and_query = match &query {
        Some(query) => format!("{path}?{query}"),
        None => path.clone(),
    };
    let upgrade = wants_upgrade(request.headers());
    let inbound_upgrade = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();

    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    outbound_headers(&mut headers, upgrade);
    // Upstream's proxy transport says where the request was addressed; it sets
    // X-Forwarded-Host and -Proto only from a request URL's scheme and host, which a server
    // request's URL does not have, so a backend builds no absolute link to the API server.
    if let Ok(value) = HeaderValue::from_str(&format!("{prefix}{path}")) {
        headers.insert(HeaderName::from_static("x-forwarded-uri"), value);
    }
    let mut outbound = Request::new(body);
    *outbound.method_mut() = parts.method;
    *outbound.uri_mut() = path_and_query.parse().map_err(|_| ApiError::bad_request("invalid URL path"))?;
    *outbound.headers_mut() = headers;

    let mut response = match backend {
        Backend::Kubelet(kubelet) => {
            if !outbound.headers().contains_key(header::HOST) {
                outbound.headers_mut().insert(header::HOST, HeaderValue::from_static("localhost"));
            }
            kubelet.serve(outbound).await
        }
        Backend::Remote { tls, address } => {
            if !outbound.headers().contains_key(header::HOST) {
                if let Ok(value) = HeaderValue::from_str(&address.to_string()) {
                    outbound.headers_mut().insert(header::HOST, value);
                }
            }
            let mut answer = send(tls, address, outbound).await.map_err(|reason| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    format!("error trying to reach service: {reason}"),
                )
            })?;
            if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
                let outbound_upgrade = hyper::upgrade::on(&mut answer);
                if let Some(inbound) = inbound_upgrade {
                    tokio::spawn(join_upgraded(inbound, outbound_upgrade));
                }
            }
            let backend = address.to_string();
            let links = Links { backend: &backend, request_host: &request_host, prefix: &prefix };
            relay_links(answer, links).await
        }
    };
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    inbound_response_headers(response.headers_mut(), switching);
    Ok(response)
}

/// Copies both ways between the client's upgraded connection and the backend's.
async fn join_upgraded(inbound: hyper::upgrade::OnUpgrade, outbound: hyper::upgrade::OnUpgrade) {
    let (Ok(inbound), Ok(outbound)) = tokio::join!(inbound, outbound) else { return };
    let (mut inbound, mut outbound) = (TokioIo::new(inbound), TokioIo::new(outbound));
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    crate::upgrade::list(headers, header::CONNECTION).any(|v| v.eq_ignore_ascii_case("upgrade"))
        && headers.contains_key(header::UPGRADE)
}

/// Headers that describe one hop, never relayed (RFC 9110 §7.6.1, as Go's reverse proxy).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<String> =
        crate::upgrade::list(headers, header::CONNECTION).map(|v| v.to_ascii_lowercase()).collect();
    for name in named.iter().map(String::as_str).chain(HOP_BY_HOP) {
        if keep_upgrade && matches!(name, "connection" | "upgrade") {
            continue;
        }
        headers.remove(name);
    }
}

/// The client's headers as the backend gets them: no hop-by-hop headers (but an upgrade's
/// `Connection` and `Upgrade`), and not the client's credentials (upstream's authentication
/// removes them once it has checked them).
fn outbound_headers(headers: &mut HeaderMap, upgrade: bool) {
    remove_hop_by_hop(headers, upgrade);
    headers.remove(header::AUTHORIZATION);
    let impersonation: Vec<HeaderName> =
        headers.keys().filter(|name| name.as_str().starts_with("impersonate-")).cloned().collect();
    for name in impersonation {
        headers.remove(name);
    }
}

/// The backend's headers as the client gets them: no hop-by-hop headers (but a 101's), and no
/// CORS headers (upstream strips them: the API server's own CORS policy applies).
fn inbound_response_headers(headers: &mut HeaderMap, upgrade: bool) {
    remove_hop_by_hop(headers, upgrade);
    for name in [
        "access-control-allow-credentials",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-allow-origin",
    ] {
        headers.remove(name);
    }
}

/// The largest page whose links are rewritten (upstream has no limit; a larger one is relayed
/// as it comes).
const PAGE_LIMIT: usize = 16 << 20;

/// The backend's response with its links made to go through the proxy again
/// ([`crate::proxy_links`]): a `Location` (and then nothing else, as upstream), or the links of
/// an HTML page read whole (one that cannot be read, or is over [`PAGE_LIMIT`], is relayed as it
/// came).
async fn relay_links(answer: http::Response<hyper::body::Incoming>, links: Links<'_>) -> Response {
    let (mut parts, body) = answer.into_parts();
    if let Some(location) = parts.headers.get(header::LOCATION) {
        let rewritten = location.to_str().ok().and_then(|l| links.rewrite(l));
        if let Some(location) = rewritten.and_then(|l| HeaderValue::from_str(&l).ok()) {
            parts.headers.insert(header::LOCATION, location);
        }
        return Response::from_parts(parts, Body::new(body));
    }
    let text = |name| parts.headers.get(name).and_then(|value: &HeaderValue| value.to_str().ok());
    let encoding = Encoding::of(text(header::CONTENT_ENCODING));
    let (Some(encoding), true) = (encoding, proxy_links::is_html(text(header::CONTENT_TYPE))) else {
        return Response::from_parts(parts, Body::new(body));
    };
    let (read, rest) = read_within(body, PAGE_LIMIT).await;
    let Some(rest) = rest else {
        match links.rewrite_page(&read, encoding) {
            Ok(page) => {
                parts.headers.remove(header::CONTENT_LENGTH);
                return Response::from_parts(parts, Body::from(page));
            }
            Err(error) => {
                tracing::debug!(%error, "relaying an HTML page whose links could not be rewritten");
                return Response::from_parts(parts, Body::from(read));
            }
        }
    };
    use futures::StreamExt;
    let read = futures::stream::once(async move { Ok::<_, hyper::Error>(bytes::Bytes::from(read)) });
    let rest = http_body_util::BodyDataStream::new(rest);
    Response::from_parts(parts, Body::from_stream(read.chain(rest)))
}

/// `body` read to its end if that comes within `limit` bytes (`None` rest); else what was read
/// and the rest unread. A body that fails ends where it failed.
async fn read_within(mut body: hyper::body::Incoming, limit: usize) -> (Vec<u8>, Option<hyper::body::Incoming>) {
    use http_body_util::BodyExt;
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
            if read.len() > limit {
                return (read, Some(body));
            }
        }
    }
    (read, None)
}

/// Sends `request` to `address` on a connection of its own; the error says why it could not,
/// worded as Go's dialer words it.
async fn send(
    tls: bool,
    address: SocketAddr,
    request: Request<Body>,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let stream = match tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
        Err(_) => return Err(format!("dial tcp {address}: i/o timeout")),
        Ok(Err(error)) => return Err(format!("dial tcp {address}: {}", dial_error(&error))),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    if !tls {
        return exchange(stream, request).await;
    }
    let server_name = rustls::pki_types::ServerName::IpAddress(address.ip().into());
    let stream = tokio_rustls::TlsConnector::from(unverified_tls())
        .connect(server_name, stream)
        .await
        .map_err(|error| error.to_string())?;
    exchange(stream, request).await
}

async fn exchange<IO>(io: IO, request: Request<Body>) -> Result<http::Response<hyper::body::Incoming>, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "proxied connection ended");
        }
    });
    sender.send_request(request).await.map_err(|error| error.to_string())
}

fn dial_error(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        ErrorKind::HostUnreachable => "connect: no route to host".into(),
        ErrorKind::NetworkUnreachable => "connect: network is unreachable".into(),
        ErrorKind::TimedOut => "i/o timeout".into(),
        _ => format!("connect: {error}"),
    }
}

/// A TLS client that accepts any server certificate (upstream's proxy transport:
/// `InsecureSkipVerify`), speaking HTTP/1.1.
fn unverified_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(AnyCertificate(provider.clone()));
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An address upstream proxies to (`IsProxyableIP`): a unicast address that is not loopback,
/// link-local or unspecified.
fn proxyable(ip: Option<&str>) -> ApiResult<IpAddr> {
    let not_allowed = || ApiError::bad_request("address not allowed");
    let ip: IpAddr = ip.and_then(|ip| ip.parse().ok()).ok_or_else(not_allowed)?;
    let global_unicast = match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_loopback() || v4.is_link_local() || v4.is_multicast() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() || v6.is_unicast_link_local()),
    };
    global_unicast.then_some(ip).ok_or_else(not_allowed)
}

/// A port as a number (a name is not resolved: upstream's dialer would not find it either).
fn port_number(port: &str, what: &str, id: &str) -> ApiResult<u16> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid {what} request {id:?}")))
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// Upstream's pod `ResourceLocation`.
fn pod_location(state: &ApiState, namespace: &str, id: &str) -> ApiResult<Backend> {
    let (scheme, name, port) =
        split_scheme_name_port(id).ok_or_else(|| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
    let pod = state.registry.get(&ObjectRef { resource: resource("pods"), namespace: Some(namespace), name })?.value;
    // No port: the first container port the pod declares, else the scheme's.
    let declared = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|c| c.pointer("/ports/0/containerPort").and_then(Value::as_u64))
        .map(|p| p.to_string());
    let port = match (port, declared) {
        ("", Some(declared)) => declared,
        (port, _) => port.to_string(),
    };
    let ip = proxyable(pod_ip(&pod))?;
    let port = if port.is_empty() { default_port(scheme) } else { port_number(&port, "pod", id)? };
    Ok(Backend::Remote { tls: scheme == "https", address: SocketAddr::new(ip, port) })
}

fn pod_ip(pod: &Value) -> Option<&str> {
    pod.pointer("/status/podIPs/0/ip").or_else(|| pod.pointer("/status/podIP")).and_then(Value::as_str)
}

/// Upstream's Service `ResourceLocation`: a port number becomes its Service port's name; an
/// address of the Endpoints (ready ones only) with a port of that name, backed by a pod of the
/// namespace with that IP, picked at random.
fn service_location(state: &ApiState, namespace: &str, id: &str) -> ApiResult<Backend> {
    let (scheme, name, port) =
        split_scheme_name_port(id).ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    let mut port_name = port.to_string();
    if let Ok(number) = port.parse::<i64>() {
        let service =
            state.registry.get(&ObjectRef { resource: resource("services"), namespace: Some(namespace), name })?.value;
        let found = service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("port").and_then(Value::as_i64) == Some(number))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    format!("no service port {number} found for service {name:?}"),
                )
            })?;
        port_name = found.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    }
    let endpoints =
        state.registry.get(&ObjectRef { resource: resource("endpoints"), namespace: Some(namespace), name })?.value;
    let no_endpoints = |of: &str| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("no endpoints available for service {of:?}"),
        )
    };
    let subsets = endpoints.get("subsets").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if subsets.is_empty() {
        return Err(no_endpoints(name));
    }
    let mut random = rand::rng();
    let first_subset = random.random_range(0..subsets.len());
    for i in 0..subsets.len() {
        let subset = &subsets[(first_subset + i) % subsets.len()];
        let addresses = subset.get("addresses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if addresses.is_empty() {
            continue;
        }
        let ports = subset.get("ports").and_then(Value::as_array).into_iter().flatten();
        for endpoint_port in ports.filter(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name) {
            let Some(port) = endpoint_port.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            let first_address = random.random_range(0..addresses.len());
            for j in 0..addresses.len() {
                let address = &addresses[(first_address + j) % addresses.len()];
                match valid_address(state, namespace, address) {
                    Ok(ip) => {
                        return Ok(Backend::Remote { tls: scheme == "https", address: SocketAddr::new(ip, port) })
                    }
                    Err(reason) => tracing::debug!(service = name, %reason, "endpoint address skipped"),
                }
            }
        }
    }
    Err(no_endpoints(id))
}

/// Upstream's `isValidAddress`: the address names a pod of the namespace that has that IP.
fn valid_address(state: &ApiState, namespace: &str, address: &Value) -> Result<IpAddr, String> {
    let ip = address.get("ip").and_then(Value::as_str).unwrap_or("");
    let target = address.get("targetRef").ok_or_else(|| format!("address {ip} has no target ref"))?;
    if target.get("namespace").and_then(Value::as_str) != Some(namespace) {
        return Err("address namespace doesn't match context namespace".into());
    }
    let name = target.get("name").and_then(Value::as_str).unwrap_or("");
    let pod = state
        .registry
        .get(&ObjectRef { resource: resource("pods"), namespace: Some(namespace), name })
        .map_err(|e| e.message)?
        .value;
    let ips: Vec<&str> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("ip").and_then(Value::as_str))
        .chain(pod.pointer("/status/podIP").and_then(Value::as_str))
        .collect();
    if !ips.contains(&ip) {
        return Err(format!("pod ip(s) doesn't match endpoint ip: {ips:?} vs {ip} ({namespace}/{name})"));
    }
    ip.parse().map_err(|_| format!("address {ip} is not an IP"))
}

/// Upstream's node `ResourceLocation`: the kubelet when no port or the kubelet's port is asked
/// for, else that port at the node's address.
fn node_location(state: &ApiState, id: &str) -> ApiResult<Backend> {
    let (scheme, name, port) =
        split_scheme_name_port(id).ok_or_else(|| ApiError::bad_request(format!("invalid node request {id:?}")))?;
    let node = state.registry.get(&ObjectRef { resource: resource("nodes"), namespace: None, name })?.value;
    let kubelet_port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    let to_kubelet = port.is_empty() || port == kubelet_port.to_string();
    if to_kubelet {
        if let Some(kubelet) = state.node_proxy.get().filter(|k| k.node_name() == name) {
            return Ok(Backend::Kubelet(kubelet.clone()));
        }
    }
    let addresses: Vec<&Value> =
        node.pointer("/status/addresses").and_then(Value::as_array).into_iter().flatten().collect();
    let address = ["InternalIP", "ExternalIP"]
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .find(|a| a.get("type").and_then(Value::as_str) == Some(*kind))
                .and_then(|a| a.get("address").and_then(Value::as_str))
        })
        .ok_or_else(|| {
            let known: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
            ApiError::internal(format!("no preferred addresses found; known addresses: [{}]", known.join(" ")))
        })?;
    let ip = proxyable(Some(address))?;
    if to_kubelet {
        return Ok(Backend::Remote { tls: true, address: SocketAddr::new(ip, kubelet_port) });
    }
    Ok(Backend::Remote { tls: scheme == "https", address: SocketAddr::new(ip, port_number(port, "node", id)?) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_paths() {
        let p = parse("/api/v1/namespaces/default/services/http:web:80/proxy/a/b/").unwrap();
        assert_eq!(p, ProxyPath { kind: Kind::Service, namespace: Some("default"), id: "http:web:80", rest: "/a/b/" });
        let p = parse("/api/v1/namespaces/ns/pods/web/proxy").unwrap();
        assert_eq!((p.kind, p.id, p.rest), (Kind::Pod, "web", ""));
        let p = parse("/api/v1/nodes/n1:10250/proxy/logs/").unwrap();
        assert_eq!((p.kind, p.namespace, p.id, p.rest), (Kind::Node, None, "n1:10250", "/logs/"));
        assert!(parse("/api/v1/namespaces/ns/pods/web/proxyx").is_none());
        assert!(parse("/api/v1/namespaces/ns/configmaps/c/proxy/").is_none());
        assert!(parse("/api/v1/namespaces/ns/pods/web").is_none());
        assert!(parse("/api/v1/namespaces/ns/pods/web/log").is_none());
        assert!(parse("/apis/apps/v1/namespaces/ns/pods/web/proxy").is_none());
    }

    #[test]
    fn scheme_name_port() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(split_scheme_name_port("web:80"), Some(("", "web", "80")));
        assert_eq!(split_scheme_name_port("https:web:http"), Some(("https", "web", "http")));
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("ftp:web:80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    #[test]
    fn backend_paths() {
        assert_eq!(backend_path(""), "");
        assert_eq!(backend_path("/"), "/");
        assert_eq!(backend_path("/a/b"), "/a/b");
        assert_eq!(backend_path("/a/b/"), "/a/b/");
        assert_eq!(backend_path("/a/../../../etc/passwd"), "/etc/passwd");
        assert_eq!(backend_path("/a/./b//c/"), "/a/b/c/");
        assert_eq!(decode_path("http%3Aweb%3A80"), "http:web:80");
        assert_eq!(decode_path("a+b%2"), "a+b%2");
    }

    #[test]
    fn only_unicast_addresses_are_proxied() {
        assert!(proxyable(Some("10.244.0.5")).is_ok());
        for bad in [None, Some(""), Some("127.0.0.1"), Some("0.0.0.0"), Some("169.254.1.1"), Some("::1"), Some("x")] {
            assert_eq!(proxyable(bad).unwrap_err().message, "address not allowed", "{bad:?}");
        }
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer secret"));
        headers.insert("impersonate-user", HeaderValue::from_static("x"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-private"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        outbound_headers(&mut headers, false);
        assert_eq!(headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["content-type"]);
    }
}
