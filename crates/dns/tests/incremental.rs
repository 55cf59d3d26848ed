//! The index built change by change (each build taking only the parts a change touched from the
//! builder, the rest from the index before) answers every question exactly as an index built
//! whole from the same objects does. Random changes over a small cluster that collides on
//! purpose: Services sharing ClusterIPs and endpoint addresses, ExternalName chains across
//! namespaces, slices moving between Services, namespaces coming and going, verified pods; and
//! a namespace's Services split into as many parts as it has Services, answering as one part.
//! Each step is also checked against a new builder given only the objects that exist then, so
//! what a builder keeps between changes (which Service a slice is filed under, say) cannot drift
//! from the objects unseen.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{cluster_ip, config, external, headless, namespace, pod, query_bytes, service, slice};
use frontdoor_dns::{answer, IndexBuilder, IndexConfig, PodMode, Response, Transport};
use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const SERVICES: [&str; 4] = ["s0", "s1", "s2", "s3"];
/// Named as the EndpointSlice controller names them (`<service>-<suffix>`), whichever Service
/// they are filed under, and not.
const SLICES: [&str; 6] = ["e0", "e1", "s0-ab", "s1-cd", "s1-x-y", "s3-"];
const CLUSTER_IPS: [&str; 4] = ["10.96.0.1", "10.96.0.2", "10.96.1.7", "fd00::1"];
const POD_IPS: [&str; 7] = ["10.244.1.1", "10.244.1.2", "10.244.1.3", "10.244.2.1", "10.96.0.1", "fd00::a", "fd00::1b"];
const TARGETS: [&str; 7] = [
    "example.com",
    "s1.b.svc.cluster.local",
    "s0.a.svc.cluster.local",
    "S2.C.svc.cluster.local.",
    "h0.s3.a.svc.cluster.local",
    "ns.dns.cluster.local",
    "c.svc.cluster.local",
];

/// xorshift64*: the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// An object that exists (a few dozen at a time: their size does not matter).
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum Object {
    Namespace(Namespace),
    Service(Service),
    Slice(EndpointSlice),
    Pod(Pod),
}

/// A builder, and the objects that exist after the changes it was given (by kind, namespace and
/// name), as the informers' caches would hold them.
struct Tracked {
    b: IndexBuilder,
    live: BTreeMap<(u8, String, String), Object>,
}

impl Tracked {
    fn new(config: IndexConfig) -> Tracked {
        Tracked { b: IndexBuilder::new(config), live: BTreeMap::new() }
    }

    /// `object` exists now, as `meta` names it.
    fn put(&mut self, kind: u8, meta: &ObjectMeta, object: Object) {
        let (ns, name) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap());
        self.live.insert((kind, ns, name), object);
    }

    fn gone(&mut self, kind: u8, ns: &str, name: &str) {
        self.live.remove(&(kind, ns.to_string(), name.to_string()));
    }

    fn apply_namespace(&mut self, o: &Namespace) {
        self.b.apply_namespace(o);
        self.put(0, &o.metadata, Object::Namespace(o.clone()));
    }

    fn apply_service(&mut self, o: &Service) {
        self.b.apply_service(o);
        self.put(1, &o.metadata, Object::Service(o.clone()));
    }

    fn apply_slice(&mut self, o: &EndpointSlice) {
        self.b.apply_slice(o);
        self.put(2, &o.metadata, Object::Slice(o.clone()));
    }

    fn apply_pod(&mut self, o: &Pod) {
        self.b.apply_pod(o);
        self.put(3, &o.metadata, Object::Pod(o.clone()));
    }

    fn remove_namespace(&mut self, ns: &str) {
        self.b.remove_namespace(ns);
        self.gone(0, "", ns);
    }

    fn remove_service(&mut self, ns: &str, name: &str) {
        self.b.remove_service(ns, name);
        self.gone(1, ns, name);
    }

    fn remove_slice(&mut self, ns: &str, name: &str) {
        self.b.remove_slice(ns, name);
        self.gone(2, ns, name);
    }

    fn remove_pod(&mut self, ns: &str, name: &str) {
        self.b.remove_pod(ns, name);
        self.gone(3, ns, name);
    }

    /// A new builder given only the objects that exist, pods and slices first (an order the
    /// changes rarely take), and what it builds.
    fn fresh(&self, config: IndexConfig) -> frontdoor_dns::ClusterIndex {
        let mut b = IndexBuilder::new(config);
        for object in self.live.values().rev() {
            match object {
                Object::Namespace(o) => b.apply_namespace(o),
                Object::Service(o) => _ = b.apply_service(o),
                Object::Slice(o) => _ = b.apply_slice(o),
                Object::Pod(o) => _ = b.apply_pod(o),
            }
        }
        b.build()
    }
}

/// One random change, applied to the builder; a line saying what it was.
fn change(b: &mut Tracked, rng: &mut Rng) -> String {
    let ns = rng.pick(&NAMESPACES);
    let name = rng.pick(&SERVICES);
    match rng.below(10) {
        0 => {
            b.apply_namespace(&namespace(ns));
            format!("namespace {ns}")
        }
        1 => {
            b.remove_namespace(ns);
            format!("namespace {ns} removed")
        }
        2 => {
            let ips: Vec<&str> = match rng.below(3) {
                0 => vec![rng.pick(&CLUSTER_IPS[..3])],
                1 => vec![rng.pick(&CLUSTER_IPS[..3]), "fd00::1"],
                _ => vec![rng.pick(&CLUSTER_IPS[..3])],
            };
            let ports = match rng.below(3) {
                0 => json!([]),
                1 => json!([{"name": "http", "port": 80, "protocol": "TCP"}]),
                _ => json!([{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
            };
            b.apply_service(&cluster_ip(ns, name, &ips, ports.clone()));
            format!("service {ns}/{name} ClusterIP {ips:?} {ports}")
        }
        3 => {
            let publish = rng.below(2) == 0;
            b.apply_service(&headless(ns, name, publish));
            format!("service {ns}/{name} headless publish={publish}")
        }
        4 => {
            let target = rng.pick(&TARGETS);
            b.apply_service(&external(ns, name, target));
            format!("service {ns}/{name} ExternalName {target}")
        }
        5 => {
            b.remove_service(ns, name);
            format!("service {ns}/{name} removed")
        }
        6 | 7 => {
            let slice_name = rng.pick(&SLICES);
            let mut endpoints = Vec::new();
            for _ in 0..rng.below(4) {
                let ip = rng.pick(&POD_IPS);
                let host = [None, Some("h0"), Some("h1")][rng.below(3)];
                let ready = [Some(true), Some(false), None][rng.below(3)];
                endpoints.push((ip, host, ready));
            }
            let family = if endpoints.iter().any(|e| e.0.contains(':')) { "IPv6" } else { "IPv4" };
            let addrs: Vec<[&str; 1]> = endpoints.iter().map(|e| [e.0]).collect();
            let eps: Vec<(&[&str], Option<&str>, Option<bool>)> =
                endpoints.iter().zip(&addrs).map(|(e, a)| (&a[..], e.1, e.2)).collect();
            let ports = match rng.below(3) {
                0 => json!([]),
                1 => json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
                _ => json!([{"name": "pg", "port": 5432}, {"port": 53, "protocol": "UDP"}]),
            };
            b.apply_slice(&slice(ns, slice_name, name, family, ports, &eps));
            format!("slice {ns}/{slice_name} of {name}: {endpoints:?}")
        }
        8 => {
            let slice_name = rng.pick(&SLICES);
            b.remove_slice(ns, slice_name);
            format!("slice {ns}/{slice_name} removed")
        }
        _ => {
            let pod_name = rng.pick(&SERVICES);
            if rng.below(3) == 0 {
                b.remove_pod(ns, pod_name);
                format!("pod {ns}/{pod_name} removed")
            } else {
                let ip = rng.pick(&POD_IPS);
                b.apply_pod(&pod(ns, pod_name, ip));
                format!("pod {ns}/{pod_name} {ip}")
            }
        }
    }
}

/// Every name the changes can make, and names around them.
fn questions() -> Vec<(String, RecordType)> {
    let mut names = vec![
        "cluster.local.".to_string(),
        "svc.cluster.local.".into(),
        "pod.cluster.local.".into(),
        "dns.cluster.local.".into(),
        "ns.dns.cluster.local.".into(),
        "dns-version.cluster.local.".into(),
        "nothing.cluster.local.".into(),
        "96.10.in-addr.arpa.".into(),
        "0.96.10.in-addr.arpa.".into(),
        "1.96.10.in-addr.arpa.".into(),
        "244.10.in-addr.arpa.".into(),
        "1.244.10.in-addr.arpa.".into(),
        "2.244.10.in-addr.arpa.".into(),
        "d.nowhere.svc.cluster.local.".into(),
    ];
    for ip in CLUSTER_IPS.iter().chain(&POD_IPS) {
        names.push(format!("{}.", frontdoor_dns::reverse_name(ip.parse().unwrap())));
    }
    for ns in NAMESPACES {
        names.push(format!("{ns}.svc.cluster.local."));
        names.push(format!("{ns}.pod.cluster.local."));
        for ip in &POD_IPS {
            names.push(format!("{}.{ns}.pod.cluster.local.", frontdoor_dns::dashed(ip.parse().unwrap())));
        }
        for s in SERVICES {
            let svc = format!("{s}.{ns}.svc.cluster.local.");
            for prefix in ["", "_http._tcp.", "_tcp.", "_dns._udp.", "_pg._tcp.", "h0.", "h1.", "10-244-1-1.", "x."] {
                names.push(format!("{prefix}{svc}"));
            }
        }
    }
    let types = [RecordType::A, RecordType::AAAA, RecordType::SRV, RecordType::PTR, RecordType::CNAME, RecordType::TXT];
    names.iter().flat_map(|n| types.iter().map(move |t| (n.clone(), *t))).collect()
}

fn run(config: IndexConfig, seed: u64, steps: usize) {
    let questions: Vec<(String, RecordType, Vec<u8>)> =
        questions().into_iter().map(|(n, t)| (n.clone(), t, query_bytes(&n, t, None))).collect();
    let mut rng = Rng(seed);
    // The same changes, to a builder that never splits a namespace's Services into parts.
    let mut unsplit = Tracked::new(IndexConfig { services_per_part: usize::MAX, ..config.clone() });
    let mut b = Tracked::new(config.clone());
    let mut index = b.b.take_changes().build(None);
    let mut log = Vec::new();
    for step in 0..steps {
        // One change or a few before each build, as changes arrive between two builds.
        for _ in 0..1 + rng.below(3) {
            change(&mut unsplit, &mut Rng(rng.0));
            log.push(change(&mut b, &mut rng));
        }
        index = b.b.take_changes().build(Some(&index));
        let whole = b.b.build();
        let one_part = unsplit.b.build();
        let fresh = b.fresh(config.clone());
        for (name, rtype, query) in &questions {
            let step_by_step = answer(&index, query, Transport::Udp);
            let references = [
                (&whole, "built whole"),
                (&one_part, "built whole in one part a namespace"),
                (&fresh, "built by a new builder from the objects that exist"),
            ];
            for (reference, how) in references {
                let expected = answer(reference, query, Transport::Udp);
                if step_by_step != expected {
                    panic!(
                        "seed {seed}, step {step}: {name} {rtype} answered {step_by_step:?}, {how} {expected:?}; changes:\n{}",
                        log.join("\n")
                    );
                }
            }
        }
        assert_eq!(index.len(), whole.len(), "seed {seed}, step {step}: names");
        assert_eq!(index.len(), one_part.len(), "seed {seed}, step {step}: names in one part a namespace");
        assert_eq!(index.len(), fresh.len(), "seed {seed}, step {step}: names built from the objects that exist");
    }
}

#[test]
fn built_change_by_change_answers_as_built_whole() {
    for seed in 1..=4u64 {
        run(config(), seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 120);
    }
}

/// A part for each Service (up to four a namespace, the number changing as they come and go).
#[test]
fn built_change_by_change_in_parts_of_one_service_answers_as_built_whole() {
    for seed in 5..=8u64 {
        run(IndexConfig { services_per_part: 1, ..config() }, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 120);
    }
    let verified =
        IndexConfig { pod_mode: PodMode::Verified, endpoint_pod_names: true, services_per_part: 1, ..config() };
    run(verified, 0xFEED_F00D_5EED_0001, 120);
}

#[test]
fn built_change_by_change_answers_as_built_whole_with_verified_pods() {
    run(IndexConfig { pod_mode: PodMode::Verified, endpoint_pod_names: true, ..config() }, 0xDEAD_BEEF_1234_5678, 120);
}

#[test]
fn a_build_with_no_change_answers_as_before() {
    let mut b = IndexBuilder::new(config());
    b.apply_service(&service("a", "s0", json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]})));
    let first = b.take_changes().build(None);
    let nothing = b.take_changes();
    assert!(nothing.is_empty());
    let second = nothing.build(Some(&first));
    let query = query_bytes("s0.a.svc.cluster.local.", RecordType::A, None);
    assert_eq!(answer(&first, &query, Transport::Udp), answer(&second, &query, Transport::Udp));
    assert!(matches!(answer(&second, &query, Transport::Udp), Response::Reply(_)));
}
