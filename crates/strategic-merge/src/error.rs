//! Errors returned when a patch cannot be applied, and the field paths that
//! locate them inside the object.

use std::fmt;

use serde_json::Value;

/// Why a strategic merge patch (or JSON merge patch) could not be applied.
///
/// Every variant describes a client mistake (a malformed patch, or a patch
/// that does not fit the object it is applied to); an API server should answer
/// them with `400 Bad Request`. Messages are meant to be shown to a `kubectl`
/// user as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document is not a JSON object.
    #[error("invalid patch: the patch must be a JSON object")]
    PatchNotAnObject,

    /// The object being patched is not a JSON object.
    #[error("cannot apply patch: the existing object is not a JSON object")]
    OriginalNotAnObject,

    /// A `$patch` directive with a value other than `replace` or `delete` in a
    /// map (upstream accepts nothing else there, `merge` included).
    #[error("invalid patch: unknown patch type {directive} in map at {path}")]
    UnknownDirective { path: String, directive: String },

    /// A `$patch` directive inside a merged list with a value other than
    /// `replace` or `delete`.
    #[error("invalid patch: unknown patch type {directive} in list element at {path}")]
    UnknownListDirective { path: String, directive: String },

    /// `{"$patch": "merge"}` inside a list, which upstream does not support.
    #[error("invalid patch: merging lists cannot yet be specified in the patch (at {path})")]
    ListMergeDirective { path: String },

    /// An element of a list merged by key has no value for the key.
    #[error("invalid patch: list element at {path} does not contain declared merge key {key:?}")]
    MissingMergeKey { path: String, key: &'static str },

    /// A list with the merge strategy holds objects, but the field has no merge key.
    #[error("invalid patch: cannot merge lists of objects without a merge key at {path}")]
    NoMergeKey { path: String },

    /// The elements of a merged list (original and patch together) are not all
    /// of one kind: all objects, or all primitives of one type.
    #[error("invalid patch: list element types are not identical at {path}")]
    MixedListElements { path: String },

    /// A merged list contains lists.
    #[error("invalid patch: lists of lists are not supported (at {path})")]
    ListOfLists { path: String },

    /// A malformed `$retainKeys` directive, or a patch with fields it does not retain.
    #[error("invalid patch format of $retainKeys at {path}: {reason}")]
    BadRetainKeys { path: String, reason: String },

    /// A malformed `$setElementOrder/<field>` directive.
    #[error("invalid patch format of $setElementOrder list at {path}: {reason}")]
    BadSetElementOrder { path: String, reason: String },

    /// A malformed `$deleteFromPrimitiveList/<field>` directive.
    #[error("invalid patch format of $deleteFromPrimitiveList at {path}: {reason}")]
    BadDeleteFromPrimitiveList { path: String, reason: String },

    /// The patch and the object disagree on the JSON type of a field in a way
    /// the merge cannot resolve (for instance an ordered list that is not a list).
    #[error("invalid patch: expected {expected} at {path}, found {found}")]
    WrongType { path: String, expected: &'static str, found: &'static str },
}

/// The location of a value inside the object being patched, used only to make
/// error messages point at the offending field. Built on the stack while
/// recursing, rendered only when an error is reported.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Path<'a> {
    /// The top of the object.
    Root,
    /// A field of a map.
    Field(&'a Path<'a>, &'a str),
    /// An element of a list merged by key, named by its key and value.
    Keyed(&'a Path<'a>, &'static str, &'a Value),
    /// An element of a list, by position.
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    /// The path of field `name` below this one.
    pub(crate) fn field(&'a self, name: &'a str) -> Path<'a> {
        Path::Field(self, name)
    }

    /// Renders the path for an error message.
    pub(crate) fn render(&self) -> String {
        let rendered = self.to_string();
        if rendered.is_empty() {
            "the top level".to_owned()
        } else {
            rendered
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(parent, name) => {
                if matches!(parent, Path::Root) {
                    write!(f, "{name}")
                } else {
                    write!(f, "{parent}.{name}")
                }
            }
            Path::Keyed(parent, key, value) => write!(f, "{parent}[{key}={value}]"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// A short name for the JSON type of `value`, for error messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_render_readably() {
        let root = Path::Root;
        let spec = root.field("spec");
        let containers = spec.field("containers");
        let name = json!("web");
        let web = Path::Keyed(&containers, "name", &name);
        let env = web.field("env");
        let first = Path::Index(&env, 0);
        assert_eq!(root.render(), "the top level");
        assert_eq!(first.render(), "spec.containers[name=\"web\"].env[0]");
    }

    #[test]
    fn messages_are_prefixed_for_kubectl_users() {
        let err = PatchError::MissingMergeKey { path: "spec.ports[0]".into(), key: "port" };
        assert_eq!(
            err.to_string(),
            "invalid patch: list element at spec.ports[0] does not contain declared merge key \"port\""
        );
    }
}
