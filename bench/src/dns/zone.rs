//! Zone files (RFC 1035 master format) for Knot and NSD: the cluster's records split into the
//! zones frontdoor is authoritative for — `cluster.local`, and the reverse zones of the Service
//! range 10.96.0.0/12 (`96.10.in-addr.arpa` … `111.10.in-addr.arpa`, as CoreDNS splits it) and of
//! the pod range 10.244.0.0/16 — with the SOA frontdoor answers with; and the upstream's zone
//! for the forwarding step.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::cluster::{TTL, ZONE};

/// One zone file: its origin and where it was written.
pub struct ZoneFile {
    pub origin: String,
    pub path: PathBuf,
}

/// The zones frontdoor answers authoritatively (with `--service-cidr 10.96.0.0/12` and
/// `--cluster-cidr 10.244.0.0/16`, its defaults).
pub fn cluster_origins() -> Vec<String> {
    let mut origins = vec![ZONE.to_string()];
    origins.extend((96..=111).map(|octet| format!("{octet}.10.in-addr.arpa")));
    origins.push("244.10.in-addr.arpa".into());
    origins
}

fn header(origin: &str, ttl: u32) -> String {
    // frontdoor's (CoreDNS's) SOA: `ns.dns.<zone>`, `hostmaster.<zone>`, 7200 1800 86400 <ttl>.
    format!(
        "$ORIGIN {origin}.\n$TTL {ttl}\n@ IN SOA ns.dns.{ZONE}. hostmaster.{origin}. 1 7200 1800 86400 {ttl}\n@ IN NS ns.dns.{ZONE}.\n"
    )
}

/// Writes each zone of `origins` with the records that fall in it (`owner` fully qualified,
/// without the final dot) into `directory`, as `<origin>.zone`.
pub fn write_zones(
    directory: &Path,
    origins: &[String],
    records: &[(String, &'static str, String)],
    extra: &str,
) -> Vec<ZoneFile> {
    let mut texts: Vec<String> = origins.iter().map(|origin| header(origin, TTL)).collect();
    texts[0].push_str(extra);
    for (owner, rtype, rdata) in records {
        let Some(i) = origins.iter().position(|o| owner == o || owner.ends_with(&format!(".{o}"))) else {
            panic!("no zone for {owner}");
        };
        let _ = writeln!(texts[i], "{owner}. {TTL} IN {rtype} {rdata}");
    }
    origins
        .iter()
        .zip(texts)
        .map(|(origin, text)| {
            let path = directory.join(format!("{origin}.zone"));
            std::fs::write(&path, text).expect("write a zone file");
            ZoneFile { origin: origin.clone(), path }
        })
        .collect()
}

/// The cluster zones, with `ns.dns.cluster.local` (kube-dns's address) as frontdoor has it.
pub fn write_cluster_zones(directory: &Path, records: &[(String, &'static str, String)]) -> Vec<ZoneFile> {
    write_zones(directory, &cluster_origins(), records, &format!("ns.dns.{ZONE}. {TTL} IN A 10.96.0.10\n"))
}

/// The upstream's zone for the forwarding step: `host-<i>.example.test` A 192.0.2.x (documentation
/// addresses, never contacted), an hour's TTL (a warm cache stays warm for the whole step).
pub fn write_upstream_zone(directory: &Path, names: &[String]) -> ZoneFile {
    let origin = "example.test".to_string();
    let mut text = format!(
        "$ORIGIN {origin}.\n$TTL 3600\n@ IN SOA ns.{origin}. hostmaster.{origin}. 1 7200 1800 86400 3600\n@ IN NS ns.{origin}.\nns IN A 192.0.2.1\n"
    );
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(text, "{name}. 3600 IN A 192.0.2.{}", 1 + i % 250);
    }
    let path = directory.join(format!("{origin}.zone"));
    std::fs::write(&path, text).expect("write the upstream zone");
    ZoneFile { origin, path }
}
