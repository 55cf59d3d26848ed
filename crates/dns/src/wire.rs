//! The request side of the wire format, read without allocating: header, the one question, and
//! a walk over the other sections that validates every record and finds the OPT record.
//!
//! Acceptance follows miekg/dns's `DefaultMsgAcceptFunc`, which CoreDNS serves behind: a
//! response (QR set) is dropped; an opcode other than QUERY is NOTIMP; a message without exactly
//! one question, or with more than one answer or authority record, or more than two additional
//! records, is FORMERR; so is one that does not decode.

pub(crate) const HEADER_LEN: usize = 12;
/// The longest name on the wire (RFC 1035 §2.3.4).
pub(crate) const MAX_NAME: usize = 255;
const MAX_LABELS: usize = 128;

pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_NS: u16 = 2;
pub(crate) const TYPE_CNAME: u16 = 5;
pub(crate) const TYPE_SOA: u16 = 6;
pub(crate) const TYPE_PTR: u16 = 12;
pub(crate) const TYPE_TXT: u16 = 16;
pub(crate) const TYPE_AAAA: u16 = 28;
pub(crate) const TYPE_SRV: u16 = 33;
pub(crate) const TYPE_OPT: u16 = 41;
pub(crate) const TYPE_IXFR: u16 = 251;
pub(crate) const TYPE_AXFR: u16 = 252;
pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const CLASS_ANY: u16 = 255;

pub(crate) const RCODE_NOERROR: u8 = 0;
pub(crate) const RCODE_FORMERR: u8 = 1;
pub(crate) const RCODE_NXDOMAIN: u8 = 3;
pub(crate) const RCODE_NOTIMP: u8 = 4;
pub(crate) const RCODE_REFUSED: u8 = 5;

/// The EDNS0 pseudo-record of a request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edns {
    pub(crate) udp_size: u16,
    pub(crate) version: u8,
    pub(crate) dnssec_ok: bool,
}

/// A request that decoded: everything answering needs, by offsets into the request bytes.
pub(crate) struct Request {
    pub(crate) id: u16,
    /// Header bytes 2..4 as sent.
    pub(crate) flags: u16,
    /// End of the question section (the question is `12..question_end`).
    pub(crate) question_end: usize,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    pub(crate) edns: Option<Edns>,
    /// The question name in wire form, ASCII lower-cased.
    pub(crate) lname: [u8; MAX_NAME],
    pub(crate) lname_len: usize,
    /// Offsets of each label (its length byte) in `lname`; the root is not counted.
    pub(crate) labels: [u8; MAX_LABELS],
    pub(crate) label_count: usize,
}

impl Request {
    pub(crate) fn lname(&self) -> &[u8] {
        &self.lname[..self.lname_len]
    }

    /// The name from label `i` on (`i == label_count` is the root).
    pub(crate) fn suffix(&self, i: usize) -> &[u8] {
        let start = if i >= self.label_count { self.lname_len - 1 } else { usize::from(self.labels[i]) };
        &self.lname[start..self.lname_len]
    }

    /// Offset in the message of the name from label `i` on (a compression pointer target).
    pub(crate) fn suffix_offset(&self, i: usize) -> usize {
        let start = if i >= self.label_count { self.lname_len - 1 } else { usize::from(self.labels[i]) };
        HEADER_LEN + start
    }

    /// Label `i`'s bytes (lower-cased).
    pub(crate) fn label(&self, i: usize) -> &[u8] {
        let start = usize::from(self.labels[i]);
        let len = usize::from(self.lname[start]);
        &self.lname[start + 1..start + 1 + len]
    }
}

/// The outcome of reading a request. `Ok` is large on purpose: the request lives on the stack,
/// so reading one allocates nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// Nothing to answer: too short for a header, or a response.
    Drop,
    /// Answer with a header only (and the question, when `question_end` is set): FORMERR, NOTIMP.
    Reject {
        id: u16,
        flags: u16,
        rcode: u8,
        question_end: Option<usize>,
    },
    Ok(Request),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
}

/// Skips a name that may end in a compression pointer; a pointer must point backwards, before
/// the name. Returns the offset after the name.
pub(crate) fn skip_name(b: &[u8], mut pos: usize) -> Option<usize> {
    let start = pos;
    let mut len = 0usize;
    loop {
        let l = *b.get(pos)?;
        match l & 0xC0 {
            0x00 if l == 0 => return Some(pos + 1),
            0x00 => {
                len += usize::from(l) + 1;
                if len + 1 > MAX_NAME {
                    return None;
                }
                pos += 1 + usize::from(l);
            }
            0xC0 => {
                let target = usize::from(u16::from_be_bytes([l & 0x3F, *b.get(pos + 1)?]));
                return (target < start).then_some(pos + 2);
            }
            _ => return None,
        }
    }
}

/// Reads a request. Never panics, whatever the bytes.
pub(crate) fn parse(q: &[u8]) -> Parsed {
    let (Some(id), Some(flags)) = (be16(q, 0), be16(q, 2)) else { return Parsed::Drop };
    if q.len() < HEADER_LEN || flags & 0x8000 != 0 {
        return Parsed::Drop;
    }
    let reject = |rcode, question_end| Parsed::Reject { id, flags, rcode, question_end };
    if (flags >> 11) & 0xF != 0 {
        return reject(RCODE_NOTIMP, None);
    }
    let counts = [be16(q, 4), be16(q, 6), be16(q, 8), be16(q, 10)];
    let [Some(qd), Some(an), Some(ns), Some(ar)] = counts else { return Parsed::Drop };
    if qd != 1 || an > 1 || ns > 1 || ar > 2 {
        return reject(RCODE_FORMERR, None);
    }

    let mut req = Request {
        id,
        flags,
        question_end: 0,
        qtype: 0,
        qclass: 0,
        edns: None,
        lname: [0; MAX_NAME],
        lname_len: 0,
        labels: [0; MAX_LABELS],
        label_count: 0,
    };
    // The question name: plain labels only (nothing precedes it that a pointer could name).
    let mut pos = HEADER_LEN;
    loop {
        let Some(&l) = q.get(pos) else { return reject(RCODE_FORMERR, None) };
        if l & 0xC0 != 0 || req.lname_len + 1 + usize::from(l) > MAX_NAME {
            return reject(RCODE_FORMERR, None);
        }
        let Some(label) = q.get(pos + 1..pos + 1 + usize::from(l)) else { return reject(RCODE_FORMERR, None) };
        if l != 0 {
            // At most 127 labels fit in 255 bytes, so the index fits too.
            req.labels[req.label_count] = req.lname_len as u8;
            req.label_count += 1;
        }
        let at = req.lname_len;
        req.lname[at] = l;
        for (d, s) in req.lname[at + 1..at + 1 + label.len()].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        req.lname_len += 1 + label.len();
        pos += 1 + label.len();
        if l == 0 {
            break;
        }
    }
    let (Some(qtype), Some(qclass)) = (be16(q, pos), be16(q, pos + 2)) else { return reject(RCODE_FORMERR, None) };
    req.qtype = qtype;
    req.qclass = qclass;
    pos += 4;
    req.question_end = pos;
    let formerr = reject(RCODE_FORMERR, Some(pos));

    for i in 0..(an + ns + ar) {
        let owner = pos;
        let Some(after) = skip_name(q, pos) else { return formerr };
        let (Some(rtype), Some(class), Some(ttl), Some(rdlen)) =
            (be16(q, after), be16(q, after + 2), be32(q, after + 4), be16(q, after + 8))
        else {
            return formerr;
        };
        let rdata = after + 10;
        let end = rdata + usize::from(rdlen);
        if end > q.len() {
            return formerr;
        }
        if rtype == TYPE_OPT {
            // RFC 6891 §6.1.1: one OPT, in the additional section, owned by the root.
            if i < an + ns || req.edns.is_some() || after != owner + 1 || q[owner] != 0 {
                return formerr;
            }
            let mut o = rdata;
            while o < end {
                let Some(olen) = be16(q, o + 2) else { return formerr };
                o += 4 + usize::from(olen);
            }
            if o != end {
                return formerr;
            }
            req.edns = Some(Edns { udp_size: class, version: (ttl >> 16) as u8, dnssec_ok: ttl & 0x8000 != 0 });
        }
        pos = end;
    }
    // Bytes after the last record are ignored, as miekg/dns does.
    Parsed::Ok(req)
}

/// Appends a big-endian u16.
pub(crate) fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a big-endian u32.
pub(crate) fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a compression pointer to `offset`.
pub(crate) fn put_pointer(out: &mut Vec<u8>, offset: usize) {
    put16(out, 0xC000 | (offset as u16 & 0x3FFF));
}

/// The reply's header flags: QR, the request's opcode, and (for QUERY) its RD and CD bits, as
/// miekg/dns's `SetReply`; RA is never set (this server does not recurse for its own zone).
pub(crate) fn reply_flags(request_flags: u16, aa: bool, tc: bool, rcode: u8) -> u16 {
    let opcode = request_flags & 0x7800;
    let mut f = 0x8000 | opcode | u16::from(rcode & 0xF);
    if opcode == 0 {
        f |= request_flags & 0x0100; // RD
        f |= request_flags & 0x0010; // CD
    }
    if aa {
        f |= 0x0400;
    }
    if tc {
        f |= 0x0200;
    }
    f
}

/// Walks one encoded resource record starting at `pos`; returns its end. Used on records this
/// crate encoded (owner names are plain or end in a pointer).
pub(crate) fn record_end(b: &[u8], pos: usize) -> Option<usize> {
    let mut p = pos;
    loop {
        let l = *b.get(p)?;
        if l == 0 {
            p += 1;
            break;
        }
        if l & 0xC0 == 0xC0 {
            p += 2;
            break;
        }
        p += 1 + usize::from(l);
    }
    let rdlen = usize::from(be16(b, p + 8)?);
    let end = p + 10 + rdlen;
    (end <= b.len()).then_some(end)
}

/// Converts a presentation name (`api.default.svc.cluster.local`, trailing dot optional) to
/// lower-cased wire form; `None` if a label is empty or too long, or the name is too long.
pub(crate) fn wire_name(name: &str) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|c| c.to_ascii_lowercase()));
        }
    }
    out.push(0);
    (out.len() <= MAX_NAME).then_some(out)
}
