//! Label selectors (`app=web,tier in (a,b),!canary`) and field selectors (`metadata.name=web`).

use serde_json::Value;

use crate::errors::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Splits on commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms.into_iter().map(str::trim).filter(|t| !t.is_empty()).collect()
}

fn bad_selector(selector: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("unable to parse requirement: {why} (selector {selector:?})"))
}

fn check_key(selector: &str, key: &str) -> ApiResult<String> {
    let key = key.trim();
    let valid =
        !key.is_empty() && key.len() <= 316 && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if valid {
        Ok(key.to_string())
    } else {
        Err(bad_selector(selector, &format!("invalid label key {key:?}")))
    }
}

impl LabelSelector {
    pub fn parse(selector: &str) -> ApiResult<LabelSelector> {
        let mut requirements = Vec::new();
        for term in split_terms(selector) {
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::DoesNotExist(check_key(selector, key)?)
            } else if let Some((key, values)) = split_set(term, " notin ") {
                Requirement::NotIn(check_key(selector, key)?, parse_set(selector, values)?)
            } else if let Some((key, values)) = split_set(term, " in ") {
                Requirement::In(check_key(selector, key)?, parse_set(selector, values)?)
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotEquals(check_key(selector, key)?, value.trim().to_string())
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(check_key(selector, key)?, value.trim().to_string())
            } else {
                Requirement::Exists(check_key(selector, term)?)
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches(&self, object: &Value) -> bool {
        // Every watcher checks every event (twice, for selector transitions): no lookups when
        // there is nothing to check.
        if self.requirements.is_empty() {
            return true;
        }
        let labels = object.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

fn split_set<'a>(term: &'a str, operator: &str) -> Option<(&'a str, &'a str)> {
    let (key, rest) = term.split_once(operator)?;
    Some((key, rest.trim()))
}

fn parse_set(selector: &str, values: &str) -> ApiResult<Vec<String>> {
    let inner = values
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| bad_selector(selector, "expected a parenthesised set of values"))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect())
}

/// A parsed field selector: equality and inequality on field paths.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses and checks the fields against those the kind supports.
    pub fn parse(selector: &str, kind: &str) -> ApiResult<FieldSelector> {
        let mut terms = Vec::new();
        for term in split_terms(selector) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{selector}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !supported_field(kind, field) {
                return Err(ApiError::bad_request(format!(
                    "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                )));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let found = field.split('.').try_fold(object, |at, segment| at.get(segment));
            let same = match found {
                Some(Value::String(actual)) => actual == value,
                Some(Value::Null) | None => value.is_empty(),
                Some(other) => serde_json::to_string(other).is_ok_and(|text| text == *value),
            };
            same == *equal
        })
    }
}

/// The field selectors upstream supports per kind (plus metadata.name/namespace everywhere).
fn supported_field(kind: &str, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    let extra: &[&str] = match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "regarding.kind",
            "regarding.name",
            "regarding.namespace",
            "regarding.uid",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "Node" => &["spec.unschedulable"],
        "ReplicaSet" | "ReplicationController" => &["status.replicas"],
        _ => &[],
    };
    extra.contains(&field)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn label_selectors() {
        let pod = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,tier=back", false),
            ("tier in (back, front)", true),
            ("tier notin (front)", false),
            ("canary notin (x)", true),
            ("app", true),
            ("!app", false),
            ("!canary,app", true),
        ];
        for (selector, expected) in cases {
            assert_eq!(LabelSelector::parse(selector).unwrap().matches(&pod), expected, "{selector}");
        }
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selectors() {
        let event = json!({"metadata": {"name": "e1", "namespace": "default"}, "involvedObject": {"kind": "Service", "name": "web"}});
        let s = FieldSelector::parse(
            "involvedObject.name=web,involvedObject.kind=Service,metadata.namespace=default",
            "Event",
        )
        .unwrap();
        assert!(s.matches(&event));
        assert!(!FieldSelector::parse("metadata.name!=e1", "Event").unwrap().matches(&event));
        assert!(FieldSelector::parse("spec.type=NodePort", "Service").is_err());
    }
}
