#![allow(clippy::unwrap_used)]
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use frontdoor_ingress::arc_swap::ArcSwap;
use frontdoor_ingress::{Certificates, IngressProxy, ProxyConfig};
use frontdoor_ingress_routes::{IngressClassConfig, RouteTableBuilder};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let backend_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let backend = backend_runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:18080").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(hyper::Response::new(http_body_util::Full::new(Bytes::from_static(b"hello world\n"))))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        address
    });
    runtime.block_on(async move {
        let mut builder = RouteTableBuilder::new(IngressClassConfig::default());
        builder.apply_ingress_class(&serde_json::from_value(json!({"metadata": {"name": "frontdoor"}, "spec": {"controller": "frontdoor.dev/ingress"}})).unwrap());
        builder.apply_service(&serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "web"}, "spec": {"ports": [{"name": "http", "port": 80}]}})).unwrap());
        builder.apply_slice(&serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "web-1", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4", "ports": [{"name": "http", "port": backend.port()}], "endpoints": [{"addresses": ["127.0.0.1"]}]})).unwrap());
        builder.apply_ingress(&serde_json::from_value(json!({"metadata": {"namespace": "default", "name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": {"ingressClassName": "frontdoor", "rules": [{"host": "web.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})).unwrap());
        let table = builder.build().table;
        let config = ProxyConfig { http: Some("127.0.0.1:18081".parse().unwrap()), https: Some("127.0.0.1:18443".parse().unwrap()), access_log: false, ..ProxyConfig::default() };
        let registry = frontdoor_metrics::Registry::default();
        let proxy = IngressProxy::bind(config, Arc::new(ArcSwap::from_pointee(table)), Arc::new(ArcSwap::from_pointee(Certificates::with_fake_default().unwrap())), &registry).await.unwrap();
        eprintln!("proxy on {:?} {:?}, backend {backend}", proxy.http_address(), proxy.https_address());
        proxy.serve(frontdoor_informers::Shutdown::never()).await.unwrap();
    });
}
