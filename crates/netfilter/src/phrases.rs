//! A small vocabulary to write rules in: each function is one nft phrase (`ip daddr .
//! meta l4proto . th dport`, `ct state new`, `fib daddr type local`, …) as the expressions `nft`
//! itself sends for it. The service proxy and the node's host ports both write with it.

use std::net::Ipv4Addr;

use crate::nftables::{
    CmpOp, CtDirection, CtKey, DynsetOp, Expr, FibFlags, FibResult, ImmediateData, MetaKey, NatFlags, NatKind,
    NumgenKind, PayloadBase, Register, RejectKind, Verdict, CT_STATE_NEW, RTN_LOCAL,
};

fn payload(base: PayloadBase, offset: u32, len: u32, dreg: Register) -> Expr {
    Expr::Payload { base, offset, len, dreg }
}

pub fn ip_saddr(dreg: Register) -> Expr {
    payload(PayloadBase::Network, 12, 4, dreg)
}

pub fn ip_daddr(dreg: Register) -> Expr {
    payload(PayloadBase::Network, 16, 4, dreg)
}

pub fn l4proto(dreg: Register) -> Expr {
    Expr::Meta { key: MetaKey::L4Proto, dreg }
}

pub fn th_dport(dreg: Register) -> Expr {
    payload(PayloadBase::Transport, 2, 2, dreg)
}

pub fn th_sport(dreg: Register) -> Expr {
    payload(PayloadBase::Transport, 0, 2, dreg)
}

/// `ip daddr . meta l4proto . th dport`, into registers 1, 9 and 10 (as nft lays it out).
pub fn daddr_proto_dport() -> [Expr; 3] {
    [ip_daddr(Register::R1), l4proto(Register::R32(1)), th_dport(Register::R32(2))]
}

/// `meta l4proto . th dport`, into registers 1 and 9.
pub fn proto_dport() -> [Expr; 2] {
    [l4proto(Register::R1), th_dport(Register::R32(1))]
}

/// `… vmap @set`: the key loaded from register 1.
pub fn vmap(set: &str) -> Expr {
    Expr::Lookup { set: set.to_string(), sreg: Register::R1, dreg: Some(Register::Verdict), invert: false }
}

/// `… @set` (membership, key from register 1).
pub fn member_of(set: &str) -> Expr {
    Expr::Lookup { set: set.to_string(), sreg: Register::R1, dreg: None, invert: false }
}

pub fn verdict(verdict: Verdict) -> Expr {
    Expr::Immediate { dreg: Register::Verdict, data: ImmediateData::Verdict(verdict) }
}

pub fn jump(chain: &str) -> Expr {
    verdict(Verdict::Jump(chain.to_string()))
}

pub fn goto(chain: &str) -> Expr {
    verdict(Verdict::Goto(chain.to_string()))
}

/// `ct state new`.
pub fn ct_state_new() -> [Expr; 3] {
    let [test, compare] = masked_test(CT_STATE_NEW, CmpOp::Neq);
    [Expr::Ct { key: CtKey::State, direction: None, dreg: Register::R1 }, test, compare]
}

/// `ct original ip daddr`.
pub fn ct_original_daddr(dreg: Register) -> Expr {
    Expr::Ct { key: CtKey::DstIp, direction: Some(CtDirection::Original), dreg }
}

/// `fib daddr type local`.
pub fn fib_daddr_local() -> [Expr; 2] {
    [
        Expr::Fib {
            flags: FibFlags { daddr: true, ..FibFlags::default() },
            result: FibResult::AddrType,
            dreg: Register::R1,
        },
        Expr::Cmp { op: CmpOp::Eq, sreg: Register::R1, data: RTN_LOCAL.to_ne_bytes().to_vec() },
    ]
}

/// `fib saddr type local`: a packet this machine sent.
pub fn fib_saddr_local() -> [Expr; 2] {
    [
        Expr::Fib {
            flags: FibFlags { saddr: true, ..FibFlags::default() },
            result: FibResult::AddrType,
            dreg: Register::R1,
        },
        Expr::Cmp { op: CmpOp::Eq, sreg: Register::R1, data: RTN_LOCAL.to_ne_bytes().to_vec() },
    ]
}

/// `dnat ip to <address> . <protocol> . <port> . numgen random mod <count> map @<map>`: the
/// key written as constants (what a frontend's own fields would load). The kernel takes it as
/// any key; `nft list` (1.0.6) cannot name the constants' types and shows them as
/// `0x… [invalid type]`.
pub fn dnat_as(map: &str, address: Ipv4Addr, protocol: u8, port: u16, count: u32) -> Vec<Expr> {
    let mut rule = vec![
        Expr::Immediate { dreg: Register::R1, data: ImmediateData::Bytes(address.octets().to_vec()) },
        Expr::Immediate { dreg: Register::R32(1), data: ImmediateData::Bytes(vec![protocol, 0, 0, 0]) },
        Expr::Immediate {
            dreg: Register::R32(2),
            data: ImmediateData::Bytes(vec![(port >> 8) as u8, port as u8, 0, 0]),
        },
    ];
    rule.extend(dnat_through_map(map, 3, count));
    rule
}

/// `ip daddr <address> <protocol> dport <port>` (`meta l4proto` and `th dport`, as nft sends it).
pub fn to_port(address: Ipv4Addr, protocol: u8, port: u16) -> [Expr; 6] {
    addressed_port(ip_daddr(Register::R1), address, protocol, th_dport(Register::R1), port)
}

/// `ip saddr <address> <protocol> sport <port>`: what a socket bound there sends.
pub fn from_port(address: Ipv4Addr, protocol: u8, port: u16) -> [Expr; 6] {
    addressed_port(ip_saddr(Register::R1), address, protocol, th_sport(Register::R1), port)
}

fn addressed_port(address_field: Expr, address: Ipv4Addr, protocol: u8, port_field: Expr, port: u16) -> [Expr; 6] {
    let equals = |data: Vec<u8>| Expr::Cmp { op: CmpOp::Eq, sreg: Register::R1, data };
    [
        address_field,
        equals(address.octets().to_vec()),
        l4proto(Register::R1),
        equals(vec![protocol]),
        port_field,
        equals(port.to_be_bytes().to_vec()),
    ]
}

/// `iif != "lo"`: a packet that did not come from this machine itself (looped back, it was seen
/// on output already). Loopback is always interface 1 of a network namespace.
pub fn iif_not_loopback() -> [Expr; 2] {
    [
        Expr::Meta { key: MetaKey::Iif, dreg: Register::R1 },
        Expr::Cmp { op: CmpOp::Neq, sreg: Register::R1, data: 1u32.to_ne_bytes().to_vec() },
    ]
}

/// `notrack`: conntrack leaves the packet alone (and so does NAT); only before conntrack, in a
/// chain of priority `raw`.
pub fn notrack() -> Expr {
    Expr::Notrack
}

/// `ip daddr != 127.0.0.0/8` (nft loads the one byte that matters).
pub fn daddr_not_loopback() -> [Expr; 2] {
    [
        payload(PayloadBase::Network, 16, 1, Register::R1),
        Expr::Cmp { op: CmpOp::Neq, sreg: Register::R1, data: vec![127] },
    ]
}

/// `ip saddr <network>/<prefix>` or `ip daddr …` (`field` is [`ip_saddr`] or [`ip_daddr`]),
/// with `op` Eq or Neq. `network` has no host bits set.
pub fn ip_in_range(field: fn(Register) -> Expr, network: Ipv4Addr, prefix: u8, op: CmpOp) -> Vec<Expr> {
    if prefix >= 32 {
        return vec![field(Register::R1), Expr::Cmp { op, sreg: Register::R1, data: network.octets().to_vec() }];
    }
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
    vec![
        field(Register::R1),
        Expr::Bitwise {
            sreg: Register::R1,
            dreg: Register::R1,
            len: 4,
            mask: mask.to_be_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp { op, sreg: Register::R1, data: network.octets().to_vec() },
    ]
}

/// `iifname "<name>"`.
pub fn iifname_is(name: &str) -> [Expr; 2] {
    /// `IFNAMSIZ`: interface names are compared as 16 bytes, zero-padded.
    const IFNAMSIZ: usize = 16;
    let mut bytes = name.as_bytes().to_vec();
    bytes.resize(IFNAMSIZ, 0);
    [
        Expr::Meta { key: MetaKey::IifName, dreg: Register::R1 },
        Expr::Cmp { op: CmpOp::Eq, sreg: Register::R1, data: bytes },
    ]
}

/// `dnat ip to <key> map @<map>`, the key already loaded from register 1 on; the map gives
/// address and port. A key the map does not hold ends the rule, with no verdict.
pub fn dnat_via_map(map: &str) -> [Expr; 2] {
    [
        Expr::Lookup { set: map.to_string(), sreg: Register::R1, dreg: Some(Register::R1), invert: false },
        Expr::Nat {
            kind: NatKind::Dnat,
            addr: Some(Register::R1),
            port: Some(Register::R32(1)),
            flags: NatFlags::default(),
        },
    ]
}

/// `meta mark set meta mark | bit`.
pub fn set_mark_bit(bit: u32) -> [Expr; 3] {
    rewrite_mark(!bit, bit)
}

/// `meta mark & bit == 0`.
pub fn mark_bit_clear(bit: u32) -> [Expr; 3] {
    let [test, compare] = masked_test(bit, CmpOp::Eq);
    [Expr::Meta { key: MetaKey::Mark, dreg: Register::R1 }, test, compare]
}

/// `meta mark set meta mark ^ bit`.
pub fn flip_mark_bit(bit: u32) -> [Expr; 3] {
    rewrite_mark(u32::MAX, bit)
}

/// `dnat ip to <key> . numgen random mod <count> map @<map>`, the key already loaded from
/// register 1 on (`fields` 32-bit words of it).
pub fn dnat_through_map(map: &str, fields: u8, count: u32) -> [Expr; 3] {
    let [lookup, nat] = dnat_via_map(map);
    [Expr::Numgen { dreg: Register::R32(fields), modulus: count, kind: NumgenKind::Random, offset: 0 }, lookup, nat]
}

/// `meta l4proto <proto> dnat ip to <ip>:<port>`.
pub fn dnat_to(protocol: u8, ip: Ipv4Addr, port: u16) -> Vec<Expr> {
    let port_bytes = port.to_be_bytes().to_vec();
    vec![
        l4proto(Register::R1),
        Expr::Cmp { op: CmpOp::Eq, sreg: Register::R1, data: vec![protocol] },
        Expr::Immediate { dreg: Register::R1, data: ImmediateData::Bytes(ip.octets().to_vec()) },
        Expr::Immediate { dreg: Register::R2, data: ImmediateData::Bytes(port_bytes) },
        Expr::Nat {
            kind: NatKind::Dnat,
            addr: Some(Register::R1),
            port: Some(Register::R2),
            flags: NatFlags::default(),
        },
    ]
}

/// `numgen random mod <modulus> == 0`.
pub fn one_in(modulus: u32) -> [Expr; 2] {
    [
        Expr::Numgen { dreg: Register::R1, modulus, kind: NumgenKind::Random, offset: 0 },
        Expr::Cmp { op: CmpOp::Eq, sreg: Register::R1, data: 0u32.to_ne_bytes().to_vec() },
    ]
}

/// `update @set { ip saddr }`.
pub fn remember_source(set: &str) -> [Expr; 2] {
    [
        ip_saddr(Register::R1),
        Expr::Dynset { op: DynsetOp::Update, set: set.to_string(), sreg_key: Register::R1, timeout: None },
    ]
}

pub fn masquerade(fully_random: bool) -> Expr {
    Expr::Masquerade { fully_random }
}

pub fn reject() -> Expr {
    Expr::Reject { kind: RejectKind::IcmpUnreachable(3) }
}

/// `& mask <op> 0` on the 32-bit value in register 1 (how nft tests flags).
fn masked_test(mask: u32, op: CmpOp) -> [Expr; 2] {
    [
        Expr::Bitwise {
            sreg: Register::R1,
            dreg: Register::R1,
            len: 4,
            mask: mask.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp { op, sreg: Register::R1, data: vec![0; 4] },
    ]
}

/// `meta mark set (meta mark & mask) ^ xor`.
fn rewrite_mark(mask: u32, xor: u32) -> [Expr; 3] {
    [
        Expr::Meta { key: MetaKey::Mark, dreg: Register::R1 },
        Expr::Bitwise {
            sreg: Register::R1,
            dreg: Register::R1,
            len: 4,
            mask: mask.to_ne_bytes().to_vec(),
            xor: xor.to_ne_bytes().to_vec(),
        },
        Expr::MetaSet { key: MetaKey::Mark, sreg: Register::R1 },
    ]
}
