//! A stream whose first bytes were already read (to tell HTTP/2 with prior knowledge from
//! HTTP/1.1 on the plain port) and are handed back before the rest.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// `inner`, read after `prefix`.
#[derive(Debug)]
pub(crate) struct PrefixedIo<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> PrefixedIo<T> {
    pub(crate) fn new(prefix: Bytes, inner: T) -> Self {
        PrefixedIo { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PrefixedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let len = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..len]);
        self.prefix.advance(len);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PrefixedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the first bytes of a plain connection say it speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Http1,
    Http2,
    /// The bytes so far are a prefix of the HTTP/2 preface: read more.
    Undecided,
}

pub(crate) fn sniff(first: &[u8]) -> Sniffed {
    let len = first.len().min(H2_PREFACE.len());
    if first[..len] != H2_PREFACE[..len] {
        Sniffed::Http1
    } else if len == H2_PREFACE.len() {
        Sniffed::Http2
    } else {
        Sniffed::Undecided
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn the_preface_decides() {
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniffed::Http1);
        assert_eq!(sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"), Sniffed::Http2);
        assert_eq!(sniff(b"PRI * HT"), Sniffed::Undecided);
        assert_eq!(sniff(b"PRIX"), Sniffed::Http1);
    }

    #[tokio::test]
    async fn the_prefix_is_read_first() {
        let mut io = PrefixedIo::new(Bytes::from_static(b"abc"), &b"def"[..]);
        let mut all = String::new();
        io.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "abcdef");
    }
}
