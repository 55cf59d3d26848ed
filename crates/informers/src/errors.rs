//! Predicates over the API's answers (client-go's `apierrors.Is*`).

fn status(error: &kube::Error) -> Option<&kube::core::Status> {
    match error {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

/// 404: the object (or its namespace) does not exist.
pub fn is_not_found(error: &kube::Error) -> bool {
    status(error).is_some_and(|s| s.is_not_found())
}

/// 409 with reason `Conflict`: an update lost a race (stale resourceVersion).
pub fn is_conflict(error: &kube::Error) -> bool {
    status(error).is_some_and(|s| s.code == 409 && s.reason != "AlreadyExists")
}

/// 409 with reason `AlreadyExists`: a create found the name taken.
pub fn is_already_exists(error: &kube::Error) -> bool {
    status(error).is_some_and(|s| s.code == 409 && s.reason == "AlreadyExists")
}

/// A create was refused because its namespace is being deleted: retrying cannot succeed and
/// the namespace's content is going away anyway.
pub fn is_namespace_terminating(error: &kube::Error) -> bool {
    let Some(status) = status(error) else {
        return false;
    };
    let by_cause = status.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"));
    status.is_forbidden() && (by_cause || status.message.contains("because it is being terminated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("refused", reason).with_code(code).boxed())
    }

    #[test]
    fn predicates_read_code_and_reason() {
        let cases = [
            (404, "NotFound", [true, false, false, false]),
            (409, "Conflict", [false, true, false, false]),
            (409, "AlreadyExists", [false, false, true, false]),
            (403, "Forbidden", [false, false, false, false]),
            (500, "InternalError", [false, false, false, false]),
        ];
        for (code, reason, want) in cases {
            let error = api_error(code, reason);
            let got = [
                is_not_found(&error),
                is_conflict(&error),
                is_already_exists(&error),
                is_namespace_terminating(&error),
            ];
            assert_eq!(got, want, "{code} {reason}");
        }
        let terminating = kube::core::Status::failure(
            "pods \"p\" is forbidden: unable to create new content in namespace n because it is being terminated",
            "Forbidden",
        )
        .with_code(403);
        assert!(is_namespace_terminating(&kube::Error::Api(terminating.boxed())));
    }
}
