//! `meta.k8s.io/v1` Table responses built from the printers' columns and cells.

use serde_json::{json, Value};

use frontdoor_resources::ResourceType;

use crate::body::IncludeObject;

pub const CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// A Table of `objects`; `with_columns` is false for watch events after the first.
pub fn table(
    resource: &ResourceType,
    objects: &[&Value],
    include: IncludeObject,
    resource_version: &str,
    with_columns: bool,
) -> Value {
    let now = chrono::Utc::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({"cells": frontdoor_printers::cells(resource.group, resource.kind, object, now)});
            let conditions = frontdoor_printers::row_conditions(resource.group, resource.kind, object);
            if !conditions.is_empty() {
                row["conditions"] = Value::Array(conditions);
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Object => row["object"] = (*object).clone(),
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                    })
                }
            }
            row
        })
        .collect();
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "rows": rows,
    });
    if with_columns {
        let columns: Vec<Value> =
            frontdoor_printers::columns(resource.group, resource.kind).iter().map(|c| c.to_json()).collect();
        table["columnDefinitions"] = Value::Array(columns);
    } else {
        table["columnDefinitions"] = Value::Null;
    }
    table
}
