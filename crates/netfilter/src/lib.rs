//! nf_tables and conntrack spoken over netlink, in pure Rust: no `nft` program, no libnftnl.
//!
//! What it owns: the wire format of nf_tables objects ([`nftables`]: tables, chains, rules and
//! their expressions, sets, maps, elements), atomic transactions ([`Batch`], applied by
//! [`Socket::apply`] all-or-nothing), and deleting conntrack entries ([`conntrack`]). Everything
//! happens in the network namespace of the calling thread.
//!
//! What it must never do: decide policy. Which tables, chains, rules and elements exist, and
//! when, is the caller's business (the Service proxy's renderer); this crate only encodes what
//! it is given, the way `nft` itself would, so that `nft list ruleset` shows it faithfully.

pub mod conntrack;
pub mod nftables;
mod nla;
pub mod phrases;
mod socket;

pub use nftables::{
    key_bytes, value_bytes, BaseChain, Batch, ChainType, CmpOp, CtDirection, CtKey, DataType, DynsetOp, Element,
    ElementData, Expr, Family, FibFlags, FibResult, Hook, ImmediateData, MetaKey, NatFlags, NatKind, NumgenKind,
    PayloadBase, Register, RejectKind, SetData, SetSpec, Value, Verdict,
};
pub use socket::{ApplyError, Socket};
