//! What the data-plane measurements need from the machine: private network namespaces, CPU
//! times, RSS, the tools they drive.
//!
//! Network safety: everything runs in a network namespace made for it — a thread that
//! `unshare(CLONE_NEWNET)`s ([`in_fresh_netns`]); sockets it opens and processes it spawns live
//! there, and the namespace goes away when the thread ends, even on panic. Nothing here touches
//! the root namespace.

use std::process::Command;
use std::time::Duration;

/// Runs `f` on a thread in a network namespace of its own (loopback up, nothing else).
pub fn in_fresh_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    frontdoor_netns::run_in_fresh_network_namespace(f).expect("a private network namespace (root, CAP_SYS_ADMIN)")
}

/// Runs `ip <args>` in the calling thread's network namespace (the child inherits it).
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) runs");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// User and system CPU time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        Cpu { user: self.user.saturating_sub(earlier.user), system: self.system.saturating_sub(earlier.system) }
    }
}

impl std::ops::Add for Cpu {
    type Output = Cpu;
    fn add(self, other: Cpu) -> Cpu {
        Cpu { user: self.user + other.user, system: self.system + other.system }
    }
}

impl Cpu {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The part spent in user mode; 0 if none was spent at all.
    pub fn user_share(&self) -> f64 {
        self.user.as_secs_f64() / self.total().as_secs_f64().max(1e-9)
    }

    pub fn describe(&self) -> String {
        format!("{:.0} ms user + {:.0} ms kernel", crate::ms(self.user), crate::ms(self.system))
    }
}

/// Fields of a `/proc/…/stat` after the command name (field 3 is index 0); the name, in
/// parentheses, may hold spaces and parentheses of its own.
fn stat_fields(path: &str) -> Vec<u64> {
    parse_stat(&std::fs::read_to_string(path).unwrap_or_default())
}

fn parse_stat(stat: &str) -> Vec<u64> {
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect()
}

/// The CPU time (`utime`, `stime`) of the process or thread whose `stat` is at `path` (a
/// process's system time includes the softirq work done in its context); nothing if it is gone.
pub fn stat_cpu(path: &str) -> Cpu {
    let fields = stat_fields(path);
    Cpu { user: ticks(&fields, 11), system: ticks(&fields, 12) }
}

fn ticks(fields: &[u64], index: usize) -> Duration {
    // USER_HZ is 100 on Linux.
    Duration::from_millis(fields.get(index).copied().unwrap_or(0) * 10)
}

/// Busy and all CPU time so far of each of `/proc/stat`'s lines `names` (`cpu` for the machine,
/// `cpu1` for one core), from one reading: busy is user, nice, system, irq and softirq (guest
/// time is already in user; steal is not the machine's own), all adds idle and iowait.
pub fn core_ticks<const N: usize>(names: [&str; N]) -> [(Duration, Duration); N] {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    names.map(|name| core_ticks_in(&stat, name))
}

fn core_ticks_in(stat: &str, name: &str) -> (Duration, Duration) {
    let Some(line) = stat.lines().find(|l| l.split_whitespace().next() == Some(name)) else {
        return Default::default();
    };
    let fields: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    let sum = |indices: &[usize]| indices.iter().map(|i| ticks(&fields, *i)).sum::<Duration>();
    let busy = sum(&[0, 1, 2, 5, 6]);
    (busy, busy + sum(&[3, 4]))
}

/// The busy share of a line of `/proc/stat` between two [`core_ticks`] readings of it.
pub fn busy_share((busy_before, all_before): (Duration, Duration), (busy, all): (Duration, Duration)) -> f64 {
    busy.saturating_sub(busy_before).as_secs_f64() / all.saturating_sub(all_before).as_secs_f64().max(1e-9)
}

/// The calling thread's CPU time (a netlink batch is processed by the kernel in the sender's
/// context, so its kernel work shows here as system time).
pub fn thread_cpu() -> Cpu {
    stat_cpu("/proc/thread-self/stat")
}

/// The CPU time of this process's children that have been waited for (`cutime`, `cstime`).
pub fn children_cpu() -> Cpu {
    let fields = stat_fields("/proc/self/stat");
    Cpu { user: ticks(&fields, 13), system: ticks(&fields, 14) }
}

/// A field of `/proc/<pid>/status` in MiB (`VmRSS:`, `VmHWM:`).
pub fn status_mib(pid: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Whether `program` is on the PATH.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// The tools the data-plane half drives, with the Debian package that has each; says which are
/// missing (and what is skipped for it).
pub fn check_tools() -> Vec<&'static str> {
    let tools = [
        ("ip", "iproute2", "everything"),
        ("nft", "nftables", "the kube-proxy-shaped baseline of step 1"),
        ("wrk", "wrk", "step 4 (throughput)"),
    ];
    let mut missing = Vec::new();
    for (tool, package, needed_for) in tools {
        if !installed(tool) {
            println!("MISSING: `{tool}` (Debian package {package}) is not installed: skipping {needed_for}");
            missing.push(tool);
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_and_system_time_from_a_stat_line() {
        let fields = super::parse_stat("4242 (tokio) rt (x)) S 1 4242 4242 0 -1 4194368 120 0 0 0 731 2906 0 0 20 0 2");
        assert_eq!((fields[11], fields[12]), (731, 2906));
        assert!(super::parse_stat("garbage").is_empty());
    }

    #[test]
    fn busy_and_all_time_of_a_core() {
        let stat = "cpu  10 1 20 500 5 2 3 7 0 0\ncpu0 4 0 10 300 5 1 1 0 0 0\ncpu1 6 1 10 200 0 1 2 7 0 0\nintr 1";
        let ms = std::time::Duration::from_millis;
        assert_eq!(super::core_ticks_in(stat, "cpu1"), (ms(200), ms(2200)));
        assert_eq!(super::core_ticks_in(stat, "cpu"), (ms(360), ms(5410)));
        assert_eq!(super::core_ticks_in(stat, "cpu7"), (ms(0), ms(0)));
        assert_eq!(super::busy_share((ms(200), ms(2200)), (ms(700), ms(3200))), 0.5);
    }
}
