//! ingress-nginx's request metrics, under its names, in the process's registry.
//!
//! `nginx_ingress_controller_requests` and `nginx_ingress_controller_request_duration_seconds`
//! carry ingress-nginx's labels (`internal/ingress/metric/collectors/socket.go`: status, method,
//! path, namespace, ingress, service, and host as with its default `--metrics-per-host`; canary
//! is dropped). Every label but status and method comes from the matched backend's id (the rule's
//! path and host as written), never from the request, so a client cannot grow the series; methods
//! outside the standard nine count as `OTHER`. Requests no rule matched count with empty labels.
//!
//! The hot path takes no lock and allocates nothing: each backend's series are resolved once per
//! route table (looked up by the backend's address in the table, which the index keeps alive;
//! the first request after a swap indexes the new table), and each (method, common status)
//! pair's handles once per backend. The duration histogram is
//! our own, of atomics (prometheus-client's takes a mutex per observation).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use frontdoor_ingress_routes::{Backend, HostMatch, RouteTable};
use http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// ingress-nginx's request labels (`requestTags` plus `host`), in its order.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    status: u16,
    method: &'static str,
    path: Arc<str>,
    namespace: Arc<str>,
    ingress: Arc<str>,
    service: Arc<str>,
    host: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    namespace: Arc<str>,
    ingress: Arc<str>,
    service: Arc<str>,
}

/// A count exposed under its name as given (ingress-nginx's `nginx_ingress_controller_requests`
/// has no `_total`, which OpenMetrics adds to every counter), typed `unknown` so the sample name
/// is the family's; `rate()` works on it as on a counter.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestCount(Arc<AtomicU64>);

impl RequestCount {
    fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl TypedMetric for RequestCount {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for RequestCount {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0.load(Ordering::Relaxed))
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Prometheus's default buckets, which ingress-nginx's `--time-buckets` defaults to.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A histogram of durations kept in atomics: one bucket count and the sum (in nanoseconds) per
/// observation, no lock.
#[derive(Clone, Debug, Default)]
pub(crate) struct LatencyHistogram(Arc<HistogramCells>);

#[derive(Debug, Default)]
struct HistogramCells {
    /// Per bucket (not cumulative), the last one `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS.len());
        self.0.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The encoder takes each bucket's own count and accumulates them itself.
        let mut total = 0;
        let mut buckets = [(0.0, 0); BUCKETS.len() + 1];
        for (at, count) in self.0.counts.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            total += count;
            buckets[at] = (BUCKETS.get(at).copied().unwrap_or(f64::INFINITY), count);
        }
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, total, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The methods that keep their name as a label value; others are `OTHER`.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// A request method as a label: an index into [`METHODS`], `METHODS.len()` for `OTHER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MethodLabel(usize);

impl MethodLabel {
    pub(crate) fn of(method: &Method) -> MethodLabel {
        MethodLabel(METHODS.iter().position(|known| known == method).unwrap_or(METHODS.len()))
    }

    pub(crate) fn as_str(self) -> &'static str {
        METHODS.get(self.0).map_or("OTHER", Method::as_str)
    }
}

/// Statuses whose series handles are kept per backend; others go through the family's map.
const COMMON_STATUSES: [u16; 24] = [
    200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413, 429, 500, 502, 503,
    504,
];

#[derive(Clone)]
struct Series {
    requests: RequestCount,
    duration: LatencyHistogram,
}

/// One backend's labels and its resolved series.
pub(crate) struct BackendSeries {
    labels: UpstreamLabels,
    path: Arc<str>,
    host: Arc<str>,
    /// `(method, common status)` → handles, allocated on the backend's first request.
    slots: OnceLock<Box<[OnceLock<Series>]>>,
    connect_failures: OnceLock<Counter>,
    retries: OnceLock<Counter>,
    families: Families,
}

impl BackendSeries {
    fn new(families: Families, namespace: &str, ingress: &str, service: &str, path: &str, host: &str) -> Self {
        BackendSeries {
            labels: UpstreamLabels { namespace: namespace.into(), ingress: ingress.into(), service: service.into() },
            path: path.into(),
            host: host.into(),
            slots: OnceLock::new(),
            connect_failures: OnceLock::new(),
            retries: OnceLock::new(),
            families,
        }
    }

    fn of_backend(families: Families, backend: &Backend) -> Self {
        let host = match &backend.id.host {
            HostMatch::Any => "",
            other => other.as_str(),
        };
        BackendSeries::new(
            families,
            &backend.id.source.namespace,
            &backend.id.source.name,
            &backend.service.name,
            backend.id.path_label(),
            host,
        )
    }

    /// `namespace/name` of the Ingress, for the access log.
    pub(crate) fn ingress(&self) -> (&str, &str) {
        (&self.labels.namespace, &self.labels.ingress)
    }

    pub(crate) fn service(&self) -> &str {
        &self.labels.service
    }

    fn labels(&self, method: MethodLabel, status: u16) -> RequestLabels {
        RequestLabels {
            status,
            method: method.as_str(),
            path: self.path.clone(),
            namespace: self.labels.namespace.clone(),
            ingress: self.labels.ingress.clone(),
            service: self.labels.service.clone(),
            host: self.host.clone(),
        }
    }

    fn series(&self, method: MethodLabel, status: u16) -> Series {
        let make = || {
            let labels = self.labels(method, status);
            Series {
                requests: self.families.requests.get_or_create(&labels).clone(),
                duration: self.families.durations.get_or_create(&labels).clone(),
            }
        };
        let Some(status_at) = COMMON_STATUSES.iter().position(|common| *common == status) else {
            return make();
        };
        let slots = self
            .slots
            .get_or_init(|| (0..(METHODS.len() + 1) * COMMON_STATUSES.len()).map(|_| OnceLock::new()).collect());
        slots[method.0 * COMMON_STATUSES.len() + status_at].get_or_init(make).clone()
    }

    /// One finished request.
    pub(crate) fn record(&self, method: MethodLabel, status: u16, elapsed: Duration) {
        let series = self.series(method, status);
        series.requests.inc();
        series.duration.observe(elapsed);
    }

    /// A connection to one of the backend's endpoints could not be made.
    pub(crate) fn connect_failed(&self) {
        self.connect_failures.get_or_init(|| self.families.connect_failures.get_or_create(&self.labels).clone()).inc();
    }

    /// A request one of the backend's endpoints failed after it was sent is sent to another.
    pub(crate) fn retried(&self) {
        self.retries.get_or_init(|| self.families.retries.get_or_create(&self.labels).clone()).inc();
    }
}

#[derive(Clone)]
struct Families {
    requests: Family<RequestLabels, RequestCount>,
    durations: Family<RequestLabels, LatencyHistogram>,
    connect_failures: Family<UpstreamLabels, Counter>,
    retries: Family<UpstreamLabels, Counter>,
}

/// Each backend's series for one route table.
struct SeriesIndex {
    /// Kept alive so that the backends' addresses stay theirs.
    table: Arc<RouteTable>,
    by_backend: HashMap<usize, Arc<BackendSeries>>,
}

/// The proxy's metrics.
pub(crate) struct IngressMetrics {
    families: Families,
    index: ArcSwap<SeriesIndex>,
    /// Held by the one request indexing a new table; the others meanwhile make their backend's
    /// series alone (the families give them the same values).
    indexing: Mutex<()>,
    unrouted: Arc<BackendSeries>,
}

fn backend_key(backend: &Backend) -> usize {
    std::ptr::from_ref(backend) as usize
}

impl IngressMetrics {
    pub(crate) fn register(registry: &frontdoor_metrics::Registry) -> IngressMetrics {
        let families = Families {
            requests: Family::default(),
            durations: Family::default(),
            connect_failures: Family::default(),
            retries: Family::default(),
        };
        registry.register(
            "nginx_ingress_controller_requests",
            "The total number of client requests",
            families.requests.clone(),
        );
        registry.register(
            "nginx_ingress_controller_request_duration_seconds",
            "The request processing time in seconds",
            families.durations.clone(),
        );
        registry.register(
            "frontdoor_ingress_upstream_connect_failures",
            "Connections to a backend's endpoints that could not be made (each is retried on another endpoint)",
            families.connect_failures.clone(),
        );
        registry.register(
            "frontdoor_ingress_upstream_retries",
            "Requests sent to an endpoint that failed before answering, sent again to another endpoint \
             (idempotent bodiless requests only; connections never made count as connect failures)",
            families.retries.clone(),
        );
        let unrouted = Arc::new(BackendSeries::new(families.clone(), "", "", "", "", ""));
        let index = ArcSwap::from_pointee(SeriesIndex { table: Arc::default(), by_backend: HashMap::new() });
        IngressMetrics { families, index, indexing: Mutex::new(()), unrouted }
    }

    /// The series of requests that matched no backend.
    pub(crate) fn unrouted(&self) -> &Arc<BackendSeries> {
        &self.unrouted
    }

    /// The series of `backend`, a backend of `table`.
    pub(crate) fn backend(&self, table: &Arc<RouteTable>, backend: &Backend) -> Arc<BackendSeries> {
        let index = self.index.load();
        if Arc::ptr_eq(&index.table, table) {
            if let Some(series) = index.by_backend.get(&backend_key(backend)) {
                return series.clone();
            }
        }
        drop(index);
        let alone = || Arc::new(BackendSeries::of_backend(self.families.clone(), backend));
        // A new table: one request indexes it, once per swap.
        let Ok(_indexing) = self.indexing.try_lock() else { return alone() };
        if Arc::ptr_eq(&self.index.load().table, table) {
            // Indexed meanwhile; a backend not in its own table is never expected.
            return self.index.load().by_backend.get(&backend_key(backend)).cloned().unwrap_or_else(alone);
        }
        let by_backend: HashMap<usize, Arc<BackendSeries>> = table
            .backends()
            .map(|each| (backend_key(each), Arc::new(BackendSeries::of_backend(self.families.clone(), each))))
            .collect();
        let series = by_backend.get(&backend_key(backend)).cloned().unwrap_or_else(alone);
        self.index.store(Arc::new(SeriesIndex { table: table.clone(), by_backend }));
        series
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_nine_are_other() {
        assert_eq!(MethodLabel::of(&Method::GET).as_str(), "GET");
        assert_eq!(MethodLabel::of(&Method::PATCH).as_str(), "PATCH");
        assert_eq!(MethodLabel::of(&Method::from_bytes(b"PROPFIND").unwrap()).as_str(), "OTHER");
    }

    #[test]
    fn series_are_named_and_labelled_as_ingress_nginx_s() {
        let registry = frontdoor_metrics::Registry::default();
        let metrics = IngressMetrics::register(&registry);
        let series = BackendSeries::new(metrics.families.clone(), "default", "web", "web-svc", "/api", "example.com");
        series.record(MethodLabel::of(&Method::GET), 200, Duration::from_millis(30));
        series.record(MethodLabel::of(&Method::GET), 200, Duration::from_millis(3));
        series.record(MethodLabel::of(&Method::from_bytes(b"BREW").unwrap()), 418, Duration::from_secs(20));
        series.connect_failed();
        series.retried();
        series.retried();
        let text = registry.encode();
        let labels = r#"status="200",method="GET",path="/api",namespace="default",ingress="web",service="web-svc",host="example.com""#;
        assert!(text.contains("# TYPE nginx_ingress_controller_requests unknown"), "{text}");
        assert!(text.contains(&format!("nginx_ingress_controller_requests{{{labels}}} 2\n")), "{text}");
        assert!(text.contains(r#"nginx_ingress_controller_requests{status="418",method="OTHER""#), "{text}");
        assert!(text.contains("# TYPE nginx_ingress_controller_request_duration_seconds histogram"), "{text}");
        assert!(
            text.contains(&format!(
                "nginx_ingress_controller_request_duration_seconds_bucket{{le=\"0.005\",{labels}}} 1\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "nginx_ingress_controller_request_duration_seconds_bucket{{le=\"0.05\",{labels}}} 2\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("nginx_ingress_controller_request_duration_seconds_count{{{labels}}} 2\n")),
            "{text}"
        );
        assert!(text.contains(r#"le="+Inf",status="418""#), "{text}");
        assert!(
            text.contains(
                r#"frontdoor_ingress_upstream_connect_failures_total{namespace="default",ingress="web",service="web-svc"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"frontdoor_ingress_upstream_retries_total{namespace="default",ingress="web",service="web-svc"} 2"#
            ),
            "{text}"
        );
    }
}
