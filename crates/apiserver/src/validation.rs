//! Generic validation of object metadata: names, labels, annotations, as upstream words it.
//! Pure functions over JSON; kind-specific rules live in `kinds`.

use serde_json::Value;

use crate::errors::Cause;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

/// Which rule an object's name must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Label,
    Dns1123Subdomain,
    Dns1035Label,
    /// Only "not `.`/`..`, no `/` or `%`" (events, leases use subdomain too, but events are lax).
    PathSegment,
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// Problems with `name` under `rule`, as upstream's messages (empty when valid).
pub fn name_problems(name: &str, rule: NameRule) -> Vec<String> {
    let mut problems = Vec::new();
    match rule {
        NameRule::Dns1123Label | NameRule::Dns1035Label => {
            if name.len() > 63 {
                problems.push("must be no more than 63 characters".to_string());
            }
            let (ok, msg) = match rule {
                NameRule::Dns1123Label => (is_dns1123_label(&name[..name.len().min(63)]), DNS1123_LABEL_MSG),
                _ => (is_dns1035_label(&name[..name.len().min(63)]), DNS1035_LABEL_MSG),
            };
            if !ok {
                problems.push(msg.to_string());
            }
        }
        NameRule::Dns1123Subdomain => {
            if name.len() > 253 {
                problems.push("must be no more than 253 characters".to_string());
            }
            if !is_dns1123_subdomain(&name[..name.len().min(253)]) {
                problems.push(DNS1123_SUBDOMAIN_MSG.to_string());
            }
        }
        NameRule::PathSegment => {
            if name == "." || name == ".." {
                problems.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    problems.push(format!("may not contain '{bad}'"));
                }
            }
        }
    }
    problems
}

/// Validates `metadata.name` (or `generateName`), labels and annotations.
pub fn validate_metadata(object: &Value, rule: NameRule, namespaced: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let metadata = object.get("metadata").cloned().unwrap_or(Value::Null);
    match metadata.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => {
            for problem in name_problems(name, rule) {
                causes.push(Cause::invalid("metadata.name", &Value::from(name), &problem));
            }
        }
        _ => causes.push(Cause::required("metadata.name", "name or generateName is required")),
    }
    if namespaced {
        if metadata.get("namespace").and_then(Value::as_str).unwrap_or("").is_empty() {
            causes.push(Cause::required("metadata.namespace", ""));
        }
    } else if metadata.get("namespace").and_then(Value::as_str).is_some_and(|ns| !ns.is_empty()) {
        causes.push(Cause::forbidden("metadata.namespace", "not allowed on this type"));
    }
    if let Some(labels) = metadata.get("labels") {
        causes.extend(validate_labels(labels, "metadata.labels"));
    }
    if let Some(annotations) = metadata.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (key, value) in annotations {
            causes.extend(
                qualified_name_problems(key)
                    .into_iter()
                    .map(|p| Cause::invalid("metadata.annotations", &Value::from(key.as_str()), &p)),
            );
            total += key.len() + value.as_str().map_or(0, str::len);
        }
        if total > TOTAL_ANNOTATION_SIZE {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: format!("Too long: must have at most {TOTAL_ANNOTATION_SIZE} bytes"),
            });
        }
    }
    causes
}

/// Validates a label map (keys are qualified names, values label values).
pub fn validate_labels(labels: &Value, field: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(labels) = labels.as_object() else { return causes };
    for (key, value) in labels {
        causes.extend(
            qualified_name_problems(key).into_iter().map(|p| Cause::invalid(field, &Value::from(key.as_str()), &p)),
        );
        let value_str = value.as_str().unwrap_or_default();
        for problem in label_value_problems(value_str) {
            causes.push(Cause::invalid(field.to_string(), &Value::from(value_str), &problem));
        }
    }
    causes
}

fn label_value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        problems.push(LABEL_VALUE_MSG.to_string());
    }
    problems
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Problems of a label or annotation key (`[prefix/]name`).
pub fn qualified_name_problems(key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            problems.push("prefix part must be non-empty".to_string());
        } else if !is_dns1123_subdomain(prefix) {
            problems.push(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
        }
    }
    if name.is_empty() {
        problems.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            problems.push("name part must be no more than 63 characters".to_string());
        }
        if !is_qualified_name_part(name) {
            problems.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names() {
        assert!(name_problems("web-1", NameRule::Dns1035Label).is_empty());
        assert_eq!(name_problems("1web", NameRule::Dns1035Label), [DNS1035_LABEL_MSG]);
        assert!(name_problems("a.b-c", NameRule::Dns1123Subdomain).is_empty());
        assert_eq!(name_problems("Web", NameRule::Dns1123Subdomain), [DNS1123_SUBDOMAIN_MSG]);
        assert_eq!(name_problems(&"a".repeat(64), NameRule::Dns1123Label), ["must be no more than 63 characters"]);
    }

    #[test]
    fn metadata() {
        let ok = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app.kubernetes.io/name": "web", "x": ""}}});
        assert!(validate_metadata(&ok, NameRule::Dns1123Subdomain, true).is_empty());
        let bad = json!({"metadata": {"name": "Web", "namespace": "default", "labels": {"a b": "c", "ok": "-x"}}});
        let causes = validate_metadata(&bad, NameRule::Dns1123Subdomain, true);
        assert_eq!(causes.len(), 3, "{causes:?}");
        assert_eq!(causes[0].field, "metadata.name");
        assert!(causes[0].message.starts_with("Invalid value: \"Web\": a lowercase RFC 1123 subdomain"));
        let missing = json!({"metadata": {}});
        assert_eq!(
            validate_metadata(&missing, NameRule::Dns1123Subdomain, false)[0].message,
            "Required value: name or generateName is required"
        );
    }
}
