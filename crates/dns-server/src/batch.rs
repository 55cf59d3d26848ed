//! UDP requests in batches: one `recvmmsg` takes up to [`BATCH`] waiting datagrams and one
//! `sendmmsg` sends the answers made from memory, where `recv_from` and `send_to` took one each (at
//! saturation most of the server's time was system calls; Knot and NSD batch the same way).
//!
//! The system-call headers hold raw pointers, so a [`Headers`] lives only between two awaits: a
//! receive, the answers and their send happen in one synchronous stretch.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddrV4;
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams taken per system call.
pub(crate) const BATCH: usize = 32;
/// The largest request read whole (EDNS0 requests are small; a longer datagram is cut here and
/// answered FORMERR, as a request that does not decode).
pub(crate) const MAX_REQUEST: usize = 4096;

/// The headers of one receive and the send that answers it.
pub(crate) struct Headers(MultiHeaders<SockaddrIn>);

impl Headers {
    pub(crate) fn new() -> Headers {
        Headers(MultiHeaders::preallocate(BATCH, None))
    }
}

pub(crate) struct Batch {
    requests: Vec<Vec<u8>>,
    replies: Vec<Vec<u8>>,
    /// Length and sender of each datagram of the last [`Batch::receive`].
    received: Vec<(usize, SocketAddrV4)>,
    /// The datagrams with a reply to send, in order.
    answered: Vec<usize>,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch {
            requests: vec![vec![0u8; MAX_REQUEST]; BATCH],
            replies: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            received: Vec::with_capacity(BATCH),
            answered: Vec::with_capacity(BATCH),
        }
    }

    /// Takes the datagrams waiting on `socket` (at most [`BATCH`]) without blocking; how many.
    /// `WouldBlock` when there were none. Fewer than a full batch means the socket's queue is
    /// empty, so its readiness is cleared then too, as Knot waits for the next readiness after
    /// each batch and tokio clears a TCP stream's after a short read: one `recvmmsg` per batch
    /// instead of another that finds nothing (a datagram that comes meanwhile is a new event).
    pub(crate) fn receive(&mut self, socket: &UdpSocket, headers: &mut Headers) -> io::Result<usize> {
        let Batch { requests, received, answered, .. } = self;
        received.clear();
        answered.clear();
        let taken = socket.try_io(Interest::READABLE, || {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                requests.iter_mut().map(|buffer| [IoSliceMut::new(buffer)]).collect();
            let messages =
                recvmmsg(socket.as_raw_fd(), &mut headers.0, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
                    .map_err(io::Error::from)?;
            // Every datagram keeps its slot (one without a sender is given a length of zero and
            // is dropped as too short), so the first `received` addresses of the headers are the
            // kernel's: `send` relies on it.
            for message in messages {
                let from = message.address.map_or(SocketAddrV4::new([0, 0, 0, 0].into(), 0), Into::into);
                let length = if message.address.is_some() { message.bytes.min(MAX_REQUEST) } else { 0 };
                received.push((length, from));
            }
            if received.len() < BATCH {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(received.len())
        });
        match taken {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock && !received.is_empty() => Ok(received.len()),
            taken => taken,
        }
    }

    /// Datagram `i` of the last receive, its sender, and its (emptied) reply buffer.
    pub(crate) fn slot(&mut self, i: usize) -> (&[u8], SocketAddrV4, &mut Vec<u8>) {
        let (length, from) = self.received[i];
        let reply = &mut self.replies[i];
        reply.clear();
        (&self.requests[i][..length], from, reply)
    }

    /// Datagram `i`'s reply buffer holds its answer: send it.
    pub(crate) fn answer(&mut self, i: usize) {
        self.answered.push(i);
    }

    /// Datagram `i` and its reply (empty if it has none).
    pub(crate) fn exchange(&self, i: usize) -> (&[u8], Option<&[u8]>) {
        let (length, _) = self.received[i];
        let reply = self.answered.contains(&i).then(|| &self.replies[i][..]);
        (&self.requests[i][..length], reply)
    }

    /// Sends the answers in one system call, without blocking; returns those left unsent (the
    /// socket's buffer was full): reply and receiver, for the caller to send when it may wait.
    pub(crate) fn send(
        &self,
        socket: &UdpSocket,
        headers: &mut Headers,
    ) -> impl Iterator<Item = (&[u8], SocketAddrV4)> {
        let slices: Vec<[IoSlice<'_>; 1]> = self.answered.iter().map(|&i| [IoSlice::new(&self.replies[i])]).collect();
        let receivers: Vec<Option<SockaddrIn>> =
            self.answered.iter().map(|&i| Some(SockaddrIn::from(self.received[i].1))).collect();
        let sent = if slices.is_empty() {
            0
        } else {
            socket
                .try_io(Interest::WRITABLE, || {
                    let no_control: [ControlMessage<'_>; 0] = [];
                    let results = sendmmsg(
                        socket.as_raw_fd(),
                        &mut headers.0,
                        &slices,
                        &receivers,
                        no_control,
                        MsgFlags::MSG_DONTWAIT,
                    )
                    .map_err(io::Error::from)?;
                    // Counting the results reads one header address per message sent: at most
                    // `answered.len()` ≤ `received.len()`, all written by the receive.
                    Ok(results.count())
                })
                .unwrap_or(0)
        };
        self.answered[sent..].iter().map(|&i| (&self.replies[i][..], self.received[i].1))
    }
}
