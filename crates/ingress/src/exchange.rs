//! One request's path through the proxy, in phases:
//!
//! 1. **Check**: `CONNECT` is refused (405); the host is the request target's authority or the
//!    one `Host` (HTTP/1.1 without it: 400); ambiguous framing hyper lets through is refused (400,
//!    connection closed).
//! 2. **Route** by host and path in the current table (an `ArcSwap` load): nothing matched is
//!    404, a backend without ready endpoints 503.
//! 3. **Prepare**: hop-by-hop headers stripped (kept for an upgrade), the forwarding headers set,
//!    origin-form target and `Host` for HTTP/1.1 backends, absolute target for h2c ones.
//! 4. **Send** to a random endpoint over a pooled connection. The request moves on to the next
//!    endpoint when its connection cannot be made (refused, timed out, closed before the request
//!    left), and when the connection fails after the request left but before a response head
//!    came back (reset or closed: an endpoint that died with requests in flight) if the request
//!    may be sent twice: its method is idempotent (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE,
//!    PUT, DELETE) and it has no body (streamed, a body cannot be read again; nginx buffers and
//!    resends it). Only such a request, and only when its backend has another endpoint, is copied
//!    before it leaves ([`Replay`]); any other is 502 there. This is nginx's default
//!    `proxy_next_upstream error timeout` (which since 1.9.13 passes a non-idempotent request on
//!    only if it was not sent) less the timeout. Each endpoint is tried at most once, at most
//!    `max_connect_attempts` in all (`proxy_next_upstream_tries`), then 502. Never retried: no
//!    response head within `upstream_response_timeout` (504; a slow endpoint would do the work
//!    twice), and an answer that is not HTTP (502; nginx's `invalid_header`, not in its default
//!    either). Retries count in `frontdoor_ingress_upstream_retries_total`, logged at debug.
//! 5. **Relay**: the response's hop-by-hop headers stripped and its body streamed as it comes;
//!    a 101 to an upgrade splices the two upgraded connections in a task of their own.
//! 6. **Account** when the response body ends or is dropped ([`Exchange`]'s `Drop`): metrics,
//!    access log, the connection's activity. A request whose client left before its response
//!    counts as 499, as nginx logs it.
//!
//! Every failure is a [`RequestError`], answered in one place ([`RequestError::response`]).

use std::convert::Infallible;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use frontdoor_ingress_routes::{BackendProtocol, Route};
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::body::{Content, RequestBody, ResponseBody, Reuse};
use crate::headers::{ambiguous_framing, is_upgrade, request_host, strip_hop_by_hop, HostProblem, Keep};
use crate::metrics::{BackendSeries, MethodLabel};
use crate::proxy::{Downstream, ProxyConfig, Shared};
use crate::upstream::{ConnectError, Http1Sender, UpstreamPool};

/// How long a pooled connection may take to become ready again (its previous exchange is
/// finishing) before another is used.
const POOLED_READY_WAIT: Duration = Duration::from_millis(50);

/// The type of the proxy's own short answers.
pub(crate) const OWN_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// nginx's status for a client that closed its connection before its response.
const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// Every way a request fails, each answered with one status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("CONNECT is not served")]
    ConnectMethod,
    #[error("bad host: {0:?}")]
    Host(HostProblem),
    #[error("ambiguous Transfer-Encoding")]
    AmbiguousFraming,
    #[error("no rule matches")]
    NotFound,
    #[error("the backend has no ready endpoint")]
    NoEndpoints,
    #[error("no endpoint could be connected to")]
    ConnectFailed,
    #[error("no response within the upstream response timeout")]
    UpstreamTimeout,
    #[error("reading the client's request body failed: {0}")]
    ClientBody(hyper::Error),
    #[error("upstream failed: {0}")]
    Upstream(hyper::Error),
    #[error("upstream switched protocols unasked")]
    UnaskedUpgrade,
    #[error("upstream failed: {0}")]
    UpstreamIo(std::io::Error),
    #[error("upstream answered badly: {0}")]
    BadResponse(crate::h1::ResponseProblem),
    /// The client closed its connection while its request was at an endpoint (the fast path:
    /// hyper drops the exchange at once). Nothing is answered; it counts as 499, as nginx logs it.
    #[error("the client left before its response")]
    ClientLeft,
}

impl RequestError {
    fn from_upstream(error: hyper::Error) -> RequestError {
        // hyper says "user" when the body we streamed to it (the client's) failed.
        if error.is_user() {
            RequestError::ClientBody(error)
        } else {
            RequestError::Upstream(error)
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            RequestError::ConnectMethod => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::Host(_) | RequestError::AmbiguousFraming | RequestError::ClientBody(_) => {
                StatusCode::BAD_REQUEST
            }
            RequestError::NotFound => StatusCode::NOT_FOUND,
            RequestError::NoEndpoints => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::ConnectFailed
            | RequestError::Upstream(_)
            | RequestError::UnaskedUpgrade
            | RequestError::UpstreamIo(_)
            | RequestError::BadResponse(_) => StatusCode::BAD_GATEWAY,
            RequestError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            RequestError::ClientLeft => CLIENT_CLOSED_REQUEST,
        }
    }

    /// Whether the client's connection cannot be trusted with another request.
    fn closes_connection(&self) -> bool {
        matches!(self, RequestError::Host(_) | RequestError::AmbiguousFraming | RequestError::ClientBody(_))
    }

    /// The one answer to each failure, its status and short plain body (as ingress-nginx's
    /// default backend), logged at debug unless it is a plain 404 or 503.
    pub(crate) fn answer(&self) -> (StatusCode, &'static str) {
        let status = self.status();
        match status {
            StatusCode::NOT_FOUND | StatusCode::SERVICE_UNAVAILABLE => {}
            _ => tracing::debug!(error = %self, %status, "request failed"),
        }
        let text = match status {
            StatusCode::NOT_FOUND => "default backend - 404\n",
            StatusCode::SERVICE_UNAVAILABLE => "503 Service Temporarily Unavailable\n",
            StatusCode::BAD_GATEWAY => "502 Bad Gateway\n",
            StatusCode::GATEWAY_TIMEOUT => "504 Gateway Time-out\n",
            StatusCode::METHOD_NOT_ALLOWED => "405 Not Allowed\n",
            _ => "400 Bad Request\n",
        };
        (status, text)
    }

    /// [`RequestError::answer`] as a response to a request of `version`.
    pub(crate) fn response(self, version: Version) -> Response<Content> {
        let (status, text) = self.answer();
        let mut response = Response::new(Content::fixed(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(OWN_CONTENT_TYPE));
        if self.closes_connection() && version < Version::HTTP_2 {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// What the access log says of a request beyond its accounting.
struct AccessDetails {
    method: Method,
    uri: Uri,
    version: Version,
    /// The host the request was routed by, once known.
    host: Option<HeaderValue>,
}

/// One request's accounting, recorded when it is dropped (with the response body).
pub(crate) struct Exchange {
    connection: Arc<Downstream>,
    /// `None` until the request matched a backend.
    pub(crate) series: Option<Arc<BackendSeries>>,
    method: MethodLabel,
    pub(crate) status: u16,
    start: Instant,
    bytes: u64,
    pub(crate) upstream: Option<SocketAddr>,
    access: Option<AccessDetails>,
}

impl Exchange {
    /// A request of `method` begins; `target` (its URI and version) is asked for only for the
    /// access log.
    pub(crate) fn begin(
        connection: Arc<Downstream>,
        method: &Method,
        target: impl FnOnce() -> (Uri, Version),
    ) -> Exchange {
        if let Some(activity) = &connection.activity {
            activity.begin();
        }
        let access = connection.shared.config.access_log.then(|| {
            let (uri, version) = target();
            AccessDetails { method: method.clone(), uri, version, host: None }
        });
        Exchange {
            connection,
            series: None,
            method: MethodLabel::of(method),
            // What nginx logs for a client that left before its response.
            status: 499,
            start: Instant::now(),
            bytes: 0,
            upstream: None,
            access,
        }
    }

    /// The host the request was routed by (asked for only for the access log).
    pub(crate) fn set_host(&mut self, host: impl FnOnce() -> Option<HeaderValue>) {
        if let Some(access) = &mut self.access {
            access.host = host();
        }
    }

    /// `len` more body bytes sent to the client.
    pub(crate) fn sent(&mut self, len: usize) {
        self.bytes += len as u64;
    }

    pub(crate) fn pool(&self) -> &UpstreamPool {
        &self.connection.shared.pool
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let metrics = &self.connection.shared.metrics;
        let series = self.series.as_deref().unwrap_or(metrics.unrouted());
        series.record(self.method, self.status, elapsed);
        if let Some(activity) = &self.connection.activity {
            activity.end();
        }
        if let Some(access) = &self.access {
            let (namespace, ingress) = series.ingress();
            tracing::info!(
                target: "frontdoor_ingress::access",
                client = %self.connection.client.ip(),
                method = %access.method,
                host = access.host.as_ref().and_then(|host| host.to_str().ok()),
                uri = %access.uri,
                protocol = ?access.version,
                status = self.status,
                bytes = self.bytes,
                duration_ms = elapsed.as_secs_f64() * 1e3,
                upstream = self.upstream.map(tracing::field::display),
                namespace,
                ingress,
                service = series.service(),
                "request",
            );
        }
    }
}

/// The proxy's service: one call per request on a client connection.
pub(crate) async fn handle(
    connection: Arc<Downstream>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let mut exchange = Exchange::begin(connection, request.method(), || (request.uri().clone(), request.version()));
    let version = request.version();
    let response = match forward(&mut exchange, request).await {
        Ok(response) => response,
        Err(error) => error.response(version),
    };
    exchange.status = response.status().as_u16();
    Ok(response.map(|content| ResponseBody::new(content, exchange)))
}

/// Where a routed request may go.
struct Target {
    endpoints: Arc<[SocketAddr]>,
    protocol: BackendProtocol,
}

async fn forward(exchange: &mut Exchange, mut request: Request<Incoming>) -> Result<Response<Content>, RequestError> {
    let connection = &*exchange.connection;
    let shared = &*connection.shared;
    if request.method() == Method::CONNECT {
        return Err(RequestError::ConnectMethod);
    }
    let version = request.version();
    let host = request_host(request.uri(), request.headers(), version).map_err(RequestError::Host)?;
    if let Some(access) = &mut exchange.access {
        access.host.clone_from(&host);
    }
    if version < Version::HTTP_2 && ambiguous_framing(request.headers()) {
        return Err(RequestError::AmbiguousFraming);
    }

    let target = {
        let table = shared.routes.load();
        let host_name = host.as_ref().and_then(|host| host.to_str().ok()).unwrap_or("");
        match table.route(host_name, request.uri().path()) {
            Route::NotFound => return Err(RequestError::NotFound),
            Route::NoEndpoints(backend) => {
                exchange.series = Some(shared.metrics.backend(&table, backend));
                return Err(RequestError::NoEndpoints);
            }
            Route::Backend(backend) => {
                exchange.series = Some(shared.metrics.backend(&table, backend));
                Target { endpoints: backend.endpoints.clone(), protocol: backend.protocol }
            }
        }
    };

    let upgrade = is_upgrade(version, request.headers());
    let on_client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    // An upgrade is an HTTP/1.1 affair whatever the backend otherwise speaks.
    let protocol = if upgrade { BackendProtocol::Http1 } else { target.protocol };
    prepare(&mut request, connection, host.as_ref(), protocol, upgrade)?;

    let series = exchange.series.as_deref().unwrap_or(shared.metrics.unrouted());
    let (mut response, address, sender) =
        send(shared, series, &target.endpoints, protocol, request, host.is_none()).await?;
    exchange.upstream = Some(address);

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(on_client_upgrade) = on_client_upgrade else {
            return Err(RequestError::UnaskedUpgrade);
        };
        let on_upstream_upgrade = hyper::upgrade::on(&mut response);
        spawn_tunnel(shared, on_client_upgrade, on_upstream_upgrade, address);
        return Ok(response.map(|body| Content::Upstream { body, reuse: None }));
    }
    strip_hop_by_hop(response.headers_mut(), Keep::default());
    // hyper writes what the client speaks; an h2c backend's HTTP/2 is not that.
    *response.version_mut() = Version::HTTP_11;
    let mut reuse = sender.map(|sender| Reuse { address, sender });
    if response.body().is_end_stream() {
        if let Some(Reuse { address, sender }) = reuse.take() {
            shared.pool.put_http1(address, sender);
        }
    }
    Ok(response.map(|body| Content::Upstream { body, reuse }))
}

/// Rewrites the client's request into the backend's, in place.
fn prepare(
    request: &mut Request<Incoming>,
    connection: &Downstream,
    host: Option<&HeaderValue>,
    protocol: BackendProtocol,
    upgrade: bool,
) -> Result<(), RequestError> {
    let target_had_authority = request.uri().authority().is_some();
    let path = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    let headers = request.headers_mut();
    strip_hop_by_hop(headers, Keep { upgrade, te_trailers: protocol == BackendProtocol::H2c });
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    connection.headers.apply(headers, host);
    match protocol {
        BackendProtocol::Http1 => {
            // `Host` as the client sent it, unless the target named the host (absolute-form,
            // HTTP/2's `:authority`): then that, which is what the request was routed by.
            if let Some(host) = host.filter(|_| target_had_authority || !headers.contains_key(header::HOST)) {
                headers.insert(header::HOST, host.clone());
            }
            if target_had_authority || request.uri().scheme().is_some() {
                *request.uri_mut() = Uri::from(path);
            }
            *request.version_mut() = Version::HTTP_11;
        }
        BackendProtocol::H2c => {
            if let Some(host) = host {
                let authority =
                    Authority::try_from(host.as_bytes()).map_err(|_| RequestError::Host(HostProblem::Invalid))?;
                *request.uri_mut() = absolute_uri(authority, path)?;
            }
            *request.version_mut() = Version::HTTP_2;
        }
    }
    Ok(())
}

fn absolute_uri(authority: Authority, path: PathAndQuery) -> Result<Uri, RequestError> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(path);
    Uri::from_parts(parts).map_err(|_| RequestError::Host(HostProblem::Invalid))
}

/// A request without any host (HTTP/1.0 without `Host`) names the endpoint.
fn name_endpoint(request: &mut Request<RequestBody>, address: SocketAddr) {
    let text = address.to_string();
    if request.version() == Version::HTTP_2 {
        if let Ok(authority) = Authority::try_from(text.as_str()) {
            let path = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
            if let Ok(uri) = absolute_uri(authority, path) {
                *request.uri_mut() = uri;
            }
        }
    } else if let Ok(host) = HeaderValue::from_str(&text) {
        request.headers_mut().insert(header::HOST, host);
    }
}

/// One endpoint's outcome.
enum Attempt {
    /// The request never left: another endpoint may take it.
    Unsent(ConnectError, Box<Request<RequestBody>>),
    /// The request left, and its connection failed before a response head came back: another
    /// endpoint may take a copy, if one was kept ([`Replay`]).
    Lost(hyper::Error),
    Failed(RequestError),
}

impl Attempt {
    /// What a failure after the request left amounts to.
    fn after_sending(error: hyper::Error) -> Attempt {
        // The client's body failed (hyper's "user" error), or the endpoint answered with
        // something that is not HTTP: neither is the endpoint's connection failing.
        if error.is_user() || error.is_parse() {
            Attempt::Failed(RequestError::from_upstream(error))
        } else {
            Attempt::Lost(error)
        }
    }
}

/// What a request that may be sent twice is made again from, for another endpoint once one
/// failed it after it left: its method is idempotent (RFC 9110 §9.2.2) and it has no body (the
/// client's, streamed, cannot be read again). Its extensions stay behind: none concerns an
/// upstream connection (an upgrade's client half was taken out before).
struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Replay {
    /// The copy of `request`, or `None` (and nothing copied) if it must not be sent twice.
    fn of(request: &Request<Incoming>) -> Option<Replay> {
        (request.method().is_idempotent() && request.body().is_end_stream()).then(|| Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
        })
    }

    fn request(&self) -> Request<RequestBody> {
        let mut request = Request::new(RequestBody::Empty);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// A uniform pick among `len` (a thread-local xorshift; no lock, no shared state).
fn random_below(len: usize) -> usize {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(std::hash::RandomState::new().hash_one(0u8) | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x % len as u64) as usize
    })
}

/// The longest a connection may take while another endpoint is left to try (on a node's pod
/// network or a LAN a healthy endpoint connects in well under a millisecond).
const FAILOVER_CONNECT: Duration = Duration::from_secs(1);

/// One endpoint a request may be sent to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Try {
    pub(crate) address: SocketAddr,
    /// How long its connection may take.
    pub(crate) connect: Duration,
    /// Whether another endpoint is left to try after it.
    pub(crate) more: bool,
}

/// The endpoints a request may be sent to, in order, on either path: from a random one on,
/// each at most once, at most `max_connect_attempts` (0: all). With another endpoint left to
/// try, a connection that takes longer than [`FAILOVER_CONNECT`] is given up for it: an endpoint
/// whose pod just went away (its address no longer answers ARP) would otherwise hold the request
/// for the whole connect timeout.
pub(crate) fn tries<'a>(config: &ProxyConfig, endpoints: &'a [SocketAddr]) -> impl ExactSizeIterator<Item = Try> + 'a {
    let count = endpoints.len();
    let attempts = match config.max_connect_attempts {
        0 => count,
        max => max.min(count),
    };
    let first = random_below(count.max(1));
    let connect_timeout = config.connect_timeout;
    (0..attempts).map(move |attempt| {
        let more = attempt + 1 < attempts;
        Try {
            address: endpoints[(first + attempt) % count],
            connect: if more { connect_timeout.min(FAILOVER_CONNECT) } else { connect_timeout },
            more,
        }
    })
}

/// `future`, or `None` once `limit` passed.
async fn within<F: std::future::Future>(limit: Option<Duration>, future: F) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, future).await.ok(),
        None => Some(future.await),
    }
}

/// Sends `request` to one of `endpoints`, moving on to the next (each at most once, at most
/// `max_connect_attempts` in all) when one cannot be connected to, or fails a request that may
/// be sent twice ([`Replay`]) after it left and before answering. A response timeout is never
/// retried: the endpoint may still be at work on the request, and would see it twice.
async fn send(
    shared: &Shared,
    series: &BackendSeries,
    endpoints: &[SocketAddr],
    protocol: BackendProtocol,
    request: Request<Incoming>,
    hostless: bool,
) -> Result<(Response<Incoming>, SocketAddr, Option<Http1Sender>), RequestError> {
    let tries = tries(&shared.config, endpoints);
    // Copied only if it may be sent twice and another endpoint could take it.
    let replay = if tries.len() > 1 { Replay::of(&request) } else { None };
    let mut request = request.map(RequestBody::Client);
    for Try { address, connect, more } in tries {
        if hostless {
            name_endpoint(&mut request, address);
        }
        let outcome = match protocol {
            BackendProtocol::Http1 => send_http1(shared, address, request, connect).await,
            BackendProtocol::H2c => send_http2(shared, address, request, connect).await,
        };
        match outcome {
            Ok((response, sender)) => return Ok((response, address, sender)),
            Err(Attempt::Unsent(error, returned)) => {
                series.connect_failed();
                tracing::debug!(%error, %address, "upstream endpoint unreachable, trying another");
                request = *returned;
            }
            Err(Attempt::Lost(error)) => match &replay {
                Some(replay) if more => {
                    series.retried();
                    tracing::debug!(%error, %address, "upstream endpoint failed before answering, trying another");
                    request = replay.request();
                }
                _ => return Err(RequestError::Upstream(error)),
            },
            Err(Attempt::Failed(error)) => return Err(error),
        }
    }
    Err(RequestError::ConnectFailed)
}

async fn send_http1(
    shared: &Shared,
    address: SocketAddr,
    mut request: Request<RequestBody>,
    connect: Duration,
) -> Result<(Response<Incoming>, Option<Http1Sender>), Attempt> {
    loop {
        let (mut sender, fresh) = match shared.pool.take_http1(address) {
            Some(sender) => (sender, false),
            None => match shared.pool.connect_http1(address, connect).await {
                Ok(sender) => (sender, true),
                Err(error) => return Err(Attempt::Unsent(error, Box::new(request))),
            },
        };
        if !sender.is_ready() {
            // A fresh connection is ready once its task runs; a pooled one when its previous
            // exchange has wound down, or never (its server closed it, or a slow upload goes on).
            let wait = if fresh { connect } else { POOLED_READY_WAIT };
            match tokio::time::timeout(wait, sender.ready()).await {
                Ok(Ok(())) => {}
                _ if fresh => return Err(Attempt::Unsent(ConnectError::ClosedUnsent, Box::new(request))),
                _ => continue,
            }
        }
        match within(shared.config.upstream_response_timeout, sender.try_send_request(request)).await {
            None => return Err(Attempt::Failed(RequestError::UpstreamTimeout)),
            Some(Ok(response)) => return Ok((response, Some(sender))),
            Some(Err(mut error)) => match error.take_message() {
                // A pooled connection closed as we used it; the request never left.
                Some(returned) if !fresh => request = returned,
                Some(returned) => return Err(Attempt::Unsent(ConnectError::ClosedUnsent, Box::new(returned))),
                None => return Err(Attempt::after_sending(error.into_error())),
            },
        }
    }
}

async fn send_http2(
    shared: &Shared,
    address: SocketAddr,
    mut request: Request<RequestBody>,
    connect: Duration,
) -> Result<(Response<Incoming>, Option<Http1Sender>), Attempt> {
    let mut retried = false;
    loop {
        let mut sender = match shared.pool.http2(address, connect).await {
            Ok(sender) => sender,
            Err(error) => return Err(Attempt::Unsent(error, Box::new(request))),
        };
        match within(shared.config.upstream_response_timeout, sender.try_send_request(request)).await {
            None => return Err(Attempt::Failed(RequestError::UpstreamTimeout)),
            Some(Ok(response)) => return Ok((response, None)),
            Some(Err(mut error)) => match error.take_message() {
                // The shared connection closed as we used it: once more on a new one.
                Some(returned) if !retried => {
                    retried = true;
                    request = returned;
                }
                Some(returned) => return Err(Attempt::Unsent(ConnectError::ClosedUnsent, Box::new(returned))),
                None => return Err(Attempt::after_sending(error.into_error())),
            },
        }
    }
}

/// Splices an upgraded client connection to its upgraded upstream one until either side ends,
/// or the drain's deadline.
fn spawn_tunnel(shared: &Shared, client: OnUpgrade, upstream: OnUpgrade, address: SocketAddr) {
    let mut drain = shared.drain_watch();
    tokio::spawn(async move {
        let tunnel = async {
            let (client, upstream) = tokio::try_join!(client, upstream).map_err(|error| error.to_string())?;
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await.map_err(|error| error.to_string())
        };
        tokio::select! {
            result = tunnel => match result {
                Ok((sent, received)) => tracing::debug!(%address, sent, received, "upgraded connection closed"),
                Err(error) => tracing::debug!(%address, %error, "upgraded connection failed"),
            },
            () = drain.stopped() => tracing::debug!(%address, "upgraded connection cut at the end of the drain"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_picks_cover_every_endpoint() {
        let mut seen = [0usize; 5];
        for _ in 0..5000 {
            seen[random_below(5)] += 1;
        }
        assert!(seen.iter().all(|count| *count > 700), "{seen:?}");
        assert_eq!(random_below(1), 0);
    }

    #[test]
    fn every_failure_has_its_status_and_closes_only_when_framing_is_in_doubt() {
        let cases = [
            (RequestError::ConnectMethod, 405, false),
            (RequestError::Host(HostProblem::Missing), 400, true),
            (RequestError::AmbiguousFraming, 400, true),
            (RequestError::NotFound, 404, false),
            (RequestError::NoEndpoints, 503, false),
            (RequestError::ConnectFailed, 502, false),
            (RequestError::UpstreamTimeout, 504, false),
            (RequestError::UnaskedUpgrade, 502, false),
        ];
        for (error, status, closes) in cases {
            let response = error.response(Version::HTTP_11);
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers().get(header::CONNECTION).is_some(), closes, "{status}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        }
        let over_h2 = RequestError::AmbiguousFraming.response(Version::HTTP_2);
        assert!(over_h2.headers().get(header::CONNECTION).is_none());
    }
}
