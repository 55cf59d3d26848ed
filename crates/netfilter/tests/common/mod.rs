//! Shared by the integration tests: the golden ruleset, and running code in a fresh network
//! namespace (never the machine's own: these tests program nf_tables).

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use frontdoor_netfilter::{
    BaseChain, Batch, ChainType, CmpOp, CtDirection, CtKey, DataType, DynsetOp, Element, ElementData, Expr, Family,
    FibFlags, FibResult, Hook, ImmediateData, MetaKey, NatFlags, NatKind, NumgenKind, PayloadBase, Register,
    RejectKind, SetData, SetSpec, Value, Verdict,
};

/// Runs `f` on a new thread that first moves into a new, empty network namespace; sockets it
/// opens and processes it spawns live there, and the namespace vanishes when the thread ends.
pub fn in_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): run as root");
            f()
        })
        .join()
        .unwrap()
    })
}

/// Runs `nft` with `args` in the calling thread's network namespace; returns its stdout.
pub fn nft(args: &[&str]) -> String {
    let out = Command::new("nft").args(args).output().expect("run nft (install nftables)");
    assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub const TABLE: &str = "fdtest";

fn ip(a: u8, b: u8, c: u8, d: u8) -> Value {
    Value::Ipv4(Ipv4Addr::new(a, b, c, d))
}

pub fn service_ips() -> SetSpec {
    SetSpec {
        name: "service-ips".into(),
        key: vec![DataType::Ipv4Addr, DataType::InetProto, DataType::InetService],
        data: Some(SetData::Verdict),
        timeout: None,
        dynamic: false,
    }
}

pub fn backends() -> SetSpec {
    SetSpec {
        name: "backends".into(),
        key: vec![DataType::Ipv4Addr, DataType::InetProto, DataType::InetService, DataType::NumgenRandom(3)],
        data: Some(SetData::Types(vec![DataType::Ipv4Addr, DataType::InetService])),
        timeout: None,
        dynamic: false,
    }
}

pub fn affinity() -> SetSpec {
    SetSpec {
        name: "aff".into(),
        key: vec![DataType::Ipv4Addr],
        data: None,
        timeout: Some(Duration::from_secs(3 * 3600)),
        dynamic: true,
    }
}

pub fn cluster_ips() -> SetSpec {
    SetSpec { name: "cluster-ips".into(), key: vec![DataType::Ipv4Addr], data: None, timeout: None, dynamic: false }
}

pub fn marks() -> SetSpec {
    SetSpec {
        name: "marks".into(),
        key: vec![DataType::Mark],
        data: Some(SetData::Verdict),
        timeout: None,
        dynamic: false,
    }
}

fn verdict(v: Verdict) -> Expr {
    Expr::Immediate { dreg: Register::Verdict, data: ImmediateData::Verdict(v) }
}

fn load_ip(offset: u32, dreg: Register) -> Expr {
    Expr::Payload { base: PayloadBase::Network, offset, len: 4, dreg }
}

fn cmp(op: CmpOp, data: &[u8]) -> Expr {
    Expr::Cmp { op, sreg: Register::R1, data: data.to_vec() }
}

fn bitwise(mask: u32, xor: u32) -> Expr {
    Expr::Bitwise {
        sreg: Register::R1,
        dreg: Register::R1,
        len: 4,
        mask: mask.to_ne_bytes().to_vec(),
        xor: xor.to_ne_bytes().to_vec(),
    }
}

/// `ip daddr . meta l4proto . th dport` into R1, R32(1), R32(2).
fn service_key() -> [Expr; 3] {
    [
        load_ip(16, Register::R1),
        Expr::Meta { key: MetaKey::L4Proto, dreg: Register::R32(1) },
        Expr::Payload { base: PayloadBase::Transport, offset: 2, len: 2, dreg: Register::R32(2) },
    ]
}

/// The golden ruleset, built in the order nft builds the same ruleset from `GOLDEN_NFT`
/// (so that the messages can be compared with nft's one by one).
pub fn golden_batch() -> Batch {
    let mut b = Batch::new(Family::Ipv4);
    b.add_table(TABLE);
    let base = |hook, priority, kind| BaseChain { hook, priority, kind };
    b.add_chain(TABLE, "nat-prerouting", Some(&base(Hook::Prerouting, -100, ChainType::Nat)));
    b.add_chain(TABLE, "nat-postrouting", Some(&base(Hook::Postrouting, 100, ChainType::Nat)));
    b.add_chain(TABLE, "filter-input", Some(&base(Hook::Input, -110, ChainType::Filter)));
    for chain in ["checks", "services", "svc-a", "svc-b"] {
        b.add_chain(TABLE, chain, None);
    }

    b.add_set(TABLE, &service_ips());
    b.add_elements(
        TABLE,
        &service_ips(),
        &[
            Element {
                key: vec![ip(10, 96, 0, 10), Value::Proto(6), Value::Port(80)],
                data: Some(ElementData::Verdict(Verdict::Goto("svc-a".into()))),
            },
            Element {
                key: vec![ip(10, 96, 0, 11), Value::Proto(17), Value::Port(53)],
                data: Some(ElementData::Verdict(Verdict::Jump("svc-b".into()))),
            },
        ],
    );
    b.add_set(TABLE, &backends());
    let backend = |n: u32, last: u8| Element {
        key: vec![ip(10, 96, 0, 10), Value::Proto(6), Value::Port(80), Value::U32(n)],
        data: Some(ElementData::Values(vec![ip(10, 1, 0, last), Value::Port(8080)])),
    };
    b.add_elements(TABLE, &backends(), &[backend(0, 5), backend(1, 6)]);
    b.add_set(TABLE, &affinity());
    b.add_set(TABLE, &cluster_ips());
    let cip = |last| Element { key: vec![ip(10, 96, 0, last)], data: None };
    b.add_elements(TABLE, &cluster_ips(), &[cip(10), cip(11)]);
    b.add_set(TABLE, &marks());
    b.add_elements(
        TABLE,
        &marks(),
        &[Element { key: vec![Value::U32(0x4000)], data: Some(ElementData::Verdict(Verdict::Accept)) }],
    );

    b.add_rule(TABLE, "nat-prerouting", &[verdict(Verdict::Jump("services".into()))]);

    let mark = Expr::Meta { key: MetaKey::Mark, dreg: Register::R1 };
    let set_mark = Expr::MetaSet { key: MetaKey::Mark, sreg: Register::R1 };
    b.add_rule(
        TABLE,
        "nat-postrouting",
        &[mark.clone(), bitwise(0x4000, 0), cmp(CmpOp::Eq, &0u32.to_ne_bytes()), verdict(Verdict::Return)],
    );
    b.add_rule(TABLE, "nat-postrouting", &[mark.clone(), bitwise(0xffff_ffff, 0x4000), set_mark.clone()]);
    b.add_rule(TABLE, "nat-postrouting", &[Expr::Masquerade { fully_random: true }]);
    b.add_rule(
        TABLE,
        "nat-postrouting",
        &[
            load_ip(12, Register::R1),
            cmp(CmpOp::Eq, &[10, 0, 0, 0]),
            Expr::Immediate { dreg: Register::R1, data: ImmediateData::Bytes(vec![10, 0, 0, 1]) },
            Expr::Nat {
                kind: NatKind::Snat,
                addr: Some(Register::R1),
                port: None,
                flags: NatFlags { random: true, fully_random: false, persistent: true },
            },
        ],
    );

    b.add_rule(
        TABLE,
        "filter-input",
        &[
            Expr::Ct { key: CtKey::State, direction: None, dreg: Register::R1 },
            bitwise(frontdoor_netfilter::nftables::CT_STATE_NEW, 0),
            cmp(CmpOp::Neq, &0u32.to_ne_bytes()),
            verdict(Verdict::Jump("checks".into())),
        ],
    );
    b.add_rule(
        TABLE,
        "filter-input",
        &[
            Expr::Fib {
                flags: FibFlags { daddr: true, ..FibFlags::default() },
                result: FibResult::AddrType,
                dreg: Register::R1,
            },
            cmp(CmpOp::Eq, &frontdoor_netfilter::nftables::RTN_LOCAL.to_ne_bytes()),
            Expr::Counter,
            verdict(Verdict::Accept),
        ],
    );
    b.add_rule(
        TABLE,
        "filter-input",
        &[
            Expr::Ct { key: CtKey::Status, direction: None, dreg: Register::R1 },
            bitwise(frontdoor_netfilter::nftables::CT_STATUS_DNAT, 0),
            cmp(CmpOp::Neq, &0u32.to_ne_bytes()),
            verdict(Verdict::Accept),
        ],
    );

    let lookup = |set: &str, dreg, invert| Expr::Lookup { set: set.into(), sreg: Register::R1, dreg, invert };
    b.add_rule(
        TABLE,
        "checks",
        &[
            load_ip(16, Register::R1),
            lookup("cluster-ips", None, false),
            Expr::Reject { kind: RejectKind::IcmpUnreachable(3) },
        ],
    );
    b.add_rule(
        TABLE,
        "checks",
        &[
            Expr::Meta { key: MetaKey::L4Proto, dreg: Register::R1 },
            cmp(CmpOp::Eq, &[6]),
            Expr::Reject { kind: RejectKind::TcpReset },
        ],
    );
    b.add_rule(
        TABLE,
        "checks",
        &[load_ip(16, Register::R1), lookup("cluster-ips", None, true), verdict(Verdict::Drop)],
    );
    b.add_rule(
        TABLE,
        "checks",
        &[
            Expr::Ct { key: CtKey::DstIp, direction: Some(CtDirection::Original), dreg: Register::R1 },
            cmp(CmpOp::Eq, &[10, 96, 0, 10]),
            Expr::Ct { key: CtKey::Mark, direction: None, dreg: Register::R1 },
            cmp(CmpOp::Eq, &1u32.to_ne_bytes()),
            verdict(Verdict::Continue),
        ],
    );

    let mut rule = service_key().to_vec();
    rule.push(lookup("service-ips", Some(Register::Verdict), false));
    b.add_rule(TABLE, "services", &rule);

    b.add_rule(
        TABLE,
        "svc-a",
        &[load_ip(12, Register::R1), lookup("aff", None, false), verdict(Verdict::Goto("svc-b".into()))],
    );
    b.add_rule(
        TABLE,
        "svc-a",
        &[
            load_ip(12, Register::R1),
            Expr::Dynset { op: DynsetOp::Update, set: "aff".into(), sreg_key: Register::R1, timeout: None },
        ],
    );
    let mut rule = service_key().to_vec();
    rule.extend([
        Expr::Numgen { dreg: Register::R32(3), modulus: 3, kind: NumgenKind::Random, offset: 0 },
        lookup("backends", Some(Register::R1), false),
        Expr::Nat {
            kind: NatKind::Dnat,
            addr: Some(Register::R1),
            port: Some(Register::R32(1)),
            flags: NatFlags::default(),
        },
    ]);
    b.add_rule(TABLE, "svc-a", &rule);

    b.add_rule(TABLE, "svc-b", &[mark, bitwise(0xffff_bfff, 0x4000), set_mark]);
    b.add_rule(
        TABLE,
        "svc-b",
        &[
            Expr::Meta { key: MetaKey::L4Proto, dreg: Register::R1 },
            cmp(CmpOp::Eq, &[17]),
            Expr::Immediate { dreg: Register::R1, data: ImmediateData::Bytes(vec![10, 1, 0, 7]) },
            Expr::Immediate { dreg: Register::R2, data: ImmediateData::Bytes(53u16.to_be_bytes().to_vec()) },
            Expr::Nat {
                kind: NatKind::Dnat,
                addr: Some(Register::R1),
                port: Some(Register::R2),
                flags: NatFlags::default(),
            },
        ],
    );
    b
}

/// The same ruleset in nft's language (what `nft --debug=mnl -f` was fed to capture the bytes
/// the encoding tests compare with).
pub const GOLDEN_NFT: &str = r#"table ip fdtest {
  map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.96.0.10 . tcp . 80 : goto svc-a, 10.96.0.11 . udp . 53 : jump svc-b } }
  map backends { typeof ip daddr . meta l4proto . th dport . numgen random mod 3 : ip daddr . th dport; elements = { 10.96.0.10 . tcp . 80 . 0 : 10.1.0.5 . 8080, 10.96.0.10 . tcp . 80 . 1 : 10.1.0.6 . 8080 } }
  set aff { type ipv4_addr; flags dynamic,timeout; timeout 3h; }
  set cluster-ips { type ipv4_addr; elements = { 10.96.0.10, 10.96.0.11 } }
  map marks { type mark : verdict; elements = { 0x4000 : accept } }
  chain nat-prerouting { type nat hook prerouting priority -100; policy accept; jump services; }
  chain nat-postrouting { type nat hook postrouting priority 100; policy accept; meta mark & 0x00004000 == 0 return; meta mark set meta mark ^ 0x4000; masquerade fully-random; ip saddr 10.0.0.0 snat ip to 10.0.0.1 persistent,random; }
  chain filter-input { type filter hook input priority -110; policy accept; ct state new jump checks; fib daddr type local counter accept; ct status dnat accept; }
  chain checks { ip daddr @cluster-ips reject; meta l4proto tcp reject with tcp reset; ip daddr != @cluster-ips drop; ct original ip daddr 10.96.0.10 ct mark 0x1 continue; }
  chain services { ip daddr . meta l4proto . th dport vmap @service-ips; }
  chain svc-a { ip saddr @aff goto svc-b; update @aff { ip saddr }; dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @backends; }
  chain svc-b { meta mark set meta mark | 0x4000; meta l4proto udp dnat ip to 10.1.0.7:53; }
}
"#;
