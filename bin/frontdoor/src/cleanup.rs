//! `frontdoor cleanup`: what a `frontdoor up` that was killed (`kill -9`) left behind, removed.
//!
//! A node that stops normally stops its pods, its proxy removes its table, and it withdraws the
//! load-balancer addresses it answered for. One that was killed leaves its pods' processes
//! running (each holding its pod's namespaces, and with them the host end of its veth), its
//! bridge with the bridge's address and the routes through it, the data plane's nftables table,
//! and the load-balancer addresses it added to a LAN interface. Cleanup stops the processes
//! recorded in the node's pid journal (each checked against its start time, so a pid the kernel
//! has since given to another process is never signalled), deletes pod veths still there and the
//! bridge (the kernel removes its addresses and routes with it), and removes the data plane's
//! table and the load-balancer addresses the node answered for on the LAN (those it marked as its
//! own). Run it in the network namespace the node ran in.
//!
//! A running node keeps a lock (`flock`) on its pid journal: while one does (for two seconds, the
//! time a killed node may take to finish exiting), cleanup refuses.
//! IPv4 forwarding is left as it is (nothing says what it was before the node turned it on), and
//! so is the data directory (the store keeps the cluster's objects for the next `up`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

#[derive(clap::Args)]
pub struct CleanupArgs {
    /// The data directory of the `frontdoor up` to clean up after.
    #[arg(long, default_value = "/var/lib/frontdoor")]
    data_dir: PathBuf,
    /// The bridge it attached pods to.
    #[arg(long, default_value = "frontdoor0")]
    bridge: String,
}

/// How long cleanup waits for the pid journal's lock before it says a node is running: a node
/// killed a moment ago may still be exiting (its last threads close its files, and the lock with
/// them, some milliseconds after the kill), and `kill -9` then `frontdoor cleanup` must work.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// The journal's leftovers, once its lock is free; `None` if it is still held after `wait`.
fn take_within(journal: &Path, wait: Duration) -> std::io::Result<Option<frontdoor_node::pids::Leftovers>> {
    let deadline = Instant::now() + wait;
    loop {
        match frontdoor_node::pids::Leftovers::take(journal)? {
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            taken => return Ok(taken),
        }
    }
}

pub fn run(args: &CleanupArgs) -> anyhow::Result<()> {
    let journal = frontdoor_node::pids::journal_path(&args.data_dir);
    // Held until the end, so no node starts on this data directory meanwhile.
    let leftovers = take_within(&journal, LOCK_WAIT)
        .with_context(|| format!("reading the pid journal {}", journal.display()))?
        .with_context(|| {
            format!(
                "a `frontdoor up` with data directory {} is running (it holds {}): stop it first",
                args.data_dir.display(),
                journal.display()
            )
        })?;
    let mut removed = Vec::new();
    let killed = leftovers.stop().with_context(|| format!("emptying the pid journal {}", journal.display()))?;
    removed.extend(killed.into_iter().map(|pid| format!("stopped pod process group {pid}")));

    // the data plane's table: see frontdoor-proxy
    if let Some(table) = remove_nftables_table().context("removing the data plane's nftables table")? {
        removed.push(format!("removed nftables table {table}"));
    }
    if frontdoor_node::remove_hostports_table().context("removing the host ports' nftables table")? {
        removed.push(format!("removed nftables table ip {}", frontdoor_node::hostports::TABLE));
    }

    let announced = frontdoor_netns::withdraw_announced().context("removing the load-balancer addresses")?;
    removed.extend(
        announced
            .into_iter()
            .map(|(interface, address)| format!("removed load-balancer address {address}/32 from {interface}")),
    );

    let veths =
        frontdoor_netns::cleanup_stale(frontdoor_node::VETH_PREFIX, &args.bridge).context("deleting pod veths")?;
    removed.extend(veths.into_iter().map(|veth| format!("deleted pod veth {veth}")));

    let bridge =
        frontdoor_netns::remove_bridge(&args.bridge).with_context(|| format!("deleting bridge {}", args.bridge))?;
    if let Some(bridge) = bridge {
        removed.push(format!("deleted bridge {}", args.bridge));
        removed.extend(bridge.addresses.into_iter().map(|address| format!("  with its address {address}")));
        removed.extend(bridge.routes.into_iter().map(|route| format!("  with its route {route}")));
    }

    if removed.is_empty() {
        println!(
            "nothing to clean up: no pod process of {} is left running, no bridge {}, no table, no load-balancer address",
            args.data_dir.display(),
            args.bridge
        );
    }
    for line in removed {
        println!("{line}");
    }
    drop(leftovers);
    Ok(())
}

/// Removes the data plane's nftables table if it is there, and says which it was.
fn remove_nftables_table() -> anyhow::Result<Option<String>> {
    let removed = frontdoor_proxy::remove_table(frontdoor_proxy::TABLE)?;
    Ok(removed.then(|| format!("ip {}", frontdoor_proxy::TABLE)))
}
