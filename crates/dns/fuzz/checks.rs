// The properties the fuzz targets check, shared with the corpus replay test
// (`crates/dns/tests/fuzz_corpus.rs`), which `include!`s this file.

use std::sync::OnceLock;

use frontdoor_dns::{
    answer, complete_chase, CacheConfig, ClusterIndex, ForwardCache, IndexConfig, Response, Transport,
};
use serde_json::json;

/// A small cluster: a ClusterIP Service, a headless one with endpoints, an ExternalName.
pub fn fuzz_index() -> &'static ClusterIndex {
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

/// Any bytes as a request, over UDP and TCP: no panic, and a reply has a header and fits.
pub fn check_answer(data: &[u8]) {
    for (transport, limit) in [(Transport::Udp, 1232), (Transport::Tcp, 65535)] {
        match answer(fuzz_index(), data, transport) {
            Response::Reply(bytes) | Response::Chase { reply: bytes, .. } => {
                assert!(bytes.len() <= limit);
                assert!(bytes.len() >= 12);
            }
            Response::Forward | Response::Drop => {}
        }
    }
}

/// Requests the forwarder sends upstream: a plain A query, one with EDNS0, an ExternalName's.
const REQUESTS: &[&[u8]] = &[
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x04test\x00\x00\x01\x00\x01",
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x03www\x07example\x04test\x00\x00\x01\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",
    b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03ext\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01",
];

/// Any bytes as an upstream's answer: the cache and the ExternalName chase never panic, and
/// what they give a client fits its transport.
pub fn check_forward(data: &[u8]) {
    let cache = ForwardCache::new(CacheConfig { capacity: 4, ..CacheConfig::default() });
    let mut out = Vec::new();
    for request in REQUESTS {
        cache.insert(request, data, 0);
        for max in [512, 1232, 65535] {
            if cache.get(request, 1_000, max, &mut out).is_some() {
                assert!(out.len() <= max);
                assert_eq!(out[..2], request[..2]);
            }
        }
    }
    if let Response::Chase { reply, max_size, .. } = answer(fuzz_index(), REQUESTS[2], Transport::Udp) {
        let chased = complete_chase(&reply, Some(data), max_size);
        assert!(chased.len() <= max_size);
    }
}
