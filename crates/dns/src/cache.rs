//! The forwarder's cache, as CoreDNS's `cache` plugin keeps one: positive answers and denials
//! (NXDOMAIN, NODATA) stored apart, each bounded in entries; an entry lives for the least TTL of
//! its records (a denial: its SOA's, RFC 2308 §5), clamped to `[min, max]`; a hit is the stored
//! response with the asker's ID, question spelling and RD bit, every TTL counting down.
//!
//! The key is the question (name lower-cased, type, class) and what changes an upstream's answer
//! for the same question: EDNS0 present, its DO bit, the CD bit. SERVFAIL is kept with the
//! denials for `servfail_ttl` (CoreDNS's `servfail`, 5 s), so a dead upstream is not asked again
//! for every query; truncated answers and other rcodes are not stored.
//!
//! Time comes from the caller (milliseconds on any monotonic clock), so the cache does no I/O.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::wire::{self, Parsed, HEADER_LEN, MAX_NAME};

/// Sizes and lifetimes (CoreDNS's defaults).
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Entries per kind (success, denial).
    pub capacity: usize,
    pub max_ttl: u32,
    pub min_ttl: u32,
    pub max_denial_ttl: u32,
    pub min_denial_ttl: u32,
    /// How long a SERVFAIL is kept; 0: never.
    pub servfail_ttl: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 9984,
            max_ttl: 3600,
            min_ttl: 5,
            max_denial_ttl: 1800,
            min_denial_ttl: 5,
            servfail_ttl: 5,
        }
    }
}

/// Which of the cache's two halves an entry belongs to (CoreDNS's `type` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKind {
    Success,
    Denial,
}

impl CacheKind {
    pub fn label(self) -> &'static str {
        match self {
            CacheKind::Success => "success",
            CacheKind::Denial => "denial",
        }
    }
}

/// What [`ForwardCache::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Kept; `evicted` says whether another entry made room for it.
    Yes { kind: CacheKind, evicted: bool },
    /// Not cacheable (truncated, another rcode, a question that does not match, TTL 0 with
    /// `min` 0, or bytes that do not decode).
    No,
}

const SHARDS: usize = 16;
/// Question name, type, class, flags.
const MAX_KEY: usize = MAX_NAME + 5;

struct Entry {
    /// The response as received (its ID is overwritten on each hit).
    bytes: Box<[u8]>,
    /// Where each record's TTL is (OPT excluded).
    ttls: Box<[u16]>,
    stored_ms: u64,
    ttl: u32,
    kind: CacheKind,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<Box<[u8]>, Entry>,
    counts: [usize; 2],
}

/// A bounded, sharded cache of forwarded answers. Lookups take one shard's lock briefly.
pub struct ForwardCache {
    config: CacheConfig,
    shards: Box<[Mutex<Shard>]>,
}

impl ForwardCache {
    pub fn new(config: CacheConfig) -> ForwardCache {
        ForwardCache { config, shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }

    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        // FNV-1a: the key is already lower-cased, so equal questions meet in one shard.
        let hash = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        self.shards[(hash % SHARDS as u64) as usize].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn per_shard(&self) -> usize {
        self.config.capacity.div_ceil(SHARDS).max(1)
    }

    /// Writes the cached answer to `request` into `out` (cleared first) and says which kind it
    /// was; `None` on a miss (or an expired entry, which is removed). A response larger than
    /// `max_size` is sent as a truncated header and question, so the client retries over TCP.
    pub fn get(&self, request: &[u8], now_ms: u64, max_size: usize, out: &mut Vec<u8>) -> Option<CacheKind> {
        let Parsed::Ok(req) = wire::parse(request) else { return None };
        let mut key = [0u8; MAX_KEY];
        let key = key_of(&req, &mut key);
        let mut shard = self.shard(key);
        let entry = shard.entries.get(key)?;
        let age = now_ms.saturating_sub(entry.stored_ms) / 1000;
        let Some(remaining) = u64::from(entry.ttl).checked_sub(age).filter(|r| *r > 0) else {
            let kind = entry.kind;
            shard.entries.remove(key);
            shard.counts[kind as usize] -= 1;
            return None;
        };
        let kind = entry.kind;
        out.clear();
        let question = request.get(HEADER_LEN..req.question_end)?;
        if entry.bytes.len() > max_size {
            // Header and question, TC set, no records.
            out.extend_from_slice(&entry.bytes[..HEADER_LEN]);
            out[6..12].fill(0);
            out[2] |= 0x02;
            out.extend_from_slice(question);
        } else {
            out.extend_from_slice(&entry.bytes);
            for &at in entry.ttls.iter() {
                let at = usize::from(at);
                out[at..at + 4].copy_from_slice(&(remaining as u32).to_be_bytes());
            }
            // The asker's spelling of the name (same length: equal but for case).
            out[HEADER_LEN..req.question_end].copy_from_slice(question);
        }
        out[0..2].copy_from_slice(&req.id.to_be_bytes());
        // RD as the asker set it.
        out[2] = (out[2] & !0x01) | ((req.flags >> 8) as u8 & 0x01);
        Some(kind)
    }

    /// Stores `response` as the answer to `request`, received at `now_ms`.
    pub fn insert(&self, request: &[u8], response: &[u8], now_ms: u64) -> Stored {
        let Parsed::Ok(req) = wire::parse(request) else { return Stored::No };
        let Some((kind, ttl, ttls)) = self.cacheable(&req, response) else { return Stored::No };
        let mut key = [0u8; MAX_KEY];
        let key = key_of(&req, &mut key);
        let per_shard = self.per_shard();
        let mut shard = self.shard(key);
        let mut evicted = false;
        if let Some(old) = shard.entries.remove(key) {
            shard.counts[old.kind as usize] -= 1;
        } else if shard.counts[kind as usize] >= per_shard {
            // CoreDNS evicts an arbitrary entry of the same kind.
            let victim = shard.entries.iter().find(|(_, e)| e.kind == kind).map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                shard.entries.remove(&victim);
                shard.counts[kind as usize] -= 1;
                evicted = true;
            }
        }
        let entry = Entry { bytes: response.into(), ttls, stored_ms: now_ms, ttl, kind };
        shard.entries.insert(key.into(), entry);
        shard.counts[kind as usize] += 1;
        Stored::Yes { kind, evicted }
    }

    /// Entries held: (success, denial).
    pub fn len(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(s, d), shard| {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            (s + shard.counts[0], d + shard.counts[1])
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// Whether `response` answers `request` and may be kept: its kind, lifetime and TTL offsets.
    fn cacheable(&self, req: &wire::Request, response: &[u8]) -> Option<(CacheKind, u32, Box<[u16]>)> {
        let c = &self.config;
        if response.len() < HEADER_LEN {
            return None;
        }
        let flags = u16::from_be_bytes([response[2], response[3]]);
        if flags & 0x8000 == 0 || flags & 0x0200 != 0 || response.len() > usize::from(u16::MAX) {
            return None;
        }
        let rcode = flags & 0x000F;
        let count = |at: usize| usize::from(u16::from_be_bytes([response[at], response[at + 1]]));
        if count(4) != 1 {
            return None;
        }
        // The same question, but for case.
        let question = response.get(HEADER_LEN..req.question_end)?;
        let mut lname = [0u8; MAX_NAME];
        let len = req.lname_len;
        for (d, s) in lname.iter_mut().zip(question.get(..len)?) {
            *d = s.to_ascii_lowercase();
        }
        if lname[..len] != *req.lname()
            || question[len..] != [(req.qtype >> 8) as u8, req.qtype as u8, (req.qclass >> 8) as u8, req.qclass as u8]
        {
            return None;
        }
        let (answers, authority, additional) = (count(6), count(8), count(10));
        let mut ttls = Vec::with_capacity(answers + authority + additional);
        let mut least: Option<u32> = None;
        let mut soa: Option<u32> = None;
        let mut at = req.question_end;
        for i in 0..answers + authority + additional {
            let after = wire::skip_name(response, at)?;
            let rtype = u16::from_be_bytes([*response.get(after)?, *response.get(after + 1)?]);
            let ttl_at = after + 4;
            let ttl = u32::from_be_bytes(response.get(ttl_at..ttl_at + 4)?.try_into().ok()?);
            let rdlen = usize::from(u16::from_be_bytes([*response.get(after + 8)?, *response.get(after + 9)?]));
            let end = after + 10 + rdlen;
            if end > response.len() {
                return None;
            }
            if rtype != wire::TYPE_OPT {
                ttls.push(u16::try_from(ttl_at).ok()?);
                least = Some(least.map_or(ttl, |l| l.min(ttl)));
                if rtype == wire::TYPE_SOA && i >= answers && i < answers + authority && rdlen >= 20 {
                    let minimum = u32::from_be_bytes(response[end - 4..end].try_into().ok()?);
                    soa = Some(ttl.min(minimum));
                }
            }
            at = end;
        }
        let (kind, ttl) = match (rcode, answers) {
            (0, 1..) => (CacheKind::Success, least?.clamp(c.min_ttl, c.max_ttl.max(c.min_ttl))),
            (0 | 3, _) => {
                // RFC 2308 §5; without an SOA, CoreDNS keeps a denial for its minimum.
                let ttl = soa.unwrap_or(c.min_denial_ttl);
                (CacheKind::Denial, ttl.clamp(c.min_denial_ttl, c.max_denial_ttl.max(c.min_denial_ttl)))
            }
            (2, _) => (CacheKind::Denial, c.servfail_ttl),
            _ => return None,
        };
        (ttl > 0).then(|| (kind, ttl, ttls.into_boxed_slice()))
    }
}

/// The cache key of a parsed request: lower-cased name, type, class, and the EDNS/DO/CD bits.
fn key_of<'k>(req: &wire::Request, key: &'k mut [u8; MAX_KEY]) -> &'k [u8] {
    let name = req.lname();
    key[..name.len()].copy_from_slice(name);
    let mut at = name.len();
    key[at..at + 2].copy_from_slice(&req.qtype.to_be_bytes());
    key[at + 2..at + 4].copy_from_slice(&req.qclass.to_be_bytes());
    at += 4;
    let edns = req.edns.map_or(0u8, |e| 1 | if e.dnssec_ok { 2 } else { 0 });
    key[at] = edns | if req.flags & 0x0010 != 0 { 4 } else { 0 };
    &key[..=at]
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn query(name: &str, id: u16, edns: bool) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        if edns {
            m.set_edns(Edns::new());
        }
        m.to_vec().unwrap()
    }

    fn answer(request: &[u8], rcode: ResponseCode, a_ttls: &[u32], soa: Option<(u32, u32)>) -> Vec<u8> {
        let req = Message::from_vec(request).unwrap();
        let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.metadata.recursion_available = true;
        m.add_query(req.queries[0].clone());
        let name = req.queries[0].name().clone();
        for (i, ttl) in a_ttls.iter().enumerate() {
            m.add_answer(Record::from_rdata(name.clone(), *ttl, RData::A(A::new(192, 0, 2, i as u8 + 1))));
        }
        if let Some((ttl, minimum)) = soa {
            let zone = Name::from_ascii("example.").unwrap();
            let soa = SOA::new(zone.clone(), zone.clone(), 1, 7200, 1800, 86400, minimum);
            m.add_authority(Record::from_rdata(zone, ttl, RData::SOA(soa)));
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn a_hit_has_the_askers_id_spelling_and_counted_down_ttls() {
        let cache = ForwardCache::new(CacheConfig::default());
        let first = query("www.Example.", 1, false);
        assert_eq!(
            cache.insert(&first, &answer(&first, ResponseCode::NoError, &[60, 300], None), 1_000),
            Stored::Yes { kind: CacheKind::Success, evicted: false }
        );
        let second = query("WWW.example.", 2, false);
        let mut out = Vec::new();
        assert_eq!(cache.get(&second, 11_500, 512, &mut out), Some(CacheKind::Success));
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 2);
        assert_eq!(m.queries[0].name().to_ascii(), "WWW.example.");
        assert_eq!(m.answers.iter().map(|r| r.ttl).collect::<Vec<_>>(), [50, 50]);
        assert!(m.metadata.recursion_desired);
        // Expired after the least TTL.
        assert_eq!(cache.get(&second, 61_000, 512, &mut out), None);
        assert_eq!(cache.len(), (0, 0));
    }

    #[test]
    fn lifetimes_follow_coredns() {
        // (rcode, answer TTLs, SOA (ttl, minimum)) → kind and lifetime in seconds.
        type Case = (ResponseCode, &'static [u32], Option<(u32, u32)>, Option<(CacheKind, u32)>);
        let cases: &[Case] = &[
            (ResponseCode::NoError, &[30], None, Some((CacheKind::Success, 30))),
            (ResponseCode::NoError, &[0], None, Some((CacheKind::Success, 5))),
            (ResponseCode::NoError, &[86_400], None, Some((CacheKind::Success, 3600))),
            (ResponseCode::NXDomain, &[], Some((900, 60)), Some((CacheKind::Denial, 60))),
            (ResponseCode::NXDomain, &[], Some((20, 3600)), Some((CacheKind::Denial, 20))),
            (ResponseCode::NoError, &[], Some((7200, 7200)), Some((CacheKind::Denial, 1800))),
            (ResponseCode::NXDomain, &[], None, Some((CacheKind::Denial, 5))),
            (ResponseCode::ServFail, &[], None, Some((CacheKind::Denial, 5))),
            (ResponseCode::Refused, &[], None, None),
        ];
        for (rcode, ttls, soa, expected) in cases {
            let cache = ForwardCache::new(CacheConfig::default());
            let q = query("a.example.", 7, true);
            let stored = cache.insert(&q, &answer(&q, *rcode, ttls, *soa), 0);
            let mut out = Vec::new();
            match expected {
                None => assert_eq!(stored, Stored::No, "{rcode:?}"),
                Some((kind, life)) => {
                    assert_eq!(stored, Stored::Yes { kind: *kind, evicted: false }, "{rcode:?} {ttls:?}");
                    let last_ms = u64::from(*life) * 1000 - 1;
                    assert_eq!(cache.get(&q, last_ms, 4096, &mut out), Some(*kind), "{rcode:?} {ttls:?}");
                    assert_eq!(cache.get(&q, last_ms + 1, 4096, &mut out), None, "{rcode:?} {ttls:?}");
                }
            }
        }
    }

    #[test]
    fn what_is_not_kept() {
        let cache = ForwardCache::new(CacheConfig::default());
        let q = query("a.example.", 7, false);
        let mut truncated = answer(&q, ResponseCode::NoError, &[30], None);
        truncated[2] |= 0x02;
        assert_eq!(cache.insert(&q, &truncated, 0), Stored::No);
        let other = query("b.example.", 7, false);
        assert_eq!(cache.insert(&q, &answer(&other, ResponseCode::NoError, &[30], None), 0), Stored::No);
        assert_eq!(cache.insert(&q, &q, 0), Stored::No, "a query is not an answer");
        assert_eq!(cache.insert(&q, &[0xff; 5], 0), Stored::No);
        // EDNS or not are different questions.
        cache.insert(&q, &answer(&q, ResponseCode::NoError, &[30], None), 0);
        let mut out = Vec::new();
        assert_eq!(cache.get(&query("a.example.", 8, true), 0, 4096, &mut out), None);
    }

    #[test]
    fn too_large_for_the_asker_is_truncated_and_bounds_hold() {
        let cache = ForwardCache::new(CacheConfig { capacity: SHARDS, ..CacheConfig::default() });
        let q = query("big.example.", 1, false);
        let ttls = [300u32; 40];
        cache.insert(&q, &answer(&q, ResponseCode::NoError, &ttls, None), 0);
        let mut out = Vec::new();
        cache.get(&q, 0, 512, &mut out).unwrap();
        let m = Message::from_vec(&out).unwrap();
        assert!(m.metadata.truncation && m.answers.is_empty() && m.queries.len() == 1);
        // One entry per shard per kind: the cache never grows past its capacity.
        let mut evictions = 0;
        for i in 0..200 {
            let q = query(&format!("n{i}.example."), 1, false);
            if let Stored::Yes { evicted: true, .. } =
                cache.insert(&q, &answer(&q, ResponseCode::NoError, &[300], None), 0)
            {
                evictions += 1;
            }
        }
        let (success, denial) = cache.len();
        assert!(success <= SHARDS && denial == 0, "{success}");
        assert!(evictions >= 200 - SHARDS);
    }

    #[test]
    fn garbage_never_panics() {
        let cache = ForwardCache::new(CacheConfig::default());
        let q = query("a.example.", 7, true);
        let good = answer(&q, ResponseCode::NoError, &[30, 40], Some((30, 30)));
        let mut seed = 0x1234_5678u32;
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let at = seed as usize % bytes.len();
                bytes[at] = (seed >> 8) as u8;
            }
            bytes.truncate(seed as usize % (good.len() + 1));
            cache.insert(&q, &bytes, 0);
            cache.insert(&bytes, &good, 0);
            cache.get(&bytes, 0, 512, &mut out);
            cache.get(&q, 0, 512, &mut out);
        }
    }
}
