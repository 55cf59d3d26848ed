//! The strategic merge patch directives: their spelling, how patch keys are
//! classified, and how a patch fragment is turned into plain data when it is
//! stored as-is (a new field, a replaced list, a new list element).

use serde_json::{Map, Value};

use crate::error::{PatchError, Path};

/// `"$patch": "replace" | "delete"` in a map or a list element.
pub(crate) const PATCH: &str = "$patch";
/// `"$retainKeys": [...]`: the only keys a map may keep.
pub(crate) const RETAIN_KEYS: &str = "$retainKeys";
/// `"$setElementOrder/<field>": [...]`: the order of a merged list.
pub(crate) const SET_ELEMENT_ORDER: &str = "$setElementOrder";
/// `"$deleteFromPrimitiveList/<field>": [...]`: values to drop from a list of primitives.
pub(crate) const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// The value of a `$patch` directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Directive {
    Replace,
    Delete,
    Merge,
}

impl Directive {
    /// Reads a `$patch` value; `None` for anything that is not one of the
    /// three known strings.
    pub(crate) fn parse(value: &Value) -> Option<Directive> {
        match value.as_str()? {
            "replace" => Some(Directive::Replace),
            "delete" => Some(Directive::Delete),
            "merge" => Some(Directive::Merge),
            _ => None,
        }
    }
}

/// What a key of a patch map stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKey<'a> {
    /// An ordinary field.
    Field(&'a str),
    /// `$setElementOrder/<field>`.
    SetElementOrder(&'a str),
    /// `$deleteFromPrimitiveList/<field>`.
    DeleteFromPrimitiveList(&'a str),
}

impl<'a> PatchKey<'a> {
    /// Classifies a patch key. A key that starts like a parallel-list
    /// directive but is not `<directive>/<field>` is an error, as upstream.
    pub(crate) fn classify(key: &'a str, path: &Path<'_>) -> Result<PatchKey<'a>, PatchError> {
        if key.starts_with(SET_ELEMENT_ORDER) {
            return match split_directive_key(key, SET_ELEMENT_ORDER) {
                Some(field) => Ok(PatchKey::SetElementOrder(field)),
                None => Err(PatchError::BadSetElementOrder {
                    path: path.render(),
                    reason: format!("{key:?} is not of the form \"{SET_ELEMENT_ORDER}/<field>\""),
                }),
            };
        }
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            return match split_directive_key(key, DELETE_FROM_PRIMITIVE_LIST) {
                Some(field) => Ok(PatchKey::DeleteFromPrimitiveList(field)),
                None => Err(PatchError::BadDeleteFromPrimitiveList {
                    path: path.render(),
                    reason: format!("{key:?} is not of the form \"{DELETE_FROM_PRIMITIVE_LIST}/<field>\""),
                }),
            };
        }
        Ok(PatchKey::Field(key))
    }
}

/// `"<prefix>/<field>"` → `field`.
fn split_directive_key<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    let (head, field) = key.split_once('/')?;
    (head == prefix).then_some(field)
}

/// Whether `key` is a directive key that must not survive into an object.
fn is_directive_key(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || split_directive_key(key, SET_ELEMENT_ORDER).is_some()
        || split_directive_key(key, DELETE_FROM_PRIMITIVE_LIST).is_some()
}

/// Turns a patch fragment that is about to be stored as-is into plain data,
/// the way upstream does (`discardNullValuesFromPatch` + `removeDirectives`,
/// followed by the round trip through the Go types, which drops unknown
/// `$`-keys):
///
/// - `null` map values are dropped (there is nothing to delete in new data);
/// - a map carrying `$patch` is dropped entirely, as is a list element that
///   does: upstream gives no meaning to a directive on data that has nothing
///   to merge into (so even `{"$patch": "replace", ...}` on a field the object
///   lacks leaves the field unset, as upstream);
/// - the remaining directive keys (`$retainKeys`, `$setElementOrder/...`,
///   `$deleteFromPrimitiveList/...`) are removed.
///
/// Returns `None` when the fragment itself is dropped.
pub(crate) fn into_plain(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(PATCH) {
                None
            } else {
                Some(Value::Object(plain_map(map)))
            }
        }
        Value::Array(items) => Some(Value::Array(plain_list(items))),
        other => Some(other),
    }
}

/// [`into_plain`] for the entries of a map whose own `$patch` has been dealt with.
pub(crate) fn plain_map(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter(|(key, value)| !value.is_null() && !is_directive_key(key))
        .filter_map(|(key, value)| into_plain(value).map(|value| (key, value)))
        .collect()
}

/// [`into_plain`] for the elements of a list.
pub(crate) fn plain_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(into_plain).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_classified() {
        let root = Path::Root;
        let cases = [
            ("containers", Ok(PatchKey::Field("containers"))),
            ("$setElementOrder/containers", Ok(PatchKey::SetElementOrder("containers"))),
            ("$deleteFromPrimitiveList/finalizers", Ok(PatchKey::DeleteFromPrimitiveList("finalizers"))),
            ("$retainKeys", Ok(PatchKey::Field("$retainKeys"))),
            ("$setElementOrder", Err("$setElementOrder")),
            ("$setElementOrderX/containers", Err("$setElementOrder")),
            ("$deleteFromPrimitiveList", Err("$deleteFromPrimitiveList")),
        ];
        for (key, expected) in cases {
            let got = PatchKey::classify(key, &root);
            match expected {
                Ok(want) => assert_eq!(got, Ok(want), "{key}"),
                Err(fragment) => {
                    let message = got.expect_err(key).to_string();
                    assert!(message.contains(fragment), "{key}: {message}");
                }
            }
        }
    }

    #[test]
    fn directives_parse() {
        assert_eq!(Directive::parse(&json!("replace")), Some(Directive::Replace));
        assert_eq!(Directive::parse(&json!("delete")), Some(Directive::Delete));
        assert_eq!(Directive::parse(&json!("merge")), Some(Directive::Merge));
        assert_eq!(Directive::parse(&json!("Delete")), None);
        assert_eq!(Directive::parse(&json!(1)), None);
    }

    #[test]
    fn plain_data_loses_nulls_and_directives() {
        let fragment = json!({
            "a": null,
            "b": {"c": null, "d": 1, "$retainKeys": ["d"]},
            "e": [{"$patch": "delete", "name": "x"}, {"name": "y", "z": null}],
            "f": {"$patch": "replace", "g": 1},
            "$setElementOrder/e": [{"name": "y"}],
            "$deleteFromPrimitiveList/h": ["i"],
            "j": [null, 1]
        });
        assert_eq!(into_plain(fragment), Some(json!({"b": {"d": 1}, "e": [{"name": "y"}], "j": [null, 1]})));
        assert_eq!(into_plain(json!({"$patch": "delete"})), None);
        assert_eq!(into_plain(json!("x")), Some(json!("x")));
    }
}
