//! The bodies the proxy sends.
//!
//! [`ResponseBody`], to the client: the upstream response's, relayed frame by frame as it
//! arrives (never buffered), or a short fixed one of the proxy's own. It carries the request's
//! [`Exchange`], which records the metrics and the access-log line when the body is done or
//! dropped, and gives the upstream connection back to the pool once its response was read whole.
//!
//! [`RequestBody`], to an endpoint: the client's, streamed, or none for a bodiless request sent
//! again (the client's body cannot be made anew once hyper has taken it).

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::exchange::Exchange;
use crate::upstream::Http1Sender;

/// The body of a request to an endpoint.
pub(crate) enum RequestBody {
    /// The client's, relayed as it arrives.
    Client(Incoming),
    /// No body: a bodiless request rebuilt to be sent to another endpoint.
    Empty,
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Client(body) => Pin::new(body).poll_frame(cx),
            RequestBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Client(body) => body.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Client(body) => body.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// An HTTP/1.1 upstream connection to pool again once its response has been read.
pub(crate) struct Reuse {
    pub(crate) address: SocketAddr,
    pub(crate) sender: Http1Sender,
}

pub(crate) enum Content {
    Upstream { body: Incoming, reuse: Option<Reuse> },
    Fixed(Option<Bytes>),
}

impl Content {
    pub(crate) fn fixed(text: &'static str) -> Content {
        Content::Fixed(Some(Bytes::from_static(text.as_bytes())))
    }
}

pub(crate) struct ResponseBody {
    content: Content,
    exchange: Exchange,
}

impl ResponseBody {
    pub(crate) fn new(content: Content, exchange: Exchange) -> Self {
        ResponseBody { content, exchange }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        match &mut this.content {
            Content::Upstream { body, reuse } => {
                let frame = ready!(Pin::new(&mut *body).poll_frame(cx));
                let finished = match &frame {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            this.exchange.sent(data.len());
                        }
                        body.is_end_stream()
                    }
                    Some(Err(_)) => {
                        // The upstream connection failed mid-response: it cannot serve again.
                        reuse.take();
                        false
                    }
                    None => true,
                };
                if finished {
                    if let Some(Reuse { address, sender }) = reuse.take() {
                        this.exchange.pool().put_http1(address, sender);
                    }
                }
                Poll::Ready(frame)
            }
            Content::Fixed(data) => Poll::Ready(data.take().map(|data| {
                this.exchange.sent(data.len());
                Ok(Frame::data(data))
            })),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.content {
            Content::Upstream { body, .. } => body.is_end_stream(),
            Content::Fixed(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.content {
            Content::Upstream { body, .. } => body.size_hint(),
            Content::Fixed(data) => SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64)),
        }
    }
}
