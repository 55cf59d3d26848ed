//! kube-proxy's metrics, under its names, in the process's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrafficPolicy {
    traffic_policy: String,
}

#[derive(Clone)]
pub struct ProxyMetrics {
    pub sync_duration: Histogram,
    pub full_sync_duration: Histogram,
    pub partial_sync_duration: Histogram,
    pub network_programming: Histogram,
    pub sync_failures: Counter,
    pub last_sync: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub no_local_endpoints: Family<TrafficPolicy, Gauge>,
    pub service_changes: Counter,
    pub endpoint_changes: Counter,
}

/// kube-proxy's `network_programming_duration_seconds` buckets (0.25 s … 5 min), with finer
/// ones below 0.25 s where this proxy's figures lie.
fn programming_buckets() -> Vec<f64> {
    let mut buckets: Vec<f64> = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1].to_vec();
    buckets.extend([0.25, 0.5]);
    buckets.extend((1..=59).map(f64::from));
    buckets.extend((0..12).map(|i| 60.0 + 5.0 * f64::from(i)));
    buckets.extend((0..7).map(|i| 120.0 + 30.0 * f64::from(i)));
    buckets
}

impl ProxyMetrics {
    pub fn register(registry: &frontdoor_metrics::Registry) -> ProxyMetrics {
        // kube-proxy: ExponentialBuckets(0.001, 2, 15).
        let sync = || Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let metrics = ProxyMetrics {
            sync_duration: sync(),
            full_sync_duration: sync(),
            partial_sync_duration: sync(),
            network_programming: Histogram::new(programming_buckets()),
            sync_failures: Counter::default(),
            last_sync: Gauge::default(),
            no_local_endpoints: Family::default(),
            service_changes: Counter::default(),
            endpoint_changes: Counter::default(),
        };
        let m = metrics.clone();
        registry.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            m.sync_duration,
        );
        registry.register(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            m.full_sync_duration,
        );
        registry.register(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            m.partial_sync_duration,
        );
        registry.register(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            m.network_programming,
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures",
            "Number of failed nftables syncs",
            m.sync_failures,
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            m.last_sync,
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_no_local_endpoints",
            "Number of services with a Local traffic policy and no endpoints",
            m.no_local_endpoints,
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_service_changes",
            "Cumulative proxy rules Service changes",
            m.service_changes,
        );
        registry.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes",
            "Cumulative proxy rules Endpoint changes",
            m.endpoint_changes,
        );
        metrics
    }

    pub fn set_no_local_endpoints(&self, internal: i64, external: i64) {
        self.no_local_endpoints.get_or_create(&TrafficPolicy { traffic_policy: "internal".into() }).set(internal);
        self.no_local_endpoints.get_or_create(&TrafficPolicy { traffic_policy: "external".into() }).set(external);
    }
}
