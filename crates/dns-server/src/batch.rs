//! Receiving UDP requests in batches: one `recvmmsg` takes up to [`BATCH`] waiting datagrams,
//! where `recv_from` took one (at saturation most of the server's time was system calls; Knot
//! batches the same way).

use std::io::{self, IoSliceMut};
use std::net::SocketAddrV4;
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrIn};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams taken per system call.
pub(crate) const BATCH: usize = 32;
/// The largest request read whole (EDNS0 requests are small; a longer datagram is cut here and
/// answered FORMERR, as a request that does not decode).
pub(crate) const MAX_REQUEST: usize = 4096;

pub(crate) struct Batch {
    buffers: Vec<Vec<u8>>,
    /// Buffer, length and sender of each datagram of the last [`Batch::receive`].
    received: Vec<(usize, usize, SocketAddrV4)>,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch { buffers: vec![vec![0u8; MAX_REQUEST]; BATCH], received: Vec::with_capacity(BATCH) }
    }

    /// Takes the datagrams waiting on `socket` (at most [`BATCH`]) without blocking; how many.
    /// `WouldBlock` when there were none (the socket's readiness is cleared, so wait on it again).
    pub(crate) fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let Batch { buffers, received } = self;
        received.clear();
        socket.try_io(Interest::READABLE, || {
            // Made per call: the headers hold raw pointers, so they cannot be kept across an
            // await in a task that may move between threads (one small allocation per batch).
            let mut headers = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
            let mut slices: Vec<[IoSliceMut<'_>; 1]> =
                buffers.iter_mut().map(|buffer| [IoSliceMut::new(buffer)]).collect();
            let messages = recvmmsg(socket.as_raw_fd(), &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)
                .map_err(io::Error::from)?;
            for (buffer, message) in messages.enumerate() {
                if let Some(address) = message.address {
                    received.push((buffer, message.bytes.min(MAX_REQUEST), address.into()));
                }
            }
            Ok(received.len())
        })
    }

    /// Datagram `i` of the last receive and its sender.
    pub(crate) fn datagram(&self, i: usize) -> (&[u8], SocketAddrV4) {
        let (buffer, length, from) = self.received[i];
        (&self.buffers[buffer][..length], from)
    }
}
