//! Endpoints (core/v1): upstream's `ValidateEndpointsCreate` / `ValidateEndpointsUpdate` (the same
//! rules both ways). A port without `protocol` counts as `TCP`, as the v1 defaulter sets it.

use serde_json::Value;

use crate::formats;
use crate::json as j;
use crate::{dedup, FieldError};

/// Validates an Endpoints object's `subsets`; `old` changes nothing (node names may change).
pub fn validate(endpoints: &Value, _old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, subset) in j::array(endpoints, "subsets").iter().enumerate() {
        let path = format!("subsets[{i}]");
        let addresses = j::array(subset, "addresses");
        let not_ready = j::array(subset, "notReadyAddresses");
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(path.as_str(), "must specify `addresses` or `notReadyAddresses`"));
        }
        for (k, address) in addresses.iter().enumerate() {
            errs.extend(validate_address(address, &format!("{path}.addresses[{k}]")));
        }
        for (k, address) in not_ready.iter().enumerate() {
            errs.extend(validate_address(address, &format!("{path}.notReadyAddresses[{k}]")));
        }
        let ports = j::array(subset, "ports");
        for (k, port) in ports.iter().enumerate() {
            errs.extend(validate_port(port, ports.len() > 1, &format!("{path}.ports[{k}]")));
        }
    }
    dedup(errs)
}

/// `validateEndpointAddress`.
fn validate_address(address: &Value, path: &str) -> Vec<FieldError> {
    let ip = j::str_or_empty(address, "ip");
    let ip_path = format!("{path}.ip");
    let mut errs = formats::valid_ip(&ip_path, ip);
    let hostname = j::str_or_empty(address, "hostname");
    if !hostname.is_empty() {
        errs.extend(formats::invalid_each(&format!("{path}.hostname"), hostname, formats::dns1123_label(hostname)));
    }
    if let Some(node) = j::opt_str(address, "nodeName") {
        errs.extend(formats::invalid_each(&format!("{path}.nodeName"), node, formats::dns1123_subdomain(node)));
    }
    errs.extend(formats::non_special_ip(&ip_path, ip));
    errs
}

/// `validateEndpointPort`.
fn validate_port(port: &Value, require_name: bool, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = j::str_or_empty(port, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        errs.extend(formats::invalid_each(&format!("{path}.name"), name, formats::dns1123_label(name)));
    }
    let number = j::int_or_zero(port, "port");
    for msg in formats::port_num(number) {
        errs.push(FieldError::invalid(format!("{path}.port"), number.to_string(), &msg));
    }
    let protocol = match j::str_or_empty(port, "protocol") {
        "" => "TCP",
        p => p,
    };
    errs.extend(formats::supported_protocol(path, protocol));
    errs.extend(formats::app_protocol(path, j::opt_str(port, "appProtocol")));
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    type Want = Vec<(&'static str, &'static str)>;

    fn eps(subsets: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"}, "subsets": subsets})
    }

    #[test]
    fn rules() {
        let cases: Vec<(&str, Value, Want)> = vec![
            ("empty", eps(json!(null)), vec![]),
            (
                "valid",
                eps(json!([{"addresses": [{"ip": "10.244.0.5", "hostname": "web-0", "nodeName": "node-1"}], "notReadyAddresses": [{"ip": "fd00::5"}],
                             "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 53, "protocol": "UDP", "appProtocol": "dns"}]}])),
                vec![],
            ),
            ("no addresses", eps(json!([{"ports": [{"port": 80}]}])), vec![("subsets[0]", "Required value: must specify `addresses` or `notReadyAddresses`")]),
            (
                "bad IP",
                eps(json!([{"addresses": [{"ip": "10.0.0"}]}])),
                vec![
                    ("subsets[0].addresses[0].ip", "Invalid value: \"10.0.0\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
                    ("subsets[0].addresses[0].ip", "Invalid value: \"10.0.0\": must be a valid IP address"),
                ],
            ),
            (
                "loopback IP",
                eps(json!([{"notReadyAddresses": [{"ip": "127.0.0.1"}]}])),
                vec![("subsets[0].notReadyAddresses[0].ip", "Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)")],
            ),
            (
                "link-local IP",
                eps(json!([{"addresses": [{"ip": "169.254.169.254"}]}])),
                vec![("subsets[0].addresses[0].ip", "Invalid value: \"169.254.169.254\": may not be in the link-local range (169.254.0.0/16, fe80::/10)")],
            ),
            (
                "bad hostname",
                eps(json!([{"addresses": [{"ip": "10.0.0.1", "hostname": "web.0"}]}])),
                vec![("subsets[0].addresses[0].hostname", "Invalid value: \"web.0\": must not contain dots")],
            ),
            (
                "port name required with two ports",
                eps(json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "a", "port": 80}, {"port": 81}]}])),
                vec![("subsets[0].ports[1].name", "Required value")],
            ),
            (
                "bad port",
                eps(json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 0, "protocol": "ICMP"}]}])),
                vec![
                    ("subsets[0].ports[0].port", "Invalid value: 0: must be between 1 and 65535, inclusive"),
                    ("subsets[0].ports[0].protocol", "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
                ],
            ),
        ];
        for (name, object, want) in cases {
            let got: Vec<(String, String)> =
                validate(&object, None).into_iter().map(|e| (e.field, e.message)).collect();
            let want: Vec<(String, String)> = want.iter().map(|(f, m)| (f.to_string(), m.to_string())).collect();
            assert_eq!(got, want, "case {name}");
        }
    }

    #[test]
    fn wrong_types_do_not_panic() {
        for input in [
            json!(null),
            json!({"subsets": "x"}),
            json!({"subsets": [1, {"addresses": "x", "ports": [null, {"port": "x"}]}]}),
        ] {
            let _ = validate(&input, Some(&input));
        }
    }
}
