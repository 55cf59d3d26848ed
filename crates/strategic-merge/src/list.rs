//! Merging lists that have the `merge` strategy, and ordering the result.
//!
//! - Lists of primitives are unioned (duplicates dropped).
//! - Lists of objects are matched by their merge key: a patch element whose
//!   key matches an original element is merged into it (recursively, with the
//!   element's type), other patch elements are added. Patch elements may
//!   carry `$patch: delete` (remove the original elements with that key) or
//!   `$patch: replace` (the patch's other elements become the whole list).
//!
//! The result is ordered as upstream orders it ([`enforce_order`]): the
//! elements the patch names come in the patch's order, the elements only the
//! server has keep their relative order, and the two runs are interleaved by
//! the positions they had in the original list. A new element therefore lands
//! before the server-only elements that follow no patched element; for
//! example adding finalizer `b` to `[a]` with no `$setElementOrder` gives
//! `[b, a]`, as the real API server does.

use serde_json::Value;

use crate::directives::{plain_map, Directive, PATCH};
use crate::error::{json_type, PatchError, Path};
use crate::schema::Schema;
use crate::strategic::merge_map;

/// What the elements of a list (or of two lists taken together) are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElementKind {
    /// There are no elements.
    Empty,
    /// Every element is an object.
    Objects,
    /// Every element is a primitive of one JSON type.
    Primitives,
}

/// Checks that all elements of `a` and `b` are of one kind, as upstream
/// requires before merging: all objects, or all primitives of the same JSON
/// type (numbers count as one type). Lists of lists are refused.
pub(crate) fn element_kind(a: &[Value], b: &[Value], path: &Path<'_>) -> Result<ElementKind, PatchError> {
    let mut seen: Option<u8> = None;
    for item in a.iter().chain(b) {
        let tag = match item {
            Value::Array(_) => return Err(PatchError::ListOfLists { path: path.render() }),
            Value::Object(_) => 0,
            Value::Null => 1,
            Value::Bool(_) => 2,
            Value::Number(_) => 3,
            Value::String(_) => 4,
        };
        match seen {
            None => seen = Some(tag),
            Some(previous) if previous != tag => return Err(PatchError::MixedListElements { path: path.render() }),
            Some(_) => {}
        }
    }
    Ok(match seen {
        None => ElementKind::Empty,
        Some(0) => ElementKind::Objects,
        Some(_) => ElementKind::Primitives,
    })
}

/// How list elements are told apart when matching and ordering them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    /// By their whole value (primitives).
    Whole,
    /// By the value of a merge key (objects).
    Key(&'static str),
}

impl Identity {
    /// The identity of `item`, or `None` when an object lacks the merge key.
    fn of(self, item: &Value) -> Option<&Value> {
        match self {
            Identity::Whole => Some(item),
            Identity::Key(key) => item.get(key),
        }
    }

    /// The identity of `item`, which must have one.
    fn require<'v>(self, item: &'v Value, path: &Path<'_>) -> Result<&'v Value, PatchError> {
        match (self, item) {
            (Identity::Key(key), Value::Object(map)) => {
                map.get(key).ok_or_else(|| PatchError::MissingMergeKey { path: path.render(), key })
            }
            (Identity::Key(_), other) => {
                Err(PatchError::WrongType { path: path.render(), expected: "an object", found: json_type(other) })
            }
            (Identity::Whole, item) => Ok(item),
        }
    }
}

/// The identities of every element of `items`, each of which must have one.
pub(crate) fn identities(items: &[Value], identity: Identity, path: &Path<'_>) -> Result<Vec<Value>, PatchError> {
    items.iter().enumerate().map(|(index, item)| identity.require(item, &Path::Index(path, index)).cloned()).collect()
}

/// The identities of the elements of `items` that have one; used for the
/// server's order, where only relative positions matter.
pub(crate) fn lenient_identities(items: &[Value], identity: Identity) -> Vec<Value> {
    items.iter().filter_map(|item| identity.of(item).cloned()).collect()
}

/// Merges `patch` into `original` for a list with the merge strategy; `key`
/// is the merge key (`None` for lists of primitives) and `elem_ty` the type
/// of the elements.
pub(crate) fn merge(
    original: Vec<Value>,
    patch: Vec<Value>,
    key: Option<&'static str>,
    elem_ty: Schema,
    path: &Path<'_>,
) -> Result<Vec<Value>, PatchError> {
    match element_kind(&original, &patch, path)? {
        ElementKind::Empty => Ok(original),
        ElementKind::Primitives => match key {
            None => Ok(merge_primitives(original, patch, path)?),
            // Upstream fails the same way: a keyed list must hold objects.
            Some(_) => Err(PatchError::WrongType {
                path: path.render(),
                expected: "a list of objects",
                found: "a list of primitives",
            }),
        },
        ElementKind::Objects => match key {
            Some(key) => merge_objects(original, patch, key, elem_ty, path),
            None => Err(PatchError::NoMergeKey { path: path.render() }),
        },
    }
}

/// Set union of two lists of primitives, ordered as upstream orders it.
fn merge_primitives(original: Vec<Value>, patch: Vec<Value>, path: &Path<'_>) -> Result<Vec<Value>, PatchError> {
    let server = original.clone();
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    for item in original.into_iter().chain(patch.iter().cloned()) {
        if !merged.contains(&item) {
            merged.push(item);
        }
    }
    enforce_order(merged, &patch, &server, Identity::Whole, path)
}

/// Merge of two lists of objects by `key`, honouring `$patch` elements.
fn merge_objects(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &'static str,
    elem_ty: Schema,
    path: &Path<'_>,
) -> Result<Vec<Value>, PatchError> {
    // Directive elements first: deletions apply to the original, a replace
    // makes the patch's plain elements the whole list.
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for (index, item) in patch.into_iter().enumerate() {
        let here = Path::Index(path, index);
        let Value::Object(item) = item else {
            return Err(PatchError::WrongType { path: here.render(), expected: "an object", found: "a primitive" });
        };
        let Some(directive) = item.get(PATCH) else {
            plain.push((index, item));
            continue;
        };
        match Directive::parse(directive) {
            Some(Directive::Delete) => {
                let id = item.get(key).ok_or(PatchError::MissingMergeKey { path: here.render(), key })?;
                original.retain(|existing| existing.get(key) != Some(id));
            }
            Some(Directive::Replace) => replace = true,
            Some(Directive::Merge) => return Err(PatchError::ListMergeDirective { path: here.render() }),
            None => {
                return Err(PatchError::UnknownListDirective { path: here.render(), directive: directive.to_string() })
            }
        }
    }
    if replace {
        original = plain.into_iter().map(|(_, item)| Value::Object(plain_map(item))).collect();
        plain = Vec::new();
    }

    let server = lenient_identities(&original, Identity::Key(key));
    let mut wanted = Vec::with_capacity(plain.len());
    for (index, item) in plain {
        let id = item
            .get(key)
            .cloned()
            .ok_or(PatchError::MissingMergeKey { path: Path::Index(path, index).render(), key })?;
        match original.iter().position(|existing| existing.get(key) == Some(&id)) {
            Some(at) => {
                let Value::Object(existing) = std::mem::take(&mut original[at]) else {
                    return Err(PatchError::MixedListElements { path: path.render() });
                };
                let merged = merge_map(existing, item, elem_ty, &Path::Keyed(path, key, &id))?;
                original[at] = Value::Object(merged);
            }
            None => original.push(Value::Object(plain_map(item))),
        }
        wanted.push(id);
    }
    enforce_order(original, &wanted, &server, Identity::Key(key), path)
}

/// Removes every value in `to_delete` from a list of primitives.
pub(crate) fn delete_primitives(
    original: Vec<Value>,
    to_delete: &[Value],
    path: &Path<'_>,
) -> Result<Vec<Value>, PatchError> {
    match element_kind(&original, to_delete, path)? {
        ElementKind::Objects => Err(PatchError::BadDeleteFromPrimitiveList {
            path: path.render(),
            reason: "the list holds objects, not primitives".to_owned(),
        }),
        ElementKind::Empty | ElementKind::Primitives => {
            Ok(original.into_iter().filter(|item| !to_delete.contains(item)).collect())
        }
    }
}

/// Checks a `$setElementOrder` list against the patch list it orders, as
/// upstream does: every patch element (other than directive elements) must
/// appear in the order list, in the same relative order.
pub(crate) fn check_order_matches_patch(
    patch: &[Value],
    order: &[Value],
    key: Option<&'static str>,
    path: &Path<'_>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let identity = key.map_or(Identity::Whole, Identity::Key);
    let mut order_ids = Vec::with_capacity(order.len());
    for (index, item) in order.iter().enumerate() {
        order_ids.push(
            identity
                .require(item, &Path::Index(path, index))
                .map_err(|err| PatchError::BadSetElementOrder { path: path.render(), reason: err.to_string() })?,
        );
    }
    let mut remaining = order_ids.iter();
    for (index, item) in patch.iter().enumerate() {
        if item.get(PATCH).is_some() {
            continue;
        }
        let id = identity.require(item, &Path::Index(path, index))?;
        if !remaining.any(|candidate| *candidate == id) {
            return Err(PatchError::BadSetElementOrder {
                path: path.render(),
                reason: format!("the patch list element {id} is missing from the order list or out of its order"),
            });
        }
    }
    Ok(())
}

/// Orders a merged list the way upstream's `normalizeElementOrder` does.
///
/// `wanted` lists the identities the patch (or its `$setElementOrder`) names,
/// in the order it wants them; `server` lists the identities of the original
/// list in its order. Elements named in `wanted` are sorted by it; the others
/// keep their `server` order. The two runs are then interleaved: a
/// server-only element goes first only when both it and the next wanted
/// element were in the original list and it came earlier there.
pub(crate) fn enforce_order(
    merged: Vec<Value>,
    wanted: &[Value],
    server: &[Value],
    identity: Identity,
    path: &Path<'_>,
) -> Result<Vec<Value>, PatchError> {
    let position = |list: &[Value], id: &Value| list.iter().position(|candidate| candidate == id);

    /// An element with its rank in the order it is sorted by, and its
    /// position in the server's list (if it was there).
    struct Ranked {
        rank: usize,
        on_server: Option<usize>,
        item: Value,
    }

    let mut named = Vec::new();
    let mut server_only = Vec::new();
    for (index, item) in merged.into_iter().enumerate() {
        let id = identity.require(&item, &Path::Index(path, index))?;
        let on_server = position(server, id);
        match position(wanted, id) {
            Some(rank) => named.push(Ranked { rank, on_server, item }),
            None => server_only.push(Ranked { rank: on_server.unwrap_or(usize::MAX), on_server, item }),
        }
    }
    // Stable sorts: equal ranks (duplicate keys) keep their merged order.
    named.sort_by_key(|ranked| ranked.rank);
    server_only.sort_by_key(|ranked| ranked.rank);

    let mut ordered = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server_only = match (server_only.peek(), named.peek()) {
            (Some(left), Some(right)) => {
                matches!((left.on_server, right.on_server), (Some(l), Some(r)) if l < r)
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_server_only { server_only.next() } else { named.next() };
        ordered.extend(next.map(|ranked| ranked.item));
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(value: Value) -> Vec<Value> {
        match value {
            Value::Array(items) => items,
            other => panic!("not a list: {other}"),
        }
    }

    #[test]
    fn order_interleaves_server_only_items_like_upstream() {
        // (merged, wanted, server, expected) by name; from upstream's
        // "set elements order in a list with server-only items" cases.
        let cases = [
            (json!([1, 2, 9, 3, 4]), json!([2, 1, 4, 3]), json!([1, 2, 9, 3, 4]), json!([2, 1, 9, 4, 3])),
            (
                json!([1, 2, 7, 9, 8, 3, 4]),
                json!([2, 1, 4, 3]),
                json!([1, 2, 7, 9, 8, 3, 4]),
                json!([2, 1, 7, 9, 8, 4, 3]),
            ),
            (json!([1, 3, 4, 2, 9]), json!([4, 2, 3, 1]), json!([1, 3, 4, 2, 9]), json!([4, 2, 3, 1, 9])),
            // A new element goes before trailing server-only elements.
            (json!(["a", "b"]), json!(["b"]), json!(["a"]), json!(["b", "a"])),
            (json!([1, 2, 4, 3]), json!([3]), json!([1, 2, 4]), json!([3, 1, 2, 4])),
        ];
        for (merged, wanted, server, expected) in cases {
            let got = enforce_order(list(merged), &list(wanted), &list(server), Identity::Whole, &Path::Root)
                .expect("orders");
            assert_eq!(Value::Array(got), expected);
        }
    }

    #[test]
    fn element_kinds() {
        let root = Path::Root;
        assert_eq!(element_kind(&[], &[], &root), Ok(ElementKind::Empty));
        assert_eq!(element_kind(&[json!({})], &[json!({"a": 1})], &root), Ok(ElementKind::Objects));
        assert_eq!(element_kind(&[json!(1)], &[json!(2.5)], &root), Ok(ElementKind::Primitives));
        assert!(matches!(element_kind(&[json!("a")], &[json!(1)], &root), Err(PatchError::MixedListElements { .. })));
        assert!(matches!(element_kind(&[json!([1])], &[], &root), Err(PatchError::ListOfLists { .. })));
    }

    #[test]
    fn order_list_must_cover_the_patch_in_order() {
        let root = Path::Root;
        let patch = list(json!([{"name": "a"}, {"name": "c"}, {"$patch": "delete", "name": "z"}]));
        let good = list(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let reversed = list(json!([{"name": "c"}, {"name": "a"}]));
        let partial = list(json!([{"name": "a"}]));
        let keyless = list(json!([{"nom": "a"}]));
        assert_eq!(check_order_matches_patch(&patch, &good, Some("name"), &root), Ok(()));
        assert_eq!(check_order_matches_patch(&patch, &[], Some("name"), &root), Ok(()));
        for bad in [reversed, partial, keyless] {
            assert!(matches!(
                check_order_matches_patch(&patch, &bad, Some("name"), &root),
                Err(PatchError::BadSetElementOrder { .. })
            ));
        }
    }
}
