//! `cargo +nightly fuzz run answer`: any bytes, over UDP and TCP, against a small cluster;
//! `answer` must not panic, and a reply must fit its transport.
#![no_main]

use std::sync::OnceLock;

use frontdoor_dns::{answer, ClusterIndex, IndexConfig, Response, Transport};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fn index() -> &'static ClusterIndex {
    static INDEX: OnceLock<ClusterIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let svc = |v| serde_json::from_value(v).expect("valid Service");
        let services = [
            svc(json!({"metadata": {"namespace": "default", "name": "api"},
                "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [{"name": "http", "port": 80}]}})),
            svc(json!({"metadata": {"namespace": "apps", "name": "db"},
                "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"name": "pg", "port": 5432}]}})),
            svc(json!({"metadata": {"namespace": "default", "name": "ext"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}})),
        ];
        let slices = [serde_json::from_value(json!({
            "metadata": {"namespace": "apps", "name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432}],
            "endpoints": [{"addresses": ["10.244.2.10"], "hostname": "db-0"}, {"addresses": ["10.244.2.11"]}],
        }))
        .expect("valid EndpointSlice")];
        let config = IndexConfig {
            reverse_cidrs: vec!["10.96.0.0/12".parse().expect("cidr"), "10.244.0.0/16".parse().expect("cidr")],
            ..IndexConfig::default()
        };
        ClusterIndex::build(config, &[], &services, &slices, &[])
    })
}

fuzz_target!(|data: &[u8]| {
    for (transport, limit) in [(Transport::Udp, 1232), (Transport::Tcp, 65535)] {
        match answer(index(), data, transport) {
            Response::Reply(bytes) | Response::Chase { reply: bytes, .. } => {
                assert!(bytes.len() <= limit);
                assert!(bytes.len() >= 12);
            }
            Response::Forward | Response::Drop => {}
        }
    }
});
