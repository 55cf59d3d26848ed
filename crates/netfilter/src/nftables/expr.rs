//! Expression encoding: `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { … } }`, with each
//! expression's attributes in the order nft 1.0.6 writes them.

use super::{
    put_verdict, CmpOp, CtDirection, DynsetOp, Expr, FibResult, ImmediateData, NatKind, NumgenKind, PayloadBase,
    RejectKind, NFTA_DATA_VALUE, NFTA_LIST_ELEM,
};
use crate::nla::Writer;

const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;

const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_META_SREG: u16 = 3;

const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;

const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;

const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_LOOKUP_SET_ID: u16 = 4;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFT_LOOKUP_F_INV: u32 = 1;

const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;

const NFTA_NG_DREG: u16 = 1;
const NFTA_NG_MODULUS: u16 = 2;
const NFTA_NG_TYPE: u16 = 3;
const NFTA_NG_OFFSET: u16 = 4;

const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_CT_DIRECTION: u16 = 3;

const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;

const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFTA_NAT_FLAGS: u16 = 7;

const NFTA_MASQ_FLAGS: u16 = 1;

const NFTA_REJECT_TYPE: u16 = 1;
const NFTA_REJECT_ICMP_CODE: u16 = 2;

const NFTA_DYNSET_SET_NAME: u16 = 1;
const NFTA_DYNSET_SET_ID: u16 = 2;
const NFTA_DYNSET_OP: u16 = 3;
const NFTA_DYNSET_SREG_KEY: u16 = 4;
const NFTA_DYNSET_TIMEOUT: u16 = 6;

const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 1 << 1;
const NF_NAT_RANGE_PROTO_RANDOM: u32 = 1 << 2;
const NF_NAT_RANGE_PERSISTENT: u32 = 1 << 3;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 1 << 4;

const NFPROTO_IPV4: u32 = 2;

fn name(e: &Expr) -> &'static str {
    match e {
        Expr::Payload { .. } => "payload",
        Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
        Expr::Cmp { .. } => "cmp",
        Expr::Bitwise { .. } => "bitwise",
        Expr::Lookup { .. } => "lookup",
        Expr::Immediate { .. } => "immediate",
        Expr::Numgen { .. } => "numgen",
        Expr::Ct { .. } => "ct",
        Expr::Fib { .. } => "fib",
        Expr::Nat { .. } => "nat",
        Expr::Masquerade { .. } => "masq",
        Expr::Reject { .. } => "reject",
        Expr::Dynset { .. } => "dynset",
        Expr::Counter => "counter",
        Expr::Notrack => "notrack",
    }
}

fn data_value(w: &mut Writer, kind: u16, bytes: &[u8]) {
    let nest = w.begin_nest(kind);
    w.bytes(NFTA_DATA_VALUE, bytes);
    w.end_nest(nest);
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Writes one expression; `set_id` is the `NFTA_SET_ID` of the set a lookup or dynset names, if
/// that set is created in the same batch.
pub(super) fn put(w: &mut Writer, e: &Expr, set_id: Option<u32>) {
    let elem = w.begin_nest(NFTA_LIST_ELEM);
    w.strz(NFTA_EXPR_NAME, name(e));
    // An expression without attributes goes without a data nest, as nft sends it.
    let data = (*e != Expr::Notrack).then(|| w.begin_nest(NFTA_EXPR_DATA));
    match e {
        Expr::Payload { base, offset, len, dreg } => {
            let base = match base {
                PayloadBase::LinkLayer => 0,
                PayloadBase::Network => 1,
                PayloadBase::Transport => 2,
            };
            w.be32(NFTA_PAYLOAD_DREG, dreg.number());
            w.be32(NFTA_PAYLOAD_BASE, base);
            w.be32(NFTA_PAYLOAD_OFFSET, *offset);
            w.be32(NFTA_PAYLOAD_LEN, *len);
        }
        Expr::Meta { key, dreg } => {
            w.be32(NFTA_META_KEY, key.number());
            w.be32(NFTA_META_DREG, dreg.number());
        }
        Expr::MetaSet { key, sreg } => {
            w.be32(NFTA_META_KEY, key.number());
            w.be32(NFTA_META_SREG, sreg.number());
        }
        Expr::Cmp { op, sreg, data } => {
            let op = match op {
                CmpOp::Eq => 0,
                CmpOp::Neq => 1,
                CmpOp::Lt => 2,
                CmpOp::Lte => 3,
                CmpOp::Gt => 4,
                CmpOp::Gte => 5,
            };
            w.be32(NFTA_CMP_SREG, sreg.number());
            w.be32(NFTA_CMP_OP, op);
            data_value(w, NFTA_CMP_DATA, data);
        }
        Expr::Bitwise { sreg, dreg, len, mask, xor } => {
            w.be32(NFTA_BITWISE_SREG, sreg.number());
            w.be32(NFTA_BITWISE_DREG, dreg.number());
            w.be32(NFTA_BITWISE_LEN, *len);
            data_value(w, NFTA_BITWISE_MASK, mask);
            data_value(w, NFTA_BITWISE_XOR, xor);
        }
        Expr::Lookup { set, sreg, dreg, invert } => {
            w.be32(NFTA_LOOKUP_SREG, sreg.number());
            if let Some(dreg) = dreg {
                w.be32(NFTA_LOOKUP_DREG, dreg.number());
            }
            w.strz(NFTA_LOOKUP_SET, set);
            if let Some(id) = set_id {
                w.be32(NFTA_LOOKUP_SET_ID, id);
            }
            if *invert {
                w.be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
            }
        }
        Expr::Immediate { dreg, data } => {
            w.be32(NFTA_IMMEDIATE_DREG, dreg.number());
            match data {
                ImmediateData::Verdict(verdict) => {
                    let nest = w.begin_nest(NFTA_IMMEDIATE_DATA);
                    put_verdict(w, verdict);
                    w.end_nest(nest);
                }
                ImmediateData::Bytes(bytes) => data_value(w, NFTA_IMMEDIATE_DATA, bytes),
            }
        }
        Expr::Numgen { dreg, modulus, kind, offset } => {
            let kind = match kind {
                NumgenKind::Incremental => 0,
                NumgenKind::Random => 1,
            };
            w.be32(NFTA_NG_DREG, dreg.number());
            w.be32(NFTA_NG_MODULUS, *modulus);
            w.be32(NFTA_NG_TYPE, kind);
            w.be32(NFTA_NG_OFFSET, *offset);
        }
        Expr::Ct { key, direction, dreg } => {
            w.be32(NFTA_CT_KEY, key.number());
            w.be32(NFTA_CT_DREG, dreg.number());
            if let Some(direction) = direction {
                let dir = match direction {
                    CtDirection::Original => 0, // IP_CT_DIR_ORIGINAL
                    CtDirection::Reply => 1,
                };
                w.u8(NFTA_CT_DIRECTION, dir);
            }
        }
        Expr::Fib { flags, result, dreg } => {
            let result = match result {
                FibResult::Oif => 1,
                FibResult::AddrType => 3,
            };
            w.be32(NFTA_FIB_FLAGS, flags.bits());
            w.be32(NFTA_FIB_RESULT, result);
            w.be32(NFTA_FIB_DREG, dreg.number());
        }
        Expr::Nat { kind, addr, port, flags } => {
            let kind = match kind {
                NatKind::Snat => 0,
                NatKind::Dnat => 1,
            };
            w.be32(NFTA_NAT_TYPE, kind);
            w.be32(NFTA_NAT_FAMILY, NFPROTO_IPV4);
            if let Some(addr) = addr {
                w.be32(NFTA_NAT_REG_ADDR_MIN, addr.number());
            }
            let mut bits = 0;
            if let Some(port) = port {
                w.be32(NFTA_NAT_REG_PROTO_MIN, port.number());
                bits |= NF_NAT_RANGE_PROTO_SPECIFIED;
            }
            if flags.random {
                bits |= NF_NAT_RANGE_PROTO_RANDOM;
            }
            if flags.persistent {
                bits |= NF_NAT_RANGE_PERSISTENT;
            }
            if flags.fully_random {
                bits |= NF_NAT_RANGE_PROTO_RANDOM_FULLY;
            }
            if bits != 0 {
                w.be32(NFTA_NAT_FLAGS, bits);
            }
        }
        Expr::Masquerade { fully_random } => {
            if *fully_random {
                w.be32(NFTA_MASQ_FLAGS, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
            }
        }
        Expr::Reject { kind } => {
            let (kind, code) = match kind {
                RejectKind::IcmpUnreachable(code) => (0, *code),
                RejectKind::TcpReset => (1, 0),
                RejectKind::IcmpxUnreachable(code) => (2, *code),
            };
            w.be32(NFTA_REJECT_TYPE, kind);
            w.u8(NFTA_REJECT_ICMP_CODE, code);
        }
        Expr::Dynset { op, set, sreg_key, timeout } => {
            let op = match op {
                DynsetOp::Add => 0,
                DynsetOp::Update => 1,
            };
            w.be32(NFTA_DYNSET_SREG_KEY, sreg_key.number());
            w.be32(NFTA_DYNSET_OP, op);
            w.strz(NFTA_DYNSET_SET_NAME, set);
            if let Some(id) = set_id {
                w.be32(NFTA_DYNSET_SET_ID, id);
            }
            if let Some(timeout) = timeout {
                w.be64(NFTA_DYNSET_TIMEOUT, millis(*timeout));
            }
        }
        Expr::Counter | Expr::Notrack => {}
    }
    if let Some(data) = data {
        w.end_nest(data);
    }
    w.end_nest(elem);
}
