//! HTTP handlers for resource URLs: map method + path + query to a registry verb, and the result
//! to a response in the representation the client asked for.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use frontdoor_resources::ResourceType;

use crate::body::{self, Representation};
use crate::errors::{ApiError, ApiResult, Cause};
use crate::registry::{scale_of, DeleteOptions, ObjectRef, WriteOptions};
use crate::request::{self, Target};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::{fields, patch, table, watch, ApiState};

pub async fn handle(
    state: &ApiState,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match dispatch(state, method, path, query, headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn dispatch(
    state: &ApiState,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let target = request::parse_path(path)?;
    let query = request::parse_query(query);
    let resource = target.resource;
    let representation = body::representation(&headers, query.get("includeObject").map(String::as_str));
    let is_watch = target.watch_prefix || matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (&method, target.name.is_some(), is_watch) {
        (&Method::GET, _, true) => "watch",
        (&Method::GET, true, _) => "get",
        (&Method::GET, false, _) => "list",
        (&Method::POST, false, _) => "create",
        (&Method::POST, true, _) if target.subresource.is_some() => "create",
        (&Method::PUT, true, _) => "update",
        (&Method::PATCH, true, _) => "patch",
        (&Method::DELETE, true, _) => "delete",
        (&Method::DELETE, false, _) => "deletecollection",
        _ => return Err(ApiError::method_not_allowed(method.as_str(), resource.plural)),
    };
    tracing::debug!(
        verb,
        resource = resource.plural,
        subresource = target.subresource.as_deref().unwrap_or(""),
        namespace = target.namespace.as_deref().unwrap_or(""),
        "request"
    );
    let allowed = match &target.subresource {
        Some(sub) => resource.subresource(sub).is_some_and(|s| s.verbs.contains(&verb)),
        None => resource.verbs.contains(&verb),
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(verb, &resource.qualified_plural()));
    }
    let at = ObjectRef { resource, namespace: target.namespace.as_deref(), name: target.name() };
    check_options(verb, &query)?;
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let options = WriteOptions { dry_run, subresource: target.subresource.clone() };
    match verb {
        "get" if target.subresource.as_deref() == Some("log") => pod_logs(state, &at, &query),
        "get" => get(state, &target, &at, representation),
        "list" => list(state, &target, &query, representation),
        "watch" => watch::serve(state, &target, &query, representation),
        "create" if target.subresource.as_deref() == Some("binding") => {
            let binding = body::decode(&headers, &body)?;
            let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or("").to_string();
            state.registry.bind(&at, &node, dry_run).await?;
            Ok(body::json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        "create" => {
            let mut warnings = Vec::new();
            let object = decode_checked(resource, &headers, &body, &query, &mut warnings)?;
            let created = state.registry.create(resource, target.namespace.as_deref(), object, &options).await?;
            Ok(with_warnings(
                body::json_bytes_response(StatusCode::CREATED, created.json, "application/json"),
                &warnings,
            ))
        }
        "update" => {
            let mut warnings = Vec::new();
            let object = decode_checked(resource, &headers, &body, &query, &mut warnings)?;
            let updated = state.registry.update(&at, object, &options).await?;
            Ok(with_warnings(written_response(&target, &at, updated, state)?, &warnings))
        }
        "patch" => {
            let content_type = body::content_type(&headers);
            if ![patch::JSON, patch::MERGE, patch::STRATEGIC, patch::APPLY].contains(&content_type.as_str()) {
                return Err(ApiError::unsupported_media_type(&content_type));
            }
            let patch_body = body::decode(&headers, &body)?;
            let mut warnings = Vec::new();
            if content_type != patch::JSON && target.subresource.is_none() {
                check_fields(resource, &patch_body, &query, &mut warnings)?;
            }
            let patched = state.registry.patch(&at, &content_type, &patch_body, &options).await?;
            Ok(with_warnings(written_response(&target, &at, patched, state)?, &warnings))
        }
        "delete" => {
            let delete_options = delete_options(&headers, &body, &query)?;
            let deleted = state.registry.delete(&at, &delete_options).await?;
            Ok(body::json_response(StatusCode::OK, &deleted))
        }
        "deletecollection" => delete_collection(state, &target, &query, &headers, &body).await,
        _ => Err(ApiError::no_route()),
    }
}

/// The write options upstream validates before anything else (`ValidateCreateOptions` and its
/// kin): `dryRun` may only be `All`, `fieldValidation` only `Ignore`, `Warn` or `Strict`. A
/// value it does not know is a 422 about the options, never a write.
fn check_options(verb: &str, query: &HashMap<String, String>) -> ApiResult<()> {
    let kind = match verb {
        "create" => "CreateOptions",
        "update" => "UpdateOptions",
        "patch" => "PatchOptions",
        "delete" | "deletecollection" => "DeleteOptions",
        _ => return Ok(()),
    };
    let mut causes = Vec::new();
    if let Some(dry_run) = query.get("dryRun").filter(|v| v.as_str() != "All") {
        causes.push(Cause::not_supported("dryRun", &json!([dry_run]), &["All"]));
    }
    let field_validation =
        query.get("fieldValidation").filter(|v| !matches!(v.as_str(), "" | "Ignore" | "Warn" | "Strict"));
    if let (Some(value), true) = (field_validation, verb != "delete" && verb != "deletecollection") {
        causes.push(Cause::not_supported("fieldValidation", &json!(value), &["Ignore", "Strict", "Warn"]));
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(kind, "meta.k8s.io", "", causes))
}

/// Decodes a create/update body and applies `fieldValidation` to it.
fn decode_checked(
    resource: &ResourceType,
    headers: &HeaderMap,
    body: &Bytes,
    query: &HashMap<String, String>,
    warnings: &mut Vec<String>,
) -> ApiResult<Value> {
    let object = body::decode(headers, body)?;
    check_fields(resource, &object, query, warnings)?;
    Ok(object)
}

/// `fieldValidation`: Strict rejects unknown fields, Warn reports them, Ignore drops them.
fn check_fields(
    resource: &ResourceType,
    object: &Value,
    query: &HashMap<String, String>,
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    let mode = query.get("fieldValidation").map(String::as_str).unwrap_or("Warn");
    if mode == "Ignore" {
        return Ok(());
    }
    let unknown = fields::unknown_fields(resource, object);
    if unknown.is_empty() {
        return Ok(());
    }
    if mode == "Strict" {
        return Err(ApiError::bad_request(fields::strict_decoding_error(&unknown)));
    }
    warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
    Ok(())
}

/// Upstream's limits on warnings: 4,096 characters in all; past that, each is cut to 256.
const WARNINGS_TOTAL: usize = 4 * 1024;
const WARNING_CUT: usize = 256;
/// Warning header lines at most; more warnings share the last line, comma-separated (RFC 7234
/// allows a list; client-go reads it), so an answer never has more headers than clients accept.
const WARNING_LINES: usize = 64;

/// The warnings as upstream's recorder keeps them: each once, at most [`WARNINGS_TOTAL`]
/// characters, cut to [`WARNING_CUT`] each once the total would be exceeded.
fn kept_warnings(warnings: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&String> = warnings.iter().filter(|w| !w.is_empty() && seen.insert(w.as_str())).collect();
    let total: usize = unique.iter().map(|w| w.chars().count()).sum();
    if total <= WARNINGS_TOTAL {
        return unique.into_iter().cloned().collect();
    }
    let mut kept = Vec::new();
    let mut written = 0;
    for warning in unique {
        if written >= WARNINGS_TOTAL {
            break;
        }
        let cut: String = warning.chars().take(WARNING_CUT).collect();
        written += cut.chars().count();
        kept.push(cut);
    }
    kept
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    let values: Vec<String> = kept_warnings(warnings)
        .iter()
        .map(|w| format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    let split = values.len().min(WARNING_LINES.saturating_sub(1));
    let (own_lines, shared) = values.split_at(if values.len() > WARNING_LINES { split } else { values.len() });
    let shared = (!shared.is_empty()).then(|| shared.join(", "));
    for value in own_lines.iter().chain(shared.iter()) {
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            response.headers_mut().append("Warning", value);
        }
    }
    response
}

/// The answer to an update or patch: the stored object as written (its JSON is reused), or for
/// the scale subresource its `Scale` view.
fn written_response(
    target: &Target,
    at: &ObjectRef,
    written: frontdoor_store::Stored,
    state: &ApiState,
) -> ApiResult<Response> {
    if target.subresource.as_deref() == Some("scale") {
        let stored = state.registry.get(at)?;
        return Ok(body::json_response(StatusCode::OK, &scale_of(at.resource, &stored)?));
    }
    Ok(body::json_bytes_response(StatusCode::OK, written.json, "application/json"))
}

fn get(state: &ApiState, target: &Target, at: &ObjectRef, representation: Representation) -> ApiResult<Response> {
    let stored = state.registry.get(at)?;
    if target.subresource.as_deref() == Some("scale") {
        return Ok(body::json_response(StatusCode::OK, &scale_of(at.resource, &stored)?));
    }
    Ok(match representation {
        Representation::Object => body::json_bytes_response(StatusCode::OK, stored.json.clone(), "application/json"),
        Representation::Table(include) => {
            let table =
                table::table(at.resource, &[stored.value.as_ref()], include, &stored.revision.to_string(), true);
            body::json_bytes_response(
                StatusCode::OK,
                serde_json::to_vec(&table).unwrap_or_default(),
                table::CONTENT_TYPE,
            )
        }
    })
}

/// `GET pods/<name>/log`: the container's log from the node, streamed as text.
fn pod_logs(state: &ApiState, at: &ObjectRef, query: &HashMap<String, String>) -> ApiResult<Response> {
    let pod = state.registry.get(at)?;
    let container = container_of(&pod.value, at.name, query.get("container").map(String::as_str))?;
    let number = |key: &str| query.get(key).and_then(|v| v.parse::<i64>().ok());
    let log_query = crate::LogQuery {
        follow: query.get("follow").is_some_and(|v| v == "true"),
        tail_lines: number("tailLines").map(|n| n.max(0) as usize),
        timestamps: query.get("timestamps").is_some_and(|v| v == "true"),
        previous: query.get("previous").is_some_and(|v| v == "true"),
        since_seconds: number("sinceSeconds"),
        limit_bytes: number("limitBytes").map(|n| n.max(0) as usize),
    };
    let source =
        state.logs.get().ok_or_else(|| ApiError::bad_request("logs are not available: this server runs no node"))?;
    let receiver = source.open(&pod.value, &container, &log_query).map_err(ApiError::bad_request)?;
    let stream =
        futures::stream::unfold(
            receiver,
            |mut r| async move { r.recv().await.map(|b| (Ok::<_, std::io::Error>(b), r)) },
        );
    let mut response = Response::new(axum::body::Body::from_stream(stream));
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// The container a pod subresource (`log`, `exec`) is for: the one asked for, or the only one.
pub(crate) fn container_of(pod: &Value, pod_name: &str, asked: Option<&str>) -> ApiResult<String> {
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match asked.filter(|c| !c.is_empty()) {
        Some(name) if names.contains(&name) => Ok(name.to_string()),
        Some(name) => Err(ApiError::bad_request(format!("container {name} is not valid for pod {pod_name}"))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// Label and field selectors of a list or watch request.
pub fn selectors(
    resource: &ResourceType,
    query: &HashMap<String, String>,
) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""), resource.kind)?;
    Ok((labels, fields))
}

/// A continue token: the last key returned, opaque to clients.
fn encode_continue(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> ApiResult<String> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

fn list(
    state: &ApiState,
    target: &Target,
    query: &HashMap<String, String>,
    representation: Representation,
) -> ApiResult<Response> {
    let resource = target.resource;
    let (labels, fields) = selectors(resource, query)?;
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let prefix = target.prefix();
    let start_after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let key = decode_continue(token)?;
            if !key.starts_with(&prefix) {
                return Err(ApiError::bad_request("continue key is not valid: the key is not in this collection"));
            }
            Some(key)
        }
        None => None,
    };
    let (revision, items) = state.registry.store.list(&prefix, start_after.as_deref(), 0);
    check_list_resource_version(query, revision)?;
    let mut selected = Vec::new();
    let mut last_key = None;
    let mut more = false;
    for (key, stored) in &items {
        if !(labels.matches(&stored.value) && fields.matches(&stored.value)) {
            continue;
        }
        if limit > 0 && selected.len() == limit {
            more = true;
            break;
        }
        selected.push(stored);
        last_key = Some(key.clone());
    }
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if more {
        if let Some(key) = &last_key {
            metadata["continue"] = json!(encode_continue(key));
            if labels.is_empty() && fields.is_empty() {
                metadata["remainingItemCount"] = json!(state.registry.store.count_after(&prefix, key));
            }
        }
    }
    match representation {
        Representation::Table(include) => {
            let objects: Vec<&Value> = selected.iter().map(|s| s.value.as_ref()).collect();
            let mut table = table::table(resource, &objects, include, &revision.to_string(), true);
            table["metadata"] = metadata;
            Ok(body::json_bytes_response(
                StatusCode::OK,
                serde_json::to_vec(&table).unwrap_or_default(),
                table::CONTENT_TYPE,
            ))
        }
        Representation::Object => Ok(list_bytes_response(resource, metadata, selected.iter().map(|s| &s.json[..]))),
    }
}

/// Serializes a List without cloning its items.
fn list_response(resource: &ResourceType, metadata: Value, items: &[&Value]) -> Response {
    #[derive(serde::Serialize)]
    struct List<'a> {
        kind: String,
        #[serde(rename = "apiVersion")]
        api_version: String,
        metadata: Value,
        items: &'a [&'a Value],
    }
    let list = List { kind: format!("{}List", resource.kind), api_version: resource.api_version(), metadata, items };
    body::json_bytes_response(StatusCode::OK, serde_json::to_vec(&list).unwrap_or_default(), "application/json")
}

/// `resourceVersion` + `resourceVersionMatch` on a list. The store serves the newest state, so
/// an `Exact` older revision is gone (410, the client relists) and a revision from the future is
/// refused as upstream does.
fn check_list_resource_version(query: &HashMap<String, String>, current: u64) -> ApiResult<()> {
    let Some(requested) = query.get("resourceVersion").filter(|rv| !rv.is_empty() && *rv != "0") else { return Ok(()) };
    let requested: u64 =
        requested.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version: {requested}")))?;
    if requested > current {
        return Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        ));
    }
    if query.get("resourceVersionMatch").map(String::as_str) == Some("Exact") && requested != current {
        return Err(ApiError::expired(format!("too old resource version: {requested} ({current})")));
    }
    Ok(())
}

/// A List assembled from the stored JSON of its items (no re-serialization).
fn list_bytes_response<'a>(
    resource: &ResourceType,
    metadata: Value,
    items: impl Iterator<Item = &'a [u8]>,
) -> Response {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(
        format!("{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":", resource.kind, resource.api_version())
            .as_bytes(),
    );
    out.extend_from_slice(&serde_json::to_vec(&metadata).unwrap_or_default());
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    body::json_bytes_response(StatusCode::OK, out, "application/json")
}

fn delete_options(headers: &HeaderMap, body: &Bytes, query: &HashMap<String, String>) -> ApiResult<DeleteOptions> {
    let value: Value = if body.is_empty() { json!({}) } else { body::decode(headers, body)? };
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All")
        || value.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "All"));
    let propagation = query
        .get("propagationPolicy")
        .cloned()
        .or_else(|| value.get("propagationPolicy").and_then(Value::as_str).map(String::from))
        .or_else(|| match value.get("orphanDependents").and_then(Value::as_bool) {
            Some(true) => Some("Orphan".to_string()),
            _ => None,
        });
    if let Some(p) = &propagation {
        if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            )));
        }
    }
    Ok(DeleteOptions {
        dry_run,
        propagation,
        precondition_uid: value.pointer("/preconditions/uid").and_then(Value::as_str).map(String::from),
        precondition_resource_version: value
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
        grace_period_seconds: query
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse().ok())
            .or_else(|| value.get("gracePeriodSeconds").and_then(Value::as_i64)),
    })
}

async fn delete_collection(
    state: &ApiState,
    target: &Target,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let resource = target.resource;
    let (labels, fields) = selectors(resource, query)?;
    let options = delete_options(headers, body, query)?;
    let (revision, items) = state.registry.list(resource, target.namespace.as_deref());
    let mut deleted = Vec::new();
    for stored in items.iter().filter(|s| labels.matches(&s.value) && fields.matches(&s.value)) {
        let name = stored.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let namespace = stored.value.pointer("/metadata/namespace").and_then(Value::as_str);
        let at = ObjectRef { resource, namespace, name };
        match state.registry.delete(&at, &options).await {
            Ok(object) => deleted.push(object),
            Err(e) if e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    let refs: Vec<&Value> = deleted.iter().collect();
    Ok(list_response(resource, json!({"resourceVersion": revision.to_string()}), &refs))
}

#[cfg(test)]
mod warning_tests {
    use super::*;

    #[test]
    fn warnings_are_deduplicated_capped_and_never_too_many_headers() {
        let few = vec!["unknown field \"spec.a\"".to_string(), "unknown field \"spec.a\"".to_string()];
        assert_eq!(kept_warnings(&few).len(), 1);
        let many: Vec<String> = (0..500).map(|i| format!("unknown field \"spec.f{i}\"")).collect();
        let kept = kept_warnings(&many);
        let total: usize = kept.iter().map(|w| w.chars().count()).sum();
        assert!(total <= WARNINGS_TOTAL + WARNING_CUT && kept.len() < 500, "{total} in {}", kept.len());
        let long = vec!["x".repeat(5000)];
        assert_eq!(kept_warnings(&long)[0].len(), WARNING_CUT);
        let response = with_warnings(Response::new(axum::body::Body::empty()), &many);
        let lines = response.headers().get_all("Warning").iter().count();
        assert!(lines <= WARNING_LINES, "{lines} header lines");
        let quoted = with_warnings(Response::new(axum::body::Body::empty()), &["a \"b\" c\\".to_string()]);
        assert_eq!(quoted.headers()["Warning"], "299 - \"a \\\"b\\\" c\\\\\"");
    }
}
