//! What frontdoor's node answers at its kubelet's address through `nodes/proxy`: there is no
//! kubelet HTTP port, so the API server asks the [`NodeProxy`] attached at wiring, and
//! [`LocalKubelet`] answers as the kubelet's own handlers do:
//! * `/healthz`: `ok`;
//! * `/logs/`: the node's log directory (upstream: `/var/log`), read-only, as Go's
//!   `http.FileServer` serves it — an HTML directory listing for a directory, the content for a
//!   file. A path that climbs out (`..`) is refused (400 `invalid URL path`), and anything that
//!   resolves outside the directory (a symbolic link) is not found.
//!
//! Anything else is 404 `404 page not found`.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::response::Response;
use futures::future::BoxFuture;
use http::{header, HeaderValue, Method, Request, StatusCode};

use crate::proxy::decode_path;
use crate::NodeProxy;

/// The kubelet endpoints of the node this process runs.
pub struct LocalKubelet {
    node_name: String,
    log_dir: PathBuf,
}

impl LocalKubelet {
    /// The kubelet of `node_name`, serving `log_dir` (upstream: `/var/log`) at `/logs/`.
    pub fn new(node_name: impl Into<String>, log_dir: impl Into<PathBuf>) -> LocalKubelet {
        LocalKubelet { node_name: node_name.into(), log_dir: log_dir.into() }
    }
}

impl NodeProxy for LocalKubelet {
    fn node_name(&self) -> &str {
        &self.node_name
    }

    fn serve(&self, request: Request<Body>) -> BoxFuture<'static, Response> {
        let log_dir = self.log_dir.clone();
        Box::pin(async move { answer(&log_dir, request).await })
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n")
}

async fn answer(log_dir: &Path, request: Request<Body>) -> Response {
    let path = request.uri().path().to_string();
    if path == "/healthz" {
        return text(StatusCode::OK, "ok");
    }
    let Some(rest) = path.strip_prefix("/logs").filter(|rest| rest.is_empty() || rest.starts_with('/')) else {
        return not_found();
    };
    let head = *request.method() == Method::HEAD;
    if !head && *request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405: Method Not Allowed");
    }
    logs(log_dir, rest, head).await
}

/// `GET /logs{rest}`: a listing of a directory under `root`, or a file's content.
async fn logs(root: &Path, rest: &str, head: bool) -> Response {
    let decoded = decode_path(rest);
    if decoded.split('/').any(|segment| segment == "..") {
        return text(StatusCode::BAD_REQUEST, "invalid URL path\n");
    }
    let Ok(root) = tokio::fs::canonicalize(root).await else { return not_found() };
    let relative = decoded.trim_start_matches('/');
    let resolved = match tokio::fs::canonicalize(root.join(relative)).await {
        Ok(resolved) if resolved.starts_with(&root) => resolved,
        Ok(_) => return not_found(),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            return text(StatusCode::FORBIDDEN, "403 Forbidden\n")
        }
        Err(_) => return not_found(),
    };
    let Ok(metadata) = tokio::fs::metadata(&resolved).await else { return not_found() };
    if metadata.is_dir() {
        if !rest.ends_with('/') {
            // As Go's file server: a directory is addressed with a trailing slash.
            let base = decoded.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            let target = if base.is_empty() { "logs/".to_string() } else { format!("{}/", escape_path(base)) };
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
            if let Ok(value) = HeaderValue::from_str(&target) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return response;
        }
        return match list(&resolved).await {
            Ok(html) => {
                let mut response = Response::new(if head { Body::empty() } else { Body::from(html) });
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
                response
            }
            Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
                text(StatusCode::FORBIDDEN, "403 Forbidden\n")
            }
            Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "Error reading directory\n"),
        };
    }
    if !metadata.is_file() {
        return not_found();
    }
    file(&resolved, metadata.len(), head).await
}

/// A file's content, streamed, typed as Go's `DetectContentType` would for text or binary.
async fn file(path: &Path, length: u64, head: bool) -> Response {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            return text(StatusCode::FORBIDDEN, "403 Forbidden\n")
        }
        Err(_) => return not_found(),
    };
    let mut start = vec![0u8; 512];
    let read = file.read(&mut start).await.unwrap_or(0);
    start.truncate(read);
    let content_type = if looks_like_text(&start) { "text/plain; charset=utf-8" } else { "application/octet-stream" };
    if file.rewind().await.is_err() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Error reading file\n");
    }
    let body = if head {
        Body::empty()
    } else {
        // What the file holds now, up to the length it had when asked for (logs grow).
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file.take(length), 64 * 1024))
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// Text: no control bytes but whitespace (and valid UTF-8, allowing a cut last character).
fn looks_like_text(bytes: &[u8]) -> bool {
    let binary = bytes.iter().any(|b| matches!(b, 0x00..=0x08 | 0x0b | 0x0e..=0x1a | 0x1c..=0x1f));
    let utf8 = match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    };
    !binary && utf8
}

/// The listing Go's `http.FileServer` writes for a directory: its entries sorted by name,
/// directories with a trailing slash.
async fn list(dir: &Path) -> std::io::Result<String> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut names = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let is_dir = entry.file_type().await.map(|t| t.is_dir()).unwrap_or(false);
        let mut name = entry.file_name().to_string_lossy().into_owned();
        if is_dir {
            name.push('/');
        }
        names.push(name);
    }
    Ok(listing(names))
}

pub(crate) fn listing(mut names: Vec<String>) -> String {
    names.sort();
    let mut html = String::from("<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n");
    for name in names {
        let mut href = escape_path(&name);
        // A first segment with a colon would read as a scheme.
        if name.split('/').next().is_some_and(|first| first.contains(':')) {
            href.insert_str(0, "./");
        }
        html.push_str(&format!("<a href=\"{href}\">{}</a>\n", escape_html(&name)));
    }
    html.push_str("</pre>\n");
    html
}

/// Percent-encodes what a URL path may not hold as is (Go's `url.URL{Path: …}.String()`).
fn escape_path(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&#34;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_what_go_writes() {
        let html = listing(vec!["syslog".into(), "apt/".into(), "a b<&>.log".into(), "x:y".into()]);
        assert_eq!(
            html,
            "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n\
             <a href=\"a%20b%3C&%3E.log\">a b&lt;&amp;&gt;.log</a>\n\
             <a href=\"apt/\">apt/</a>\n\
             <a href=\"syslog\">syslog</a>\n\
             <a href=\"./x:y\">x:y</a>\n\
             </pre>\n"
        );
    }

    #[test]
    fn text_or_binary() {
        assert!(looks_like_text(b"Jan 1 started\n\ttab\r\n"));
        assert!(!looks_like_text(b"\x00\x01utmp"));
        assert!(looks_like_text("caf\u{e9}".as_bytes()));
    }

    async fn get(root: &Path, path: &str) -> (StatusCode, String, Option<String>) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = answer(root, request).await;
        let status = response.status();
        let location = response.headers().get(header::LOCATION).map(|l| l.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned(), location)
    }

    #[tokio::test]
    async fn logs_are_served_read_only_from_their_directory() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("pods")).unwrap();
        std::fs::write(root.path().join("syslog"), "line one\nline two\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("escape")).unwrap();
        let root = root.path();

        let (status, body, _) = get(root, "/logs/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("<a href=\"pods/\">pods/</a>") && body.contains("<a href=\"syslog\">syslog</a>"),
            "{body}"
        );
        assert_eq!(get(root, "/logs/syslog").await.1, "line one\nline two\n");
        assert_eq!(get(root, "/logs/pods").await.2.as_deref(), Some("pods/"));
        assert_eq!(get(root, "/logs/pods/").await.0, StatusCode::OK);
        assert_eq!(get(root, "/logs/nosuch").await.0, StatusCode::NOT_FOUND);
        for climbing in ["/logs/../etc/passwd", "/logs/%2e%2e/%2E%2E/etc/passwd", "/logs/pods/../../x"] {
            let (status, body, _) = get(root, climbing).await;
            assert_eq!((status, body.as_str()), (StatusCode::BAD_REQUEST, "invalid URL path\n"), "{climbing}");
        }
        assert_eq!(get(root, "/logs/escape").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(root, "/healthz").await.1, "ok");
        assert_eq!(get(root, "/pods").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(root, "/logsx").await.0, StatusCode::NOT_FOUND);
    }
}
