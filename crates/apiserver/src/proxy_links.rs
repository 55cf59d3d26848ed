//! The links of a proxied response made to go through the proxy again, as kube-apiserver's
//! proxy transport makes them (apimachinery `util/proxy/transport.go`): a `Location`, and in a
//! `text/html` body (identity, gzip or deflate) the URL-valued attributes of the elements HTML
//! defines them on.
//!
//! A link is rewritten when it is an absolute path, or an absolute URL naming the backend or the
//! host the client asked for: the proxy's own path is put before its path (unless it is there
//! already), and its scheme and host are dropped unless they named the client's host. A page
//! reached through `kubectl proxy` therefore keeps its links on `kubectl proxy`. Relative links,
//! other hosts and other schemes (`mailto:`) are left as they are.

use std::io::{Read, Write};

/// The elements whose attributes hold URLs, and those attributes (upstream's `atomsToAttrs`).
const URL_ATTRIBUTES: [(&str, &[&str]); 25] = [
    ("a", &["href"]),
    ("applet", &["codebase"]),
    ("area", &["href"]),
    ("audio", &["src"]),
    ("base", &["href"]),
    ("blockquote", &["cite"]),
    ("body", &["background"]),
    ("button", &["formaction"]),
    ("command", &["icon"]),
    ("del", &["cite"]),
    ("embed", &["src"]),
    ("form", &["action"]),
    ("frame", &["longdesc", "src"]),
    ("head", &["profile"]),
    ("html", &["manifest"]),
    ("iframe", &["longdesc", "src"]),
    ("img", &["longdesc", "src", "usemap"]),
    ("input", &["src", "usemap", "formaction"]),
    ("ins", &["cite"]),
    ("link", &["href"]),
    ("object", &["classid", "codebase", "data", "usemap"]),
    ("q", &["cite"]),
    ("script", &["src"]),
    ("source", &["src"]),
    ("video", &["poster", "src"]),
];

/// Where one proxied request went and came from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Links<'a> {
    /// The backend's `host:port`, as the request to it named it.
    pub(crate) backend: &'a str,
    /// The `Host` the client sent the API server.
    pub(crate) request_host: &'a str,
    /// The proxy's path up to the backend's path: `/api/v1/namespaces/d/services/web:80/proxy`.
    pub(crate) prefix: &'a str,
}

/// The body encodings a page can be rewritten in (others are relayed as they are, as upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl Encoding {
    /// From `Content-Encoding` (absent: identity); `None` for one that cannot be read.
    pub(crate) fn of(content_encoding: Option<&str>) -> Option<Encoding> {
        match content_encoding.map(str::trim) {
            None | Some("") => Some(Encoding::Identity),
            Some("gzip") => Some(Encoding::Gzip),
            Some("deflate") => Some(Encoding::Deflate),
            Some(_) => None,
        }
    }
}

/// A compressed body's format.
#[derive(Clone, Copy, Debug)]
enum Compression {
    Gzip,
    Zlib,
    RawDeflate,
}

impl Compression {
    fn decode(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Compression::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
            Compression::Zlib => flate2::read::ZlibDecoder::new(data).read_to_end(&mut out),
            Compression::RawDeflate => flate2::read::DeflateDecoder::new(data).read_to_end(&mut out),
        }?;
        Ok(out)
    }

    fn encode(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let level = flate2::Compression::default();
        match self {
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
                encoder.write_all(data).and_then(|()| encoder.finish())
            }
            Compression::Zlib => {
                let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), level);
                encoder.write_all(data).and_then(|()| encoder.finish())
            }
            Compression::RawDeflate => {
                let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), level);
                encoder.write_all(data).and_then(|()| encoder.finish())
            }
        }
    }
}

/// Whether a response of this `Content-Type` is a page whose links are rewritten: its media
/// type is exactly `text/html`, as upstream compares it.
pub(crate) fn is_html(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|value| value.split(';').next().unwrap_or("").trim() == "text/html")
}

impl Links<'_> {
    /// `target` made to go through the proxy, or `None` when it stays as it is.
    pub(crate) fn rewrite(&self, target: &str) -> Option<String> {
        let (rest, fragment) = split_at_first(target, '#');
        let (rest, query) = split_at_first(rest, '?');
        let (scheme, rest) = match scheme_len(rest) {
            Some(len) => (Some(&rest[..len]), &rest[len + 1..]),
            None => (None, rest),
        };
        let (host, path) = match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find('/').unwrap_or(after.len());
                (Some(&after[..end]), &after[end..])
            }
            None => (None, rest),
        };
        let host_name = host.unwrap_or("");
        if !host_name.is_empty() && host_name != self.backend && host_name != self.request_host {
            return None;
        }
        if !path.starts_with('/') {
            return None;
        }
        let mut rewritten = String::with_capacity(target.len() + self.prefix.len());
        // The client's own host stays (with its scheme); the backend's goes.
        if host_name == self.request_host {
            if let Some(scheme) = scheme {
                rewritten.push_str(scheme);
                rewritten.push(':');
            }
            if let Some(host) = host {
                rewritten.push_str("//");
                rewritten.push_str(host);
            }
        }
        if path.starts_with(self.prefix) {
            rewritten.push_str(path);
        } else {
            rewritten.push_str(&clean_path(&format!("{}/{path}", self.prefix)));
        }
        rewritten.push_str(query);
        rewritten.push_str(fragment);
        (rewritten != target).then_some(rewritten)
    }

    /// `page` (in `encoding`) with its links rewritten, in the same encoding; an error if it
    /// cannot be decoded or rewritten (the caller relays it as it came).
    pub(crate) fn rewrite_page(&self, page: &[u8], encoding: Encoding) -> Result<Vec<u8>, String> {
        let (format, html) = match encoding {
            Encoding::Identity => return self.rewrite_html(page),
            Encoding::Gzip => (Compression::Gzip, Compression::Gzip.decode(page)),
            // RFC 9110's deflate is zlib-wrapped; some servers (and Go's reader) use it raw.
            Encoding::Deflate => match Compression::Zlib.decode(page) {
                Ok(html) => (Compression::Zlib, Ok(html)),
                Err(_) => (Compression::RawDeflate, Compression::RawDeflate.decode(page)),
            },
        };
        let html = html.map_err(|e| format!("{format:?}: {e}"))?;
        let html = self.rewrite_html(&html)?;
        format.encode(&html).map_err(|e| format!("{format:?}: {e}"))
    }

    /// The URL-valued attributes of `html` rewritten; everything else as it was.
    fn rewrite_html(&self, html: &[u8]) -> Result<Vec<u8>, String> {
        let mut output = Vec::with_capacity(html.len() + html.len() / 8);
        let handler = lol_html::element!("*", |element| {
            let name = element.tag_name();
            let Some((_, attributes)) = URL_ATTRIBUTES.iter().find(|(tag, _)| tag.eq_ignore_ascii_case(&name)) else {
                return Ok(());
            };
            for attribute in attributes.iter() {
                if let Some(rewritten) = element.get_attribute(attribute).and_then(|value| self.rewrite(&value)) {
                    element.set_attribute(attribute, &rewritten)?;
                }
            }
            Ok(())
        });
        let settings = lol_html::Settings::new().append_element_content_handler(handler);
        let mut rewriter = lol_html::HtmlRewriter::new(settings, |chunk: &[u8]| output.extend_from_slice(chunk));
        rewriter.write(html).map_err(|e| e.to_string())?;
        rewriter.end().map_err(|e| e.to_string())?;
        Ok(output)
    }
}

/// `text` split before the first `separator` (which the second part keeps).
fn split_at_first(text: &str, separator: char) -> (&str, &str) {
    text.split_at(text.find(separator).unwrap_or(text.len()))
}

/// The length of the URL's scheme (RFC 3986 §3.1: a letter, then letters, digits, `+`, `-`,
/// `.`), if it starts with one followed by `:`.
fn scheme_len(text: &str) -> Option<usize> {
    let end = text.find(':')?;
    let scheme = &text.as_bytes()[..end];
    let valid = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    valid.then_some(end)
}

/// `path` as an absolute path with empty and `.` segments dropped and `..` applied (never above
/// the root), keeping a trailing slash: Go's `path.Join` with the slash put back, as upstream's
/// proxy does with the paths it asks for and the links it rewrites.
pub(crate) fn clean_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut cleaned = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !cleaned.ends_with('/') {
        cleaned.push('/');
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "/api/v1/namespaces/d/services/web:80/proxy";

    fn links() -> Links<'static> {
        Links { backend: "10.244.0.5:8080", request_host: "127.0.0.1:6443", prefix: PREFIX }
    }

    #[test]
    fn links_back_at_the_backend_or_the_client_s_host_go_through_the_proxy() {
        let cases: [(&str, Option<String>); 16] = [
            ("/dir/", Some(format!("{PREFIX}/dir/"))),
            ("/", Some(format!("{PREFIX}/"))),
            ("/a/./b/../c?x=1&y=2#top", Some(format!("{PREFIX}/a/c?x=1&y=2#top"))),
            ("//10.244.0.5:8080/x", Some(format!("{PREFIX}/x"))),
            ("http://10.244.0.5:8080/x?y=1", Some(format!("{PREFIX}/x?y=1"))),
            // The client's host keeps its scheme and host.
            ("https://127.0.0.1:6443/x", Some(format!("https://127.0.0.1:6443{PREFIX}/x"))),
            // Already through the proxy: the backend's host still goes.
            (&format!("{PREFIX}/already"), None),
            ("http://10.244.0.5:8080/api/v1/namespaces/d/services/web:80/proxy/y", Some(format!("{PREFIX}/y"))),
            // Left alone: other hosts, relative links, other schemes, no path.
            ("https://example.com/x", None),
            ("http://10.244.0.5/x", None),
            ("relative/x", None),
            ("../up", None),
            ("?only=query", None),
            ("mailto:someone@example.com", None),
            ("javascript:void(0)", None),
            ("http://10.244.0.5:8080", None),
        ];
        for (target, expected) in cases {
            assert_eq!(links().rewrite(target), expected, "{target}");
        }
    }

    #[test]
    fn pages_have_their_url_attributes_rewritten_and_nothing_else() {
        let page = concat!(
            "<!DOCTYPE html><html><head><link rel=stylesheet href=\"/style.css\">",
            "<script src='/app.js'></script><script>var s = \"<a href='/not/an/attribute'>\";</script></head>",
            "<BODY><A HREF=\"/docs/\">docs</A> <a href=\"relative\">r</a> <a href=\"https://example.com/\">out</a>",
            "<img src=\"http://10.244.0.5:8080/logo.png\" alt=\"/not/a/url\"><!-- <a href=\"/in/a/comment\"> -->",
            "<form action=\"/login?next=/a&amp;b=1\"><input formaction=\"/other\"></form>",
            "<div data-href=\"/not/listed\"></div></BODY></html>",
        );
        let rewritten = String::from_utf8(links().rewrite_page(page.as_bytes(), Encoding::Identity).unwrap()).unwrap();
        for expected in [
            format!("href=\"{PREFIX}/style.css\""),
            format!("src=\"{PREFIX}/app.js\""),
            "var s = \"<a href='/not/an/attribute'>\";".to_string(),
            format!("HREF=\"{PREFIX}/docs/\""),
            "href=\"relative\"".to_string(),
            "href=\"https://example.com/\"".to_string(),
            format!("src=\"{PREFIX}/logo.png\" alt=\"/not/a/url\""),
            "<!-- <a href=\"/in/a/comment\"> -->".to_string(),
            format!("action=\"{PREFIX}/login?next=/a&amp;b=1\""),
            format!("formaction=\"{PREFIX}/other\""),
            "data-href=\"/not/listed\"".to_string(),
        ] {
            assert!(rewritten.contains(&expected), "{expected} not in {rewritten}");
        }
    }

    #[test]
    fn compressed_pages_come_back_compressed_the_same_way() {
        let page = b"<a href=\"/x\">x</a>";
        let expected = format!("<a href=\"{PREFIX}/x\">x</a>");
        let cases = [
            (Compression::Gzip, Encoding::Gzip),
            (Compression::Zlib, Encoding::Deflate),
            (Compression::RawDeflate, Encoding::Deflate),
        ];
        for (format, encoding) in cases {
            let out = links().rewrite_page(&format.encode(page).unwrap(), encoding).unwrap();
            let html = format.decode(&out).unwrap_or_else(|e| panic!("{format:?} out: {e}"));
            assert_eq!(String::from_utf8(html).unwrap(), expected, "{format:?}");
        }
        assert!(links().rewrite_page(b"not gzip", Encoding::Gzip).is_err());
    }

    #[test]
    fn only_html_in_an_encoding_it_can_read_is_rewritten() {
        assert!(is_html(Some("text/html")));
        assert!(is_html(Some("text/html; charset=utf-8")));
        assert!(!is_html(Some("text/plain")));
        assert!(!is_html(Some("application/xhtml+xml")));
        assert!(!is_html(None));
        assert_eq!(Encoding::of(None), Some(Encoding::Identity));
        assert_eq!(Encoding::of(Some("gzip")), Some(Encoding::Gzip));
        assert_eq!(Encoding::of(Some("deflate")), Some(Encoding::Deflate));
        assert_eq!(Encoding::of(Some("br")), None);
    }
}
