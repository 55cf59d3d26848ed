//! UDP requests in batches, on a thread of their own: one blocking `recvmmsg` waits for the first
//! datagram and takes every other one waiting (up to [`BATCH`]), and one `sendmmsg` sends the
//! answers made from memory. Where `recv_from` and `send_to` took one each, and a reactor's wait
//! came before each receive, a busy server now makes two system calls a batch and an idle one two
//! a datagram (Knot and NSD batch the same way).
//!
//! The system-call headers are made afresh for each receive: nix's `sendmmsg` points them at the
//! receivers it was given, which are gone once it returns, and its `recvmmsg` does not point them
//! back, so headers used for a send would have the next receive write its senders' addresses
//! where nothing reads them.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmmsg, sendmmsg, sendto, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn};

/// Datagrams taken per system call.
pub(crate) const BATCH: usize = 32;
/// The largest request read whole (EDNS0 requests are small; a longer datagram is cut here and
/// answered FORMERR, as a request that does not decode).
pub(crate) const MAX_REQUEST: usize = 4096;

pub(crate) struct Batch {
    requests: Vec<Vec<u8>>,
    replies: Vec<Vec<u8>>,
    /// Length and sender of each datagram of the last [`Batch::receive`].
    received: Vec<(usize, SocketAddrV4)>,
    /// The datagrams with a reply to send, in order.
    answered: Vec<usize>,
    /// The headers of the last receive, which the send that answers it uses too.
    headers: MultiHeaders<SockaddrIn>,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch {
            requests: vec![vec![0u8; MAX_REQUEST]; BATCH],
            replies: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            received: Vec::with_capacity(BATCH),
            answered: Vec::with_capacity(BATCH),
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Waits for a datagram on `socket` (a blocking one: as long as its read timeout, if it has
    /// one, then `WouldBlock`; a socket whose reading side is shut returns at once, with one
    /// empty slot) and takes it with those already waiting behind it, at most [`BATCH`]; how many.
    pub(crate) fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let Batch { requests, received, answered, headers, .. } = self;
        received.clear();
        answered.clear();
        *headers = MultiHeaders::preallocate(BATCH, None);
        let mut slices: Vec<[IoSliceMut<'_>; 1]> =
            requests.iter_mut().map(|buffer| [IoSliceMut::new(buffer)]).collect();
        // MSG_WAITFORONE: the first datagram is waited for, the rest only taken if there.
        let messages = recvmmsg(socket.as_raw_fd(), headers, slices.iter_mut(), MsgFlags::MSG_WAITFORONE, None)
            .map_err(io::Error::from)?;
        // Every datagram keeps its slot (one without a sender is given a length of zero and is
        // dropped as too short), so the first `received` addresses of the headers are the
        // kernel's: `send` relies on it.
        for message in messages {
            let from = message.address.map_or(SocketAddrV4::new([0, 0, 0, 0].into(), 0), Into::into);
            let length = if message.address.is_some() { message.bytes.min(MAX_REQUEST) } else { 0 };
            received.push((length, from));
        }
        Ok(received.len())
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

    /// Sends the answers, as few system calls as the socket's buffer allows (a blocking socket:
    /// a full buffer is waited for, up to its write timeout; answers still unsent then are
    /// dropped, as a full buffer drops a datagram, and the clients ask again). How many were sent.
    pub(crate) fn send(&mut self, socket: &UdpSocket) -> usize {
        let Batch { replies, received, answered, headers, .. } = self;
        let mut sent = 0;
        while sent < answered.len() {
            let rest = &answered[sent..];
            let slices: Vec<[IoSlice<'_>; 1]> = rest.iter().map(|&i| [IoSlice::new(&replies[i])]).collect();
            let receivers: Vec<Option<SockaddrIn>> =
                rest.iter().map(|&i| Some(SockaddrIn::from(received[i].1))).collect();
            let no_control: [ControlMessage<'_>; 0] = [];
            match sendmmsg(socket.as_raw_fd(), headers, &slices, &receivers, no_control, MsgFlags::empty()) {
                // Counting the results reads one header address per message sent: at most
                // `rest.len()` ≤ `received.len()`, all written by the receive.
                Ok(results) => match results.count() {
                    0 => break,
                    n => sent += n,
                },
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        sent
    }
}

/// Sends one datagram on `socket` without waiting for room in its buffer (an answer that had to
/// wait on an upstream, sent from the runtime, which must not block); with no room it is dropped,
/// as a full buffer drops a datagram, and the client asks again.
pub(crate) fn send_now(socket: &UdpSocket, reply: &[u8], to: SocketAddrV4) {
    let _ = sendto(socket.as_raw_fd(), reply, &SockaddrIn::from(to), MsgFlags::MSG_DONTWAIT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Three clients ask; each must get its own answer back. Twice over the same batch: the
    /// second round's answers go to the second round's senders, not the first's.
    #[test]
    fn each_batch_answers_its_own_senders() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut batch = Batch::new();
        for round in 0..2 {
            exchange(&server, &mut batch, round);
        }
    }

    fn exchange(server: &UdpSocket, batch: &mut Batch, round: u8) {
        let clients: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        for (i, client) in clients.iter().enumerate() {
            client.send_to(&[round * 10 + i as u8; 20], server.local_addr().unwrap()).unwrap();
        }
        let mut taken = 0;
        while taken < 3 {
            let count = batch.receive(server).unwrap();
            assert!(count >= 1);
            for i in 0..count {
                let (request, from, reply) = batch.slot(i);
                assert_eq!(request.len(), 20);
                reply.extend_from_slice(&[request[0] + 100; 5]);
                assert!(clients.iter().any(|c| c.local_addr().unwrap() == std::net::SocketAddr::V4(from)));
                batch.answer(i);
            }
            assert_eq!(batch.send(server), count);
            taken += count;
        }
        for (i, client) in clients.iter().enumerate() {
            client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buffer = [0u8; 64];
            let length = client.recv(&mut buffer).unwrap();
            assert_eq!(&buffer[..length], &[round * 10 + i as u8 + 100; 5], "round {round}, client {i}");
        }
    }

    #[test]
    fn shutting_the_reading_side_wakes_a_receive() {
        let server = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let (done, returned) = std::sync::mpsc::channel();
        let receiving = server.clone();
        std::thread::spawn(move || {
            let mut batch = Batch::new();
            let taken = batch.receive(&receiving).map(|count| (count, batch.slot(0).0.len()));
            let _ = done.send(taken);
        });
        // Whether the thread waits already or not yet, the shut side ends its receive.
        let _ = nix::sys::socket::shutdown(server.as_raw_fd(), nix::sys::socket::Shutdown::Read);
        let taken = returned.recv_timeout(Duration::from_secs(5)).expect("the receive returned");
        assert_eq!(taken.unwrap(), (1, 0), "one empty slot, which the server drops as too short");
    }

    #[test]
    fn an_empty_socket_times_out() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let error = Batch::new().receive(&server).unwrap_err();
        assert!(matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{error}");
    }
}
