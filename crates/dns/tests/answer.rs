#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use frontdoor_dns::{answer, complete_chase, IndexBuilder, IndexConfig, PodMode, Response, Transport};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde_json::json;

const NX: ResponseCode = ResponseCode::NXDomain;
const OK: ResponseCode = ResponseCode::NoError;

/// (name, type, rcode, answers (sorted), additional (sorted)).
type Case = (&'static str, RecordType, ResponseCode, &'static [&'static str], &'static [&'static str]);

fn check(cases: &[Case], config: IndexConfig) {
    let index = cluster(config);
    for (name, rtype, rcode, answers, extra) in cases {
        let m = ask(&index, name, *rtype);
        let what = format!("{name} {rtype}");
        assert_eq!(m.metadata.response_code, *rcode, "{what}");
        assert!(m.metadata.authoritative, "{what}: AA");
        assert!(!m.metadata.recursion_available, "{what}: RA");
        assert!(m.metadata.recursion_desired, "{what}: RD echoed");
        assert_eq!(m.metadata.id, 0x1234, "{what}");
        assert_eq!(m.queries.len(), 1, "{what}");
        assert_eq!(m.queries[0].name.to_ascii(), *name, "{what}: the question, case kept");
        assert_eq!(sorted(render(&m.answers, name)), sorted(answers.iter().map(|s| s.to_string()).collect()), "{what}");
        assert_eq!(
            sorted(render(&m.additionals, name)),
            sorted(extra.iter().map(|s| s.to_string()).collect()),
            "{what}"
        );
        if answers.is_empty() {
            assert_eq!(m.authorities.len(), 1, "{what}: SOA in a negative answer");
            assert_eq!(m.authorities[0].record_type(), RecordType::SOA, "{what}");
            assert_eq!(m.authorities[0].ttl, 30, "{what}");
        } else {
            assert!(m.authorities.is_empty(), "{what}");
        }
        for r in &m.answers {
            if r.record_type() != RecordType::TXT {
                assert_eq!(r.ttl, 30, "{what}");
            }
        }
    }
}

#[test]
fn services_and_parents() {
    use RecordType::*;
    const SOA_REC: &str = "SOA ns.dns.cluster.local. hostmaster.cluster.local. 7200 30";
    let cases: &[Case] = &[
        ("api.default.svc.cluster.local.", A, OK, &["A 10.96.0.20"], &[]),
        ("API.Default.SVC.cluster.LOCAL.", A, OK, &["A 10.96.0.20"], &[]),
        ("api.default.svc.cluster.local.", AAAA, OK, &[], &[]),
        ("api.default.svc.cluster.local.", TXT, OK, &[], &[]),
        ("api.default.svc.cluster.local.", MX, OK, &[], &[]),
        ("api.default.svc.cluster.local.", CNAME, OK, &[], &[]),
        ("api.default.svc.cluster.local.", PTR, OK, &[], &[]),
        ("missing.default.svc.cluster.local.", A, NX, &[], &[]),
        ("api.nons.svc.cluster.local.", A, NX, &[], &[]),
        ("a.b.api.default.svc.cluster.local.", A, NX, &[], &[]),
        ("default.svc.cluster.local.", A, OK, &[], &[]),
        ("empty-ns.svc.cluster.local.", A, OK, &[], &[]),
        ("nons.svc.cluster.local.", A, NX, &[], &[]),
        ("svc.cluster.local.", A, OK, &[], &[]),
        ("pod.cluster.local.", A, OK, &[], &[]),
        ("cluster.local.", A, OK, &[], &[]),
        ("other.cluster.local.", A, NX, &[], &[]),
        ("cluster.local.", SOA, OK, &[SOA_REC], &[]),
        ("cluster.local.", NS, OK, &["NS ns.dns.cluster.local."], &["ns.dns.cluster.local. A 10.96.0.10"]),
        ("ns.dns.cluster.local.", A, OK, &["A 10.96.0.10"], &[]),
        ("dual.default.svc.cluster.local.", A, OK, &["A 10.96.0.30"], &[]),
        ("dual.default.svc.cluster.local.", AAAA, OK, &["AAAA fd00::30"], &[]),
        // SRV: named ports; at the Service's name every port (CoreDNS), weight 100/entries.
        (
            "_http._tcp.api.default.svc.cluster.local.",
            SRV,
            OK,
            &["SRV 0 100 80 api.default.svc.cluster.local."],
            &["api.default.svc.cluster.local. A 10.96.0.20"],
        ),
        (
            "_HTTP._TCP.api.default.svc.cluster.local.",
            SRV,
            OK,
            &["SRV 0 100 80 api.default.svc.cluster.local."],
            &["api.default.svc.cluster.local. A 10.96.0.20"],
        ),
        (
            "api.default.svc.cluster.local.",
            SRV,
            OK,
            &["SRV 0 50 80 api.default.svc.cluster.local.", "SRV 0 50 9090 api.default.svc.cluster.local."],
            &["A 10.96.0.20"],
        ),
        ("_http._udp.api.default.svc.cluster.local.", SRV, NX, &[], &[]),
        ("_tcp.api.default.svc.cluster.local.", SRV, OK, &[], &[]),
        ("_http._tcp.api.default.svc.cluster.local.", A, OK, &["A 10.96.0.20"], &[]),
        (
            "_http._tcp.dual.default.svc.cluster.local.",
            SRV,
            OK,
            &["SRV 0 50 80 dual.default.svc.cluster.local."],
            &["dual.default.svc.cluster.local. A 10.96.0.30", "dual.default.svc.cluster.local. AAAA fd00::30"],
        ),
        // An unnamed port has no SRV name of its own; the Service's name carries it.
        (
            "plain.default.svc.cluster.local.",
            SRV,
            OK,
            &["SRV 0 100 53 plain.default.svc.cluster.local."],
            &["A 10.96.0.40"],
        ),
        // A ClusterIP Service's ready endpoints are named too (CoreDNS), not the unready one.
        ("10-244-1-5.api.default.svc.cluster.local.", A, OK, &["A 10.244.1.5"], &[]),
        ("10-244-1-6.api.default.svc.cluster.local.", A, NX, &[], &[]),
        ("dns-version.cluster.local.", TXT, OK, &["TXT 1.1.0"], &[]),
        ("dns-version.cluster.local.", A, OK, &[], &[]),
    ];
    check(cases, config());
}

#[test]
fn headless_services() {
    use RecordType::*;
    let cases: &[Case] = &[
        ("db.apps.svc.cluster.local.", A, OK, &["A 10.244.2.10", "A 10.244.2.12"], &[]),
        ("db.apps.svc.cluster.local.", AAAA, OK, &[], &[]),
        ("db-0.db.apps.svc.cluster.local.", A, OK, &["A 10.244.2.10"], &[]),
        ("DB-0.db.apps.svc.cluster.local.", A, OK, &["A 10.244.2.10"], &[]),
        ("db-1.db.apps.svc.cluster.local.", A, NX, &[], &[]),
        ("10-244-2-12.db.apps.svc.cluster.local.", A, OK, &["A 10.244.2.12"], &[]),
        ("10-244-2-10.db.apps.svc.cluster.local.", A, NX, &[], &[]),
        (
            "_pg._tcp.db.apps.svc.cluster.local.",
            SRV,
            OK,
            &["SRV 0 50 5432 db-0.db.apps.svc.cluster.local.", "SRV 0 50 5432 10-244-2-12.db.apps.svc.cluster.local."],
            &["db-0.db.apps.svc.cluster.local. A 10.244.2.10", "10-244-2-12.db.apps.svc.cluster.local. A 10.244.2.12"],
        ),
        (
            "db-0.db.apps.svc.cluster.local.",
            SRV,
            OK,
            &["SRV 0 100 5432 db-0.db.apps.svc.cluster.local."],
            &["A 10.244.2.10"],
        ),
        // No ready endpoint: the name does not exist (specification 2.4.1), nor do its children.
        ("empty.apps.svc.cluster.local.", A, NX, &[], &[]),
        ("empty.apps.svc.cluster.local.", TXT, NX, &[], &[]),
        ("_pg._tcp.empty.apps.svc.cluster.local.", SRV, NX, &[], &[]),
        // publishNotReadyAddresses: the unready endpoint is published.
        ("pnr.apps.svc.cluster.local.", A, OK, &["A 10.244.3.1"], &[]),
        ("pnr-0.pnr.apps.svc.cluster.local.", A, OK, &["A 10.244.3.1"], &[]),
    ];
    check(cases, config());
}

#[test]
fn reverse_names() {
    use RecordType::*;
    let cases: &[Case] = &[
        ("20.0.96.10.in-addr.arpa.", PTR, OK, &["PTR api.default.svc.cluster.local."], &[]),
        ("20.0.96.10.IN-ADDR.ARPA.", PTR, OK, &["PTR api.default.svc.cluster.local."], &[]),
        ("10.2.244.10.in-addr.arpa.", PTR, OK, &["PTR db-0.db.apps.svc.cluster.local."], &[]),
        ("12.2.244.10.in-addr.arpa.", PTR, OK, &["PTR 10-244-2-12.db.apps.svc.cluster.local."], &[]),
        ("5.1.244.10.in-addr.arpa.", PTR, OK, &["PTR 10-244-1-5.api.default.svc.cluster.local."], &[]),
        ("1.3.244.10.in-addr.arpa.", PTR, OK, &["PTR pnr-0.pnr.apps.svc.cluster.local."], &[]),
        // Unknown addresses in the configured ranges: authoritative NXDOMAIN; existing parents NODATA.
        ("99.0.96.10.in-addr.arpa.", PTR, NX, &[], &[]),
        ("6.1.244.10.in-addr.arpa.", PTR, NX, &[], &[]),
        ("1.244.10.in-addr.arpa.", PTR, OK, &[], &[]),
        ("20.0.96.10.in-addr.arpa.", A, OK, &[], &[]),
        ("244.10.in-addr.arpa.", PTR, OK, &[], &[]),
        (
            "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
            PTR,
            OK,
            &["PTR dual.default.svc.cluster.local."],
            &[],
        ),
    ];
    check(cases, config());
    let index = cluster(config());
    let m = ask(&index, "99.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(m.authorities[0].name.to_ascii(), "96.10.in-addr.arpa.");
    assert_eq!(ask(&index, "244.10.in-addr.arpa.", RecordType::SOA).answers.len(), 1);
    // Outside the configured ranges: not ours.
    for name in ["1.1.168.192.in-addr.arpa.", "10.in-addr.arpa.", "in-addr.arpa."] {
        assert_eq!(ask_with(&index, name, RecordType::PTR, Transport::Udp), Response::Forward, "{name}");
    }
}

#[test]
fn external_names() {
    let index = cluster(config());
    // Out of the zone: the CNAME, and the target for the server to resolve.
    let Response::Chase { reply, target, qtype, max_size } =
        ask_with(&index, "ext.default.svc.cluster.local.", RecordType::A, Transport::Udp)
    else {
        panic!("expected a chase")
    };
    assert_eq!(target.to_ascii(), "example.com.");
    assert_eq!(qtype, RecordType::A);
    assert_eq!(max_size, 512);
    let m = Message::from_vec(&reply).unwrap();
    assert_eq!(render(&m.answers, "ext.default.svc.cluster.local."), ["CNAME example.com."]);
    // The upstream's answer appended.
    let mut up = Message::from_vec(&query_bytes("example.com.", RecordType::A, None)).unwrap();
    up.add_answer(hickory_proto::rr::Record::from_rdata(
        target.clone(),
        60,
        RData::A(hickory_proto::rr::rdata::A("93.184.216.34".parse().unwrap())),
    ));
    let done = Message::from_vec(&complete_chase(&reply, Some(&up.to_vec().unwrap()), max_size)).unwrap();
    assert_eq!(
        render(&done.answers, "ext.default.svc.cluster.local."),
        ["CNAME example.com.", "example.com. A 93.184.216.34"]
    );
    assert_eq!(complete_chase(&reply, None, max_size), reply);

    use RecordType::*;
    let cases: &[Case] = &[
        ("ext.default.svc.cluster.local.", CNAME, OK, &["CNAME example.com."], &[]),
        ("ext.default.svc.cluster.local.", SRV, OK, &[], &[]),
        ("_http._tcp.ext.default.svc.cluster.local.", SRV, NX, &[], &[]),
        // Inside the zone, followed here.
        (
            "alias.default.svc.cluster.local.",
            A,
            OK,
            &["CNAME api.default.svc.cluster.local.", "api.default.svc.cluster.local. A 10.96.0.20"],
            &[],
        ),
        ("alias.default.svc.cluster.local.", AAAA, OK, &[], &[]),
        // An address as externalName: CoreDNS ignores the Service.
        ("extip.default.svc.cluster.local.", A, NX, &[], &[]),
    ];
    check(cases, config());
}

#[test]
fn pods() {
    use RecordType::*;
    let cases: &[Case] = &[
        ("10-244-1-5.default.pod.cluster.local.", A, OK, &["A 10.244.1.5"], &[]),
        ("1-2-3-4.empty-ns.pod.cluster.local.", A, OK, &["A 1.2.3.4"], &[]),
        ("10-244-1-5.default.pod.cluster.local.", AAAA, OK, &[], &[]),
        ("fd00--1.default.pod.cluster.local.", AAAA, OK, &["AAAA fd00::1"], &[]),
        ("FD00--A.default.pod.cluster.local.", AAAA, OK, &["AAAA fd00::a"], &[]),
        ("10-244-1-5.nons.pod.cluster.local.", A, NX, &[], &[]),
        ("10-244-1-256.default.pod.cluster.local.", A, NX, &[], &[]),
        ("010-244-1-5.default.pod.cluster.local.", A, NX, &[], &[]),
        ("not-an-ip.default.pod.cluster.local.", A, NX, &[], &[]),
        ("x.10-244-1-5.default.pod.cluster.local.", A, NX, &[], &[]),
        ("default.pod.cluster.local.", A, OK, &[], &[]),
    ];
    check(cases, config());

    let cases: &[Case] = &[
        ("10-244-1-5.default.pod.cluster.local.", A, NX, &[], &[]),
        ("default.pod.cluster.local.", A, NX, &[], &[]),
        ("pod.cluster.local.", A, OK, &[], &[]),
    ];
    check(cases, IndexConfig { pod_mode: PodMode::Disabled, ..config() });

    let mut b = IndexBuilder::new(IndexConfig { pod_mode: PodMode::Verified, ..config() });
    b.apply_namespace(&namespace("default"));
    b.apply_pod(&pod("default", "web-1", "10.244.1.7"));
    let index = b.build();
    assert_eq!(
        render(&ask(&index, "10-244-1-7.default.pod.cluster.local.", A).answers, "x."),
        ["10-244-1-7.default.pod.cluster.local. A 10.244.1.7"]
    );
    assert_eq!(ask(&index, "10-244-1-8.default.pod.cluster.local.", A).metadata.response_code, NX);
    b.remove_pod("default", "web-1");
    let index = b.build();
    assert_eq!(ask(&index, "10-244-1-7.default.pod.cluster.local.", A).metadata.response_code, NX);
}

#[test]
fn builder_applies_and_removes() {
    let mut b = IndexBuilder::new(config());
    let svc = cluster_ip("default", "web", &["10.96.0.50"], json!([{"name": "http", "port": 80}]));
    assert!(b.apply_service(&svc));
    assert!(!b.apply_service(&svc), "no change");
    let index = b.build();
    assert_eq!(ask(&index, "web.default.svc.cluster.local.", RecordType::A).answers.len(), 1);
    assert_eq!(ask(&index, "default.svc.cluster.local.", RecordType::A).metadata.response_code, OK);
    assert!(b.remove_service("default", "web"));
    let index = b.build();
    // The namespace came with the Service only; without either, the name is gone.
    assert_eq!(ask(&index, "web.default.svc.cluster.local.", RecordType::A).metadata.response_code, NX);
}

#[test]
fn other_zones_are_forwarded() {
    let index = cluster(config());
    for name in ["example.com.", "local.", ".", "cluster.local.example.com.", "xcluster.local."] {
        assert_eq!(ask_with(&index, name, RecordType::A, Transport::Udp), Response::Forward, "{name}");
    }
    // Another zone name.
    let other = cluster(IndexConfig { zone: "corp.example.".into(), ..config() });
    assert_eq!(ask(&other, "api.default.svc.corp.example.", RecordType::A).answers.len(), 1);
    assert_eq!(ask_with(&other, "api.default.svc.cluster.local.", RecordType::A, Transport::Udp), Response::Forward);
}

fn big_headless(n: usize) -> frontdoor_dns::ClusterIndex {
    let addrs: Vec<String> = (0..n).map(|i| format!("10.245.{}.{}", i / 250, i % 250 + 1)).collect();
    let eps: Vec<(&[&str], Option<&str>, Option<bool>)> = Vec::new();
    let _ = eps;
    let refs: Vec<[&str; 1]> = addrs.iter().map(|a| [a.as_str()]).collect();
    let endpoints: Vec<(&[&str], Option<&str>, Option<bool>)> =
        refs.iter().map(|r| (&r[..], None, Some(true))).collect();
    let s = slice("apps", "big-1", "big", "IPv4", json!([{"name": "pg", "port": 5432}]), &endpoints);
    frontdoor_dns::ClusterIndex::build(config(), &[], &[headless("apps", "big", false)], &[s], &[])
}

#[test]
fn truncation_and_edns() {
    let index = big_headless(100);
    let name = "big.apps.svc.cluster.local.";
    // Plain UDP: 512 bytes, whole records, TC.
    let Response::Reply(bytes) = answer(&index, &query_bytes(name, RecordType::A, None), Transport::Udp) else {
        panic!()
    };
    assert!(bytes.len() <= 512);
    let m = Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation);
    assert!(!m.answers.is_empty() && m.answers.len() < 100);
    assert!(m.edns.is_none());
    // EDNS0 asking for 4096: bounded by max_udp_payload (1232), echoed with DO.
    let Response::Reply(bytes) =
        answer(&index, &query_bytes(name, RecordType::A, Some((4096, 0, true))), Transport::Udp)
    else {
        panic!()
    };
    assert!(bytes.len() <= 1232 && bytes.len() > 512);
    let m = Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation);
    let edns = m.edns.as_ref().unwrap();
    assert_eq!(edns.max_payload(), 1232);
    assert!(edns.flags().dnssec_ok);
    // TCP: everything.
    let Response::Reply(bytes) = answer(&index, &query_bytes(name, RecordType::A, None), Transport::Tcp) else {
        panic!()
    };
    let m = Message::from_vec(&bytes).unwrap();
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100);
    // SRV: the answers fit without the additional records: no TC, additional dropped.
    let index = big_headless(8);
    let srv = |edns| {
        answer(&index, &query_bytes("_pg._tcp.big.apps.svc.cluster.local.", RecordType::SRV, edns), Transport::Udp)
    };
    let Response::Reply(bytes) = srv(None) else { panic!() };
    let m = Message::from_vec(&bytes).unwrap();
    assert!(bytes.len() <= 512);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 8);
    assert!(m.additionals.len() < 8);
    let Response::Reply(bytes) = srv(Some((1232, 0, false))) else { panic!() };
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!((m.answers.len(), m.additionals.len()), (8, 8));
    // A small EDNS size counts as 512.
    let Response::Reply(bytes) = srv(Some((100, 0, false))) else { panic!() };
    assert_eq!(Message::from_vec(&bytes).unwrap().edns.unwrap().max_payload(), 512);
}

#[test]
fn answers_rotate() {
    let index = big_headless(4);
    let first = |id: u16| {
        let mut q = query_bytes("big.apps.svc.cluster.local.", RecordType::A, None);
        q[0..2].copy_from_slice(&id.to_be_bytes());
        let Response::Reply(bytes) = answer(&index, &q, Transport::Udp) else { panic!() };
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.answers.len(), 4);
        m.answers[0].data.to_string()
    };
    let firsts: std::collections::BTreeSet<String> = (0..4).map(first).collect();
    assert_eq!(firsts.len(), 4);
}

#[test]
fn bad_requests() {
    let index = cluster(config());
    let good = query_bytes("api.default.svc.cluster.local.", RecordType::A, None);
    let reply = |q: &[u8]| match answer(&index, q, Transport::Udp) {
        Response::Reply(b) => Some(Message::from_vec(&b).unwrap()),
        Response::Drop => None,
        other => panic!("{other:?}"),
    };
    assert!(reply(&[]).is_none());
    assert!(reply(&good[..11]).is_none());
    // A response is dropped.
    let mut q = good.clone();
    q[2] |= 0x80;
    assert!(reply(&q).is_none());
    // Truncated question: FORMERR.
    let m = reply(&good[..good.len() - 3]).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, 0x1234);
    // Two questions: FORMERR.
    let mut q = good.clone();
    q[5] = 2;
    assert_eq!(reply(&q).unwrap().metadata.response_code, ResponseCode::FormErr);
    // An opcode other than QUERY: NOTIMP.
    let mut q = good.clone();
    q[2] = (q[2] & 0x87) | (5 << 3);
    assert_eq!(reply(&q).unwrap().metadata.response_code, ResponseCode::NotImp);
    // A compression pointer in the question: FORMERR.
    let mut q = good[..12].to_vec();
    q.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
    assert_eq!(reply(&q).unwrap().metadata.response_code, ResponseCode::FormErr);
    // An additional record claimed but absent: FORMERR, question echoed.
    let mut q = good.clone();
    q[11] = 1;
    let m = reply(&q).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.queries.len(), 1);
    // EDNS version 1: BADVERS.
    let q = query_bytes("api.default.svc.cluster.local.", RecordType::A, Some((1232, 1, false)));
    let m = reply(&q).unwrap();
    // BADVERS and BADSIG share the value 16; hickory decodes it as the latter.
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert!(m.answers.is_empty() && m.edns.is_some());
    // Zone transfers are refused.
    let m = reply(&query_bytes("cluster.local.", RecordType::AXFR, None)).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    // Trailing bytes are ignored.
    let mut q = good.clone();
    q.extend_from_slice(&[1, 2, 3]);
    assert_eq!(reply(&q).unwrap().answers.len(), 1);
}
