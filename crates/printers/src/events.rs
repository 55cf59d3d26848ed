//! Events: core/v1 Event and events.k8s.io/v1 Event. Upstream converts both to the same internal
//! type and prints them with one printer, so they share columns; only the JSON field names differ.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::descriptions::{self as d, string_column, wide_string_column, NAME_COLUMN};
use crate::util::{get, i64_at, name_cell, opt_i64, since, str_at, time_at};
use crate::ColumnDefinition;

pub(crate) const COLUMNS: &[ColumnDefinition] = &[
    string_column("Last Seen", d::EVENT_LAST_TIMESTAMP),
    string_column("Type", d::EVENT_TYPE),
    string_column("Reason", d::EVENT_REASON),
    string_column("Object", d::EVENT_INVOLVED_OBJECT),
    wide_string_column("Subobject", d::OBJECT_REFERENCE_FIELD_PATH),
    wide_string_column("Source", d::EVENT_SOURCE),
    string_column("Message", d::EVENT_MESSAGE),
    wide_string_column("First Seen", d::EVENT_FIRST_TIMESTAMP),
    wide_string_column("Count", d::EVENT_COUNT),
    ColumnDefinition { priority: 1, ..NAME_COLUMN },
];

/// Where an Event API version keeps the fields the printer reads.
struct Fields {
    involved_object: &'static str,
    message: &'static str,
    source: &'static str,
    first_timestamp: &'static str,
    last_timestamp: &'static str,
    count: &'static str,
    reporting_controller: &'static str,
}

const CORE_V1: Fields = Fields {
    involved_object: "involvedObject",
    message: "message",
    source: "source",
    first_timestamp: "firstTimestamp",
    last_timestamp: "lastTimestamp",
    count: "count",
    reporting_controller: "reportingComponent",
};

const EVENTS_V1: Fields = Fields {
    involved_object: "regarding",
    message: "note",
    source: "deprecatedSource",
    first_timestamp: "deprecatedFirstTimestamp",
    last_timestamp: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    reporting_controller: "reportingController",
};

pub(crate) fn core_cells(event: &Value, now: DateTime<Utc>) -> Vec<Value> {
    cells(event, &CORE_V1, now)
}

pub(crate) fn events_v1_cells(event: &Value, now: DateTime<Utc>) -> Vec<Value> {
    cells(event, &EVENTS_V1, now)
}

fn cells(event: &Value, f: &Fields, now: DateTime<Utc>) -> Vec<Value> {
    let first_timestamp = match time_at(event, &[f.first_timestamp]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(event, &["eventTime"]), now),
    };
    let mut last_timestamp = match time_at(event, &[f.last_timestamp]) {
        Some(t) => since(Some(t), now),
        None => first_timestamp.clone(),
    };
    let mut count = i64_at(event, &[f.count]);
    if let Some(series) = get(event, &["series"]) {
        last_timestamp = since(time_at(series, &["lastObservedTime"]), now);
        count = opt_i64(series, &["count"]).unwrap_or(0);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }

    let kind = str_at(event, &[f.involved_object, "kind"]).to_lowercase();
    let name = str_at(event, &[f.involved_object, "name"]);
    let target = if name.is_empty() { kind } else { format!("{kind}/{name}") };

    let source = format_source(
        first_non_empty(str_at(event, &[f.source, "component"]), str_at(event, &[f.reporting_controller])),
        first_non_empty(str_at(event, &[f.source, "host"]), str_at(event, &["reportingInstance"])),
    );

    vec![
        Value::from(last_timestamp),
        Value::from(str_at(event, &["type"])),
        Value::from(str_at(event, &["reason"])),
        Value::from(target),
        Value::from(str_at(event, &[f.involved_object, "fieldPath"])),
        Value::from(source),
        Value::from(str_at(event, &[f.message]).trim()),
        Value::from(first_timestamp),
        Value::from(count),
        name_cell(event),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

/// upstream `formatEventSourceComponentInstance`: `component, instance`, or just the component.
fn format_source(component: &str, instance: &str) -> String {
    if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    }
}
