//! The API server's Prometheus metrics, under kube-apiserver's names and labels, in the process's
//! one registry (`frontdoor-metrics`), served at `/metrics`.
//!
//! * `apiserver_request_total` (verb, dry_run, group, version, resource, subresource, scope,
//!   component, code) and `apiserver_request_duration_seconds` (the same without code, upstream's
//!   buckets) are recorded once per request by [`crate::route`], from the labels of
//!   [`RequestLabels::of`]. Long-running requests (`WATCH`, `CONNECT`) are counted when their
//!   response starts and left out of the histogram: their duration is the client's.
//! * `apiserver_storage_objects` (resource: `services`, `deployments.apps`) is counted from the
//!   store's in-memory keys when `/metrics` is read.
//!
//! Label values come only from the catalogue and fixed words, never from a path or an object
//! name, so the number of series stays bounded.

use std::time::Duration;

use frontdoor_metrics::prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use frontdoor_metrics::prometheus_client::metrics::counter::Counter;
use frontdoor_metrics::prometheus_client::metrics::family::Family;
use frontdoor_metrics::prometheus_client::metrics::gauge::Gauge;
use frontdoor_metrics::prometheus_client::metrics::histogram::Histogram;
use http::{HeaderMap, Method, StatusCode};

use frontdoor_store::Store;

use crate::{body, patch, request};

/// The `component` label of requests the API server itself serves.
const COMPONENT: &str = "apiserver";

/// Upstream's buckets of `apiserver_request_duration_seconds`.
const DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];

/// Subresources upstream reports as `CONNECT` (streams to a pod rather than reads or writes).
const CONNECT_SUBRESOURCES: [&str; 5] = ["log", "exec", "portforward", "attach", "proxy"];

/// What one request is, as upstream labels it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) struct RequestLabels {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`, `CONNECT` or `other`.
    pub verb: &'static str,
    /// `` without `dryRun`, `All`, or `invalid`.
    pub dry_run: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    /// A resource's subresource; for upstream's health endpoints, their path.
    pub subresource: &'static str,
    /// `resource` (one object, or a create), `namespace`, `cluster`, or `` for non-resource URLs.
    pub scope: &'static str,
    /// `apiserver`; `` for the health endpoints, as upstream.
    pub component: &'static str,
}

impl RequestLabels {
    /// The labels of a request, from its method, path, raw query and headers. A URL that names
    /// no served resource (discovery, OpenAPI, `/version`, `/metrics`, an unknown path) has empty
    /// group, version, resource and scope; the path itself is never a label.
    pub fn of(method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> RequestLabels {
        let dry_run = dry_run(query);
        let Ok(target) = request::parse_path(path) else {
            // Upstream instruments its health endpoints with their path as the subresource.
            let (subresource, component) = match path {
                "/healthz" => ("/healthz", ""),
                "/livez" => ("/livez", ""),
                "/readyz" => ("/readyz", ""),
                _ => ("", COMPONENT),
            };
            return RequestLabels {
                verb: method_verb(method, ""),
                dry_run,
                group: "",
                version: "",
                resource: "",
                subresource,
                scope: "",
                component,
            };
        };
        let scope = if target.name.is_some() || *method == Method::POST {
            "resource"
        } else if target.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        };
        let subresource =
            target.subresource.as_deref().and_then(|s| target.resource.subresource(s)).map_or("", |s| s.name);
        let watch = *method == Method::GET
            && (target.watch_prefix || matches!(raw_values(query, "watch").last(), Some("true" | "1")));
        let verb = if watch {
            "WATCH"
        } else if CONNECT_SUBRESOURCES.contains(&subresource) {
            "CONNECT"
        } else if *method == Method::PATCH && body::content_type(headers) == patch::APPLY {
            "APPLY"
        } else {
            method_verb(method, scope)
        };
        RequestLabels {
            verb,
            dry_run,
            group: target.resource.group,
            version: target.resource.version,
            resource: target.resource.plural,
            subresource,
            scope,
            component: COMPONENT,
        }
    }

    fn long_running(&self) -> bool {
        matches!(self.verb, "WATCH" | "CONNECT")
    }
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [
            ("verb", self.verb),
            ("dry_run", self.dry_run),
            ("group", self.group),
            ("version", self.version),
            ("resource", self.resource),
            ("subresource", self.subresource),
            ("scope", self.scope),
            ("component", self.component),
        ]
        .encode(encoder)
    }
}

/// A request's labels and the status code it was answered with.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct CodedLabels {
    request: RequestLabels,
    code: u16,
}

impl EncodeLabelSet for CodedLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.request.encode(encoder)?;
        [("code", self.code)].encode(encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ObjectLabels {
    /// `services`, `deployments.apps`: upstream's group-resource.
    resource: String,
}

impl EncodeLabelSet for ObjectLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        [("resource", self.resource.as_str())].encode(encoder)
    }
}

/// The API server's metrics, registered in the process's registry.
pub(crate) struct Metrics {
    registry: frontdoor_metrics::Registry,
    requests: Family<CodedLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    objects: Family<ObjectLabels, Gauge>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &frontdoor_metrics::Registry) -> Metrics {
        let metrics = Metrics {
            registry: registry.clone(),
            requests: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
            objects: Family::default(),
        };
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
            metrics.requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
            metrics.durations.clone(),
        );
        registry.register(
            "apiserver_storage_objects",
            "Number of stored objects at the time of last check split by kind",
            metrics.objects.clone(),
        );
        metrics
    }

    /// Records one answered request.
    pub fn record(&self, labels: &RequestLabels, status: StatusCode, elapsed: Duration) {
        self.requests.get_or_create(&CodedLabels { request: *labels, code: status.as_u16() }).inc();
        if !labels.long_running() {
            self.durations.get_or_create(labels).observe(elapsed.as_secs_f64());
        }
    }

    /// Every metric of the process in the text format, with the object counts taken now.
    pub fn encode(&self, store: &Store) -> String {
        for resource in frontdoor_resources::all() {
            let count = store.count(&request::collection_prefix(resource, None));
            self.objects
                .get_or_create(&ObjectLabels { resource: resource.qualified_plural() })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.registry.encode()
    }
}

/// The verb upstream reports for a method: GET of a collection is `LIST`; unknown methods are
/// `other`.
fn method_verb(method: &Method, scope: &str) -> &'static str {
    match *method {
        Method::GET | Method::HEAD if scope == "resource" || scope.is_empty() => "GET",
        Method::GET | Method::HEAD => "LIST",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Upstream's `dry_run` label: empty without `dryRun`, `All` if every value is `All`, else
/// `invalid`.
fn dry_run(query: Option<&str>) -> &'static str {
    let mut values = raw_values(query, "dryRun").peekable();
    if values.peek().is_none() {
        ""
    } else if values.all(|v| v == "All") {
        "All"
    } else {
        "invalid"
    }
}

/// The values of `key` in a raw query, not decoded (the parameters read here are plain words).
fn raw_values<'a>(query: Option<&'a str>, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    query.unwrap_or("").split('&').filter_map(move |pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use http::header::CONTENT_TYPE;
    use http::HeaderValue;
    use serde_json::json;

    use frontdoor_store::{Batch, Precondition, StoreConfig};

    use super::*;

    fn labels(method: Method, path_and_query: &str, content_type: &str) -> RequestLabels {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let mut headers = HeaderMap::new();
        if !content_type.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        }
        RequestLabels::of(&method, path, query, &headers)
    }

    #[test]
    fn request_labels() {
        let apply = "application/apply-patch+yaml";
        let strategic = "application/strategic-merge-patch+json";
        // method, path, content type → verb, dry_run, group, version, resource, subresource, scope, component
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/default/services",
                "",
                ["LIST", "", "", "v1", "services", "", "namespace", "apiserver"],
            ),
            (
                Method::GET,
                "/api/v1/services?limit=500",
                "",
                ["LIST", "", "", "v1", "services", "", "cluster", "apiserver"],
            ),
            (
                Method::HEAD,
                "/api/v1/namespaces/default/services/web",
                "",
                ["GET", "", "", "v1", "services", "", "resource", "apiserver"],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/services/web",
                "",
                ["GET", "", "", "v1", "services", "", "resource", "apiserver"],
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/services?fieldValidation=Strict",
                "",
                ["POST", "", "", "v1", "services", "", "resource", "apiserver"],
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/services?dryRun=All",
                "",
                ["POST", "All", "", "v1", "services", "", "resource", "apiserver"],
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/services?dryRun=Some",
                "",
                ["POST", "invalid", "", "v1", "services", "", "resource", "apiserver"],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods?watch=true&resourceVersion=5",
                "",
                ["WATCH", "", "", "v1", "pods", "", "namespace", "apiserver"],
            ),
            (Method::GET, "/api/v1/pods?watch=1", "", ["WATCH", "", "", "v1", "pods", "", "cluster", "apiserver"]),
            (Method::GET, "/api/v1/pods?watch=false", "", ["LIST", "", "", "v1", "pods", "", "cluster", "apiserver"]),
            (
                Method::GET,
                "/api/v1/watch/namespaces/default/pods",
                "",
                ["WATCH", "", "", "v1", "pods", "", "namespace", "apiserver"],
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/default/deployments/web",
                apply,
                ["APPLY", "", "apps", "v1", "deployments", "", "resource", "apiserver"],
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/default/deployments/web",
                strategic,
                ["PATCH", "", "apps", "v1", "deployments", "", "resource", "apiserver"],
            ),
            (
                Method::PUT,
                "/apis/apps/v1/namespaces/default/deployments/web/scale",
                "",
                ["PUT", "", "apps", "v1", "deployments", "scale", "resource", "apiserver"],
            ),
            (
                Method::PUT,
                "/api/v1/nodes/n1/status",
                "",
                ["PUT", "", "", "v1", "nodes", "status", "resource", "apiserver"],
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/configmaps",
                "",
                ["DELETE", "", "", "v1", "configmaps", "", "namespace", "apiserver"],
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/team-a",
                "",
                ["DELETE", "", "", "v1", "namespaces", "", "resource", "apiserver"],
            ),
            (
                Method::GET,
                "/apis/discovery.k8s.io/v1/endpointslices",
                "",
                ["LIST", "", "discovery.k8s.io", "v1", "endpointslices", "", "cluster", "apiserver"],
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/pods/web/binding",
                "",
                ["POST", "", "", "v1", "pods", "binding", "resource", "apiserver"],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/web/log?follow=true",
                "",
                ["CONNECT", "", "", "v1", "pods", "log", "resource", "apiserver"],
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/pods/web/exec?command=ls",
                "",
                ["CONNECT", "", "", "v1", "pods", "exec", "resource", "apiserver"],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/web/portforward?ports=80",
                "",
                ["CONNECT", "", "", "v1", "pods", "portforward", "resource", "apiserver"],
            ),
            (Method::OPTIONS, "/api/v1/services", "", ["other", "", "", "v1", "services", "", "cluster", "apiserver"]),
            // Non-resource URLs: no group, resource or scope, and never the path.
            (Method::GET, "/apis", "", ["GET", "", "", "", "", "", "", "apiserver"]),
            (Method::GET, "/api/v1", "", ["GET", "", "", "", "", "", "", "apiserver"]),
            (Method::GET, "/openapi/v3/apis/apps/v1", "", ["GET", "", "", "", "", "", "", "apiserver"]),
            (Method::GET, "/version", "", ["GET", "", "", "", "", "", "", "apiserver"]),
            (Method::GET, "/metrics", "", ["GET", "", "", "", "", "", "", "apiserver"]),
            (Method::GET, "/api/v1/namespaces/default/nosuch/x", "", ["GET", "", "", "", "", "", "", "apiserver"]),
            (Method::POST, "/no/such/path", "", ["POST", "", "", "", "", "", "", "apiserver"]),
            // Upstream's health endpoints: the path as subresource, no component.
            (Method::GET, "/healthz", "", ["GET", "", "", "", "", "/healthz", "", ""]),
            (Method::GET, "/readyz", "", ["GET", "", "", "", "", "/readyz", "", ""]),
        ];
        for (method, path, content_type, expected) in cases {
            let l = labels(method.clone(), path, content_type);
            let got = [l.verb, l.dry_run, l.group, l.version, l.resource, l.subresource, l.scope, l.component];
            assert_eq!(got, expected, "{method} {path}");
        }
    }

    #[tokio::test]
    async fn records_requests_and_counts_objects_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db"), StoreConfig::default()).unwrap();
        for key in [
            "services/default/a",
            "services/kube-system/b",
            "deployments.apps/default/c",
            "allocation:clusterip/10.96.0.1",
        ] {
            store.commit(Batch::new().put(key, Precondition::Absent, Box::new(|_| json!({})))).await.unwrap();
        }
        let registry = frontdoor_metrics::Registry::default();
        let metrics = Metrics::new(&registry);
        let create = labels(Method::POST, "/api/v1/namespaces/default/services", "");
        metrics.record(&create, StatusCode::CREATED, Duration::from_millis(3));
        metrics.record(&create, StatusCode::CREATED, Duration::from_millis(30));
        metrics.record(
            &labels(Method::GET, "/api/v1/services?watch=true", ""),
            StatusCode::OK,
            Duration::from_secs(100),
        );

        let text = metrics.encode(&store);
        let created = r#"verb="POST",dry_run="",group="",version="v1",resource="services",subresource="",scope="resource",component="apiserver""#;
        assert!(text.contains(&format!("apiserver_request_total{{{created},code=\"201\"}} 2\n")), "{text}");
        assert!(
            text.contains(&format!("apiserver_request_duration_seconds_bucket{{le=\"0.005\",{created}}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("apiserver_request_duration_seconds_bucket{{le=\"0.05\",{created}}} 2\n")),
            "{text}"
        );
        assert!(text.contains(&format!("apiserver_request_duration_seconds_count{{{created}}} 2\n")), "{text}");
        // A watch is counted, but its duration is not a latency.
        assert!(text.contains(r#"apiserver_request_total{verb="WATCH",dry_run="",group="",version="v1",resource="services",subresource="",scope="cluster",component="apiserver",code="200"} 1"#), "{text}");
        assert!(
            !text.lines().any(|l| l.starts_with("apiserver_request_duration_seconds") && l.contains("WATCH")),
            "{text}"
        );
        for line in [
            "apiserver_storage_objects{resource=\"services\"} 2",
            "apiserver_storage_objects{resource=\"deployments.apps\"} 1",
            "apiserver_storage_objects{resource=\"pods\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
