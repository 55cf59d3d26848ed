//! What the proxy tests share: backends (small hyper servers speaking HTTP/1.1 and h2c), a
//! cluster of Ingress objects compiled by the real route builder, the proxy itself on ephemeral
//! ports, and clients (plain, HTTP/2, TLS, raw bytes).

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use frontdoor_informers::{Shutdown, ShutdownTrigger};
use frontdoor_ingress::arc_swap::ArcSwap;
use frontdoor_ingress::{Certificates, IngressError, IngressProxy, ProxyConfig};
use frontdoor_ingress_routes::{IngressClassConfig, RouteTable, RouteTableBuilder, SERVICE_NAME_LABEL};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

pub type TestBody = BoxBody<Bytes, Box<dyn StdError + Send + Sync>>;

/// Every test's bound on a wait that should be short.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn full(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> TestBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body fed through a channel: each message is one frame, sent when the test says.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// What a backend saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub uri: String,
    pub version: Version,
    pub headers: HeaderMap,
}

/// A backend: one Service endpoint, answering by path.
/// - `/echo`: the request body, streamed back as it arrives;
/// - `/bytes/N`: N bytes;
/// - `/slow`: `first\n`, then `second\n` once [`Backend::release`] is notified;
/// - `/sleep/MS`: answers after MS milliseconds;
/// - `/ws`: a 101 to `Upgrade: websocket`, then echoes what it reads;
/// - `/hop`: a response carrying hop-by-hop headers;
/// - anything else: JSON naming the backend, with the request's method, URI, version, headers.
#[derive(Clone)]
pub struct Backend {
    pub name: &'static str,
    pub address: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub release: Arc<Notify>,
    accepted: Arc<AtomicUsize>,
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = Backend {
            name,
            address: listener.local_addr().unwrap(),
            seen: Arc::default(),
            release: Arc::new(Notify::new()),
            accepted: Arc::default(),
        };
        let serving = backend.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                serving.accepted.fetch_add(1, Ordering::SeqCst);
                let backend = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let backend = backend.clone();
                        async move { Ok::<_, Infallible>(backend.answer(request).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        backend
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the backend saw a request")
    }

    async fn answer(&self, mut request: Request<Incoming>) -> Response<TestBody> {
        self.seen.lock().unwrap().push(Seen {
            uri: request.uri().to_string(),
            version: request.version(),
            headers: request.headers().clone(),
        });
        let path = request.uri().path().to_string();
        if path == "/echo" {
            return Response::new(request.into_body().map_err(Into::into).boxed());
        }
        if let Some(len) = path.strip_prefix("/bytes/") {
            return Response::new(full(vec![b'x'; len.parse().unwrap()]));
        }
        if let Some(ms) = path.strip_prefix("/sleep/") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            return Response::new(full(format!("slept {ms}\n")));
        }
        if path == "/slow" {
            let (sender, receiver) = mpsc::channel(1);
            let release = self.release.clone();
            tokio::spawn(async move {
                let _ = sender.send(Bytes::from_static(b"first\n")).await;
                release.notified().await;
                let _ = sender.send(Bytes::from_static(b"second\n")).await;
            });
            return Response::new(ChannelBody(receiver).boxed());
        }
        if path == "/ws" {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let Ok(upgraded) = upgrade.await else { return };
                let mut io = TokioIo::new(upgraded);
                let mut buffer = [0u8; 1024];
                loop {
                    match io.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if io.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            return Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .body(empty())
                .unwrap();
        }
        if path == "/hop" {
            return Response::builder()
                .header("connection", "x-backend-private")
                .header("x-backend-private", "1")
                .header("keep-alive", "timeout=5")
                .header("x-kept", "yes")
                .body(full("hop\n"))
                .unwrap();
        }
        let headers: serde_json::Map<String, Value> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or("<binary>"))))
            .collect();
        let body = json!({
            "backend": self.name,
            "method": request.method().as_str(),
            "uri": request.uri().to_string(),
            "version": format!("{:?}", request.version()),
            "headers": headers,
        });
        Response::builder().header("content-type", "application/json").body(full(body.to_string())).unwrap()
    }
}

/// How a [`DyingBackend`] fails the requests it reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dying {
    /// Requests answered on each connection before the one it drops, so that a pooled
    /// keep-alive connection fails only later. HTTP/1.1 only.
    pub answer_first: usize,
    /// Closes with a reset (`SO_LINGER` 0) rather than a FIN.
    pub reset: bool,
    /// Speaks h2c: reads the preface and frames up to the first HEADERS, then closes.
    pub h2c: bool,
}

/// An endpoint that reads a request whole and closes the connection without answering, as a pod
/// killed with requests in flight does. A request it answers gets JSON naming it, as
/// [`Backend`]'s default answer.
#[derive(Clone)]
pub struct DyingBackend {
    pub address: SocketAddr,
    /// Each request read and left unanswered: its `x-request` header (`""` without one, or h2c).
    dropped: Arc<Mutex<Vec<String>>>,
    answered: Arc<AtomicUsize>,
}

impl DyingBackend {
    pub async fn start(name: &'static str, dying: Dying) -> DyingBackend {
        assert!(!dying.h2c || dying.answer_first == 0, "an h2c dying backend answers nothing");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend =
            DyingBackend { address: listener.local_addr().unwrap(), dropped: Arc::default(), answered: Arc::default() };
        let serving = backend.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let backend = serving.clone();
                tokio::spawn(async move {
                    let stream = if dying.h2c {
                        backend.read_h2c_request(stream).await
                    } else {
                        backend.serve_http1(stream, name, dying.answer_first).await
                    };
                    if let Some(stream) = stream {
                        if dying.reset {
                            stream.set_zero_linger().unwrap();
                        }
                    }
                });
            }
        });
        backend
    }

    pub fn dropped(&self) -> Vec<String> {
        self.dropped.lock().unwrap().clone()
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Answers `answer_first` requests, reads one more and gives the stream back to be dropped;
    /// `None` if the proxy closed first.
    async fn serve_http1(&self, mut stream: TcpStream, name: &str, answer_first: usize) -> Option<TcpStream> {
        let mut buffer = Vec::new();
        for _ in 0..answer_first {
            read_http1_request(&mut stream, &mut buffer).await?;
            let body = json!({"backend": name}).to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).await.ok()?;
            self.answered.fetch_add(1, Ordering::SeqCst);
        }
        let request = read_http1_request(&mut stream, &mut buffer).await?;
        self.dropped.lock().unwrap().push(request);
        Some(stream)
    }

    /// Reads the preface and frames up to the first HEADERS; `None` if the proxy closed first.
    async fn read_h2c_request(&self, mut stream: TcpStream) -> Option<TcpStream> {
        let mut preface = [0u8; 24];
        stream.read_exact(&mut preface).await.ok()?;
        loop {
            let mut frame_head = [0u8; 9];
            stream.read_exact(&mut frame_head).await.ok()?;
            let length = u32::from_be_bytes([0, frame_head[0], frame_head[1], frame_head[2]]) as usize;
            let mut payload = vec![0u8; length];
            stream.read_exact(&mut payload).await.ok()?;
            // HEADERS (a request's headers fit one frame here: no CONTINUATION).
            if frame_head[3] == 0x1 {
                self.dropped.lock().unwrap().push(String::new());
                return Some(stream);
            }
        }
    }
}

/// Reads one HTTP/1.1 request whole (its body by `Content-Length`) off `buffer` and `stream`:
/// its `x-request` header, `""` without one; `None` if the stream ended first.
async fn read_http1_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        read_more(stream, buffer).await?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(|value| value.trim().to_string()))
    };
    assert!(header("transfer-encoding").is_none(), "a dying backend reads only Content-Length bodies");
    let length: usize = header("content-length").map_or(0, |length| length.parse().unwrap());
    while buffer.len() < head_end + length {
        read_more(stream, buffer).await?;
    }
    buffer.drain(..head_end + length);
    Some(header("x-request").unwrap_or_default())
}

/// Reads what `stream` has into `buffer`; `None` at its end.
async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            Some(())
        }
    }
}

/// An address nothing listens on (bound, then closed).
pub async fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Ingress objects of our class, compiled by the real builder.
pub struct Cluster {
    builder: RouteTableBuilder,
}

impl Default for Cluster {
    fn default() -> Self {
        let mut builder = RouteTableBuilder::new(IngressClassConfig::default());
        let class = json!({"metadata": {"name": "frontdoor"}, "spec": {"controller": "frontdoor.dev/ingress"}});
        builder.apply_ingress_class(&serde_json::from_value(class).unwrap());
        Cluster { builder }
    }
}

impl Cluster {
    /// Service `name` in `default`, port 80 `http` (h2c when asked), one slice per endpoint.
    pub fn service(&mut self, name: &str, endpoints: &[SocketAddr], h2c: bool) -> &mut Self {
        let mut port = json!({"name": "http", "port": 80});
        if h2c {
            port["appProtocol"] = json!("kubernetes.io/h2c");
        }
        let service = json!({"metadata": {"namespace": "default", "name": name}, "spec": {"ports": [port]}});
        self.builder.apply_service(&serde_json::from_value(service).unwrap());
        for (at, endpoint) in endpoints.iter().enumerate() {
            let slice = json!({
                "metadata": {"namespace": "default", "name": format!("{name}-{at}"), "labels": {SERVICE_NAME_LABEL: name}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": endpoint.port()}],
                "endpoints": [{"addresses": [endpoint.ip().to_string()]}],
            });
            self.builder.apply_slice(&serde_json::from_value(slice).unwrap());
        }
        self
    }

    /// An Ingress of our class in `default` with `spec` (class name added).
    pub fn ingress(&mut self, name: &str, mut spec: Value) -> &mut Self {
        spec["ingressClassName"] = json!("frontdoor");
        let ingress = json!({
            "metadata": {"namespace": "default", "name": name, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": spec,
        });
        self.builder.apply_ingress(&serde_json::from_value(ingress).unwrap());
        self
    }

    /// A `kubernetes.io/tls` Secret in `default`.
    pub fn tls_secret(&mut self, name: &str, cert: &str, key: &str) -> &mut Self {
        let secret = json!({
            "metadata": {"namespace": "default", "name": name},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": cert, "tls.key": key},
        });
        self.builder.apply_secret(&serde_json::from_value(secret).unwrap());
        self
    }

    pub fn table(&self) -> RouteTable {
        let compiled = self.builder.build();
        assert!(compiled.problems.is_empty(), "{:?}", compiled.problems);
        compiled.table
    }
}

/// One backend named `name`, and a proxy routing every path of `host` to it.
pub async fn one_backend(name: &'static str, host: &str, h2c: bool) -> (Backend, Proxy) {
    let backend = Backend::start(name).await;
    let mut cluster = Cluster::default();
    cluster.service(name, &[backend.address], h2c).ingress(name, json!({"rules": [rule(host, &[("/", name)])]}));
    (backend, Proxy::start(cluster.table()).await)
}

/// `{"host": host, "http": {"paths": [...]}}` with Prefix paths to services' port 80.
pub fn rule(host: &str, paths: &[(&str, &str)]) -> Value {
    let paths: Vec<Value> = paths
        .iter()
        .map(|(path, service)| {
            json!({"path": path, "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": 80}}}})
        })
        .collect();
    if host.is_empty() {
        json!({"http": {"paths": paths}})
    } else {
        json!({"host": host, "http": {"paths": paths}})
    }
}

/// The proxy on ephemeral loopback ports; stopped (and drained) when dropped.
pub struct Proxy {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub routes: Arc<ArcSwap<RouteTable>>,
    pub certificates: Arc<ArcSwap<Certificates>>,
    pub registry: frontdoor_metrics::Registry,
    trigger: Option<ShutdownTrigger>,
    task: Option<tokio::task::JoinHandle<Result<(), IngressError>>>,
}

/// Test settings: loopback, ephemeral ports, short timeouts.
pub fn config() -> ProxyConfig {
    ProxyConfig {
        http: Some("127.0.0.1:0".parse().unwrap()),
        https: Some("127.0.0.1:0".parse().unwrap()),
        connect_timeout: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(5),
        ..ProxyConfig::default()
    }
}

impl Proxy {
    pub async fn start(table: RouteTable) -> Proxy {
        Proxy::start_with(config(), table, Certificates::with_fake_default().unwrap()).await
    }

    pub async fn start_with(config: ProxyConfig, table: RouteTable, certificates: Certificates) -> Proxy {
        let routes = Arc::new(ArcSwap::from_pointee(table));
        let certificates = Arc::new(ArcSwap::from_pointee(certificates));
        let registry = frontdoor_metrics::Registry::default();
        let proxy = IngressProxy::bind(config, routes.clone(), certificates.clone(), &registry).await.unwrap();
        let (http, https) = (proxy.http_address().unwrap(), proxy.https_address().unwrap());
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(proxy.serve(shutdown));
        Proxy { http, https, routes, certificates, registry, trigger: Some(trigger), task: Some(task) }
    }

    /// Starts the drain; [`Proxy::stopped`] waits for its end.
    pub fn shut_down(&mut self) {
        if let Some(trigger) = &self.trigger {
            trigger.trigger();
        }
    }

    pub async fn stopped(&mut self) {
        self.shut_down();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task).await.expect("the drain ends").unwrap().unwrap();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| panic!("{error}: {:?}", self.text()))
    }

    /// The backend that answered (from its JSON).
    pub fn backend(&self) -> String {
        self.json()["backend"].as_str().unwrap().to_string()
    }

    /// A request header as the backend saw it.
    pub fn seen_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_string)
    }
}

pub async fn read_whole(response: Response<Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(PATIENCE, body.collect()).await.expect("the body ends").unwrap().to_bytes();
    Reply { status: parts.status, version: parts.version, headers: parts.headers, body }
}

/// An HTTP/1.1 connection over any stream.
pub async fn http1<S>(io: S) -> hyper::client::conn::http1::SendRequest<TestBody>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.unwrap();
    tokio::spawn(connection.with_upgrades());
    sender
}

/// An HTTP/2 connection over any stream (prior knowledge, or after ALPN).
pub async fn http2<S>(io: S) -> hyper::client::conn::http2::SendRequest<TestBody>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await.unwrap();
    tokio::spawn(connection);
    sender
}

pub fn request(host: &str, path: &str) -> http::request::Builder {
    Request::builder().uri(path).header("host", host)
}

/// `GET path` with `Host: host` on a new HTTP/1.1 connection.
pub async fn get(address: SocketAddr, host: &str, path: &str) -> Reply {
    let mut sender = http1(TcpStream::connect(address).await.unwrap()).await;
    let response = sender.send_request(request(host, path).body(empty()).unwrap()).await.unwrap();
    read_whole(response).await
}

/// Writes `bytes` on a new connection and reads until the proxy closes it (or 10 s).
pub async fn raw(address: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A test CA and certificates it issues.
pub struct TestCa {
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "frontdoor test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { pem, issuer: rcgen::Issuer::new(params, key) }
    }

    /// A certificate for `names` and its key, both PEM.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }

    /// A client that trusts this CA and offers `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

use rustls::pki_types::pem::PemObject;

/// A client that accepts any certificate, to look at which one the proxy chose.
pub fn trusting_client() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
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

/// The leaf certificate (DER) a TLS connection to `address` with SNI `name` is answered with.
pub async fn served_certificate(address: SocketAddr, name: &str) -> Vec<u8> {
    let stream = TcpStream::connect(address).await.unwrap();
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let tls = trusting_client().connect(server_name, stream).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec()
}

/// The DER of a PEM certificate.
pub fn der_of(pem: &str) -> Vec<u8> {
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().as_ref().to_vec()
}

/// Waits for `condition` (polled every 10 ms) up to [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
