//! What every component needs to know about a Service: its selector, whether it has a cluster
//! IP, which address families it uses, its traffic policies.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

/// An EndpointSlice address type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressType {
    IPv4,
    IPv6,
}

impl AddressType {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::IPv4 => "IPv4",
            AddressType::IPv6 => "IPv6",
        }
    }

    pub fn parse(value: &str) -> Option<AddressType> {
        match value {
            "IPv4" => Some(AddressType::IPv4),
            "IPv6" => Some(AddressType::IPv6),
            _ => None,
        }
    }

    pub fn of(ip: std::net::IpAddr) -> AddressType {
        if ip.is_ipv4() {
            AddressType::IPv4
        } else {
            AddressType::IPv6
        }
    }
}

/// The label selector the controllers act on, or `None` for a Service whose endpoints are
/// managed out of band.
///
/// An empty map counts as no selector: upstream's controllers receive Services as protobuf,
/// where an empty map and an absent one are the same thing.
pub fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// True when every `key=value` of the selector is among the labels.
pub fn selector_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(key, value)| labels.get(key) == Some(value))
}

pub fn is_external_name(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
}

/// True when the Service has a cluster IP (is neither headless nor without one yet).
pub fn has_cluster_ip(service: &Service) -> bool {
    let ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
    !ip.is_empty() && ip != "None"
}

pub fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn publishes_not_ready(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false)
}

pub fn is_terminating(service: &Service) -> bool {
    service.metadata.deletion_timestamp.is_some()
}

/// The address types the Service's endpoints use, as upstream's `getAddressTypesForService`:
/// `spec.ipFamilies`, else the family of the cluster IP, else (headless, not yet defaulted)
/// both.
pub fn address_types(service: &Service) -> Vec<AddressType> {
    let spec = service.spec.as_ref();
    let mut types: Vec<AddressType> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|family| AddressType::parse(family))
        .collect();
    types.sort();
    types.dedup();
    if !types.is_empty() {
        return types;
    }
    let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
    match cluster_ip.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![AddressType::of(ip)],
        Err(_) => vec![AddressType::IPv4, AddressType::IPv6],
    }
}

/// The address family Endpoints (v1) addresses use: the first of the Service's families.
pub fn primary_address_type(service: &Service) -> AddressType {
    let spec = service.spec.as_ref();
    let first = spec.and_then(|s| s.ip_families.as_ref()).and_then(|f| f.first()).and_then(|f| AddressType::parse(f));
    if let Some(first) = first {
        return first;
    }
    let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
    cluster_ip.parse::<std::net::IpAddr>().map(AddressType::of).unwrap_or(AddressType::IPv4)
}

fn spec_str(service: &Service, field: impl Fn(&k8s_openapi::api::core::v1::ServiceSpec) -> Option<&String>) -> &str {
    service.spec.as_ref().and_then(field).map(String::as_str).unwrap_or("")
}

/// `spec.type`, defaulted to `ClusterIP` as the API server does.
pub fn service_type(service: &Service) -> &str {
    match spec_str(service, |s| s.type_.as_ref()) {
        "" => "ClusterIP",
        other => other,
    }
}

/// `internalTrafficPolicy: Local`: cluster traffic goes only to endpoints on the same node.
pub fn internal_traffic_local(service: &Service) -> bool {
    spec_str(service, |s| s.internal_traffic_policy.as_ref()) == "Local"
}

/// `externalTrafficPolicy: Local` on a Service that takes external traffic (NodePort or
/// LoadBalancer): external traffic goes only to local endpoints and keeps its source address.
pub fn external_traffic_local(service: &Service) -> bool {
    matches!(service_type(service), "NodePort" | "LoadBalancer")
        && spec_str(service, |s| s.external_traffic_policy.as_ref()) == "Local"
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn traffic_policies_and_type_default() {
        let svc = |spec: serde_json::Value| -> Service { serde_json::from_value(json!({"spec": spec})).unwrap() };
        let cases = [
            (json!({}), "ClusterIP", false, false),
            (json!({"internalTrafficPolicy": "Local"}), "ClusterIP", true, false),
            (json!({"externalTrafficPolicy": "Local"}), "ClusterIP", false, false),
            (json!({"type": "NodePort", "externalTrafficPolicy": "Local"}), "NodePort", false, true),
            (json!({"type": "LoadBalancer", "externalTrafficPolicy": "Cluster"}), "LoadBalancer", false, false),
        ];
        for (spec, kind, internal, external) in cases {
            let s = svc(spec.clone());
            assert_eq!(
                (service_type(&s), internal_traffic_local(&s), external_traffic_local(&s)),
                (kind, internal, external),
                "{spec}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;

    fn service(spec: ServiceSpec) -> Service {
        Service { spec: Some(spec), ..Default::default() }
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> =
            [("app".to_string(), "web".to_string()), ("tier".into(), "fe".into())].into();
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("app", "web")], true),
            (&[("app", "web"), ("tier", "fe")], true),
            (&[("app", "db")], false),
            (&[("x", "y")], false),
        ];
        for (selector, expected) in cases {
            let selector: BTreeMap<String, String> =
                selector.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(selector_matches(&selector, &labels), *expected, "{selector:?}");
        }
        assert!(selector(&service(ServiceSpec { selector: Some(BTreeMap::new()), ..Default::default() })).is_none());
        assert!(selector(&service(ServiceSpec::default())).is_none());
    }

    #[test]
    fn address_types_follow_families_then_cluster_ip() {
        type Case<'a> = (Option<&'a [&'a str]>, Option<&'a str>, &'a [AddressType]);
        let cases: &[Case] = &[
            (Some(&["IPv4"]), Some("10.96.0.5"), &[AddressType::IPv4]),
            (Some(&["IPv6", "IPv4"]), None, &[AddressType::IPv4, AddressType::IPv6]),
            (None, Some("fd00::5"), &[AddressType::IPv6]),
            (None, Some("10.96.0.5"), &[AddressType::IPv4]),
            (None, Some("None"), &[AddressType::IPv4, AddressType::IPv6]),
        ];
        for (families, cluster_ip, expected) in cases {
            let svc = service(ServiceSpec {
                ip_families: families.map(|f| f.iter().map(|s| s.to_string()).collect()),
                cluster_ip: cluster_ip.map(String::from),
                ..Default::default()
            });
            assert_eq!(address_types(&svc), *expected, "{families:?} {cluster_ip:?}");
        }
    }
}
