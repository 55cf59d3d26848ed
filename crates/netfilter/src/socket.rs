//! The `NETLINK_NETFILTER` socket: sends a [`Batch`] as one transaction and collects the
//! kernel's answers.

use std::io;
use std::time::Duration;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket as NlSocket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use crate::nftables::Batch;
use crate::nla::{messages, NLMSG_ERROR};

/// How long to wait for the kernel's answers before giving up; nf_tables answers a batch before
/// `send` returns, so this only guards against a kernel that never answers.
const RECV_TIMEOUT: Duration = Duration::from_secs(60);
/// Receive buffer: large enough for any single answer (dumps included).
pub(crate) const RECV_BUF: usize = 256 * 1024;
/// Room the kernel accounts per queued acknowledgement (its `skb` truesize), to size the
/// receive buffer so that no acknowledgement of a big batch is dropped.
const ACK_TRUESIZE: usize = 1024;

/// Why [`Socket::apply`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The socket failed (send, receive, socket options); the outcome of the transaction is
    /// unknown only if this happened after sending.
    #[error("netlink socket: {0}")]
    Io(#[source] io::Error),
    /// The kernel rejected the transaction, which therefore changed nothing; `operation` is the
    /// message it rejected first, as described when it was added ("add rule frontdoor services").
    #[error("{operation}: {source}")]
    Kernel {
        operation: String,
        #[source]
        source: io::Error,
    },
}

/// A `NETLINK_NETFILTER` socket in the network namespace of the thread that opened it.
#[derive(Debug)]
pub struct Socket {
    sock: NlSocket,
    next_seq: u32,
    sndbuf: usize,
    rcvbuf: usize,
    recv_buf: Vec<u8>,
}

impl Socket {
    /// Opens a socket in the *calling thread's* network namespace (sockets stay in the
    /// namespace they were created in).
    pub fn open() -> io::Result<Socket> {
        let sock = open_netfilter()?;
        let next_seq =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1);
        Ok(Socket { sock, next_seq, sndbuf: 0, rcvbuf: 0, recv_buf: Vec::with_capacity(RECV_BUF) })
    }

    /// Applies `batch` as one transaction: all of it or, on any error, none of it. Returns the
    /// first message the kernel rejected. An empty batch does nothing.
    pub fn apply(&mut self, batch: &Batch) -> Result<(), ApplyError> {
        if batch.is_empty() {
            return Ok(());
        }
        let count = batch.message_count();
        let first_seq = self.next_seq;
        // Begin, messages, end: leave the numbers of all of them behind.
        self.next_seq = self.next_seq.wrapping_add(u32::try_from(count).unwrap_or(u32::MAX).wrapping_add(2));
        let bytes = batch.encode(first_seq);
        self.reserve(bytes.len(), count).map_err(ApplyError::Io)?;

        // The kernel processes the whole batch inside this call, as one skb.
        let sent = self.sock.send(&bytes, 0).map_err(ApplyError::Io)?;
        if sent != bytes.len() {
            return Err(ApplyError::Io(io::Error::other(format!("short send: {sent} of {} bytes", bytes.len()))));
        }

        // One answer per message (all carry NLM_F_ACK): an acknowledgement or an error. On error
        // the kernel aborted the transaction; keep reading what is queued to stay in sync.
        let mut answered = vec![false; count];
        let mut remaining = count;
        let mut first_error: Option<(u32, i32)> = None;
        while remaining > 0 {
            let nonblocking = first_error.is_some();
            self.recv_buf.clear();
            self.recv_buf.reserve(RECV_BUF);
            let flags = if nonblocking { libc_msg_dontwait() } else { 0 };
            match self.sock.recv(&mut self.recv_buf, flags) {
                Ok(_) => {}
                Err(e) if nonblocking && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(ApplyError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer from nf_tables for {remaining} of {count} messages"),
                    )))
                }
                Err(e) => return Err(ApplyError::Io(e)),
            }
            for msg in messages(&self.recv_buf) {
                if msg.kind != NLMSG_ERROR {
                    continue;
                }
                let Some(code) = msg.error_code() else { continue };
                let index = msg.seq.wrapping_sub(first_seq).wrapping_sub(1) as usize;
                if index < count && !answered[index] {
                    answered[index] = true;
                    remaining -= 1;
                }
                if code != 0 {
                    // Errors about the batch markers themselves have seqs outside the messages.
                    let earlier = match first_error {
                        None => true,
                        Some((seq, _)) => msg.seq.wrapping_sub(first_seq) < seq.wrapping_sub(first_seq),
                    };
                    if earlier {
                        first_error = Some((msg.seq, code));
                    }
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some((seq, code)) => {
                let index = seq.wrapping_sub(first_seq).wrapping_sub(1) as usize;
                let operation =
                    batch.operation(index).map_or_else(|| "nf_tables transaction".to_owned(), str::to_owned);
                Err(ApplyError::Kernel { operation, source: io::Error::from_raw_os_error(code) })
            }
        }
    }

    /// Grows the socket's buffers so that the whole batch fits one send and every answer fits
    /// the receive queue (as nft does: `SO_SNDBUFFORCE` to the batch size).
    fn reserve(&mut self, bytes: usize, messages: usize) -> io::Result<()> {
        let want_snd = bytes + 64 * 1024;
        if want_snd > self.sndbuf {
            set_buffer(&self.sock, Direction::Send, want_snd)?;
            self.sndbuf = want_snd;
        }
        let want_rcv = (messages + 16) * ACK_TRUESIZE + RECV_BUF;
        if want_rcv > self.rcvbuf {
            set_buffer(&self.sock, Direction::Receive, want_rcv)?;
            self.rcvbuf = want_rcv;
        }
        Ok(())
    }
}

fn libc_msg_dontwait() -> i32 {
    nix::sys::socket::MsgFlags::MSG_DONTWAIT.bits()
}

/// Opens and binds a `NETLINK_NETFILTER` socket with capped acknowledgements (the kernel echoes
/// only the header of a failed message, not a 64 KiB element list) and a receive timeout.
pub(crate) fn open_netfilter() -> io::Result<NlSocket> {
    let mut sock = NlSocket::new(NETLINK_NETFILTER)?;
    sock.bind(&SocketAddr::new(0, 0))?;
    sock.set_cap_ack(true)?;
    // Extended acks add the kernel's message to errors; harmless if unsupported.
    let _ = sock.set_ext_ack(true);
    let timeout = TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0);
    setsockopt(&sock, sockopt::ReceiveTimeout, &timeout).map_err(io::Error::from)?;
    Ok(sock)
}

pub(crate) enum Direction {
    Send,
    Receive,
}

/// Sets a socket buffer size past the `wmem_max`/`rmem_max` limits when allowed (CAP_NET_ADMIN,
/// which programming nf_tables needs anyway), else as far as the limits allow.
pub(crate) fn set_buffer(sock: &NlSocket, direction: Direction, size: usize) -> io::Result<()> {
    let forced = match direction {
        Direction::Send => setsockopt(sock, sockopt::SndBufForce, &size),
        Direction::Receive => setsockopt(sock, sockopt::RcvBufForce, &size),
    };
    match forced {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => match direction {
            Direction::Send => setsockopt(sock, sockopt::SndBuf, &size),
            Direction::Receive => setsockopt(sock, sockopt::RcvBuf, &size),
        }
        .map_err(io::Error::from),
        Err(e) => Err(io::Error::from(e)),
    }
}
