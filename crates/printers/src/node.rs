//! The Node printer: readiness status, roles, version and (wide) addresses and system info.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::descriptions::{self as d, string_column, wide_string_column, AGE_COLUMN, NAME_COLUMN};
use crate::util::{age_cell, array_at, bool_at, name_cell, object_at, str_at};
use crate::ColumnDefinition;

pub(crate) const COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    string_column("Status", "The status of the node"),
    string_column("Roles", "The roles of the node"),
    AGE_COLUMN,
    string_column("Version", d::NODE_INFO_KUBELET_VERSION),
    wide_string_column("Internal-IP", d::NODE_STATUS_ADDRESSES),
    wide_string_column("External-IP", d::NODE_STATUS_ADDRESSES),
    wide_string_column("OS-Image", d::NODE_INFO_OS_IMAGE),
    wide_string_column("Kernel-Version", d::NODE_INFO_KERNEL_VERSION),
    wide_string_column("Container-Runtime", d::NODE_INFO_CONTAINER_RUNTIME_VERSION),
];

/// Label prefix whose suffix names a role (`node-role.kubernetes.io/control-plane`).
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// Legacy label whose value names a role.
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

pub(crate) fn cells(node: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let roles = roles(node).join(",");
    let info = |field: &str| {
        let v = str_at(node, &["status", "nodeInfo", field]);
        Value::from(if v.is_empty() { "<unknown>" } else { v })
    };
    vec![
        name_cell(node),
        Value::from(status(node)),
        Value::from(if roles.is_empty() { "<none>".to_string() } else { roles }),
        age_cell(node, now),
        Value::from(str_at(node, &["status", "nodeInfo", "kubeletVersion"])),
        Value::from(address(node, "InternalIP")),
        Value::from(address(node, "ExternalIP")),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// `Ready` / `NotReady` from the (last) Ready condition, `Unknown` without one, plus
/// `SchedulingDisabled` for cordoned nodes.
fn status(node: &Value) -> String {
    let ready = array_at(node, &["status", "conditions"]).iter().rev().find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

/// upstream `findNodeRoles`: sorted, de-duplicated.
fn roles(node: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    for (key, value) in object_at(node, &["metadata", "labels"]).into_iter().flatten() {
        let value = value.as_str().unwrap_or("");
        if let Some(role) = key.strip_prefix(NODE_ROLE_PREFIX) {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if key == NODE_ROLE_LABEL && !value.is_empty() {
            roles.insert(value.to_string());
        }
    }
    roles.into_iter().collect()
}

/// The first address of the given type, `<none>` if there is none.
fn address(node: &Value, kind: &str) -> String {
    array_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map_or_else(|| "<none>".to_string(), |a| str_at(a, &["address"]).to_string())
}
