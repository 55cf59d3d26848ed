//! Request bodies in (JSON, YAML; size limit) and response media types out (JSON, Table).

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use crate::errors::{ApiError, ApiResult};

/// Upstream's limit on request bodies (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The base media type of the request body, lower-cased, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Decodes a JSON or YAML body into a JSON object.
pub fn decode(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large());
    }
    let media = content_type(headers);
    let value: Value = match media.as_str() {
        "application/yaml" | "application/apply-patch+yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?,
        "application/vnd.kubernetes.protobuf" => frontdoor_protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("unable to decode protobuf body: {e}")))?,
        // JSON, its patch types, and (leniently) no content type at all.
        ""
        | "application/json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(value)
}

/// What the client asked the response to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Object,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io`, with what each row carries.
    Table(IncludeObject),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// Reads `Accept` (and `includeObject`) to choose the representation.
pub fn representation(headers: &HeaderMap, include_object: Option<&str>) -> Representation {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let wants_table = accept.split(',').any(|range| {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    });
    if !wants_table {
        return Representation::Object;
    }
    Representation::Table(match include_object {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    })
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, value: &Value) -> Response {
    json_bytes_response(status, serde_json::to_vec(value).unwrap_or_default(), "application/json")
}

pub fn json_bytes_response(status: StatusCode, bytes: impl Into<Bytes>, content_type: &'static str) -> Response {
    let mut response = (status, bytes.into()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
