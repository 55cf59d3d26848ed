//! Connections to backends' endpoints, kept open between requests.
//!
//! HTTP/1.1: idle connections per endpoint address, newest first (the warmest), at most
//! `max_idle_per_endpoint`, each dropped after `upstream_idle_timeout` unused. A connection goes
//! back when its response has been read to the end (the proxy's response body does that), and is
//! checked ready before reuse: one that its server closed meanwhile is dropped, and a request it
//! refused unsent goes to another. HTTP/2 (`appProtocol: kubernetes.io/h2c`): one multiplexed
//! connection per endpoint, replaced when it closes.
//!
//! The maps are sharded by address behind short-held mutexes (taken to pop and push, never
//! across I/O). Every upstream socket has `TCP_NODELAY`.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
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

struct Idle {
    sender: Http1Sender,
    since: Instant,
}

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<SocketAddr, Vec<Idle>>>;

pub(crate) struct UpstreamPool {
    settings: PoolSettings,
    http1: Box<[Shard]>,
    http2: Mutex<HashMap<SocketAddr, Http2Sender>>,
    hasher: std::hash::RandomState,
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
            http1: (0..SHARDS).map(|_| Mutex::default()).collect(),
            http2: Mutex::default(),
            hasher: std::hash::RandomState::new(),
            http2_builder,
        }
    }

    fn shard(&self, address: &SocketAddr) -> &Shard {
        &self.http1[(self.hasher.hash_one(address) as usize) % SHARDS]
    }

    /// The most recently used idle HTTP/1.1 connection to `address` still open and fresh.
    pub(crate) fn take_http1(&self, address: SocketAddr) -> Option<Http1Sender> {
        let mut shard = lock(self.shard(&address));
        let idle = shard.get_mut(&address)?;
        while let Some(candidate) = idle.pop() {
            if candidate.since.elapsed() >= self.settings.idle_timeout {
                // The newest is too old: so are the others.
                idle.clear();
                break;
            }
            if !candidate.sender.is_closed() {
                return Some(candidate.sender);
            }
        }
        None
    }

    /// Keeps a connection whose exchange is over for the next request to `address`.
    pub(crate) fn put_http1(&self, address: SocketAddr, sender: Http1Sender) {
        if sender.is_closed() {
            return;
        }
        let mut shard = lock(self.shard(&address));
        let idle = shard.entry(address).or_default();
        if idle.len() < self.settings.max_idle_per_endpoint {
            idle.push(Idle { sender, since: Instant::now() });
        }
    }

    async fn connect(&self, address: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
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
        for shard in self.http1.iter() {
            lock(shard).retain(|_, idle| {
                idle.retain(|each| each.since.elapsed() < idle_timeout && !each.sender.is_closed());
                !idle.is_empty()
            });
        }
        lock(&self.http2).retain(|_, sender| !sender.is_closed());
    }

    /// Closes every idle connection (on shutdown).
    pub(crate) fn clear(&self) {
        for shard in self.http1.iter() {
            lock(shard).clear();
        }
        lock(&self.http2).clear();
    }
}
