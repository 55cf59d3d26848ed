//! Ingresses and IngressClasses (networking.k8s.io/v1): upstream's `ValidateIngressCreate` /
//! `ValidateIngressUpdate` (spec only; status has its own subresource) and `ValidateIngressClass` /
//! `ValidateIngressClassUpdate`. An IngressClass `parameters` without `scope` counts as `Cluster`,
//! as the v1 defaulter sets it.

use serde_json::Value;

use crate::formats::{self, FIELD_IMMUTABLE};
use crate::gofmt::quote;
use crate::json as j;
use crate::{dedup, FieldError};

const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];
const PARAMETER_SCOPES: &[&str] = &["Cluster", "Namespace"];
const MAX_CONTROLLER_LEN: usize = 250;

/// Options upstream relaxes on update for objects stored before a rule tightened.
#[derive(Default, Clone, Copy)]
struct Options {
    allow_invalid_secret_name: bool,
    allow_invalid_wildcard_host_rule: bool,
    allow_relaxed_service_name: bool,
}

/// Validates an Ingress on create (`old` = `None`) or update.
pub fn validate(ingress: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let opts = match old {
        None => Options::default(),
        Some(old) => Options {
            allow_invalid_secret_name: allow_invalid_secret_name(old),
            allow_invalid_wildcard_host_rule: allow_invalid_wildcard_host_rule(old),
            allow_relaxed_service_name: allow_relaxed_service_name(old),
        },
    };
    let spec = ingress.get("spec").unwrap_or(&Value::Null);
    let mut errs = validate_spec(spec, opts);
    if old.is_none() {
        let annotations = ingress.get("metadata").map(|m| j::string_map(m, "annotations")).unwrap_or_default();
        let annotation = annotations.iter().find(|(k, _)| k == INGRESS_CLASS_ANNOTATION).map(|(_, v)| v.as_str());
        if let (Some(annotation), Some(class)) = (annotation, j::opt_str(spec, "ingressClassName")) {
            if annotation != class {
                errs.push(FieldError::invalid(
                    format!("annotations.{INGRESS_CLASS_ANNOTATION}"),
                    quote(annotation),
                    "must match `ingressClassName` when both are specified",
                ));
            }
        }
    }
    dedup(errs)
}

fn validate_spec(spec: &Value, opts: Options) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = j::array(spec, "rules");
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default_backend.is_none() {
        let value = if spec.get("rules").is_some_and(Value::is_array) {
            "[]networking.IngressRule{}"
        } else {
            "[]networking.IngressRule(nil)"
        };
        errs.push(FieldError::invalid("spec", value, "either `defaultBackend` or `rules` must be specified"));
    }
    if let Some(backend) = default_backend {
        errs.extend(validate_backend(backend, "spec.defaultBackend", opts));
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        let host = j::str_or_empty(rule, "host");
        let mut wildcard = false;
        if !host.is_empty() {
            if formats::parse_ip(host).is_some() {
                errs.push(FieldError::invalid(
                    format!("{path}.host"),
                    quote(host),
                    "must be a DNS name, not an IP address",
                ));
            }
            if host.contains('*') {
                errs.extend(formats::invalid_each(
                    &format!("{path}.host"),
                    host,
                    formats::wildcard_dns1123_subdomain(host),
                ));
                wildcard = true;
            } else {
                errs.extend(formats::invalid_each(&format!("{path}.host"), host, formats::dns1123_subdomain(host)));
            }
        }
        if !wildcard || !opts.allow_invalid_wildcard_host_rule {
            errs.extend(validate_rule_value(rule, &path, opts));
        }
    }
    for (i, tls) in j::array(spec, "tls").iter().enumerate() {
        let path = format!("spec.tls[{i}]");
        for (k, host) in j::array(tls, "hosts").iter().enumerate() {
            let host = host.as_str().unwrap_or("");
            let msgs = if host.contains('*') {
                formats::wildcard_dns1123_subdomain(host)
            } else {
                formats::dns1123_subdomain(host)
            };
            errs.extend(formats::invalid_each(&format!("{path}.hosts[{k}]"), host, msgs));
        }
        if !opts.allow_invalid_secret_name {
            let secret = j::str_or_empty(tls, "secretName");
            errs.extend(formats::invalid_each(&format!("{path}.secretName"), secret, secret_name_problems(secret)));
        }
    }
    if let Some(class) = j::opt_str(spec, "ingressClassName") {
        errs.extend(formats::invalid_each("spec.ingressClassName", class, formats::dns1123_subdomain(class)));
    }
    errs
}

fn secret_name_problems(name: &str) -> Vec<String> {
    if name.is_empty() {
        Vec::new()
    } else {
        formats::dns1123_subdomain(name)
    }
}

/// `validateIngressRuleValue` + `validateHTTPIngressRuleValue` + `validateHTTPIngressPath`.
fn validate_rule_value(rule: &Value, path: &str, opts: Options) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(http) = rule.get("http").filter(|h| !h.is_null()) else {
        return errs;
    };
    let paths_path = format!("{path}.http.paths");
    let paths = j::array(http, "paths");
    if paths.is_empty() {
        errs.push(FieldError::required(paths_path.as_str(), ""));
    }
    for (i, entry) in paths.iter().enumerate() {
        let entry_path = format!("{paths_path}[{i}]");
        let Some(path_type) = j::opt_str(entry, "pathType") else {
            errs.push(FieldError::required(format!("{entry_path}.pathType"), "pathType must be specified"));
            continue;
        };
        let value = j::str_or_empty(entry, "path");
        let field = format!("{entry_path}.path");
        match path_type {
            "Exact" | "Prefix" => {
                if !value.starts_with('/') {
                    errs.push(FieldError::invalid(field.as_str(), quote(value), "must be an absolute path"));
                }
                if !value.is_empty() {
                    for seq in INVALID_PATH_SEQUENCES {
                        if value.contains(seq) {
                            errs.push(FieldError::invalid(
                                field.as_str(),
                                quote(value),
                                &format!("must not contain '{seq}'"),
                            ));
                        }
                    }
                    for suffix in INVALID_PATH_SUFFIXES {
                        if value.ends_with(suffix) {
                            errs.push(FieldError::invalid(
                                field.as_str(),
                                quote(value),
                                &format!("cannot end with '{suffix}'"),
                            ));
                        }
                    }
                }
            }
            "ImplementationSpecific" => {
                if !value.is_empty() && !value.starts_with('/') {
                    errs.push(FieldError::invalid(field.as_str(), quote(value), "must be an absolute path"));
                }
            }
            other => errs.push(FieldError::not_supported(format!("{entry_path}.pathType"), quote(other), PATH_TYPES)),
        }
        errs.extend(validate_backend(
            entry.get("backend").unwrap_or(&Value::Null),
            &format!("{entry_path}.backend"),
            opts,
        ));
    }
    errs
}

/// `validateIngressBackend`.
fn validate_backend(backend: &Value, path: &str, opts: Options) -> Vec<FieldError> {
    let resource = backend.get("resource").filter(|r| !r.is_null());
    let service = backend.get("service").filter(|s| !s.is_null());
    let mut errs = Vec::new();
    match (resource, service) {
        (Some(_), Some(_)) => {
            errs.push(FieldError::invalid(path, quote(""), "cannot set both resource and service backends"))
        }
        (Some(resource), None) => {
            errs.extend(validate_typed_local_object_reference(resource, &format!("{path}.resource")))
        }
        (None, Some(service)) => {
            let name = j::str_or_empty(service, "name");
            let name_path = format!("{path}.service.name");
            if name.is_empty() {
                errs.push(FieldError::required(name_path.as_str(), ""));
            } else {
                let msgs = if opts.allow_relaxed_service_name {
                    formats::dns1123_label(name)
                } else {
                    formats::dns1035_label(name)
                };
                errs.extend(formats::invalid_each(&name_path, name, msgs));
            }
            let port = service.get("port").unwrap_or(&Value::Null);
            let port_name = j::str_or_empty(port, "name");
            let port_number = j::int_or_zero(port, "number");
            match (!port_name.is_empty(), port_number != 0) {
                (true, true) => {
                    errs.push(FieldError::invalid(path, quote(""), "cannot set both port name & port number"))
                }
                (true, false) => errs.extend(formats::invalid_each(
                    &format!("{path}.service.port.name"),
                    port_name,
                    formats::port_name(port_name),
                )),
                (false, true) => {
                    for msg in formats::port_num(port_number) {
                        errs.push(FieldError::invalid(
                            format!("{path}.service.port.number"),
                            port_number.to_string(),
                            &msg,
                        ));
                    }
                }
                (false, false) => errs.push(FieldError::required(path, "port name or number is required")),
            }
        }
        (None, None) => errs.push(FieldError::invalid(path, quote(""), "resource or service backend is required")),
    }
    errs
}

/// `validateIngressTypedLocalObjectReference`.
fn validate_typed_local_object_reference(reference: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(group) = j::opt_str(reference, "apiGroup") {
        errs.extend(formats::invalid_each(&format!("{path}.apiGroup"), group, formats::dns1123_subdomain(group)));
    }
    for key in ["kind", "name"] {
        let value = j::str_or_empty(reference, key);
        if value.is_empty() {
            errs.push(FieldError::required(format!("{path}.{key}"), ""));
        } else {
            errs.extend(formats::invalid_each(&format!("{path}.{key}"), value, formats::path_segment_name(value)));
        }
    }
    errs
}

fn allow_invalid_secret_name(old: &Value) -> bool {
    let spec = old.get("spec").unwrap_or(&Value::Null);
    j::array(spec, "tls").iter().any(|tls| !secret_name_problems(j::str_or_empty(tls, "secretName")).is_empty())
}

fn allow_invalid_wildcard_host_rule(old: &Value) -> bool {
    let spec = old.get("spec").unwrap_or(&Value::Null);
    j::array(spec, "rules").iter().any(|rule| {
        j::str_or_empty(rule, "host").contains('*') && !validate_rule_value(rule, "", Options::default()).is_empty()
    })
}

/// Service names that are DNS labels but not DNS-1035 labels stay allowed once stored.
fn allow_relaxed_service_name(old: &Value) -> bool {
    let spec = old.get("spec").unwrap_or(&Value::Null);
    let relaxed = |backend: &Value| {
        let name = backend.pointer("/service/name").and_then(Value::as_str).unwrap_or("");
        backend.get("service").is_some_and(|s| !s.is_null())
            && formats::dns1123_label(name).is_empty()
            && !formats::dns1035_label(name).is_empty()
    };
    spec.get("defaultBackend").is_some_and(relaxed)
        || j::array(spec, "rules").iter().any(|rule| {
            rule.get("http")
                .is_some_and(|http| j::array(http, "paths").iter().any(|p| p.get("backend").is_some_and(relaxed)))
        })
}

/// Validates an IngressClass on create (`old` = `None`) or update (`spec.controller` is
/// immutable).
pub fn validate_class(class: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = class.get("spec").unwrap_or(&Value::Null);
    let controller = j::str_or_empty(spec, "controller");
    let mut errs = Vec::new();
    if let Some(old) = old {
        let before = old.get("spec").map_or("", |s| j::str_or_empty(s, "controller"));
        if before != controller {
            errs.push(FieldError::invalid("spec.controller", quote(controller), FIELD_IMMUTABLE));
        }
    }
    if controller.is_empty() {
        errs.push(FieldError::required("spec.controller", ""));
    } else {
        if controller.len() > MAX_CONTROLLER_LEN {
            errs.push(FieldError::too_long("spec.controller", MAX_CONTROLLER_LEN));
        }
        errs.extend(formats::domain_prefixed_path("spec.controller", controller));
    }
    if let Some(params) = spec.get("parameters").filter(|p| !p.is_null()) {
        errs.extend(validate_parameters(params));
    }
    dedup(errs)
}

/// `validateIngressClassParametersReference`.
fn validate_parameters(params: &Value) -> Vec<FieldError> {
    let path = "spec.parameters";
    let mut errs = validate_typed_local_object_reference(params, path);
    let scope = j::opt_str(params, "scope").unwrap_or("Cluster");
    let namespace = j::opt_str(params, "namespace");
    if !PARAMETER_SCOPES.contains(&scope) {
        errs.push(FieldError::not_supported(format!("{path}.scope"), quote(scope), PARAMETER_SCOPES));
        return errs;
    }
    if scope == "Namespace" {
        match namespace {
            None => {
                errs.push(FieldError::required(format!("{path}.namespace"), "`parameters.scope` is set to 'Namespace'"))
            }
            Some(ns) => {
                errs.extend(formats::invalid_each(&format!("{path}.namespace"), ns, formats::dns1123_label(ns)))
            }
        }
    }
    if scope == "Cluster" && namespace.is_some() {
        errs.push(FieldError::forbidden(format!("{path}.namespace"), "`parameters.scope` is set to 'Cluster'"));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    type Want = Vec<(&'static str, String)>;

    const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const WILDCARD_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    fn ing(spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn rule(host: &str, path: Value) -> Value {
        json!({"host": host, "http": {"paths": [path]}})
    }

    fn svc_path(path: &str, path_type: &str, name: &str, port: Value) -> Value {
        json!({"path": path, "pathType": path_type, "backend": {"service": {"name": name, "port": port}}})
    }

    fn errors(object: &Value, old: Option<&Value>) -> Vec<(String, String)> {
        validate(object, old).into_iter().map(|e| (e.field, e.message)).collect()
    }

    fn owned(want: &[(&str, String)]) -> Vec<(String, String)> {
        want.iter().map(|(f, m)| (f.to_string(), m.clone())).collect()
    }

    #[test]
    fn ingress_rules() {
        let ok_path = svc_path("/", "Prefix", "web", json!({"number": 80}));
        let cases: Vec<(&str, Value, Want)> = vec![
            ("valid", ing(json!({"ingressClassName": "nginx", "rules": [rule("app.example.com", ok_path.clone())], "tls": [{"hosts": ["app.example.com", "*.example.com"], "secretName": "tls-web"}]})), vec![]),
            ("valid default backend only", ing(json!({"defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}}})), vec![]),
            ("valid resource backend", ing(json!({"defaultBackend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static"}}})), vec![]),
            ("valid wildcard host", ing(json!({"rules": [rule("*.example.com", ok_path.clone())]})), vec![]),
            ("valid ImplementationSpecific without path", ing(json!({"rules": [rule("", json!({"pathType": "ImplementationSpecific", "backend": {"service": {"name": "web", "port": {"number": 80}}}}))]})), vec![]),
            ("no rules nor default backend", ing(json!({})), vec![("spec", "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified".into())]),
            ("empty rules", ing(json!({"rules": []})), vec![("spec", "Invalid value: []networking.IngressRule{}: either `defaultBackend` or `rules` must be specified".into())]),
            ("IP host", ing(json!({"rules": [rule("10.0.0.1", ok_path.clone())]})), vec![("spec.rules[0].host", "Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address".into())]),
            ("bad host", ing(json!({"rules": [rule("App.example.com", ok_path.clone())]})), vec![("spec.rules[0].host", format!("Invalid value: \"App.example.com\": {SUBDOMAIN_MSG}"))]),
            ("bad wildcard host", ing(json!({"rules": [rule("*.*.example.com", ok_path.clone())]})), vec![("spec.rules[0].host", format!("Invalid value: \"*.*.example.com\": {WILDCARD_MSG}"))]),
            ("no paths", ing(json!({"rules": [{"host": "a.example.com", "http": {"paths": []}}]})), vec![("spec.rules[0].http.paths", "Required value".into())]),
            (
                "no pathType",
                ing(json!({"rules": [rule("", json!({"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}}))]})),
                vec![("spec.rules[0].http.paths[0].pathType", "Required value: pathType must be specified".into())],
            ),
            (
                "unsupported pathType",
                ing(json!({"rules": [rule("", svc_path("/", "Regex", "web", json!({"number": 80})))]})),
                vec![("spec.rules[0].http.paths[0].pathType", "Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"".into())],
            ),
            (
                "relative path",
                ing(json!({"rules": [rule("", svc_path("api", "Prefix", "web", json!({"number": 80})))]})),
                vec![("spec.rules[0].http.paths[0].path", "Invalid value: \"api\": must be an absolute path".into())],
            ),
            (
                "path with // and trailing /.",
                ing(json!({"rules": [rule("", svc_path("/a//b/.", "Exact", "web", json!({"number": 80})))]})),
                vec![
                    ("spec.rules[0].http.paths[0].path", "Invalid value: \"/a//b/.\": must not contain '//'".into()),
                    ("spec.rules[0].http.paths[0].path", "Invalid value: \"/a//b/.\": cannot end with '/.'".into()),
                ],
            ),
            (
                "relative ImplementationSpecific path",
                ing(json!({"rules": [rule("", svc_path("api", "ImplementationSpecific", "web", json!({"number": 80})))]})),
                vec![("spec.rules[0].http.paths[0].path", "Invalid value: \"api\": must be an absolute path".into())],
            ),
            (
                "service name not DNS-1035",
                ing(json!({"rules": [rule("", svc_path("/", "Prefix", "1web", json!({"number": 80})))]})),
                vec![("spec.rules[0].http.paths[0].backend.service.name", format!("Invalid value: \"1web\": {DNS1035_MSG}"))],
            ),
            (
                "service name missing",
                ing(json!({"defaultBackend": {"service": {"port": {"number": 80}}}})),
                vec![("spec.defaultBackend.service.name", "Required value".into())],
            ),
            (
                "port name and number",
                ing(json!({"defaultBackend": {"service": {"name": "web", "port": {"name": "http", "number": 80}}}})),
                vec![("spec.defaultBackend", "Invalid value: \"\": cannot set both port name & port number".into())],
            ),
            (
                "no port",
                ing(json!({"defaultBackend": {"service": {"name": "web", "port": {}}}})),
                vec![("spec.defaultBackend", "Required value: port name or number is required".into())],
            ),
            (
                "bad port number",
                ing(json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 70000}}}})),
                vec![("spec.defaultBackend.service.port.number", "Invalid value: 70000: must be between 1 and 65535, inclusive".into())],
            ),
            (
                "bad port name",
                ing(json!({"defaultBackend": {"service": {"name": "web", "port": {"name": "HTTP"}}}})),
                vec![
                    ("spec.defaultBackend.service.port.name", "Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into()),
                    ("spec.defaultBackend.service.port.name", "Invalid value: \"HTTP\": must contain at least one letter (a-z)".into()),
                ],
            ),
            (
                "both backends",
                ing(json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}, "resource": {"kind": "Bucket", "name": "b"}}})),
                vec![("spec.defaultBackend", "Invalid value: \"\": cannot set both resource and service backends".into())],
            ),
            ("no backend", ing(json!({"defaultBackend": {}})), vec![("spec.defaultBackend", "Invalid value: \"\": resource or service backend is required".into())]),
            (
                "bad resource backend",
                ing(json!({"defaultBackend": {"resource": {"kind": "a/b", "name": ".."}}})),
                vec![
                    ("spec.defaultBackend.resource.kind", "Invalid value: \"a/b\": may not contain '/'".into()),
                    ("spec.defaultBackend.resource.name", "Invalid value: \"..\": may not be '..'".into()),
                ],
            ),
            (
                "resource backend without kind",
                ing(json!({"defaultBackend": {"resource": {"name": "b"}}})),
                vec![("spec.defaultBackend.resource.kind", "Required value".into())],
            ),
            (
                "bad TLS",
                ing(json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}, "tls": [{"hosts": ["Bad.example.com"], "secretName": "Bad_Secret"}]})),
                vec![
                    ("spec.tls[0].hosts[0]", format!("Invalid value: \"Bad.example.com\": {SUBDOMAIN_MSG}")),
                    ("spec.tls[0].secretName", format!("Invalid value: \"Bad_Secret\": {SUBDOMAIN_MSG}")),
                ],
            ),
            (
                "bad ingressClassName",
                ing(json!({"ingressClassName": "Nginx", "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}})),
                vec![("spec.ingressClassName", format!("Invalid value: \"Nginx\": {SUBDOMAIN_MSG}"))],
            ),
        ];
        for (name, object, want) in cases {
            assert_eq!(errors(&object, None), owned(&want), "case {name}");
        }
    }

    #[test]
    fn ingress_class_annotation_must_match_on_create() {
        let mut object = ing(
            json!({"ingressClassName": "nginx", "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
        );
        object["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "traefik"});
        assert_eq!(
            errors(&object, None),
            owned(&[(
                "annotations.kubernetes.io/ingress.class",
                "Invalid value: \"traefik\": must match `ingressClassName` when both are specified".into()
            )])
        );
        assert!(errors(&object, Some(&object)).is_empty(), "only checked on create");
    }

    #[test]
    fn update_keeps_tolerating_stored_oddities() {
        let tls_bad = ing(
            json!({"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}, "tls": [{"secretName": "Bad_Secret"}]}),
        );
        assert_eq!(errors(&tls_bad, None).len(), 1);
        assert!(errors(&tls_bad, Some(&tls_bad)).is_empty());

        let relaxed = ing(json!({"defaultBackend": {"service": {"name": "1web", "port": {"number": 80}}}}));
        assert_eq!(errors(&relaxed, None).len(), 1);
        assert!(errors(&relaxed, Some(&relaxed)).is_empty());

        let wildcard = ing(json!({"rules": [{"host": "*.example.com", "http": {"paths": []}}]}));
        assert_eq!(errors(&wildcard, None), owned(&[("spec.rules[0].http.paths", "Required value".into())]));
        assert!(errors(&wildcard, Some(&wildcard)).is_empty());
    }

    fn class(spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"}, "spec": spec})
    }

    #[test]
    fn ingress_class_rules() {
        let long = format!("example.com/{}", "a".repeat(240));
        let cases: Vec<(&str, Value, Want)> = vec![
            ("valid", class(json!({"controller": "k8s.io/ingress-nginx"})), vec![]),
            (
                "valid namespaced parameters",
                class(
                    json!({"controller": "example.com/ingress", "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p", "scope": "Namespace", "namespace": "ingress"}}),
                ),
                vec![],
            ),
            (
                "valid cluster parameters without scope",
                class(json!({"controller": "example.com/ingress", "parameters": {"kind": "P", "name": "p"}})),
                vec![],
            ),
            ("controller required", class(json!({})), vec![("spec.controller", "Required value".into())]),
            (
                "controller not domain-prefixed",
                class(json!({"controller": "nginx"})),
                vec![(
                    "spec.controller",
                    "Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")".into(),
                )],
            ),
            (
                "controller too long",
                class(json!({"controller": long})),
                vec![("spec.controller", "Too long: must have at most 250 bytes".into())],
            ),
            (
                "parameters without kind and name",
                class(json!({"controller": "example.com/ingress", "parameters": {"scope": "Cluster"}})),
                vec![
                    ("spec.parameters.kind", "Required value".into()),
                    ("spec.parameters.name", "Required value".into()),
                ],
            ),
            (
                "unsupported scope",
                class(
                    json!({"controller": "example.com/ingress", "parameters": {"kind": "P", "name": "p", "scope": "Global"}}),
                ),
                vec![(
                    "spec.parameters.scope",
                    "Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespace\"".into(),
                )],
            ),
            (
                "namespace scope without namespace",
                class(
                    json!({"controller": "example.com/ingress", "parameters": {"kind": "P", "name": "p", "scope": "Namespace"}}),
                ),
                vec![("spec.parameters.namespace", "Required value: `parameters.scope` is set to 'Namespace'".into())],
            ),
            (
                "cluster scope with namespace",
                class(
                    json!({"controller": "example.com/ingress", "parameters": {"kind": "P", "name": "p", "scope": "Cluster", "namespace": "x"}}),
                ),
                vec![("spec.parameters.namespace", "Forbidden: `parameters.scope` is set to 'Cluster'".into())],
            ),
            (
                "bad apiGroup",
                class(
                    json!({"controller": "example.com/ingress", "parameters": {"apiGroup": "Example.com", "kind": "P", "name": "p"}}),
                ),
                vec![("spec.parameters.apiGroup", format!("Invalid value: \"Example.com\": {SUBDOMAIN_MSG}"))],
            ),
        ];
        for (name, object, want) in cases {
            let got: Vec<(String, String)> =
                validate_class(&object, None).into_iter().map(|e| (e.field, e.message)).collect();
            assert_eq!(got, owned(&want), "case {name}");
        }
        let old = class(json!({"controller": "example.com/a"}));
        let new = class(json!({"controller": "example.com/b"}));
        let got: Vec<(String, String)> =
            validate_class(&new, Some(&old)).into_iter().map(|e| (e.field, e.message)).collect();
        assert_eq!(got, owned(&[("spec.controller", "Invalid value: \"example.com/b\": field is immutable".into())]));
    }

    #[test]
    fn wrong_types_do_not_panic() {
        for input in [
            json!(null),
            json!({"spec": "x"}),
            json!({"spec": {"rules": [1, {"host": 5, "http": {"paths": [null, {"backend": 3}]}}], "tls": "x", "defaultBackend": 4, "ingressClassName": 1}}),
            json!({"spec": {"controller": 1, "parameters": "p"}}),
        ] {
            let _ = validate(&input, Some(&input));
            let _ = validate(&input, None);
            let _ = validate_class(&input, Some(&input));
        }
    }
}
