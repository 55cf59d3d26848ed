//! SPDY/3 frames (draft-mbelshe-httpbis-spdy-00, section 2.6). Every frame starts with eight
//! bytes: a control frame has the high bit set, version 3, its type, flags and a 24-bit length;
//! a data frame has the stream id, flags and length. Header blocks (in SYN_STREAM, SYN_REPLY
//! and HEADERS) are zlib-compressed with a preset dictionary, in one compression context per
//! direction for the life of the connection: the [`Codec`] keeps both.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Header name/value pairs, names lower case.
pub type Headers = Vec<(String, String)>;

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
/// The largest payload a frame's 24-bit length can carry.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes used here.
pub const PROTOCOL_ERROR: u32 = 1;
pub const CANCEL: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// SETTINGS, WINDOW_UPDATE and control frames of unknown types: read and ignored.
    Ignored {
        kind: u16,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("SPDY frame of type {kind} is too short ({length} bytes)")]
    Short { kind: u16, length: usize },
    #[error("SPDY header block does not decompress: {0}")]
    Compression(String),
    #[error("SPDY header block is malformed")]
    HeaderBlock,
}

/// The eight bytes before a frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    word: u32,
    flags: u8,
    pub length: usize,
}

impl FrameHeader {
    pub fn parse(bytes: [u8; 8]) -> FrameHeader {
        FrameHeader {
            word: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            flags: bytes[4],
            length: usize::from(bytes[5]) << 16 | usize::from(bytes[6]) << 8 | usize::from(bytes[7]),
        }
    }

    fn control(&self) -> bool {
        self.word & 0x8000_0000 != 0
    }
}

/// The preset dictionary of SPDY/3 header compression (section 2.6.10.1): common header names,
/// each with a 32-bit length before it, then status codes, reason phrases, dates and values.
fn dictionary() -> Vec<u8> {
    const NAMES: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &[&str] = &[
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information", "204 No Content", "301 Moved Permanently", "400 Bad Request", "401 Unauthorized",
        "403 Forbidden", "404 Not Found", "500 Internal Server Error", "501 Not Implemented", "503 Service Unavailable",
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,",
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    ];
    let mut bytes = Vec::with_capacity(1423);
    for name in NAMES {
        bytes.extend_from_slice(&(name.len() as u32).to_be_bytes());
        bytes.extend_from_slice(name.as_bytes());
    }
    for part in TAIL {
        bytes.extend_from_slice(part.as_bytes());
    }
    bytes
}

/// One connection's header compression, both directions, and frame encoding and decoding.
pub struct Codec {
    dictionary: Vec<u8>,
    inflate: Decompress,
    deflate: Compress,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

impl Codec {
    pub fn new() -> Codec {
        let dictionary = dictionary();
        let mut deflate = Compress::new(Compression::default(), true);
        deflate.set_dictionary(&dictionary).expect("a fresh zlib stream takes a dictionary");
        Codec { dictionary, inflate: Decompress::new(true), deflate }
    }

    /// Decodes one frame from its header and payload.
    pub fn decode(&mut self, header: FrameHeader, payload: Bytes) -> Result<Frame, FrameError> {
        if !header.control() {
            return Ok(Frame::Data { stream_id: header.word & 0x7fff_ffff, flags: header.flags, data: payload });
        }
        let version = ((header.word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let kind = (header.word & 0xffff) as u16;
        let minimum = match kind {
            SYN_STREAM => 10,
            SYN_REPLY | HEADERS | RST_STREAM | GOAWAY | WINDOW_UPDATE => 4,
            PING | SETTINGS => 4,
            _ => 0,
        };
        if payload.len() < minimum {
            return Err(FrameError::Short { kind, length: payload.len() });
        }
        let word = |at: usize| u32::from_be_bytes([payload[at], payload[at + 1], payload[at + 2], payload[at + 3]]);
        let stream_id = || word(0) & 0x7fff_ffff;
        Ok(match kind {
            SYN_STREAM => Frame::SynStream {
                stream_id: stream_id(),
                associated_to: word(4) & 0x7fff_ffff,
                priority: payload[8] >> 5,
                flags: header.flags,
                headers: self.read_headers(&payload[10..])?,
            },
            SYN_REPLY => Frame::SynReply {
                stream_id: stream_id(),
                flags: header.flags,
                headers: self.read_headers(&payload[4..])?,
            },
            HEADERS => Frame::Headers {
                stream_id: stream_id(),
                flags: header.flags,
                headers: self.read_headers(&payload[4..])?,
            },
            RST_STREAM if payload.len() >= 8 => Frame::RstStream { stream_id: stream_id(), status: word(4) },
            GOAWAY if payload.len() >= 8 => Frame::GoAway { last_good_stream_id: stream_id(), status: word(4) },
            GOAWAY => Frame::GoAway { last_good_stream_id: stream_id(), status: 0 },
            PING => Frame::Ping { id: word(0) },
            RST_STREAM => return Err(FrameError::Short { kind, length: payload.len() }),
            other => Frame::Ignored { kind: other },
        })
    }

    /// Appends `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]| {
            out.extend_from_slice(&(0x8000_0000u32 | u32::from(VERSION) << 16 | u32::from(kind)).to_be_bytes());
            push_flags_and_length(out, flags, payload.len());
            out.extend_from_slice(payload);
        };
        match frame {
            Frame::SynStream { stream_id, associated_to, priority, flags, headers } => {
                let mut payload = Vec::new();
                payload.extend_from_slice(&stream_id.to_be_bytes());
                payload.extend_from_slice(&associated_to.to_be_bytes());
                payload.extend_from_slice(&[priority << 5, 0]);
                self.write_headers(headers, &mut payload);
                control(out, SYN_STREAM, *flags, &payload);
            }
            Frame::SynReply { stream_id, flags, headers } | Frame::Headers { stream_id, flags, headers } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) { SYN_REPLY } else { HEADERS };
                let mut payload = stream_id.to_be_bytes().to_vec();
                self.write_headers(headers, &mut payload);
                control(out, kind, *flags, &payload);
            }
            Frame::RstStream { stream_id, status } => {
                control(out, RST_STREAM, 0, &[stream_id.to_be_bytes(), status.to_be_bytes()].concat())
            }
            Frame::GoAway { last_good_stream_id, status } => {
                control(out, GOAWAY, 0, &[last_good_stream_id.to_be_bytes(), status.to_be_bytes()].concat())
            }
            Frame::Ping { id } => control(out, PING, 0, &id.to_be_bytes()),
            Frame::Data { stream_id, flags, data } => {
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                push_flags_and_length(out, *flags, data.len());
                out.extend_from_slice(data);
            }
            Frame::Ignored { .. } => {}
        }
    }

    fn read_headers(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let mut block = Vec::with_capacity(compressed.len() * 4 + 64);
        let mut input = compressed;
        loop {
            if block.capacity() - block.len() < 256 {
                block.reserve(block.capacity().max(256));
            }
            let before = self.inflate.total_in();
            let result = self.inflate.decompress_vec(input, &mut block, FlushDecompress::Sync);
            input = &input[(self.inflate.total_in() - before) as usize..];
            match result {
                Ok(Status::StreamEnd) => break,
                Ok(_) if input.is_empty() && block.len() < block.capacity() => break,
                Ok(_) => {}
                Err(error) if error.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dictionary)
                        .map_err(|e| FrameError::Compression(e.to_string()))?;
                }
                Err(error) => return Err(FrameError::Compression(error.to_string())),
            }
        }
        parse_header_block(&block)
    }

    fn write_headers(&mut self, headers: &Headers, out: &mut Vec<u8>) {
        let block = header_block(headers);
        let mut input = &block[..];
        loop {
            out.reserve(input.len() + 64);
            let before = self.deflate.total_in();
            self.deflate.compress_vec(input, out, FlushCompress::Sync).expect("zlib compression into a growing buffer");
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Done once everything went in and the flush had room to finish.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
    }
}

fn push_flags_and_length(out: &mut Vec<u8>, flags: u8, length: usize) {
    let length = length.min(MAX_PAYLOAD) as u32;
    out.push(flags);
    out.extend_from_slice(&length.to_be_bytes()[1..]);
}

/// The uncompressed header block: the number of pairs, then each name and value with a 32-bit
/// length before it.
fn header_block(headers: &Headers) -> Vec<u8> {
    let mut block = (headers.len() as u32).to_be_bytes().to_vec();
    for (name, value) in headers {
        for text in [name.to_ascii_lowercase().as_str(), value.as_str()] {
            block.extend_from_slice(&(text.len() as u32).to_be_bytes());
            block.extend_from_slice(text.as_bytes());
        }
    }
    block
}

fn parse_header_block(block: &[u8]) -> Result<Headers, FrameError> {
    struct Cursor<'a>(&'a [u8]);
    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
            if self.0.len() < n {
                return Err(FrameError::HeaderBlock);
            }
            let (taken, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(taken)
        }
        fn length(&mut self) -> Result<usize, FrameError> {
            let b = self.take(4)?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        }
        fn text(&mut self) -> Result<String, FrameError> {
            let length = self.length()?;
            Ok(String::from_utf8_lossy(self.take(length)?).into_owned())
        }
    }
    let mut cursor = Cursor(block);
    let count = cursor.length()?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = cursor.text()?.to_ascii_lowercase();
        headers.push((name, cursor.text()?));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: &[Frame]) -> Vec<Frame> {
        // One codec writes (as the client would), another reads: their zlib contexts run on.
        let (mut writer, mut reader) = (Codec::new(), Codec::new());
        let mut bytes = Vec::new();
        for frame in frames {
            writer.encode(frame, &mut bytes);
        }
        let mut decoded = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let header = FrameHeader::parse(rest[..8].try_into().unwrap());
            let payload = Bytes::copy_from_slice(&rest[8..8 + header.length]);
            decoded.push(reader.decode(header, payload).unwrap());
            rest = &rest[8 + header.length..];
        }
        decoded
    }

    #[test]
    fn the_dictionary_is_the_protocols() {
        let dictionary = dictionary();
        assert_eq!(dictionary.len(), 1423);
        // zlib names the dictionary by its Adler-32 in the stream header; spdystream's peers
        // (Go's compress/zlib) check it.
        let mut deflate = Compress::new(Compression::default(), true);
        let id = deflate.set_dictionary(&dictionary).unwrap();
        assert_eq!(id, 0xe3c6_a7c2, "adler32 {id:#x}");
    }

    #[test]
    fn frames_survive_a_round_trip_with_a_shared_compression_context() {
        let headers = |id: &str, kind: &str| {
            vec![
                ("streamtype".to_string(), kind.to_string()),
                ("port".to_string(), "8080".to_string()),
                ("requestid".to_string(), id.to_string()),
            ]
        };
        let frames = vec![
            Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, flags: 0, headers: headers("0", "error") },
            Frame::SynStream { stream_id: 3, associated_to: 0, priority: 0, flags: 0, headers: headers("0", "data") },
            Frame::SynReply { stream_id: 1, flags: 0, headers: vec![] },
            Frame::Data { stream_id: 3, flags: 0, data: Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n") },
            Frame::Data { stream_id: 3, flags: FLAG_FIN, data: Bytes::new() },
            Frame::SynStream { stream_id: 5, associated_to: 0, priority: 0, flags: 0, headers: headers("1", "data") },
            Frame::RstStream { stream_id: 3, status: CANCEL },
            Frame::Ping { id: 7 },
            Frame::GoAway { last_good_stream_id: 5, status: 0 },
        ];
        assert_eq!(round_trip(&frames), frames);
    }

    #[test]
    fn settings_and_window_updates_are_read_and_ignored() {
        let mut codec = Codec::new();
        let settings = [0x80, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x0c];
        let payload = Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0]);
        assert_eq!(codec.decode(FrameHeader::parse(settings), payload).unwrap(), Frame::Ignored { kind: 4 });
        let window = [0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08];
        assert_eq!(
            codec.decode(FrameHeader::parse(window), Bytes::from_static(&[0, 0, 0, 1, 0, 1, 0, 0])).unwrap(),
            Frame::Ignored { kind: 9 }
        );
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let mut codec = Codec::new();
        let version2 = [0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(codec.decode(FrameHeader::parse(version2), Bytes::new()), Err(FrameError::Version(2)));
        let short = [0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02];
        assert!(matches!(
            codec.decode(FrameHeader::parse(short), Bytes::from_static(&[0, 1])),
            Err(FrameError::Short { .. })
        ));
        let garbage = [0x80, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08];
        assert!(matches!(
            codec.decode(FrameHeader::parse(garbage), Bytes::from_static(&[0, 0, 0, 1, 1, 2, 3, 4])),
            Err(FrameError::Compression(_))
        ));
        assert_eq!(parse_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']), Err(FrameError::HeaderBlock));
        assert_eq!(parse_header_block(&[0xff, 0xff, 0xff, 0xff]), Err(FrameError::HeaderBlock));
    }
}
