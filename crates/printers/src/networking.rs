//! networking.k8s.io/v1 Ingress and IngressClass.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::descriptions::{string_column, AGE_COLUMN, NAME_COLUMN};
use crate::service::load_balancer_addresses;
use crate::util::{age_cell, array_at, get, name_cell, opt_str, str_at};
use crate::ColumnDefinition;

pub(crate) const INGRESS_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    string_column("Class", "The name of the IngressClass resource that should be used for additional configuration"),
    string_column("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
    string_column("Address", "Address is a list containing ingress points for the load-balancer"),
    string_column("Ports", "Ports of TLS configurations that open"),
    AGE_COLUMN,
];

pub(crate) const INGRESS_CLASS_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    string_column("Controller", "Controller that is responsible for handling this class"),
    string_column("Parameters", "A reference to a resource with additional parameters"),
    AGE_COLUMN,
];

/// How many hosts the Hosts cell lists before ` + N more...`.
const MAX_HOSTS: usize = 3;

pub(crate) fn ingress_cells(ing: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let class = opt_str(ing, &["spec", "ingressClassName"]).unwrap_or("<none>");
    // Wide output: the addresses are never clipped.
    let address = load_balancer_addresses(array_at(ing, &["status", "loadBalancer", "ingress"])).join(",");
    let ports = if array_at(ing, &["spec", "tls"]).is_empty() { "80" } else { "80, 443" };
    vec![
        name_cell(ing),
        Value::from(class),
        Value::from(format_hosts(array_at(ing, &["spec", "rules"]))),
        Value::from(address),
        Value::from(ports),
        age_cell(ing, now),
    ]
}

/// upstream `formatHosts`: the first three non-empty hosts; once three are listed, any further
/// rule makes it ` + N more...` with N = rules − 3 (counting host-less rules too); `*` when no
/// rule names a host.
fn format_hosts(rules: &[Value]) -> String {
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX_HOSTS {
            more = true;
            break;
        }
        let host = str_at(rule, &["host"]);
        if !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - MAX_HOSTS)
    } else {
        joined
    }
}

pub(crate) fn ingress_class_cells(class: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let parameters = match get(class, &["spec", "parameters"]) {
        Some(p) => {
            let mut s = str_at(p, &["kind"]).to_string();
            if let Some(group) = opt_str(p, &["apiGroup"]) {
                s = format!("{s}.{group}");
            }
            format!("{s}/{}", str_at(p, &["name"]))
        }
        None => "<none>".to_string(),
    };
    vec![
        name_cell(class),
        Value::from(str_at(class, &["spec", "controller"])),
        Value::from(parameters),
        age_cell(class, now),
    ]
}
