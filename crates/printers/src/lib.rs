//! Server-side Table printing: the columns and cells kube-apiserver returns for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, i.e. what `kubectl get` shows.
//!
//! This crate owns, for every kind frontdoor serves, the column definitions and the row cells that
//! upstream's `pkg/printers/internalversion/printers.go` produces with `GenerateOptions{Wide:
//! true}` (the API server always generates the wide cells; kubectl hides the priority-1 columns
//! unless `-o wide`). It also owns `duration.HumanDuration` and the label / label-selector
//! formatting those cells use.
//!
//! It is pure: objects come in as `serde_json::Value` in their versioned JSON form, "now" is a
//! parameter, and nothing here does I/O, keeps state, or panics on odd objects — a missing or
//! mistyped field yields upstream's placeholder (`<none>`, `<unknown>`, `<unset>`, …). Where
//! upstream relies on a field having been defaulted (a Service's `type`, a Deployment's
//! `replicas`, …) the upstream default is assumed when the field is absent.
//!
//! Assembling the `Table` object itself (`kind`, `metadata`, `rows[].object`) is the API server's
//! job; this crate supplies its `columnDefinitions`, each row's `cells` and `conditions`.
#![forbid(unsafe_code)]

mod config;
mod descriptions;
mod duration;
mod events;
mod labels;
mod networking;
mod node;
mod pod;
mod service;
mod util;
mod workloads;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use duration::human_duration;
pub use labels::{format_label_selector, format_labels};

/// One column of a Table, as `meta.k8s.io/v1 TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDefinition {
    pub name: &'static str,
    /// OpenAPI type of the cells: `"string"`, `"integer"`, `"boolean"`, `"date"`, …
    pub type_: &'static str,
    /// `"name"` for the column holding the object's name, otherwise empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 for the default columns, 1 for those kubectl shows only with `-o wide`.
    pub priority: i32,
}

impl ColumnDefinition {
    /// The definition as `TableColumnDefinition` JSON (every field is always present upstream).
    #[must_use]
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// Computes one row's cells at a given "now".
type CellsFn = fn(&Value, DateTime<Utc>) -> Vec<Value>;

/// Finds the column definitions and cell function for a group (`""` for the core group) and
/// kind; unknown kinds get the default Name/Age printer.
fn printer(group: &str, kind: &str) -> (&'static [ColumnDefinition], CellsFn) {
    match (group, kind) {
        ("", "Namespace") => (config::NAMESPACE_COLUMNS, config::namespace_cells),
        ("", "Node") => (node::COLUMNS, node::cells),
        ("", "Pod") => (pod::COLUMNS, pod::cells),
        ("", "ReplicationController") => {
            (workloads::REPLICATION_CONTROLLER_COLUMNS, workloads::replication_controller_cells)
        }
        ("", "Service") => (service::SERVICE_COLUMNS, service::service_cells),
        ("", "Endpoints") => (service::ENDPOINTS_COLUMNS, service::endpoints_cells),
        ("", "Event") => (events::COLUMNS, events::core_cells),
        ("", "ConfigMap") => (config::CONFIG_MAP_COLUMNS, config::config_map_cells),
        ("", "Secret") => (config::SECRET_COLUMNS, config::secret_cells),
        ("", "ServiceAccount") => (config::SERVICE_ACCOUNT_COLUMNS, config::service_account_cells),
        ("apps", "Deployment") => (workloads::DEPLOYMENT_COLUMNS, workloads::deployment_cells),
        ("apps", "ReplicaSet") => (workloads::REPLICA_SET_COLUMNS, workloads::replica_set_cells),
        ("apps", "StatefulSet") => (workloads::STATEFUL_SET_COLUMNS, workloads::stateful_set_cells),
        ("apps", "ControllerRevision") => {
            (workloads::CONTROLLER_REVISION_COLUMNS, workloads::controller_revision_cells)
        }
        ("discovery.k8s.io", "EndpointSlice") => (service::ENDPOINT_SLICE_COLUMNS, service::endpoint_slice_cells),
        ("networking.k8s.io", "Ingress") => (networking::INGRESS_COLUMNS, networking::ingress_cells),
        ("networking.k8s.io", "IngressClass") => (networking::INGRESS_CLASS_COLUMNS, networking::ingress_class_cells),
        ("events.k8s.io", "Event") => (events::COLUMNS, events::events_v1_cells),
        ("coordination.k8s.io", "Lease") => (config::LEASE_COLUMNS, config::lease_cells),
        _ => (DEFAULT_COLUMNS, default_cells),
    }
}

/// The column definitions of a kind's Table (`group` is `""` for the core group).
#[must_use]
pub fn columns(group: &str, kind: &str) -> &'static [ColumnDefinition] {
    printer(group, kind).0
}

/// The cells of one row (JSON strings/integers as upstream), computed at `now`. There is always
/// exactly one cell per entry of [`columns`] for the same group and kind.
#[must_use]
pub fn cells(group: &str, kind: &str, object: &Value, now: DateTime<Utc>) -> Vec<Value> {
    (printer(group, kind).1)(object, now)
}

/// Row conditions: `[{"type":"Completed","status":"True","reason":"Succeeded"|"Failed",
/// "message":…}]` for pods in a terminal phase, as upstream marks them; empty otherwise.
#[must_use]
pub fn row_conditions(group: &str, kind: &str, object: &Value) -> Vec<Value> {
    match (group, kind) {
        ("", "Pod") => pod::row_conditions(object),
        _ => Vec::new(),
    }
}

/// Columns for kinds without a dedicated printer (the brief's Name/Age; note that upstream's
/// generic `DefaultTableConvertor` has historically used a `Created At` date column instead).
const DEFAULT_COLUMNS: &[ColumnDefinition] = &[descriptions::NAME_COLUMN, descriptions::AGE_COLUMN];

fn default_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![util::name_cell(obj), util::age_cell(obj, now)]
}

#[cfg(test)]
mod tests;
