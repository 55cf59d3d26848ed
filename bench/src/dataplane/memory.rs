//! Step 5: the memory the proxy's state takes at N Services × 8 endpoints, measured in a child
//! process of this bench (`frontdoor-bench dataplane-memory N`), so that nothing the bench
//! allocated before is reused and hides it: RSS before anything is built, then after resolving,
//! rendering, planning and applying a full sync (into the child's own network namespace) with
//! what the proxy keeps between syncs still held (every Service resolved, the programmed state),
//! and the peak meanwhile (`VmHWM`, reset first). The bench links jemalloc, as frontdoor does, and also
//! reports the live heap (jemalloc's `stats.allocated`) the state holds once the sync is done. Not included: the informers' caches of Service and EndpointSlice objects.

use std::process::Command;

use frontdoor_netfilter::Socket;

use super::synthetic;
use super::system::{in_fresh_netns, status_mib};

pub const SUBCOMMAND: &str = "dataplane-memory";

pub struct Memory {
    pub services: usize,
    pub before: f64,
    /// Every Service resolved (what the model and the syncer hold of the endpoints).
    pub resolved: f64,
    /// Plus the programmed state and the full sync's batch.
    pub planned: f64,
    /// After the batch applied and dropped: what stays between syncs.
    pub after: f64,
    pub peak: f64,
    /// Live heap bytes (MiB) the resolved Services and the programmed state hold after the sync.
    pub live: f64,
}

/// Live heap bytes, MiB (jemalloc's statistics, refreshed).
pub(crate) fn allocated_mib() -> f64 {
    let _ = tikv_jemalloc_ctl::epoch::advance();
    tikv_jemalloc_ctl::stats::allocated::read().map(|bytes| bytes as f64 / 1_048_576.0).unwrap_or(f64::NAN)
}

/// The child's side: builds and applies, then prints the figures of [`Memory`] (MiB).
pub fn child(count: usize) {
    let before = status_mib("self", "VmRSS:");
    let heap_before = allocated_mib();
    // Writing 5 resets the peak resident set size (VmHWM) to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let [resolved, planned, after, live] = in_fresh_netns(|| {
        let resolved = synthetic::resolve_all(count);
        let resolved_mib = status_mib("self", "VmRSS:");
        let (programmed, plan) = synthetic::plan_full(&resolved);
        let planned = status_mib("self", "VmRSS:");
        Socket::open().expect("a netfilter socket").apply(&plan.batch).expect("the full sync applies");
        drop(plan);
        let after = status_mib("self", "VmRSS:");
        let live = allocated_mib() - heap_before;
        assert_eq!(programmed.service_count(), count);
        drop((resolved, programmed));
        [resolved_mib, planned, after, live]
    });
    println!("{before} {resolved} {planned} {after} {} {live}", status_mib("self", "VmHWM:"));
}

/// Runs the child for `count` Services.
pub fn measure(count: usize) -> Memory {
    let exe = std::env::current_exe().expect("the bench's own path");
    let output = Command::new(exe).args([SUBCOMMAND, &count.to_string()]).output().expect("the bench runs itself");
    assert!(output.status.success(), "{SUBCOMMAND} failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let values: Vec<f64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let [before, resolved, planned, after, peak, live] = values[..] else { panic!("{SUBCOMMAND} printed {text:?}") };
    Memory { services: count, before, resolved, planned, after, peak, live }
}
