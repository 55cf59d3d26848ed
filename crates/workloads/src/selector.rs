//! Label selectors as upstream evaluates them: `matchLabels` and `matchExpressions` (`In`,
//! `NotIn`, `Exists`, `DoesNotExist`) from a `LabelSelector`, or the plain equality map a
//! ReplicationController uses. Pure: no I/O.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// A parsed selector. An absent selector selects nothing; an empty one selects everything
/// (upstream's `LabelSelectorAsSelector`).
#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    Nothing,
    Requirements(Vec<Requirement>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Selector {
    /// Parses a `LabelSelector`; an unknown operator is an error (upstream rejects it too).
    pub fn from_label_selector(selector: Option<&LabelSelector>) -> Result<Selector, String> {
        let Some(selector) = selector else { return Ok(Selector::Nothing) };
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement { key: key.clone(), operator: Operator::In, values: vec![value.clone()] });
        }
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            let values = expression.values.clone().unwrap_or_default();
            if matches!(operator, Operator::In | Operator::NotIn) && values.is_empty() {
                return Err(format!(
                    "for 'in', 'notin' operators, values set can't be empty (key {:?})",
                    expression.key
                ));
            }
            requirements.push(Requirement { key: expression.key.clone(), operator, values });
        }
        Ok(Selector::Requirements(requirements))
    }

    /// A ReplicationController's equality selector (empty selects everything).
    pub fn from_map(labels: &BTreeMap<String, String>) -> Selector {
        Selector::Requirements(
            labels
                .iter()
                .map(|(k, v)| Requirement { key: k.clone(), operator: Operator::In, values: vec![v.clone()] })
                .collect(),
        )
    }

    /// True for a selector with no requirements (selects every object).
    pub fn is_everything(&self) -> bool {
        matches!(self, Selector::Requirements(r) if r.is_empty())
    }

    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let Selector::Requirements(requirements) = self else { return false };
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        requirements.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.operator {
                Operator::In => value.is_some_and(|v| r.values.contains(v)),
                Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: if values.is_empty() { None } else { Some(values.iter().map(|v| v.to_string()).collect()) },
        }
    }

    #[test]
    fn selector_table() {
        type Case = (LabelSelector, &'static [(&'static str, &'static str)], bool);
        let cases: Vec<Case> = vec![
            (
                LabelSelector { match_labels: Some(labels(&[("app", "web")])), ..Default::default() },
                &[("app", "web"), ("x", "y")],
                true,
            ),
            (
                LabelSelector { match_labels: Some(labels(&[("app", "web")])), ..Default::default() },
                &[("app", "db")],
                false,
            ),
            (LabelSelector::default(), &[], true),
            (
                LabelSelector {
                    match_expressions: Some(vec![expression("tier", "In", &["a", "b"])]),
                    ..Default::default()
                },
                &[("tier", "b")],
                true,
            ),
            (
                LabelSelector {
                    match_expressions: Some(vec![expression("tier", "NotIn", &["a"])]),
                    ..Default::default()
                },
                &[],
                true,
            ),
            (
                LabelSelector {
                    match_expressions: Some(vec![expression("tier", "NotIn", &["a"])]),
                    ..Default::default()
                },
                &[("tier", "a")],
                false,
            ),
            (
                LabelSelector {
                    match_expressions: Some(vec![expression("tier", "Exists", &[])]),
                    ..Default::default()
                },
                &[("tier", "")],
                true,
            ),
            (
                LabelSelector {
                    match_expressions: Some(vec![expression("tier", "DoesNotExist", &[])]),
                    ..Default::default()
                },
                &[("tier", "")],
                false,
            ),
        ];
        for (selector, pod_labels, expected) in cases {
            let parsed = Selector::from_label_selector(Some(&selector)).unwrap();
            assert_eq!(parsed.matches(Some(&labels(pod_labels))), expected, "{selector:?} against {pod_labels:?}");
        }
    }

    #[test]
    fn absent_selector_matches_nothing_and_bad_operator_is_an_error() {
        assert!(!Selector::from_label_selector(None).unwrap().matches(Some(&labels(&[]))));
        let bad = LabelSelector { match_expressions: Some(vec![expression("a", "Gt", &["1"])]), ..Default::default() };
        assert!(Selector::from_label_selector(Some(&bad)).is_err());
    }

    #[test]
    fn replication_controller_map_selector() {
        let selector = Selector::from_map(&labels(&[("app", "web")]));
        assert!(selector.matches(Some(&labels(&[("app", "web")]))));
        assert!(!selector.matches(None));
        assert!(Selector::from_map(&BTreeMap::new()).is_everything());
    }
}
