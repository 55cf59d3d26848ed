//! The sockets: UDP and TCP on port 53 of an address (the node's; the cluster DNS address too,
//! when the node made it its own), one server each, sharing the index, cache and metrics.
//!
//! UDP requests are taken in batches (`recvmmsg`) on a thread of their own. A request is answered
//! from the index current when it arrived, on that thread, and the batch's answers sent together
//! (`sendmmsg`); only a name outside the cluster (or an ExternalName's target) waits on an
//! upstream, in a task of its own on the runtime. Forwarded answers go through the cache first;
//! the upstreams are tried in turn (UDP, then TCP when a TCP client's answer came back
//! truncated); when none answers the client gets SERVFAIL (kept a few seconds). Clients outside
//! the served ranges (the node's own addresses, loopback, the pod ranges) get REFUSED: the server
//! is not an open resolver.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use frontdoor_dns::{
    answer_into, complete_chase, reply_with_rcode, Cidr, ClusterIndex, ForwardCache, Outcome, Transport,
};
use frontdoor_informers::Shutdown;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use nix::sys::socket::{setsockopt, sockopt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::runtime::Handle;

use crate::batch::{self, Batch, BATCH};
use crate::metrics::{DnsMetrics, Path, Served};
use crate::DnsError;

/// How long one upstream gets to answer a forwarded request.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may stay idle between requests.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How long whether an address is the node's is remembered, and for how many addresses.
const LOCAL_FOR_MS: u64 = 5_000;
const LOCAL_REMEMBERED: usize = 1024;
/// How many ExternalName hops inside the cluster a chase follows.
const MAX_CHASE: usize = 8;
/// How long the UDP thread may wait for room to send; and how long it waits after a receive
/// failed for a reason other than the socket's (not expected: a pause, not a spin).
const UDP_WAIT: Duration = Duration::from_millis(100);

/// The UDP socket's receive buffer (the kernel doubles it for its bookkeeping): requests that
/// arrive while the UDP thread does not run (a burst, a moment it is descheduled) wait here
/// rather than being dropped, and a dropped query costs a stub resolver its whole timeout (5 s
/// for glibc's). The usual default (`rmem_default`, 208 KiB) holds about 200 small datagrams:
/// 4 ms at 55,000 queries/s, which a pause of the machine exceeded in the benchmark.
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

const RCODE_SERVFAIL: u8 = 2;
const RCODE_REFUSED: u8 = 5;

/// The UDP socket at `address`: writes that wait at most [`UDP_WAIT`], room for a burst.
fn udp_socket(address: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let udp = std::net::UdpSocket::bind(address)?;
    // The UDP thread waits in its receive for as long as no request comes (it is woken to stop
    // by shutting the socket's reading side), but not in a send for long.
    udp.set_write_timeout(Some(UDP_WAIT))?;
    // Beyond `rmem_max` if the process may (CAP_NET_ADMIN), else up to it.
    if setsockopt(&udp, sockopt::RcvBufForce, &UDP_RECEIVE_BUFFER).is_err() {
        if let Err(error) = setsockopt(&udp, sockopt::RcvBuf, &UDP_RECEIVE_BUFFER) {
            tracing::debug!(%error, "cluster DNS: the UDP receive buffer keeps its default size");
        }
    }
    Ok(udp)
}

pub struct Server {
    udp: Arc<std::net::UdpSocket>,
    tcp: TcpListener,
    shared: Arc<Shared>,
}

/// What every request needs.
pub(crate) struct Shared {
    pub(crate) index: Arc<ArcSwap<ClusterIndex>>,
    pub(crate) upstreams: Vec<SocketAddr>,
    pub(crate) metrics: DnsMetrics,
    pub(crate) cache: ForwardCache,
    /// Clients served besides the node's own addresses.
    pub(crate) allowed: Vec<Cidr>,
    /// The cache's clock.
    pub(crate) epoch: Instant,
    /// Whether an address is this machine's, as last found (and when, in `now_ms`): a client
    /// that is neither loopback nor in the allowed ranges is looked up here before a bind is
    /// tried, so a node address asking again costs no system calls.
    pub(crate) local: std::sync::Mutex<HashMap<IpAddr, (bool, u64)>>,
}

/// What answering from memory left to do.
enum Step {
    /// `out` holds the response.
    Send,
    /// Nothing to send.
    Drop,
    /// Ask the upstreams (after the cache).
    Forward { max_size: usize },
    /// `out` holds the CNAME; resolve `target` and append its answers.
    Chase { target: Name, qtype: RecordType, max_size: usize },
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Loopback, the served ranges, or an address of this machine (a bind to it succeeds).
    fn serves(&self, client: IpAddr) -> bool {
        client.is_loopback() || self.allowed.iter().any(|cidr| cidr.contains(client)) || self.is_local(client)
    }

    /// Whether `address` is this machine's: a bind to it succeeds. Remembered for
    /// [`LOCAL_FOR_MS`] (addresses come and go rarely), for at most [`LOCAL_REMEMBERED`] addresses.
    fn is_local(&self, address: IpAddr) -> bool {
        let now = self.now_ms();
        let mut local = self.local.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&(known, at)) = local.get(&address) {
            if now.saturating_sub(at) < LOCAL_FOR_MS {
                return known;
            }
        }
        let known = std::net::UdpSocket::bind((address, 0)).is_ok();
        if local.len() >= LOCAL_REMEMBERED {
            local.retain(|_, (_, at)| now.saturating_sub(*at) < LOCAL_FOR_MS);
            if local.len() >= LOCAL_REMEMBERED {
                local.clear();
            }
        }
        local.insert(address, (known, now));
        known
    }

    /// Answers `request` from memory if it can: the index, the cache, or a refusal.
    fn answer_now(&self, request: &[u8], transport: Transport, client: IpAddr, out: &mut Vec<u8>) -> (Step, Path) {
        if !self.serves(client) {
            let step = if reply_with_rcode(request, RCODE_REFUSED, out) { Step::Send } else { Step::Drop };
            return (step, Path::Refused);
        }
        let index = self.index.load();
        match answer_into(&index, request, transport, out) {
            Outcome::Reply => (Step::Send, Path::Cluster),
            Outcome::Drop => (Step::Drop, Path::Cluster),
            Outcome::Chase { target, qtype, max_size } => {
                (Step::Chase { target: target.clone(), qtype, max_size }, Path::Cluster)
            }
            Outcome::Forward { max_size } if self.cached(request, max_size, out) => (Step::Send, Path::Forwarded),
            Outcome::Forward { max_size } => (Step::Forward { max_size }, Path::Forwarded),
        }
    }

    /// Writes the cached answer to `request` into `out`, if there is one; counted either way.
    fn cached(&self, request: &[u8], max_size: usize, out: &mut Vec<u8>) -> bool {
        let hit = self.cache.get(request, self.now_ms(), max_size, out);
        match hit {
            Some(kind) => self.metrics.cache_hit(kind),
            None => self.metrics.cache_miss(),
        }
        hit.is_some()
    }

    /// Keeps `answer` to `request` in the cache (if it may be kept).
    fn store(&self, request: &[u8], answer: &[u8]) {
        let stored = self.cache.insert(request, answer, self.now_ms());
        self.metrics.cache_stored(stored, self.cache.len());
    }

    /// The whole answer to one request, recorded in the metrics; `None`: send nothing.
    async fn respond(&self, request: &[u8], transport: Transport, client: IpAddr) -> Option<Vec<u8>> {
        let started = Instant::now();
        let mut out = Vec::new();
        let (step, path) = self.answer_now(request, transport, client, &mut out);
        let response = self.finish(step, request, transport, out).await;
        self.record(request, response.as_deref(), transport, path, started.elapsed());
        response
    }

    /// Completes what `answer_now` left.
    async fn finish(&self, step: Step, request: &[u8], transport: Transport, out: Vec<u8>) -> Option<Vec<u8>> {
        match step {
            Step::Send => Some(out),
            Step::Drop => None,
            Step::Forward { max_size } => Some(self.forward(request, transport, max_size).await),
            Step::Chase { target, qtype, max_size } => {
                let upstream = self.resolve(target, qtype).await;
                Some(complete_chase(&out, upstream.as_deref(), max_size))
            }
        }
    }

    /// Counts one request and its answer, `took` from its arrival to its answer.
    fn record(&self, request: &[u8], response: Option<&[u8]>, transport: Transport, path: Path, took: Duration) {
        self.metrics.record(&Served {
            request,
            response,
            tcp: transport == Transport::Tcp,
            path,
            seconds: took.as_secs_f64(),
        });
    }

    /// Sends a request the cache missed to the upstreams; stores what comes back. SERVFAIL when
    /// none answers; an answer larger than `max_size` goes back as its header and question with
    /// TC set, so the client asks again over TCP.
    async fn forward(&self, request: &[u8], transport: Transport, max_size: usize) -> Vec<u8> {
        for upstream in &self.upstreams {
            let mut answer = exchange_udp(request, *upstream).await;
            let truncated = answer.as_ref().is_some_and(|a| a.get(2).is_some_and(|f| f & 0x02 != 0));
            if transport == Transport::Tcp && (truncated || answer.is_none()) {
                answer = exchange_tcp(request, *upstream).await.or(answer);
            }
            if let Some(answer) = answer {
                self.store(request, &answer);
                if answer.len() > max_size {
                    let mut out = Vec::new();
                    reply_with_rcode(request, answer[3] & 0x0f, &mut out);
                    out[2] |= 0x02;
                    return out;
                }
                return answer;
            }
        }
        // Kept a few seconds, as CoreDNS's cache keeps a SERVFAIL: a dead upstream is not asked
        // again (and waited for) on every query.
        let mut out = Vec::new();
        reply_with_rcode(request, RCODE_SERVFAIL, &mut out);
        self.store(request, &out);
        out
    }

    /// Resolves an ExternalName's target, as CoreDNS's `Upstream.Lookup` does: through this
    /// server (a target in the cluster is answered from the index), else the upstreams.
    async fn resolve(&self, mut target: Name, qtype: RecordType) -> Option<Vec<u8>> {
        for _ in 0..MAX_CHASE {
            let query = lookup_query(&target, qtype)?;
            let index = self.index.load_full();
            let mut out = Vec::new();
            match answer_into(&index, &query, Transport::Tcp, &mut out) {
                Outcome::Reply => return Some(out),
                Outcome::Drop => return None,
                Outcome::Forward { max_size } if self.cached(&query, max_size, &mut out) => return Some(out),
                Outcome::Forward { max_size } => return Some(self.forward(&query, Transport::Tcp, max_size).await),
                // Another ExternalName: its own target's answers come after its CNAME.
                Outcome::Chase { target: next, .. } => target = next.clone(),
            }
        }
        None
    }
}

/// A recursive query for `name`/`qtype` with an EDNS0 buffer of 1232.
fn lookup_query(name: &Name, qtype: RecordType) -> Option<Vec<u8>> {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.set_edns(edns);
    message.to_vec().ok()
}

/// Whether `answer` is the upstream's response to `request`: QR set, the same ID.
fn answers(request: &[u8], answer: &[u8]) -> bool {
    answer.len() >= 12 && answer[2] & 0x80 != 0 && answer[..2] == request[..2]
}

/// One UDP exchange from a fresh socket (a random source port per request).
async fn exchange_udp(request: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(request).await.ok()?;
    let mut buffer = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let length = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await.ok()?.ok()?;
        // Anything else on this port (a late or forged datagram) is ignored.
        if answers(request, &buffer[..length]) {
            buffer.truncate(length);
            return Some(buffer);
        }
    }
}

/// One TCP exchange.
async fn exchange_tcp(request: &[u8], upstream: SocketAddr) -> Option<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(upstream).await.ok()?;
        write_message(&mut stream, request).await?;
        let answer = read_message(&mut stream).await?;
        answers(request, &answer).then_some(answer)
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await.ok()?
}

/// One DNS message over TCP: its length, then its bytes (RFC 7766).
async fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await.ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message).await.ok()?;
    Some(message)
}

/// Writes one DNS message over TCP, framed as [`read_message`] reads it; `None` if it is too
/// long to frame or the write fails.
async fn write_message(stream: &mut TcpStream, message: &[u8]) -> Option<()> {
    let mut framed = u16::try_from(message.len()).ok()?.to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).await.ok()
}

impl Server {
    pub(crate) async fn bind(address: Ipv4Addr, shared: Arc<Shared>) -> Result<Server, DnsError> {
        let address = SocketAddr::from((address, 53));
        let listen = |source| DnsError::Listen { address, source };
        let udp = udp_socket(address).map_err(listen)?;
        let tcp = TcpListener::bind(address).await.map_err(listen)?;
        Ok(Server { udp: Arc::new(udp), tcp, shared })
    }

    /// Serves until `shutdown`: UDP on a thread of its own (a query is never queued behind the
    /// runtime's other tasks: the API server's, the controllers', a TCP client's), TCP clients
    /// as tasks.
    pub async fn run(self, shutdown: Shutdown) {
        let Server { udp, tcp, shared } = self;
        let stopping = Arc::new(AtomicBool::new(false));
        let (ended, udp_ended) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let (udp, shared, stopping) = (udp.clone(), shared.clone(), stopping.clone());
            let runtime = tokio::runtime::Handle::current();
            std::thread::Builder::new().name("dns-udp".into()).spawn(move || {
                serve_udp(&udp, &shared, &runtime, &stopping);
                let _ = ended.send(());
            })
        };
        if let Err(error) = thread {
            tracing::error!(%error, "cluster DNS: no thread for UDP, serving TCP only");
        }
        let stop = shutdown.triggered();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                accepted = tcp.accept() => {
                    let Ok((stream, client)) = accepted else { continue };
                    tokio::spawn(serve_tcp(stream, client.ip(), shared.clone()));
                }
            }
        }
        stopping.store(true, Ordering::Relaxed);
        // Wakes the receive the thread waits in (it returns at once from then on), so the thread
        // sees `stopping`: an idle server is never woken just to look. Linux does this for an
        // unconnected socket too, though it reports ENOTCONN.
        let _ = nix::sys::socket::shutdown(udp.as_raw_fd(), nix::sys::socket::Shutdown::Read);
        // The thread's end drops the sender if it never started.
        if tokio::time::timeout(UDP_WAIT * 10, udp_ended).await.is_err() {
            tracing::warn!("cluster DNS: the UDP thread did not stop");
        }
    }
}

/// The UDP thread: a batch of requests taken, those memory answers answered and sent together,
/// the rest handed to tasks on `runtime`; until `stopping`.
fn serve_udp(udp: &Arc<std::net::UdpSocket>, shared: &Arc<Shared>, runtime: &Handle, stopping: &AtomicBool) {
    let mut batch = Batch::new();
    loop {
        let received = batch.receive(udp);
        // Stopping shuts the socket's reading side, which is what woke the receive then.
        if stopping.load(Ordering::Relaxed) {
            return;
        }
        let count = match received {
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                // Not expected of a bound UDP socket; not a reason to spin either.
                tracing::warn!(%error, "cluster DNS: UDP receive failed");
                std::thread::sleep(UDP_WAIT);
                continue;
            }
        };
        let started = Instant::now();
        let paths = answer_batch(udp, shared, runtime, &mut batch, count, started);
        batch.send(udp);
        // The batch's answers went together: one clock reading serves them all.
        let took = started.elapsed();
        for (i, path) in paths.into_iter().enumerate().take(count) {
            let Some(path) = path else { continue };
            let (request, reply) = batch.exchange(i);
            shared.record(request, reply, Transport::Udp, path, took);
        }
    }
}

/// Answers the `count` datagrams of `batch` that memory can answer (their replies are left in
/// the batch to be sent together) and hands the others to tasks of their own, so the socket
/// keeps serving. The path of each one answered here, to record once the batch is sent.
fn answer_batch(
    udp: &Arc<std::net::UdpSocket>,
    shared: &Arc<Shared>,
    runtime: &Handle,
    batch: &mut Batch,
    count: usize,
    started: Instant,
) -> [Option<Path>; BATCH] {
    let mut paths = [None; BATCH];
    for (i, recorded) in paths.iter_mut().enumerate().take(count) {
        let (request, client, reply) = batch.slot(i);
        let (step, path) = shared.answer_now(request, Transport::Udp, IpAddr::V4(*client.ip()), reply);
        match step {
            Step::Send => {
                batch.answer(i);
                *recorded = Some(path);
            }
            Step::Drop => *recorded = Some(path),
            step => {
                let (udp, shared, request, out) =
                    (udp.clone(), shared.clone(), request.to_vec(), std::mem::take(reply));
                runtime.spawn(async move {
                    let response = shared.finish(step, &request, Transport::Udp, out).await;
                    if let Some(response) = &response {
                        batch::send_now(&udp, response, client);
                    }
                    shared.record(&request, response.as_deref(), Transport::Udp, path, started.elapsed());
                });
            }
        }
    }
    paths
}

/// One TCP client: length-prefixed requests, answered in order, until it goes or idles.
async fn serve_tcp(mut stream: TcpStream, client: IpAddr, shared: Arc<Shared>) {
    while let Ok(Some(request)) = tokio::time::timeout(TCP_IDLE, read_message(&mut stream)).await {
        let Some(response) = shared.respond(&request, Transport::Tcp, client).await else { return };
        if write_message(&mut stream, &response).await.is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    #[test]
    fn a_burst_the_server_has_not_read_yet_waits_whole_in_its_socket() {
        const BURST: usize = 2_000;
        let server = super::udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        // A query's size (a question for a Service's name).
        let datagram = [0u8; 48];
        for _ in 0..BURST {
            client.send_to(&datagram, server.local_addr().unwrap()).unwrap();
        }
        server.set_nonblocking(true).unwrap();
        let mut received = 0;
        let mut buf = [0u8; 512];
        while server.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        assert_eq!(received, BURST, "datagrams dropped by a full receive buffer");
    }
}
