//! Where a chunked body ends (RFC 9112 §7.1), found while its bytes are relayed verbatim: the
//! fast path passes an upstream's chunked response on as it came, so all it needs to know is
//! which byte is the last.
//!
//! Strict where framing is concerned (CRLF line ends, hex sizes that fit in 64 bits, the CRLF
//! after each chunk's data), bounded where a peer could make it read forever without progress
//! (a chunk-size line with its extensions, and the trailer section).

/// Chunk extensions and each trailer line may run to this, the whole trailer section to
/// [`MAX_TRAILERS`].
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the hex digits of a chunk size (`digits` read so far).
    Size {
        digits: u8,
    },
    /// After the size: whitespace and extensions, up to the CR.
    Extension {
        len: usize,
    },
    /// The LF of a chunk-size line.
    SizeLf,
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// Inside a trailer line.
    Trailer {
        len: usize,
    },
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    Done,
}

/// Why a chunked body cannot be relayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChunkError {
    #[error("invalid chunk size line")]
    Size,
    #[error("chunk size too large")]
    Overflow,
    #[error("chunk data not followed by CRLF")]
    DataEnd,
    #[error("chunk extension or trailer too long")]
    TooLong,
    #[error("invalid trailer section")]
    Trailer,
}

/// The position in a chunked body.
#[derive(Clone, Debug)]
pub(crate) struct ChunkedScanner {
    state: State,
    size: u64,
    trailers: usize,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner { state: State::Size { digits: 0 }, size: 0, trailers: 0 }
    }
}

impl ChunkedScanner {
    /// Whether the body's last byte has been seen.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads `bytes`, the body's next ones; returns how many of them belong to the body (all of
    /// them, unless it ended inside `bytes`).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<usize, ChunkError> {
        let mut at = 0;
        while at < bytes.len() {
            if let State::Data { left } = self.state {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len() - at);
                at += take;
                let left = left - take as u64;
                self.state = if left == 0 { State::DataCr } else { State::Data { left } };
                continue;
            }
            let byte = bytes[at];
            at += 1;
            self.state = match self.state {
                State::Size { digits } => match (byte as char).to_digit(16) {
                    Some(digit) => {
                        if self.size >> 60 != 0 {
                            return Err(ChunkError::Overflow);
                        }
                        self.size = self.size << 4 | u64::from(digit);
                        State::Size { digits: digits.saturating_add(1) }
                    }
                    None if digits == 0 => return Err(ChunkError::Size),
                    None => match byte {
                        b'\r' => State::SizeLf,
                        b' ' | b'\t' | b';' => State::Extension { len: 1 },
                        _ => return Err(ChunkError::Size),
                    },
                },
                State::Extension { len } => match byte {
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(ChunkError::Size),
                    _ if len >= MAX_LINE => return Err(ChunkError::TooLong),
                    _ => State::Extension { len: len + 1 },
                },
                State::SizeLf if byte == b'\n' => {
                    let size = std::mem::take(&mut self.size);
                    if size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data { left: size }
                    }
                }
                State::SizeLf => return Err(ChunkError::Size),
                State::DataCr if byte == b'\r' => State::DataLf,
                State::DataLf if byte == b'\n' => State::Size { digits: 0 },
                State::DataCr | State::DataLf => return Err(ChunkError::DataEnd),
                State::TrailerStart => match byte {
                    b'\r' => State::EndLf,
                    b'\n' => return Err(ChunkError::Trailer),
                    _ => self.trailer_byte(1)?,
                },
                State::Trailer { len } => match byte {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(ChunkError::Trailer),
                    _ => self.trailer_byte(len + 1)?,
                },
                State::TrailerLf if byte == b'\n' => State::TrailerStart,
                State::TrailerLf => return Err(ChunkError::Trailer),
                State::EndLf if byte == b'\n' => {
                    self.state = State::Done;
                    return Ok(at);
                }
                State::EndLf => return Err(ChunkError::Trailer),
                State::Data { .. } | State::Done => unreachable!("handled above"),
            };
        }
        Ok(at)
    }

    fn trailer_byte(&mut self, len: usize) -> Result<State, ChunkError> {
        self.trailers += 1;
        if len > MAX_LINE || self.trailers > MAX_TRAILERS {
            return Err(ChunkError::TooLong);
        }
        Ok(State::Trailer { len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` whole, then byte by byte: both must agree.
    fn scan(body: &[u8]) -> Result<Option<usize>, ChunkError> {
        let whole = {
            let mut scanner = ChunkedScanner::default();
            scanner.feed(body).map(|used| scanner.is_done().then_some(used))
        };
        let mut scanner = ChunkedScanner::default();
        let mut split = Ok(None);
        for (i, byte) in body.iter().enumerate() {
            match scanner.feed(std::slice::from_ref(byte)) {
                Err(error) => {
                    split = Err(error);
                    break;
                }
                Ok(1) if scanner.is_done() => {
                    split = Ok(Some(i + 1));
                    break;
                }
                Ok(used) => assert_eq!(used, 1),
            }
        }
        assert_eq!(whole, split, "{:?}", String::from_utf8_lossy(body));
        whole
    }

    #[test]
    fn the_end_of_a_chunked_body_is_found() {
        type Case<'a> = (&'a [u8], Result<Option<usize>, ChunkError>);
        let cases: &[Case] = &[
            (b"0\r\n\r\n", Ok(Some(5))),
            (b"0\r\n\r\nGET / HTTP/1.1\r\n", Ok(Some(5))),
            (b"3\r\nabc\r\n0\r\n\r\n", Ok(Some(13))),
            (b"A\r\n0123456789\r\n0\r\n\r\n", Ok(Some(20))),
            (b"a;name=value\r\n0123456789\r\n0\r\n\r\n", Ok(Some(31))),
            (b"1 ;x\r\nz\r\n0\r\n\r\n", Ok(Some(14))),
            (b"0\r\nChecksum: 1\r\nMore: 2\r\n\r\n", Ok(Some(27))),
            (b"00000000000000000003\r\nabc\r\n0\r\n\r\n", Ok(Some(32))),
            (b"3\r\nab", Ok(None)),
            (b"3\r\nabc\r\n", Ok(None)),
            (b"0\r\nChecksum: 1\r\n", Ok(None)),
            (b"\r\n", Err(ChunkError::Size)),
            (b"x\r\n", Err(ChunkError::Size)),
            (b"3\nabc\r\n", Err(ChunkError::Size)),
            (b"3;\nabc", Err(ChunkError::Size)),
            (b"-3\r\n", Err(ChunkError::Size)),
            (b"3\r\nabcd\r\n", Err(ChunkError::DataEnd)),
            (b"3\r\nabc\n0\r\n\r\n", Err(ChunkError::DataEnd)),
            (b"10000000000000000\r\n", Err(ChunkError::Overflow)),
            (b"0\r\nX: 1\n\r\n", Err(ChunkError::Trailer)),
            (b"0\r\n\n", Err(ChunkError::Trailer)),
            (b"0\r\n\rX", Err(ChunkError::Trailer)),
        ];
        for (body, expected) in cases {
            assert_eq!(scan(body), *expected, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn long_extensions_and_trailers_are_refused() {
        let mut long_extension = b"1;".to_vec();
        long_extension.extend(std::iter::repeat_n(b'x', MAX_LINE));
        long_extension.extend_from_slice(b"\r\n");
        assert_eq!(scan(&long_extension), Err(ChunkError::TooLong));

        let mut many_trailers = b"0\r\n".to_vec();
        for _ in 0..=MAX_TRAILERS / 98 {
            many_trailers.extend(std::iter::repeat_n(b'x', 98));
            many_trailers.extend_from_slice(b"\r\n");
        }
        assert_eq!(scan(&many_trailers), Err(ChunkError::TooLong));
    }

    #[test]
    fn a_large_chunk_is_skipped_without_reading_it() {
        let mut scanner = ChunkedScanner::default();
        assert_eq!(scanner.feed(b"ffffffff\r\n"), Ok(10));
        let data = vec![0u8; 1 << 20];
        for _ in 0..4095 {
            assert_eq!(scanner.feed(&data), Ok(data.len()));
        }
        assert_eq!(scanner.feed(&data[..(1 << 20) - 1]), Ok((1 << 20) - 1));
        assert_eq!(scanner.feed(b"\r\n0\r\n\r\nextra"), Ok(7));
        assert!(scanner.is_done());
    }
}
