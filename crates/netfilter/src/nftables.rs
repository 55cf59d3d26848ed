//! nf_tables objects (tables, chains, rules, sets, maps, elements) and their netlink encoding.
//!
//! A [`Batch`] collects messages and encodes them as one `NFNL_MSG_BATCH_BEGIN … BATCH_END`
//! transaction, which the kernel applies all-or-nothing; [`crate::Socket::apply`] sends it. Nothing
//! here decides *what* to program: callers build expressions register by register, the way
//! `nft --debug=netlink` prints them. The layout mirrors what nft 1.0.6 sends, attribute for
//! attribute, so that `nft list ruleset` prints what this crate programmed exactly as it prints
//! what nft programmed (see the crate's golden tests).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::nla::{Writer, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};

mod expr;

/// `NFNL_SUBSYS_NFTABLES`: the nfnetlink subsystem of nf_tables messages.
pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` (`NLMSG_MIN_TYPE`).
pub(crate) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub(crate) const NFNL_MSG_BATCH_END: u16 = 0x11;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_TIMEOUT: u16 = 11;
const NFTA_SET_USERDATA: u16 = 13;

const NFT_SET_MAP: u32 = 0x8;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NFT_SET_EVAL: u32 = 0x20;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;

pub(crate) const NFTA_LIST_ELEM: u16 = 1;
pub(crate) const NFTA_DATA_VALUE: u16 = 1;
pub(crate) const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// `NFT_DATA_VERDICT`: the data type of a verdict map.
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
/// nft's `CONCAT_TYPE_BITS`: a concatenation's type id is its fields' ids, 6 bits each.
const CONCAT_TYPE_BITS: u32 = 6;
/// nft's `EXPR_CONCAT` expression type, as recorded in a set's `typeof` user data.
const NFT_EXPR_CONCAT: u8 = 13;

// User data nft attaches to sets (libnftnl `enum nftnl_udata_set_types`), so that it prints
// values in the right byte order and recognises concatenations.
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const UDATA_SET_DATABYTEORDER: u8 = 1;
const UDATA_SET_KEY_TYPEOF: u8 = 3;
const UDATA_SET_DATA_TYPEOF: u8 = 4;
const UDATA_SET_DATA_INTERVAL: u8 = 6;
const UDATA_TYPEOF_EXPR_TYPE: u8 = 0;
const UDATA_TYPEOF_EXPR_DATA: u8 = 1;

// nft's `enum byteorder`.
const BYTEORDER_INVALID: u32 = 0;
const BYTEORDER_HOST_ENDIAN: u32 = 1;
const BYTEORDER_BIG_ENDIAN: u32 = 2;

/// Element messages are cut so that their element list stays below the 16-bit attribute length
/// limit (nft does the same); a 250,000-element sync becomes a few hundred messages.
const MAX_ELEMENT_LIST: usize = 64 * 1024 - 512;

/// `ct state` bits (`NF_CT_STATE_BIT`), as loaded by `Expr::Ct { key: CtKey::State, .. }`.
pub const CT_STATE_INVALID: u32 = 1;
/// `ct state established`.
pub const CT_STATE_ESTABLISHED: u32 = 1 << 1;
/// `ct state related`.
pub const CT_STATE_RELATED: u32 = 1 << 2;
/// `ct state new`.
pub const CT_STATE_NEW: u32 = 1 << 3;
/// `ct state untracked`.
pub const CT_STATE_UNTRACKED: u32 = 1 << 6;
/// `ct status snat` (`IPS_SRC_NAT`).
pub const CT_STATUS_SNAT: u32 = 1 << 4;
/// `ct status dnat` (`IPS_DST_NAT`).
pub const CT_STATUS_DNAT: u32 = 1 << 5;
/// `fib … type local`: `RTN_LOCAL`, as loaded by `Expr::Fib { result: FibResult::AddrType, .. }`.
pub const RTN_LOCAL: u32 = 2;

/// The address family of a table and of everything in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `ip` (`NFPROTO_IPV4`).
    Ipv4,
    /// `inet` (`NFPROTO_INET`): IPv4 and IPv6.
    Inet,
}

impl Family {
    /// The `NFPROTO_*` number.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::Ipv4 => 2,
            Family::Inet => 1,
        }
    }
}

/// A netfilter hook a base chain attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    /// `NF_INET_*` hook number.
    fn number(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }
}

/// The type of a base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainType {
    Filter,
    Nat,
}

impl ChainType {
    fn name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        }
    }
}

/// What makes a chain a base chain: where it hooks in. Its policy is always accept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BaseChain {
    pub hook: Hook,
    /// nft's numbers: `dstnat` is -100, `srcnat` 100, `filter` 0.
    pub priority: i32,
    pub kind: ChainType,
}

/// The outcome of a rule, or the data of a verdict-map element.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Continue,
    Jump(String),
    Goto(String),
}

impl Verdict {
    /// `NF_ACCEPT`, `NF_DROP` or an `NFT_*` verdict code, and the chain for jump and goto.
    fn code(&self) -> (i32, Option<&str>) {
        match self {
            Verdict::Accept => (1, None),
            Verdict::Drop => (0, None),
            Verdict::Continue => (-1, None),
            Verdict::Return => (-5, None),
            Verdict::Jump(chain) => (-3, Some(chain)),
            Verdict::Goto(chain) => (-4, Some(chain)),
        }
    }
}

/// nft data types, with the type ids and lengths nft uses, so that `nft list` prints them by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `ipv4_addr` (7): 4 bytes, network order.
    Ipv4Addr,
    /// `inet_proto` (12): 1 byte.
    InetProto,
    /// `inet_service` (13): 2 bytes, network order.
    InetService,
    /// `mark` (19): 4 bytes, host order.
    Mark,
    /// `integer` (4), 4 bytes in host order: a `numgen` result, for instance. nft 1.0.6 cannot list
    /// a set with a plain integer in a concatenation, so such a set carries nft's `typeof`
    /// description (see [`Batch::add_set`]), where this field reads `numgen random mod 0`.
    Integer32,
    /// The result of `numgen random mod N`: an `Integer32` that `nft list` shows as
    /// `typeof … numgen random mod N`, exactly as for a map nft created with that `typeof`.
    NumgenRandom(u32),
}

impl DataType {
    /// nft's `TYPE_*` id.
    pub fn id(self) -> u32 {
        match self {
            DataType::Ipv4Addr => 7,
            DataType::InetProto => 12,
            DataType::InetService => 13,
            DataType::Mark => 19,
            DataType::Integer32 | DataType::NumgenRandom(_) => 4,
        }
    }

    /// The length of one value, before any concatenation padding.
    pub fn size(self) -> u32 {
        match self {
            DataType::Ipv4Addr | DataType::Mark | DataType::Integer32 | DataType::NumgenRandom(_) => 4,
            DataType::InetProto => 1,
            DataType::InetService => 2,
        }
    }

    /// nft's byte order of the type (recorded in the set's user data).
    fn byteorder(self) -> u32 {
        match self {
            DataType::Ipv4Addr | DataType::InetService => BYTEORDER_BIG_ENDIAN,
            DataType::Mark | DataType::Integer32 | DataType::NumgenRandom(_) => BYTEORDER_HOST_ENDIAN,
            DataType::InetProto => BYTEORDER_INVALID,
        }
    }

    fn is_integer(self) -> bool {
        matches!(self, DataType::Integer32 | DataType::NumgenRandom(_))
    }

    /// The expression nft's `typeof` records for a field of this type (its user data: expression
    /// type, then the expression's own attributes): `ip daddr`, `meta l4proto`, `th dport`,
    /// `meta mark`, `numgen random mod N`.
    fn put_typeof(self, u: &mut Vec<u8>) {
        const EXPR_PAYLOAD: u32 = 7;
        const EXPR_META: u32 = 9;
        const EXPR_NUMGEN: u32 = 23;
        const PROTO_DESC_TH: u32 = 11;
        const PROTO_DESC_IP: u32 = 12;
        const IPHDR_DADDR: u32 = 12;
        const THDR_DPORT: u32 = 2;
        const NFT_META_MARK: u32 = 3;
        const NFT_META_L4PROTO: u32 = 16;
        const NFT_NG_RANDOM: u32 = 1;
        let (expr, attrs): (u32, &[u32]) = match self {
            DataType::Ipv4Addr => (EXPR_PAYLOAD, &[PROTO_DESC_IP, IPHDR_DADDR]),
            DataType::InetService => (EXPR_PAYLOAD, &[PROTO_DESC_TH, THDR_DPORT]),
            DataType::InetProto => (EXPR_META, &[NFT_META_L4PROTO]),
            DataType::Mark => (EXPR_META, &[NFT_META_MARK]),
            DataType::Integer32 => (EXPR_NUMGEN, &[NFT_NG_RANDOM, 0, 0]),
            DataType::NumgenRandom(modulus) => {
                udata_u32(u, UDATA_TYPEOF_EXPR_TYPE, EXPR_NUMGEN);
                let nest = udata_begin(u, UDATA_TYPEOF_EXPR_DATA);
                for (i, v) in [NFT_NG_RANDOM, modulus, 0].into_iter().enumerate() {
                    udata_u32(u, i as u8, v);
                }
                udata_end(u, nest);
                return;
            }
        };
        udata_u32(u, UDATA_TYPEOF_EXPR_TYPE, expr);
        let nest = udata_begin(u, UDATA_TYPEOF_EXPR_DATA);
        for (i, v) in attrs.iter().enumerate() {
            udata_u32(u, i as u8, *v);
        }
        udata_end(u, nest);
    }
}

// nftnl user data: records of { u8 type, u8 length, value }, nested by value.
fn udata_u32(u: &mut Vec<u8>, kind: u8, v: u32) {
    u.extend_from_slice(&[kind, 4]);
    u.extend_from_slice(&v.to_ne_bytes());
}

fn udata_begin(u: &mut Vec<u8>, kind: u8) -> usize {
    u.extend_from_slice(&[kind, 0]);
    u.len()
}

fn udata_end(u: &mut [u8], start: usize) {
    u[start - 1] = u8::try_from(u.len() - start).expect("typeof descriptions are short");
}

/// nft's `typeof` user data for a key or map data: one expression, or a concatenation of them.
fn put_typeof(u: &mut Vec<u8>, kind: u8, types: &[DataType]) {
    let outer = udata_begin(u, kind);
    match types {
        [single] => single.put_typeof(u),
        fields => {
            udata_u32(u, UDATA_TYPEOF_EXPR_TYPE, u32::from(NFT_EXPR_CONCAT));
            let list = udata_begin(u, UDATA_TYPEOF_EXPR_DATA);
            for (i, field) in fields.iter().enumerate() {
                let item = udata_begin(u, i as u8);
                field.put_typeof(u);
                udata_end(u, item);
            }
            udata_end(u, list);
        }
    }
    udata_end(u, outer);
}

/// The data of a map.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SetData {
    /// A verdict map (`vmap`).
    Verdict,
    /// A data map; more than one type is a concatenation.
    Types(Vec<DataType>),
}

/// A named set or map.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SetSpec {
    pub name: String,
    /// The key's field types; more than one is a concatenation.
    pub key: Vec<DataType>,
    /// `Some` for a map.
    pub data: Option<SetData>,
    /// The default element timeout; implies `flags timeout`.
    pub timeout: Option<Duration>,
    /// Updated from the packet path (`update @set { … }`): `flags dynamic`.
    pub dynamic: bool,
}

/// One field value of a key or of map data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Ipv4(Ipv4Addr),
    Proto(u8),
    Port(u16),
    /// Host byte order: marks, numgen results.
    U32(u32),
}

/// The data of one map element.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ElementData {
    Verdict(Verdict),
    Values(Vec<Value>),
}

/// One set or map element.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Element {
    pub key: Vec<Value>,
    pub data: Option<ElementData>,
}

/// A register. nft loads a single value into `R1` and the fields of a concatenation into
/// consecutive 32-bit registers starting at `R1` (`R1`, `R32(1)`, `R32(2)`, …), which is how
/// `nft --debug=netlink` prints them ("reg 1", "reg 9", "reg 10", …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Register {
    Verdict,
    /// 16-byte registers `NFT_REG_1` … `NFT_REG_4`.
    R1,
    R2,
    R3,
    R4,
    /// 4-byte register `NFT_REG32_00 + n` (n < 16); `R32(0)` overlaps the start of `R1`.
    R32(u8),
}

impl Register {
    fn number(self) -> u32 {
        match self {
            Register::Verdict => 0,
            Register::R1 => 1,
            Register::R2 => 2,
            Register::R3 => 3,
            Register::R4 => 4,
            Register::R32(n) => 8 + u32::from(n),
        }
    }
}

/// Where a payload load starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadBase {
    /// `NFT_PAYLOAD_LL_HEADER`.
    LinkLayer,
    /// `NFT_PAYLOAD_NETWORK_HEADER`: `ip daddr` is offset 16, length 4.
    Network,
    /// `NFT_PAYLOAD_TRANSPORT_HEADER`: `th dport` is offset 2, length 2.
    Transport,
}

/// `meta` keys (`NFT_META_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaKey {
    /// `meta protocol` (ethertype, 2 bytes).
    Protocol,
    Mark,
    /// Interface index, 4 bytes host order.
    Iif,
    Oif,
    /// Interface name, 16 bytes NUL-padded.
    IifName,
    OifName,
    /// `meta nfproto` (1 byte).
    Nfproto,
    /// `meta l4proto` (1 byte).
    L4Proto,
}

impl MetaKey {
    fn number(self) -> u32 {
        match self {
            MetaKey::Protocol => 1,
            MetaKey::Mark => 3,
            MetaKey::Iif => 4,
            MetaKey::Oif => 5,
            MetaKey::IifName => 6,
            MetaKey::OifName => 7,
            MetaKey::Nfproto => 15,
            MetaKey::L4Proto => 16,
        }
    }
}

/// Comparison operators (`NFT_CMP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// What an `immediate` expression loads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImmediateData {
    /// Into `Register::Verdict`: the rule's verdict.
    Verdict(Verdict),
    /// Into a data register, e.g. a DNAT address (network order) before a `nat` expression.
    Bytes(Vec<u8>),
}

/// `numgen` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumgenKind {
    Random,
    Incremental,
}

/// `ct` keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtKey {
    /// 4 bytes host order, the `CT_STATE_*` bits.
    State,
    /// 4 bytes host order, `IPS_*` bits (`CT_STATUS_DNAT`, …).
    Status,
    Mark,
    /// `ct protocol` (1 byte); needs a direction.
    Protocol,
    /// `ct original ip saddr` (4 bytes); needs a direction.
    SrcIp,
    DstIp,
    /// `ct original proto-src` (2 bytes); needs a direction.
    ProtoSrc,
    ProtoDst,
}

impl CtKey {
    fn number(self) -> u32 {
        match self {
            CtKey::State => 0,
            CtKey::Status => 2,
            CtKey::Mark => 3,
            CtKey::Protocol => 10,
            CtKey::ProtoSrc => 11,
            CtKey::ProtoDst => 12,
            CtKey::SrcIp => 19,
            CtKey::DstIp => 20,
        }
    }
}

/// A conntrack direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CtDirection {
    Original,
    Reply,
}

/// What a `fib` lookup is keyed on (`NFTA_FIB_F_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FibFlags {
    pub saddr: bool,
    pub daddr: bool,
    pub iif: bool,
    pub oif: bool,
}

impl FibFlags {
    fn bits(self) -> u32 {
        u32::from(self.saddr) | u32::from(self.daddr) << 1 | u32::from(self.iif) << 3 | u32::from(self.oif) << 4
    }
}

/// What a `fib` lookup returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FibResult {
    /// The output interface index (4 bytes host order).
    Oif,
    /// The route type (4 bytes host order): `RTN_LOCAL` for `type local`.
    AddrType,
}

/// `dnat` or `snat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    Dnat,
    Snat,
}

/// `nat` and `masquerade` flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NatFlags {
    pub random: bool,
    pub fully_random: bool,
    pub persistent: bool,
}

/// How `reject` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// ICMP destination unreachable with this code (3 = port unreachable, nft's default).
    IcmpUnreachable(u8),
    /// A TCP reset (only for TCP packets: match `meta l4proto tcp` first).
    TcpReset,
    /// ICMP/ICMPv6-agnostic unreachable (inet tables), `NFT_REJECT_ICMPX_*` code.
    IcmpxUnreachable(u8),
}

/// `dynset` operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DynsetOp {
    /// `add @set { key }`: insert if absent.
    Add,
    /// `update @set { key }`: insert or refresh the timeout.
    Update,
}

/// One nf_tables expression, at the level `nft --debug=netlink` prints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `[ payload load <len>b @ <base> header + <offset> => reg <dreg> ]`
    Payload { base: PayloadBase, offset: u32, len: u32, dreg: Register },
    /// `[ meta load <key> => reg <dreg> ]`
    Meta { key: MetaKey, dreg: Register },
    /// `[ meta set <key> with reg <sreg> ]`
    MetaSet { key: MetaKey, sreg: Register },
    /// `[ cmp <op> reg <sreg> <data> ]`; `data` is as long as what was loaded.
    Cmp { op: CmpOp, sreg: Register, data: Vec<u8> },
    /// `[ bitwise reg <dreg> = ( reg <sreg> & <mask> ) ^ <xor> ]`
    Bitwise { sreg: Register, dreg: Register, len: u32, mask: Vec<u8>, xor: Vec<u8> },
    /// `[ lookup reg <sreg> set <set> [dreg <dreg>] ]`: `dreg` is `Some(Register::Verdict)` for a
    /// verdict map, `Some(reg)` for a data map, `None` for a set; `invert` is `!= @set`.
    Lookup { set: String, sreg: Register, dreg: Option<Register>, invert: bool },
    /// `[ immediate reg <dreg> <data> ]`
    Immediate { dreg: Register, data: ImmediateData },
    /// `[ numgen reg <dreg> = random mod <modulus> offset <offset> ]`
    Numgen { dreg: Register, modulus: u32, kind: NumgenKind, offset: u32 },
    /// `[ ct load <key> => reg <dreg> [, dir original] ]`
    Ct { key: CtKey, direction: Option<CtDirection>, dreg: Register },
    /// `[ fib <flags> <result> => reg <dreg> ]`
    Fib { flags: FibFlags, result: FibResult, dreg: Register },
    /// `[ nat dnat ip addr_min reg <addr> proto_min reg <port> ]`, for IPv4.
    Nat { kind: NatKind, addr: Option<Register>, port: Option<Register>, flags: NatFlags },
    /// `[ masq ]`
    Masquerade { fully_random: bool },
    /// `[ reject type <t> code <c> ]`
    Reject { kind: RejectKind },
    /// `[ dynset <op> reg_key <sreg_key> set <set> [timeout <t>] ]`
    Dynset { op: DynsetOp, set: String, sreg_key: Register, timeout: Option<Duration> },
    /// `[ counter ]`
    Counter,
    /// `[ notrack ]`: the packet is not tracked by conntrack (so no NAT applies to it); only in
    /// a chain that runs before conntrack does (priority `raw`, -300).
    Notrack,
}

/// The bytes of one value, unpadded: what a single-field set key or a `cmp` after a load of that
/// field holds (`Port(80)` is `00 50`, `Proto(6)` is `06`, `U32` is host order).
pub fn value_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(4);
    push_value(&mut out, value, false);
    out
}

/// The bytes of a concatenation: each field padded to 4 bytes, as nf_tables lays concatenated
/// registers and set keys out.
pub fn key_bytes(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4);
    for value in values {
        push_value(&mut out, value, true);
    }
    out
}

fn push_value(out: &mut Vec<u8>, value: &Value, pad: bool) {
    let start = out.len();
    match value {
        Value::Ipv4(addr) => out.extend_from_slice(&addr.octets()),
        Value::Proto(proto) => out.push(*proto),
        Value::Port(port) => out.extend_from_slice(&port.to_be_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_ne_bytes()),
    }
    if pad {
        let padded = start + crate::nla::align(out.len() - start);
        out.resize(padded, 0);
    }
}

/// Writes the value of a set key or map data: a single field as is, a concatenation padded.
fn push_values(out: &mut Vec<u8>, values: &[Value], concat: bool) {
    for value in values {
        push_value(out, value, concat);
    }
}

/// Type id, length and byte order of a key or of map data as the kernel and nft see them.
fn type_of(types: &[DataType]) -> (u32, u32, u32) {
    match types {
        [single] => (single.id(), single.size(), single.byteorder()),
        fields => {
            let id = fields.iter().fold(0u32, |acc, t| (acc << CONCAT_TYPE_BITS) | t.id());
            let len = fields.iter().map(|t| (t.size() + 3) & !3).sum();
            (id, len, BYTEORDER_INVALID)
        }
    }
}

/// One message of a batch: where it starts in the buffer and what it does, for error reports.
#[derive(Clone, Debug)]
struct Message {
    offset: usize,
    operation: String,
}

/// An nf_tables transaction under construction. Pure: encoding only, no I/O.
#[derive(Clone, Debug)]
pub struct Batch {
    family: Family,
    /// The messages, back to back, with sequence number 0 (filled in by `encode`).
    buf: Writer,
    messages: Vec<Message>,
    /// Sets created in this batch (table, set) → `NFTA_SET_ID`, which later messages of the
    /// same batch quote, as nft does.
    set_ids: HashMap<(String, String), u32>,
    next_set_id: u32,
}

impl Batch {
    pub fn new(family: Family) -> Batch {
        Batch { family, buf: Writer::new(), messages: Vec::new(), set_ids: HashMap::new(), next_set_id: 1 }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The number of messages, not counting the batch's begin and end markers.
    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    /// The human-readable description of message `index` (0-based, in the order added).
    pub fn operation(&self, index: usize) -> Option<&str> {
        self.messages.get(index).map(|m| m.operation.as_str())
    }

    /// The size in bytes of `encode`'s result.
    pub fn encoded_len(&self) -> usize {
        self.buf.len() + 2 * 20
    }

    fn begin(&mut self, msg_type: u16, flags: u16, operation: String) -> usize {
        let offset = self.buf.begin_msg(
            NFNL_SUBSYS_NFTABLES << 8 | msg_type,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            0,
            self.family.nfproto(),
            0,
        );
        self.messages.push(Message { offset, operation });
        offset
    }

    /// `add table`: creates the table, or does nothing if it exists.
    pub fn add_table(&mut self, table: &str) {
        let m = self.begin(NFT_MSG_NEWTABLE, NLM_F_CREATE, format!("add table {table}"));
        self.buf.strz(NFTA_TABLE_NAME, table);
        self.buf.be32(NFTA_TABLE_FLAGS, 0);
        self.buf.end_msg(m);
    }

    /// `delete table`: removes the table and everything in it (an error if it does not exist).
    pub fn delete_table(&mut self, table: &str) {
        let m = self.begin(NFT_MSG_DELTABLE, 0, format!("delete table {table}"));
        self.buf.strz(NFTA_TABLE_NAME, table);
        self.buf.end_msg(m);
    }

    /// `add chain`: creates the chain, or does nothing if it exists. A base chain's policy is
    /// accept.
    pub fn add_chain(&mut self, table: &str, chain: &str, base: Option<&BaseChain>) {
        let m = self.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE, format!("add chain {table} {chain}"));
        self.buf.strz(NFTA_CHAIN_TABLE, table);
        self.buf.strz(NFTA_CHAIN_NAME, chain);
        if let Some(base) = base {
            self.buf.strz(NFTA_CHAIN_TYPE, base.kind.name());
            self.buf.be32(NFTA_CHAIN_POLICY, 1); // NF_ACCEPT
            let hook = self.buf.begin_nest(NFTA_CHAIN_HOOK);
            self.buf.be32(NFTA_HOOK_HOOKNUM, base.hook.number());
            self.buf.be32(NFTA_HOOK_PRIORITY, base.priority as u32);
            self.buf.end_nest(hook);
        }
        self.buf.end_msg(m);
    }

    /// `flush chain`: deletes every rule of the chain.
    pub fn flush_chain(&mut self, table: &str, chain: &str) {
        let m = self.begin(NFT_MSG_DELRULE, 0, format!("flush chain {table} {chain}"));
        self.buf.strz(NFTA_RULE_TABLE, table);
        self.buf.strz(NFTA_RULE_CHAIN, chain);
        self.buf.end_msg(m);
    }

    /// `delete chain` (the chain must be empty and unreferenced).
    pub fn delete_chain(&mut self, table: &str, chain: &str) {
        let m = self.begin(NFT_MSG_DELCHAIN, 0, format!("delete chain {table} {chain}"));
        self.buf.strz(NFTA_CHAIN_TABLE, table);
        self.buf.strz(NFTA_CHAIN_NAME, chain);
        self.buf.end_msg(m);
    }

    /// `add rule`: appends a rule to the chain.
    pub fn add_rule(&mut self, table: &str, chain: &str, exprs: &[Expr]) {
        let m = self.begin(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, format!("add rule {table} {chain}"));
        self.buf.strz(NFTA_RULE_TABLE, table);
        self.buf.strz(NFTA_RULE_CHAIN, chain);
        let list = self.buf.begin_nest(NFTA_RULE_EXPRESSIONS);
        for e in exprs {
            let set_id = |name: &str| self.set_ids.get(&(table.to_owned(), name.to_owned())).copied();
            let set_id = match e {
                Expr::Lookup { set, .. } | Expr::Dynset { set, .. } => set_id(set),
                _ => None,
            };
            expr::put(&mut self.buf, e, set_id);
        }
        self.buf.end_nest(list);
        self.buf.end_msg(m);
    }

    /// `add set` / `add map`: creates it, or does nothing if an identical one exists.
    pub fn add_set(&mut self, table: &str, set: &SetSpec) {
        let noun = if set.data.is_some() { "map" } else { "set" };
        let m = self.begin(NFT_MSG_NEWSET, NLM_F_CREATE, format!("add {noun} {table} {}", set.name));
        let id = self.next_set_id;
        self.next_set_id += 1;
        self.set_ids.insert((table.to_owned(), set.name.clone()), id);

        let (key_type, key_len, key_order) = type_of(&set.key);
        let mut flags = 0;
        if set.data.is_some() {
            flags |= NFT_SET_MAP;
        }
        if set.timeout.is_some() {
            flags |= NFT_SET_TIMEOUT;
        }
        if set.dynamic {
            flags |= NFT_SET_EVAL;
        }
        self.buf.strz(NFTA_SET_TABLE, table);
        self.buf.strz(NFTA_SET_NAME, &set.name);
        self.buf.be32(NFTA_SET_FLAGS, flags);
        self.buf.be32(NFTA_SET_KEY_TYPE, key_type);
        self.buf.be32(NFTA_SET_KEY_LEN, key_len);
        let data = match &set.data {
            None => None,
            Some(SetData::Verdict) => Some((NFT_DATA_VERDICT, 0, BYTEORDER_INVALID, false)),
            Some(SetData::Types(types)) => {
                let (t, l, o) = type_of(types);
                Some((t, l, o, types.len() > 1))
            }
        };
        if let Some((data_type, data_len, _, _)) = data {
            self.buf.be32(NFTA_SET_DATA_TYPE, data_type);
            self.buf.be32(NFTA_SET_DATA_LEN, data_len);
        }
        self.buf.be32(NFTA_SET_ID, id);
        if let Some(timeout) = set.timeout {
            self.buf.be64(NFTA_SET_TIMEOUT, u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        }

        // The user data nft writes: byte orders; for `type a . b` keys and data an empty `typeof`
        // concatenation; and, where a field is an integer (which nft cannot size from the type
        // alone), the full `typeof` description of key and data.
        let mut udata = Vec::with_capacity(32);
        let data_types = match &set.data {
            Some(SetData::Types(types)) => Some(types.as_slice()),
            _ => None,
        };
        let with_typeof = set.key.iter().chain(data_types.unwrap_or(&[])).any(|t| t.is_integer());
        let empty_concat = |u: &mut Vec<u8>, kind: u8| {
            let outer = udata_begin(u, kind);
            udata_u32(u, UDATA_TYPEOF_EXPR_TYPE, u32::from(NFT_EXPR_CONCAT));
            let list = udata_begin(u, UDATA_TYPEOF_EXPR_DATA);
            udata_end(u, list);
            udata_end(u, outer);
        };
        udata_u32(&mut udata, UDATA_SET_KEYBYTEORDER, key_order);
        if let Some((_, _, data_order, _)) = data {
            udata_u32(&mut udata, UDATA_SET_DATABYTEORDER, data_order);
        }
        if with_typeof {
            put_typeof(&mut udata, UDATA_SET_KEY_TYPEOF, &set.key);
        } else if set.key.len() > 1 {
            empty_concat(&mut udata, UDATA_SET_KEY_TYPEOF);
        }
        if let Some((_, _, _, data_concat)) = data {
            if let (true, Some(types)) = (with_typeof, data_types) {
                put_typeof(&mut udata, UDATA_SET_DATA_TYPEOF, types);
            } else if data_concat {
                empty_concat(&mut udata, UDATA_SET_DATA_TYPEOF);
            }
            udata_u32(&mut udata, UDATA_SET_DATA_INTERVAL, 0);
        }
        self.buf.bytes(NFTA_SET_USERDATA, &udata);
        self.buf.end_msg(m);
    }

    /// `flush set` / `flush map`: deletes every element.
    pub fn flush_set(&mut self, table: &str, set: &str) {
        let m = self.begin(NFT_MSG_DELSETELEM, 0, format!("flush set {table} {set}"));
        self.buf.strz(NFTA_SET_ELEM_LIST_TABLE, table);
        self.buf.strz(NFTA_SET_ELEM_LIST_SET, set);
        self.buf.end_msg(m);
    }

    /// `delete set` / `delete map` (it must be unreferenced).
    pub fn delete_set(&mut self, table: &str, set: &str) {
        let m = self.begin(NFT_MSG_DELSET, 0, format!("delete set {table} {set}"));
        self.buf.strz(NFTA_SET_TABLE, table);
        self.buf.strz(NFTA_SET_NAME, set);
        self.buf.end_msg(m);
    }

    /// `add element`: adds elements (an existing element is left as it is), in as many
    /// messages as their size needs.
    pub fn add_elements(&mut self, table: &str, set: &SetSpec, elements: &[Element]) {
        self.elements(NFT_MSG_NEWSETELEM, NLM_F_CREATE, "add element", table, set, elements);
    }

    /// `delete element`: deletes elements by key (an error if one does not exist).
    pub fn delete_elements(&mut self, table: &str, set: &SetSpec, elements: &[Element]) {
        self.elements(NFT_MSG_DELSETELEM, 0, "delete element", table, set, elements);
    }

    fn elements(&mut self, msg_type: u16, flags: u16, verb: &str, table: &str, set: &SetSpec, elements: &[Element]) {
        if elements.is_empty() {
            return;
        }
        let set_id = self.set_ids.get(&(table.to_owned(), set.name.clone())).copied();
        let with_data = msg_type == NFT_MSG_NEWSETELEM && set.data.is_some();
        let key_concat = set.key.len() > 1;
        let data_concat = matches!(&set.data, Some(SetData::Types(t)) if t.len() > 1);
        let operation = format!("{verb} {table} {}", set.name);
        let mut value = Vec::with_capacity(64);
        let mut data_value = Vec::with_capacity(64);

        let open = |batch: &mut Batch| -> (usize, usize) {
            let m = batch.begin(msg_type, flags, operation.clone());
            batch.buf.strz(NFTA_SET_ELEM_LIST_TABLE, table);
            batch.buf.strz(NFTA_SET_ELEM_LIST_SET, &set.name);
            if let Some(id) = set_id {
                if msg_type == NFT_MSG_NEWSETELEM {
                    batch.buf.be32(NFTA_SET_ELEM_LIST_SET_ID, id);
                }
            }
            let list = batch.buf.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            (m, list)
        };
        let (mut m, mut list) = open(self);
        // nft numbers the elements of a list (1, 2, …) where other lists repeat NFTA_LIST_ELEM;
        // the kernel does not look. A message holds fewer than 0x3fff elements.
        let mut index: u16 = 0;
        for element in elements {
            let start = self.buf.len();
            index += 1;
            value.clear();
            push_values(&mut value, &element.key, key_concat);
            let data = match (&element.data, with_data) {
                (Some(ElementData::Values(values)), true) => {
                    data_value.clear();
                    push_values(&mut data_value, values, data_concat);
                    Some(ElementBytes::Value(&data_value))
                }
                (Some(ElementData::Verdict(verdict)), true) => Some(ElementBytes::Verdict(verdict)),
                _ => None,
            };
            push_element(&mut self.buf.buf, index, &value, data);
            if self.buf.len() - list > MAX_ELEMENT_LIST && start > list + 4 {
                // This element does not fit: close the message without it and restart.
                let moved = self.buf.buf[start..].to_vec();
                self.buf.truncate(start);
                self.buf.end_nest(list);
                self.buf.end_msg(m);
                (m, list) = open(self);
                index = 1;
                moved_index(&mut self.buf.buf, &moved, index);
            }
        }
        self.buf.end_nest(list);
        self.buf.end_msg(m);
    }

    /// The transaction's bytes: `BATCH_BEGIN` with `first_seq`, the messages with the following
    /// sequence numbers in the order they were added, then `BATCH_END`.
    pub fn encode(&self, first_seq: u32) -> Vec<u8> {
        let mut out = Writer { buf: Vec::with_capacity(self.encoded_len()) };
        let begin = out.begin_msg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, first_seq, 0, NFNL_SUBSYS_NFTABLES);
        out.end_msg(begin);
        let base = out.len();
        out.buf.extend_from_slice(&self.buf.buf);
        let mut seq = first_seq;
        for message in &self.messages {
            seq = seq.wrapping_add(1);
            let at = base + message.offset + 8;
            out.buf[at..at + 4].copy_from_slice(&seq.to_ne_bytes());
        }
        let end = out.begin_msg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq.wrapping_add(1), 0, NFNL_SUBSYS_NFTABLES);
        out.end_msg(end);
        out.buf
    }
}

/// The data of one element, encoded.
enum ElementBytes<'a> {
    Value(&'a [u8]),
    Verdict(&'a Verdict),
}

/// Appends `NFTA_LIST_ELEM(index) { NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }, [NFTA_SET_ELEM_DATA
/// { NFTA_DATA_VALUE | NFTA_DATA_VERDICT { code, [chain] } }] }` in one go: the hot loop of a
/// big sync, so lengths are computed up front instead of patched.
fn push_element(buf: &mut Vec<u8>, index: u16, key: &[u8], data: Option<ElementBytes<'_>>) {
    use crate::nla::{align, NLA_F_NESTED};
    fn header(buf: &mut Vec<u8>, len: usize, kind: u16) {
        // Lengths are bounded by NFT_DATA_VALUE_MAXLEN and chain names (256 bytes).
        buf.extend_from_slice(&(len as u16).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
    }
    fn padded(buf: &mut Vec<u8>, bytes: &[u8]) {
        buf.extend_from_slice(bytes);
        buf.resize(align(buf.len()), 0);
    }
    let key_nest = 4 + 4 + align(key.len());
    let data_nest = match &data {
        None => 0,
        Some(ElementBytes::Value(v)) => 4 + 4 + align(v.len()),
        Some(ElementBytes::Verdict(verdict)) => {
            4 + 4 + 8 + verdict.code().1.map_or(0, |chain| 4 + align(chain.len() + 1))
        }
    };
    buf.reserve(4 + key_nest + data_nest);
    header(buf, 4 + key_nest + data_nest, index | NLA_F_NESTED);
    header(buf, key_nest, NFTA_SET_ELEM_KEY | NLA_F_NESTED);
    header(buf, 4 + key.len(), NFTA_DATA_VALUE);
    padded(buf, key);
    match data {
        None => {}
        Some(ElementBytes::Value(v)) => {
            header(buf, data_nest, NFTA_SET_ELEM_DATA | NLA_F_NESTED);
            header(buf, 4 + v.len(), NFTA_DATA_VALUE);
            padded(buf, v);
        }
        Some(ElementBytes::Verdict(verdict)) => {
            let (code, chain) = verdict.code();
            header(buf, data_nest, NFTA_SET_ELEM_DATA | NLA_F_NESTED);
            header(buf, data_nest - 4, NFTA_DATA_VERDICT | NLA_F_NESTED);
            header(buf, 8, NFTA_VERDICT_CODE);
            buf.extend_from_slice(&code.to_be_bytes());
            if let Some(chain) = chain {
                header(buf, 4 + chain.len() + 1, NFTA_VERDICT_CHAIN);
                buf.extend_from_slice(chain.as_bytes());
                padded(buf, &[0]);
            }
        }
    }
}

/// Appends an element's bytes, renumbered as the `index`th of its list.
fn moved_index(buf: &mut Vec<u8>, element: &[u8], index: u16) {
    let at = buf.len();
    buf.extend_from_slice(element);
    buf[at + 2..at + 4].copy_from_slice(&(index | crate::nla::NLA_F_NESTED).to_ne_bytes());
}

/// `NFTA_DATA_VERDICT { NFTA_VERDICT_CODE, [NFTA_VERDICT_CHAIN] }`.
pub(crate) fn put_verdict(w: &mut Writer, verdict: &Verdict) {
    let (code, chain) = verdict.code();
    let nest = w.begin_nest(NFTA_DATA_VERDICT);
    w.be32(NFTA_VERDICT_CODE, code as u32);
    if let Some(chain) = chain {
        w.strz(NFTA_VERDICT_CHAIN, chain);
    }
    w.end_nest(nest);
}

#[cfg(test)]
mod tests;
