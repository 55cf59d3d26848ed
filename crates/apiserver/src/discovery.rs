//! API discovery: legacy (`APIVersions`, `APIGroupList`, `APIResourceList`) and aggregated
//! (`apidiscovery.k8s.io` v2 and v2beta1), chosen by the exact media type the client accepts.

use http::HeaderMap;
use serde_json::{json, Value};

use frontdoor_resources::{self as resources, group_version_string, ResourceType};

/// Which aggregated discovery version the client accepts, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregated {
    V2,
    V2Beta1,
}

impl Aggregated {
    pub fn version(self) -> &'static str {
        match self {
            Aggregated::V2 => "v2",
            Aggregated::V2Beta1 => "v2beta1",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Aggregated::V2 => "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            Aggregated::V2Beta1 => "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        }
    }
}

/// The first aggregated version in the client's Accept list (parameters matched exactly:
/// `v=v2` must not match `v=v2beta1`).
pub fn negotiate(headers: &HeaderMap) -> Option<Aggregated> {
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok())?;
    for range in accept.split(',') {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        if params.first() != Some(&"application/json")
            || !params.contains(&"g=apidiscovery.k8s.io")
            || !params.contains(&"as=APIGroupDiscoveryList")
        {
            continue;
        }
        if params.contains(&"v=v2") {
            return Some(Aggregated::V2);
        }
        if params.contains(&"v=v2beta1") {
            return Some(Aggregated::V2Beta1);
        }
    }
    None
}

/// `GET /api` (legacy form).
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis` (legacy form).
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": group_version_string(group, v), "version": v}))
                .collect();
            json!({"name": group, "versions": versions.clone(), "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/<group>/<version>`; `None` if the group-version is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in resources::in_group_version(group, version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for sub in r.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != r.group || sub.version != r.version {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            list.push(entry);
        }
    }
    if list.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version_string(group, version),
        "resources": list,
    }))
}

fn aggregated_resource(r: &ResourceType) -> Value {
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        let subs: Vec<Value> = r
            .subresources
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
        entry["subresources"] = json!(subs);
    }
    entry
}

/// The aggregated document for `/api` (core only) or `/apis` (every named group).
pub fn aggregated(core: bool, version: Aggregated) -> Value {
    let items: Vec<Value> = resources::groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> =
                        resources::in_group_version(group, v).map(aggregated_resource).collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{}", version.version()),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, v.parse().unwrap());
        h
    }

    #[test]
    fn negotiation_is_exact() {
        let v132 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(&accept(v132)), Some(Aggregated::V2));
        let v127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(&accept(v127)), Some(Aggregated::V2Beta1));
        assert_eq!(negotiate(&accept("application/json")), None);
    }

    #[test]
    fn documents_list_every_resource() {
        let core = aggregated(true, Aggregated::V2);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let apis = aggregated(false, Aggregated::V2);
        assert!(apis["items"].as_array().unwrap().iter().any(|g| g["metadata"]["name"] == "apps"));
        let v1 = api_resource_list("", "v1").unwrap();
        assert!(v1["resources"].as_array().unwrap().iter().any(|r| r["name"] == "services/status"));
        assert!(api_resource_list("nosuch", "v1").is_none());
    }
}
