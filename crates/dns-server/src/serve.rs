//! The sockets: UDP and TCP on port 53 of the node address. Each request is answered from the
//! index current when it arrived; a name outside the cluster is forwarded to the upstreams
//! (the first that answers within the timeout) and its answer relayed unchanged.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use frontdoor_dns::{answer_into, complete_chase, ClusterIndex, Outcome, Transport};
use frontdoor_informers::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::metrics::{DnsMetrics, Served};
use crate::DnsError;

/// How long one upstream gets to answer a forwarded request.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may stay idle between requests.
const TCP_IDLE: Duration = Duration::from_secs(10);

pub struct Server {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    shared: Arc<Shared>,
}

/// What every request needs.
struct Shared {
    index: Arc<ArcSwap<ClusterIndex>>,
    upstreams: Vec<SocketAddr>,
    metrics: DnsMetrics,
}

impl Shared {
    /// What a request gets: the bytes to send back, or nothing; recorded in the metrics.
    async fn respond(&self, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let started = std::time::Instant::now();
        let index = self.index.load_full();
        let mut out = Vec::new();
        let (response, forwarded) = match answer_into(&index, request, transport, &mut out) {
            Outcome::Reply => (Some(out), false),
            Outcome::Drop => return None,
            Outcome::Chase { max_size, .. } => (Some(complete_chase(&out, None, max_size)), false),
            Outcome::Forward => (forward(request, &self.upstreams).await, true),
        };
        self.metrics.record(&Served {
            request,
            response: response.as_deref(),
            tcp: transport == Transport::Tcp,
            forwarded,
            seconds: started.elapsed().as_secs_f64(),
        });
        response
    }
}

/// Sends `request` to each upstream in turn until one answers.
async fn forward(request: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let bind: SocketAddr =
            if upstream.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { "[::]:0".parse().ok()? };
        let Ok(socket) = UdpSocket::bind(bind).await else { continue };
        if socket.send_to(request, upstream).await.is_err() {
            continue;
        }
        let mut buffer = vec![0u8; 65_535];
        if let Ok(Ok((length, from))) = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv_from(&mut buffer)).await {
            if from == *upstream {
                buffer.truncate(length);
                return Some(buffer);
            }
        }
    }
    None
}

impl Server {
    pub async fn bind(
        address: Ipv4Addr,
        index: Arc<ArcSwap<ClusterIndex>>,
        upstreams: Vec<SocketAddr>,
        metrics: DnsMetrics,
    ) -> Result<Server, DnsError> {
        let address = SocketAddr::from((address, 53));
        let listen = |source| DnsError::Listen { address, source };
        let udp = UdpSocket::bind(address).await.map_err(listen)?;
        let tcp = TcpListener::bind(address).await.map_err(listen)?;
        Ok(Server { udp: Arc::new(udp), tcp, shared: Arc::new(Shared { index, upstreams, metrics }) })
    }

    pub async fn run(self, shutdown: Shutdown) {
        let stop = shutdown.triggered();
        tokio::pin!(stop);
        let mut buffer = vec![0u8; 65_535];
        loop {
            tokio::select! {
                () = &mut stop => return,
                received = self.udp.recv_from(&mut buffer) => {
                    let Ok((length, client)) = received else { continue };
                    let request = buffer[..length].to_vec();
                    let (udp, shared) = (self.udp.clone(), self.shared.clone());
                    // Cluster names are answered at once; a forwarded one must not hold up the rest.
                    tokio::spawn(async move {
                        if let Some(response) = shared.respond(&request, Transport::Udp).await {
                            let _ = udp.send_to(&response, client).await;
                        }
                    });
                }
                accepted = self.tcp.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    tokio::spawn(serve_tcp(stream, self.shared.clone()));
                }
            }
        }
    }
}

/// One TCP client: length-prefixed requests, answered in order, until it goes or idles.
async fn serve_tcp(mut stream: TcpStream, shared: Arc<Shared>) {
    loop {
        let mut length = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut request)).await.map_or(true, |r| r.is_err()) {
            return;
        }
        let Some(response) = shared.respond(&request, Transport::Tcp).await else { return };
        let Ok(length) = u16::try_from(response.len()) else { return };
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(&response);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
