//! Client connections as the listeners accept them: registered with the reactor only when they
//! first have to wait.
//!
//! A connection whose request is already there when it is accepted, and whose response fits
//! its send buffer, never waits on the client: most connections that carry one request and
//! close. Registering it with epoll and removing it again were two system calls and about 6% of
//! the proxy's CPU with a connection per request. So a [`ClientStream`] reads and writes its
//! socket directly (non-blocking) until a read or write would block, and only then registers
//! with the reactor, which reports the socket's state at once (edge-triggered registration
//! delivers what is already ready): no wake-up is lost between the two.
//!
//! The listener is accepted from the same way: readiness from the reactor, `accept4` with the
//! new socket non-blocking from the start. It is `TCP_DEFER_ACCEPT` (nginx's `listen … deferred`,
//! Apache's default `AcceptFilter http data`): the kernel hands a connection over once its first
//! bytes came, not at the end of its handshake. Every client of this proxy speaks first (an HTTP
//! request, HTTP/2's preface, TLS's ClientHello), so nothing waits longer; a connection is not
//! accepted, read in vain, registered with epoll, woken when its request comes and removed from
//! epoll again. With a connection per request that was nearly a third of the proxy's CPU per
//! request (the bench: 36.9 µs → 26.3 µs), and one wake-up fewer for the client's core. A
//! client that connects and says nothing is accepted after the deferral (1 s, as nginx's), and
//! its header read timeout runs from then; until then it is a request socket in the kernel,
//! which costs the proxy nothing.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

// `sockopt_impl!` names its helpers and `libc` unqualified.
use nix::sys::socket::{self, setsockopt, MsgFlags};
use nix::{getsockopt_impl, libc, setsockopt_impl, sockopt_impl};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The backlog of each listener (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// How long a connection's first bytes are waited for before it is accepted without them:
/// nginx's 1 s for `deferred` (the kernel rounds it to SYN-ACK retransmissions: one).
const DEFER_ACCEPT_SECONDS: usize = 1;

sockopt_impl!(
    /// `TCP_DEFER_ACCEPT`, which nix does not name: its own macro for such options, the same
    /// `setsockopt` of an `int` as its predefined ones.
    TcpDeferAccept,
    Both,
    libc::IPPROTO_TCP,
    libc::TCP_DEFER_ACCEPT,
    usize
);

/// A bound listener that hands out unregistered client sockets.
pub(crate) struct ClientListener(AsyncFd<std::net::TcpListener>);

impl ClientListener {
    /// Listens on `address`, deferring each connection's accept until its first bytes come.
    pub(crate) fn bind(address: SocketAddr) -> io::Result<ClientListener> {
        let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
        // A restarted proxy binds again at once, whatever its last connections' TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.bind(&address.into())?;
        setsockopt(&socket, TcpDeferAccept, &DEFER_ACCEPT_SECONDS)?;
        socket.listen(BACKLOG)?;
        ClientListener::new(socket.into())
    }

    /// Registers `listener` (non-blocking) with the reactor.
    pub(crate) fn new(listener: std::net::TcpListener) -> io::Result<ClientListener> {
        listener.set_nonblocking(true)?;
        // Deprecated in tokio 1.54 in favour of an `unsafe` registration, because an `AsRawFd`
        // need not own its descriptor; a `TcpListener` does, which is the sound case, and this
        // crate has no unsafe code.
        #[allow(deprecated)]
        let registered = AsyncFd::with_interest(listener, Interest::READABLE)?;
        Ok(ClientListener(registered))
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    /// The next connection.
    pub(crate) async fn accept(&self) -> io::Result<(ClientStream, SocketAddr)> {
        let flags = nix::libc::SOCK_NONBLOCK | nix::libc::SOCK_CLOEXEC;
        loop {
            let mut ready = self.0.readable().await?;
            if let Ok(accepted) = ready.try_io(|listener| SockRef::from(listener.get_ref()).accept4(flags)) {
                let (socket, address) = accepted?;
                let address = address
                    .as_socket()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a TCP peer without an IP address"))?;
                return Ok((ClientStream::new(socket.into()), address));
            }
        }
    }
}

/// A client's TCP connection; see the module's documentation.
#[derive(Debug)]
pub(crate) struct ClientStream {
    /// Until the first read or write that would block.
    raw: Option<std::net::TcpStream>,
    /// After it.
    registered: Option<TcpStream>,
}

impl ClientStream {
    /// `socket`, non-blocking and not yet registered.
    pub(crate) fn new(socket: std::net::TcpStream) -> ClientStream {
        ClientStream { raw: Some(socket), registered: None }
    }

    /// Whether the reactor watches the socket (so waiting on it costs no system call more).
    pub(crate) fn is_registered(&self) -> bool {
        self.registered.is_some()
    }

    pub(crate) fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match (&self.raw, &self.registered) {
            (Some(raw), _) => raw.set_nodelay(on),
            (_, Some(registered)) => registered.set_nodelay(on),
            (None, None) => Err(gone()),
        }
    }

    /// The registered socket, registering it first if it is not yet.
    fn registered(&mut self) -> io::Result<&mut TcpStream> {
        if let Some(raw) = self.raw.take() {
            self.registered = Some(TcpStream::from_std(raw)?);
        }
        self.registered.as_mut().ok_or_else(gone)
    }

    /// Writes the connection's last bytes with `MSG_MORE`: the kernel holds them until the
    /// close, whose FIN then leaves in the same segment.
    pub(crate) async fn write_last(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        // nix names no MSG_MORE.
        let flags = MsgFlags::from_bits_retain(nix::libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL;
        while !bytes.is_empty() {
            match on_raw(&self.raw, |raw| Ok(socket::send(raw.as_raw_fd(), bytes, flags)?)) {
                Some(sent) => bytes = &bytes[sent?..],
                None => break,
            }
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let stream = self.registered()?;
        let fd = stream.as_raw_fd();
        while !bytes.is_empty() {
            let sent = stream.async_io(Interest::WRITABLE, || Ok(socket::send(fd, bytes, flags)?)).await?;
            bytes = &bytes[sent..];
        }
        Ok(())
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the client socket could not be registered")
}

/// Runs `io` on the raw socket while there is one: `Some` with its result unless it would
/// block (then the socket is to be registered).
fn on_raw<T>(
    raw: &Option<std::net::TcpStream>,
    mut io: impl FnMut(&std::net::TcpStream) -> io::Result<T>,
) -> Option<io::Result<T>> {
    let raw = raw.as_ref()?;
    loop {
        match io(raw) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return None,
            result => return Some(result),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(read) = on_raw(&this.raw, |mut raw| raw.read(buf.initialize_unfilled())) {
            return Poll::Ready(read.map(|n| buf.advance(n)));
        }
        Pin::new(this.registered()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(written) = on_raw(&this.raw, |mut raw| raw.write(bytes)) {
            return Poll::Ready(written);
        }
        Pin::new(this.registered()?).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(written) = on_raw(&this.raw, |mut raw| raw.write_vectored(bufs)) {
            return Poll::Ready(written);
        }
        Pin::new(this.registered()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // TCP keeps no buffer of its own here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match (&this.raw, &mut this.registered) {
            (Some(raw), _) => Poll::Ready(raw.shutdown(std::net::Shutdown::Write)),
            (_, Some(registered)) => Pin::new(registered).poll_shutdown(cx),
            (None, None) => Poll::Ready(Err(gone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A listener's accepted connection and the client's end (std, non-blocking).
    async fn pair() -> (ClientStream, std::net::TcpStream) {
        let listener = ClientListener::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let (accepted, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        (accepted, client)
    }

    fn try_read(client: &mut std::net::TcpStream) -> Option<Vec<u8>> {
        let mut buf = [0u8; 64];
        match client.read(&mut buf) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => None,
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn a_connection_is_accepted_once_its_first_bytes_came() {
        let listener = ClientListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let silent = std::net::TcpStream::connect(address).unwrap();
        let mut speaking = std::net::TcpStream::connect(address).unwrap();
        speaking.write_all(b"GET").unwrap();
        let patience = Duration::from_secs(10);
        // The silent client connected first; the one that spoke is accepted first.
        let (mut accepted, peer) = tokio::time::timeout(patience, listener.accept()).await.unwrap().unwrap();
        assert_eq!(peer, speaking.local_addr().unwrap());
        let mut buf = [0u8; 8];
        let n = accepted.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET");
        assert!(!accepted.is_registered(), "its bytes were there when it was accepted");
        // The silent one is accepted all the same once the deferral is over.
        let started = Instant::now();
        let (_, peer) = tokio::time::timeout(patience, listener.accept()).await.unwrap().unwrap();
        assert_eq!(peer, silent.local_addr().unwrap());
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn what_is_there_is_read_and_answered_without_registering() {
        let (mut server, mut client) = pair().await;
        client.write_all(b"request").unwrap();
        let mut buf = [0u8; 16];
        // Over loopback the bytes are there once the write returns.
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"request");
        server.write_all(b"answer").await.unwrap();
        assert!(!server.is_registered());
        let deadline = Instant::now() + Duration::from_secs(10);
        while try_read(&mut client).is_none() {
            assert!(Instant::now() < deadline, "the answer never arrived");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_read_that_would_wait_registers_and_is_woken_by_what_comes() {
        let (mut server, mut client) = pair().await;
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let n = server.read(&mut buf).await.unwrap();
            (buf[..n].to_vec(), server.is_registered())
        });
        tokio::task::yield_now().await;
        client.write_all(b"later").unwrap();
        let (read, registered) = tokio::time::timeout(Duration::from_secs(10), reading).await.unwrap().unwrap();
        assert_eq!(read, b"later");
        assert!(registered);
    }

    #[tokio::test]
    async fn a_write_that_would_wait_registers_and_goes_on_as_the_client_reads() {
        let (mut server, client) = pair().await;
        // More than the socket buffers hold.
        let big = vec![7u8; 16 << 20];
        let reader = std::thread::spawn(move || {
            let mut client = client;
            client.set_nonblocking(false).unwrap();
            let mut all = Vec::new();
            client.read_to_end(&mut all).unwrap();
            all.len()
        });
        server.write_all(&big).await.unwrap();
        assert!(server.is_registered());
        server.write_last(b"end").await.unwrap();
        drop(server);
        assert_eq!(reader.join().unwrap(), big.len() + 3);
    }

    #[tokio::test]
    async fn the_last_bytes_are_held_until_the_close_and_leave_with_it() {
        let (mut held, mut held_client) = pair().await;
        let (mut plain, mut plain_client) = pair().await;
        held.write_last(b"last").await.unwrap();
        // Sent after the held bytes, over the same loopback: once they arrive, the held bytes
        // would have too, had they left.
        plain.write_all(b"plain").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let plain_came = loop {
            if let Some(bytes) = try_read(&mut plain_client) {
                break bytes;
            }
            assert!(Instant::now() < deadline, "a plain write never arrived");
            tokio::task::yield_now().await;
        };
        assert_eq!(plain_came, b"plain");
        assert_eq!(try_read(&mut held_client), None, "the last bytes left before the close");
        // The close sends them, its FIN with them: the client reads them, then the end.
        drop(held);
        held_client.set_nonblocking(false).unwrap();
        let mut all = Vec::new();
        held_client.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"last");
    }
}
