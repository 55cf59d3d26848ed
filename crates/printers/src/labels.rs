//! Label and label-selector rendering: `labels.FormatLabels`, `metav1.FormatLabelSelector` and
//! the `String()` of the selector `metav1.LabelSelectorAsSelector` builds.

use serde_json::{Map, Value};

/// upstream `labels.FormatLabels`: `k=v` pairs sorted by key and joined by `,`; `<none>` when
/// there are none. `labels` is the JSON object of a label map (anything else counts as empty).
#[must_use]
pub fn format_labels(labels: Option<&Value>) -> String {
    let rendered = labels.and_then(Value::as_object).map(label_set_string).unwrap_or_default();
    if rendered.is_empty() {
        "<none>".to_string()
    } else {
        rendered
    }
}

/// upstream `metav1.FormatLabelSelector`: the selector's string form (`app=web,tier in (a,b)`),
/// `<none>` when it selects nothing or everything, `<error>` when it is invalid.
#[must_use]
pub fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(InvalidSelector) => "<error>".to_string(),
    }
}

/// A label selector `metav1.LabelSelectorAsSelector` would reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidSelector;

/// `LabelSelectorAsSelector(sel).String()`: requirements sorted by key and joined by `,`; empty for
/// a missing (selects nothing) or empty (selects everything) selector.
pub(crate) fn selector_string(selector: Option<&Value>) -> Result<String, InvalidSelector> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Ok(String::new());
    };
    let selector = selector.as_object().ok_or(InvalidSelector)?;
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(match_labels) = selector.get("matchLabels").filter(|v| !v.is_null()) {
        for (key, value) in match_labels.as_object().ok_or(InvalidSelector)? {
            let value = value.as_str().ok_or(InvalidSelector)?;
            validate_key(key)?;
            validate_value(value)?;
            requirements.push((key.clone(), format!("{key}={value}")));
        }
    }
    if let Some(expressions) = selector.get("matchExpressions").filter(|v| !v.is_null()) {
        for expression in expressions.as_array().ok_or(InvalidSelector)? {
            let (key, rendered) = expression_string(expression)?;
            requirements.push((key, rendered));
        }
    }
    // labels.internalSelector.Add sorts the requirements by key.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// One `matchExpressions` entry as `labels.Requirement.String()`, with its key.
fn expression_string(expression: &Value) -> Result<(String, String), InvalidSelector> {
    let key = expression.get("key").and_then(Value::as_str).ok_or(InvalidSelector)?;
    validate_key(key)?;
    let operator = expression.get("operator").and_then(Value::as_str).unwrap_or("");
    let mut values: Vec<&str> = match expression.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().map(|v| v.as_str().ok_or(InvalidSelector)).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(InvalidSelector),
    };
    let rendered = match operator {
        "In" | "NotIn" => {
            if values.is_empty() {
                return Err(InvalidSelector);
            }
            for v in &values {
                validate_value(v)?;
            }
            values.sort_unstable();
            let word = if operator == "In" { "in" } else { "notin" };
            format!("{key} {word} ({})", values.join(","))
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                return Err(InvalidSelector);
            }
            if operator == "Exists" {
                key.to_string()
            } else {
                format!("!{key}")
            }
        }
        _ => return Err(InvalidSelector),
    };
    Ok((key.to_string(), rendered))
}

/// `labels.Set.String()`: sorted `k=v` pairs joined by `,` (non-string values are skipped).
fn label_set_string(labels: &Map<String, Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = labels.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v))).collect();
    pairs.sort_unstable();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a qualified name.
fn validate_key(key: &str) -> Result<(), InvalidSelector> {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if !is_dns_subdomain(prefix) {
                return Err(InvalidSelector);
            }
            name
        }
        None => key,
    };
    if is_qualified_name_part(name) {
        Ok(())
    } else {
        Err(InvalidSelector)
    }
}

/// A label value: empty, or a qualified name part.
fn validate_value(value: &str) -> Result<(), InvalidSelector> {
    if value.is_empty() || is_qualified_name_part(value) {
        Ok(())
    } else {
        Err(InvalidSelector)
    }
}

/// At most 63 characters of `[A-Za-z0-9_.-]`, starting and ending alphanumeric.
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated lowercase alphanumeric labels
/// (inner `-` allowed).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && is_lower_alnum(b[0])
                && is_lower_alnum(b[b.len() - 1])
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        })
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn format_labels_sorts_and_defaults() {
        let cases = [
            (json!({"tier": "x", "app": "web"}), "app=web,tier=x"),
            (json!({}), "<none>"),
            (json!(null), "<none>"),
            (json!({"a": ""}), "a="),
        ];
        for (labels, want) in cases {
            assert_eq!(format_labels(Some(&labels)), want, "{labels}");
        }
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn label_selectors() {
        let cases = [
            (json!({"matchLabels": {"tier": "x", "app": "web"}}), "app=web,tier=x"),
            (json!({}), "<none>"),
            (
                json!({"matchLabels": {"app": "web"},
                       "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                            {"key": "zone", "operator": "NotIn", "values": ["b"]},
                                            {"key": "canary", "operator": "DoesNotExist"},
                                            {"key": "example.com/owner", "operator": "Exists"}]}),
                "app=web,!canary,env in (dev,prod),example.com/owner,zone notin (b)",
            ),
            (json!({"matchExpressions": [{"key": "env", "operator": "In", "values": []}]}), "<error>"),
            (json!({"matchExpressions": [{"key": "env", "operator": "Gt", "values": ["1"]}]}), "<error>"),
            (json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}), "<error>"),
            (json!({"matchLabels": {"bad key": "v"}}), "<error>"),
            (json!({"matchLabels": {"k": "-bad"}}), "<error>"),
        ];
        for (selector, want) in cases {
            assert_eq!(format_label_selector(Some(&selector)), want, "{selector}");
        }
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(selector_string(None), Ok(String::new()));
    }
}
