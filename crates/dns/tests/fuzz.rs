#![allow(clippy::unwrap_used)]

//! 100,000 random and mutated packets: `answer` never panics, and what it returns is either
//! nothing, a forward, or a message that decodes, answers the request's id and fits the transport.

mod common;

use common::*;
use frontdoor_dns::{answer, complete_chase, Response, Transport};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const NAMES: &[&str] = &[
    "api.default.svc.cluster.local.",
    "db.apps.svc.cluster.local.",
    "db-0.db.apps.svc.cluster.local.",
    "_pg._tcp.db.apps.svc.cluster.local.",
    "_http._tcp.api.default.svc.cluster.local.",
    "ext.default.svc.cluster.local.",
    "alias.default.svc.cluster.local.",
    "10-244-1-5.default.pod.cluster.local.",
    "20.0.96.10.in-addr.arpa.",
    "99.0.96.10.in-addr.arpa.",
    "dns-version.cluster.local.",
    "cluster.local.",
    "missing.default.svc.cluster.local.",
    "example.com.",
];

const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::TXT,
    RecordType::CNAME,
    RecordType::SOA,
    RecordType::NS,
    RecordType::MX,
    RecordType::ANY,
    RecordType::AXFR,
];

#[test]
fn random_and_mutated_packets() {
    let index = cluster(config());
    let mut rng = Rng(0x5EED_F00D);
    let seeds: Vec<Vec<u8>> = NAMES
        .iter()
        .flat_map(|n| TYPES.iter().map(move |t| (n, t)))
        .enumerate()
        .map(|(i, (n, t))| {
            let edns = match i % 3 {
                0 => None,
                1 => Some((4096, 0, true)),
                _ => Some((512, 0, false)),
            };
            query_bytes(n, *t, edns)
        })
        .collect();
    let (mut replies, mut forwards, mut drops) = (0, 0, 0);
    for i in 0..100_000 {
        let packet: Vec<u8> = match i % 4 {
            // Pure noise, sometimes with a plausible header.
            0 => {
                let len = rng.below(600);
                let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len >= 12 && rng.below(2) == 0 {
                    p[2] &= 0x07; // a query, opcode 0
                    p[4] = 0;
                    p[5] = 1;
                    p[6] = 0;
                    p[7] = 0;
                    p[8] = 0;
                    p[9] = 0;
                    p[10] = 0;
                    p[11] = rng.below(3) as u8;
                }
                p
            }
            // A valid query with a few bytes changed, cut, or extended.
            _ => {
                let mut p = seeds[rng.below(seeds.len())].clone();
                for _ in 0..1 + rng.below(4) {
                    match rng.below(5) {
                        0 if !p.is_empty() => {
                            let at = rng.below(p.len());
                            p[at] = rng.next() as u8;
                        }
                        1 if !p.is_empty() => {
                            let at = rng.below(p.len());
                            p[at] ^= 1 << rng.below(8);
                        }
                        2 => p.truncate(rng.below(p.len() + 1)),
                        3 => {
                            let extra = rng.below(40);
                            p.extend((0..extra).map(|_| rng.next() as u8));
                        }
                        _ => {
                            if p.len() > 12 {
                                let at = 12 + rng.below(p.len() - 12);
                                p.insert(at, rng.next() as u8);
                            }
                        }
                    }
                }
                p
            }
        };
        let transport = if i % 7 == 0 { Transport::Tcp } else { Transport::Udp };
        let limit = if transport == Transport::Tcp { 65535 } else { 1232 };
        let bytes = match answer(&index, &packet, transport) {
            Response::Drop => {
                drops += 1;
                continue;
            }
            Response::Forward => {
                forwards += 1;
                continue;
            }
            Response::Reply(bytes) => bytes,
            Response::Chase { reply, max_size, .. } => complete_chase(&reply, None, max_size),
        };
        replies += 1;
        assert!(bytes.len() <= limit, "packet {i}: {} bytes", bytes.len());
        let m =
            Message::from_vec(&bytes).unwrap_or_else(|e| panic!("packet {i} {packet:?}: reply does not decode: {e}"));
        assert_eq!(m.metadata.id, u16::from_be_bytes([packet[0], packet[1]]), "packet {i}");
        assert_eq!(bytes[2] & 0x80, 0x80, "packet {i}: QR");
        assert!(m.queries.len() <= 1, "packet {i}");
    }
    // The mix exercised every path.
    assert!(replies > 10_000 && forwards > 100 && drops > 1_000, "{replies} {forwards} {drops}");
    // Still answering correctly afterwards (the index is immutable; this guards the claim).
    assert_eq!(ask(&index, "api.default.svc.cluster.local.", RecordType::A).answers.len(), 1);
}
