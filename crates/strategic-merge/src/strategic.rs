//! Merging a strategic merge patch map into an object map: `null` deletion,
//! recursion into nested maps, `$patch` on maps, `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`. Lists
//! themselves are merged in [`crate::list`].
//!
//! The order of operations within one map follows upstream `mergeMap`:
//! 1. a `$patch` directive on the map decides everything (replace or delete);
//! 2. `$retainKeys` clears the original's keys that are not retained;
//! 3. every list named by a `$setElementOrder/<field>` is merged and ordered;
//! 4. the remaining keys are applied, each field and each
//!    `$deleteFromPrimitiveList/<field>` in the order the patch gives them.

use serde_json::{Map, Value};

use crate::directives::{
    into_plain, plain_list, plain_map, Directive, PatchKey, DELETE_FROM_PRIMITIVE_LIST, PATCH, RETAIN_KEYS,
    SET_ELEMENT_ORDER,
};
use crate::error::{json_type, PatchError, Path};
use crate::list::{self, Identity};
use crate::schema::{lookup, FieldMeta, ListStrategy, Schema};

type Object = Map<String, Value>;

/// Applies `patch` to `original`, both maps at `path`, whose type is `schema`.
pub(crate) fn merge_map(
    mut original: Object,
    mut patch: Object,
    schema: Schema,
    path: &Path<'_>,
) -> Result<Object, PatchError> {
    if let Some(directive) = patch.shift_remove(PATCH) {
        return match Directive::parse(&directive) {
            // The patch, minus its directives, becomes the whole map.
            Some(Directive::Replace) => Ok(plain_map(patch)),
            // Upstream leaves an empty map behind, not an absent field.
            Some(Directive::Delete) => Ok(Object::new()),
            Some(Directive::Merge) | None => {
                Err(PatchError::UnknownDirective { path: path.render(), directive: directive.to_string() })
            }
        };
    }

    apply_retain_keys(&mut original, &mut patch, path)?;

    let ordered: Vec<String> = patch.keys().filter(|key| key.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for key in ordered {
        let Some(order) = patch.shift_remove(&key) else {
            continue;
        };
        if let PatchKey::SetElementOrder(field) = PatchKey::classify(&key, path)? {
            let patch_list = patch.shift_remove(field);
            merge_ordered_list(&mut original, field, order, patch_list, schema, path)?;
        }
    }

    for (key, value) in patch {
        match PatchKey::classify(&key, path)? {
            PatchKey::Field(name) => merge_field(&mut original, name, value, schema, path)?,
            PatchKey::DeleteFromPrimitiveList(name) => delete_from_primitive_list(&mut original, name, value, path)?,
            // Every ordering directive was consumed above.
            PatchKey::SetElementOrder(_) => {}
        }
    }
    Ok(original)
}

/// Applies the patch value of one ordinary field.
fn merge_field(
    original: &mut Object,
    name: &str,
    patch_value: Value,
    schema: Schema,
    path: &Path<'_>,
) -> Result<(), PatchError> {
    if patch_value.is_null() {
        original.shift_remove(name);
        return Ok(());
    }
    let meta = lookup(schema, name);
    let here = path.field(name);
    let Some(current) = original.get_mut(name) else {
        if let Some(value) = into_plain(patch_value) {
            original.insert(name.to_owned(), value);
        }
        return Ok(());
    };
    let replacement = match (current, patch_value) {
        (Value::Object(current), Value::Object(patch_map)) => {
            let merged = merge_map(std::mem::take(current), patch_map, meta.ty, &here)?;
            *current = merged;
            return Ok(());
        }
        (Value::Array(current), Value::Array(patch_list)) => {
            let merged = merge_list(std::mem::take(current), patch_list, meta, &here)?;
            *current = merged;
            return Ok(());
        }
        // Scalars, and values whose JSON types differ: the patch wins.
        (_, patch_value) => into_plain(patch_value),
    };
    match replacement {
        Some(value) => {
            original.insert(name.to_owned(), value);
        }
        None => {
            original.shift_remove(name);
        }
    }
    Ok(())
}

/// Merges two lists according to the field's strategy.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: FieldMeta,
    path: &Path<'_>,
) -> Result<Vec<Value>, PatchError> {
    match meta.list {
        ListStrategy::Replace => Ok(plain_list(patch)),
        ListStrategy::MergeSet => list::merge(original, patch, None, meta.ty, path),
        ListStrategy::MergeByKey(key) => list::merge(original, patch, Some(key), meta.ty, path),
    }
}

/// `$retainKeys`: checks that the patch sets nothing outside the list, then
/// drops every key of `original` that is not in it.
fn apply_retain_keys(original: &mut Object, patch: &mut Object, path: &Path<'_>) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRetainKeys {
            path: path.render(),
            reason: format!("expected a list of field names, found {}", json_type(&retain)),
        });
    };
    let retained = |key: &str| retain.iter().any(|name| name.as_str() == Some(key));
    for (key, value) in patch.iter() {
        let exempt =
            value.is_null() || key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER);
        if !exempt && !retained(key) {
            return Err(PatchError::BadRetainKeys {
                path: path.render(),
                reason: format!("the patch sets {key:?}, which the $retainKeys list does not retain"),
            });
        }
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>`: removes values from a list of
/// primitives, whatever the field's strategy. As upstream, it is a no-op when
/// the object has no such list, and a `null` in its place deletes the field.
fn delete_from_primitive_list(
    original: &mut Object,
    name: &str,
    value: Value,
    path: &Path<'_>,
) -> Result<(), PatchError> {
    if value.is_null() {
        original.shift_remove(name);
        return Ok(());
    }
    if let (Some(Value::Array(current)), Value::Array(to_delete)) = (original.get_mut(name), value) {
        let kept = list::delete_primitives(std::mem::take(current), &to_delete, &path.field(name))?;
        *current = kept;
    }
    Ok(())
}

/// `$setElementOrder/<field>`: merges the field's list (if the patch has one)
/// and then orders the result: the elements named in `order` come in that
/// order, and elements only the server knows keep their place relative to
/// them as well as upstream can tell.
fn merge_ordered_list(
    original: &mut Object,
    field: &str,
    order: Value,
    patch_list: Option<Value>,
    schema: Schema,
    path: &Path<'_>,
) -> Result<(), PatchError> {
    let here = path.field(field);
    let meta = lookup(schema, field);
    let Value::Array(order) = order else {
        return Err(PatchError::BadSetElementOrder {
            path: here.render(),
            reason: format!("expected a list, found {}", json_type(&order)),
        });
    };
    let key = match meta.list {
        ListStrategy::MergeByKey(key) => Some(key),
        ListStrategy::MergeSet | ListStrategy::Replace => None,
    };

    let original_list = match original.get_mut(field) {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(std::mem::take(items)),
        Some(other) => {
            return Err(PatchError::WrongType { path: here.render(), expected: "a list", found: json_type(other) })
        }
    };
    let patch_list = match patch_list {
        None => None,
        Some(Value::Array(items)) => Some(items),
        Some(other) => {
            return Err(PatchError::WrongType { path: here.render(), expected: "a list", found: json_type(&other) })
        }
    };
    let (current, patched) = (original_list.as_deref().unwrap_or_default(), patch_list.as_deref().unwrap_or_default());
    list::check_order_matches_patch(patched, &order, key, &here)?;

    // Elements are identified by merge key in lists of objects that have
    // one, by value otherwise; the server's order is the original list's.
    let identity = match list::element_kind(current, patched, &here)? {
        list::ElementKind::Objects => key.map_or(Identity::Whole, Identity::Key),
        list::ElementKind::Empty | list::ElementKind::Primitives => Identity::Whole,
    };
    let server_ids = list::lenient_identities(current, identity);

    let merged = match (original_list, patch_list) {
        (Some(current), None) => current,
        (None, Some(patch_list)) => plain_list(patch_list),
        (Some(current), Some(patch_list)) => merge_list(current, patch_list, meta, &here)?,
        (None, None) => return Ok(()),
    };
    let wanted = list::identities(&order, identity, &here)?;
    let ordered = list::enforce_order(merged, &wanted, &server_ids, identity, &here)?;
    original.insert(field.to_owned(), Value::Array(ordered));
    Ok(())
}
