//! Parsing request paths and query parameters into what the handlers need.

use std::collections::HashMap;

use frontdoor_resources::{self as resources, ResourceType};

use crate::errors::{ApiError, ApiResult};

/// What a resource URL names.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: &'static ResourceType,
    /// The namespace in the path, if any (a namespaced list without one spans all namespaces).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

impl Target {
    /// The store key of the named object.
    pub fn key(&self) -> String {
        object_key(self.resource, self.namespace.as_deref(), self.name.as_deref().unwrap_or(""))
    }

    /// The store prefix of the collection (one namespace, or all).
    pub fn prefix(&self) -> String {
        collection_prefix(self.resource, self.namespace.as_deref())
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

/// `services/default/web`, `deployments.apps/default/web`, `nodes/n1`.
pub fn object_key(resource: &ResourceType, namespace: Option<&str>, name: &str) -> String {
    match (resource.namespaced, namespace) {
        (true, Some(ns)) => format!("{}/{ns}/{name}", resource.qualified_plural()),
        _ => format!("{}/{name}", resource.qualified_plural()),
    }
}

/// The prefix under which a collection's keys live.
pub fn collection_prefix(resource: &ResourceType, namespace: Option<&str>) -> String {
    match (resource.namespaced, namespace) {
        (true, Some(ns)) => format!("{}/{ns}/", resource.qualified_plural()),
        _ => format!("{}/", resource.qualified_plural()),
    }
}

/// Parses `/api/v1/...` or `/apis/<group>/<version>/...` into a target.
pub fn parse_path(path: &str) -> ApiResult<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::no_route()),
    };
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let find = |plural: &str| resources::lookup(group, version, plural).ok_or_else(ApiError::no_route);
    let owned = |s: &&str| s.to_string();
    let target = match rest {
        // The namespace object itself and its subresources.
        ["namespaces", name] if group.is_empty() => Target {
            resource: find("namespaces")?,
            namespace: None,
            name: Some(name.to_string()),
            subresource: None,
            watch_prefix,
        },
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => Target {
            resource: find("namespaces")?,
            namespace: None,
            name: Some(name.to_string()),
            subresource: Some(sub.to_string()),
            watch_prefix,
        },
        // A proxy subresource takes the rest of the path as the path to relay to.
        ["namespaces", namespace, plural, name, "proxy", _, ..] => Target {
            resource: find(plural).ok().filter(|r| r.namespaced).ok_or_else(ApiError::no_route)?,
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            subresource: Some("proxy".to_string()),
            watch_prefix,
        },
        [plural, name, "proxy", _, ..] if *plural != "namespaces" => Target {
            resource: find(plural).ok().filter(|r| !r.namespaced).ok_or_else(ApiError::no_route)?,
            namespace: None,
            name: Some(name.to_string()),
            subresource: Some("proxy".to_string()),
            watch_prefix,
        },
        ["namespaces", namespace, plural, tail @ ..] if tail.len() <= 2 => {
            let resource = find(plural)?;
            if !resource.namespaced {
                return Err(ApiError::no_route());
            }
            Target {
                resource,
                namespace: Some(namespace.to_string()),
                name: tail.first().map(owned),
                subresource: tail.get(1).map(owned),
                watch_prefix,
            }
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            let resource = find(plural)?;
            if resource.namespaced && !tail.is_empty() {
                return Err(ApiError::no_route());
            }
            Target {
                resource,
                namespace: None,
                name: tail.first().map(owned),
                subresource: tail.get(1).map(owned),
                watch_prefix,
            }
        }
        _ => return Err(ApiError::no_route()),
    };
    if let Some(sub) = &target.subresource {
        if target.resource.subresource(sub).is_none() {
            return Err(ApiError::no_route());
        }
    }
    Ok(target)
}

/// Query parameters, percent-decoded, last one wins.
pub fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

/// Every value of `key` in the query, in order (`command=ls&command=-l`).
pub fn query_values(query: Option<&str>, key: &str) -> Vec<String> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| percent_decode(k) == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse_path("/api/v1/namespaces/default/services/web/status").unwrap();
        assert_eq!(
            (t.resource.plural, t.namespace.as_deref(), t.name(), t.subresource.as_deref()),
            ("services", Some("default"), "web", Some("status"))
        );
        let t = parse_path("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!((t.resource.plural, t.name()), ("namespaces", "kube-system"));
        let t = parse_path("/apis/apps/v1/deployments").unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());
        assert_eq!(t.key(), "deployments.apps/");
        let t = parse_path("/api/v1/watch/namespaces/default/pods").unwrap();
        assert!(t.watch_prefix);
        assert_eq!(t.prefix(), "pods/default/");
        assert!(parse_path("/api/v1/nodes/n1").unwrap().key() == "nodes/n1");
        assert!(parse_path("/api/v1/namespaces/default/nodes").is_err());
        assert!(parse_path("/api/v1/namespaces/default/services/web/nosuch").is_err());
        assert!(parse_path("/apis/nosuch/v1/things").is_err());
        let t = parse_path("/api/v1/namespaces/default/services/http:web:80/proxy/a/b/c").unwrap();
        assert_eq!((t.resource.plural, t.name(), t.subresource.as_deref()), ("services", "http:web:80", Some("proxy")));
        let t = parse_path("/api/v1/nodes/n1:10250/proxy/logs/").unwrap();
        assert_eq!((t.resource.plural, t.name(), t.subresource.as_deref()), ("nodes", "n1:10250", Some("proxy")));
        assert!(parse_path("/api/v1/namespaces/default/configmaps/c/proxy/x").is_err());
    }

    #[test]
    fn queries() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500&watch"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "500");
        assert_eq!(q["watch"], "");
    }
}
