//! Conntrack entries over ctnetlink: listing IPv4 UDP flows and deleting the ones a filter
//! matches (the stale-UDP-flow cleanup a Service proxy does when endpoints or Services go away).

use std::io;
use std::net::Ipv4Addr;

use crate::nla::{messages, Attrs, Writer, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use crate::socket::{open_netfilter, set_buffer, Direction, RECV_BUF};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

const AF_INET: u8 = 2;
const IPPROTO_UDP: u8 = 17;

/// Delete requests are sent this many at a time; the kernel answers each one, and the answers
/// must fit the receive buffer.
const DELETE_CHUNK: usize = 256;

/// Which UDP flows to delete: a flow matches when every given part matches (a `None` port
/// matches any port). With neither part given, every IPv4 UDP flow matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowFilter {
    /// The original direction's destination: a Service frontend (ClusterIP:port).
    pub original_destination: Option<(Ipv4Addr, Option<u16>)>,
    /// The reply direction's source: an endpoint (pod IP:port) the flow was DNATed to.
    pub reply_source: Option<(Ipv4Addr, Option<u16>)>,
}

/// One direction of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// A conntrack entry as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub original: Tuple,
    pub reply: Tuple,
    /// The conntrack zone (0 for the default zone).
    pub zone: u16,
}

impl FlowFilter {
    /// Whether `flow` matches.
    pub fn matches(&self, flow: &Flow) -> bool {
        let part = |want: &Option<(Ipv4Addr, Option<u16>)>, ip: Ipv4Addr, port: u16| match want {
            None => true,
            Some((want_ip, want_port)) => *want_ip == ip && want_port.is_none_or(|p| p == port),
        };
        part(&self.original_destination, flow.original.dst, flow.original.dst_port)
            && part(&self.reply_source, flow.reply.src, flow.reply.src_port)
    }
}

/// Lists the IPv4 UDP flows of the calling thread's network namespace.
pub fn list_udp_flows() -> io::Result<Vec<Flow>> {
    let mut flows = list_flows()?;
    flows.retain(|flow| flow.original.proto == IPPROTO_UDP);
    Ok(flows)
}

/// Lists the IPv4 flows of the calling thread's network namespace, of every protocol.
pub fn list_flows() -> io::Result<Vec<Flow>> {
    let sock = open_netfilter()?;
    set_buffer(&sock, Direction::Receive, 4 * 1024 * 1024)?;
    let seq = 1;
    let mut w = Writer::new();
    let m = w.begin_msg(NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, AF_INET, 0);
    w.end_msg(m);
    sock.send(&w.buf, 0)?;

    let mut flows = Vec::new();
    let mut buf = Vec::with_capacity(RECV_BUF);
    loop {
        buf.clear();
        buf.reserve(RECV_BUF);
        sock.recv(&mut buf, 0)?;
        for msg in messages(&buf) {
            if msg.seq != seq {
                continue;
            }
            match msg.kind {
                NLMSG_DONE => return Ok(flows),
                NLMSG_ERROR => match msg.error_code() {
                    Some(0) | None => {}
                    Some(code) => return Err(io::Error::from_raw_os_error(code)),
                },
                kind if kind == NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW => {
                    flows.extend(parse_flow(msg.payload.get(4..).unwrap_or(&[])));
                }
                _ => {}
            }
        }
    }
}

/// Deletes the IPv4 UDP flows `filter` matches in the calling thread's network namespace, and
/// returns how many were deleted (flows that vanished meanwhile are not counted).
pub fn delete_udp_flows(filter: &FlowFilter) -> io::Result<usize> {
    let doomed: Vec<Flow> = list_udp_flows()?.into_iter().filter(|f| filter.matches(f)).collect();
    if doomed.is_empty() {
        return Ok(0);
    }
    let sock = open_netfilter()?;
    set_buffer(&sock, Direction::Receive, 1024 * 1024)?;
    let mut deleted = 0;
    let mut buf = Vec::with_capacity(RECV_BUF);
    let mut seq: u32 = 1;
    for chunk in doomed.chunks(DELETE_CHUNK) {
        let first = seq;
        let mut w = Writer::new();
        for flow in chunk {
            let m = w.begin_msg(
                NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE,
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
                AF_INET,
                0,
            );
            seq = seq.wrapping_add(1);
            put_tuple(&mut w, CTA_TUPLE_ORIG, &flow.original);
            if flow.zone != 0 {
                w.be16(CTA_ZONE, flow.zone);
            }
            w.end_msg(m);
        }
        sock.send(&w.buf, 0)?;
        let mut remaining = chunk.len();
        while remaining > 0 {
            buf.clear();
            buf.reserve(RECV_BUF);
            sock.recv(&mut buf, 0)?;
            for msg in messages(&buf) {
                if msg.kind != NLMSG_ERROR || msg.seq.wrapping_sub(first) as usize >= chunk.len() {
                    continue;
                }
                remaining = remaining.saturating_sub(1);
                match msg.error_code() {
                    Some(0) => deleted += 1,
                    Some(code) if code == nix::errno::Errno::ENOENT as i32 => {} // raced: already gone
                    Some(code) => return Err(io::Error::from_raw_os_error(code)),
                    None => {}
                }
            }
        }
    }
    Ok(deleted)
}

fn put_tuple(w: &mut Writer, kind: u16, t: &Tuple) {
    let tuple = w.begin_nest(kind);
    let ip = w.begin_nest(CTA_TUPLE_IP);
    w.bytes(CTA_IP_V4_SRC, &t.src.octets());
    w.bytes(CTA_IP_V4_DST, &t.dst.octets());
    w.end_nest(ip);
    let proto = w.begin_nest(CTA_TUPLE_PROTO);
    w.u8(CTA_PROTO_NUM, t.proto);
    w.be16(CTA_PROTO_SRC_PORT, t.src_port);
    w.be16(CTA_PROTO_DST_PORT, t.dst_port);
    w.end_nest(proto);
    w.end_nest(tuple);
}

fn parse_tuple(attrs: Attrs<'_>) -> Option<Tuple> {
    let mut t = Tuple { src: Ipv4Addr::UNSPECIFIED, dst: Ipv4Addr::UNSPECIFIED, proto: 0, src_port: 0, dst_port: 0 };
    let mut have_ip = false;
    for a in attrs {
        match a.kind {
            CTA_TUPLE_IP => {
                for ip in a.nested() {
                    match ip.kind {
                        CTA_IP_V4_SRC => t.src = ip.ipv4()?,
                        CTA_IP_V4_DST => t.dst = ip.ipv4()?,
                        _ => {}
                    }
                }
                have_ip = true;
            }
            CTA_TUPLE_PROTO => {
                for p in a.nested() {
                    match p.kind {
                        CTA_PROTO_NUM => t.proto = p.u8()?,
                        CTA_PROTO_SRC_PORT => t.src_port = p.be16()?,
                        CTA_PROTO_DST_PORT => t.dst_port = p.be16()?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    have_ip.then_some(t)
}

/// Parses the attributes of an `IPCTNL_MSG_CT_NEW` message (after its `nfgenmsg`).
fn parse_flow(payload: &[u8]) -> Option<Flow> {
    let attrs = Attrs::new(payload);
    let original = parse_tuple(attrs.clone().get(CTA_TUPLE_ORIG)?.nested())?;
    let reply = parse_tuple(attrs.clone().get(CTA_TUPLE_REPLY)?.nested())?;
    let zone = attrs.get(CTA_ZONE).and_then(|a| a.be16()).unwrap_or(0);
    Some(Flow { original, reply, zone })
}
