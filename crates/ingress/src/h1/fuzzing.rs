//! The properties the fast path's parsers keep over any bytes, for the cargo-fuzz target `h1`
//! (`crates/ingress/fuzz`) and the replay of its corpus in `cargo test`. Each check panics when
//! a property fails.

use http::HeaderValue;

use super::chunked::ChunkedScanner;
use super::heads::{self, Framing, RequestLimits, RequestParse, ResponseParse};
use crate::headers::ClientHeaders;

/// Headers that must never reach the other side (the fast path's own `Connection: close` aside).
const HOP_BY_HOP: [&str; 8] =
    ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect", "transfer-encoding"];

/// The first byte picks the parser (and its flags), the rest is its input.
pub fn check(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else { return };
    match selector % 3 {
        0 => check_request(input),
        1 => check_response(input, selector & 0x10 != 0, selector & 0x20 != 0),
        _ => check_chunked(input, usize::from(selector >> 2)),
    }
}

/// A request the fast path takes leaves as one whole, well-formed HTTP/1.1 head of the same
/// method and target, with one `Host`, at most one `Content-Length`, and no hop-by-hop header:
/// nothing an endpoint could read as framing other than what the proxy read.
fn check_request(input: &[u8]) {
    let client = ClientHeaders::new(([10, 0, 0, 7], 5555).into(), false, HeaderValue::from_static("80"));
    let limits = RequestLimits { max_head: 8 * 1024, max_body: 1024 };
    let mut out = Vec::new();
    let RequestParse::Request(head) = heads::parse_request(input, limits, &client, &mut out) else { return };
    assert!(head.head_len + head.body_len <= input.len());
    assert!(head.host.end <= head.head_len && !head.host.is_empty());
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut sent = httparse::Request::new(&mut headers);
    assert_eq!(sent.parse(&out), Ok(httparse::Status::Complete(out.len())), "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(sent.method, Some(head.method.as_str()));
    assert_eq!(sent.path, Some(head.target.as_str()));
    assert_eq!(sent.version, Some(1));
    let count = |name: &str| sent.headers.iter().filter(|header| header.name.eq_ignore_ascii_case(name)).count();
    assert_eq!(count("host"), 1);
    let lengths: Vec<Option<usize>> = sent
        .headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case("content-length"))
        .map(|header| std::str::from_utf8(header.value).ok().and_then(|text| text.parse().ok()))
        .collect();
    match lengths[..] {
        [] => assert_eq!(head.body_len, 0),
        [len] => assert_eq!(len, Some(head.body_len)),
        _ => panic!("{} Content-Lengths sent on", lengths.len()),
    }
    for name in HOP_BY_HOP {
        assert_eq!(count(name), 0, "{name} sent on");
    }
}

/// A response the fast path relays reaches the client as one whole, well-formed HTTP/1.1 head
/// of the same status, saying `Connection: close` when the connection will close, with framing
/// that agrees with what the proxy reads and no hop-by-hop header.
fn check_response(input: &[u8], head_request: bool, close: bool) {
    let mut out = Vec::new();
    let response = match heads::parse_response(input, head_request, close, &mut out) {
        Ok(ResponseParse::Response(response)) => response,
        Ok(ResponseParse::Informational(len)) => return assert!(len <= input.len()),
        Ok(ResponseParse::Partial) | Err(_) => return,
    };
    assert!(response.head_len <= input.len());
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut sent = httparse::Response::new(&mut headers);
    assert_eq!(sent.parse(&out), Ok(httparse::Status::Complete(out.len())), "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(sent.code, Some(response.status));
    assert_eq!(sent.version, Some(1));
    let values = |name: &str| -> Vec<&[u8]> {
        sent.headers.iter().filter(|header| header.name.eq_ignore_ascii_case(name)).map(|header| header.value).collect()
    };
    let closes = close || response.framing == Framing::UntilClose;
    assert_eq!(values("connection"), if closes { vec![&b"close"[..]] } else { vec![] });
    assert_eq!(values("date").len().min(1), 1);
    match response.framing {
        Framing::Length(len) => {
            assert!(values("transfer-encoding").is_empty());
            let parsed = |value: &[u8]| std::str::from_utf8(value).ok().and_then(|text| text.parse::<u64>().ok());
            assert!(values("content-length").iter().all(|value| parsed(value) == Some(len)));
        }
        Framing::Chunked => assert!(values("content-length").is_empty()),
        Framing::Empty | Framing::UntilClose => {}
    }
    for name in HOP_BY_HOP.iter().filter(|name| !matches!(**name, "connection" | "transfer-encoding")) {
        assert!(values(name).is_empty(), "{name} relayed");
    }
}

/// Fed whole or in pieces, a chunked body ends at the same byte (or fails alike).
fn check_chunked(input: &[u8], piece: usize) {
    let mut whole = ChunkedScanner::default();
    let expected = whole.feed(input).map(|used| (used, whole.is_done()));
    let mut pieces = ChunkedScanner::default();
    let mut at = 0;
    let got = loop {
        let end = (at + piece.max(1)).min(input.len());
        match pieces.feed(&input[at..end]) {
            Err(error) => break Err(error),
            Ok(used) if pieces.is_done() => break Ok((at + used, true)),
            Ok(used) => {
                assert_eq!(used, end - at);
                at = end;
                if at == input.len() {
                    break Ok((at, false));
                }
            }
        }
    };
    assert_eq!(expected, got);
}
