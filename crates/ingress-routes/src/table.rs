//! The compiled, immutable route table and the lookup of one request in it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::model::{BackendRef, HostMatch, PathMatch, RouteSource, SecretRef};

/// What a backend speaks, from its Service port's `appProtocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendProtocol {
    /// HTTP/1.1, the default.
    #[default]
    Http1,
    /// HTTP/2 over cleartext (`appProtocol: kubernetes.io/h2c`).
    H2c,
}

/// Which rule a backend serves: stable across builds, for metrics labels and logs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendId {
    pub source: RouteSource,
    pub host: HostMatch,
    /// `None` for a default backend.
    pub path: Option<PathMatch>,
}

impl BackendId {
    /// The path label: the path as written, empty for a default backend.
    pub fn path_label(&self) -> &str {
        self.path.as_ref().map_or("", PathMatch::path)
    }
}

/// Where a matched request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub id: BackendId,
    /// The Service port as the rule names it.
    pub service: BackendRef,
    /// The Service port's number, when the Service and port exist.
    pub service_port: Option<u16>,
    pub protocol: BackendProtocol,
    /// Ready endpoints (address and target port), sorted; shared by every backend of the same
    /// Service port.
    pub endpoints: Arc<[SocketAddr]>,
}

/// The outcome of routing one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// Send it to one of the backend's endpoints.
    Backend(&'a Backend),
    /// A rule matched but its backend has no ready endpoint (or no Service): 503.
    NoEndpoints(&'a Backend),
    /// Nothing matched and no default backend applies: 404.
    NotFound,
}

impl<'a> Route<'a> {
    /// The matched backend, with or without endpoints.
    pub fn backend(&self) -> Option<&'a Backend> {
        match self {
            Route::Backend(backend) | Route::NoEndpoints(backend) => Some(backend),
            Route::NotFound => None,
        }
    }
}

/// The routes of one host pattern.
#[derive(Clone, Debug, Default)]
pub(crate) struct VirtualHost {
    /// Exact paths, as written.
    pub(crate) exact: HashMap<String, Backend>,
    /// Prefix paths without trailing slashes (`/` is the empty string).
    pub(crate) prefix: HashMap<String, Backend>,
    pub(crate) fallback: Option<Backend>,
}

impl VirtualHost {
    /// The Kubernetes Ingress precedence: an Exact match (it matches the whole path, so nothing
    /// matches more of it), else the longest Prefix match in whole elements, else the default.
    fn lookup(&self, path: &str) -> Option<&Backend> {
        self.exact.get(path).or_else(|| self.longest_prefix(path)).or(self.fallback.as_ref())
    }

    /// Tries `path`'s element prefixes from the longest: `/a/b/c`, `/a/b`, `/a`, `/`.
    fn longest_prefix(&self, path: &str) -> Option<&Backend> {
        if self.prefix.is_empty() {
            return None;
        }
        let mut candidate = path.trim_end_matches('/');
        loop {
            if let Some(backend) = self.prefix.get(candidate) {
                return Some(backend);
            }
            let cut = candidate.rfind('/')?;
            candidate = candidate[..cut].trim_end_matches('/');
        }
    }
}

/// A Prefix path's key in [`VirtualHost::prefix`]: trailing slashes ignored.
pub(crate) fn prefix_key(path: &str) -> &str {
    path.trim_end_matches('/')
}

/// The longest host name DNS allows, with room for a trailing dot.
const MAX_HOST: usize = 255;

/// `host` without port and trailing dot, lower-cased into `buf`; `None` when it cannot be a
/// name any rule has.
fn normalize_host<'b>(host: &str, buf: &'b mut [u8; MAX_HOST]) -> Option<&'b str> {
    let host = strip_port(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > buf.len() {
        return None;
    }
    let out = &mut buf[..host.len()];
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

/// `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`; a bare IPv6 address stays whole.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => host,
    }
}

/// What a one-label wildcard for `host` is keyed by: the name after its first label.
pub(crate) fn wildcard_suffix(host: &str) -> Option<&str> {
    let (label, rest) = host.split_once('.')?;
    (!label.is_empty() && !rest.is_empty()).then_some(rest)
}

/// The routes and TLS certificates of every served Ingress, immutable once built; a proxy
/// swaps each new build in (`arc_swap::ArcSwap<RouteTable>`), so a request takes no lock and a
/// lookup allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    pub(crate) exact_hosts: HashMap<String, VirtualHost>,
    /// Keyed by the suffix after `*.`.
    pub(crate) wildcard_hosts: HashMap<String, VirtualHost>,
    /// Rules without a host, for requests whose host no rule names.
    pub(crate) any_host: VirtualHost,
    pub(crate) tls_exact: HashMap<String, SecretRef>,
    /// Keyed by the suffix after `*.`.
    pub(crate) tls_wildcard: HashMap<String, SecretRef>,
}

impl RouteTable {
    /// Routes a request by its `Host` (any case, with or without port and trailing dot) and
    /// path (as the proxy normalised it; a query string is ignored). The host picks one set of
    /// rules, an exact name before a `*.` wildcard before the host-less rules; only that set's
    /// paths and default backend are tried.
    pub fn route(&self, host: &str, path: &str) -> Route<'_> {
        let path = path.find('?').map_or(path, |query| &path[..query]);
        let mut buf = [0u8; MAX_HOST];
        let vhost = normalize_host(host, &mut buf)
            .and_then(|host| {
                self.exact_hosts
                    .get(host)
                    .or_else(|| wildcard_suffix(host).and_then(|suffix| self.wildcard_hosts.get(suffix)))
            })
            .unwrap_or(&self.any_host);
        match vhost.lookup(path) {
            Some(backend) if backend.endpoints.is_empty() => Route::NoEndpoints(backend),
            Some(backend) => Route::Backend(backend),
            None => Route::NotFound,
        }
    }

    /// The Secret whose certificate answers a TLS ClientHello for `sni`: an exact name before a
    /// `*.` wildcard; `None` means the default certificate.
    pub fn tls_for(&self, sni: &str) -> Option<&SecretRef> {
        let mut buf = [0u8; MAX_HOST];
        let sni = normalize_host(sni, &mut buf)?;
        self.tls_exact.get(sni).or_else(|| wildcard_suffix(sni).and_then(|suffix| self.tls_wildcard.get(suffix)))
    }

    /// Every Secret the table uses, for the caller to load certificates from.
    pub fn secrets(&self) -> impl Iterator<Item = &SecretRef> {
        self.tls_exact.values().chain(self.tls_wildcard.values())
    }

    /// Every backend in the table (in no particular order).
    pub fn backends(&self) -> impl Iterator<Item = &Backend> {
        self.exact_hosts
            .values()
            .chain(self.wildcard_hosts.values())
            .chain(std::iter::once(&self.any_host))
            .flat_map(|vhost| vhost.exact.values().chain(vhost.prefix.values()).chain(vhost.fallback.iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_hosts_normalise_without_allocating() {
        let cases = [
            ("Foo.Example.COM", Some("foo.example.com")),
            ("foo.example.com:8443", Some("foo.example.com")),
            ("foo.example.com.", Some("foo.example.com")),
            ("foo.example.com.:80", Some("foo.example.com")),
            ("[::1]:8080", Some("[::1]")),
            ("::1", Some("::1")),
            ("", None),
            (":80", None),
        ];
        for (host, expected) in cases {
            let mut buf = [0u8; MAX_HOST];
            assert_eq!(normalize_host(host, &mut buf), expected, "{host:?}");
        }
        let long = "a".repeat(300);
        assert_eq!(normalize_host(&long, &mut [0u8; MAX_HOST]), None);
    }

    #[test]
    fn wildcards_cover_exactly_one_label() {
        assert_eq!(wildcard_suffix("bar.foo.com"), Some("foo.com"));
        assert_eq!(wildcard_suffix("baz.bar.foo.com"), Some("bar.foo.com"));
        assert_eq!(wildcard_suffix("foo"), None);
        assert_eq!(wildcard_suffix(".foo.com"), None);
    }
}
