//! The OpenAPI v3 documents frontdoor serves, and unknown-field detection for `fieldValidation`.
//!
//! This crate owns:
//! - the documents kube-apiserver serves at `GET /openapi/v3/<api/v1 | apis/<group>/<version>>`,
//!   one per group-version of the resource catalogue ([`frontdoor_resources`]), and the index at
//!   `GET /openapi/v3` ([`index`], [`document`]). Their component schemas are generated from
//!   k8s-openapi's `schemars` implementations, named and shaped as upstream publishes them, with
//!   `x-kubernetes-group-version-kind` on kinds and upstream's list-merge extensions; their paths
//!   carry an operation per verb with the query parameters and patch content types kubectl looks
//!   for. With them kubectl sends `fieldValidation=Strict` instead of validating client-side,
//!   computes strategic merge patches for `apply`, and answers `kubectl explain`.
//! - checking a request body against those schemas: [`unknown_fields`] and the texts of the
//!   resulting error and warnings ([`strict_decoding_error`], [`unknown_field_warning`]).
//!
//! It does no I/O. Everything is computed on first use (tens of milliseconds) and kept for the
//! life of the process, so serving a document is handing out a byte slice.
#![forbid(unsafe_code)]

mod documents;
mod kinds;
mod patch_meta;
mod paths;
mod schemas;
mod unknown;

pub use documents::{Document, KUBERNETES_VERSION};
pub use unknown::{strict_decoding_error, unknown_field_warning, unknown_fields};

use serde_json::{Map, Value};

/// The body of `GET /openapi/v3`:
/// `{"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=…"},…}}`.
pub fn index() -> Value {
    let paths: Map<String, Value> = documents::all()
        .iter()
        .map(|d| (d.path().to_string(), serde_json::json!({ "serverRelativeURL": d.server_relative_url() })))
        .collect();
    serde_json::json!({ "paths": paths })
}

/// The document for `path` (`api/v1`, `apis/apps/v1`; a leading `/` or `openapi/v3/` is
/// tolerated), or `None` for a group-version that is not served.
pub fn document(path: &str) -> Option<&'static Document> {
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("openapi/v3/").unwrap_or(path).trim_end_matches('/');
    documents::all().iter().find(|d| d.path() == path)
}

/// The document of one group-version (`""` for the core group).
pub fn document_for(group: &str, version: &str) -> Option<&'static Document> {
    document(&documents::path_of(group, version))
}

/// Every served document, core group first, in catalogue order.
pub fn documents() -> &'static [Document] {
    documents::all()
}

#[cfg(test)]
mod tests;
