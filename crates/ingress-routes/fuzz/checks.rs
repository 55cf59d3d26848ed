// The properties the fuzz target checks, shared with the corpus replay test
// (`crates/ingress-routes/tests/fuzz_corpus.rs`), which `include!`s this file.

use frontdoor_ingress_routes::{IngressClassConfig, Route, RouteTableBuilder};
use serde_json::json;

/// At most this many rules from one input.
const MAX_RULES: usize = 6;
const PATH_TYPES: [&str; 3] = ["Exact", "Prefix", "ImplementationSpecific"];

macro_rules! parse {
    ($value:expr) => {
        serde_json::from_value($value).expect("a valid object")
    };
}

/// A builder with our class, Service `api` (port 80 → 8080) and one ready endpoint.
fn builder() -> RouteTableBuilder {
    let mut builder = RouteTableBuilder::new(IngressClassConfig::default());
    builder.apply_ingress_class(&parse!(json!({
        "metadata": {"name": "frontdoor"}, "spec": {"controller": "frontdoor.dev/ingress"}
    })));
    builder.apply_service(&parse!(json!({
        "metadata": {"namespace": "default", "name": "api"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    })));
    builder.apply_slice(&parse!(json!({
        "metadata": {"namespace": "default", "name": "api-1", "labels": {"kubernetes.io/service-name": "api"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true}}],
    })));
    builder
}

/// One Ingress of our class with one rule (`host` empty: host-less) and a TLS entry for it.
fn ingress(index: usize, host: &str, path: &str, path_type: &str) -> k8s_openapi::api::networking::v1::Ingress {
    let mut rule = json!({"http": {"paths": [
        {"path": path, "pathType": path_type, "backend": {"service": {"name": "api", "port": {"number": 80}}}}
    ]}});
    if !host.is_empty() {
        rule["host"] = json!(host);
    }
    parse!(json!({
        "metadata": {"namespace": "default", "name": format!("r{index}"),
                     "creationTimestamp": format!("2026-01-01T00:00:{:02}Z", index % 60)},
        "spec": {"ingressClassName": "frontdoor", "tls": [{"hosts": [host], "secretName": "tls"}], "rules": [rule]}
    }))
}

/// Whether the API server would accept `host` as a rule's host (a lowercase DNS-1123
/// subdomain, or `*.` and one) and `path` as an Exact path that a request can name.
fn well_formed(host: &str, path: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let host_ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(label);
    let path_ok = path.starts_with('/')
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#' && b != b'%')
        && !["//", "/./", "/../"].iter().any(|bad| path.contains(bad))
        && !path.ends_with("/..")
        && !path.ends_with("/.");
    host_ok && path_ok
}

/// Fields separated by `0xff`: rules as (host, path, path type) triples after a first field
/// whose length is how many, then requests as (host, path) pairs.
pub fn check_route(data: &[u8]) {
    let mut fields = data.split(|b| *b == 0xff).map(|f| String::from_utf8_lossy(f).into_owned());
    let count = fields.next().map_or(0, |f| f.len()) % (MAX_RULES + 1);
    let mut rules = Vec::new();
    for _ in 0..count {
        let (Some(host), Some(path), Some(kind)) = (fields.next(), fields.next(), fields.next()) else { break };
        rules.push((host, path, PATH_TYPES[kind.len() % PATH_TYPES.len()]));
    }

    let mut all = builder();
    for (index, (host, path, kind)) in rules.iter().enumerate() {
        all.apply_ingress(&ingress(index, host, path, kind));
    }
    let compiled = all.build();
    let requests: Vec<String> = fields.collect();
    for pair in requests.chunks(2) {
        let (host, path) = (&pair[0], pair.get(1).map_or("/", String::as_str));
        if let Route::Backend(backend) = compiled.table.route(host, path) {
            assert!(!backend.endpoints.is_empty(), "a Backend route without endpoints");
        }
        let _ = compiled.table.tls_for(host);
    }

    // Alone in its table, a well-formed Exact rule answers its own host and path.
    if let Some((host, path, "Exact")) = rules.first().map(|(h, p, k)| (h.as_str(), p.as_str(), *k)) {
        if well_formed(host, path) && !host.starts_with("*.") {
            let mut alone = builder();
            alone.apply_ingress(&ingress(0, host, path, "Exact"));
            let compiled = alone.build();
            match compiled.table.route(host, path) {
                Route::Backend(backend) => assert_eq!(backend.id.path_label(), path),
                other => panic!("{host} {path}: {other:?} ({:?})", compiled.problems),
            }
        }
    }
}
