//! One DNS question over UDP from the bench itself (hickory-proto builds and reads the messages),
//! to wait for a server to answer and to compare the servers' answers before anything is timed.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::cluster::Query as MixQuery;

/// A response reduced to what must agree between servers: the rcode and the answer records
/// (owner, type, data; lower-cased and sorted, since A records may be rotated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub rcode: ResponseCode,
    pub answers: Vec<String>,
    pub truncated: bool,
}

impl Reply {
    pub fn describe(&self) -> String {
        let tc = if self.truncated { " TC" } else { "" };
        format!("{:?}{tc} with {} answers {:?}", self.rcode, self.answers.len(), self.answers)
    }
}

pub fn record_type(text: &str) -> RecordType {
    text.parse().unwrap_or(RecordType::A)
}

/// A query for `name` (without its final dot) and `qtype`, RD set as stub resolvers and dnsperf
/// set it; `None` if `name` is not a name.
pub fn question(name: &str, qtype: RecordType, id: u16) -> Option<Message> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(format!("{name}.")).ok()?, qtype));
    Some(message)
}

/// `name`'s A question (RD set) as bytes, with `id`.
pub fn a_question(name: &str, id: u16) -> Vec<u8> {
    question(name, RecordType::A, id).and_then(|m| m.to_vec().ok()).expect("a valid name")
}

/// Waits at most `timeout` for a datagram on `socket` and reads it into `buffer`; its length, or
/// `None` if none came in time.
pub fn recv_within(socket: &UdpSocket, buffer: &mut [u8], timeout: Duration) -> Option<usize> {
    // Readable: the read does not block.
    readable_within(socket, timeout).then(|| socket.recv(buffer).ok()).flatten()
}

/// Whether a datagram is waiting on `socket`, or comes within `timeout`. The wait is `ppoll`'s,
/// on a high-resolution timer: a socket's read timeout (`SO_RCVTIMEO`) is rounded up to whole
/// scheduler ticks, so on a kernel of 250 Hz one of 0.5 ms waits 8 ms, which a loop that asks
/// every half millisecond then measures.
pub fn readable_within(socket: &UdpSocket, timeout: Duration) -> bool {
    use nix::poll::{ppoll, PollFd, PollFlags};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    ppoll(&mut fds, Some(nix::sys::time::TimeSpec::from_duration(timeout)), None).is_ok_and(|ready| ready > 0)
}

/// Asks `server` once (RD set, as stub resolvers and dnsperf do); `None` on timeout or garbage.
pub fn ask(server: SocketAddr, name: &str, qtype: RecordType, timeout: Duration) -> Option<Reply> {
    static NEXT_ID: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let message = question(name, qtype, id)?;
    let socket = UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    socket.connect(server).ok()?;
    socket.send(&message.to_vec().ok()?).ok()?;
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 65_535];
    loop {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        socket.set_read_timeout(Some(left)).ok()?;
        let length = socket.recv(&mut buffer).ok()?;
        let Ok(response) = Message::from_vec(&buffer[..length]) else { continue };
        if response.metadata.id != id {
            continue;
        }
        let mut answers: Vec<String> = response
            .answers
            .iter()
            .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data).to_ascii_lowercase())
            .collect();
        answers.sort();
        return Some(Reply {
            rcode: response.metadata.response_code,
            answers,
            truncated: response.metadata.truncation,
        });
    }
}

/// Whether a reply is the one the mix expects of `query` (rcode and answer count).
pub fn expected(query: &MixQuery, reply: &Reply) -> bool {
    let rcode = if query.nxdomain { ResponseCode::NXDomain } else { ResponseCode::NoError };
    reply.rcode == rcode && reply.answers.len() == query.answers && !reply.truncated
}

/// The sample's disagreements: each query whose reply from some server is not what the mix
/// expects, or differs from the first server's (the reference); `(server, query, reply)`.
pub fn compare(servers: &[(&str, SocketAddr)], sample: &[MixQuery]) -> Vec<String> {
    let mut problems = Vec::new();
    for query in sample {
        let replies: Vec<Option<Reply>> = servers
            .iter()
            .map(|(_, address)| ask(*address, &query.name, record_type(query.qtype), Duration::from_secs(1)))
            .collect();
        let reference = replies.first().cloned().flatten();
        for ((server, _), reply) in servers.iter().zip(&replies) {
            let problem = match reply {
                None => Some("no reply".to_string()),
                Some(reply) if !expected(query, reply) => Some(format!(
                    "{}, expected {} with {} answers",
                    reply.describe(),
                    if query.nxdomain { "NXDOMAIN" } else { "NOERROR" },
                    query.answers
                )),
                Some(reply) if reference.as_ref().is_some_and(|r| r.answers != reply.answers) => {
                    Some(format!("{}, unlike {}'s", reply.describe(), servers[0].0))
                }
                Some(_) => None,
            };
            if let Some(problem) = problem {
                problems.push(format!("{server}: {} {}: {problem}", query.name, query.qtype));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recv_within_reads_what_came_and_gives_up_when_nothing_does() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buffer = [0u8; 64];
        assert_eq!(recv_within(&socket, &mut buffer, Duration::from_micros(200)), None);
        let question = a_question("kubernetes.default.svc.cluster.local", 7);
        sender.send_to(&question, socket.local_addr().unwrap()).unwrap();
        assert_eq!(recv_within(&socket, &mut buffer, Duration::from_secs(5)), Some(question.len()));
        assert_eq!(&buffer[..question.len()], &question[..]);
        assert_eq!(recv_within(&socket, &mut buffer, Duration::ZERO), None, "the datagram was read once");
    }
}
