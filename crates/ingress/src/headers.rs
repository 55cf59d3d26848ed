//! What the proxy does to headers: the request's host, framing it refuses, hop-by-hop headers
//! (RFC 9110 §7.6.1) stripped both ways, and the forwarding headers a backend reads the client
//! from (`X-Forwarded-*`, `X-Real-IP`, RFC 7239 `Forwarded`), as ingress-nginx sets them.

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, Version};

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub(crate) const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers that are not `Proxy-*` (those are matched by prefix below).
const HOP_BY_HOP: [HeaderName; 6] =
    [header::CONNECTION, KEEP_ALIVE, header::TE, header::TRAILER, header::TRANSFER_ENCODING, header::EXPECT];

/// Why a request's host cannot be known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostProblem {
    /// HTTP/1.1 without `Host` (RFC 9112 §3.2), HTTP/2 without `:authority` or `Host`.
    Missing,
    /// More than one `Host` line (nginx: "client sent duplicate host header").
    Duplicate,
    /// Not printable ASCII, or not an authority.
    Invalid,
}

/// The host a request is for: the request target's authority (absolute-form, or HTTP/2's
/// `:authority`), which RFC 9112 §3.2.2 says wins over `Host`, else the one `Host` header.
/// `None` only for HTTP/1.0 without either.
pub(crate) fn request_host(
    uri: &Uri,
    headers: &HeaderMap,
    version: Version,
) -> Result<Option<HeaderValue>, HostProblem> {
    if let Some(authority) = uri.authority() {
        // An authority parsed from the request target is always a valid header value.
        return HeaderValue::from_str(authority.as_str()).map(Some).map_err(|_| HostProblem::Missing);
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) if host.to_str().is_err() => Err(HostProblem::Invalid),
        (Some(host), None) if !host.is_empty() => Ok(Some(host.clone())),
        (Some(_), Some(_)) => Err(HostProblem::Duplicate),
        _ if version == Version::HTTP_10 || version == Version::HTTP_09 => Ok(None),
        _ => Err(HostProblem::Missing),
    }
}

/// The comma-separated, trimmed, non-empty tokens of one header value.
pub(crate) fn value_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii).filter(|token| !token.is_empty())
}

/// The comma-separated tokens of every line of `name`.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    headers.get_all(name).iter().flat_map(|value| value_tokens(value.as_bytes()))
}

fn has_token(headers: &HeaderMap, name: &HeaderName, token: &[u8]) -> bool {
    tokens(headers, name).any(|each| each.eq_ignore_ascii_case(token))
}

/// Request framing hyper accepts but a front proxy should not: `Transfer-Encoding` other than
/// exactly one `chunked` (several lines, `chunked, chunked`, `gzip, chunked`). hyper itself
/// refuses a final coding other than chunked, conflicting or malformed `Content-Length`s and
/// `Transfer-Encoding` on HTTP/1.0; with both `Content-Length` and `Transfer-Encoding` it drops
/// the length, reads chunked and closes the connection after the response (RFC 9112 §6.3).
pub(crate) fn ambiguous_framing(headers: &HeaderMap) -> bool {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    match (codings.next(), codings.next()) {
        (None, _) => false,
        (Some(only), None) => !only.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked"),
        (Some(_), Some(_)) => true,
    }
}

/// An HTTP/1.1 request asking to switch protocols (`Connection: upgrade` and `Upgrade`).
pub(crate) fn is_upgrade(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && headers.contains_key(header::UPGRADE)
        && has_token(headers, &header::CONNECTION, b"upgrade")
}

/// `Proxy` and `Proxy-*`, in any case. `Proxy` itself: httpoxy (CVE-2016-5385), which
/// ingress-nginx clears too.
fn is_proxy_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("proxy") || name.get(..6).is_some_and(|prefix| prefix.eq_ignore_ascii_case("proxy-"))
}

/// Whether a header named `name` (in any case) is hop-by-hop by name: those
/// [`strip_hop_by_hop`] removes whatever `Connection` says, `Upgrade` among them.
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|hop| hop.as_str().eq_ignore_ascii_case(name))
        || header::UPGRADE.as_str().eq_ignore_ascii_case(name)
        || is_proxy_header(name)
}

/// One HTTP/1.1 header line, `name: value`, into `out`.
pub(crate) fn put_h1_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What to keep of the hop-by-hop headers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Keep {
    /// `Upgrade` (the request is being upgraded; `Connection: upgrade` is set again after).
    pub(crate) upgrade: bool,
    /// `TE: trailers`, which gRPC servers over HTTP/2 expect.
    pub(crate) te_trailers: bool,
}

/// Removes the hop-by-hop headers: those `Connection` names (except `Host`), `Connection`,
/// `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `Expect` (hyper answered it on
/// the client's connection), and `Proxy` and `Proxy-*`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep: Keep) {
    let standard = |token: &[u8]| {
        [&b"close"[..], b"keep-alive", b"upgrade", b"te"].iter().any(|known| token.eq_ignore_ascii_case(known))
    };
    if tokens(headers, &header::CONNECTION).any(|token| !standard(token)) {
        let listed: Vec<HeaderName> = tokens(headers, &header::CONNECTION)
            .filter(|token| !standard(token))
            .filter_map(|token| HeaderName::from_bytes(token).ok())
            .filter(|name| *name != header::HOST)
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    let te_trailers = keep.te_trailers && has_token(headers, &header::TE, b"trailers");
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if !keep.upgrade {
        headers.remove(header::UPGRADE);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if headers.keys().any(|name| is_proxy_header(name.as_str())) {
        let proxy: Vec<HeaderName> = headers.keys().filter(|name| is_proxy_header(name.as_str())).cloned().collect();
        for name in proxy {
            headers.remove(name);
        }
    }
    debug_assert!(!headers.contains_key(PROXY_CONNECTION));
}

/// What the forwarding headers say about one client connection, computed once per connection.
#[derive(Clone, Debug)]
pub(crate) struct ClientHeaders {
    /// `1.2.3.4` or `2001:db8::1`: `X-Real-IP` and what `X-Forwarded-For` appends.
    ip: HeaderValue,
    /// `for=1.2.3.4` or `for="[2001:db8::1]"` (RFC 7239 §6).
    forwarded_for: Bytes,
    /// `http` or `https`.
    proto: HeaderValue,
    /// The port the client connected to.
    port: HeaderValue,
}

/// Writes `ip` in dotted decimal.
fn put_ipv4(out: &mut BytesMut, ip: std::net::Ipv4Addr) {
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.put_u8(b'.');
        }
        if octet >= 100 {
            out.put_u8(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.put_u8(b'0' + octet / 10 % 10);
        }
        out.put_u8(b'0' + octet % 10);
    }
}

impl ClientHeaders {
    pub(crate) fn new(client: SocketAddr, tls: bool, port: HeaderValue) -> Self {
        // One buffer for both (`for=10.0.0.7`, the address a slice of it), an IPv4 address
        // written without the formatting machinery: this runs for every connection, and was 5%
        // of the proxy's user time with a connection per request.
        let (forwarded_for, text) = match client.ip().to_canonical() {
            IpAddr::V4(ip) => {
                let mut element = BytesMut::with_capacity(19);
                element.put_slice(b"for=");
                put_ipv4(&mut element, ip);
                let element = element.freeze();
                (element.clone(), element.slice(4..))
            }
            IpAddr::V6(ip) => {
                let element = Bytes::from(format!("for=\"[{ip}]\""));
                (element.clone(), element.slice(6..element.len() - 2))
            }
        };
        ClientHeaders {
            ip: HeaderValue::from_maybe_shared(text).unwrap_or(HeaderValue::from_static("unknown")),
            forwarded_for,
            proto: HeaderValue::from_static(if tls { "https" } else { "http" }),
            port,
        }
    }

    /// Sets `X-Real-IP`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Port` (replacing
    /// what the client sent, as ingress-nginx does without `use-forwarded-headers`), and appends
    /// the client to `X-Forwarded-For` and `Forwarded`.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, host: Option<&HeaderValue>) {
        append_to_list(headers, X_FORWARDED_FOR, self.ip.clone());
        if let Some(element) = self.forwarded_element(host) {
            append_to_list(headers, header::FORWARDED, element);
        }
        headers.insert(X_REAL_IP, self.ip.clone());
        headers.insert(X_FORWARDED_PROTO, self.proto.clone());
        headers.insert(X_FORWARDED_PORT, self.port.clone());
        match host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host.clone()),
            None => headers.remove(X_FORWARDED_HOST),
        };
    }

    /// `for=…;host=…;proto=…`, the host quoted when it is not a token (it has a port).
    fn forwarded_element(&self, host: Option<&HeaderValue>) -> Option<HeaderValue> {
        let host = host.map_or(&b""[..], HeaderValue::as_bytes);
        let mut element = BytesMut::with_capacity(self.forwarded_for.len() + host.len() + 24);
        self.put_forwarded_element(&mut element, host);
        HeaderValue::from_maybe_shared(element.freeze()).ok()
    }

    fn put_forwarded_element(&self, element: &mut impl BufMut, host: &[u8]) {
        element.put_slice(&self.forwarded_for);
        if !host.is_empty() {
            element.put_slice(b";host=");
            if host.iter().all(|b| is_token_char(*b)) {
                element.put_slice(host);
            } else {
                element.put_u8(b'"');
                for b in host {
                    if matches!(b, b'"' | b'\\') {
                        element.put_u8(b'\\');
                    }
                    element.put_u8(*b);
                }
                element.put_u8(b'"');
            }
        }
        element.put_slice(b";proto=");
        element.put_slice(self.proto.as_bytes());
    }

    /// What [`ClientHeaders::apply`] sets, as HTTP/1.1 header lines into `out`, for a request
    /// whose own `X-Forwarded-For` and `Forwarded` lines were `forwarded_for` and `forwarded`
    /// (the others it replaces were left out) and whose host is `host` (visible ASCII).
    pub(crate) fn put_h1(&self, out: &mut Vec<u8>, forwarded_for: &[&[u8]], forwarded: &[&[u8]], host: &[u8]) {
        let mut list = |name: &[u8], earlier: &[&[u8]], last: &dyn Fn(&mut Vec<u8>)| {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            for line in earlier {
                out.extend_from_slice(line);
                out.extend_from_slice(b", ");
            }
            last(out);
            out.extend_from_slice(b"\r\n");
        };
        list(b"x-forwarded-for", forwarded_for, &|out| out.extend_from_slice(self.ip.as_bytes()));
        list(b"forwarded", forwarded, &|out| self.put_forwarded_element(out, host));
        for (name, value) in [
            (&b"x-real-ip"[..], self.ip.as_bytes()),
            (b"x-forwarded-proto", self.proto.as_bytes()),
            (b"x-forwarded-port", self.port.as_bytes()),
            (b"x-forwarded-host", host),
        ] {
            put_h1_header(out, name, value);
        }
    }
}

/// RFC 9110 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Adds `value` as the last element of a comma-separated list header, joining earlier lines.
fn append_to_list(headers: &mut HeaderMap, name: HeaderName, value: HeaderValue) {
    match headers.entry(name) {
        Entry::Vacant(vacant) => {
            vacant.insert(value);
        }
        Entry::Occupied(mut occupied) => {
            let mut joined = BytesMut::new();
            for line in occupied.iter().chain(std::iter::once(&value)) {
                if !joined.is_empty() {
                    joined.put_slice(b", ");
                }
                joined.put_slice(line.as_bytes());
            }
            // Valid header values joined by ", " are a valid header value.
            occupied.insert(HeaderValue::from_maybe_shared(joined.freeze()).unwrap_or(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        names.sort();
        names
    }

    #[test]
    fn the_target_s_authority_wins_over_host_and_http_1_1_needs_one() {
        let origin: Uri = "/a".parse().unwrap();
        let absolute: Uri = "http://target.example/a".parse().unwrap();
        type Case<'a> = (&'a Uri, &'a [(&'a str, &'a str)], Version, Result<Option<&'a str>, HostProblem>);
        let cases: &[Case] = &[
            (&origin, &[("host", "a.example")], Version::HTTP_11, Ok(Some("a.example"))),
            (&absolute, &[("host", "a.example")], Version::HTTP_11, Ok(Some("target.example"))),
            (&absolute, &[], Version::HTTP_2, Ok(Some("target.example"))),
            (&origin, &[("host", "a.example")], Version::HTTP_2, Ok(Some("a.example"))),
            (&origin, &[], Version::HTTP_11, Err(HostProblem::Missing)),
            (&origin, &[("host", "")], Version::HTTP_11, Err(HostProblem::Missing)),
            (&origin, &[], Version::HTTP_2, Err(HostProblem::Missing)),
            (&origin, &[], Version::HTTP_10, Ok(None)),
            (&origin, &[("host", "a.example"), ("host", "b.example")], Version::HTTP_11, Err(HostProblem::Duplicate)),
        ];
        let mut obs_text = HeaderMap::new();
        obs_text.insert(header::HOST, HeaderValue::from_bytes(b"caf\xe9.example").unwrap());
        assert_eq!(request_host(&origin, &obs_text, Version::HTTP_11), Err(HostProblem::Invalid));
        for (uri, pairs, version, expected) in cases {
            let host = request_host(uri, &headers(pairs), *version);
            let host = host.as_ref().map(|host| host.as_ref().map(|value| value.to_str().unwrap())).map_err(|e| *e);
            assert_eq!(host, *expected, "{uri} {pairs:?} {version:?}");
        }
    }

    #[test]
    fn only_a_single_chunked_coding_is_unambiguous() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("transfer-encoding", "chunked")], false),
            (&[("transfer-encoding", " Chunked ")], false),
            (&[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")], true),
            (&[("transfer-encoding", "chunked, chunked")], true),
            (&[("transfer-encoding", "gzip, chunked")], true),
        ];
        for (pairs, expected) in cases {
            assert_eq!(ambiguous_framing(&headers(pairs)), *expected, "{pairs:?}");
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let mut map = headers(&[
            ("host", "a.example"),
            ("connection", "keep-alive, X-Secret, host"),
            ("connection", "Upgrade"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers, deflate"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("expect", "100-continue"),
            ("proxy", "http://evil"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("content-length", "3"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut map, Keep::default());
        assert_eq!(names(&map), ["content-length", "host", "x-kept"]);

        let mut map = headers(&[("connection", "upgrade"), ("upgrade", "websocket"), ("te", "trailers")]);
        strip_hop_by_hop(&mut map, Keep { upgrade: true, te_trailers: true });
        assert_eq!(names(&map), ["te", "upgrade"]);
        assert_eq!(map["te"], "trailers");
    }

    #[test]
    fn upgrades_need_both_headers_on_http_1_1() {
        let upgrade = headers(&[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(Version::HTTP_11, &upgrade));
        assert!(!is_upgrade(Version::HTTP_10, &upgrade));
        assert!(!is_upgrade(Version::HTTP_11, &headers(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(Version::HTTP_11, &headers(&[("connection", "upgrade")])));
    }

    #[test]
    fn addresses_in_dotted_decimal() {
        for ip in ["0.0.0.0", "10.0.0.7", "255.255.255.255", "100.9.10.99", "192.168.1.200"] {
            let mut out = BytesMut::new();
            put_ipv4(&mut out, ip.parse().unwrap());
            assert_eq!(out, ip.as_bytes());
        }
    }

    #[test]
    fn forwarding_headers_append_the_client_and_replace_the_rest() {
        let client = ClientHeaders::new("10.0.0.7:5555".parse().unwrap(), true, HeaderValue::from_static("443"));
        let mut map = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("forwarded", "for=1.1.1.1"),
            ("x-forwarded-proto", "gopher"),
            ("x-real-ip", "6.6.6.6"),
        ]);
        client.apply(&mut map, Some(&HeaderValue::from_static("a.example:8443")));
        assert_eq!(map["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 10.0.0.7");
        assert_eq!(map["forwarded"], "for=1.1.1.1, for=10.0.0.7;host=\"a.example:8443\";proto=https");
        assert_eq!(map["x-real-ip"], "10.0.0.7");
        assert_eq!(map["x-forwarded-proto"], "https");
        assert_eq!(map["x-forwarded-host"], "a.example:8443");
        assert_eq!(map["x-forwarded-port"], "443");

        let client = ClientHeaders::new("[::ffff:10.0.0.8]:1".parse().unwrap(), false, HeaderValue::from_static("80"));
        let mut map = HeaderMap::new();
        client.apply(&mut map, Some(&HeaderValue::from_static("a.example")));
        assert_eq!(map["x-forwarded-for"], "10.0.0.8");
        assert_eq!(map["forwarded"], "for=10.0.0.8;host=a.example;proto=http");

        let client = ClientHeaders::new("[2001:db8::1]:1".parse().unwrap(), false, HeaderValue::from_static("80"));
        let mut map = HeaderMap::new();
        client.apply(&mut map, None);
        assert_eq!(map["x-forwarded-for"], "2001:db8::1");
        assert_eq!(map["forwarded"], "for=\"[2001:db8::1]\";proto=http");
        assert!(!map.contains_key("x-forwarded-host"));
    }
}
