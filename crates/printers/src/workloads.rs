//! Pod controllers: apps/v1 Deployment, ReplicaSet, StatefulSet and core/v1
//! ReplicationController.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::descriptions::{
    self as d, integer_column, string_column, wide_string_column, AGE_COLUMN, CONTAINERS_COLUMN, IMAGES_COLUMN,
    NAME_COLUMN,
};
use crate::labels::{format_label_selector, format_labels, selector_string};
use crate::util::{age_cell, array_at, container_cells, get, i64_at, name_cell, replicas_or_default};
use crate::ColumnDefinition;

pub(crate) const DEPLOYMENT_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    string_column("Ready", "Number of the pod with ready state"),
    string_column("Up-to-date", d::DEPLOYMENT_STATUS_UPDATED_REPLICAS),
    string_column("Available", d::DEPLOYMENT_STATUS_AVAILABLE_REPLICAS),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    wide_string_column("Selector", d::DEPLOYMENT_SPEC_SELECTOR),
];

pub(crate) const REPLICA_SET_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    integer_column("Desired", d::REPLICA_SET_SPEC_REPLICAS),
    integer_column("Current", d::REPLICA_SET_STATUS_REPLICAS),
    integer_column("Ready", d::REPLICA_SET_STATUS_READY_REPLICAS),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    wide_string_column("Selector", d::REPLICA_SET_SPEC_SELECTOR),
];

pub(crate) const REPLICATION_CONTROLLER_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    integer_column("Desired", d::RC_SPEC_REPLICAS),
    integer_column("Current", d::RC_STATUS_REPLICAS),
    integer_column("Ready", d::RC_STATUS_READY_REPLICAS),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    wide_string_column("Selector", d::RC_SPEC_SELECTOR),
];

pub(crate) const STATEFUL_SET_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    string_column("Ready", "Number of the pod with ready state"),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
];

pub(crate) const CONTROLLER_REVISION_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    string_column("Controller", "Controller of the object"),
    // Upstream declares the column a string and fills it with the integer.
    string_column("Revision", d::CONTROLLER_REVISION_REVISION),
    AGE_COLUMN,
];

/// NAME, CONTROLLER (`<kind>.<group>/<name>` of the controller reference, or `<none>`),
/// REVISION, AGE.
pub(crate) fn controller_revision_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let controller = array_at(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map_or_else(
            || "<none>".to_string(),
            |r| {
                let text = |key: &str| r.get(key).and_then(Value::as_str).unwrap_or_default();
                let group = text("apiVersion").rsplit_once('/').map_or("", |(group, _)| group);
                let kind =
                    if group.is_empty() { text("kind").to_string() } else { format!("{}.{group}", text("kind")) };
                match kind.is_empty() {
                    true => text("name").to_string(),
                    false => format!("{}/{}", kind.to_lowercase(), text("name")),
                }
            },
        );
    vec![name_cell(obj), Value::from(controller), Value::from(i64_at(obj, &["revision"])), age_cell(obj, now)]
}

/// Names and images of `spec.template.spec.containers`.
fn template_containers(obj: &Value) -> (Value, Value) {
    let (names, images) = container_cells(array_at(obj, &["spec", "template", "spec", "containers"]));
    (Value::from(names), Value::from(images))
}

pub(crate) fn deployment_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ready = i64_at(obj, &["status", "readyReplicas"]);
    let (names, images) = template_containers(obj);
    // Upstream prints the selector's String() directly: empty, not <none>, when there is none.
    let selector = selector_string(get(obj, &["spec", "selector"])).unwrap_or_else(|_| "<invalid>".to_string());
    vec![
        name_cell(obj),
        Value::from(format!("{ready}/{}", replicas_or_default(obj))),
        Value::from(i64_at(obj, &["status", "updatedReplicas"])),
        Value::from(i64_at(obj, &["status", "availableReplicas"])),
        age_cell(obj, now),
        names,
        images,
        Value::from(selector),
    ]
}

pub(crate) fn replica_set_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    vec![
        name_cell(obj),
        Value::from(replicas_or_default(obj)),
        Value::from(i64_at(obj, &["status", "replicas"])),
        Value::from(i64_at(obj, &["status", "readyReplicas"])),
        age_cell(obj, now),
        names,
        images,
        Value::from(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

pub(crate) fn replication_controller_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    vec![
        name_cell(obj),
        Value::from(replicas_or_default(obj)),
        Value::from(i64_at(obj, &["status", "replicas"])),
        Value::from(i64_at(obj, &["status", "readyReplicas"])),
        age_cell(obj, now),
        names,
        images,
        Value::from(format_labels(get(obj, &["spec", "selector"]))),
    ]
}

pub(crate) fn stateful_set_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ready = i64_at(obj, &["status", "readyReplicas"]);
    let (names, images) = template_containers(obj);
    vec![
        name_cell(obj),
        Value::from(format!("{ready}/{}", replicas_or_default(obj))),
        age_cell(obj, now),
        names,
        images,
    ]
}
