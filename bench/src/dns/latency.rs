//! Step 4's latency client: queries sent at a fixed rate, each timed from just before its send
//! to the kernel's receive timestamp of its answer (`SO_TIMESTAMPNS`), so that how soon the
//! client got round to reading an answer is not counted against the server.
//!
//! dnsperf's `-v` latencies count that: its sending and receiving threads share one core here
//! (the other is the servers'). Measured on this machine in the same run, against all three
//! servers alike, its p50 read 0.035 ms and its p90 0.055 ms where this client's read 0.020 and
//! 0.025. What neither removes: from p98 on, every server's answers have a tail that reaches
//! 2–3 ms at p99.9 and about 4 ms at most (one tick at 250 Hz), varying from round to round by
//! up to 2×. It is the machine's, a virtual one: a thread spinning on the servers' core sees no
//! gap above 0.1 ms in 5 s, but a server asleep there is woken late. Keeping the core out of idle
//! with a spinner of the lowest priority (`SCHED_IDLE`) cut every server's p99.9 to 0.3–0.4 ms
//! in one run and did nothing in another, so it was not kept; step 4 takes several rounds and
//! compares each server's median instead.
//!
//! One thread, pinned to the client's core, spins: it sends every query that is due (open loop:
//! a slow answer never delays the next question) over four sockets in turn (dnsperf's `-c 4`,
//! so a server with several `SO_REUSEPORT` sockets spreads them as it would dnsperf's), then
//! takes every answer waiting. An answer's ID is its query's sequence number modulo 65,536; a
//! query whose slot is reused before it is answered (1.1 s at 57k q/s) counts as lost.

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use nix::sys::time::TimeSpec;

use super::probe::{question, record_type};

const SOCKETS: usize = 4;
/// How long answers are waited for once the last query is sent.
const GRACE: Duration = Duration::from_millis(200);
/// A send this far behind its schedule is counted as late (the client, not the server, slipped).
const LATE: Duration = Duration::from_micros(50);

#[derive(Debug, Default)]
pub struct Timed {
    /// Every answered query's latency, sorted.
    pub latencies: Vec<Duration>,
    pub sent: u64,
    pub lost: u64,
    /// Queries sent more than [`LATE`] after they were due.
    pub late: u64,
    pub wall: Duration,
}

/// Each query of `mix` (name, type) as a wire message with ID 0 and RD set.
pub fn encode(mix: &[(&str, &str)]) -> Vec<Vec<u8>> {
    mix.iter()
        .map(|&(name, qtype)| {
            let message = question(name, record_type(qtype), 0).expect("a query name of the mix");
            message.to_vec().expect("a query encodes")
        })
        .collect()
}

/// Now, as the kernel stamps datagrams (`CLOCK_REALTIME`, in nanoseconds).
pub fn realtime_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Asks the kernel to stamp each datagram `socket` receives (`SO_TIMESTAMPNS`).
pub fn stamp_arrivals(socket: &UdpSocket) {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).expect("SO_TIMESTAMPNS");
}

/// A datagram waiting on `socket` (without waiting for one), read into `buffer`: its length and
/// when the kernel received it ([`realtime_ns`]'s clock; now, if it carries no stamp).
pub fn recv_stamped(socket: &UdpSocket, buffer: &mut [u8]) -> Option<(usize, u64)> {
    let mut control = nix::cmsg_space!(TimeSpec);
    let mut iov = [IoSliceMut::new(buffer)];
    let message =
        recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut control), MsgFlags::MSG_DONTWAIT).ok()?;
    let stamp = message.cmsgs().ok().into_iter().flatten().find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(t) => Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64),
        _ => None,
    });
    Some((message.bytes, stamp.unwrap_or_else(realtime_ns)))
}

/// Asks `server` the `queries` in turn (cycling) at `rate` per second for `seconds`.
pub fn run(server: SocketAddr, queries: &[Vec<u8>], rate: u32, seconds: u32) -> Timed {
    let sockets: Vec<UdpSocket> = (0..SOCKETS)
        .map(|_| {
            let socket = UdpSocket::bind(("0.0.0.0", 0)).expect("a UDP socket");
            socket.connect(server).expect("connect to the server");
            socket.set_nonblocking(true).expect("non-blocking");
            stamp_arrivals(&socket);
            setsockopt(&socket, sockopt::RcvBuf, &(4 << 20)).expect("SO_RCVBUF");
            socket
        })
        .collect();
    // Send time (realtime ns) of the query holding each ID; 0: none outstanding.
    let mut outstanding = vec![0u64; 1 << 16];
    let mut timed = Timed::default();
    let interval = Duration::from_secs(1) / rate.max(1);
    let total = u64::from(rate) * u64::from(seconds);
    let mut buffer = [0u8; 4096];
    let started = Instant::now();
    let mut due = started;
    let mut sequence = 0u64;
    loop {
        let now = Instant::now();
        while sequence < total && due <= now {
            let id = sequence as u16;
            let mut query = queries[sequence as usize % queries.len()].clone();
            query[..2].copy_from_slice(&id.to_be_bytes());
            if now.duration_since(due) > LATE {
                timed.late += 1;
            }
            if outstanding[usize::from(id)] != 0 {
                timed.lost += 1;
            }
            outstanding[usize::from(id)] = realtime_ns();
            if sockets[sequence as usize % SOCKETS].send(&query).is_ok() {
                timed.sent += 1;
            } else {
                outstanding[usize::from(id)] = 0;
            }
            sequence += 1;
            due += interval;
        }
        for socket in &sockets {
            while let Some((bytes, arrived)) = recv_stamped(socket, &mut buffer) {
                if bytes < 2 {
                    continue;
                }
                let id = u16::from_be_bytes([buffer[0], buffer[1]]);
                let sent_at = std::mem::take(&mut outstanding[usize::from(id)]);
                if sent_at != 0 {
                    timed.latencies.push(Duration::from_nanos(arrived.saturating_sub(sent_at)));
                }
            }
        }
        if sequence >= total && (outstanding.iter().all(|s| *s == 0) || due + GRACE < Instant::now()) {
            break;
        }
    }
    timed.wall = started.elapsed();
    timed.lost += outstanding.iter().filter(|s| **s != 0).count() as u64;
    timed.latencies.sort();
    timed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against an echo server on loopback that answers every other query after holding it
    /// 2 ms: every query is sent and answered, the held half timed at 2 ms or more.
    #[test]
    fn times_every_answer_from_send_to_arrival() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = server.local_addr().unwrap();
        server.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let echo = std::thread::spawn(move || {
            let mut buffer = [0u8; 512];
            while let Ok((n, from)) = server.recv_from(&mut buffer) {
                if u16::from_be_bytes([buffer[0], buffer[1]]) % 2 == 1 {
                    std::thread::sleep(Duration::from_millis(2));
                }
                server.send_to(&buffer[..n], from).unwrap();
            }
        });
        let queries = encode(&[("a.example", "A"), ("b.example", "SRV")]);
        let timed = run(address, &queries, 200, 1);
        assert_eq!((timed.sent, timed.lost, timed.latencies.len()), (200, 0, 200));
        assert!(timed.latencies[0] < Duration::from_millis(2), "{:?}", timed.latencies[0]);
        assert!(timed.latencies[100] >= Duration::from_millis(2), "{:?}", timed.latencies[100]);
        echo.join().unwrap();
    }
}
