#![allow(clippy::unwrap_used, dead_code)]

use frontdoor_dns::{answer, ClusterIndex, IndexConfig, Response, Transport};
use hickory_proto::op::{Edns, Message, OpCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};

pub fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

pub fn service(ns: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec})).unwrap()
}

pub fn cluster_ip(ns: &str, name: &str, ips: &[&str], ports: Value) -> Service {
    service(ns, name, json!({"clusterIP": ips[0], "clusterIPs": ips, "ports": ports}))
}

pub fn headless(ns: &str, name: &str, publish_not_ready: bool) -> Service {
    service(
        ns,
        name,
        json!({"clusterIP": "None", "clusterIPs": ["None"], "publishNotReadyAddresses": publish_not_ready,
               "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}),
    )
}

pub fn external(ns: &str, name: &str, target: &str) -> Service {
    service(ns, name, json!({"type": "ExternalName", "externalName": target}))
}

/// `endpoints`: (addresses, hostname, ready).
pub fn slice(
    ns: &str,
    name: &str,
    service: &str,
    family: &str,
    ports: Value,
    endpoints: &[(&[&str], Option<&str>, Option<bool>)],
) -> EndpointSlice {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(addrs, host, ready)| {
            let mut e = json!({"addresses": addrs, "conditions": {}});
            if let Some(h) = host {
                e["hostname"] = json!(h);
            }
            if let Some(r) = ready {
                e["conditions"]["ready"] = json!(r);
            }
            e
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": family, "ports": ports, "endpoints": eps,
    }))
    .unwrap()
}

pub fn pod(ns: &str, name: &str, ip: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "status": {"podIP": ip}})).unwrap()
}

pub fn query_bytes(name: &str, rtype: RecordType, edns: Option<(u16, u8, bool)>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.metadata.op_code = OpCode::Query;
    m.add_query(hickory_proto::op::Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some((size, version, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_version(version);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

pub fn ask_with(index: &ClusterIndex, name: &str, rtype: RecordType, transport: Transport) -> Response {
    answer(index, &query_bytes(name, rtype, None), transport)
}

/// Asks over UDP, expecting a complete reply.
pub fn ask(index: &ClusterIndex, name: &str, rtype: RecordType) -> Message {
    match ask_with(index, name, rtype, Transport::Udp) {
        Response::Reply(bytes) => Message::from_vec(&bytes).unwrap(),
        other => panic!("{name} {rtype}: expected a reply, got {other:?}"),
    }
}

/// `TYPE data` of each record, in order (owner names only where they differ from the question).
pub fn render(records: &[Record], qname: &str) -> Vec<String> {
    let q = Name::from_ascii(qname).unwrap();
    records
        .iter()
        .map(|r| {
            let data = match &r.data {
                RData::SOA(s) => format!("{} {} {} {}", s.mname, s.rname, s.refresh, s.minimum),
                d => d.to_string(),
            };
            if r.name.to_lowercase() == q.to_lowercase() {
                format!("{} {}", r.record_type(), data)
            } else {
                format!("{} {} {}", r.name, r.record_type(), data)
            }
        })
        .collect()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The fixture cluster used across tests.
pub fn cluster(config: IndexConfig) -> ClusterIndex {
    let namespaces = [namespace("default"), namespace("apps"), namespace("empty-ns")];
    let services = [
        cluster_ip(
            "default",
            "api",
            &["10.96.0.20"],
            json!([{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics", "port": 9090}]),
        ),
        cluster_ip("default", "dual", &["10.96.0.30", "fd00::30"], json!([{"name": "http", "port": 80}])),
        cluster_ip("default", "plain", &["10.96.0.40"], json!([{"port": 53, "protocol": "UDP"}])),
        headless("apps", "db", false),
        headless("apps", "empty", false),
        headless("apps", "pnr", true),
        external("default", "ext", "example.com"),
        external("default", "alias", "api.default.svc.cluster.local"),
        external("default", "extip", "1.2.3.4"),
    ];
    let pg = json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]);
    let slices = [
        slice(
            "default",
            "api-abc",
            "api",
            "IPv4",
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            &[(&["10.244.1.5"], None, Some(true)), (&["10.244.1.6"], None, Some(false))],
        ),
        slice(
            "apps",
            "db-abc",
            "db",
            "IPv4",
            pg.clone(),
            &[
                (&["10.244.2.10"], Some("db-0"), Some(true)),
                (&["10.244.2.11"], Some("db-1"), Some(false)),
                (&["10.244.2.12"], None, None),
            ],
        ),
        slice("apps", "empty-abc", "empty", "IPv4", pg.clone(), &[(&["10.244.2.20"], None, Some(false))]),
        slice("apps", "pnr-abc", "pnr", "IPv4", pg, &[(&["10.244.3.1"], Some("pnr-0"), Some(false))]),
    ];
    ClusterIndex::build(config, &namespaces, &services, &slices, &[])
}

pub fn config() -> IndexConfig {
    IndexConfig {
        reverse_cidrs: vec![
            "10.96.0.0/12".parse().unwrap(),
            "10.244.0.0/16".parse().unwrap(),
            "fd00::/108".parse().unwrap(),
        ],
        ns_addresses: vec!["10.96.0.10".parse().unwrap()],
        serial: 1700000000,
        ..IndexConfig::default()
    }
}
