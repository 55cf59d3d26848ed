//! A served SPDY connection. [`serve`] reads frames until the client goes away: each stream
//! the client opens is answered (SYN_REPLY) and handed over as a [`Stream`], its data frames
//! follow it, pings are answered. Everything written goes through one writer task, which owns
//! the outgoing compression context, so frames leave in the order they were queued.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::frame::{Codec, Frame, FrameHeader, Headers, CANCEL, FLAG_FIN, PROTOCOL_ERROR};

/// What a stream's reader gets next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Data(Bytes),
    /// The client will send no more (FIN), or the connection ended.
    End,
    /// The client reset the stream: it wants nothing more either way.
    Reset,
}

/// A stream the client opened.
#[derive(Debug)]
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    incoming: mpsc::Receiver<Read>,
    sender: StreamSender,
}

impl Stream {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The next piece of data, or how the client's side ended.
    pub async fn read(&mut self) -> Read {
        self.incoming.recv().await.unwrap_or(Read::End)
    }

    pub fn sender(&self) -> StreamSender {
        self.sender.clone()
    }
}

/// Writes to one stream.
#[derive(Debug, Clone)]
pub struct StreamSender {
    id: u32,
    out: mpsc::Sender<Outgoing>,
}

/// What the writer task gets: frames, then the word to stop (the connection ended; senders
/// still held by stream owners then find it closed).
#[derive(Debug)]
enum Outgoing {
    Frame(Frame),
    Close,
}

/// The connection is gone.
#[derive(Debug, thiserror::Error)]
#[error("the SPDY connection is closed")]
pub struct Closed;

/// Data frames carry at most this much (a frame may carry 16 MiB; smaller ones interleave).
const CHUNK: usize = 32 * 1024;

impl StreamSender {
    pub async fn send(&self, data: Bytes) -> Result<(), Closed> {
        let mut data = data;
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(CHUNK));
            self.out
                .send(Outgoing::Frame(Frame::Data { stream_id: self.id, flags: 0, data: chunk }))
                .await
                .map_err(|_| Closed)?;
        }
        Ok(())
    }

    /// Ends this side of the stream (FIN).
    pub async fn finish(&self) -> Result<(), Closed> {
        self.out
            .send(Outgoing::Frame(Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Bytes::new() }))
            .await
            .map_err(|_| Closed)
    }

    /// Resolves once the connection is gone.
    pub async fn closed(&self) {
        self.out.closed().await
    }
}

/// How many frames may wait for the writer, and pieces of data for a stream's reader.
const QUEUE: usize = 64;

/// Serves one connection: hands every stream the client opens to `streams`, until the client
/// says goodbye or the connection fails.
pub async fn serve<IO>(io: IO, streams: mpsc::Sender<Stream>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(io);
    let (out, queued) = mpsc::channel::<Outgoing>(QUEUE);
    let writing = tokio::spawn(write_frames(writer, queued));
    let send = |frame: Frame| {
        let out = out.clone();
        async move { out.send(Outgoing::Frame(frame)).await.is_ok() }
    };
    let mut codec = Codec::new();
    let mut open: HashMap<u32, mpsc::Sender<Read>> = HashMap::new();
    loop {
        let frame = match read_frame(&mut reader, &mut codec).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(%error, "SPDY connection ends");
                send(Frame::GoAway {
                    last_good_stream_id: open.keys().max().copied().unwrap_or(0),
                    status: PROTOCOL_ERROR,
                })
                .await;
                break;
            }
        };
        match frame {
            Frame::SynStream { stream_id, flags, headers, .. } => {
                if stream_id % 2 == 0 || open.contains_key(&stream_id) {
                    send(Frame::RstStream { stream_id, status: PROTOCOL_ERROR }).await;
                    continue;
                }
                let (incoming_tx, incoming) = mpsc::channel(QUEUE);
                if flags & FLAG_FIN == 0 {
                    open.insert(stream_id, incoming_tx);
                }
                if !send(Frame::SynReply { stream_id, flags: 0, headers: Vec::new() }).await {
                    break;
                }
                let stream = Stream {
                    id: stream_id,
                    headers,
                    incoming,
                    sender: StreamSender { id: stream_id, out: out.clone() },
                };
                if streams.send(stream).await.is_err() {
                    send(Frame::RstStream { stream_id, status: CANCEL }).await;
                }
            }
            Frame::Data { stream_id, flags, data } => {
                if let Some(incoming) = open.get(&stream_id) {
                    if !data.is_empty() {
                        // The reader went away: nothing more for it.
                        let _ = incoming.send(Read::Data(data)).await;
                    }
                }
                if flags & FLAG_FIN != 0 {
                    open.remove(&stream_id);
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(incoming) = open.remove(&stream_id) {
                    let _ = incoming.send(Read::Reset).await;
                }
            }
            Frame::Headers { stream_id, flags, .. } => {
                if flags & FLAG_FIN != 0 {
                    open.remove(&stream_id);
                }
            }
            // The client's pings (odd ids) come back; ours we never send.
            Frame::Ping { id } if id % 2 == 1 => {
                send(Frame::Ping { id }).await;
            }
            Frame::GoAway { .. } => break,
            Frame::Ping { .. } | Frame::SynReply { .. } | Frame::Ignored { .. } => {}
        }
    }
    // Readers see the end; the writer sends what is queued and stops, and whoever still holds a
    // sender finds the connection closed.
    drop(open);
    let _ = out.send(Outgoing::Close).await;
    let _ = writing.await;
}

async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    codec: &mut Codec,
) -> Result<Option<Frame>, Box<dyn std::error::Error + Send + Sync>> {
    let mut header = [0u8; 8];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.into()),
    }
    let header = FrameHeader::parse(header);
    let mut payload = vec![0u8; header.length];
    reader.read_exact(&mut payload).await?;
    Ok(Some(codec.decode(header, Bytes::from(payload))?))
}

async fn write_frames<W: AsyncWrite + Unpin>(mut writer: W, mut queued: mpsc::Receiver<Outgoing>) {
    let mut codec = Codec::new();
    let mut bytes = Vec::new();
    let mut closing = false;
    while let Some(first) = queued.recv().await {
        bytes.clear();
        // Whatever else is queued goes out in the same write.
        let mut next = Some(first);
        while let Some(outgoing) = next.take() {
            match outgoing {
                Outgoing::Frame(frame) => codec.encode(&frame, &mut bytes),
                Outgoing::Close => closing = true,
            }
            if !closing {
                next = queued.try_recv().ok();
            }
        }
        if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() || closing {
            break;
        }
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side of a connection, for tests: encodes what it sends, decodes what it gets.
    struct Client {
        io: tokio::io::DuplexStream,
        codec: Codec,
        replies: Codec,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            let mut bytes = Vec::new();
            self.codec.encode(&frame, &mut bytes);
            self.io.write_all(&bytes).await.unwrap();
        }

        async fn receive(&mut self) -> Option<Frame> {
            read_frame(&mut self.io, &mut self.replies).await.unwrap()
        }
    }

    fn open(id: u32, kind: &str) -> Frame {
        Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: vec![("streamtype".into(), kind.into()), ("port".into(), "80".into())],
        }
    }

    #[tokio::test]
    async fn streams_are_answered_and_carry_data_both_ways() {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let (streams_tx, mut streams) = mpsc::channel(8);
        let server = tokio::spawn(serve(server_io, streams_tx));
        let mut client = Client { io: client_io, codec: Codec::new(), replies: Codec::new() };

        client.send(open(1, "data")).await;
        assert_eq!(client.receive().await, Some(Frame::SynReply { stream_id: 1, flags: 0, headers: vec![] }));
        let mut stream = streams.recv().await.unwrap();
        assert_eq!((stream.id, stream.header("streamtype"), stream.header("port")), (1, Some("data"), Some("80")));

        client.send(Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"ping") }).await;
        assert_eq!(stream.read().await, Read::Data(Bytes::from_static(b"ping")));
        stream.sender().send(Bytes::from_static(b"pong")).await.unwrap();
        assert_eq!(
            client.receive().await,
            Some(Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"pong") })
        );

        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.receive().await, Some(Frame::Ping { id: 1 }));

        client.send(Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() }).await;
        assert_eq!(stream.read().await, Read::End);
        stream.sender().finish().await.unwrap();
        assert_eq!(client.receive().await, Some(Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() }));

        client.send(open(3, "data")).await;
        assert!(matches!(client.receive().await, Some(Frame::SynReply { stream_id: 3, .. })));
        let mut second = streams.recv().await.unwrap();
        client.send(Frame::RstStream { stream_id: 3, status: CANCEL }).await;
        assert_eq!(second.read().await, Read::Reset);

        client.send(Frame::GoAway { last_good_stream_id: 0, status: 0 }).await;
        server.await.unwrap();
        assert_eq!(client.receive().await, None, "the server closes its side");
        // Stream owners find out, without having to drop what they hold.
        stream.sender().closed().await;
        assert!(second.sender().send(Bytes::from_static(b"late")).await.is_err());
    }

    #[tokio::test]
    async fn a_frame_it_cannot_read_ends_the_connection_with_a_goaway() {
        let (mut client_io, server_io) = tokio::io::duplex(1 << 16);
        let (streams_tx, _streams) = mpsc::channel(8);
        let server = tokio::spawn(serve(server_io, streams_tx));
        // A SPDY/2 SYN_STREAM.
        client_io.write_all(&[0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0, 0]).await.unwrap();
        let mut replies = Codec::new();
        assert!(matches!(
            read_frame(&mut client_io, &mut replies).await.unwrap(),
            Some(Frame::GoAway { status: PROTOCOL_ERROR, .. })
        ));
        server.await.unwrap();
    }
}
