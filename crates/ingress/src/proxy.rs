//! The listeners, the connections they accept, and the drain.
//!
//! Each listener has its own accept loop, which only accepts and spawns: the TLS handshake, the
//! protocol choice and the connection itself run in the connection's task, so a flood of slow
//! or idle connections costs each one a task and never holds the loop. The plain port reads the
//! first bytes to tell HTTP/2 with prior knowledge (its preface) from HTTP/1.1; the TLS port
//! follows ALPN. Both the handshake and those first bytes must arrive within
//! `header_read_timeout`, as must each HTTP/1.1 request head (hyper's timer, which also starts
//! when a keep-alive connection goes idle, so an idle HTTP/1.1 connection closes after
//! `min(idle_timeout, header_read_timeout)`); an HTTP/2 connection with no stream open for
//! `idle_timeout` (or no first request within `header_read_timeout`) gets a GOAWAY.
//!
//! Drain: on shutdown the accept loops stop (the listeners close), every connection is told to
//! finish (HTTP/1.1: close after the response in flight; HTTP/2: GOAWAY, streams in flight run
//! on), and the proxy waits for them, upgraded tunnels included, up to `drain_timeout`; then
//! whatever is left is closed. hyper-util's `GracefulShutdown` does the first half of this but
//! cannot watch an HTTP/1.1 connection that allows upgrades, so the signal is our own
//! `tokio::sync::watch`, used the same way: every connection holds a receiver, and the drain
//! waits for the last to be dropped.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use frontdoor_informers::Shutdown;
use frontdoor_ingress_routes::RouteTable;
use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::client::{ClientListener, ClientStream};
use crate::exchange;
use crate::h1;
use crate::headers::ClientHeaders;
use crate::io::{sniff, PrefixedIo, Sniffed};
use crate::metrics::IngressMetrics;
use crate::tls::{server_config, Certificates};
use crate::upstream::{PoolSettings, UpstreamPool};
use crate::IngressError;

/// The proxy's listeners, limits and timeouts. The defaults are ingress-nginx's where it has
/// one (its ConfigMap key in brackets).
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Plain HTTP/1.1 and HTTP/2 with prior knowledge; `None` for none. Default `0.0.0.0:80`.
    pub http: Option<SocketAddr>,
    /// HTTPS (HTTP/1.1 and HTTP/2 by ALPN); `None` for none. Default `0.0.0.0:443`.
    pub https: Option<SocketAddr>,
    /// To make a connection to an endpoint (before moving to another). 5 s
    /// [`proxy-connect-timeout`].
    pub connect_timeout: Duration,
    /// For a TLS handshake, a connection's first bytes, and each HTTP/1.1 request head (which
    /// closes slowloris clients). 60 s [`client-header-timeout`].
    pub header_read_timeout: Duration,
    /// A client connection with no request in flight is closed after this. 75 s [`keep-alive`].
    pub idle_timeout: Duration,
    /// From sending a request upstream to its response head; `None` waits forever. 60 s
    /// [`proxy-read-timeout`, which nginx also applies between body reads; here only to the head].
    pub upstream_response_timeout: Option<Duration>,
    /// An idle pooled upstream connection is closed after this. 60 s
    /// [`upstream-keepalive-timeout`].
    pub upstream_idle_timeout: Duration,
    /// Idle upstream connections kept per endpoint. 320 [`upstream-keepalive-connections`].
    pub max_idle_per_endpoint: usize,
    /// Endpoints tried for one request, each at most once, when connections cannot be made or
    /// an endpoint fails an idempotent bodiless request before answering; 0 tries every one.
    /// 3 [`proxy-next-upstream-tries`].
    pub max_connect_attempts: usize,
    /// The request line and headers of an HTTP/1.1 request, and the header list of an HTTP/2
    /// one; more is answered 431. 32 KiB [`large-client-header-buffers` 4 × 8k].
    pub max_header_bytes: usize,
    /// Streams one HTTP/2 client may have open at once. 128 [`http2-max-concurrent-streams`].
    pub max_concurrent_streams: u32,
    /// One `tracing` line per request, target `frontdoor_ingress::access`. On, as nginx's.
    pub access_log: bool,
    /// How long requests in flight (and upgraded connections) may run on after shutdown.
    /// 30 s, the Pod default grace period [ingress-nginx: `worker-shutdown-timeout` 240 s].
    pub drain_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            http: Some(SocketAddr::from(([0, 0, 0, 0], 80))),
            https: Some(SocketAddr::from(([0, 0, 0, 0], 443))),
            connect_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            upstream_response_timeout: Some(Duration::from_secs(60)),
            upstream_idle_timeout: Duration::from_secs(60),
            max_idle_per_endpoint: 320,
            max_connect_attempts: 3,
            max_header_bytes: 32 * 1024,
            max_concurrent_streams: 128,
            access_log: true,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// What a plain connection's first read may take (the whole head, usually).
const FIRST_READ: usize = 4096;

/// Where the drain is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DrainState {
    Serving,
    /// Finish what is in flight, take nothing new.
    Draining,
    /// The drain timeout passed: close now.
    Stopped,
}

/// A connection's (or tunnel's) end of the drain signal; the drain waits until every one is
/// dropped.
pub(crate) struct DrainWatch(watch::Receiver<DrainState>);

impl DrainWatch {
    pub(crate) async fn draining(&mut self) {
        let _ = self.0.wait_for(|state| *state != DrainState::Serving).await;
    }

    pub(crate) async fn stopped(&mut self) {
        let _ = self.0.wait_for(|state| *state == DrainState::Stopped).await;
    }
}

/// What every connection of one proxy shares.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) routes: Arc<ArcSwap<RouteTable>>,
    pub(crate) metrics: IngressMetrics,
    pub(crate) pool: UpstreamPool,
    drain: watch::Sender<DrainState>,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Shared {
    pub(crate) fn drain_watch(&self) -> DrainWatch {
        DrainWatch(self.drain.subscribe())
    }

    /// Whether the drain has begun.
    pub(crate) fn draining(&self) -> bool {
        *self.drain.borrow() != DrainState::Serving
    }
}

/// Whether an HTTP/2 connection is idle: its open streams, and when the last one ended.
pub(crate) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    any: AtomicBool,
    /// Milliseconds after `opened`.
    last_end: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            any: AtomicBool::new(false),
            last_end: AtomicU64::new(0),
        }
    }

    pub(crate) fn begin(&self) {
        self.any.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn end(&self) {
        let since_open = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_end.store(since_open, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Resolves once no request was in flight for `idle` (or none came within `first`).
    async fn expired(&self, first: Duration, idle: Duration) {
        loop {
            let now = Instant::now();
            let deadline = if self.in_flight.load(Ordering::Acquire) > 0 {
                now + idle
            } else if !self.any.load(Ordering::Relaxed) {
                self.opened + first
            } else {
                self.opened + Duration::from_millis(self.last_end.load(Ordering::Relaxed)) + idle
            };
            if deadline <= now {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One client connection, as each of its requests sees it.
pub(crate) struct Downstream {
    pub(crate) shared: Arc<Shared>,
    pub(crate) client: SocketAddr,
    pub(crate) headers: ClientHeaders,
    /// For HTTP/2 only: hyper's header timer covers HTTP/1.1 idleness.
    pub(crate) activity: Option<Activity>,
}

/// One listener, bound.
struct Listener {
    socket: ClientListener,
    address: SocketAddr,
    tls: Option<TlsAcceptor>,
}

/// The proxy with its listeners bound, ready to serve.
pub struct IngressProxy {
    shared: Arc<Shared>,
    listeners: Vec<Listener>,
}

impl std::fmt::Debug for IngressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngressProxy")
            .field("http", &self.http_address())
            .field("https", &self.https_address())
            .finish_non_exhaustive()
    }
}

/// A listener bound to `address`, and the address it got (port 0 picks one).
fn listen(address: SocketAddr) -> Result<(ClientListener, SocketAddr), IngressError> {
    let failed = |source| IngressError::Listen { address, source };
    let socket = ClientListener::bind(address).map_err(failed)?;
    let bound = socket.local_addr().map_err(failed)?;
    Ok((socket, bound))
}

impl IngressProxy {
    /// Binds the configured listeners (port 0 picks one; see [`IngressProxy::http_address`])
    /// and registers the metrics in `metrics`. Must run inside a Tokio runtime.
    pub async fn bind(
        config: ProxyConfig,
        routes: Arc<ArcSwap<RouteTable>>,
        certificates: Arc<ArcSwap<Certificates>>,
        metrics: &frontdoor_metrics::Registry,
    ) -> Result<IngressProxy, IngressError> {
        let mut listeners = Vec::new();
        if let Some(address) = config.http {
            let (socket, address) = listen(address)?;
            listeners.push(Listener { socket, address, tls: None });
        }
        if let Some(address) = config.https {
            let (socket, address) = listen(address)?;
            let tls = TlsAcceptor::from(server_config(routes.clone(), certificates)?);
            listeners.push(Listener { socket, address, tls: Some(tls) });
        }

        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout.min(config.idle_timeout))
            .max_header_size(config.max_header_bytes);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
        let pool = UpstreamPool::new(PoolSettings {
            idle_timeout: config.upstream_idle_timeout,
            max_idle_per_endpoint: config.max_idle_per_endpoint,
        });
        let shared = Shared {
            metrics: IngressMetrics::register(metrics),
            routes,
            pool,
            drain: watch::Sender::new(DrainState::Serving),
            http1,
            http2,
            config,
        };
        Ok(IngressProxy { shared: Arc::new(shared), listeners })
    }

    /// Where the plain listener listens.
    pub fn http_address(&self) -> Option<SocketAddr> {
        self.listeners.iter().find(|listener| listener.tls.is_none()).map(|listener| listener.address)
    }

    /// Where the TLS listener listens.
    pub fn https_address(&self) -> Option<SocketAddr> {
        self.listeners.iter().find(|listener| listener.tls.is_some()).map(|listener| listener.address)
    }

    /// Serves until `shutdown`, then drains (see the module documentation) and returns.
    /// Cancelling this future stops the accept loops but leaves connections to finish alone.
    pub async fn serve(self, shutdown: Shutdown) -> Result<(), IngressError> {
        let IngressProxy { shared, listeners } = self;
        let accept_loops: Vec<_> = listeners
            .into_iter()
            .map(|listener| tokio::spawn(accept_loop(shared.clone(), listener, shutdown.clone())))
            .collect();
        let sweeper = tokio::spawn(sweep_pool(shared.clone(), shutdown.clone()));
        shutdown.triggered().await;
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }
        let _ = sweeper.await;

        let open = shared.drain.receiver_count();
        tracing::info!(open, "ingress proxy draining");
        shared.drain.send_replace(DrainState::Draining);
        let timeout = shared.config.drain_timeout;
        if tokio::time::timeout(timeout, shared.drain.closed()).await.is_err() {
            let open = shared.drain.receiver_count();
            tracing::warn!(open, ?timeout, "closing the connections still open at the end of the drain");
            shared.drain.send_replace(DrainState::Stopped);
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.drain.closed()).await;
        }
        shared.pool.clear();
        Ok(())
    }
}

/// Binds (as [`IngressProxy::bind`]) and serves until `shutdown` (as [`IngressProxy::serve`]).
pub async fn serve(
    config: ProxyConfig,
    routes: Arc<ArcSwap<RouteTable>>,
    certificates: Arc<ArcSwap<Certificates>>,
    metrics: frontdoor_metrics::Registry,
    shutdown: Shutdown,
) -> Result<(), IngressError> {
    let proxy = IngressProxy::bind(config, routes, certificates, &metrics).await?;
    tracing::info!(http = ?proxy.http_address(), https = ?proxy.https_address(), "ingress proxy listening");
    proxy.serve(shutdown).await
}

async fn sweep_pool(shared: Arc<Shared>, shutdown: Shutdown) {
    let period = (shared.config.upstream_idle_timeout / 2).max(Duration::from_secs(1));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = interval.tick() => shared.pool.sweep(),
        }
    }
}

/// Whether an accept error is about the one connection (try the next) or the process (back off).
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
    )
}

async fn accept_loop(shared: Arc<Shared>, listener: Listener, shutdown: Shutdown) {
    let port = HeaderValue::from(listener.address.port());
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut stop => return,
            accepted = listener.socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, client)) => {
                let drain = shared.drain_watch();
                let (shared, tls, port) = (shared.clone(), listener.tls.clone(), port.clone());
                // The task holds only the arguments until it runs; the connection's state (a few
                // KiB) is made then, on the heap, once. Spawned whole, it was copied three times
                // per connection (into the spawn, into the task, out when done): 9% of the proxy's
                // user time with a connection per request.
                tokio::spawn(async move { Box::pin(serve_connection(shared, stream, client, tls, port, drain)).await });
            }
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                // Out of descriptors or memory: give the connections open a moment to close.
                tracing::warn!(%error, address = %listener.address, "ingress proxy cannot accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: ClientStream,
    client: SocketAddr,
    tls: Option<TlsAcceptor>,
    port: HeaderValue,
    mut drain: DrainWatch,
) {
    // Off at once but for the fast path over plain TCP, which turns it off at its second write
    // (as nginx: a connection that closes after one response never needs it).
    if tls.is_some() {
        let _ = stream.set_nodelay(true);
    }
    let deadline = shared.config.header_read_timeout;
    let downstream = |tls: bool, http2: bool| {
        Arc::new(Downstream {
            shared: shared.clone(),
            client,
            headers: ClientHeaders::new(client, tls, port.clone()),
            activity: http2.then(Activity::new),
        })
    };
    match tls {
        Some(acceptor) => {
            let handshake = tokio::select! {
                handshake = tokio::time::timeout(deadline, Box::pin(acceptor.accept(stream))) => handshake,
                // Nothing was asked yet: nothing to finish.
                () = drain.draining() => return,
            };
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return tracing::debug!(%error, %client, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%client, "TLS handshake timed out"),
            };
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                Box::pin(serve_http(&shared, downstream(true, true), TokioIo::new(stream), true, drain)).await;
            } else {
                Box::pin(h1::serve(shared.clone(), downstream(true, false), stream, BytesMut::new(), drain)).await;
            }
        }
        None => {
            let mut stream = stream;
            let mut first = BytesMut::with_capacity(FIRST_READ);
            let sniffed = tokio::select! {
                sniffed = tokio::time::timeout(deadline, read_preface(&mut stream, &mut first)) => sniffed,
                () = drain.draining() => return,
            };
            match sniffed {
                Ok(Some(Sniffed::Http2)) => {
                    let _ = stream.set_nodelay(true);
                    let io = TokioIo::new(PrefixedIo::new(first.freeze(), stream));
                    Box::pin(serve_http(&shared, downstream(false, true), io, true, drain)).await;
                }
                Ok(Some(_)) => h1::serve(shared.clone(), downstream(false, false), stream, first, drain).await,
                Ok(None) => {}
                Err(_) => tracing::debug!(%client, "no request before the header read timeout"),
            }
        }
    }
}

/// Reads until the first bytes say which protocol; `None` if the client closed or failed first.
async fn read_preface(stream: &mut ClientStream, first: &mut BytesMut) -> Option<Sniffed> {
    loop {
        match stream.read_buf(first).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => match sniff(first) {
                Sniffed::Undecided => continue,
                decided => return Some(decided),
            },
        }
    }
}

pub(crate) async fn serve_http<I>(
    shared: &Shared,
    downstream: Arc<Downstream>,
    io: I,
    http2: bool,
    mut drain: DrainWatch,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let client = downstream.client;
    let service = {
        let downstream = downstream.clone();
        service_fn(move |request| exchange::handle(downstream.clone(), request))
    };
    let result = if http2 {
        let idle = async {
            match &downstream.activity {
                Some(activity) => {
                    activity.expired(shared.config.header_read_timeout, shared.config.idle_timeout).await;
                }
                None => std::future::pending().await,
            }
        };
        let connection = shared.http2.serve_connection(io, service);
        drive(connection, |connection| connection.graceful_shutdown(), idle, &mut drain).await
    } else {
        let connection = shared.http1.serve_connection(io, service).with_upgrades();
        drive(connection, |connection| connection.graceful_shutdown(), std::future::pending(), &mut drain).await
    };
    if let Some(Err(error)) = result {
        tracing::debug!(%error, %client, "client connection ended");
    }
}

/// Runs `connection` to its end; asks it to finish when the drain starts or `idle` resolves,
/// and drops it when the drain stops (`None`).
async fn drive<C, E>(
    connection: C,
    finish: impl FnOnce(Pin<&mut C>),
    idle: impl std::future::Future<Output = ()>,
    drain: &mut DrainWatch,
) -> Option<Result<(), E>>
where
    C: std::future::Future<Output = Result<(), E>>,
{
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => return Some(result),
        () = drain.draining() => {}
        () = idle => {}
    }
    finish(connection.as_mut());
    tokio::select! {
        result = connection => Some(result),
        () = drain.stopped() => None,
    }
}
