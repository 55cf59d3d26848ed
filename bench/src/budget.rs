//! An equal CPU budget for the programs compared: a CPU-controller cgroup per program whose CFS
//! quota holds its processes to a fraction of a core. Where the load generator's one core is the
//! limit of an unbounded run (dnsperf's before any DNS server's; wrk's and the backends' before
//! either proxy's), a budget smaller than what that core can ask for makes each program the
//! limit: what it then serves is what its share of the core buys.
//!
//! cgroup v1 (`/sys/fs/cgroup/cpu`, `cpu.cfs_quota_us` and `cpu.cfs_period_us`) and v2 (a
//! `cgroup2` mount at `/sys/fs/cgroup` with the `cpu` controller, `cpu.max`) are both handled.
//! A [`Budget`] is a guard: dropping it moves every process still in its group back to the group
//! it came from and removes the group.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The CFS period: short, so a throttled program waits at most `period - quota` for its turn (a
/// queue of requests that the load generator's outstanding limit and the socket buffers bear).
pub const PERIOD: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Version {
    V1,
    V2,
}

/// Which cgroup hierarchy has the CPU controller, and where it is mounted.
fn hierarchy() -> Option<(Version, PathBuf)> {
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    if v1.join("cpu.cfs_quota_us").exists() {
        return Some((Version::V1, v1.to_path_buf()));
    }
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
    controllers.split_whitespace().any(|c| c == "cpu").then(|| (Version::V2, v2.to_path_buf()))
}

/// The group `pid` is in within `version`'s CPU hierarchy, as a path under its mount.
fn group_of(pid: u32, version: Version) -> Option<String> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let matches = match version {
            Version::V1 => controllers.split(',').any(|c| c == "cpu"),
            Version::V2 => controllers.is_empty(),
        };
        matches.then(|| path.to_string())
    })
}

pub struct Budget {
    version: Version,
    mount: PathBuf,
    group: PathBuf,
    /// Each process moved in, and the group (under the mount) it came from.
    moved: Vec<(u32, String)>,
}

impl Budget {
    /// A new group, `frontdoor-<bench>-<program>`, holding `pids` (the processes of `program`)
    /// to `share` of one core; `None` (with the reason printed) where that cannot be done.
    pub fn holding(bench: &str, program: &str, share: f64, pids: &[u32]) -> Option<Budget> {
        let mut budget = Budget::new(&format!("frontdoor-{bench}-{}", program.replace(' ', "-")), share)?;
        if let Err(e) = budget.enter(pids) {
            println!("  cannot move {program} into its cgroup: {e}: no equal-budget step");
            return None;
        }
        Some(budget)
    }

    /// A new group `name` holding its processes to `share` of one core; `None` (with the reason
    /// printed) where no CPU controller is available to this process.
    fn new(name: &str, share: f64) -> Option<Budget> {
        let Some((version, mount)) = hierarchy() else {
            println!("  no cgroup CPU controller here (v1 /sys/fs/cgroup/cpu, or v2 with `cpu`): no equal-budget step");
            return None;
        };
        if version == Version::V2 {
            // The root's children get the controller only once the root hands it down.
            let _ = std::fs::write(mount.join("cgroup.subtree_control"), "+cpu");
        }
        let group = mount.join(format!("{name}-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&group) {
            println!("  cannot create the cgroup {}: {e}: no equal-budget step", group.display());
            return None;
        }
        let period = PERIOD.as_micros() as u64;
        let quota = ((period as f64) * share).round().max(1000.0) as u64;
        let written = match version {
            Version::V1 => std::fs::write(group.join("cpu.cfs_period_us"), period.to_string())
                .and_then(|()| std::fs::write(group.join("cpu.cfs_quota_us"), quota.to_string())),
            Version::V2 => std::fs::write(group.join("cpu.max"), format!("{quota} {period}")),
        };
        let budget = Budget { version, mount, group, moved: Vec::new() };
        if let Err(e) = written {
            println!("  cannot set the quota of {}: {e}: no equal-budget step", budget.group.display());
            return None;
        }
        Some(budget)
    }

    /// Moves `pids` (all their threads; what they fork later stays in) into the group.
    fn enter(&mut self, pids: &[u32]) -> std::io::Result<()> {
        for &pid in pids {
            let Some(from) = group_of(pid, self.version) else { continue };
            std::fs::write(self.group.join("cgroup.procs"), pid.to_string())?;
            self.moved.push((pid, from));
        }
        Ok(())
    }

    /// Moves every process of the group back where it came from (the hierarchy's root for one
    /// forked inside).
    pub fn leave(&mut self) {
        let members = std::fs::read_to_string(self.group.join("cgroup.procs")).unwrap_or_default();
        for pid in members.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            let from = self.moved.iter().find(|(p, _)| *p == pid).map_or("/", |(_, from)| from.as_str());
            let target = self.mount.join(from.trim_start_matches('/')).join("cgroup.procs");
            if std::fs::write(&target, pid.to_string()).is_err() {
                let _ = std::fs::write(self.mount.join("cgroup.procs"), pid.to_string());
            }
        }
        self.moved.clear();
    }

    /// Times the group's processes were throttled, and for how long, so far.
    pub fn throttled(&self) -> (u64, Duration) {
        let stat = std::fs::read_to_string(self.group.join("cpu.stat")).unwrap_or_default();
        let field = |key: &str| {
            stat.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse::<u64>().ok())).unwrap_or(0)
        };
        match self.version {
            Version::V1 => (field("nr_throttled "), Duration::from_nanos(field("throttled_time "))),
            Version::V2 => (field("nr_throttled "), Duration::from_micros(field("throttled_usec "))),
        }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        self.leave();
        let _ = std::fs::remove_dir(&self.group);
    }
}
