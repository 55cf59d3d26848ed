//! Netlink message and attribute layout: a growable byte buffer with nests, and a reader.
//!
//! Attributes are TLVs: `u16` length (header included, padding excluded), `u16` type, the
//! payload, then padding to 4 bytes. A nest is an attribute whose payload is more attributes;
//! its type carries `NLA_F_NESTED`.

/// `NLA_F_NESTED`: the attribute's payload is a list of attributes.
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
/// `NLA_TYPE_MASK`: the type without the nested and byte-order flags.
pub(crate) const NLA_TYPE_MASK: u16 = 0x3fff;

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;

/// Rounds `len` up to the 4-byte netlink alignment.
pub(crate) const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A buffer that netlink messages and attributes are written into.
#[derive(Clone, Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Writer {
        Writer { buf: Vec::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Starts a netlink message with a `nfgenmsg` header; returns its offset for `end_msg`.
    pub(crate) fn begin_msg(&mut self, msg_type: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched in end_msg
        self.buf.extend_from_slice(&msg_type.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
                                                         // struct nfgenmsg { u8 nfgen_family; u8 version; __be16 res_id; }
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    /// Finishes the message started at `start`: writes its length.
    pub(crate) fn end_msg(&mut self, start: usize) {
        let len = self.buf.len() - start;
        let len = u32::try_from(len).expect("a netlink message is far smaller than 4 GiB");
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn attr_header(&mut self, kind: u16, payload_len: usize) {
        let len = u16::try_from(4 + payload_len).expect("attribute payloads are bounded well below 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
    }

    fn pad(&mut self) {
        let padded = align(self.buf.len());
        self.buf.resize(padded, 0);
    }

    pub(crate) fn bytes(&mut self, kind: u16, payload: &[u8]) {
        self.attr_header(kind, payload.len());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    /// A NUL-terminated string, as the kernel's `NLA_STRING`/`NLA_NUL_STRING` policies accept.
    pub(crate) fn strz(&mut self, kind: u16, value: &str) {
        self.attr_header(kind, value.len() + 1);
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    pub(crate) fn u8(&mut self, kind: u16, value: u8) {
        self.bytes(kind, &[value]);
    }

    pub(crate) fn be16(&mut self, kind: u16, value: u16) {
        self.bytes(kind, &value.to_be_bytes());
    }

    pub(crate) fn be32(&mut self, kind: u16, value: u32) {
        self.bytes(kind, &value.to_be_bytes());
    }

    pub(crate) fn be64(&mut self, kind: u16, value: u64) {
        self.bytes(kind, &value.to_be_bytes());
    }

    /// Starts a nested attribute; returns its offset for `end_nest`.
    pub(crate) fn begin_nest(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        start
    }

    pub(crate) fn end_nest(&mut self, start: usize) {
        let len = self.buf.len() - start;
        let len = u16::try_from(len).expect("nests are kept below 64 KiB by their writers");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Drops everything written after `len` (used to undo an element that made a nest too big).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }
}

/// One attribute read from a buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attr<'a> {
    /// The type without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`.
    pub(crate) kind: u16,
    pub(crate) payload: &'a [u8],
}

impl<'a> Attr<'a> {
    pub(crate) fn nested(&self) -> Attrs<'a> {
        Attrs { rest: self.payload }
    }

    pub(crate) fn be16(&self) -> Option<u16> {
        Some(u16::from_be_bytes(self.payload.get(..2)?.try_into().ok()?))
    }

    pub(crate) fn u8(&self) -> Option<u8> {
        self.payload.first().copied()
    }

    pub(crate) fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        let octets: [u8; 4] = self.payload.get(..4)?.try_into().ok()?;
        Some(std::net::Ipv4Addr::from(octets))
    }
}

/// An iterator over the attributes in a buffer; stops at the first malformed one.
#[derive(Clone, Debug)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: buf }
    }

    /// The first attribute of type `kind`.
    pub(crate) fn get(self, kind: u16) -> Option<Attr<'a>> {
        self.into_iter().find(|a: &Attr<'a>| a.kind == kind)
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        if self.rest.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([self.rest[0], self.rest[1]]));
        let kind = u16::from_ne_bytes([self.rest[2], self.rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let payload = &self.rest[4..len];
        self.rest = self.rest.get(align(len)..).unwrap_or(&[]);
        Some(Attr { kind, payload })
    }
}

/// One netlink message read from a datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Msg<'a> {
    pub(crate) kind: u16,
    pub(crate) seq: u32,
    /// Everything after the 16-byte `nlmsghdr`.
    pub(crate) payload: &'a [u8],
}

impl Msg<'_> {
    /// For `NLMSG_ERROR`: the errno (0 for an acknowledgement, positive otherwise).
    pub(crate) fn error_code(&self) -> Option<i32> {
        let raw = i32::from_ne_bytes(self.payload.get(..4)?.try_into().ok()?);
        Some(-raw)
    }
}

/// Splits a datagram into netlink messages; stops at the first malformed one.
pub(crate) fn messages(mut buf: &[u8]) -> impl Iterator<Item = Msg<'_>> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            buf = &[];
            return None;
        }
        let msg = Msg {
            kind: u16::from_ne_bytes([buf[4], buf[5]]),
            seq: u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: &buf[NLMSG_HDRLEN..len],
        };
        buf = buf.get(align(len)..).unwrap_or(&[]);
        Some(msg)
    })
}
