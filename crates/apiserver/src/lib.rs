//! frontdoor's Kubernetes-compatible API server.
//!
//! A guided tour:
//! * [`serve`] binds HTTPS (rustls; HTTP/1.1 and h2), checks the bearer token and hands each
//!   request to [`route`]: health, `/version`, `/metrics`, discovery, OpenAPI, or a resource URL.
//!   `route` records every request in `metrics` (kube-apiserver's `apiserver_*` metrics).
//! * Resource URLs are parsed by `request`, turned into verbs by `handlers`, and carried out by
//!   the `registry` (create/update/patch/delete with Kubernetes' metadata rules) over the
//!   `frontdoor-store`. Every error becomes a `Status` in one place (`errors`).
//! * Reads answer JSON or, for `kubectl get`, a Table (`table`, columns from
//!   `frontdoor-printers`); watches stream events (`watch`).
//! * `lifecycle` runs the server's own housekeeping (namespace finalizer, garbage collector).
//! * `proxy` relays `pods/proxy`, `services/proxy` and `nodes/proxy` (the node's kubelet
//!   endpoints in process: `kubelet`).
//!
//! This crate never programs the kernel and never runs pods: it stores desired state.
#![forbid(unsafe_code)]
// An ApiError is built once per failed request and becomes one response; boxing it would only
// move the allocation.
#![allow(clippy::result_large_err)]

mod accounts;
mod allocation;
mod body;
mod discovery;
pub mod errors;
mod exec;
mod expiry;
mod fields;
mod handlers;
mod kinds;
pub mod kubelet;
mod lifecycle;
mod metrics;
mod patch;
mod portforward;
mod proxy;
mod proxy_links;
pub mod registry;
mod request;
mod selectors;
mod table;
pub mod tls;
mod upgrade;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

use frontdoor_store::{Store, StoreConfig};

use crate::errors::ApiError;
pub use crate::registry::Registry;

/// The Kubernetes version this server speaks (its API types are k8s-openapi's v1_33).
pub const KUBERNETES_MINOR: &str = "33";

/// How to run the API server.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    pub listen: SocketAddr,
    /// Service ClusterIP range (`--service-cidr`, default 10.96.0.0/12).
    pub service_cidr: String,
    /// NodePort range (`--service-node-port-range`, default 30000-32767).
    pub node_port_range: String,
    /// The address the `kubernetes` Service's endpoints point at (not loopback). The server also
    /// listens there, on the port of `listen`, once the address exists on this machine.
    pub advertise_address: Option<std::net::IpAddr>,
    /// The cluster's DNS domain (`cluster.local`): the serving certificate names
    /// `kubernetes.default.svc.<domain>`.
    pub cluster_domain: String,
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    /// The process's metrics registry: the server registers its metrics there and serves it at
    /// `/metrics`.
    pub metrics: frontdoor_metrics::Registry,
    /// How long an Event lives after its last write (`--event-ttl`, upstream's default 1 h).
    pub event_ttl: std::time::Duration,
}

/// What `kubectl logs` asks for (the `pods/log` query).
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    pub previous: bool,
    pub since_seconds: Option<i64>,
    pub limit_bytes: Option<usize>,
}

/// Where container logs come from: the node runtime, attached after it starts. The API server
/// only relays the stream (upstream proxies to the kubelet).
pub trait LogSource: Send + Sync {
    fn open(
        &self,
        pod: &serde_json::Value,
        container: &str,
        query: &LogQuery,
    ) -> Result<tokio::sync::mpsc::Receiver<bytes::Bytes>, String>;
}

/// What the node offers into its pods, attached after it starts (upstream: the kubelet's
/// streaming server).
pub trait PodAccess: Send + Sync {
    /// A TCP connection to `port` on the pod's loopback, inside its network namespace
    /// (`kubectl port-forward`).
    fn connect(
        &self,
        pod: &serde_json::Value,
        port: u16,
    ) -> futures::future::BoxFuture<'static, Result<tokio::net::TcpStream, String>>;
    /// `command` started in `container` of the pod (`kubectl exec`): with `tty` on a terminal,
    /// else with its output piped, and its input if `stdin`. Dropping the child kills it.
    fn exec(
        &self,
        pod: &serde_json::Value,
        container: &str,
        command: Vec<String>,
        stdin: bool,
        tty: bool,
    ) -> futures::future::BoxFuture<'static, Result<ExecProcess, ExecError>>;
}

/// The node's kubelet endpoints, attached after it starts: `nodes/<name>/proxy/...` (with no
/// port, or the kubelet's) is answered here rather than over the network (frontdoor's node has
/// no kubelet HTTP port). See [`kubelet::LocalKubelet`].
pub trait NodeProxy: Send + Sync {
    /// The Node whose kubelet this is.
    fn node_name(&self) -> &str;
    /// Answers one request as the kubelet would: the URI is the path (and query) under the
    /// kubelet's root, e.g. `/logs/`.
    fn serve(&self, request: Request<Body>) -> futures::future::BoxFuture<'static, Response>;
}

/// A command started for `kubectl exec`.
pub struct ExecProcess {
    pub child: tokio::process::Child,
    /// With a TTY: the terminal the command runs on.
    pub terminal: Option<ExecTerminal>,
    /// Kills the command and whatever it started (when the client has gone away).
    pub stop: Box<dyn Fn() + Send + Sync>,
}

/// The node's side of an exec session's terminal.
pub struct ExecTerminal {
    /// What the command writes; ends when it (and whatever it started) has closed the terminal.
    pub output: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    /// What the command reads.
    pub input: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    /// Sets the size in characters (width, height).
    pub resize: Box<dyn Fn(u16, u16) + Send + Sync>,
}

/// Why [`PodAccess::exec`] could not start a command.
#[derive(Debug)]
pub enum ExecError {
    /// The command does not exist or cannot run: said on the command's stderr, exit code 126.
    CannotRun(String),
    /// The pod or container is not running.
    Unavailable(String),
}

/// Shared by every request.
pub struct ApiState {
    pub registry: Registry,
    pub logs: std::sync::OnceLock<Arc<dyn LogSource>>,
    pub pod_access: std::sync::OnceLock<Arc<dyn PodAccess>>,
    pub node_proxy: std::sync::OnceLock<Arc<dyn NodeProxy>>,
    pub token: String,
    pub server_address: String,
    metrics: metrics::Metrics,
}

/// A started API server: where it listens and how clients reach it.
pub struct ApiServer {
    pub local_addr: SocketAddr,
    pub kubeconfig: String,
    pub registry: Registry,
    pub started: Instant,
    state: Arc<ApiState>,
}

impl ApiServer {
    /// A tower service that answers requests in process, with no socket or TLS: the transport
    /// for `kube::Client::new` inside `frontdoor up`. Requests are authenticated as the admin.
    pub fn local_service(&self) -> LocalService {
        LocalService { state: self.state.clone() }
    }

    /// The bearer token the server accepts (pods' service account volumes hold it).
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// Attaches the node runtime's logs to `pods/log` (once).
    pub fn set_log_source(&self, source: Arc<dyn LogSource>) {
        let _ = self.state.logs.set(source);
    }

    /// Attaches the node runtime's way into pods to `pods/portforward` and `pods/exec` (once).
    pub fn set_pod_access(&self, access: Arc<dyn PodAccess>) {
        let _ = self.state.pod_access.set(access);
    }

    /// Attaches the node's kubelet endpoints to `nodes/proxy` (once).
    pub fn set_node_proxy(&self, kubelet: Arc<dyn NodeProxy>) {
        let _ = self.state.node_proxy.set(kubelet);
    }
}

/// See [`ApiServer::local_service`].
#[derive(Clone)]
pub struct LocalService {
    state: Arc<ApiState>,
}

impl<B> tower::Service<Request<B>> for LocalService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let bearer = format!("Bearer {}", state.token);
            if let Ok(value) = HeaderValue::from_str(&bearer) {
                parts.headers.insert(header::AUTHORIZATION, value);
            }
            Ok(route(&state, Request::from_parts(parts, Body::new(body))).await)
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error(transparent)]
    Store(#[from] frontdoor_store::StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error(transparent)]
    Network(#[from] allocation::NetworkError),
    #[error("bootstrap failed: {0}")]
    Bootstrap(String),
}

/// Opens the store, prepares credentials, binds the listener and starts serving in the
/// background. Returns once the server accepts requests.
pub async fn start(config: ApiServerConfig) -> Result<ApiServer, StartError> {
    let started = Instant::now();
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
    let store = Store::open(&config.data_dir.join("state.db"), config.store.clone())?;
    let network = allocation::ServiceNetwork::new(&config.service_cidr, &config.node_port_range)?;
    let registry = Registry::new(store, network);
    lifecycle::ensure_builtin_namespaces(&registry).await.map_err(|e| StartError::Bootstrap(e.message))?;

    let listener = TcpListener::bind(config.listen).await.map_err(|e| StartError::Listen(config.listen, e))?;
    let local_addr = listener.local_addr().map_err(|e| StartError::Listen(config.listen, e))?;
    // Upstream refuses loopback endpoints for the `kubernetes` Service.
    let advertise = config.advertise_address.filter(|a| !a.is_loopback() && !a.is_unspecified());
    lifecycle::ensure_kubernetes_service(&registry, local_addr, advertise)
        .await
        .map_err(|e| StartError::Bootstrap(e.message))?;
    let mut addresses = vec![local_addr.ip(), std::net::IpAddr::V4(registry.network.address(0))];
    addresses.extend(advertise);
    let credentials = tls::load_or_create(&config.data_dir, &addresses, &config.cluster_domain)?;
    // The built-in namespaces' service accounts before the first request, so a pod created the
    // moment the server is ready finds its account and CA (the lifecycle loop keeps them after).
    for namespace in lifecycle::BUILTIN_NAMESPACES {
        accounts::ensure_namespace(&registry, namespace, &credentials.ca_pem)
            .await
            .map_err(|e| StartError::Bootstrap(e.message))?;
    }
    let server = format!("https://{local_addr}");
    let kubeconfig = tls::kubeconfig(&server, &credentials);

    let state = Arc::new(ApiState {
        registry: registry.clone(),
        logs: std::sync::OnceLock::new(),
        pod_access: std::sync::OnceLock::new(),
        node_proxy: std::sync::OnceLock::new(),
        token: credentials.token.clone(),
        server_address: local_addr.to_string(),
        metrics: metrics::Metrics::new(&config.metrics),
    });
    tokio::spawn(lifecycle::run(registry.clone(), credentials.ca_pem.clone()));
    tokio::spawn(expiry::run(registry.clone(), config.event_ttl));
    let acceptor = tokio_rustls::TlsAcceptor::from(credentials.server_config.clone());
    if let Some(advertise) = advertise {
        let covered = local_addr.ip() == advertise || local_addr.ip().is_unspecified();
        if !covered {
            let address = SocketAddr::new(advertise, local_addr.port());
            tokio::spawn(listen_when_present(address, acceptor.clone(), Arc::downgrade(&state)));
        }
    }
    tokio::spawn(accept_loop(listener, acceptor, state.clone()));
    Ok(ApiServer { local_addr, kubeconfig, registry, started, state })
}

/// Listens on the advertised address too, once it exists on this machine (the node's bridge is
/// made after the server starts): binding is retried while the address is not there
/// (`EADDRNOTAVAIL`), until it works or the server is gone.
async fn listen_when_present(
    address: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    state: std::sync::Weak<ApiState>,
) {
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        if state.strong_count() == 0 {
            return;
        }
        match TcpListener::bind(address).await {
            Ok(listener) => {
                let Some(state) = state.upgrade() else { return };
                tracing::info!(%address, "API server listening on the advertised address");
                accept_loop(listener, acceptor, state).await;
                return;
            }
            Err(error) if error.kind() == std::io::ErrorKind::AddrNotAvailable => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
            Err(error) => {
                tracing::warn!(%address, %error, "cannot listen on the advertised address");
                return;
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, state: Arc<ApiState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, request.map(Body::new)).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await;
        });
    }
}

fn authenticated(state: &ApiState, request: &Request<Body>) -> bool {
    let expected = format!("Bearer {}", state.token);
    request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v == expected)
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Answers one request and records it in the request metrics.
pub async fn route(state: &ApiState, request: Request<Body>) -> Response {
    let started = Instant::now();
    let labels =
        metrics::RequestLabels::of(request.method(), request.uri().path(), request.uri().query(), request.headers());
    let response = answer(state, request).await;
    state.metrics.record(&labels, response.status(), started.elapsed());
    response
}

async fn answer(state: &ApiState, request: Request<Body>) -> Response {
    let path = request.uri().path().to_string();
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => return text(StatusCode::OK, "ok"),
        "/version" => return body::json_response(StatusCode::OK, &version()),
        _ => {}
    }
    if !authenticated(state, &request) {
        return ApiError::unauthorized().into_response();
    }
    if path == "/metrics" && request.method() == Method::GET {
        let mut response = (StatusCode::OK, state.metrics.encode(&state.registry.store)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(frontdoor_metrics::CONTENT_TYPE));
        return response;
    }
    // Relayed as it comes, body streamed (and maybe upgraded).
    if let Some(target) = proxy::parse(&path) {
        return proxy::serve(state, target, request).await;
    }
    // An upgraded connection: the request itself (not its body) is what it needs.
    if path.ends_with("/portforward") || path.ends_with("/exec") {
        if let Ok(target) = request::parse_path(&path) {
            let at = registry::ObjectRef {
                resource: target.resource,
                namespace: target.namespace.as_deref(),
                name: target.name(),
            };
            match (target.resource.plural, target.subresource.as_deref()) {
                ("pods", Some("portforward")) => {
                    return portforward::serve(state, &at, request).unwrap_or_else(IntoResponse::into_response)
                }
                ("pods", Some("exec")) => {
                    return exec::serve(state, &at, request).unwrap_or_else(IntoResponse::into_response)
                }
                _ => {}
            }
        }
    }
    let (parts, body) = request.into_parts();
    let bytes = match read_body(body).await {
        Some(bytes) => bytes,
        None => return ApiError::too_large().into_response(),
    };
    let query = parts.uri.query();
    if parts.method == Method::GET {
        if let Some(response) = discovery_or_openapi(state, &path, &parts.headers) {
            return response;
        }
    }
    handlers::handle(state, parts.method, &path, query, parts.headers, bytes).await
}

/// Reads a request body of at most `MAX_BODY` bytes. A larger one is read to its end (up to a
/// hard cap) and dropped, so the client sees the 413 rather than a reset stream.
async fn read_body(mut body: Body) -> Option<bytes::Bytes> {
    const DISCARD_CAP: usize = 64 * 1024 * 1024;
    let mut buffer = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return None };
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= body::MAX_BODY {
                buffer.extend_from_slice(&data);
            } else if total > DISCARD_CAP {
                return None;
            }
        }
    }
    (total <= body::MAX_BODY).then(|| buffer.freeze())
}

fn discovery_or_openapi(state: &ApiState, path: &str, headers: &http::HeaderMap) -> Option<Response> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let aggregated = discovery::negotiate(headers);
    let json = |v: serde_json::Value| body::json_response(StatusCode::OK, &v);
    Some(match segments.as_slice() {
        ["api"] => match aggregated {
            Some(version) => body::json_bytes_response(
                StatusCode::OK,
                serde_json::to_vec(&discovery::aggregated(true, version)).unwrap_or_default(),
                version.content_type(),
            ),
            None => json(discovery::api_versions(&state.server_address)),
        },
        ["apis"] => match aggregated {
            Some(version) => body::json_bytes_response(
                StatusCode::OK,
                serde_json::to_vec(&discovery::aggregated(false, version)).unwrap_or_default(),
                version.content_type(),
            ),
            None => json(discovery::api_group_list()),
        },
        ["api", version] => json(discovery::api_resource_list("", version).unwrap_or(json!(null))),
        ["apis", group] => {
            let list = discovery::api_group_list();
            let found = list["groups"].as_array()?.iter().find(|g| g["name"] == *group)?.clone();
            let mut group = found;
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            json(group)
        }
        ["apis", group, version] => match discovery::api_resource_list(group, version) {
            Some(list) => json(list),
            None => ApiError::no_route().into_response(),
        },
        ["openapi", "v3"] => json(frontdoor_openapi::index()),
        ["openapi", "v3", rest @ ..] => match frontdoor_openapi::document(&rest.join("/")) {
            Some(document) => {
                let mut response = body::json_bytes_response(
                    StatusCode::OK,
                    bytes::Bytes::from_static(document.json()),
                    "application/json",
                );
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
                response
            }
            None => ApiError::no_route().into_response(),
        },
        // Swagger 2.0: protobuf (gnostic's openapi.v2.Document) for the clients that ask for it,
        // kubectl up to 1.27 among them, and always at the legacy protobuf path; JSON otherwise.
        ["openapi", "v2"] | ["swagger-2.0.0.pb-v1"] => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if segments[0] == "openapi" && !accept.contains("protobuf") {
                body::json_bytes_response(
                    StatusCode::OK,
                    bytes::Bytes::from_static(frontdoor_openapi::openapi_v2_json()),
                    "application/json",
                )
            } else {
                body::json_bytes_response(
                    StatusCode::OK,
                    bytes::Bytes::from_static(frontdoor_openapi::openapi_v2_protobuf()),
                    frontdoor_openapi::OPENAPI_V2_PROTOBUF,
                )
            }
        }
        _ => return None,
    })
}

fn version() -> serde_json::Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-frontdoor.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}
