//! Request and response heads on the HTTP/1.1 fast path: parsed with httparse (hyper's own
//! parser, so what it accepts is what hyper accepts) and rewritten byte for byte into the head
//! the other side gets, with the rules of the hyper path (`exchange::prepare`,
//! `headers::strip_hop_by_hop`, `headers::ClientHeaders::apply`).
//!
//! The fast path takes only the plain case: an HTTP/1.1 request in origin form with one valid
//! `Host`, no `Transfer-Encoding`, `Expect` or `Upgrade`, `Connection` naming nothing but
//! `close` or `keep-alive`, and a body (by `Content-Length`) small enough to hold whole. Any
//! other request is handed off ([`Handoff`]) to the hyper path, which answers every case
//! (errors, 431, chunked uploads, `100-continue`, upgrades, HTTP/1.0, absolute form) as it
//! always has.

use std::ops::Range;
use std::time::SystemTime;

use http::uri::PathAndQuery;
use http::{Method, StatusCode};

use crate::exchange::OWN_CONTENT_TYPE;
use crate::headers::{is_hop_by_hop, put_h1_header, value_tokens, ClientHeaders};

/// Header lines in a head, as hyper's default.
pub(crate) const MAX_HEADERS: usize = 100;

/// An upstream response head larger than this is refused (502).
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why a request goes to the hyper path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handoff {
    /// Not HTTP/1.1 as httparse reads it (hyper answers 400 or 431).
    Invalid,
    /// The head is larger than the limit (hyper answers 431).
    TooLarge,
    Version,
    Method,
    /// Not origin form, or not a valid path and query.
    Target,
    /// No `Host`, several, or one that is empty or not visible ASCII.
    Host,
    /// `Transfer-Encoding`, or a `Content-Length` that is not one number.
    Framing,
    Expect,
    Upgrade,
    /// `Connection` names a header.
    Connection,
    /// The body is larger than the fast path holds.
    Body,
}

/// A request the fast path serves.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub(crate) method: Method,
    pub(crate) target: PathAndQuery,
    /// Where the `Host` value is in the buffer.
    pub(crate) host: Range<usize>,
    /// The head's length: the body follows.
    pub(crate) head_len: usize,
    pub(crate) body_len: usize,
    /// `Connection: close`.
    pub(crate) close: bool,
}

#[derive(Debug)]
pub(crate) enum RequestParse {
    /// Read more (the head, or its body, is not whole yet).
    Partial,
    Handoff(Handoff),
    Request(RequestHead),
}

/// The bounds of a request on the fast path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestLimits {
    pub(crate) max_head: usize,
    pub(crate) max_body: usize,
}

fn is(name: &str, lower: &str) -> bool {
    name.len() == lower.len() && name.eq_ignore_ascii_case(lower)
}

/// What `HeaderValue::to_str` accepts: visible ASCII, space and tab.
fn is_visible_ascii(value: &[u8]) -> bool {
    value.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t')
}

/// A header value's position in `buf` (httparse's slices point into it).
fn range_in(buf: &[u8], value: &[u8]) -> Range<usize> {
    let start = value.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + value.len()
}

/// Parses the request at the start of `buf` and, when the fast path takes it, writes the head
/// an HTTP/1.1 endpoint gets into `out` (cleared first): hop-by-hop headers and the client's
/// forwarding headers dropped, the connection's forwarding headers added.
pub(crate) fn parse_request(
    buf: &[u8],
    limits: RequestLimits,
    client: &ClientHeaders,
    out: &mut Vec<u8>,
) -> RequestParse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > limits.max_head => {
            return RequestParse::Handoff(Handoff::TooLarge)
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            return RequestParse::Handoff(Handoff::TooLarge)
        }
        Ok(httparse::Status::Partial) => return RequestParse::Partial,
        Err(_) => return RequestParse::Handoff(Handoff::Invalid),
    };
    let (Some(method), Some(path), Some(version)) = (request.method, request.path, request.version) else {
        return RequestParse::Handoff(Handoff::Invalid);
    };
    if version != 1 {
        return RequestParse::Handoff(Handoff::Version);
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else { return RequestParse::Handoff(Handoff::Invalid) };
    if method == Method::CONNECT {
        return RequestParse::Handoff(Handoff::Method);
    }
    if !path.starts_with('/') {
        return RequestParse::Handoff(Handoff::Target);
    }
    let Ok(target) = PathAndQuery::try_from(path) else { return RequestParse::Handoff(Handoff::Target) };

    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_str().as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = None;
    let mut hosts = 0;
    let mut content_length = None;
    let mut close = false;
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    let mut forwarded: Vec<&[u8]> = Vec::new();
    for header in request.headers.iter() {
        let (name, value) = (header.name, header.value);
        match name.len() {
            4 if is(name, "host") => {
                hosts += 1;
                host = Some(value);
            }
            14 if is(name, "content-length") => {
                let parsed = std::str::from_utf8(value).ok().filter(|text| text.bytes().all(|b| b.is_ascii_digit()));
                match (content_length, parsed.and_then(|text| text.parse::<usize>().ok())) {
                    (None, Some(len)) => content_length = Some(len),
                    _ => return RequestParse::Handoff(Handoff::Framing),
                }
            }
            17 if is(name, "transfer-encoding") => return RequestParse::Handoff(Handoff::Framing),
            6 if is(name, "expect") => return RequestParse::Handoff(Handoff::Expect),
            7 if is(name, "upgrade") => return RequestParse::Handoff(Handoff::Upgrade),
            10 if is(name, "connection") => {
                for token in value_tokens(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                        return RequestParse::Handoff(Handoff::Connection);
                    }
                }
                continue;
            }
            15 if is(name, "x-forwarded-for") => {
                forwarded_for.push(value);
                continue;
            }
            9 if is(name, "forwarded") => {
                forwarded.push(value);
                continue;
            }
            // Replaced by the connection's own.
            _ if is(name, "x-real-ip")
                || is(name, "x-forwarded-proto")
                || is(name, "x-forwarded-port")
                || is(name, "x-forwarded-host") =>
            {
                continue
            }
            // The rest of them: Keep-Alive, TE, Trailer, Proxy-*.
            _ if is_hop_by_hop(name) => continue,
            _ => {}
        }
        put_h1_header(out, name.as_bytes(), value);
    }
    let host = match host {
        Some(host) if hosts == 1 && !host.is_empty() && is_visible_ascii(host) => host,
        _ => return RequestParse::Handoff(Handoff::Host),
    };
    let body_len = content_length.unwrap_or(0);
    if body_len > limits.max_body {
        return RequestParse::Handoff(Handoff::Body);
    }
    if buf.len() < head_len + body_len {
        return RequestParse::Partial;
    }
    client.put_h1(out, &forwarded_for, &forwarded, host);
    out.extend_from_slice(b"\r\n");
    RequestParse::Request(RequestHead { method, target, host: range_in(buf, host), head_len, body_len, close })
}

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (a response to HEAD, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the endpoint closes the connection.
    UntilClose,
}

/// A response head read from an endpoint, and the client's written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub(crate) status: u16,
    pub(crate) head_len: usize,
    pub(crate) framing: Framing,
    /// The endpoint keeps the connection open after this response.
    pub(crate) keep_alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ResponseParse {
    Partial,
    /// A 1xx other than 101, this long: skipped, as hyper's client skips it.
    Informational(usize),
    Response(ResponseHead),
}

/// Why an endpoint's response cannot be relayed (502).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResponseProblem {
    #[error("the response is not HTTP/1.x")]
    Invalid,
    #[error("the response head is too large")]
    TooLarge,
    #[error("the response has an invalid Content-Length")]
    Length,
    #[error("the endpoint switched protocols unasked")]
    Upgrade,
}

/// Parses the response at the start of `buf` to a request (`head` if its method was HEAD) and
/// writes the head the client gets into `out` (cleared first): hop-by-hop headers dropped
/// (`Transfer-Encoding` kept: the body is relayed as it came), `Date` added if missing, and
/// `Connection: close` when `close` or when the body runs until the endpoint closes.
pub(crate) fn parse_response(
    buf: &[u8],
    head: bool,
    close: bool,
    out: &mut Vec<u8>,
) -> Result<ResponseParse, ResponseProblem> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => return Err(ResponseProblem::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(ResponseParse::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseProblem::TooLarge),
        Err(_) => return Err(ResponseProblem::Invalid),
    };
    if head_len > MAX_RESPONSE_HEAD {
        return Err(ResponseProblem::TooLarge);
    }
    let (Some(version), Some(status)) = (response.version, response.code) else {
        return Err(ResponseProblem::Invalid);
    };
    match status {
        101 => return Err(ResponseProblem::Upgrade),
        100..=199 => return Ok(ResponseParse::Informational(head_len)),
        _ => {}
    }
    let headers = &*response.headers;

    // What `Connection` says: the endpoint's intent, and headers it makes hop-by-hop.
    let (mut said_close, mut said_keep_alive) = (false, false);
    let mut listed: Vec<&[u8]> = Vec::new();
    for header in headers.iter().filter(|header| is(header.name, "connection")) {
        for token in value_tokens(header.value) {
            if token.eq_ignore_ascii_case(b"close") {
                said_close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                said_keep_alive = true;
            } else if !token.eq_ignore_ascii_case(b"host") {
                listed.push(token);
            }
        }
    }
    // HTTP/1.0 closes unless it says otherwise.
    let upstream_close = said_close || (version == 0 && !said_keep_alive);
    // Whether the last transfer coding is chunked; `None` without a Transfer-Encoding header.
    // One that lists no coding (`Transfer-Encoding: ,`) is still there and still relayed: the
    // body is not chunked, and runs until the endpoint closes, as hyper reads it.
    let mut transfer_encodings = headers.iter().filter(|header| is(header.name, "transfer-encoding")).peekable();
    let chunked_last = transfer_encodings.peek().is_some().then(|| {
        transfer_encodings
            .flat_map(|header| value_tokens(header.value))
            .last()
            .is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked"))
    });
    let mut length = None;
    for header in headers.iter().filter(|header| is(header.name, "content-length")) {
        let parsed = std::str::from_utf8(header.value)
            .ok()
            .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|text| text.parse::<u64>().ok());
        match (length, parsed) {
            (_, None) if chunked_last.is_none() => return Err(ResponseProblem::Length),
            (Some(earlier), Some(len)) if earlier != len && chunked_last.is_none() => {
                return Err(ResponseProblem::Length)
            }
            (_, parsed) => length = parsed.or(length),
        }
    }
    let framing = if head || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked_last, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(len)) => Framing::Length(len),
            (None, None) => Framing::UntilClose,
        }
    };
    let close = close || framing == Framing::UntilClose;

    let code = StatusCode::from_u16(status).map_err(|_| ResponseProblem::Invalid)?;
    out.clear();
    put_status_line(out, code, response.reason.unwrap_or(""));
    let mut dated = false;
    for header in headers.iter() {
        let name = header.name;
        // Transfer-Encoding stays: the body goes on as it came.
        let hop_by_hop = (is_hop_by_hop(name) && !is(name, "transfer-encoding"))
            || (chunked_last.is_some() && is(name, "content-length"))
            || listed.iter().any(|token| token.eq_ignore_ascii_case(name.as_bytes()));
        if hop_by_hop {
            continue;
        }
        dated |= is(name, "date");
        put_h1_header(out, name.as_bytes(), header.value);
    }
    if !dated {
        put_h1_header(out, b"date", http_date().as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let keep_alive = !upstream_close && framing != Framing::UntilClose;
    Ok(ResponseParse::Response(ResponseHead { status, head_len, framing, keep_alive }))
}

fn http_date() -> String {
    httpdate::fmt_http_date(SystemTime::now())
}

/// `HTTP/1.1 <status> <reason>` into `out`.
fn put_status_line(out: &mut Vec<u8>, status: StatusCode, reason: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A short response of the proxy's own into `out` (cleared first): `body`, or none to a HEAD
/// request, with a length of `len` either way.
pub(crate) fn own_response(out: &mut Vec<u8>, status: StatusCode, len: usize, body: &str, close: bool) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    put_h1_header(out, b"content-type", OWN_CONTENT_TYPE.as_bytes());
    put_h1_header(out, b"content-length", len.to_string().as_bytes());
    put_h1_header(out, b"date", http_date().as_bytes());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RequestLimits = RequestLimits { max_head: 1024, max_body: 16 };

    fn client() -> ClientHeaders {
        ClientHeaders::new("10.0.0.7:5555".parse().unwrap(), false, http::HeaderValue::from_static("80"))
    }

    fn request(bytes: &str) -> (RequestParse, String) {
        let mut out = Vec::new();
        let parsed = parse_request(bytes.as_bytes(), LIMITS, &client(), &mut out);
        (parsed, String::from_utf8(out).unwrap())
    }

    #[test]
    fn requests_outside_the_plain_case_go_to_hyper() {
        let long = format!("GET / HTTP/1.1\r\nhost: a\r\nx: {}\r\n\r\n", "y".repeat(1024));
        let cases: &[(&str, Handoff)] = &[
            ("GET / HTTP/1.0\r\nhost: a\r\n\r\n", Handoff::Version),
            ("CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\n", Handoff::Method),
            ("GET http://a/ HTTP/1.1\r\nhost: a\r\n\r\n", Handoff::Target),
            ("OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n", Handoff::Target),
            ("GET / HTTP/1.1\r\n\r\n", Handoff::Host),
            ("GET / HTTP/1.1\r\nhost:\r\n\r\n", Handoff::Host),
            ("GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n", Handoff::Host),
            ("GET / HTTP/1.1\r\nhost: caf\u{e9}\r\n\r\n", Handoff::Host),
            ("POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n", Handoff::Framing),
            ("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx", Handoff::Framing),
            ("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: +1\r\n\r\nx", Handoff::Framing),
            ("POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 17\r\n\r\n", Handoff::Body),
            ("POST / HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\n\r\n", Handoff::Expect),
            ("GET / HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n", Handoff::Upgrade),
            ("GET / HTTP/1.1\r\nhost: a\r\nconnection: keep-alive, x-private\r\n\r\n", Handoff::Connection),
            ("GET / HTTP/1.1\r\nhost: a\r\nbad header\r\n\r\n", Handoff::Invalid),
            ("GET / HTTP/1.1\r\nhost: a\r\n", Handoff::TooLarge),
            (&long, Handoff::TooLarge),
        ];
        for (bytes, expected) in cases {
            let bytes = if *expected == Handoff::TooLarge && !bytes.ends_with("\r\n\r\n") {
                format!("{bytes}x-pad: {}\r\n", "z".repeat(1024))
            } else {
                bytes.to_string()
            };
            match request(&bytes).0 {
                RequestParse::Handoff(reason) => assert_eq!(reason, *expected, "{bytes:?}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_head_or_body_not_yet_whole_is_partial() {
        for bytes in
            ["GET / HT", "GET / HTTP/1.1\r\nhost: a\r\n", "PUT / HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\n\r\nab"]
        {
            assert!(matches!(request(bytes).0, RequestParse::Partial), "{bytes:?}");
        }
    }

    #[test]
    fn the_endpoint_gets_the_request_without_hop_by_hop_headers_and_with_the_client() {
        let sent = "PUT /a/b?c=d#frag HTTP/1.1\r\nHost: a.example:8080\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n\
             TE: trailers\r\nProxy-Authorization: x\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\n\
             Forwarded: for=1.1.1.1\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: gopher\r\nX-Forwarded-Host: evil\r\n\
             X-Forwarded-Port: 1\r\nContent-Length: 3\r\nX-Kept: yes\r\n\r\nabcGET / HTTP/1.1\r\n";
        let (parsed, out) = request(sent);
        let RequestParse::Request(head) = parsed else { panic!("{parsed:?}") };
        assert_eq!((head.method, head.target.as_str(), head.body_len, head.close), (Method::PUT, "/a/b?c=d", 3, false));
        assert_eq!(head.head_len + head.body_len, sent.find("GET").unwrap());
        assert_eq!(&sent[head.host], "a.example:8080");
        assert_eq!(
            out,
            "PUT /a/b?c=d HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 3\r\nX-Kept: yes\r\n\
             x-forwarded-for: 1.1.1.1, 2.2.2.2, 10.0.0.7\r\n\
             forwarded: for=1.1.1.1, for=10.0.0.7;host=\"a.example:8080\";proto=http\r\n\
             x-real-ip: 10.0.0.7\r\nx-forwarded-proto: http\r\nx-forwarded-port: 80\r\nx-forwarded-host: a.example:8080\r\n\r\n"
        );

        let (parsed, out) = request("GET / HTTP/1.1\r\nhost: a\r\nconnection: Close\r\n\r\n");
        let RequestParse::Request(head) = parsed else { panic!("{parsed:?}") };
        assert!(head.close);
        assert!(out.starts_with(
            "GET / HTTP/1.1\r\nhost: a\r\nx-forwarded-for: 10.0.0.7\r\nforwarded: for=10.0.0.7;host=a;proto=http\r\n"
        ));
    }

    fn response(bytes: &str, head: bool, close: bool) -> (Result<ResponseParse, ResponseProblem>, String) {
        let mut out = Vec::new();
        let parsed = parse_response(bytes.as_bytes(), head, close, &mut out);
        (parsed, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_response_s_framing_follows_rfc_9112() {
        let date = "date: Sun, 06 Dec 2026 00:00:00 GMT\r\n";
        type Case<'a> = (&'a str, bool, Result<(Framing, bool), ResponseProblem>);
        let cases: &[Case] = &[
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n", false, Ok((Framing::Length(5), true))),
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n", false, Ok((Framing::Length(5), true))),
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n", true, Ok((Framing::Empty, true))),
            ("HTTP/1.1 204 No Content\r\n", false, Ok((Framing::Empty, true))),
            ("HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n", false, Ok((Framing::Empty, true))),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n", false, Ok((Framing::Chunked, true))),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 9\r\n",
                false,
                Ok((Framing::Chunked, true)),
            ),
            ("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n", false, Ok((Framing::UntilClose, false))),
            // A Transfer-Encoding that lists no coding is still one: not the Content-Length.
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: ,\r\ncontent-length: 5\r\n",
                false,
                Ok((Framing::UntilClose, false)),
            ),
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding:\r\n", false, Ok((Framing::UntilClose, false))),
            ("HTTP/1.1 200 OK\r\n", false, Ok((Framing::UntilClose, false))),
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n", false, Ok((Framing::Length(5), false))),
            ("HTTP/1.0 200 OK\r\ncontent-length: 5\r\n", false, Ok((Framing::Length(5), false))),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\n",
                false,
                Ok((Framing::Length(5), true)),
            ),
            ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n", false, Err(ResponseProblem::Length)),
            ("HTTP/1.1 200 OK\r\ncontent-length: -5\r\n", false, Err(ResponseProblem::Length)),
            ("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n", false, Err(ResponseProblem::Upgrade)),
            ("HTTP/1.1 2000 OK\r\n", false, Err(ResponseProblem::Invalid)),
            ("SSH-2.0-OpenSSH\r\n", false, Err(ResponseProblem::Invalid)),
        ];
        for (head, head_request, expected) in cases {
            let bytes = format!("{head}{date}\r\n");
            let parsed = response(&bytes, *head_request, false).0.map(|parsed| match parsed {
                ResponseParse::Response(response) => {
                    assert_eq!(response.head_len, bytes.len());
                    (response.framing, response.keep_alive)
                }
                other => panic!("{bytes:?}: {other:?}"),
            });
            assert_eq!(parsed, *expected, "{bytes:?}");
        }
        assert_eq!(response("HTTP/1.1 200 OK\r\ncontent-le", false, false).0, Ok(ResponseParse::Partial));
        let early_hints = "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert_eq!(response(early_hints, false, false).0, Ok(ResponseParse::Informational(44)));
    }

    #[test]
    fn the_client_gets_the_response_without_hop_by_hop_headers() {
        let (parsed, out) = response(
            "HTTP/1.1 299 Custom Reason\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\n\
             Proxy-Authenticate: x\r\nTrailer: x-sum\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\
             Date: Sun, 06 Dec 2026 00:00:00 GMT\r\nX-Kept: yes\r\n\r\n",
            false,
            false,
        );
        assert!(matches!(parsed, Ok(ResponseParse::Response(_))));
        assert_eq!(
            out,
            "HTTP/1.1 299 Custom Reason\r\nTransfer-Encoding: chunked\r\nDate: Sun, 06 Dec 2026 00:00:00 GMT\r\nX-Kept: yes\r\n\r\n"
        );

        // No Date: one is added; the client asked to close, or the body runs to the close: said.
        for (bytes, close) in
            [("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", true), ("HTTP/1.1 200 OK\r\n\r\n", false)]
        {
            let (_, out) = response(bytes, false, close);
            assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
            assert!(out.contains("\r\ndate: "), "{out}");
            assert!(out.ends_with("connection: close\r\n\r\n"), "{out}");
        }
    }

    #[test]
    fn the_proxy_s_own_answers_are_complete() {
        let mut out = Vec::new();
        own_response(&mut out, StatusCode::SERVICE_UNAVAILABLE, 5, "down\n", true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 5\r\ndate: "));
        assert!(text.ends_with("\r\nconnection: close\r\n\r\ndown\n"), "{text}");
    }
}
