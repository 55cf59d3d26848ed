//! Kubernetes' own defaulting and validation rules for the networking kinds frontdoor serves:
//! Services (defaulting, create and update validation), Endpoints, EndpointSlices, Ingresses and
//! IngressClasses (validation).
//!
//! Every rule follows upstream kube-apiserver (`pkg/apis/core/validation`,
//! `pkg/apis/discovery/validation`, `pkg/apis/networking/validation`, the v1 defaulters and the
//! Service registry strategy), and every error carries upstream's field path and message, printed
//! the way `k8s.io/apimachinery/pkg/util/validation/field` prints them (Go `%q` strings, `%#v`
//! slices), so `kubectl` shows the same text a real cluster would.
//!
//! What this crate owns: the per-kind spec rules. What it does not: object metadata (names, labels,
//! annotations — the API server checks those), type checking (done before), and allocation of
//! ClusterIPs and NodePorts (done elsewhere; an omitted `clusterIP` or `nodePort` is valid here
//! because it will be allocated). Objects are `serde_json::Value`s in their v1 JSON form.
//!
//! The crate is pure: no I/O, no clocks, no global state, and it never panics on wrongly typed JSON
//! (wrong types read as absent).

#![forbid(unsafe_code)]

mod formats;
mod gofmt;
mod json;

pub mod endpoints;
pub mod endpointslice;
pub mod ingress;
pub mod service;
pub mod workloads;

/// Go's `strconv.Quote` (`%q`), for whatever else must print a string as Go does.
pub use gofmt::quote as go_quote;

#[cfg(test)]
mod seeds;

/// One invalid field, as upstream's `field.Error` reports it (and as `Status.details.causes[]`
/// carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`, `FieldValueNotSupported`,
    /// `FieldValueForbidden`, `FieldValueTooLong` or `FieldValueTooMany`.
    pub reason: &'static str,
    /// The field path, e.g. `spec.ports[0].nodePort`.
    pub field: String,
    /// The message after `field: `, e.g. `Invalid value: 30080: provided port is already allocated`.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Appends `: detail` when there is one, as `field.Error.ErrorBody` does.
fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

impl FieldError {
    /// `field.Invalid`; `value` is already rendered the Go way (see `gofmt`).
    pub(crate) fn invalid(field: impl Into<String>, value: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: with_detail(format!("Invalid value: {}", value.into()), detail),
        }
    }

    /// `field.Required`.
    pub(crate) fn required(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            message: with_detail("Required value".into(), detail),
        }
    }

    /// `field.Forbidden`.
    pub(crate) fn forbidden(field: impl Into<String>, detail: &str) -> FieldError {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: with_detail("Forbidden".into(), detail),
        }
    }

    /// `field.Duplicate`.
    pub(crate) fn duplicate(field: impl Into<String>, value: impl Into<String>) -> FieldError {
        FieldError {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", value.into()),
        }
    }

    /// `field.NotSupported`: `supported` in the order upstream lists them (usually sorted).
    pub(crate) fn not_supported(field: impl Into<String>, value: impl Into<String>, supported: &[&str]) -> FieldError {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| gofmt::quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: with_detail(format!("Unsupported value: {}", value.into()), &detail),
        }
    }

    /// `field.TooLong` (the value is never printed).
    pub(crate) fn too_long(field: impl Into<String>, max_bytes: usize) -> FieldError {
        FieldError {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: must have at most {max_bytes} bytes"),
        }
    }

    /// `field.TooMany`.
    pub(crate) fn too_many(field: impl Into<String>, actual: usize, max: usize) -> FieldError {
        FieldError {
            reason: "FieldValueTooMany",
            field: field.into(),
            message: format!("Too many: {actual}: must have at most {max} items"),
        }
    }
}

/// Drops repeated (field, message) pairs, keeping the first, as upstream's `ToAggregate` does for
/// the message a client prints.
fn dedup(errors: Vec<FieldError>) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = Vec::with_capacity(errors.len());
    for error in errors {
        if !out.iter().any(|e| e.field == error.field && e.message == error.message) {
            out.push(error);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_render_like_field_error_body() {
        let cases = [
            (
                FieldError::invalid("spec.ports[0].port", "0", "must be between 1 and 65535, inclusive"),
                "Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
            (FieldError::required("spec.ports", ""), "Required value"),
            (FieldError::required("spec.x", "why"), "Required value: why"),
            (FieldError::forbidden("spec.x", "no"), "Forbidden: no"),
            (FieldError::duplicate("spec.ports[1].name", gofmt::quote("http")), "Duplicate value: \"http\""),
            (
                FieldError::not_supported("spec.sessionAffinity", gofmt::quote("Sticky"), &["ClientIP", "None"]),
                "Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            ),
            (FieldError::too_long("spec.controller", 250), "Too long: must have at most 250 bytes"),
            (FieldError::too_many("endpoints", 1001, 1000), "Too many: 1001: must have at most 1000 items"),
        ];
        for (error, want) in cases {
            assert_eq!(error.message, want);
        }
        let e = FieldError::forbidden("spec.x", "no");
        assert_eq!(e.to_string(), "spec.x: Forbidden: no");
    }

    #[test]
    fn dedup_keeps_first() {
        let a = FieldError::forbidden("a", "x");
        let b = FieldError::forbidden("b", "x");
        assert_eq!(dedup(vec![a.clone(), b.clone(), a.clone()]), vec![a, b]);
    }
}
