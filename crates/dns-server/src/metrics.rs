//! CoreDNS's metrics, under its names, in the process's registry; served with `/health` and
//! `/ready` as CoreDNS's `prometheus`, `health` and `ready` plugins serve them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use frontdoor_dns::{CacheKind, Stored};

use frontdoor_informers::Shutdown;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    server: String,
    r#type: String,
    zones: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheZoneLabels {
    server: String,
    zones: String,
}

/// Which part of the server answered, for the `zone` and `plugin` labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// The cluster's zones (`kubernetes`).
    Cluster,
    /// Another name: the cache or an upstream (`forward`).
    Forwarded,
    /// A client the server does not serve (`acl`).
    Refused,
}

const TYPES: [&str; 11] = ["A", "NS", "CNAME", "SOA", "PTR", "MX", "TXT", "AAAA", "SRV", "ANY", "other"];
const RCODES: [&str; 7] = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "OTHER"];
const PATHS: usize = 3;

/// Handles to series, made on first use: the hot path neither allocates labels nor hashes.
struct Slots<T>(Box<[OnceLock<T>]>);

impl<T: Clone> Slots<T> {
    fn new(len: usize) -> Self {
        Slots((0..len).map(|_| OnceLock::new()).collect())
    }

    fn get(&self, at: usize, make: impl FnOnce() -> T) -> T {
        self.0[at].get_or_init(make).clone()
    }
}

struct Handles {
    requests: Slots<Counter>,
    durations: Slots<Histogram>,
    responses: Slots<Counter>,
}

#[derive(Clone)]
pub struct DnsMetrics {
    server: String,
    zone: String,
    requests: Family<RequestLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    durations: Family<DurationLabels, Histogram, fn() -> Histogram>,
    handles: Arc<Handles>,
    cache_entries: [Gauge; 2],
    cache_requests: Counter,
    cache_hits: [Counter; 2],
    cache_misses: Counter,
    cache_evictions: [Counter; 2],
}

/// What one request was and how it went, for the metrics.
pub struct Served<'a> {
    pub request: &'a [u8],
    pub response: Option<&'a [u8]>,
    pub tcp: bool,
    pub path: Path,
    pub seconds: f64,
}

fn duration_histogram() -> Histogram {
    // CoreDNS: prometheus.ExponentialBuckets(0.00025, 2, 16).
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

impl DnsMetrics {
    pub fn register(registry: &frontdoor_metrics::Registry, server: String, zone: &str) -> DnsMetrics {
        let handles = Handles {
            requests: Slots::new(PATHS * 2 * TYPES.len()),
            durations: Slots::new(PATHS * TYPES.len()),
            responses: Slots::new(PATHS * RCODES.len()),
        };
        let cache_requests = Family::<CacheZoneLabels, Counter>::default();
        let cache_misses = Family::<CacheZoneLabels, Counter>::default();
        let cache_hits = Family::<CacheLabels, Counter>::default();
        let cache_evictions = Family::<CacheLabels, Counter>::default();
        let cache_entries = Family::<CacheLabels, Gauge>::default();
        let zones = CacheZoneLabels { server: server.clone(), zones: ".".into() };
        // One series per kind, in `CacheKind` order.
        fn by_kind<M: Clone + Default>(family: &Family<CacheLabels, M>, server: &str) -> [M; 2] {
            ["success", "denial"].map(|kind| {
                let labels = CacheLabels { server: server.to_string(), r#type: kind.into(), zones: ".".into() };
                family.get_or_create(&labels).clone()
            })
        }
        let metrics = DnsMetrics {
            zone: format!("{}.", zone.trim_end_matches('.')),
            requests: Family::default(),
            responses: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            handles: Arc::new(handles),
            cache_entries: by_kind(&cache_entries, &server),
            cache_requests: cache_requests.get_or_create(&zones).clone(),
            cache_hits: by_kind(&cache_hits, &server),
            cache_misses: cache_misses.get_or_create(&zones).clone(),
            cache_evictions: by_kind(&cache_evictions, &server),
            server,
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
        registry.register("coredns_cache_entries", "The number of elements in the cache.", cache_entries);
        registry.register("coredns_cache_requests", "The count of cache requests.", cache_requests);
        registry.register("coredns_cache_hits", "The count of cache hits.", cache_hits);
        registry.register(
            "coredns_cache_misses",
            "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
            cache_misses,
        );
        registry.register("coredns_cache_evictions", "The count of cache evictions.", cache_evictions);
        metrics
    }

    pub fn cache_hit(&self, kind: CacheKind) {
        self.cache_requests.inc();
        self.cache_hits[kind as usize].inc();
    }

    pub fn cache_miss(&self) {
        self.cache_requests.inc();
        self.cache_misses.inc();
    }

    /// After a store: the entries held, and an eviction if one made room.
    pub fn cache_stored(&self, stored: Stored, (success, denial): (usize, usize)) {
        if let Stored::Yes { kind, evicted: true } = stored {
            self.cache_evictions[kind as usize].inc();
        }
        self.cache_entries[CacheKind::Success as usize].set(success as i64);
        self.cache_entries[CacheKind::Denial as usize].set(denial as i64);
    }

    pub fn record(&self, served: &Served<'_>) {
        let path = served.path as usize;
        let zone = || if served.path == Path::Cluster { self.zone.clone() } else { ".".to_string() };
        let kind = question_type(served.request);
        let proto = usize::from(served.tcp);
        self.handles
            .requests
            .get((path * 2 + proto) * TYPES.len() + kind, || {
                self.requests
                    .get_or_create(&RequestLabels {
                        server: self.server.clone(),
                        zone: zone(),
                        proto: ["udp", "tcp"][proto].into(),
                        family: "1".into(),
                        kind: TypeLabel { r#type: TYPES[kind].into() },
                    })
                    .clone()
            })
            .inc();
        self.handles
            .durations
            .get(path * TYPES.len() + kind, || {
                self.durations
                    .get_or_create(&DurationLabels {
                        server: self.server.clone(),
                        zone: zone(),
                        r#type: TYPES[kind].into(),
                    })
                    .clone()
            })
            .observe(served.seconds);
        let rcode = served.response.map_or(2, rcode_index);
        self.handles
            .responses
            .get(path * RCODES.len() + rcode, || {
                self.responses
                    .get_or_create(&ResponseLabels {
                        server: self.server.clone(),
                        zone: zone(),
                        rcode: RCODES[rcode].into(),
                        plugin: ["kubernetes", "forward", "acl"][path].into(),
                    })
                    .clone()
            })
            .inc();
    }
}

/// The question's type as CoreDNS labels it (uncommon types as "other"): an index in `TYPES`.
fn question_type(request: &[u8]) -> usize {
    let other = TYPES.len() - 1;
    let mut at = 12;
    while let Some(&length) = request.get(at) {
        if length == 0 || length & 0xc0 != 0 {
            break;
        }
        at += usize::from(length) + 1;
    }
    let Some(bytes) = request.get(at + 1..at + 3) else { return other };
    match u16::from_be_bytes([bytes[0], bytes[1]]) {
        1 => 0,
        2 => 1,
        5 => 2,
        6 => 3,
        12 => 4,
        15 => 5,
        16 => 6,
        28 => 7,
        33 => 8,
        255 => 9,
        _ => other,
    }
}

/// The response's rcode: an index in `RCODES`.
fn rcode_index(response: &[u8]) -> usize {
    response.get(3).map_or(RCODES.len() - 1, |flags| usize::from(flags & 0x0f).min(RCODES.len() - 1))
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
        assert_eq!(TYPES[question_type(&query)], "A");
        let mut srv = query;
        srv[18] = 33;
        assert_eq!(TYPES[question_type(&srv)], "SRV");
        assert_eq!(TYPES[question_type(&query[..15])], "other");
        assert_eq!(RCODES[rcode_index(&[0, 1, 0x81, 0x83])], "NXDOMAIN");
        assert_eq!(RCODES[rcode_index(&[0, 1, 0x81, 0x80])], "NOERROR");
        assert_eq!(RCODES[rcode_index(&[0, 1, 0x81, 0x8b])], "OTHER");
    }
}
