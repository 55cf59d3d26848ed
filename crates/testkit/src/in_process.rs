//! The API server inside the test process, built from the current source (never a stale
//! binary), and a transport to it that a test can break as a network would.
//!
//! [`Partition`] sits between a `kube::Client` and the server: [`Partition::cut`] makes every
//! new request fail and ends every response stream in flight (watches included), as a broken
//! link does; [`Partition::heal`] lets requests through again; [`Partition::fail_next`] answers
//! the next requests of a method and path with a 500 `Status`, as a server having a bad moment
//! would. The server itself and everything behind it are real.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody as BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::sync::watch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An API server running in this process, with its own data directory.
pub struct InProcessServer {
    pub server: frontdoor_apiserver::ApiServer,
    pub metrics: frontdoor_metrics::Registry,
    dir: tempfile::TempDir,
}

impl InProcessServer {
    pub async fn start() -> InProcessServer {
        InProcessServer::start_with_window(100_000).await
    }

    /// A server whose watches resume from at most `event_window` recent changes (older: 410).
    pub async fn start_with_window(event_window: usize) -> InProcessServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let metrics = frontdoor_metrics::Registry::default();
        let config = frontdoor_apiserver::ApiServerConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            service_cidr: "10.96.0.0/12".into(),
            node_port_range: "30000-32767".into(),
            advertise_address: None,
            cluster_domain: "cluster.local".into(),
            data_dir: dir.path().to_path_buf(),
            store: frontdoor_store::StoreConfig { event_window, ..Default::default() },
            metrics: metrics.clone(),
            event_ttl: std::time::Duration::from_secs(3600),
        };
        let server = frontdoor_apiserver::start(config).await.expect("API server starts");
        std::fs::write(dir.path().join("kubeconfig"), &server.kubeconfig).expect("kubeconfig written");
        InProcessServer { server, metrics, dir }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The kubeconfig for kubectl (HTTPS on the server's port, its CA and token).
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs kubectl `version` with `args` (and `stdin`) against this server.
    pub fn kubectl_with_stdin(&self, version: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        crate::run_kubectl(crate::kubectl_command(None, &self.kubeconfig(), self.dir.path(), version, args), stdin)
    }

    /// Runs kubectl and returns stdout, failing the test with kubectl's stderr if it failed.
    pub fn kubectl_ok(&self, version: &str, args: &[&str]) -> String {
        crate::succeeded(self.kubectl_with_stdin(version, args, None), version, args)
    }

    /// A client that reaches the server with no socket.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.server.local_service(), "default")
    }

    /// A client whose link to the server the returned [`Partition`] controls.
    pub fn partitioned_client(&self) -> (kube::Client, Partition) {
        let partition = Partition::default();
        let service = PartitionedService { inner: self.server.local_service(), partition: partition.clone() };
        (kube::Client::new(service, "default"), partition)
    }
}

/// The test's hold on a client's link to the server. Clones share it.
#[derive(Clone)]
pub struct Partition {
    cut: Arc<watch::Sender<bool>>,
    failures: Arc<Mutex<Vec<Failure>>>,
}

struct Failure {
    method: Method,
    path_suffix: String,
    remaining: usize,
}

impl Default for Partition {
    fn default() -> Self {
        Partition { cut: Arc::new(watch::channel(false).0), failures: Arc::default() }
    }
}

impl Partition {
    /// New requests fail and open responses (watches) end.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    /// The next `times` requests with `method` whose path ends with `path_suffix` are answered
    /// with a 500 `Status` without reaching the server.
    pub fn fail_next(&self, method: Method, path_suffix: &str, times: usize) {
        let failure = Failure { method, path_suffix: path_suffix.to_string(), remaining: times };
        self.failures.lock().expect("failures").push(failure);
    }

    /// How many injected failures are still to come.
    pub fn failures_left(&self) -> usize {
        self.failures.lock().expect("failures").iter().map(|f| f.remaining).sum()
    }

    fn injected_failure(&self, method: &Method, path: &str) -> bool {
        let mut failures = self.failures.lock().expect("failures");
        let hit = failures.iter_mut().find(|f| f.remaining > 0 && f.method == method && path.ends_with(&f.path_suffix));
        match hit {
            Some(failure) => {
                failure.remaining -= 1;
                true
            }
            None => false,
        }
    }
}

#[derive(Clone)]
struct PartitionedService {
    inner: frontdoor_apiserver::LocalService,
    partition: Partition,
}

fn internal_error() -> Response<BoxBody<Bytes, BoxError>> {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "injected by the test's partition", "reason": "InternalError", "code": 500,
    });
    let body = Full::new(Bytes::from(status.to_string())).map_err(|never| match never {}).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

impl tower::Service<Request<kube::client::Body>> for PartitionedService {
    type Response = Response<BoxBody<Bytes, BoxError>>;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let partition = self.partition.clone();
        let mut inner = self.inner.clone();
        Box::pin(async move {
            if *partition.cut.borrow() {
                return Err("the test's partition is cut".into());
            }
            if partition.injected_failure(request.method(), request.uri().path()) {
                return Ok(internal_error());
            }
            let response = tower::Service::call(&mut inner, request).await?;
            let mut cut = partition.cut.subscribe();
            let broken = async move {
                let _ = cut.wait_for(|cut| *cut).await;
            };
            let (parts, body) = response.into_parts();
            let frames = body
                .into_data_stream()
                .map(|data| data.map(http_body::Frame::data).map_err(BoxError::from))
                .take_until(broken);
            Ok(Response::from_parts(parts, StreamBody::new(frames).boxed_unsync()))
        })
    }
}
