//! The synthetic cluster the DNS benchmark serves, described once and rendered three ways: API
//! objects for `frontdoor up` (Services with fixed ClusterIPs, EndpointSlices the bench manages,
//! as the data-plane bench's programming step does), zone records for Knot and NSD, and the
//! query mix with the answer each query must get.
//!
//! Service `i` lives in namespace `ns-<i % 10>`; of every 20, 16 are ClusterIP Services `api-<i>`
//! (named port `http` 80/TCP, two ready endpoints, unnamed: `10-244-128-5.api-3.ns-3.svc…`), 3
//! headless Services `db-<i>` (three ready endpoints, StatefulSet-like hostnames `db-<i>-<k>` on
//! every other one), 1 ExternalName Service `ext-<i>` (→ `ext-<i>.example.com`). ClusterIPs are
//! `10.100.0.0 + i + 1`, pod addresses consecutive from 10.244.128.1: both inside the ranges
//! whose reverse zones frontdoor answers (10.96.0.0/12, 10.244.0.0/16).

use std::net::Ipv4Addr;

use serde_json::{json, Value};

pub const ZONE: &str = "cluster.local";
pub const NAMESPACES: usize = 10;
/// The record TTL (`frontdoor up --dns-ttl`'s default).
pub const TTL: u32 = 30;
const SERVICE_PORT: u16 = 80;
const TARGET_PORT: u16 = 8080;
const FIRST_CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 0);
const FIRST_POD: Ipv4Addr = Ipv4Addr::new(10, 244, 128, 0);
const MANAGED_BY: &str = "frontdoor-bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ClusterIp,
    Headless,
    ExternalName,
}

pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    pub pod: String,
}

pub struct Service {
    pub index: usize,
    pub namespace: String,
    pub name: String,
    pub kind: Kind,
    pub cluster_ip: Option<Ipv4Addr>,
    pub endpoints: Vec<Endpoint>,
}

impl Service {
    /// `api-3.ns-3.svc.cluster.local`.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.{ZONE}", self.name, self.namespace)
    }

    fn external_target(&self) -> String {
        format!("ext-{}.example.com", self.index)
    }

    /// The name an endpoint has in DNS: its hostname, else its dashed address, under the Service.
    pub fn endpoint_fqdn(&self, endpoint: &Endpoint) -> String {
        let host = endpoint.hostname.clone().unwrap_or_else(|| endpoint.ip.to_string().replace('.', "-"));
        format!("{host}.{}", self.fqdn())
    }
}

pub struct Cluster {
    pub services: Vec<Service>,
    /// How many namespaces the Services are spread over (`ns-0`, `ns-1`, …).
    namespaces: usize,
}

impl Cluster {
    /// `count` Services over [`NAMESPACES`] namespaces.
    pub fn new(count: usize) -> Cluster {
        Cluster::in_namespaces(count, NAMESPACES)
    }

    pub fn in_namespaces(count: usize, namespaces: usize) -> Cluster {
        let namespaces = namespaces.max(1);
        let mut pods = 0u32;
        let services = (0..count)
            .map(|i| {
                let namespace = format!("ns-{}", i % namespaces);
                let (kind, name, endpoints) = match i % 20 {
                    0..=15 => (Kind::ClusterIp, format!("api-{i}"), 2),
                    16..=18 => (Kind::Headless, format!("db-{i}"), 3),
                    _ => (Kind::ExternalName, format!("ext-{i}"), 0),
                };
                let named_hosts = kind == Kind::Headless && i % 2 == 0;
                let endpoints = (0..endpoints)
                    .map(|k| {
                        pods += 1;
                        Endpoint {
                            ip: Ipv4Addr::from(u32::from(FIRST_POD) + pods),
                            hostname: named_hosts.then(|| format!("{name}-{k}")),
                            pod: format!("{name}-{k}"),
                        }
                    })
                    .collect();
                let cluster_ip =
                    (kind == Kind::ClusterIp).then(|| Ipv4Addr::from(u32::from(FIRST_CLUSTER_IP) + 1 + i as u32));
                Service { index: i, namespace, name, kind, cluster_ip, endpoints }
            })
            .collect();
        Cluster { services, namespaces }
    }

    pub fn pods(&self) -> usize {
        self.services.iter().map(|s| s.endpoints.len()).sum()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.services.iter().filter(|s| s.kind == kind).count()
    }

    pub fn namespaces(&self) -> Vec<Value> {
        (0..self.namespaces.min(self.services.len()))
            .map(|n| json!({"metadata": {"name": format!("ns-{n}")}}))
            .collect()
    }

    /// The Services as the API takes them (no selector: the bench writes their EndpointSlices).
    pub fn service_objects(&self) -> Vec<Value> {
        self.services
            .iter()
            .map(|s| {
                let ports = json!([{"name": "http", "port": SERVICE_PORT, "targetPort": TARGET_PORT, "protocol": "TCP"}]);
                let spec = match s.kind {
                    Kind::ClusterIp => {
                        json!({"clusterIP": s.cluster_ip.map(|ip| ip.to_string()), "ports": ports})
                    }
                    Kind::Headless => json!({"clusterIP": "None", "ports": ports}),
                    Kind::ExternalName => json!({"type": "ExternalName", "externalName": s.external_target()}),
                };
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": s.name, "namespace": s.namespace}, "spec": spec})
            })
            .collect()
    }

    /// One EndpointSlice per Service with endpoints, as the EndpointSlice controller would write it.
    pub fn slice_objects(&self) -> Vec<Value> {
        self.services
            .iter()
            .filter(|s| !s.endpoints.is_empty())
            .map(|s| {
                let endpoints: Vec<Value> = s
                    .endpoints
                    .iter()
                    .map(|e| {
                        let mut endpoint = json!({
                            "addresses": [e.ip.to_string()],
                            "conditions": {"ready": true},
                            "targetRef": {"kind": "Pod", "namespace": s.namespace, "name": e.pod}
                        });
                        if let Some(hostname) = &e.hostname {
                            endpoint["hostname"] = json!(hostname);
                        }
                        endpoint
                    })
                    .collect();
                json!({
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": format!("{}-1", s.name),
                        "namespace": s.namespace,
                        "labels": {"kubernetes.io/service-name": s.name, "endpointslice.kubernetes.io/managed-by": MANAGED_BY}
                    },
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": TARGET_PORT, "protocol": "TCP"}],
                    "endpoints": endpoints
                })
            })
            .collect()
    }

    /// The pods behind the endpoints (name, namespace, `status.podIP`): what a `pods verified`
    /// index keeps; frontdoor's `pods insecure` ignores them.
    pub fn pod_objects(&self) -> Vec<Value> {
        self.services
            .iter()
            .flat_map(|s| {
                s.endpoints.iter().map(|e| {
                    json!({"metadata": {"name": e.pod, "namespace": s.namespace}, "status": {"podIP": e.ip.to_string(), "phase": "Running"}})
                })
            })
            .collect()
    }

    /// Every record the cluster has in DNS, as CoreDNS's `kubernetes` plugin (and frontdoor)
    /// derive them: `(owner, type, rdata)` in zone-file syntax, owners fully qualified without
    /// the final dot. SRV weights are ⌊100 / entries⌋; a Service's and an endpoint's own name
    /// carry SRV records too; PTRs for ClusterIPs and for every endpoint address.
    pub fn records(&self) -> Vec<(String, &'static str, String)> {
        let mut records = Vec::new();
        for s in &self.services {
            let service = s.fqdn();
            match s.kind {
                Kind::ExternalName => {
                    records.push((service, "CNAME", format!("{}.", s.external_target())));
                    continue;
                }
                Kind::ClusterIp => {
                    let ip = s.cluster_ip.expect("a ClusterIP Service has its address");
                    for owner in [service.clone(), format!("_http._tcp.{service}")] {
                        records.push((owner.clone(), "A", ip.to_string()));
                        records.push((owner, "SRV", format!("0 100 {SERVICE_PORT} {service}.")));
                    }
                    records.push((reverse_name(ip), "PTR", format!("{service}.")));
                }
                Kind::Headless => {
                    let weight = 100 / s.endpoints.len().max(1);
                    for owner in [service.clone(), format!("_http._tcp.{service}")] {
                        for e in &s.endpoints {
                            records.push((owner.clone(), "A", e.ip.to_string()));
                            records.push((
                                owner.clone(),
                                "SRV",
                                format!("0 {weight} {TARGET_PORT} {}.", s.endpoint_fqdn(e)),
                            ));
                        }
                    }
                }
            }
            for e in &s.endpoints {
                let name = s.endpoint_fqdn(e);
                records.push((name.clone(), "A", e.ip.to_string()));
                records.push((name.clone(), "SRV", format!("0 100 {TARGET_PORT} {name}.")));
                records.push((reverse_name(e.ip), "PTR", format!("{name}.")));
            }
        }
        records
    }
}

/// `10.100.0.5` → `5.0.100.10.in-addr.arpa`.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// What a query of the mix is, for the report and the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    ServiceA,
    SearchNxdomain,
    Srv,
    Ptr,
    HeadlessA,
    ExternalNameA,
    /// A name outside the cluster (the forwarding step; not in the mix).
    Forwarded,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::ServiceA,
        Category::SearchNxdomain,
        Category::Srv,
        Category::Ptr,
        Category::HeadlessA,
        Category::ExternalNameA,
    ];

    /// Share of the mix, in percent. ExternalName names are checked but not in the mix: an
    /// authoritative server answers their CNAME alone, while frontdoor (as CoreDNS) resolves the
    /// target upstream, so the work differs by design (and the bench's upstream refuses
    /// `example.com`).
    pub fn weight(self) -> usize {
        match self {
            Category::ServiceA => 35,
            Category::SearchNxdomain => 30,
            Category::Srv => 10,
            Category::Ptr => 10,
            Category::HeadlessA => 15,
            Category::ExternalNameA | Category::Forwarded => 0,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Category::ServiceA => "Service A",
            Category::SearchNxdomain => "ndots:5 search-path NXDOMAIN",
            Category::Srv => "SRV _http._tcp",
            Category::Ptr => "PTR",
            Category::HeadlessA => "headless A",
            Category::ExternalNameA => "ExternalName A (CNAME)",
            Category::Forwarded => "forwarded A",
        }
    }
}

/// One query of the mix and the answer it must get.
#[derive(Clone, Debug)]
pub struct Query {
    pub category: Category,
    pub name: String,
    pub qtype: &'static str,
    pub nxdomain: bool,
    pub answers: usize,
}

/// splitmix64: a reproducible mix without a dependency.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

impl Cluster {
    /// `count` queries in the proportions of [`Category::weight`], shuffled reproducibly.
    pub fn query_mix(&self, count: usize, seed: u64) -> Vec<Query> {
        let of = |kind: Kind| self.services.iter().filter(|s| s.kind == kind).collect::<Vec<_>>();
        let (cluster_ips, headless, external) = (of(Kind::ClusterIp), of(Kind::Headless), of(Kind::ExternalName));
        let with_srv: Vec<&Service> = cluster_ips.iter().chain(&headless).copied().collect();
        let mut random = Random::new(seed);
        let mut queries = Vec::with_capacity(count);
        let total: usize = Category::ALL.iter().map(|c| c.weight()).sum();
        for n in 0..count {
            // Deterministic proportions, random picks within each category.
            let mut slot = (n * 7919) % total;
            let category = *Category::ALL
                .iter()
                .find(|c| {
                    if slot < c.weight() {
                        return true;
                    }
                    slot -= c.weight();
                    false
                })
                .unwrap_or(&Category::ServiceA);
            let pick = |list: &[&Service], random: &mut Random| list[random.below(list.len())].fqdn();
            let query = match category {
                Category::ServiceA => {
                    Query { category, name: pick(&cluster_ips, &mut random), qtype: "A", nxdomain: false, answers: 1 }
                }
                Category::SearchNxdomain => {
                    // A pod in namespace `own` looks the Service's FQDN up (4 dots < ndots:5):
                    // its search list comes first.
                    let name = pick(&cluster_ips, &mut random);
                    let own = random.below(self.namespaces.min(self.services.len()));
                    let name = match random.below(3) {
                        0 => format!("{name}.ns-{own}.svc.{ZONE}"),
                        1 => format!("{name}.svc.{ZONE}"),
                        _ => format!("{name}.{ZONE}"),
                    };
                    Query { category, name, qtype: "A", nxdomain: true, answers: 0 }
                }
                Category::Srv => {
                    let service = with_srv[random.below(with_srv.len())];
                    let answers = if service.kind == Kind::Headless { service.endpoints.len() } else { 1 };
                    Query {
                        category,
                        name: format!("_http._tcp.{}", service.fqdn()),
                        qtype: "SRV",
                        nxdomain: false,
                        answers,
                    }
                }
                Category::Ptr => {
                    let service = with_srv[random.below(with_srv.len())];
                    let ip = match service.cluster_ip {
                        Some(ip) if random.below(2) == 0 => ip,
                        _ => service.endpoints[random.below(service.endpoints.len())].ip,
                    };
                    Query { category, name: reverse_name(ip), qtype: "PTR", nxdomain: false, answers: 1 }
                }
                Category::HeadlessA => {
                    let service = headless[random.below(headless.len())];
                    Query {
                        category,
                        name: service.fqdn(),
                        qtype: "A",
                        nxdomain: false,
                        answers: service.endpoints.len(),
                    }
                }
                Category::ExternalNameA => {
                    Query { category, name: pick(&external, &mut random), qtype: "A", nxdomain: false, answers: 1 }
                }
                Category::Forwarded => unreachable!("not a category of the mix"),
            };
            queries.push(query);
        }
        // Fisher–Yates, so that no server sees a pattern.
        for i in (1..queries.len()).rev() {
            queries.swap(i, random.below(i + 1));
        }
        queries
    }
}

impl Cluster {
    /// A query of each of the first `count` ExternalName Services (the CNAME is their one answer
    /// from an authoritative server, and from frontdoor when the target does not resolve).
    pub fn external_name_queries(&self, count: usize) -> Vec<Query> {
        self.services
            .iter()
            .filter(|s| s.kind == Kind::ExternalName)
            .take(count)
            .map(|s| Query {
                category: Category::ExternalNameA,
                name: s.fqdn(),
                qtype: "A",
                nxdomain: false,
                answers: 1,
            })
            .collect()
    }
}

/// dnsperf's input: one `name type` per line.
pub fn dnsperf_input<'a>(queries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    queries.into_iter().map(|(name, qtype)| format!("{name} {qtype}\n")).collect()
}
