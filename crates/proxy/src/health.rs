//! kube-proxy's HTTP endpoints: a health-check NodePort per `externalTrafficPolicy: Local`
//! LoadBalancer Service (so the load balancer sends only to nodes with a local endpoint), the
//! proxy's own `/healthz` (port 10256) and `/metrics` (127.0.0.1:10249).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use frontdoor_informers::Shutdown;
use frontdoor_proxy_model::ServiceKey;

/// One health-check NodePort's listener and what it reports.
struct HealthCheck {
    service: ServiceKey,
    local_endpoints: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// The health-check NodePorts, reconciled after each sync.
#[derive(Default)]
pub struct HealthChecks {
    ports: HashMap<u16, HealthCheck>,
}

impl HealthChecks {
    /// Serves exactly `wanted` (port → Service and its local ready endpoints).
    pub async fn reconcile(&mut self, wanted: &HashMap<u16, (ServiceKey, usize)>, proxy_healthy: &Arc<AtomicBool>) {
        self.ports.retain(|port, check| {
            let keep = wanted.get(port).is_some_and(|(service, _)| service == &check.service);
            if !keep {
                check.task.abort();
            }
            keep
        });
        for (port, (service, count)) in wanted {
            if let Some(check) = self.ports.get(port) {
                check.local_endpoints.store(*count, Ordering::Relaxed);
                continue;
            }
            let listener = match tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, *port))).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, port, %service, "cannot serve the health-check node port");
                    continue;
                }
            };
            let local_endpoints = Arc::new(AtomicUsize::new(*count));
            let (counter, healthy, name) = (local_endpoints.clone(), proxy_healthy.clone(), service.clone());
            let app = axum::Router::new().fallback(move || {
                let (count, healthy, name) =
                    (counter.load(Ordering::Relaxed), healthy.load(Ordering::Relaxed), name.clone());
                async move { service_health(&name, count, healthy) }
            });
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            self.ports.insert(*port, HealthCheck { service: service.clone(), local_endpoints, task });
        }
    }

    pub fn stop(&mut self) {
        for (_, check) in self.ports.drain() {
            check.task.abort();
        }
    }
}

/// kube-proxy's answer: 200 with a local endpoint, 503 without.
fn service_health(service: &ServiceKey, local_endpoints: usize, proxy_healthy: bool) -> Response {
    let body = serde_json::json!({
        "service": {"namespace": service.namespace, "name": service.name},
        "localEndpoints": local_endpoints,
        "serviceProxyHealthy": proxy_healthy,
    });
    let status = if local_endpoints > 0 && proxy_healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::HeaderName::from_static("x-load-balancing-endpoint-weight"), local_endpoints.to_string()),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Serves `/healthz` and `/livez` (kube-proxy's port 10256) until shutdown.
pub async fn serve_healthz(address: SocketAddr, healthy: Arc<AtomicBool>, shutdown: Shutdown) {
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, %address, "cannot serve the proxy's /healthz");
            return;
        }
    };
    let handler = move || {
        let healthy = healthy.load(Ordering::Relaxed);
        async move {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let body = serde_json::json!({"lastUpdated": now, "currentTime": now, "nodeEligible": true});
            let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            (status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
        }
    };
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(handler.clone()))
        .route("/livez", axum::routing::get(handler));
    let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown.triggered()).await;
}

/// Serves `/metrics` (kube-proxy's 127.0.0.1:10249) until shutdown.
pub async fn serve_metrics(address: SocketAddr, registry: frontdoor_metrics::Registry, shutdown: Shutdown) {
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, %address, "cannot serve the proxy's /metrics");
            return;
        }
    };
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = registry.encode();
            async move { ([(header::CONTENT_TYPE, frontdoor_metrics::CONTENT_TYPE)], text) }
        }),
    );
    let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown.triggered()).await;
}
