//! Small kinds whose rows are a count or a single field: Namespace, ConfigMap, Secret,
//! ServiceAccount and coordination.k8s.io Lease.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::descriptions::{self as d, string_column, AGE_COLUMN, NAME_COLUMN};
use crate::util::{age_cell, array_at, name_cell, object_at, object_len, opt_str, str_at};
use crate::ColumnDefinition;

pub(crate) const NAMESPACE_COLUMNS: &[ColumnDefinition] =
    &[NAME_COLUMN, string_column("Status", "The status of the namespace"), AGE_COLUMN];

// Upstream declares the count columns as type string although the cells are integers.
pub(crate) const CONFIG_MAP_COLUMNS: &[ColumnDefinition] =
    &[NAME_COLUMN, string_column("Data", d::CONFIG_MAP_DATA), AGE_COLUMN];

pub(crate) const SECRET_COLUMNS: &[ColumnDefinition] =
    &[NAME_COLUMN, string_column("Type", d::SECRET_TYPE), string_column("Data", d::SECRET_DATA), AGE_COLUMN];

pub(crate) const SERVICE_ACCOUNT_COLUMNS: &[ColumnDefinition] =
    &[NAME_COLUMN, string_column("Secrets", d::SERVICE_ACCOUNT_SECRETS), AGE_COLUMN];

pub(crate) const LEASE_COLUMNS: &[ColumnDefinition] =
    &[NAME_COLUMN, string_column("Holder", d::LEASE_SPEC_HOLDER_IDENTITY), AGE_COLUMN];

pub(crate) fn namespace_cells(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name_cell(ns), Value::from(str_at(ns, &["status", "phase"])), age_cell(ns, now)]
}

pub(crate) fn config_map_cells(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let count = object_len(cm, &["data"]) + object_len(cm, &["binaryData"]);
    vec![name_cell(cm), Value::from(count), age_cell(cm, now)]
}

pub(crate) fn secret_cells(secret: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // The v1 → internal conversion folds the write-only stringData into data.
    let keys: BTreeSet<&String> = ["data", "stringData"]
        .into_iter()
        .filter_map(|field| object_at(secret, &[field]))
        .flat_map(|map| map.keys())
        .collect();
    // An unset type is defaulted to Opaque on create.
    let secret_type = opt_str(secret, &["type"]).unwrap_or("Opaque");
    vec![name_cell(secret), Value::from(secret_type), Value::from(keys.len()), age_cell(secret, now)]
}

pub(crate) fn service_account_cells(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name_cell(sa), Value::from(array_at(sa, &["secrets"]).len()), age_cell(sa, now)]
}

pub(crate) fn lease_cells(lease: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![name_cell(lease), Value::from(str_at(lease, &["spec", "holderIdentity"])), age_cell(lease, now)]
}
