//! `/metrics` through the real binary and kubectl: kube-apiserver's request counter, latency
//! histogram and stored-object gauge, with bounded labels.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use frontdoor_testkit::metrics::samples;
use frontdoor_testkit::Frontdoor;

/// The sum of the samples of `name` whose labels include all of `wanted` (0 when none).
fn total(text: &str, name: &str, wanted: &[(&str, &str)]) -> f64 {
    frontdoor_testkit::metrics::total(text, name, wanted).unwrap_or(0.0)
}

#[test]
fn metrics_count_requests_latencies_and_stored_objects() {
    let fd = Frontdoor::start(env!("CARGO_BIN_EXE_frontdoor").as_ref());
    fd.kubectl_ok("1.33", &["create", "service", "clusterip", "metrics-probe-a", "--tcp=80:8080"]);
    fd.kubectl_ok("1.33", &["create", "service", "clusterip", "metrics-probe-b", "--tcp=80:8080"]);
    let services = fd.kubectl_ok("1.33", &["get", "services", "--all-namespaces", "-o", "name"]).lines().count();
    assert!(services >= 3, "the kubernetes Service and two more: {services}");
    fd.kubectl_ok("1.33", &["get", "--raw", "/metrics"]);
    // The second read also shows the first one.
    let text = fd.kubectl_ok("1.33", &["get", "--raw", "/metrics"]);

    let created = [
        ("verb", "POST"),
        ("group", ""),
        ("version", "v1"),
        ("resource", "services"),
        ("subresource", ""),
        ("scope", "resource"),
        ("component", "apiserver"),
        ("code", "201"),
    ];
    assert!(total(&text, "apiserver_request_total", &created) >= 2.0, "{text}");
    let listed = [("verb", "LIST"), ("resource", "services"), ("scope", "cluster"), ("code", "200")];
    assert!(total(&text, "apiserver_request_total", &listed) >= 1.0, "{text}");
    let scraped =
        [("verb", "GET"), ("group", ""), ("resource", ""), ("scope", ""), ("component", "apiserver"), ("code", "200")];
    assert!(total(&text, "apiserver_request_total", &scraped) >= 1.0, "{text}");

    let timed = [("verb", "POST"), ("resource", "services"), ("scope", "resource"), ("le", "+Inf")];
    assert!(total(&text, "apiserver_request_duration_seconds_bucket", &timed) >= 2.0, "{text}");
    assert_eq!(total(&text, "apiserver_storage_objects", &[("resource", "services")]), services as f64, "{text}");
    assert_eq!(
        samples(&text, "apiserver_storage_objects")
            .iter()
            .filter(|(labels, _)| labels.get("resource") == Some(&"services"))
            .count(),
        1,
        "{text}"
    );

    // Labels come from the catalogue, never from a path or an object's name.
    assert!(!text.contains("metrics-probe"), "{text}");
    let health = ["/healthz", "/livez", "/readyz"];
    for name in ["apiserver_request_total", "apiserver_request_duration_seconds_bucket"] {
        for (labels, _) in samples(&text, name) {
            assert!(labels.values().all(|v| !v.contains('/') || health.contains(v)), "{labels:?}");
        }
    }

    // The controllers' work queues, in the same registry with client-go's names: creating the
    // Services queued their keys for the EndpointSlice and Endpoints controllers.
    for queue in ["endpoint_slice", "endpoint", "endpoint_slice_mirroring", "replicaset", "deployment", "statefulset"] {
        assert!(text.contains(&format!("workqueue_depth{{name=\"{queue}\"}}")), "no work queue {queue} in\n{text}");
    }
    for queue in ["endpoint_slice", "endpoint"] {
        let name = [("name", queue)];
        assert!(total(&text, "workqueue_adds_total", &name) >= 2.0, "{queue}: {text}");
        assert!(total(&text, "workqueue_work_duration_seconds_count", &name) >= 2.0, "{queue}: {text}");
        assert!(total(&text, "workqueue_queue_duration_seconds_count", &name) >= 2.0, "{queue}: {text}");
        assert!(samples(&text, "workqueue_retries_total").iter().any(|(labels, _)| labels.get("name") == Some(&queue)));
    }
}
