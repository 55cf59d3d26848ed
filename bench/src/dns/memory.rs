//! The memory cluster DNS holds for a cluster, measured in this process with frontdoor's
//! allocator (jemalloc's live heap, `stats.allocated`): what `frontdoor-dns-server` keeps
//! between changes — the [`IndexBuilder`] fed from the informers (each object distilled to what
//! DNS needs) and the [`ClusterIndex`] queries read — built from the synthetic cluster's
//! Namespaces, Services, EndpointSlices and Pods with the configuration `frontdoor up` uses.
//! Not included: the informers' caches of the objects themselves (shared with every other
//! component of the process), and the second index that exists for a moment while a rebuild is
//! swapped in.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use frontdoor_dns::{Cidr, ClusterIndex, IndexBuilder, IndexConfig, PodMode};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::cluster::{Cluster, ZONE};
use crate::dataplane::memory::allocated_mib;

/// Builds timed for each configuration (the fastest is reported).
pub(super) const BUILDS: usize = 5;

pub struct IndexMemory {
    pub pod_mode: PodMode,
    pub services: usize,
    pub pods: usize,
    /// Live heap bytes of the builder, and of the index built from it.
    pub builder: f64,
    pub index: f64,
    pub names: usize,
    /// Bytes of encoded records in the index (the rest of it is the table of names).
    pub arena: usize,
    pub build_time: Duration,
    /// Building the index again after one Service's endpoints changed (the fastest of a few).
    pub change_time: Duration,
}

impl IndexMemory {
    pub fn total(&self) -> f64 {
        self.builder + self.index
    }

    /// Bytes per 1,000 objects (Services and Pods counted together, as CoreDNS's formula does).
    pub fn per_thousand_objects(&self) -> f64 {
        self.total() / ((self.services + self.pods) as f64 / 1000.0)
    }
}

fn allocated() -> f64 {
    allocated_mib() * 1_048_576.0
}

/// The configuration `frontdoor up` gives the index (its default flags).
fn config(pod_mode: PodMode) -> IndexConfig {
    let cidr = |text: &str| text.parse::<Cidr>().expect("a literal CIDR");
    IndexConfig {
        zone: ZONE.into(),
        ttl: super::cluster::TTL,
        pod_mode,
        reverse_cidrs: vec![cidr("10.96.0.0/12"), cidr("10.244.0.0/16")],
        ns_addresses: vec![IpAddr::from([10, 96, 0, 10])],
        ..IndexConfig::default()
    }
}

/// Measures the builder and index for `cluster`, in frontdoor's mode (`pods insecure`) and in
/// `pods verified` (where each pod's address is kept too).
pub fn measure(cluster: &Cluster) -> Vec<IndexMemory> {
    let namespaces: Vec<Namespace> =
        cluster.namespaces().into_iter().map(|v| serde_json::from_value(v).expect("a Namespace")).collect();
    let services: Vec<Service> =
        cluster.service_objects().into_iter().map(|v| serde_json::from_value(v).expect("a Service")).collect();
    let slices: Vec<EndpointSlice> =
        cluster.slice_objects().into_iter().map(|v| serde_json::from_value(v).expect("an EndpointSlice")).collect();
    let pods: Vec<Pod> = cluster.pod_objects().into_iter().map(|v| serde_json::from_value(v).expect("a Pod")).collect();
    [PodMode::Insecure, PodMode::Verified]
        .into_iter()
        .map(|pod_mode| {
            let before = allocated();
            let mut builder = IndexBuilder::new(config(pod_mode));
            namespaces.iter().for_each(|n| builder.apply_namespace(n));
            for s in &services {
                builder.apply_service(s);
            }
            for s in &slices {
                builder.apply_slice(s);
            }
            for p in &pods {
                builder.apply_pod(p);
            }
            // The builder as it is between changes: with none pending (what changed since the
            // last build is recorded until the next takes it).
            drop(builder.take_changes());
            let with_builder = allocated();
            // The fastest of a few builds: one alone varies by ±15% on a shared machine.
            let mut build_time = Duration::MAX;
            for _ in 1..BUILDS {
                let started = Instant::now();
                drop(std::hint::black_box(builder.build()));
                build_time = build_time.min(started.elapsed());
            }
            let started = Instant::now();
            // Every part, as the server's first index (whose changes were taken above).
            let mut index: ClusterIndex = builder.build();
            build_time = build_time.min(started.elapsed());
            let with_index = allocated();
            // One Service's endpoints change, back and forth: what the server builds after it.
            let mut change_time = Duration::MAX;
            let mut changed = slices[0].clone();
            let address = changed.endpoints[0].addresses[0].clone();
            // An even number of changes: the index ends as it began.
            for round in 0..2 * BUILDS {
                changed.endpoints[0].addresses[0] =
                    if round % 2 == 0 { "10.244.255.1".into() } else { address.clone() };
                builder.apply_slice(&changed);
                let started = Instant::now();
                let next = builder.take_changes().build(Some(&index));
                change_time = change_time.min(started.elapsed());
                index = next;
            }
            let memory = IndexMemory {
                pod_mode,
                services: services.len(),
                pods: pods.len(),
                builder: with_builder - before,
                index: with_index - with_builder,
                names: index.len(),
                arena: index.arena_bytes(),
                build_time,
                change_time,
            };
            drop((index, builder));
            memory
        })
        .collect()
}
