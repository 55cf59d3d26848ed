//! The OpenAPI documents frontdoor serves, and unknown-field detection for `fieldValidation`.
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
//! - the Swagger 2.0 (OpenAPI v2) document kube-apiserver serves at `GET /openapi/v2`: all
//!   group-versions in one document converted from the v3 ones ([`openapi_v2_json`]), and the
//!   same as gnostic's protobuf `openapi.v2.Document` ([`openapi_v2_protobuf`]), which kubectl up
//!   to 1.27 fetches before `apply`, `diff`, `create` and `explain` (for the `fieldValidation`
//!   check, strategic-merge patch metadata, `explain --output plaintext-openapiv2` and client-side
//!   validation).
//! - checking a request body against those schemas: [`unknown_fields`] and the texts of the
//!   resulting error and warnings ([`strict_decoding_error`], [`unknown_field_warning`]).
//!
//! It does no I/O. Everything is computed on first use (tens of milliseconds) and kept for the
//! life of the process, so serving a document is handing out a byte slice.
#![forbid(unsafe_code)]

mod documents;
mod gnostic;
mod kinds;
mod patch_meta;
mod paths;
mod schemas;
mod swagger;
mod unknown;
mod zeros;

pub use documents::{Document, KUBERNETES_VERSION};
pub use unknown::{strict_decoding_error, unknown_field_warning, unknown_fields};
pub use zeros::{strings_not_null, with_zero_values};

use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The `Content-Type` of [`openapi_v2_protobuf`], as kube-apiserver (kube-openapi's handler)
/// sends it. Clients ask with `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
/// (kubectl 1.27) or this newer spelling; the old one cannot be answered in kind, because the `@`
/// makes it an invalid media type for Go's `mime.ParseMediaType`, which client-go applies to the
/// response's `Content-Type` (kubectl then fails with "mime: unexpected content after media
/// subtype").
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The body of `GET /openapi/v2` for protobuf clients: gnostic's `openapi.v2.Document` in
/// protobuf wire format, the paths of every served group-version and every schema under
/// `definitions`. Built on first use and kept for the life of the process.
pub fn openapi_v2_protobuf() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| gnostic::encode(&swagger::document()))
}

/// The body of `GET /openapi/v2` as JSON (`Accept: application/json`): the same document as
/// [`openapi_v2_protobuf`]. Built on first use and kept.
pub fn openapi_v2_json() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| serde_json::to_vec(&swagger::document()).expect("a serde_json::Value always serializes"))
}

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
#[cfg(test)]
mod tests_v2;
