//! Table-driven tests of the whole path: objects in, table built, requests routed.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde_json::{json, Value};

use crate::*;

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-02T00:00:00Z";
const T2: &str = "2024-01-03T00:00:00Z";

fn ingress_with(namespace: &str, name: &str, created: &str, metadata: Value, spec: Value) -> Ingress {
    let mut meta = json!({"namespace": namespace, "name": name, "creationTimestamp": created});
    if let (Some(meta), Value::Object(extra)) = (meta.as_object_mut(), metadata) {
        meta.extend(extra);
    }
    serde_json::from_value(json!({"metadata": meta, "spec": spec})).unwrap()
}

/// An Ingress of our class.
fn ingress(namespace: &str, name: &str, created: &str, mut spec: Value) -> Ingress {
    spec["ingressClassName"] = json!("frontdoor");
    ingress_with(namespace, name, created, json!({}), spec)
}

fn backend(service: &str) -> Value {
    json!({"service": {"name": service, "port": {"number": 80}}})
}

fn path(path: &str, path_type: &str, service: &str) -> Value {
    json!({"path": path, "pathType": path_type, "backend": backend(service)})
}

fn rule(host: &str, paths: Vec<Value>) -> Value {
    if host.is_empty() {
        json!({"http": {"paths": paths}})
    } else {
        json!({"host": host, "http": {"paths": paths}})
    }
}

fn class(name: &str, controller: &str) -> IngressClass {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"controller": controller}})).unwrap()
}

fn service(namespace: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": namespace, "name": name}, "spec": spec})).unwrap()
}

fn slice(
    namespace: &str,
    name: &str,
    service: &str,
    address_type: &str,
    ports: Value,
    endpoints: Value,
) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"namespace": namespace, "name": name, "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": address_type,
        "ports": ports,
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn tls_secret(namespace: &str, name: &str, complete: bool) -> Secret {
    let data =
        if complete { json!({"tls.crt": "Y2VydA==", "tls.key": "a2V5"}) } else { json!({"tls.crt": "Y2VydA=="}) };
    serde_json::from_value(json!({
        "metadata": {"namespace": namespace, "name": name}, "type": "kubernetes.io/tls", "data": data
    }))
    .unwrap()
}

/// A builder with our IngressClass and a helper to add Services that have one ready endpoint.
struct World {
    builder: RouteTableBuilder,
    next_ip: u8,
}

impl World {
    fn new() -> Self {
        let mut builder = RouteTableBuilder::new(IngressClassConfig::default());
        builder.apply_ingress_class(&class("frontdoor", "frontdoor.dev/ingress"));
        World { builder, next_ip: 1 }
    }

    /// Service `name` in `default`: port 80 `http` → 8080 on one ready endpoint.
    fn serve(&mut self, name: &str) {
        let ip = format!("10.1.0.{}", self.next_ip);
        self.next_ip += 1;
        self.builder.apply_service(&service("default", name, json!({"ports": [{"name": "http", "port": 80}]})));
        self.builder.apply_slice(&slice(
            "default",
            &format!("{name}-abc"),
            name,
            "IPv4",
            json!([{"name": "http", "port": 8080}]),
            json!([{"addresses": [ip]}]),
        ));
    }

    fn add(&mut self, ingress: Ingress) {
        self.builder.apply_ingress(&ingress);
    }

    fn build(&self) -> CompiledRoutes {
        self.builder.build()
    }
}

/// Where a request goes: the backend Service's name, `503:<name>`, or `404`.
fn target(table: &RouteTable, host: &str, path: &str) -> String {
    match table.route(host, path) {
        Route::Backend(backend) => backend.service.name.clone(),
        Route::NoEndpoints(backend) => format!("503:{}", backend.service.name),
        Route::NotFound => "404".to_string(),
    }
}

fn problems(compiled: &CompiledRoutes) -> Vec<String> {
    compiled
        .problems
        .iter()
        .map(|p| format!("{}/{} {}: {}", p.source.namespace, p.source.name, p.reason, p.message))
        .collect()
}

#[test]
fn every_row_of_the_specifications_path_examples() {
    // (paths as (path, type), request, the index of the path that serves it).
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<usize>);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (&[("/", "Prefix")], "/", Some(0)),
        (&[("/", "Prefix")], "/anything/at/all", Some(0)),
        (&[("/foo", "Exact")], "/foo", Some(0)),
        (&[("/foo", "Exact")], "/bar", None),
        (&[("/foo", "Exact")], "/foo/", None),
        (&[("/foo/", "Exact")], "/foo", None),
        (&[("/foo", "Prefix")], "/foo", Some(0)),
        (&[("/foo", "Prefix")], "/foo/", Some(0)),
        (&[("/foo/", "Prefix")], "/foo", Some(0)),
        (&[("/foo/", "Prefix")], "/foo/", Some(0)),
        (&[("/aaa/bb", "Prefix")], "/aaa/bbb", None),
        (&[("/aaa/bbb", "Prefix")], "/aaa/bbb", Some(0)),
        (&[("/aaa/bbb/", "Prefix")], "/aaa/bbb", Some(0)),
        (&[("/aaa/bbb", "Prefix")], "/aaa/bbb/", Some(0)),
        (&[("/aaa/bbb", "Prefix")], "/aaa/bbb/ccc", Some(0)),
        (&[("/aaa/bbb", "Prefix")], "/aaa/bbbxyz", None),
        (&[("/", "Prefix"), ("/aaa", "Prefix")], "/aaa/ccc", Some(1)),
        (&[("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")], "/aaa/bbb", Some(2)),
        (&[("/", "Prefix"), ("/aaa", "Prefix"), ("/aaa/bbb", "Prefix")], "/ccc", Some(0)),
        (&[("/aaa", "Prefix")], "/ccc", None),
        (&[("/foo", "Prefix"), ("/foo", "Exact")], "/foo", Some(1)),
        // The issue's cases, and more of the same rules.
        (&[("/foo/bar", "Prefix")], "/foo/bar/", Some(0)),
        (&[("/api", "Prefix")], "/api", Some(0)),
        (&[("/api", "Prefix")], "/api/x", Some(0)),
        (&[("/api", "Prefix")], "/apix", None),
        (&[("/api", "ImplementationSpecific")], "/api/x", Some(0)),
        (&[("/api", "ImplementationSpecific")], "/apix", None),
        (&[("/Foo", "Prefix")], "/foo", None),
        (&[("/foo", "Exact")], "/foo?x=1", Some(0)),
        (&[("/foo", "Prefix")], "/foo//bar", Some(0)),
        (&[("/", "Prefix"), ("/foo/bar", "Exact")], "/foo/bar/", Some(0)),
        (&[("/foo/bar", "Prefix"), ("/foo", "Exact")], "/foo/bar", Some(0)),
        (&[("/foo", "Prefix"), ("/foo/bar", "Exact")], "/foo/bar", Some(1)),
        (&[("/foo", "Exact"), ("/foo/", "Prefix")], "/foo", Some(0)),
        (&[("/foo", "Exact"), ("/foo/", "Prefix")], "/foo/x", Some(1)),
    ];
    for (paths, request, expected) in cases {
        let mut world = World::new();
        let rules: Vec<Value> = paths
            .iter()
            .enumerate()
            .map(|(i, (p, t))| {
                world.serve(&format!("s{i}"));
                path(p, t, &format!("s{i}"))
            })
            .collect();
        world.add(ingress("default", "paths", T0, json!({"rules": [rule("example.com", rules)]})));
        let compiled = world.build();
        let expected = expected.map_or("404".to_string(), |i| format!("s{i}"));
        assert_eq!(target(&compiled.table, "example.com", request), expected, "paths {paths:?}, request {request}");
        assert_eq!(problems(&compiled), Vec::<String>::new(), "paths {paths:?}");
    }
}

#[test]
fn hosts_match_case_insensitively_and_wildcards_cover_one_label() {
    let mut world = World::new();
    for name in ["exact", "wild", "other-exact", "any"] {
        world.serve(name);
    }
    world.add(ingress(
        "default",
        "hosts",
        T0,
        json!({"rules": [
            rule("foo.bar.com", vec![path("/", "Prefix", "exact")]),
            rule("*.foo.com", vec![path("/", "Prefix", "wild")]),
            rule("x.foo.com", vec![path("/only", "Exact", "other-exact")]),
            rule("", vec![path("/", "Prefix", "any")]),
            // A host without paths is still a host of its own: the host-less rules do not serve it.
            json!({"host": "claimed.com"}),
        ]}),
    ));
    let table = world.build().table;
    let cases = [
        ("foo.bar.com", "/", "exact"),
        ("FOO.Bar.COM", "/", "exact"),
        ("foo.bar.com:8080", "/", "exact"),
        ("foo.bar.com.", "/", "exact"),
        ("bar.foo.com", "/", "wild"),
        ("BAR.foo.com:443", "/", "wild"),
        // The wildcard covers exactly one label.
        ("baz.bar.foo.com", "/", "any"),
        ("foo.com", "/", "any"),
        // An exact host goes before the wildcard, and its rules alone are searched.
        ("x.foo.com", "/only", "other-exact"),
        ("x.foo.com", "/elsewhere", "404"),
        ("claimed.com", "/", "404"),
        ("unknown.example", "/", "any"),
        ("10.0.0.1:80", "/", "any"),
        ("[::1]:80", "/", "any"),
        ("", "/", "any"),
    ];
    for (host, request, expected) in cases {
        assert_eq!(target(&table, host, request), expected, "{host} {request}");
    }
}

#[test]
fn rules_merge_across_ingresses_in_precedence_order() {
    let mut world = World::new();
    for name in ["old", "new", "exact", "root", "deep", "alpha", "beta", "slash", "noslash", "dup1", "dup2"] {
        world.serve(name);
    }
    world.add(ingress("default", "new", T1, json!({"rules": [rule("a.com", vec![path("/api", "Prefix", "new")])]})));
    world.add(ingress("default", "old", T0, json!({"rules": [rule("a.com", vec![path("/api", "Prefix", "old")])]})));
    // Across Ingresses: Exact beats Prefix on a tie; the longest Prefix wins.
    world.add(ingress("default", "exact", T2, json!({"rules": [rule("a.com", vec![path("/api", "Exact", "exact")])]})));
    world.add(ingress("default", "root", T2, json!({"rules": [rule("a.com", vec![path("/", "Prefix", "root")])]})));
    world.add(ingress("other", "deep", T2, json!({"rules": [rule("a.com", vec![path("/api/v1", "Prefix", "deep")])]})));
    // Same age: namespace/name decides.
    world.add(ingress("default", "beta", T0, json!({"rules": [rule("b.com", vec![path("/", "Prefix", "beta")])]})));
    world.add(ingress("default", "alpha", T0, json!({"rules": [rule("b.com", vec![path("/", "Prefix", "alpha")])]})));
    // `/foo/` is the longer of two equal Prefix paths, whatever the ages.
    world.add(ingress(
        "default",
        "noslash",
        T0,
        json!({"rules": [rule("c.com", vec![path("/foo", "Prefix", "noslash")])]}),
    ));
    world.add(ingress(
        "default",
        "slash",
        T1,
        json!({"rules": [rule("c.com", vec![path("/foo/", "Prefix", "slash")])]}),
    ));
    // One Ingress naming one path twice keeps the first.
    world.add(ingress(
        "default",
        "dup",
        T0,
        json!({"rules": [rule("d.com", vec![path("/x", "Exact", "dup1")]), rule("d.com", vec![path("/x", "Exact", "dup2")])]}),
    ));
    let compiled = world.build();
    let table = &compiled.table;
    let cases = [
        ("a.com", "/api", "exact"),
        ("a.com", "/api/", "old"),
        ("a.com", "/api/x", "old"),
        ("a.com", "/api/v1/users", "503:deep"), // its Service is in namespace `other`, which has none
        ("a.com", "/apix", "root"),
        ("b.com", "/", "alpha"),
        ("c.com", "/foo", "slash"),
        ("d.com", "/x", "dup1"),
    ];
    for (host, request, expected) in cases {
        assert_eq!(target(table, host, request), expected, "{host} {request}");
    }
    assert_eq!(
        problems(&compiled),
        vec![
            "default/beta PathConflict: path / (Prefix) of host b.com is already served by Ingress default/alpha",
            "default/dup PathConflict: path /x (Exact) of host d.com is already served by Ingress default/dup",
            "default/new PathConflict: path /api (Prefix) of host a.com is already served by Ingress default/old",
            "default/noslash PathConflict: path /foo (Prefix) of host c.com is already served by Ingress default/slash",
            "other/deep ServiceNotFound: Service other/deep not found",
        ]
    );
    // A backend's id names the rule it serves.
    let Route::Backend(served) = table.route("a.com", "/api/x") else { panic!("routed") };
    assert_eq!(
        served.id,
        BackendId {
            source: RouteSource::ingress("default", "old"),
            host: HostMatch::Exact("a.com".into()),
            path: Some(PathMatch::Prefix("/api".into())),
        }
    );
    assert_eq!(served.id.path_label(), "/api");
}

#[test]
fn default_backends_serve_their_ingresses_hosts_and_a_rule_less_one_serves_the_rest() {
    let mut world = World::new();
    for name in
        ["catch-all", "late-catch-all", "rules", "b-default", "b2-default", "b-path", "anyhost", "anyhost-default"]
    {
        world.serve(name);
    }
    // Without any default backend, unmatched requests are 404.
    world.add(ingress("default", "rules", T0, json!({"rules": [rule("a.com", vec![path("/x", "Exact", "rules")])]})));
    assert_eq!(target(&world.build().table, "other.com", "/"), "404");
    assert_eq!(target(&world.build().table, "a.com", "/y"), "404");

    world.add(ingress("default", "catch-all", T1, json!({"defaultBackend": backend("catch-all")})));
    world.add(ingress("default", "late-catch-all", T2, json!({"defaultBackend": backend("late-catch-all")})));
    world.add(ingress(
        "default",
        "b",
        T0,
        json!({"defaultBackend": backend("b-default"), "rules": [rule("b.com", vec![path("/p", "Prefix", "b-path")])]}),
    ));
    world.add(ingress(
        "default",
        "b2",
        T1,
        json!({"defaultBackend": backend("b2-default"), "rules": [rule("b.com", vec![path("/q", "Prefix", "b-path")])]}),
    ));
    world.add(ingress(
        "default",
        "anyhost",
        T0,
        json!({"defaultBackend": backend("anyhost-default"), "rules": [rule("", vec![path("/any", "Prefix", "anyhost")])]}),
    ));
    let compiled = world.build();
    let table = &compiled.table;
    let cases = [
        ("a.com", "/x", "rules"),
        // A host named by rules is served by its Ingresses' default backend only (none here).
        ("a.com", "/y", "404"),
        ("b.com", "/p/1", "b-path"),
        ("b.com", "/q", "b-path"),
        ("b.com", "/elsewhere", "b-default"),
        ("other.com", "/any/thing", "anyhost"),
        // The rule-less Ingress's default goes before that of the Ingress with host-less rules.
        ("other.com", "/", "catch-all"),
    ];
    for (host, request, expected) in cases {
        assert_eq!(target(table, host, request), expected, "{host} {request}");
    }
    assert_eq!(
        problems(&compiled),
        vec![
            "default/anyhost DefaultBackendConflict: host * already takes its default backend from Ingress default/catch-all",
            "default/b2 DefaultBackendConflict: host b.com already takes its default backend from Ingress default/b",
            "default/late-catch-all DefaultBackendConflict: host * already takes its default backend from Ingress default/catch-all",
        ]
    );
    let default = table.route("other.com", "/").backend().unwrap();
    assert_eq!(default.id.path, None);
    assert_eq!(default.id.host, HostMatch::Any);
    assert_eq!(default.id.path_label(), "");

    // Without the rule-less ones, the host-less rules' Ingress's default serves unknown hosts.
    world.builder.remove_ingress("default", "catch-all");
    world.builder.remove_ingress("default", "late-catch-all");
    assert_eq!(target(&world.build().table, "other.com", "/"), "anyhost-default");
}

#[test]
fn backends_resolve_by_port_number_or_name_to_the_slices_ports() {
    let mut world = World::new();
    world.builder.apply_service(&service(
        "default",
        "web",
        json!({"ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "admin", "port": 9000, "targetPort": "admin"},
            {"name": "grpc", "port": 50051, "appProtocol": "kubernetes.io/h2c"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]}),
    ));
    world.builder.apply_slice(&slice(
        "default",
        "web-1",
        "web",
        "IPv4",
        json!([
            {"name": "http", "port": 8080},
            {"name": "admin", "port": 9090},
            {"name": "grpc", "port": 50051},
            {"name": "dns", "port": 5353, "protocol": "UDP"},
        ]),
        json!([{"addresses": ["10.1.0.1"]}]),
    ));
    world.builder.apply_service(&service("default", "plain", json!({"ports": [{"port": 80, "targetPort": 8000}]})));
    world.builder.apply_slice(&slice(
        "default",
        "plain-1",
        "plain",
        "IPv4",
        json!([{"port": 8000}]),
        json!([{"addresses": ["10.1.0.2"]}]),
    ));
    world.builder.apply_service(&service(
        "default",
        "ext",
        json!({"type": "ExternalName", "externalName": "example.org"}),
    ));
    let port = |p: Value| json!({"service": {"name": "web", "port": p}});
    let paths = vec![
        json!({"path": "/by-number", "pathType": "Exact", "backend": port(json!({"number": 80}))}),
        json!({"path": "/by-name", "pathType": "Exact", "backend": port(json!({"name": "admin"}))}),
        json!({"path": "/h2c", "pathType": "Exact", "backend": port(json!({"name": "grpc"}))}),
        json!({"path": "/udp", "pathType": "Exact", "backend": port(json!({"number": 53}))}),
        json!({"path": "/no-name", "pathType": "Exact", "backend": port(json!({"name": "nope"}))}),
        json!({"path": "/plain", "pathType": "Exact", "backend": {"service": {"name": "plain", "port": {"number": 80}}}}),
        json!({"path": "/missing", "pathType": "Exact", "backend": backend("missing")}),
        json!({"path": "/ext", "pathType": "Exact", "backend": backend("ext")}),
    ];
    world.add(ingress("default", "ports", T0, json!({"rules": [rule("a.com", paths)]})));
    let compiled = world.build();
    let table = &compiled.table;

    let addr = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let resolved = |request: &str| {
        let route = table.route("a.com", request);
        let backend = route.backend().unwrap();
        (matches!(route, Route::Backend(_)), backend.service_port, backend.protocol, backend.endpoints.to_vec())
    };
    let cases = [
        ("/by-number", (true, Some(80), BackendProtocol::Http1, vec![addr("10.1.0.1:8080")])),
        ("/by-name", (true, Some(9000), BackendProtocol::Http1, vec![addr("10.1.0.1:9090")])),
        ("/h2c", (true, Some(50051), BackendProtocol::H2c, vec![addr("10.1.0.1:50051")])),
        ("/udp", (false, None, BackendProtocol::Http1, vec![])),
        ("/no-name", (false, None, BackendProtocol::Http1, vec![])),
        ("/plain", (true, Some(80), BackendProtocol::Http1, vec![addr("10.1.0.2:8000")])),
        ("/missing", (false, None, BackendProtocol::Http1, vec![])),
        ("/ext", (false, None, BackendProtocol::Http1, vec![])),
    ];
    for (request, expected) in cases {
        assert_eq!(resolved(request), expected, "{request}");
    }
    assert_eq!(
        problems(&compiled),
        vec![
            "default/ports ServiceNotFound: Service default/missing not found",
            "default/ports PortNotFound: Service default/web has no TCP port 53",
            "default/ports PortNotFound: Service default/web has no TCP port named \"nope\"",
            "default/ports UnsupportedServiceType: Service default/ext is of type ExternalName, which has no endpoints to route to",
        ]
    );
}

#[test]
fn only_ready_endpoints_that_are_not_terminating_are_sent_to() {
    let mut world = World::new();
    world.builder.apply_service(&service("default", "web", json!({"ports": [{"name": "http", "port": 80}]})));
    let ports = json!([{"name": "http", "port": 8080}]);
    world.builder.apply_slice(&slice(
        "default",
        "web-v4",
        "web",
        "IPv4",
        ports.clone(),
        json!([
            {"addresses": ["10.1.0.1"]},
            {"addresses": ["10.1.0.2"], "conditions": {"ready": true}},
            {"addresses": ["10.1.0.3"], "conditions": {"ready": false}},
            {"addresses": ["10.1.0.4"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.1.0.5"], "conditions": {"ready": true, "terminating": true}},
            {"addresses": ["10.1.0.6", "10.1.0.60"]},
            {"addresses": ["not-an-address"]},
        ]),
    ));
    // The same endpoint in a second slice for a moment counts once; IPv6 slices count too.
    world.builder.apply_slice(&slice(
        "default",
        "web-v4b",
        "web",
        "IPv4",
        ports.clone(),
        json!([{"addresses": ["10.1.0.1"]}]),
    ));
    world.builder.apply_slice(&slice(
        "default",
        "web-v6",
        "web",
        "IPv6",
        ports.clone(),
        json!([{"addresses": ["fd00::1"]}]),
    ));
    world.builder.apply_slice(&slice(
        "default",
        "web-fqdn",
        "web",
        "FQDN",
        ports.clone(),
        json!([{"addresses": ["a.example"]}]),
    ));
    world.add(ingress("default", "web", T0, json!({"rules": [rule("a.com", vec![path("/", "Prefix", "web")])]})));

    let endpoints = |world: &World| {
        let table = world.build().table;
        table.route("a.com", "/").backend().unwrap().endpoints.iter().map(SocketAddr::to_string).collect::<Vec<_>>()
    };
    assert_eq!(endpoints(&world), ["10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.6:8080", "[fd00::1]:8080"]);

    // A slice moved to another Service no longer counts for this one.
    world.builder.apply_slice(&slice(
        "default",
        "web-v6",
        "api",
        "IPv6",
        ports.clone(),
        json!([{"addresses": ["fd00::1"]}]),
    ));
    world.builder.remove_slice("default", "web-v4b");
    assert_eq!(endpoints(&world), ["10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.6:8080"]);

    // No ready endpoint: 503, and no problem (a Service scaled to zero is no mistake).
    world.builder.apply_slice(&slice(
        "default",
        "web-v4",
        "web",
        "IPv4",
        ports,
        json!([{"addresses": ["10.1.0.3"], "conditions": {"ready": false}}]),
    ));
    let compiled = world.build();
    assert_eq!(target(&compiled.table, "a.com", "/"), "503:web");
    assert!(compiled.problems.is_empty(), "{:?}", compiled.problems);
    world.builder.remove_slice("default", "web-v4");
    assert_eq!(target(&world.build().table, "a.com", "/"), "503:web");
}

#[test]
fn ingresses_are_ours_by_class_name_or_legacy_annotation() {
    let mut world = World::new();
    world.builder.apply_ingress_class(&class("nginx", "k8s.io/ingress-nginx"));
    world.builder.apply_ingress_class(&class("frontdoor-internal", "frontdoor.dev/ingress"));
    world.serve("web");
    let spec = |host: &str, class: Option<&str>| {
        let mut spec =
            json!({"rules": [rule(host, vec![path("/", "Prefix", "web"), path("/r", "Prefix", "web-missing")])]});
        if let Some(class) = class {
            spec["ingressClassName"] = json!(class);
        }
        spec
    };
    let annotated = |class: &str| json!({"annotations": {INGRESS_CLASS_ANNOTATION: class}});
    // (name, metadata, spec, ours)
    let cases = [
        ("by-name", json!({}), spec("by-name.com", Some("frontdoor")), true),
        ("by-other-class-of-ours", json!({}), spec("internal.com", Some("frontdoor-internal")), true),
        ("by-annotation", annotated("frontdoor"), spec("by-annotation.com", None), true),
        ("other-class", json!({}), spec("other-class.com", Some("nginx")), false),
        ("other-annotation", annotated("nginx"), spec("other-annotation.com", None), false),
        ("no-class", json!({}), spec("no-class.com", None), false),
        // The field goes before the annotation.
        ("field-wins", annotated("frontdoor"), spec("field-wins.com", Some("nginx")), false),
        ("unknown-class", json!({}), spec("unknown-class.com", Some("later")), false),
    ];
    for (name, metadata, spec, _) in &cases {
        world.add(ingress_with("default", name, T0, metadata.clone(), spec.clone()));
    }
    let compiled = world.build();
    for (name, metadata, spec, ours) in &cases {
        let host = spec["rules"][0]["host"].as_str().unwrap();
        let expected = if *ours { "web" } else { "404" };
        assert_eq!(target(&compiled.table, host, "/"), expected, "{name}");
        let object = ingress_with("default", name, T0, metadata.clone(), spec.clone());
        assert_eq!(world.builder.is_ours(&object), *ours, "{name}");
    }
    // Problems are reported for our Ingresses only.
    let reported: Vec<&str> = compiled.problems.iter().map(|p| p.source.name.as_str()).collect();
    assert_eq!(reported, ["by-annotation", "by-name", "by-other-class-of-ours"]);
    let mut served: Vec<&str> = world.builder.served().map(|(_, name)| name).collect();
    served.sort();
    assert_eq!(served, ["by-annotation", "by-name", "by-other-class-of-ours"]);

    // An IngressClass arriving later (or changing controller) changes what is ours.
    world.builder.apply_ingress_class(&class("later", "frontdoor.dev/ingress"));
    world.builder.apply_ingress_class(&class("frontdoor-internal", "example.com/other"));
    let table = world.build().table;
    assert_eq!(target(&table, "unknown-class.com", "/"), "web");
    assert_eq!(target(&table, "internal.com", "/"), "404");
}

#[test]
fn tls_secrets_are_chosen_by_sni_exact_before_wildcard() {
    let mut world = World::new();
    world.serve("web");
    for (name, complete) in [("a", true), ("b", true), ("c", true), ("d", true), ("broken", false)] {
        world.builder.apply_secret(&tls_secret("default", name, complete));
    }
    let rules =
        |hosts: &[&str]| -> Vec<Value> { hosts.iter().map(|h| rule(h, vec![path("/", "Prefix", "web")])).collect() };
    world.add(ingress(
        "default",
        "a",
        T0,
        json!({"tls": [{"hosts": ["A.com", "*.wild.com"], "secretName": "a"}], "rules": rules(&["a.com"])}),
    ));
    world.add(ingress(
        "default",
        "b",
        T1,
        json!({"tls": [{"hosts": ["a.com", "b.com"], "secretName": "b"}], "rules": rules(&["b.com"])}),
    ));
    // An entry without hosts covers the rules' hosts no other entry names.
    world.add(ingress(
        "default",
        "c",
        T0,
        json!({
            "tls": [{"secretName": "c"}, {"hosts": ["d.com"], "secretName": "d"}, {"hosts": ["sni-only.com"]}],
            "rules": rules(&["c.com", "d.com", "*.c-wild.com", ""]),
        }),
    ));
    world.add(ingress(
        "default",
        "faulty",
        T0,
        json!({"tls": [{"hosts": ["missing.com"], "secretName": "missing"}, {"hosts": ["broken.com"], "secretName": "broken"}]}),
    ));
    let compiled = world.build();
    let table = &compiled.table;
    let cases = [
        ("a.com", Some("a")),
        ("A.COM.", Some("a")),
        ("x.wild.com", Some("a")),
        ("y.x.wild.com", None),
        ("wild.com", None),
        ("b.com", Some("b")),
        ("c.com", Some("c")),
        ("q.c-wild.com", Some("c")),
        ("d.com", Some("d")),
        ("sni-only.com", None),
        ("missing.com", None),
        ("broken.com", None),
        ("unknown.com", None),
    ];
    for (sni, expected) in cases {
        assert_eq!(table.tls_for(sni).map(|s| s.name.as_str()), expected, "{sni}");
        if let Some(secret) = table.tls_for(sni) {
            assert_eq!(secret.namespace, "default");
        }
    }
    let mut secrets: Vec<String> = table.secrets().map(ToString::to_string).collect();
    secrets.sort();
    secrets.dedup();
    assert_eq!(secrets, ["default/a", "default/b", "default/c", "default/d"]);
    assert_eq!(
        problems(&compiled),
        vec![
            "default/b CertificateConflict: TLS for host a.com is already served by Secret default/a of Ingress default/a",
            "default/faulty SecretNotFound: Secret default/missing not found",
            "default/faulty InvalidSecret: Secret default/broken has no tls.crt or no tls.key",
        ]
    );
}

#[test]
fn what_cannot_be_served_is_reported_and_the_rest_still_is() {
    let mut world = World::new();
    world.serve("web");
    let resource = json!({"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static"}});
    world.add(ingress(
        "default",
        "mixed",
        T0,
        json!({
            "defaultBackend": resource,
            "rules": [rule("a.com", vec![
                json!({"path": "/static", "pathType": "Prefix", "backend": resource}),
                json!({"path": "relative", "pathType": "Prefix", "backend": backend("web")}),
                json!({"path": "/odd", "pathType": "Regex", "backend": backend("web")}),
                json!({"pathType": "ImplementationSpecific", "backend": backend("web")}),
            ])],
        }),
    ));
    let compiled = world.build();
    assert_eq!(target(&compiled.table, "a.com", "/static/x"), "web");
    assert_eq!(
        problems(&compiled),
        vec![
            "default/mixed UnsupportedBackend: defaultBackend: resource backend StorageBucket \"static\" is not supported, only Service backends are",
            "default/mixed UnsupportedBackend: path \"/static\" of host a.com: resource backend StorageBucket \"static\" is not supported, only Service backends are",
            "default/mixed InvalidPath: host a.com: path \"/odd\" has unknown path type \"Regex\"",
            "default/mixed InvalidPath: host a.com: path \"relative\" is not absolute",
        ]
    );
    let reasons: Vec<&str> = compiled.problems.iter().map(|p| p.reason.as_str()).collect();
    assert!(reasons.iter().all(|r| r.chars().next().is_some_and(char::is_uppercase) && !r.contains(' ')));
}

#[test]
fn builder_reports_changes_and_an_empty_table_routes_nothing() {
    let mut world = World::new();
    let object = ingress("default", "web", T0, json!({"rules": [rule("a.com", vec![path("/", "Prefix", "web")])]}));
    assert!(world.builder.apply_ingress(&object));
    assert!(!world.builder.apply_ingress(&object));
    let svc = service("default", "web", json!({"ports": [{"port": 80}]}));
    assert!(world.builder.apply_service(&svc));
    assert!(!world.builder.apply_service(&svc));
    assert!(world.builder.remove_ingress("default", "web"));
    assert!(!world.builder.remove_ingress("default", "web"));
    assert_eq!(RouteTable::default().route("a.com", "/"), Route::NotFound);
    assert_eq!(RouteTable::default().tls_for("a.com"), None);
    // A proxy shares the table between threads behind an `ArcSwap`.
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<RouteTable>();
}

#[test]
fn a_thousand_rules_compile_in_milliseconds() {
    let mut world = World::new();
    for i in 0..50 {
        world.serve(&format!("svc{i}"));
    }
    for i in 0..250 {
        let paths = (0..4).map(|p| path(&format!("/app{p}/v{i}"), "Prefix", &format!("svc{}", (i + p) % 50))).collect();
        world.add(ingress(
            "default",
            &format!("ing{i}"),
            T0,
            json!({"rules": [rule(&format!("h{}.example.com", i % 100), paths)]}),
        ));
    }
    let started = std::time::Instant::now();
    let compiled = world.build();
    let elapsed = started.elapsed();
    assert!(compiled.problems.is_empty());
    assert_eq!(compiled.table.backends().count(), 1000);
    assert_eq!(target(&compiled.table, "h7.example.com", "/app2/v107/x"), "svc9");
    // Generous for an unoptimised build on a busy machine; a release build takes about a millisecond.
    assert!(elapsed < std::time::Duration::from_millis(500), "compiled 1,000 rules in {elapsed:?}");
    eprintln!("compiled 1,000 rules in {elapsed:?}");
}
