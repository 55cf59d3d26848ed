//! The crate's public [`Error`] and the internal [`SyncError`] a failed sync returns (the
//! key is then retried with backoff, never dropped).

use crate::service::ObjectKey;

/// Why [`run`](crate::run) stopped before its shutdown signal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused to list a resource the controllers watch (wrong server, missing
    /// permissions): nothing would ever sync, so the controllers do not start.
    #[error("cannot list {resource}: {source}")]
    Access {
        resource: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// Why one sync of one key failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{verb} {kind} {object}: {source}")]
    Api {
        verb: &'static str,
        kind: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    /// The EndpointSlice cache has not caught up with our own last writes for this key;
    /// acting now could create duplicates.
    #[error("the EndpointSlice cache has not yet seen the last writes for {0}")]
    StaleCache(ObjectKey),
}

impl SyncError {
    pub fn api(verb: &'static str, kind: &'static str, object: impl Into<String>, source: kube::Error) -> SyncError {
        SyncError::Api { verb, kind, object: object.into(), source }
    }
}

impl SyncError {
    /// Whether the sync only saw state older than the latest write: the cache had not caught up
    /// with our own last writes, or an update lost a race (409 Conflict). The next sync, from
    /// newer state, is the normal answer; upstream's controllers log these retries quietly too.
    pub fn is_stale(&self) -> bool {
        match self {
            SyncError::StaleCache(_) => true,
            SyncError::Api { source: kube::Error::Api(status), .. } => status.is_conflict(),
            SyncError::Api { .. } => false,
        }
    }
}

pub use frontdoor_informers::errors::{is_namespace_terminating, is_not_found};

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str) -> SyncError {
        let status = kube::core::Status::failure("refused", reason).with_code(code);
        SyncError::api("update", "Endpoints", "default/web", kube::Error::Api(status.boxed()))
    }

    #[test]
    fn conflicts_and_a_lagging_cache_are_stale_other_failures_are_not() {
        assert!(SyncError::StaleCache(ObjectKey::new("default", "web")).is_stale());
        assert!(api_error(409, "Conflict").is_stale());
        assert!(!api_error(500, "InternalError").is_stale());
        assert!(!api_error(422, "Invalid").is_stale());
    }
}
