//! frontdoor's Ingress proxy as a process of its own (the bench binary run as `ingress-proxy`),
//! pinned to core 0 with one worker thread: the route table compiled from 1,000 Ingresses (the
//! API objects, through the same `RouteTableBuilder` the controller uses), the certificate from
//! a `kubernetes.io/tls` Secret, access log off.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child as Process, Command, Stdio};
use std::sync::Arc;

use frontdoor_ingress::arc_swap::ArcSwap;
use frontdoor_ingress::{certified_key_from_secret, Certificates, IngressProxy, ProxyConfig};
use frontdoor_ingress_routes::{IngressClassConfig, RouteTableBuilder};
use serde_json::json;

use super::RULES;

pub const SUBCOMMAND: &str = "ingress-proxy";

/// Runs the proxy child, if this process is one; `true` if it was.
pub fn subcommand() -> bool {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(SUBCOMMAND) {
        return false;
    }
    let [cert, key, http, https, backends @ ..] = &args[2..] else {
        panic!("ingress-proxy CERT KEY HTTP HTTPS BACKEND...")
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    runtime.block_on(serve(cert, key, http.parse().unwrap(), https.parse().unwrap(), backends));
    true
}

fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid object")
}

async fn serve(cert: &str, key: &str, http: u16, https: u16, backends: &[String]) {
    let mut builder = RouteTableBuilder::new(IngressClassConfig::default());
    builder.apply_ingress_class(&parse(json!({
        "metadata": {"name": "frontdoor"}, "spec": {"controller": "frontdoor.dev/ingress"}
    })));
    builder.apply_service(&parse(json!({
        "metadata": {"namespace": "default", "name": "api"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    })));
    // One slice per backend port (a slice has one port list).
    for (i, backend) in backends.iter().enumerate() {
        builder.apply_slice(&parse(json!({
            "metadata": {"namespace": "default", "name": format!("api-{i}"), "labels": {"kubernetes.io/service-name": "api"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": backend.parse::<u16>().unwrap()}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        })));
    }
    let pem = |path: &str| k8s_openapi::ByteString(std::fs::read(path).expect("PEM file"));
    let mut secret: k8s_openapi::api::core::v1::Secret =
        parse(json!({"metadata": {"namespace": "default", "name": "tls"}, "type": "kubernetes.io/tls"}));
    secret.data = Some([("tls.crt".to_string(), pem(cert)), ("tls.key".to_string(), pem(key))].into());
    builder.apply_secret(&secret);
    for i in 0..RULES {
        builder.apply_ingress(&parse(json!({
            "metadata": {"namespace": "default", "name": format!("r{i}"), "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {
                "ingressClassName": "frontdoor",
                "tls": [{"hosts": [format!("h{i}.example.com")], "secretName": "tls"}],
                "rules": [{"host": format!("h{i}.example.com"), "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}
                ]}}]
            }
        })));
    }
    let compiled = builder.build();
    assert!(compiled.problems.is_empty(), "{:?}", compiled.problems);
    let mut certificates = Certificates::with_fake_default().expect("a default certificate");
    let secret_ref = compiled.table.secrets().next().expect("a Secret in the table").clone();
    certificates.insert(secret_ref, certified_key_from_secret(&secret).expect("a valid certificate"));
    let config = ProxyConfig {
        http: Some(([127, 0, 0, 1], http).into()),
        https: Some(([127, 0, 0, 1], https).into()),
        access_log: false,
        ..ProxyConfig::default()
    };
    let registry = frontdoor_metrics::Registry::default();
    let routes = Arc::new(ArcSwap::from_pointee(compiled.table));
    let proxy = IngressProxy::bind(config, routes, Arc::new(ArcSwap::from_pointee(certificates)), &registry)
        .await
        .expect("the proxy binds");
    let (_stop, shutdown) = frontdoor_informers::Shutdown::new();
    println!("ready");
    proxy.serve(shutdown).await.expect("the proxy serves");
}

/// The running child; killed when dropped.
pub struct Child(Process);

impl Child {
    pub fn start(bench_binary: &Path, cert: &Path, key: &Path, (http, https): (u16, u16), backends: &[u16]) -> Child {
        let mut command = Command::new("taskset");
        command.args(["-c", "0"]).arg(bench_binary).arg(SUBCOMMAND).arg(cert).arg(key);
        command.args([http.to_string(), https.to_string()]);
        command.args(backends.iter().map(u16::to_string));
        let mut process = command.stdout(Stdio::piped()).spawn().expect("the proxy child starts");
        let mut line = String::new();
        BufReader::new(process.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the proxy child did not start");
        Child(process)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
