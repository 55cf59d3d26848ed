//! A container's environment, as the kubelet builds it: Kubernetes' service variables
//! (`WEB_SERVICE_HOST`, `WEB_SERVICE_PORT`, the docker-link `WEB_PORT_80_TCP…` family), then the
//! container's `env` (values with `$(VAR)` expansion, `fieldRef` from pod metadata and status).
//! Pure: the caller passes the Services and the pod.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

/// `my-svc` → `MY_SVC`.
fn env_name(service: &str) -> String {
    service.to_ascii_uppercase().replace('-', "_")
}

/// The variables one Service contributes.
fn service_variables(service: &Service) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(spec) = service.spec.as_ref() else { return out };
    let Some(ip) = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty() && *ip != "None") else { return out };
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else { return out };
    let name = env_name(service.metadata.name.as_deref().unwrap_or(""));
    out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
    out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
    for port in ports {
        if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((format!("{name}_SERVICE_PORT_{}", env_name(port_name)), port.port.to_string()));
        }
    }
    let protocol = |p: &k8s_openapi::api::core::v1::ServicePort| p.protocol.clone().unwrap_or_else(|| "TCP".into());
    out.push((format!("{name}_PORT"), format!("{}://{ip}:{}", protocol(first).to_ascii_lowercase(), first.port)));
    for port in ports {
        let proto = protocol(port);
        let prefix = format!("{name}_PORT_{}_{}", port.port, proto.to_ascii_uppercase());
        out.push((prefix.clone(), format!("{}://{ip}:{}", proto.to_ascii_lowercase(), port.port)));
        out.push((format!("{prefix}_PROTO"), proto.to_ascii_lowercase()));
        out.push((format!("{prefix}_PORT"), port.port.to_string()));
        out.push((format!("{prefix}_ADDR"), ip.to_string()));
    }
    out
}

/// The service variables a pod sees: its namespace's Services when `enableServiceLinks`, and
/// always the `kubernetes` Service of `default`.
pub fn service_environment(pod: &Pod, services: &[Arc<Service>]) -> Vec<(String, String)> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let mut chosen: Vec<&Service> = services
        .iter()
        .map(|s| &**s)
        .filter(|s| {
            let ns = s.metadata.namespace.as_deref().unwrap_or("");
            let name = s.metadata.name.as_deref().unwrap_or("");
            (links && ns == namespace) || (ns == "default" && name == "kubernetes")
        })
        .collect();
    chosen.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    chosen.dedup_by(|a, b| a.metadata.name == b.metadata.name);
    chosen.into_iter().flat_map(service_variables).collect()
}

/// The value of a `fieldRef` path for this pod.
pub(crate) fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let from_map = |map: Option<&std::collections::BTreeMap<String, String>>, key: &str| {
        map.and_then(|m| m.get(key).cloned()).or(Some(String::new()))
    };
    if let Some(key) = path.strip_prefix("metadata.labels['").and_then(|r| r.strip_suffix("']")) {
        return from_map(meta.labels.as_ref(), key);
    }
    if let Some(key) = path.strip_prefix("metadata.annotations['").and_then(|r| r.strip_suffix("']")) {
        return from_map(meta.annotations.as_ref(), key);
    }
    match path {
        // Whole maps (downward API volumes; the API refuses them in env).
        "metadata.labels" => Some(format_map(meta.labels.as_ref())),
        "metadata.annotations" => Some(format_map(meta.annotations.as_ref())),
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).or(Some("default".into())),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|i| i.ip.clone()).collect::<Vec<_>>().join(",")),
        _ => None,
    }
}

/// A map as the kubelet writes labels or annotations into a downward API file
/// (`fieldpath.FormatMap`): `key="value"` lines in key order, each value quoted as Go's `%q`,
/// no newline after the last.
fn format_map(map: Option<&std::collections::BTreeMap<String, String>>) -> String {
    let lines: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", frontdoor_validation::go_quote(value)))
        .collect();
    lines.join("\n")
}

/// Expands `$(VAR)` references from `known`; `$$(VAR)` escapes; unknown references stay as written.
pub fn expand(value: &str, known: &[(String, String)]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(inner) = tail.strip_prefix("$(") {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match known.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&tail[..close + 3]),
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str(tail);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The full environment of a container: service variables first, then its `env` in order.
/// `lookup` resolves `configMapKeyRef`/`secretKeyRef` (namespace-local; `None` when missing).
pub fn container_environment(
    pod: &Pod,
    container: &Container,
    services: &[Arc<Service>],
    lookup: &dyn Fn(&str, &str, &str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let mut env = service_environment(pod, services);
    for var in container.env.as_deref().unwrap_or_default() {
        let value = if let Some(source) = &var.value_from {
            if let Some(field) = &source.field_ref {
                field_value(pod, &field.field_path).unwrap_or_default()
            } else if let Some(key) = &source.config_map_key_ref {
                match lookup("configmap", &key.name, &key.key) {
                    Some(v) => v,
                    None if key.optional == Some(true) => continue,
                    None => return Err(format!("configmap \"{}\" not found or has no key \"{}\"", key.name, key.key)),
                }
            } else if let Some(key) = &source.secret_key_ref {
                match lookup("secret", &key.name, &key.key) {
                    Some(v) => v,
                    None if key.optional == Some(true) => continue,
                    None => return Err(format!("secret \"{}\" not found or has no key \"{}\"", key.name, key.key)),
                }
            } else {
                String::new()
            }
        } else {
            expand(var.value.as_deref().unwrap_or(""), &env)
        };
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn labels_and_annotations_as_the_kubelet_writes_them() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {
            "name": "p",
            "labels": {"zone": "us-est-coast", "cluster": "test-cluster1", "rack": "rack-22"},
            "annotations": {"build": "two", "note": "say \"hi\"\n\tC:\\x\u{1}é"}
        }}))
        .unwrap();
        assert_eq!(
            field_value(&pod, "metadata.labels").unwrap(),
            "cluster=\"test-cluster1\"\nrack=\"rack-22\"\nzone=\"us-est-coast\""
        );
        assert_eq!(
            field_value(&pod, "metadata.annotations").unwrap(),
            "build=\"two\"\nnote=\"say \\\"hi\\\"\\n\\tC:\\\\x\\x01é\""
        );
        let bare: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert_eq!(field_value(&bare, "metadata.labels").unwrap(), "");
        assert_eq!(field_value(&pod, "metadata.labels['rack']").unwrap(), "rack-22");
    }

    #[test]
    fn service_variables_like_the_kubelet() {
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": {"containers": []}}))
                .unwrap();
        let services: Vec<Arc<Service>> = vec![
            service(
                "shop",
                "my-api",
                "10.96.0.20",
                json!([{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
            ),
            service("shop", "headless", "None", json!([{"port": 80}])),
            service("other", "elsewhere", "10.96.0.30", json!([{"port": 80}])),
            service("default", "kubernetes", "10.96.0.1", json!([{"name": "https", "port": 443, "protocol": "TCP"}])),
        ];
        let env = service_environment(&pod, &services);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MY_API_SERVICE_HOST"), Some("10.96.0.20"));
        assert_eq!(get("MY_API_SERVICE_PORT"), Some("80"));
        assert_eq!(get("MY_API_SERVICE_PORT_DNS"), Some("53"));
        assert_eq!(get("MY_API_PORT"), Some("tcp://10.96.0.20:80"));
        assert_eq!(get("MY_API_PORT_53_UDP_PROTO"), Some("udp"));
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("HEADLESS_SERVICE_HOST"), None);
        assert_eq!(get("ELSEWHERE_SERVICE_HOST"), None);
    }

    #[test]
    fn env_values_field_refs_and_expansion() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "GREETING", "value": "hello $(POD) on $(MISSING) costs $$(POD)"},
            ]}]},
            "status": {"podIP": "10.244.0.5"},
        }))
        .unwrap();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let env = container_environment(&pod, container, &[], &|_, _, _| None).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("POD").as_deref(), Some("web-0"));
        assert_eq!(get("APP").as_deref(), Some("web"));
        assert_eq!(get("IP").as_deref(), Some("10.244.0.5"));
        assert_eq!(get("GREETING").as_deref(), Some("hello web-0 on $(MISSING) costs $(POD)"));
    }
}
