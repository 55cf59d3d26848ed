//! The routes a source contributes, in terms that know no Ingress: what a producer (the Ingress
//! compiler today, an HTTPRoute compiler later) hands to [`crate::compile`].

use std::fmt;

use k8s_openapi::jiff::Timestamp;

/// The kind of object routes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    Ingress,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Ingress => "Ingress",
        }
    }
}

/// The object a route comes from: where its problems are reported, and its metrics' labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteSource {
    pub kind: SourceKind,
    pub namespace: String,
    pub name: String,
}

impl RouteSource {
    pub fn ingress(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        RouteSource { kind: SourceKind::Ingress, namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for RouteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// Which `Host`s a rule serves.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostMatch {
    /// A rule without a host: requests whose host no other rule names.
    Any,
    /// One name, lower-cased.
    Exact(String),
    /// `*.foo.com`, lower-cased: any one label in place of the `*` (Ingress's wildcard).
    Wildcard(String),
}

impl HostMatch {
    /// A rule's `host` as written: empty for [`HostMatch::Any`], `*.` for a wildcard.
    pub fn parse(host: &str) -> HostMatch {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            HostMatch::Any
        } else if host.starts_with("*.") {
            HostMatch::Wildcard(host)
        } else {
            HostMatch::Exact(host)
        }
    }

    /// The pattern, `*` for [`HostMatch::Any`]: a label for metrics and messages.
    pub fn as_str(&self) -> &str {
        match self {
            HostMatch::Any => "*",
            HostMatch::Exact(host) | HostMatch::Wildcard(host) => host,
        }
    }
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a request's path is matched; case-sensitive.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathMatch {
    /// The whole path, byte for byte (`/foo` matches neither `/foo/` nor `/Foo`).
    Exact(String),
    /// A prefix of whole `/`-separated elements, a trailing slash ignored (`/foo` and `/foo/`
    /// both match `/foo`, `/foo/` and `/foo/bar`, not `/foobar`); `/` matches every path.
    Prefix(String),
}

impl PathMatch {
    /// The path as written.
    pub fn path(&self) -> &str {
        match self {
            PathMatch::Exact(path) | PathMatch::Prefix(path) => path,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            PathMatch::Exact(_) => "Exact",
            PathMatch::Prefix(_) => "Prefix",
        }
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path(), self.type_name())
    }
}

/// A Service port, as a route names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PortRef {
    /// The Service port's `port`.
    Number(u16),
    /// The Service port's `name`.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(number) => write!(f, "{number}"),
            PortRef::Name(name) => write!(f, "{name:?}"),
        }
    }
}

/// A Service port a route sends to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendRef {
    pub namespace: String,
    pub name: String,
    pub port: PortRef,
}

/// A Secret holding a certificate and its key (`tls.crt`, `tls.key`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Requests for `host` whose path matches `path` go to `backend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRoute {
    pub host: HostMatch,
    pub path: PathMatch,
    pub backend: BackendRef,
}

/// Requests for `host` that match no path go to `backend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultRoute {
    pub host: HostMatch,
    pub backend: BackendRef,
    /// The source routes nothing but this (an Ingress with a `defaultBackend` and no rules): it
    /// goes before the defaults of sources that also route paths, whatever their age.
    pub dedicated: bool,
}

/// TLS for SNI names matching `host` is terminated with `secret`'s certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsBinding {
    pub host: HostMatch,
    pub secret: SecretRef,
}

/// Everything one source contributes to the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSet {
    pub source: RouteSource,
    /// Its `creationTimestamp`: the older source wins a conflict (then `namespace/name`).
    pub created: Option<Timestamp>,
    /// The hosts it defines, whether or not with paths: a host defined anywhere is never served
    /// by the host-less rules.
    pub hosts: Vec<HostMatch>,
    pub paths: Vec<PathRoute>,
    pub defaults: Vec<DefaultRoute>,
    pub tls: Vec<TlsBinding>,
}

impl RouteSet {
    pub fn new(source: RouteSource, created: Option<Timestamp>) -> Self {
        RouteSet { source, created, hosts: Vec::new(), paths: Vec::new(), defaults: Vec::new(), tls: Vec::new() }
    }

    /// The order of precedence between sources: older first, then by kind, namespace, name.
    pub(crate) fn precedence(&self) -> (Option<Timestamp>, &RouteSource) {
        (self.created, &self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_lower_cased_with_wildcards_and_catch_all() {
        let cases = [
            ("", HostMatch::Any),
            ("Foo.Example.COM", HostMatch::Exact("foo.example.com".into())),
            ("foo.example.com.", HostMatch::Exact("foo.example.com".into())),
            ("*.Foo.com", HostMatch::Wildcard("*.foo.com".into())),
        ];
        for (written, expected) in cases {
            assert_eq!(HostMatch::parse(written), expected, "{written:?}");
        }
        assert_eq!(HostMatch::Any.as_str(), "*");
    }
}
