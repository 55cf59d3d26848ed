//! HTTP/1.1 client connections served without hyper: the fast path.
//!
//! hyper serves every request correctly, but spends most of the proxy's own CPU time on a
//! plain keep-alive request (two `http::Request`s, two `HeaderMap`s, a task per upstream
//! connection, a body type per side). This path does what nginx does instead: one task per
//! client connection reads the request head into a buffer, routes it, writes the rewritten head
//! (and a small body, held whole) to a pooled endpoint socket, and relays the response's head
//! rewritten and its body as it came (by `Content-Length`, chunked, or until the endpoint
//! closes), in as few system calls as the exchange needs.
//!
//! Only the plain case takes it ([`heads`] says which). At the first request that does not
//! (or whose backend speaks h2c), the connection goes to the hyper path for the rest of its
//! life, with the bytes already read handed back first, so every other case (errors, 431,
//! chunked uploads, `Expect`, upgrades, HTTP/1.0) is answered there as before.
//!
//! The rules are the hyper path's (`exchange`): a random ready endpoint, the next one when a
//! connection cannot be made, an idempotent bodiless request that an endpoint dropped unanswered
//! sent to another, 404/503/502/504 with the same bodies, the same
//! metrics and access log, the header read timeout on every head, and the drain: an idle
//! connection closes when it starts, one with a request in flight after its response; a
//! client that leaves while its request is at an endpoint lets the endpoint's connection go
//! (499, as nginx counts it).

mod chunked;
#[doc(hidden)]
pub mod fuzzing;
mod heads;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use frontdoor_ingress_routes::{BackendProtocol, Route};
use http::{HeaderValue, Method, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::client::ClientStream;
use crate::exchange::{tries, Exchange, RequestError, Try};
use crate::io::PrefixedIo;
use crate::metrics::BackendSeries;
use crate::proxy::{serve_http, Downstream, DrainWatch, Shared};
use chunked::ChunkedScanner;
use heads::{Framing, RequestHead, RequestLimits, RequestParse, ResponseHead, ResponseParse};

pub(crate) use heads::ResponseProblem;

/// How long a request may be at an endpoint before a client socket not yet registered with the
/// reactor is, to watch the client leave.
const WATCH_AFTER: Duration = Duration::from_millis(50);

/// A request body up to this is read whole and served here; a larger one goes to hyper.
const MAX_BODY: usize = 64 * 1024;

/// Room made in a buffer that has less than [`MIN_READ_SPACE`] left before a read.
const READ_SPACE: usize = 8 * 1024;
/// Less room than this left in a buffer, and [`READ_SPACE`] more is made before a read. Small
/// enough that the accept path's first 4 KiB, a request head in it, is read on as it is: growing
/// it (a copy, for every connection) was 3% of the proxy's user time with a connection per
/// request.
const MIN_READ_SPACE: usize = 1024;

/// A client connection's transport, as the fast path needs to know it.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether ending the connection says more than TCP's FIN does (TLS: close_notify).
    const SHUTDOWN: bool;

    /// Turns Nagle's algorithm off (before the connection's second write: a first write never
    /// waits for an acknowledgement, and a connection that closes after one response never
    /// needs it, which saves it a system call).
    fn no_delay(&self);

    /// Writes the connection's last bytes: the proxy closes it next.
    async fn write_last(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write_all(bytes).await?;
        self.flush().await
    }

    /// Whether the reactor watches the connection already (see [`ClientStream`]).
    fn is_registered(&self) -> bool {
        true
    }
}

impl Transport for ClientStream {
    const SHUTDOWN: bool = false;

    fn no_delay(&self) {
        let _ = self.set_nodelay(true);
    }

    /// Sent with `MSG_MORE`, so the kernel holds them until the close, whose FIN then leaves in
    /// the same segment as the response's end (one segment fewer each way for a connection per
    /// request, which nginx sends separately).
    async fn write_last(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        ClientStream::write_last(self, bytes).await
    }

    fn is_registered(&self) -> bool {
        ClientStream::is_registered(self)
    }
}

impl Transport for tokio_rustls::server::TlsStream<ClientStream> {
    const SHUTDOWN: bool = true;

    /// Set before the handshake.
    fn no_delay(&self) {}
}

/// Serves `client` (whose first bytes, if any were read, are `first`) until it closes, the
/// drain ends it, or a request goes to the hyper path with the connection.
pub(crate) async fn serve<S: Transport>(
    shared: Arc<Shared>,
    downstream: Arc<Downstream>,
    client: S,
    first: BytesMut,
    drain: DrainWatch,
) {
    let mut stop = shared.drain_watch();
    let mut connection = Connection {
        shared: &shared,
        downstream: &downstream,
        client,
        writes: 0,
        buf: first,
        request: Vec::with_capacity(1024),
        response_head: Vec::with_capacity(1024),
        upstream_buf: BytesMut::new(),
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        drain,
    };
    let outcome = tokio::select! {
        outcome = connection.run() => outcome,
        () = stop.stopped() => return,
    };
    drop(stop);
    match outcome {
        Outcome::Handoff => {
            let Connection { client, writes, buf, drain, .. } = connection;
            if writes > 0 {
                client.no_delay();
            }
            let io = TokioIo::new(PrefixedIo::new(buf.freeze(), client));
            // Boxed: hyper's connection state would otherwise make every connection's task larger.
            Box::pin(serve_http(&shared, downstream, io, false, drain)).await;
        }
        // The proxy ends the connection: say so (a TLS client gets its close_notify, which a
        // body that runs to the close needs), within a moment.
        Outcome::Closed { shut_down: true } if S::SHUTDOWN => {
            let _ = tokio::time::timeout(SHUTDOWN, connection.client.shutdown()).await;
        }
        Outcome::Closed { .. } => {}
    }
}

/// How long the closing of a connection may take (a TLS close_notify to a client that does not
/// read).
const SHUTDOWN: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Over; `shut_down` if the proxy ends it (rather than the client, or a failure).
    Closed { shut_down: bool },
    /// The request at the start of the buffer is the hyper path's.
    Handoff,
}

struct Connection<'a, S> {
    shared: &'a Shared,
    downstream: &'a Arc<Downstream>,
    client: S,
    /// Writes to the client so far (at most 2: see [`Transport::no_delay`]).
    writes: u8,
    /// What the client sent that is not yet served.
    buf: BytesMut,
    /// The request as the endpoint gets it.
    request: Vec<u8>,
    /// The response head as the client gets it (and the first of its body).
    response_head: Vec<u8>,
    upstream_buf: BytesMut,
    /// The header read timeout, reset for each head, and the upstream response timeout, reset
    /// for each request sent: one timer, moved on (a new timer per request costs the reactor's
    /// lock twice, and showed in the tail latency).
    timer: Pin<Box<Sleep>>,
    drain: DrainWatch,
}

/// What follows a request.
enum Next {
    Request,
    /// The response said the connection closes.
    Close,
    /// The response could not be whole: close without ceremony.
    Drop,
}

/// How a response body went.
enum Relayed {
    /// Whole; the endpoint's socket may serve again.
    Whole { reusable: bool },
    /// The endpoint failed or closed early: the client's connection cannot go on either.
    Broken,
    /// The client could not be written to.
    ClientGone,
}

/// Why no response head came from an endpoint.
enum HeadFailure {
    /// The connection failed or closed; `answered` if any byte of a response came first.
    Lost {
        error: std::io::Error,
        answered: bool,
    },
    Problem(ResponseProblem),
}

fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_READ_SPACE {
        buf.reserve(READ_SPACE);
    }
}

impl<S: Transport> Connection<'_, S> {
    async fn run(&mut self) -> Outcome {
        loop {
            let head = match self.read_request().await {
                Ok(Some(head)) => head,
                Ok(None) => return Outcome::Closed { shut_down: false },
                Err(Handoff) => return Outcome::Handoff,
            };
            match self.exchange(head).await {
                Ok(Next::Request) => {}
                Ok(Next::Close) => return Outcome::Closed { shut_down: true },
                Ok(Next::Drop) => return Outcome::Closed { shut_down: false },
                Err(Handoff) => return Outcome::Handoff,
            }
        }
    }

    /// The next request, whole (`None`: the client closed, timed out, or the drain began
    /// between requests).
    async fn read_request(&mut self) -> Result<Option<RequestHead>, Handoff> {
        let config = &self.shared.config;
        let limits = RequestLimits { max_head: config.max_header_bytes, max_body: MAX_BODY };
        let deadline = Instant::now() + config.header_read_timeout.min(config.idle_timeout);
        self.timer.as_mut().reset(deadline);
        loop {
            if !self.buf.is_empty() {
                match heads::parse_request(&self.buf, limits, &self.downstream.headers, &mut self.request) {
                    RequestParse::Partial => {}
                    RequestParse::Handoff(reason) => {
                        tracing::trace!(?reason, client = %self.downstream.client, "request handed to hyper");
                        return Err(Handoff);
                    }
                    RequestParse::Request(head) => return Ok(Some(head)),
                }
            }
            let idle = self.buf.is_empty();
            if idle && self.shared.draining() {
                return Ok(None);
            }
            reserve(&mut self.buf);
            let read = tokio::select! {
                read = self.client.read_buf(&mut self.buf) => read,
                () = self.timer.as_mut() => {
                    tracing::debug!(client = %self.downstream.client, "no whole request before the header read timeout");
                    return Ok(None);
                }
                () = self.drain.draining(), if idle => return Ok(None),
            };
            match read {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// Serves one request.
    async fn exchange(&mut self, head: RequestHead) -> Result<Next, Handoff> {
        let shared = self.shared;
        // Visible ASCII: checked by the parser.
        let host = std::str::from_utf8(&self.buf[head.host.clone()]).unwrap_or("");
        let table = shared.routes.load();
        let (endpoints, series) = match table.route(host, head.target.path()) {
            Route::Backend(backend) if backend.protocol == BackendProtocol::H2c => return Err(Handoff),
            Route::Backend(backend) => (Ok(backend.endpoints.clone()), Some(shared.metrics.backend(&table, backend))),
            Route::NoEndpoints(backend) => {
                (Err(RequestError::NoEndpoints), Some(shared.metrics.backend(&table, backend)))
            }
            Route::NotFound => (Err(RequestError::NotFound), None),
        };
        drop(table);
        let mut exchange = Exchange::begin(self.downstream.clone(), &head.method, || {
            (Uri::from(head.target.clone()), Version::HTTP_11)
        });
        exchange.set_host(|| HeaderValue::from_str(host).ok());
        exchange.series = series;
        let body = head.head_len..head.head_len + head.body_len;
        self.request.extend_from_slice(&self.buf[body]);
        self.buf.advance(head.head_len + head.body_len);
        let close = head.close;

        let forwarded = match endpoints {
            Ok(endpoints) => self.forward(&mut exchange, &endpoints, &head.method, head.body_len == 0, close).await,
            Err(error) => Err(error),
        };
        let (mut upstream, address, response) = match forwarded {
            Ok(forwarded) => forwarded,
            Err(RequestError::ClientLeft) => {
                tracing::debug!(client = %self.downstream.client, "client left before its response");
                return Ok(Next::Drop);
            }
            Err(error) => {
                let close = close || self.shared.draining();
                let (status, text) = error.answer();
                // A response to HEAD has no body (its length says what GET's would be).
                let body = if head.method == Method::HEAD { "" } else { text };
                heads::own_response(&mut self.response_head, status, text.len(), body, close);
                exchange.status = status.as_u16();
                exchange.sent(body.len());
                return Ok(match self.write_client_head(close).await {
                    false => Next::Drop,
                    true if close => Next::Close,
                    true => Next::Request,
                });
            }
        };
        exchange.status = response.status;
        exchange.upstream = Some(address);
        self.upstream_buf.advance(response.head_len);
        let keep_client = !close && response.framing != Framing::UntilClose;
        match self.relay(&mut upstream, response, &mut exchange, close).await {
            Relayed::Whole { reusable } => {
                if reusable && response.keep_alive {
                    shared.pool.put_socket(address, upstream);
                }
                Ok(if keep_client && !self.shared.draining() { Next::Request } else { Next::Close })
            }
            Relayed::Broken | Relayed::ClientGone => Ok(Next::Drop),
        }
    }

    /// Sends the request (in `self.request`) to one of `endpoints` and reads its response head,
    /// with the hyper path's choice of endpoint and its rules for moving on to another.
    async fn forward(
        &mut self,
        exchange: &mut Exchange,
        endpoints: &[SocketAddr],
        method: &Method,
        bodiless: bool,
        close: bool,
    ) -> Result<(TcpStream, SocketAddr, ResponseHead), RequestError> {
        let shared = self.shared;
        let config = &shared.config;
        let series: &BackendSeries = exchange.series.as_deref().unwrap_or(shared.metrics.unrouted());
        // As on the hyper path: only an idempotent bodiless request may go again.
        let replayable = method.is_idempotent() && bodiless;
        let head_only = *method == Method::HEAD;
        let mut lost = None;
        'endpoints: for Try { address, connect, more } in tries(config, endpoints) {
            loop {
                let (mut upstream, fresh) = match shared.pool.take_socket(address) {
                    Some(upstream) => (upstream, false),
                    None => match shared.pool.connect(address, connect).await {
                        Ok(upstream) => (upstream, true),
                        Err(error) => {
                            series.connect_failed();
                            tracing::debug!(%error, %address, "upstream endpoint unreachable, trying another");
                            continue 'endpoints;
                        }
                    },
                };
                if let Err(error) = upstream.write_all(&self.request).await {
                    if fresh {
                        series.connect_failed();
                        tracing::debug!(%error, %address, "upstream endpoint failed the request, trying another");
                        continue 'endpoints;
                    }
                    // A pooled socket its server closed as it was taken: another one.
                    continue;
                }
                let close = close || shared.draining();
                let limit = config.upstream_response_timeout;
                if let Some(limit) = limit {
                    self.timer.as_mut().reset(Instant::now() + limit);
                }
                reserve(&mut self.buf);
                let head = {
                    let head = read_response_head(
                        &mut upstream,
                        &mut self.upstream_buf,
                        head_only,
                        close,
                        &mut self.response_head,
                    );
                    tokio::pin!(head);
                    // Meanwhile the client is watched (by its reactor readiness: no system call
                    // while it sends nothing): gone, the exchange is dropped and the endpoint's
                    // socket closed, as hyper does; what it sends (pipelined requests) is kept
                    // for after, up to a request's worth. A client socket not yet registered
                    // with the reactor is watched only once the endpoint has taken
                    // [`WATCH_AFTER`]: most answers come sooner, and then the connection never
                    // registers (see `ClientStream`).
                    let registered = self.client.is_registered();
                    let mut watching = registered;
                    let grace = async move {
                        if !registered {
                            tokio::time::sleep(WATCH_AFTER).await;
                        }
                    };
                    tokio::pin!(grace);
                    loop {
                        let watch = watching && self.buf.len() < config.max_header_bytes + MAX_BODY;
                        tokio::select! {
                            biased;
                            head = &mut head => break Some(head),
                            () = self.timer.as_mut(), if limit.is_some() => break None,
                            () = &mut grace, if !watching => watching = true,
                            read = self.client.read_buf(&mut self.buf), if watch => match read {
                                Ok(0) | Err(_) => return Err(RequestError::ClientLeft),
                                Ok(_) => reserve(&mut self.buf),
                            },
                        }
                    }
                };
                match head {
                    None => return Err(RequestError::UpstreamTimeout),
                    Some(Ok(response)) => return Ok((upstream, address, response)),
                    Some(Err(HeadFailure::Problem(problem))) => return Err(RequestError::BadResponse(problem)),
                    Some(Err(HeadFailure::Lost { error, answered })) => {
                        if !replayable || answered {
                            return Err(RequestError::UpstreamIo(error));
                        }
                        if more {
                            series.retried();
                            tracing::debug!(%error, %address, "upstream endpoint failed before answering, trying another");
                            lost = Some(error);
                            continue 'endpoints;
                        }
                        return Err(RequestError::UpstreamIo(error));
                    }
                }
            }
        }
        Err(lost.map_or(RequestError::ConnectFailed, RequestError::UpstreamIo))
    }

    /// Writes the response head (with the body bytes that came with it) and relays the rest of
    /// the body as the endpoint sends it; `close`: the client asked to close after it.
    async fn relay(
        &mut self,
        upstream: &mut TcpStream,
        response: ResponseHead,
        exchange: &mut Exchange,
        close: bool,
    ) -> Relayed {
        let mut chunked = ChunkedScanner::default();
        // Body bytes still to come, by length.
        let mut left = match response.framing {
            Framing::Length(len) => len,
            _ => 0,
        };
        let mut done = false;
        let mut extra = false;
        let mut first = true;
        loop {
            // What of `upstream_buf` is body.
            let take = match response.framing {
                Framing::Empty => {
                    done = true;
                    0
                }
                Framing::Length(_) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(self.upstream_buf.len());
                    left -= take as u64;
                    done = left == 0;
                    take
                }
                Framing::Chunked => match chunked.feed(&self.upstream_buf) {
                    Ok(used) => {
                        done = chunked.is_done();
                        used
                    }
                    Err(error) => {
                        tracing::debug!(%error, "upstream sent a broken chunked body");
                        return Relayed::Broken;
                    }
                },
                Framing::UntilClose => self.upstream_buf.len(),
            };
            extra |= take < self.upstream_buf.len();
            exchange.sent(take);
            // Only a client that asked to close is sent nothing after: one that did not may have
            // sent another request, unread, and a close with bytes unread resets the connection,
            // which discards what the kernel still holds.
            let last = done && close;
            let written = if first {
                first = false;
                self.response_head.extend_from_slice(&self.upstream_buf[..take]);
                self.write_client_head(last).await
            } else {
                write_all(&mut self.client, &mut self.writes, &self.upstream_buf[..take], last).await
            };
            if !written {
                return Relayed::ClientGone;
            }
            if done {
                return Relayed::Whole { reusable: !extra };
            }
            self.upstream_buf.clear();
            reserve(&mut self.upstream_buf);
            match upstream.read_buf(&mut self.upstream_buf).await {
                Ok(0) if response.framing == Framing::UntilClose => return Relayed::Whole { reusable: false },
                Ok(0) | Err(_) => {
                    tracing::debug!(address = ?upstream.peer_addr().ok(), "upstream closed inside a response body");
                    return Relayed::Broken;
                }
                Ok(_) => {}
            }
        }
    }

    /// Writes `self.response_head` to the client (`last`: the proxy closes the connection
    /// next); whether it could.
    async fn write_client_head(&mut self, last: bool) -> bool {
        write_all(&mut self.client, &mut self.writes, &self.response_head, last).await
    }
}

/// Writes `bytes` to the client, whose `writes` so far are counted; whether it could. `last`:
/// the proxy closes the connection next (so Nagle's algorithm has nothing left to delay).
async fn write_all<S: Transport>(client: &mut S, writes: &mut u8, bytes: &[u8], last: bool) -> bool {
    if *writes == 1 && !last {
        client.no_delay();
    }
    *writes = writes.saturating_add(1).min(2);
    if last {
        return client.write_last(bytes).await.is_ok();
    }
    client.write_all(bytes).await.is_ok() && client.flush().await.is_ok()
}

/// Reads until a final response head is whole (1xx heads skipped) and writes the client's
/// into `out`.
async fn read_response_head(
    upstream: &mut TcpStream,
    buf: &mut BytesMut,
    head_only: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> Result<ResponseHead, HeadFailure> {
    buf.clear();
    let mut answered = false;
    loop {
        if !buf.is_empty() {
            match heads::parse_response(buf, head_only, close, out) {
                Ok(ResponseParse::Partial) => {}
                Ok(ResponseParse::Informational(len)) => {
                    buf.advance(len);
                    continue;
                }
                Ok(ResponseParse::Response(head)) => return Ok(head),
                Err(problem) => return Err(HeadFailure::Problem(problem)),
            }
        }
        reserve(buf);
        match upstream.read_buf(buf).await {
            Ok(0) => {
                let error = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a response");
                return Err(HeadFailure::Lost { error, answered });
            }
            Ok(_) => answered = true,
            Err(error) => return Err(HeadFailure::Lost { error, answered }),
        }
    }
}

/// The marker of a request the hyper path takes.
#[derive(Debug)]
struct Handoff;
