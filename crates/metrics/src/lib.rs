//! The one Prometheus registry of a frontdoor process. Every component registers its metrics
//! here (with upstream's names: `apiserver_*`, `workqueue_*`, later `kubeproxy_*` and
//! `coredns_*`), and the API server serves it at `/metrics`.
//!
//! A [`Registry`] is a cheap handle: clones share one registry. It owns no metric values; the
//! metrics themselves (`prometheus_client` counters, gauges, histograms and families) are
//! handles that their owners keep and update without going through the registry.
//!
//! Naming: `prometheus_client` appends `_total` to counters itself, so a counter exposed as
//! `apiserver_request_total` is registered as `apiserver_request`.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, PoisonError};

pub use prometheus_client;
use prometheus_client::registry::Metric;

/// The content type of [`Registry::encode`]'s text (OpenMetrics, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A shared handle on the process's metrics registry.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<prometheus_client::registry::Registry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

impl Registry {
    /// Registers `metric` as `name` (counters without their `_total` suffix).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).register(name, help, metric);
    }

    /// Every registered metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let registry = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        // Writing into a String cannot fail; a metric that cannot encode is left out.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Labels {
        name: String,
    }

    #[test]
    fn clones_share_one_registry_and_counters_gain_their_suffix() {
        let registry = Registry::default();
        let adds = Family::<Labels, Counter>::default();
        registry.clone().register("workqueue_adds", "Adds handled by a work queue", adds.clone());
        adds.get_or_create(&Labels { name: "endpoints".into() }).inc_by(3);
        let text = registry.encode();
        assert!(text.contains("workqueue_adds_total{name=\"endpoints\"} 3"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
