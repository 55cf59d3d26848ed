//! CoreDNS's metrics, under its names, in the process's registry; served with `/health` and
//! `/ready` as CoreDNS's `prometheus`, `health` and `ready` plugins serve them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use frontdoor_informers::Shutdown;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    server: String,
    zone: String,
    proto: String,
    family: String,
    #[prometheus(flatten)]
    kind: TypeLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    server: String,
    zone: String,
    rcode: String,
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    server: String,
    zone: String,
    r#type: String,
}

#[derive(Clone)]
pub struct DnsMetrics {
    server: String,
    zone: String,
    requests: Family<RequestLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    durations: Family<DurationLabels, Histogram, fn() -> Histogram>,
}

/// What one request was and how it went, for the metrics.
pub struct Served<'a> {
    pub request: &'a [u8],
    pub response: Option<&'a [u8]>,
    pub tcp: bool,
    pub forwarded: bool,
    pub seconds: f64,
}

fn duration_histogram() -> Histogram {
    // CoreDNS: prometheus.ExponentialBuckets(0.00025, 2, 16).
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

impl DnsMetrics {
    pub fn register(registry: &frontdoor_metrics::Registry, server: String, zone: &str) -> DnsMetrics {
        let metrics = DnsMetrics {
            server,
            zone: format!("{}.", zone.trim_end_matches('.')),
            requests: Family::default(),
            responses: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
        };
        registry.register(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family.",
            metrics.requests.clone(),
        );
        registry.register("coredns_dns_responses", "Counter of response status codes.", metrics.responses.clone());
        registry.register(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone.",
            metrics.durations.clone(),
        );
        metrics
    }

    pub fn record(&self, served: &Served<'_>) {
        let zone = if served.forwarded { ".".to_string() } else { self.zone.clone() };
        let kind = question_type(served.request).to_string();
        let proto = if served.tcp { "tcp" } else { "udp" };
        self.requests
            .get_or_create(&RequestLabels {
                server: self.server.clone(),
                zone: zone.clone(),
                proto: proto.into(),
                family: "1".into(),
                kind: TypeLabel { r#type: kind.clone() },
            })
            .inc();
        self.durations
            .get_or_create(&DurationLabels { server: self.server.clone(), zone: zone.clone(), r#type: kind })
            .observe(served.seconds);
        let rcode = served.response.map_or("SERVFAIL", rcode_name);
        let plugin = if served.forwarded { "forward" } else { "kubernetes" };
        self.responses
            .get_or_create(&ResponseLabels {
                server: self.server.clone(),
                zone,
                rcode: rcode.into(),
                plugin: plugin.into(),
            })
            .inc();
    }
}

/// The question's type as CoreDNS labels it (uncommon types as "other").
fn question_type(request: &[u8]) -> &'static str {
    let mut at = 12;
    while let Some(&length) = request.get(at) {
        if length == 0 || length & 0xc0 != 0 {
            break;
        }
        at += usize::from(length) + 1;
    }
    let Some(bytes) = request.get(at + 1..at + 3) else { return "other" };
    match u16::from_be_bytes([bytes[0], bytes[1]]) {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        255 => "ANY",
        _ => "other",
    }
}

fn rcode_name(response: &[u8]) -> &'static str {
    match response.get(3).map(|flags| flags & 0x0f) {
        Some(0) => "NOERROR",
        Some(1) => "FORMERR",
        Some(2) => "SERVFAIL",
        Some(3) => "NXDOMAIN",
        Some(4) => "NOTIMP",
        Some(5) => "REFUSED",
        _ => "OTHER",
    }
}

/// Serves `/metrics` on `metrics` (CoreDNS's :9153), and `/health` and `/ready` on `health`
/// (200 once the index is being served), until shutdown.
pub async fn serve(
    metrics: SocketAddr,
    health: SocketAddr,
    registry: frontdoor_metrics::Registry,
    ready: Arc<AtomicBool>,
    shutdown: Shutdown,
) {
    use axum::http::{header, StatusCode};
    let metrics_app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = registry.encode();
            async move { ([(header::CONTENT_TYPE, frontdoor_metrics::CONTENT_TYPE)], text) }
        }),
    );
    let health_app = axum::Router::new().route("/health", axum::routing::get(|| async { "OK" })).route(
        "/ready",
        axum::routing::get(move || {
            let ready = ready.load(Ordering::Relaxed);
            async move {
                if ready {
                    (StatusCode::OK, "OK")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }
        }),
    );
    for (address, app) in [(metrics, metrics_app), (health, health_app)] {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => {
                let stop = shutdown.triggered();
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).with_graceful_shutdown(stop).await;
                });
            }
            Err(error) => tracing::warn!(%error, %address, "cluster DNS cannot serve its HTTP endpoints"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_types_and_rcodes() {
        // id, flags, counts, "a.b" A IN
        let query = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 1, b'b', 0, 0, 1, 0, 1];
        assert_eq!(question_type(&query), "A");
        let mut srv = query;
        srv[18] = 33;
        assert_eq!(question_type(&srv), "SRV");
        assert_eq!(question_type(&query[..15]), "other");
        assert_eq!(rcode_name(&[0, 1, 0x81, 0x83]), "NXDOMAIN");
        assert_eq!(rcode_name(&[0, 1, 0x81, 0x80]), "NOERROR");
    }
}
