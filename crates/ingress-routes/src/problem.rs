//! What a build could not honour, for the controller to report as Warning Events.

use std::fmt;

use crate::model::RouteSource;

/// Why part of a source is not served as written; [`Reason::as_str`] is the Event's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// A `resource` backend (only Service backends are served); the path is skipped.
    UnsupportedBackend,
    /// A path or path type the API would not have accepted; the path is skipped.
    InvalidPath,
    /// The backend's Service does not exist: its requests are answered 503.
    ServiceNotFound,
    /// The Service has no TCP port of that number or name: 503.
    PortNotFound,
    /// An ExternalName Service, which has no endpoints to send to: 503.
    UnsupportedServiceType,
    /// A `tls` entry's Secret does not exist: its hosts get the default certificate.
    SecretNotFound,
    /// A `tls` entry's Secret lacks `tls.crt` or `tls.key`: its hosts get the default certificate.
    InvalidSecret,
    /// Another source (older, or with the longer Prefix path) serves the same host and path.
    PathConflict,
    /// Another source's default backend serves the host's unmatched requests.
    DefaultBackendConflict,
    /// Another source's Secret serves the host's TLS.
    CertificateConflict,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnsupportedBackend => "UnsupportedBackend",
            Reason::InvalidPath => "InvalidPath",
            Reason::ServiceNotFound => "ServiceNotFound",
            Reason::PortNotFound => "PortNotFound",
            Reason::UnsupportedServiceType => "UnsupportedServiceType",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::InvalidSecret => "InvalidSecret",
            Reason::PathConflict => "PathConflict",
            Reason::DefaultBackendConflict => "DefaultBackendConflict",
            Reason::CertificateConflict => "CertificateConflict",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One warning about one source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    pub source: RouteSource,
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(source: &RouteSource, reason: Reason, message: String) -> Self {
        Problem { source: source.clone(), reason, message }
    }
}
