//! The server side of SPDY/3.1, the stream protocol kubectl uses for `port-forward` (and `exec`,
//! `attach`): many bidirectional streams over one upgraded HTTP connection.
//!
//! * [`frame`]: frames to and from bytes, with the connection's header compression (zlib with
//!   the protocol's preset dictionary, one context per direction).
//! * [`connection`]: a served connection: streams the client opens, data in and out, pings
//!   answered. There is no flow control: neither side of kubectl's (moby/spdystream) keeps
//!   windows.
#![forbid(unsafe_code)]

pub mod connection;
pub mod frame;

pub use connection::{serve, Read, Stream, StreamSender};
pub use frame::{Frame, FrameError, Headers};
