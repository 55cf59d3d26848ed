//! Connections to backends' endpoints, kept open between requests.
//!
//! HTTP/1.1: idle connections per endpoint address, newest first (the warmest), at most
//! `max_idle_per_endpoint`, each dropped after `upstream_idle_timeout` unused. A connection goes
//! back when its response has been read to the end (the proxy's response body does that), and is
//! checked ready before reuse: one that its server closed meanwhile is dropped, and a request it
//! refused unsent goes to another. HTTP/2 (`appProtocol: kubernetes.io/h2c`): one multiplexed
//! connection per endpoint, replaced when it closes.
//!
//! The HTTP/1.1 fast path (`h1`) keeps its own idle connections, bare sockets, by the same
//! rules; as no task watches them, one is checked when taken: a socket that became readable
//! while idle (its server closed it, or sent what it should not have) is dropped.
//!
//! The maps are sharded by address behind short-held mutexes (taken to pop and push, never
//! across I/O). Every upstream socket has `TCP_NODELAY`.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::body::RequestBody;

pub(crate) type Http1Sender = http1::SendRequest<RequestBody>;
pub(crate) type Http2Sender = http2::SendRequest<RequestBody>;

/// Why no connection to an endpoint could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake failed: {0}")]
    Handshake(#[from] hyper::Error),
    #[error("the connection closed before the request was sent")]
    ClosedUnsent,
}

/// How long the pool keeps connections (each connect is given its own timeout).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSettings {
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle_per_endpoint: usize,
}

struct Idle<C> {
    connection: C,
    since: Instant,
}

const SHARDS: usize = 16;

type Shard<C> = Mutex<HashMap<SocketAddr, Vec<Idle<C>>>>;

/// Idle connections of one kind, by endpoint address, newest last.
struct IdleMap<C> {
    shards: Box<[Shard<C>]>,
    hasher: std::hash::RandomState,
}

impl<C> IdleMap<C> {
    fn new() -> Self {
        IdleMap { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), hasher: std::hash::RandomState::new() }
    }

    fn shard(&self, address: &SocketAddr) -> &Shard<C> {
        &self.shards[(self.hasher.hash_one(address) as usize) % SHARDS]
    }

    /// The newest idle connection to `address` younger than `max_age` that `usable` accepts.
    fn take(&self, address: SocketAddr, max_age: Duration, usable: impl Fn(&C) -> bool) -> Option<C> {
        let mut shard = lock(self.shard(&address));
        let idle = shard.get_mut(&address)?;
        while let Some(candidate) = idle.pop() {
            if candidate.since.elapsed() >= max_age {
                // The newest is too old: so are the others.
                idle.clear();
                break;
            }
            if usable(&candidate.connection) {
                return Some(candidate.connection);
            }
        }
        None
    }

    fn put(&self, address: SocketAddr, connection: C, max_idle: usize) {
        let mut shard = lock(self.shard(&address));
        let idle = shard.entry(address).or_default();
        if idle.len() < max_idle {
            idle.push(Idle { connection, since: Instant::now() });
        }
    }

    fn retain(&self, max_age: Duration, usable: impl Fn(&C) -> bool) {
        for shard in self.shards.iter() {
            lock(shard).retain(|_, idle| {
                idle.retain(|each| each.since.elapsed() < max_age && usable(&each.connection));
                !idle.is_empty()
            });
        }
    }

    fn clear(&self) {
        for shard in self.shards.iter() {
            lock(shard).clear();
        }
    }
}

/// Whether an idle socket is still open with nothing unread: not readable (by the readiness its
/// reactor last saw, so usually without a system call), or readable only spuriously.
fn idle_socket_usable(stream: &TcpStream) -> bool {
    let mut context = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut context) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut byte = [0u8; 1];
            matches!(stream.try_read(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
        }
    }
}

pub(crate) struct UpstreamPool {
    settings: PoolSettings,
    http1: IdleMap<Http1Sender>,
    sockets: IdleMap<TcpStream>,
    http2: Mutex<HashMap<SocketAddr, Http2Sender>>,
    http2_builder: http2::Builder<TokioExecutor>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl UpstreamPool {
    pub(crate) fn new(settings: PoolSettings) -> Self {
        let mut http2_builder = http2::Builder::new(TokioExecutor::new());
        http2_builder.timer(TokioTimer::new());
        UpstreamPool {
            settings,
            http1: IdleMap::new(),
            sockets: IdleMap::new(),
            http2: Mutex::default(),
            http2_builder,
        }
    }

    /// The most recently used idle HTTP/1.1 connection to `address` still open and fresh.
    pub(crate) fn take_http1(&self, address: SocketAddr) -> Option<Http1Sender> {
        self.http1.take(address, self.settings.idle_timeout, |sender| !sender.is_closed())
    }

    /// Keeps a connection whose exchange is over for the next request to `address`.
    pub(crate) fn put_http1(&self, address: SocketAddr, sender: Http1Sender) {
        if !sender.is_closed() {
            self.http1.put(address, sender, self.settings.max_idle_per_endpoint);
        }
    }

    /// The most recently used idle socket of the fast path to `address` still open and fresh.
    pub(crate) fn take_socket(&self, address: SocketAddr) -> Option<TcpStream> {
        self.sockets.take(address, self.settings.idle_timeout, idle_socket_usable)
    }

    /// Keeps a socket whose response was read whole for the fast path's next request to `address`.
    pub(crate) fn put_socket(&self, address: SocketAddr, stream: TcpStream) {
        self.sockets.put(address, stream, self.settings.max_idle_per_endpoint);
    }

    /// A new connection to `address` (`TCP_NODELAY`) made within `timeout`.
    pub(crate) async fn connect(&self, address: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| ConnectError::Timeout(timeout))??;
        // Without it, a request written in two segments waits for the first one's ACK.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A new HTTP/1.1 connection to `address` (upgrades allowed) made within `timeout`, its I/O
    /// driven by a task.
    pub(crate) async fn connect_http1(
        &self,
        address: SocketAddr,
        timeout: Duration,
    ) -> Result<Http1Sender, ConnectError> {
        let stream = self.connect(address, timeout).await?;
        let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, %address, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// The open HTTP/2 connection to `address`, made if there is none.
    pub(crate) async fn http2(&self, address: SocketAddr, timeout: Duration) -> Result<Http2Sender, ConnectError> {
        if let Some(sender) = lock(&self.http2).get(&address).filter(|sender| !sender.is_closed()) {
            return Ok(sender.clone());
        }
        let stream = self.connect(address, timeout).await?;
        let (sender, connection) = self.http2_builder.handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %address, "upstream HTTP/2 connection ended");
            }
        });
        lock(&self.http2).insert(address, sender.clone());
        Ok(sender)
    }

    /// Drops idle connections past their time and closed ones, and empty entries.
    pub(crate) fn sweep(&self) {
        let idle_timeout = self.settings.idle_timeout;
        self.http1.retain(idle_timeout, |sender| !sender.is_closed());
        self.sockets.retain(idle_timeout, idle_socket_usable);
        lock(&self.http2).retain(|_, sender| !sender.is_closed());
    }

    /// Closes every idle connection (on shutdown).
    pub(crate) fn clear(&self) {
        self.http1.clear();
        self.sockets.clear();
        lock(&self.http2).clear();
    }
}
