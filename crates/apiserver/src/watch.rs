//! Watch streams: newline-delimited JSON events, from a resourceVersion or from "now" with the
//! current objects as ADDED, filtered by key prefix and selectors, with bookmarks and timeouts.
//!
//! A selector-filtered watch turns transitions into what the client's cache needs: an object that
//! starts matching arrives as ADDED, one that stops matching as DELETED.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use frontdoor_resources::ResourceType;
use frontdoor_store::{Event, EventType, StoreError};

use crate::body::Representation;
use crate::errors::{ApiError, ApiResult};
use crate::handlers::selectors;
use crate::request::Target;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::{table, ApiState};

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);
/// How many already-waiting events one write may carry.
const MAX_BATCH: usize = 256;
/// Upper bound of a watch without `timeoutSeconds` (clients re-watch).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct Filter {
    prefix: String,
    /// Set for a watch on one named object.
    exact_key: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn covers(&self, key: &str) -> bool {
        match &self.exact_key {
            Some(exact) => key == exact,
            None => key.starts_with(&self.prefix),
        }
    }

    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event type this watcher sees for a store event, if any.
    fn translate(&self, event: &Event) -> Option<&'static str> {
        if !self.covers(&event.key) {
            return None;
        }
        let now = self.matches(&event.object);
        let before = event.previous.as_deref().is_some_and(|p| self.matches(p));
        match event.event_type {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => before.then_some("DELETED"),
            EventType::Modified => match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            },
        }
    }
}

struct Encoder {
    resource: &'static ResourceType,
    representation: Representation,
    sent_columns: bool,
}

impl Encoder {
    /// One event line. `json` is the object already serialized (from the store), used as-is for
    /// plain JSON watches so an event is serialized once however many watchers receive it.
    fn line(&mut self, event_type: &str, object: &Value, json: Option<&Bytes>) -> Bytes {
        let mut line = bytes::BytesMut::new();
        self.append(&mut line, event_type, object, json);
        line.freeze()
    }

    /// Appends one event line to `out` (a batch of lines for one write).
    fn append(&mut self, out: &mut bytes::BytesMut, event_type: &str, object: &Value, json: Option<&Bytes>) {
        if let (Representation::Object, Some(json)) = (self.representation, json) {
            out.reserve(json.len() + 32);
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(event_type.as_bytes());
            out.extend_from_slice(b"\",\"object\":");
            out.extend_from_slice(json);
            out.extend_from_slice(b"}\n");
            return;
        }
        let object = match self.representation {
            Representation::Object => object.clone(),
            Representation::Table(include) if event_type != "BOOKMARK" && event_type != "ERROR" => {
                let rv = object.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
                let t = table::table(self.resource, &[object], include, rv, !self.sent_columns);
                self.sent_columns = true;
                t
            }
            Representation::Table(_) => object.clone(),
        };
        let mut bytes = serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        out.extend_from_slice(&bytes);
    }
}

pub fn serve(
    state: &ApiState,
    target: &Target,
    query: &HashMap<String, String>,
    representation: Representation,
) -> ApiResult<Response> {
    let resource = target.resource;
    let (labels, fields) = selectors(resource, query)?;
    // A watch on a named object (`/watch/.../name`) is a watch on its key alone.
    let exact_key = target.name.as_ref().map(|_| target.key());
    let filter = Filter { prefix: target.prefix(), exact_key, labels, fields };
    let requested = query.get("resourceVersion").cloned().unwrap_or_default();
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let store = &state.registry.store;

    let mut encoder = Encoder { resource, representation, sent_columns: false };
    let mut initial = Vec::new();
    let mut last_revision;
    let watch = if requested.is_empty() || requested == "0" || send_initial {
        // Start "now": the current objects as ADDED, then changes after that revision.
        let (revision, items) = store.list(&filter.prefix, None, 0);
        let watch = store.watch(revision).map_err(ApiError::internal)?;
        for (key, stored) in items {
            if filter.covers(&key) && filter.matches(&stored.value) {
                initial.push(encoder.line("ADDED", &stored.value, Some(&stored.json)));
            }
        }
        last_revision = revision;
        if send_initial {
            let bookmark = bookmark_object(resource, revision, true);
            initial.push(encoder.line("BOOKMARK", &bookmark, None));
        }
        Some(watch)
    } else {
        let revision: u64 =
            requested.parse().map_err(|_| ApiError::bad_request(format!("invalid resource version: {requested}")))?;
        last_revision = revision;
        match store.watch(revision) {
            Ok(watch) => Some(watch),
            Err(StoreError::Expired { requested, oldest }) => {
                let status = ApiError::expired(format!("too old resource version: {requested} ({oldest})")).status();
                initial.push(encoder.line("ERROR", &status, None));
                None
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
    };

    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let store = store.clone();
    tokio::spawn(async move {
        for line in initial {
            if sender.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let Some(watch) = watch else { return };
        for event in watch.backlog {
            if let Some(line) = deliver(&filter, &mut encoder, &event, &mut last_revision) {
                if sender.send(Ok(line)).await.is_err() {
                    return;
                }
            }
        }
        let mut live = watch.live;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = sender.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let line = encoder.line("BOOKMARK", &bookmark_object(resource, last_revision, false), None);
                    if sender.send(Ok(line)).await.is_err() { return; }
                }
                received = live.recv() => match received {
                    Ok(event) => {
                        // Send every event that is already waiting in one write: under load this
                        // turns many small frames (and TLS records) into one.
                        let mut batch = bytes::BytesMut::new();
                        deliver_into(&mut batch, &filter, &mut encoder, &event, &mut last_revision);
                        let mut lagged = false;
                        for _ in 0..MAX_BATCH {
                            match live.try_recv() {
                                Ok(event) => deliver_into(&mut batch, &filter, &mut encoder, &event, &mut last_revision),
                                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                                    lagged = true;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if !batch.is_empty() && sender.send(Ok(batch.freeze())).await.is_err() {
                            return;
                        }
                        if lagged {
                            let Ok(resumed) = store.watch(last_revision) else { return };
                            for event in resumed.backlog {
                                if let Some(line) = deliver(&filter, &mut encoder, &event, &mut last_revision) {
                                    if sender.send(Ok(line)).await.is_err() { return; }
                                }
                            }
                            live = resumed.live;
                        }
                    }
                    // Fell behind the live queue: catch up from the event window. Past the
                    // window (or with the store gone) the stream ends and the client re-watches.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let Ok(resumed) = store.watch(last_revision) else { return };
                        for event in resumed.backlog {
                            if let Some(line) = deliver(&filter, &mut encoder, &event, &mut last_revision) {
                                if sender.send(Ok(line)).await.is_err() { return; }
                            }
                        }
                        live = resumed.live;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });

    let stream = futures::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|item| (item, r)) });
    let content_type = match representation {
        Representation::Table(_) => table::CONTENT_TYPE,
        Representation::Object => "application/json",
    };
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

fn deliver(filter: &Filter, encoder: &mut Encoder, event: &Arc<Event>, last_revision: &mut u64) -> Option<Bytes> {
    let mut line = bytes::BytesMut::new();
    deliver_into(&mut line, filter, encoder, event, last_revision);
    (!line.is_empty()).then(|| line.freeze())
}

/// Appends the event's line to `batch` if this watcher sees it.
fn deliver_into(
    batch: &mut bytes::BytesMut,
    filter: &Filter,
    encoder: &mut Encoder,
    event: &Arc<Event>,
    last_revision: &mut u64,
) {
    *last_revision = (*last_revision).max(event.revision);
    if let Some(event_type) = filter.translate(event) {
        encoder.append(batch, event_type, &event.object, Some(&event.object_json));
    }
}

fn bookmark_object(resource: &ResourceType, revision: u64, initial_events_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": resource.kind, "apiVersion": resource.api_version(), "metadata": metadata})
}
