//! Answering one DNS message from a [`ClusterIndex`].

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::config::PodMode;
use crate::index::{
    pod_label_ip, ClusterIndex, Node, RrSet, Shard, SET_A, SET_AAAA, SET_CNAME, SET_NS, SET_PTR, SET_SRV, SET_TXT,
};
use crate::wire::{self, put16, put32, put_pointer, Parsed, Request};

/// How the request arrived: it bounds the response's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// 512 bytes, or the client's EDNS0 buffer size bounded by the index's `max_udp_payload`;
    /// a response that does not fit is truncated (TC) to whole records.
    Udp,
    /// 65,535 bytes.
    Tcp,
}

/// What to do with a request, when the response (if any) was written into the caller's buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'i> {
    /// The buffer holds the complete response.
    Reply,
    /// The name is outside the cluster's zones: send the request to an upstream resolver; a
    /// response larger than `max_size` must not go back over this transport.
    Forward { max_size: usize },
    /// Send nothing (not a query: too short for a header, or a response).
    Drop,
    /// An ExternalName Service: the buffer holds the response with the CNAME (chain); resolve
    /// `target` for `qtype` upstream and append its answers with [`complete_chase`] before
    /// sending (CoreDNS's `Upstream.Lookup`).
    Chase { target: &'i Name, qtype: RecordType, max_size: usize },
}

/// An owned [`Outcome`], from [`answer`].
#[derive(Debug, PartialEq, Eq)]
pub enum Response {
    Reply(Vec<u8>),
    Forward,
    Drop,
    Chase { reply: Vec<u8>, target: Name, qtype: RecordType, max_size: usize },
}

/// Answers one request (convenience over [`answer_into`], which reuses a buffer).
pub fn answer(index: &ClusterIndex, query: &[u8], transport: Transport) -> Response {
    let mut out = Vec::new();
    match answer_into(index, query, transport, &mut out) {
        Outcome::Reply => Response::Reply(out),
        Outcome::Forward { .. } => Response::Forward,
        Outcome::Drop => Response::Drop,
        Outcome::Chase { target, qtype, max_size } => {
            Response::Chase { reply: out, target: target.clone(), qtype, max_size }
        }
    }
}

/// Answers one request into `out` (cleared first). Allocates nothing beyond growing `out`.
/// Never panics, whatever the bytes.
pub fn answer_into<'i>(index: &'i ClusterIndex, query: &[u8], transport: Transport, out: &mut Vec<u8>) -> Outcome<'i> {
    out.clear();
    let req = match wire::parse(query) {
        Parsed::Drop => return Outcome::Drop,
        Parsed::Reject { id, flags, rcode, question_end } => {
            bare_reply(query, id, flags, rcode, question_end, out);
            return Outcome::Reply;
        }
        Parsed::Ok(req) => req,
    };
    let max_size = match (transport, req.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => 512,
        (Transport::Udp, Some(e)) => usize::from(e.udp_size.clamp(512, index.max_udp_payload.max(512))),
    };
    let mut w = Writer { query, req: &req, out, max_size, index };

    // EDNS versions other than 0: BADVERS (RFC 6891 §6.1.3), as CoreDNS's server does first.
    if req.edns.is_some_and(|e| e.version != 0) {
        w.finish(Sections { rcode: 16, aa: false, ..Sections::default() });
        return Outcome::Reply;
    }

    let lname = req.lname();
    let n = req.label_count;
    let zl = index.zone_labels;
    let in_zone = n >= zl && req.suffix(n - zl) == &index.zone[..];
    if in_zone {
        if req.qclass != wire::CLASS_IN && req.qclass != wire::CLASS_ANY {
            w.finish(Sections { rcode: wire::RCODE_REFUSED, ..Sections::default() });
            return Outcome::Reply;
        }
        return w.forward_zone(n - zl);
    }
    if lname.ends_with(b"\x07in-addr\x04arpa\x00") || lname.ends_with(b"\x03ip6\x04arpa\x00") {
        return w.reverse_zone();
    }
    Outcome::Forward { max_size }
}

/// Writes into `out` a response to `query` with `rcode` and no records (REFUSED to a client the
/// server does not serve, SERVFAIL when no upstream answered): the header and, when the request
/// decodes, its question. `false` when there is nothing to answer (not a query).
pub fn reply_with_rcode(query: &[u8], rcode: u8, out: &mut Vec<u8>) -> bool {
    out.clear();
    let (id, flags, question_end) = match wire::parse(query) {
        Parsed::Drop => return false,
        Parsed::Reject { id, flags, question_end, .. } => (id, flags, question_end),
        Parsed::Ok(req) => (req.id, req.flags, Some(req.question_end)),
    };
    bare_reply(query, id, flags, rcode, question_end, out);
    true
}

/// A response of a header and (when known) the request's question.
fn bare_reply(query: &[u8], id: u16, flags: u16, rcode: u8, question_end: Option<usize>, out: &mut Vec<u8>) {
    let question = question_end.and_then(|end| query.get(wire::HEADER_LEN..end));
    put16(out, id);
    put16(out, wire::reply_flags(flags, false, false, rcode));
    put16(out, u16::from(question.is_some()));
    put32(out, 0);
    put16(out, 0);
    out.extend_from_slice(question.unwrap_or_default());
}

/// What a response holds beyond the question.
#[derive(Default)]
struct Sections<'a> {
    rcode: u8,
    aa: bool,
    /// A record set, and the arena of the part it is in.
    set: Option<(&'a RrSet, &'a [u8])>,
    /// Rotation of the answer records (A, AAAA): start at record `rotation % count`.
    rotation: usize,
    /// One record written here (a synthesized pod address, an SOA answer).
    single: Option<([u8; 64], usize)>,
    /// The offset of the zone's name in the question: the SOA goes in Authority.
    soa: Option<usize>,
}

struct Writer<'a, 'i> {
    query: &'a [u8],
    req: &'a Request,
    out: &'a mut Vec<u8>,
    max_size: usize,
    index: &'i ClusterIndex,
}

impl<'i> Writer<'_, 'i> {
    fn node(&self) -> Option<(&'i Shard, &'i Node)> {
        self.index.find(self.req.lname())
    }

    fn set(&self, (shard, node): (&'i Shard, &Node), kind: usize) -> Option<(&'i RrSet, &'i [u8])> {
        shard.set(node, kind).map(|set| (set, &shard.arena[..]))
    }

    fn reply(&mut self, s: Sections) -> Outcome<'i> {
        self.finish(s);
        Outcome::Reply
    }

    fn negative(&mut self, rcode: u8, zone_label: usize) -> Outcome<'i> {
        let soa = Some(self.req.suffix_offset(zone_label));
        self.reply(Sections { rcode, aa: true, soa, ..Sections::default() })
    }

    fn positive(&mut self, set: (&'i RrSet, &'i [u8])) -> Outcome<'i> {
        let rotation = usize::from(self.req.id);
        self.reply(Sections { aa: true, set: Some(set), rotation, ..Sections::default() })
    }

    /// The cluster zone; `z` is the index of the zone's first label in the question name.
    fn forward_zone(&mut self, z: usize) -> Outcome<'i> {
        let qtype = self.req.qtype;
        if qtype == wire::TYPE_AXFR || qtype == wire::TYPE_IXFR {
            return self.reply(Sections { rcode: wire::RCODE_REFUSED, ..Sections::default() });
        }
        let Some(found) = self.node() else { return self.pod(z) };
        let kind = match qtype {
            wire::TYPE_A => SET_A,
            wire::TYPE_AAAA => SET_AAAA,
            wire::TYPE_SRV => SET_SRV,
            wire::TYPE_TXT => SET_TXT,
            wire::TYPE_CNAME => SET_CNAME,
            wire::TYPE_NS => SET_NS,
            wire::TYPE_SOA if z == 0 => return self.soa_answer(0),
            _ => return self.negative(wire::RCODE_NOERROR, z),
        };
        let Some(set) = self.set(found, kind) else { return self.negative(wire::RCODE_NOERROR, z) };
        let (shard, node) = found;
        if let Some(target) = shard.chase(node).filter(|_| kind != SET_CNAME) {
            let max_size = self.max_size;
            self.reply(Sections { aa: true, set: Some(set), ..Sections::default() });
            return Outcome::Chase { target, qtype: RecordType::from(qtype), max_size };
        }
        self.positive(set)
    }

    /// `<address>.<ns>.pod.<zone>`, answered from the name (CoreDNS's `pods insecure`, or
    /// `verified` when a pod of the namespace has the address); anything else absent is NXDOMAIN.
    fn pod(&mut self, z: usize) -> Outcome<'i> {
        let req = self.req;
        if self.index.pod_mode == PodMode::Disabled || z != 3 || req.label(2) != b"pod" {
            return self.negative(wire::RCODE_NXDOMAIN, z);
        }
        let Some((shard, ns)) = self.index.find(req.suffix(1)) else { return self.negative(wire::RCODE_NXDOMAIN, z) };
        let Some(ip) = pod_label_ip(req.label(0)) else { return self.negative(wire::RCODE_NXDOMAIN, z) };
        if self.index.pod_mode == PodMode::Verified {
            let known = shard.pods(ns).is_some_and(|ips| ips.contains(&ip));
            if !known {
                return self.negative(wire::RCODE_NXDOMAIN, z);
            }
        }
        let (rtype, data): (u16, &[u8]) = match ip {
            std::net::IpAddr::V4(v4) if req.qtype == wire::TYPE_A => (wire::TYPE_A, &v4.octets()[..]),
            std::net::IpAddr::V6(v6) if req.qtype == wire::TYPE_AAAA => (wire::TYPE_AAAA, &v6.octets()[..]),
            _ => return self.negative(wire::RCODE_NOERROR, z),
        };
        let mut rec = [0u8; 64];
        rec[0..2].copy_from_slice(&(0xC000u16 | wire::HEADER_LEN as u16).to_be_bytes());
        rec[2..4].copy_from_slice(&rtype.to_be_bytes());
        rec[4..6].copy_from_slice(&wire::CLASS_IN.to_be_bytes());
        rec[6..10].copy_from_slice(&self.index.ttl.to_be_bytes());
        rec[10..12].copy_from_slice(&(data.len() as u16).to_be_bytes());
        rec[12..12 + data.len()].copy_from_slice(data);
        let len = 12 + data.len();
        self.reply(Sections { aa: true, single: Some((rec, len)), ..Sections::default() })
    }

    /// `in-addr.arpa` and `ip6.arpa`: PTRs the index knows anywhere; the rest of the reverse
    /// zones of the configured ranges authoritatively; other reverse names are forwarded.
    fn reverse_zone(&mut self) -> Outcome<'i> {
        let req = self.req;
        let node = self.node();
        if req.qtype == wire::TYPE_PTR && (req.qclass == wire::CLASS_IN || req.qclass == wire::CLASS_ANY) {
            if let Some(set) = node.and_then(|n| self.set(n, SET_PTR)) {
                return self.positive(set);
            }
        }
        let Some((z, apex)) = self.reverse_apex() else { return Outcome::Forward { max_size: self.max_size } };
        if req.qclass != wire::CLASS_IN && req.qclass != wire::CLASS_ANY {
            return self.reply(Sections { rcode: wire::RCODE_REFUSED, ..Sections::default() });
        }
        match req.qtype {
            wire::TYPE_AXFR | wire::TYPE_IXFR => {
                self.reply(Sections { rcode: wire::RCODE_REFUSED, ..Sections::default() })
            }
            wire::TYPE_SOA if apex => self.soa_answer(z),
            _ if node.is_some() || apex => self.negative(wire::RCODE_NOERROR, z),
            _ => self.negative(wire::RCODE_NXDOMAIN, z),
        }
    }

    /// The configured reverse zone the question falls in: the index of its apex's first label,
    /// and whether the question is the apex.
    fn reverse_apex(&self) -> Option<(usize, bool)> {
        let req = self.req;
        let n = req.label_count;
        let v6 = req.lname().ends_with(b"\x03ip6\x04arpa\x00");
        let addr_labels = n.checked_sub(2)?;
        'zones: for zone in &self.index.reverse {
            if zone.cidr.addr.is_ipv6() != v6 || addr_labels < zone.labels {
                continue;
            }
            let mut bits: u128 = 0;
            for k in 0..zone.labels {
                let label = req.label(addr_labels - 1 - k);
                let Some(v) = parse_label(label, v6) else { continue 'zones };
                bits = if v6 { (bits << 4) | v } else { (bits << 8) | v };
            }
            let ip = if v6 {
                std::net::IpAddr::V6((bits << (4 * (32 - zone.labels))).into())
            } else {
                std::net::IpAddr::V4(((bits << (8 * (4 - zone.labels))) as u32).into())
            };
            if zone.cidr.contains(ip) {
                let z = addr_labels - zone.labels;
                return Some((z, z == 0));
            }
        }
        None
    }

    /// The zone's SOA as the answer (a query for SOA at the apex).
    fn soa_answer(&mut self, z: usize) -> Outcome<'i> {
        let (rec, len) = self.soa_record(self.req.suffix_offset(z));
        self.reply(Sections { aa: true, single: Some((rec, len)), ..Sections::default() })
    }

    /// CoreDNS's SOA: `<zone> SOA ns.dns.<zone> hostmaster.<zone> <serial> 7200 1800 86400 <ttl>`,
    /// TTL min(ttl, 300); names compressed against the zone's name in the question.
    fn soa_record(&self, zone_offset: usize) -> ([u8; 64], usize) {
        let mut v = Vec::with_capacity(64);
        put_pointer(&mut v, zone_offset);
        put16(&mut v, wire::TYPE_SOA);
        put16(&mut v, wire::CLASS_IN);
        put32(&mut v, self.index.ttl.min(300));
        put16(&mut v, 9 + 13 + 20);
        v.extend_from_slice(b"\x02ns\x03dns");
        put_pointer(&mut v, zone_offset);
        v.extend_from_slice(b"\x0ahostmaster");
        put_pointer(&mut v, zone_offset);
        for x in [self.index.serial, 7200, 1800, 86400, self.index.ttl] {
            put32(&mut v, x);
        }
        let mut rec = [0u8; 64];
        rec[..v.len()].copy_from_slice(&v);
        (rec, v.len())
    }

    /// Writes the response: header, question, then whole records while they fit; TC when an
    /// answer or authority record was left out (not for additional ones), as miekg/dns's
    /// `Truncate`. The OPT record always fits.
    fn finish(&mut self, s: Sections) {
        let soa = s.soa.map(|offset| self.soa_record(offset));
        let req = self.req;
        let out = &mut *self.out;
        out.clear();
        out.resize(wire::HEADER_LEN, 0);
        out.extend_from_slice(self.query.get(wire::HEADER_LEN..req.question_end).unwrap_or_default());
        let budget = self.max_size.saturating_sub(if req.edns.is_some() { 11 } else { 0 });
        let mut an = 0u16;
        let mut ns = 0u16;
        let mut ar = 0u16;
        let mut dropped = false;

        if let Some((set, arena)) = s.set {
            let answers = slice(arena, set.answer);
            let count = usize::from(set.an);
            if set.rotate != 0 && count > 1 && answers.len() == count * usize::from(set.rotate) {
                let size = usize::from(set.rotate);
                let first = s.rotation % count;
                for i in 0..count {
                    let j = (first + i) % count;
                    let rec = &answers[j * size..(j + 1) * size];
                    if out.len() + rec.len() > budget {
                        dropped = true;
                        break;
                    }
                    out.extend_from_slice(rec);
                    an += 1;
                }
            } else {
                let (n, all) = copy_records(out, answers, budget);
                an += n;
                dropped |= !all;
            }
        }
        if let Some((rec, len)) = &s.single {
            if out.len() + len <= budget {
                out.extend_from_slice(&rec[..*len]);
                an += 1;
            } else {
                dropped = true;
            }
        }
        if let Some((rec, len)) = soa {
            if !dropped && out.len() + len <= budget {
                out.extend_from_slice(&rec[..len]);
                ns += 1;
            } else {
                dropped = true;
            }
        }
        if let Some((set, arena)) = s.set {
            if !dropped {
                let (n, _) = copy_records(out, slice(arena, set.extra), budget);
                ar += n;
            }
        }
        if let Some(e) = req.edns {
            // OPT: our buffer size (the client's, bounded), the extended rcode, DO echoed.
            out.push(0);
            put16(out, wire::TYPE_OPT);
            put16(out, e.udp_size.clamp(512, self.index.max_udp_payload.max(512)));
            let ext_rcode = u32::from(s.rcode >> 4) << 24;
            put32(out, ext_rcode | if e.dnssec_ok { 0x8000 } else { 0 });
            put16(out, 0);
            ar += 1;
        }
        let flags = wire::reply_flags(req.flags, s.aa, dropped, s.rcode);
        out[0..2].copy_from_slice(&req.id.to_be_bytes());
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[4..6].copy_from_slice(&1u16.to_be_bytes());
        out[6..8].copy_from_slice(&an.to_be_bytes());
        out[8..10].copy_from_slice(&ns.to_be_bytes());
        out[10..12].copy_from_slice(&ar.to_be_bytes());
    }
}

fn slice(arena: &[u8], (start, len): (u32, u32)) -> &[u8] {
    arena.get(start as usize..(start as usize).saturating_add(len as usize)).unwrap_or_default()
}

/// Copies whole records while they fit in `budget`; returns how many, and whether all did.
fn copy_records(out: &mut Vec<u8>, records: &[u8], budget: usize) -> (u16, bool) {
    if out.len() + records.len() <= budget {
        out.extend_from_slice(records);
        let mut n = 0u16;
        let mut at = 0;
        while at < records.len() {
            let Some(end) = wire::record_end(records, at) else { break };
            at = end;
            n += 1;
        }
        return (n, true);
    }
    let mut n = 0u16;
    let mut at = 0;
    while at < records.len() {
        let Some(end) = wire::record_end(records, at) else { break };
        if out.len() + (end - at) > budget {
            return (n, false);
        }
        out.extend_from_slice(&records[at..end]);
        n += 1;
        at = end;
    }
    (n, true)
}

/// A reverse-name label: a decimal octet (IPv4) or one hex nibble (IPv6).
pub(crate) fn parse_label(label: &[u8], v6: bool) -> Option<u128> {
    if v6 {
        if label.len() != 1 {
            return None;
        }
        return (label[0] as char).to_digit(16).map(u128::from);
    }
    if label.is_empty() || label.len() > 3 || (label.len() > 1 && label[0] == b'0') {
        return None;
    }
    let mut v = 0u128;
    for &c in label {
        v = v * 10 + u128::from((c as char).to_digit(10)?);
    }
    (v <= 255).then_some(v)
}

/// Appends an upstream's answers for an ExternalName's target to the reply [`Outcome::Chase`]
/// left (CoreDNS appends them whatever the upstream's rcode); truncates to `max_size`. With no
/// upstream answer, or one that does not decode, the reply is returned as it was: the CNAME alone.
pub fn complete_chase(reply: &[u8], upstream: Option<&[u8]>, max_size: usize) -> Vec<u8> {
    let (Ok(mut msg), Some(Ok(up))) = (Message::from_vec(reply), upstream.map(Message::from_vec)) else {
        return reply.to_vec();
    };
    if up.metadata.response_code != ResponseCode::NoError && up.answers.is_empty() {
        return reply.to_vec();
    }
    msg.answers.extend(up.answers);
    loop {
        match msg.to_vec() {
            Ok(bytes) if bytes.len() <= max_size => return bytes,
            Ok(_) if !msg.additionals.is_empty() => {
                msg.additionals.pop();
            }
            Ok(_) if !msg.answers.is_empty() => {
                msg.answers.pop();
                msg.metadata.truncation = true;
            }
            _ => return reply.to_vec(),
        }
    }
}
