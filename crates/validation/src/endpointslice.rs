//! EndpointSlices (discovery.k8s.io/v1): upstream's `ValidateEndpointSliceCreate` /
//! `ValidateEndpointSliceUpdate`. A port without `name` counts as `""` and without `protocol` as
//! `TCP`, as the v1 defaulter sets them.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::formats::{self, FIELD_IMMUTABLE};
use crate::gofmt::quote;
use crate::json as j;
use crate::{dedup, FieldError};

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
const MAX_TOPOLOGY_LABELS: usize = 16;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;
const MAX_ENDPOINTS: usize = 1000;
const MAX_ZONE_HINTS: usize = 8;

/// Validates an EndpointSlice; with `old`, also that `addressType` did not change.
pub fn validate(slice: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let address_type = j::str_or_empty(slice, "addressType");
    if address_type.is_empty() {
        errs.push(FieldError::required("addressType", ""));
    } else if !ADDRESS_TYPES.contains(&address_type) {
        errs.push(FieldError::not_supported("addressType", quote(address_type), ADDRESS_TYPES));
    }
    errs.extend(validate_endpoints(j::array(slice, "endpoints"), address_type));
    errs.extend(validate_ports(j::array(slice, "ports")));
    if let Some(old) = old {
        if j::str_or_empty(old, "addressType") != address_type {
            errs.push(FieldError::invalid("addressType", quote(address_type), FIELD_IMMUTABLE));
        }
    }
    dedup(errs)
}

fn validate_endpoints(endpoints: &[Value], address_type: &str) -> Vec<FieldError> {
    if endpoints.len() > MAX_ENDPOINTS {
        return vec![FieldError::too_many("endpoints", endpoints.len(), MAX_ENDPOINTS)];
    }
    let mut errs = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        let addresses_path = format!("{path}.addresses");
        let addresses = j::array(endpoint, "addresses");
        if addresses.is_empty() {
            errs.push(FieldError::required(addresses_path.as_str(), "must contain at least 1 address"));
        } else if addresses.len() > MAX_ADDRESSES {
            errs.push(FieldError::too_many(addresses_path.as_str(), addresses.len(), MAX_ADDRESSES));
        }
        for (k, address) in addresses.iter().enumerate() {
            let address = address.as_str().unwrap_or("");
            let address_path = format!("{addresses_path}[{k}]");
            match address_type {
                "IPv4" | "IPv6" => {
                    errs.extend(formats::valid_ip_of_family(&address_path, address, address_type == "IPv6"));
                    errs.extend(formats::non_special_ip(&address_path, address));
                }
                "FQDN" => errs.extend(formats::fully_qualified_domain_name(&address_path, address)),
                _ => {}
            }
        }
        if let Some(node) = j::opt_str(endpoint, "nodeName") {
            errs.extend(formats::invalid_each(&format!("{path}.nodeName"), node, formats::dns1123_subdomain(node)));
        }
        let topology_path = format!("{path}.deprecatedTopology");
        let topology = j::string_map(endpoint, "deprecatedTopology");
        if topology.len() > MAX_TOPOLOGY_LABELS {
            errs.push(FieldError::too_many(topology_path.as_str(), topology.len(), MAX_TOPOLOGY_LABELS));
        }
        errs.extend(formats::labels(&topology, &topology_path));
        if let Some(hostname) = j::opt_str(endpoint, "hostname") {
            errs.extend(formats::invalid_each(&format!("{path}.hostname"), hostname, formats::dns1123_label(hostname)));
        }
        if let Some(hints) = endpoint.get("hints").filter(|h| h.is_object()) {
            errs.extend(validate_hints(hints, &format!("{path}.hints")));
        }
    }
    errs
}

fn validate_hints(hints: &Value, path: &str) -> Vec<FieldError> {
    let zones_path = format!("{path}.forZones");
    let zones = j::array(hints, "forZones");
    if zones.len() > MAX_ZONE_HINTS {
        return vec![FieldError::too_many(zones_path, zones.len(), MAX_ZONE_HINTS)];
    }
    let mut errs = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (i, zone) in zones.iter().enumerate() {
        let name = j::str_or_empty(zone, "name");
        let name_path = format!("{zones_path}[{i}].name");
        if !seen.insert(name) {
            errs.push(FieldError::duplicate(name_path.as_str(), quote(name)));
        }
        errs.extend(formats::invalid_each(&name_path, name, formats::label_value(name)));
    }
    errs
}

fn validate_ports(ports: &[Value]) -> Vec<FieldError> {
    if ports.len() > MAX_PORTS {
        return vec![FieldError::too_many("ports", ports.len(), MAX_PORTS)];
    }
    let mut errs = Vec::new();
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("ports[{i}]");
        let name = j::str_or_empty(port, "name");
        if !name.is_empty() {
            errs.extend(formats::invalid_each(&format!("{path}.name"), name, formats::dns1123_label(name)));
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), quote(name)));
        }
        let protocol = j::opt_str(port, "protocol").unwrap_or("TCP");
        errs.extend(formats::supported_protocol(&path, protocol));
        errs.extend(formats::app_protocol(&path, j::opt_str(port, "appProtocol")));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    type Want = Vec<(&'static str, &'static str)>;

    fn slice(address_type: &str, endpoints: Value, ports: Value) -> Value {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-abc", "namespace": "default"},
               "addressType": address_type, "endpoints": endpoints, "ports": ports})
    }

    fn errors(object: &Value, old: Option<&Value>) -> Vec<(String, String)> {
        validate(object, old).into_iter().map(|e| (e.field, e.message)).collect()
    }

    #[test]
    fn rules() {
        let many: Vec<Value> =
            (0..1001).map(|i| json!({"addresses": [format!("10.0.{}.{}", i / 250, i % 250 + 1)]})).collect();
        let cases: Vec<(&str, Value, Want)> = vec![
            (
                "valid IPv4",
                slice("IPv4", json!([{"addresses": ["10.244.0.5"], "conditions": {"ready": true}, "hostname": "web-0", "nodeName": "node-1",
                                       "zone": "a", "hints": {"forZones": [{"name": "a"}]}}]),
                      json!([{"name": "http", "port": 8080}, {"name": "dns", "port": 53, "protocol": "UDP", "appProtocol": "dns"}])),
                vec![],
            ),
            ("valid FQDN", slice("FQDN", json!([{"addresses": ["db.example.com."]}]), json!([{"port": 5432}])), vec![]),
            ("valid empty", slice("IPv6", json!([]), json!([])), vec![]),
            ("missing addressType", slice("", json!([]), json!([])), vec![("addressType", "Required value")]),
            ("unsupported addressType", slice("IP", json!([]), json!([])), vec![("addressType", "Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\"")]),
            ("no addresses", slice("IPv4", json!([{"addresses": []}]), json!([])), vec![("endpoints[0].addresses", "Required value: must contain at least 1 address")]),
            (
                "IPv6 address in an IPv4 slice",
                slice("IPv4", json!([{"addresses": ["fd00::1"]}]), json!([])),
                vec![("endpoints[0].addresses[0]", "Invalid value: \"fd00::1\": must be a valid IPv4 address")],
            ),
            (
                "unspecified IPv6 address",
                slice("IPv6", json!([{"addresses": ["::"]}]), json!([])),
                vec![("endpoints[0].addresses[0]", "Invalid value: \"::\": may not be unspecified (::)")],
            ),
            (
                "bad FQDN",
                slice("FQDN", json!([{"addresses": ["localhost"]}]), json!([])),
                vec![("endpoints[0].addresses[0]", "Invalid value: \"localhost\": should be a domain with at least two segments separated by dots")],
            ),
            (
                "bad hostname",
                slice("IPv4", json!([{"addresses": ["10.0.0.1"], "hostname": "Web"}]), json!([])),
                vec![(
                    "endpoints[0].hostname",
                    "Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )],
            ),
            (
                "duplicate zone hint",
                slice("IPv4", json!([{"addresses": ["10.0.0.1"], "hints": {"forZones": [{"name": "a"}, {"name": "a"}]}}]), json!([])),
                vec![("endpoints[0].hints.forZones[1].name", "Duplicate value: \"a\"")],
            ),
            (
                "too many endpoints",
                slice("IPv4", Value::Array(many), json!([])),
                vec![("endpoints", "Too many: 1001: must have at most 1000 items")],
            ),
            (
                "duplicate port names",
                slice("IPv4", json!([]), json!([{"port": 80}, {"port": 81}])),
                vec![("ports[1].name", "Duplicate value: \"\"")],
            ),
            (
                "bad port fields",
                slice("IPv4", json!([]), json!([{"name": "HTTP", "port": 80, "protocol": "ICMP", "appProtocol": "a/b/c"}])),
                vec![
                    (
                        "ports[0].name",
                        "Invalid value: \"HTTP\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                    ),
                    ("ports[0].protocol", "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
                    (
                        "ports[0].appProtocol",
                        "Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                    ),
                ],
            ),
        ];
        for (name, object, want) in cases {
            let want: Vec<(String, String)> = want.iter().map(|(f, m)| (f.to_string(), m.to_string())).collect();
            assert_eq!(errors(&object, None), want, "case {name}");
        }
    }

    #[test]
    fn address_type_is_immutable() {
        let old = slice("IPv4", json!([]), json!([]));
        let new = slice("IPv6", json!([]), json!([]));
        assert_eq!(
            errors(&new, Some(&old)),
            [("addressType".to_string(), "Invalid value: \"IPv6\": field is immutable".to_string())]
        );
        assert!(errors(&old, Some(&old)).is_empty());
    }

    #[test]
    fn wrong_types_do_not_panic() {
        for input in [
            json!(null),
            json!({"addressType": 4, "endpoints": {}, "ports": "x"}),
            json!({"addressType": "IPv4", "endpoints": [1, {"addresses": [null, 3]}], "ports": [null]}),
        ] {
            let _ = validate(&input, Some(&input));
        }
    }
}
