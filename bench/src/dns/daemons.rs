//! The peers: Knot DNS and NSD serving the cluster's zone files, Unbound forwarding with a cache,
//! and a second Knot as the upstream of the forwarding step. Each runs in the foreground
//! (`knotd -c`, `nsd -d -c`, `unbound -d -c`) from a configuration written into the bench's
//! temporary directory, listening on a loopback address of the bench's network namespace, pinned
//! to one core from its start (`taskset -c`, so the processes it forks are pinned too); their
//! system services and configurations are never touched.
//!
//! A [`Daemon`] is a guard: dropping it stops the process it started (SIGTERM, then SIGKILL after
//! five seconds, by PID) and any process it forked that is still running with the bench's
//! configuration on its command line (NSD's xfrd and server children). Should the bench die
//! without unwinding, the kernel kills the daemon (`setpriv --pdeathsig KILL`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::zone::ZoneFile;
use crate::dataplane::system::stat_cpu;

pub struct Daemon {
    pub name: &'static str,
    pub address: SocketAddr,
    child: Child,
    /// The configuration file: on the command line of every process of this daemon.
    config: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn spawn(
        name: &'static str,
        core: usize,
        program: &str,
        args: &[&str],
        config: PathBuf,
        address: SocketAddr,
    ) -> Daemon {
        let log = config.with_extension("log");
        let file = std::fs::File::create(&log).expect("a log file in the bench's directory");
        // Killed with the bench's thread that started it, even if the bench dies without
        // unwinding (Ctrl-C): the guard's drop would not run then.
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "taskset", "-c", &core.to_string(), program])
            .args(args)
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        Daemon { name, address, child, config, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon logged so far (for a failure message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let forked = process_tree(self.pid());
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stopped = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let marker = self.config.to_string_lossy().into_owned();
        for pid in forked.into_iter().filter(|p| *p != self.pid()) {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && command_line(pid).contains(&marker) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if command_line(pid).contains(&marker) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }
}

fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// `pid` and every process descended from it.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|entry| {
                    let child: u32 = entry.file_name().to_str()?.parse().ok()?;
                    let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                    let parent = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
                    Some((child, parent))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![pid];
    let mut at = 0;
    while at < tree.len() {
        let parent = tree[at];
        tree.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        at += 1;
    }
    tree
}

/// The CPU time (user + system, all threads) the processes of `pid`'s tree have used so far.
pub fn tree_cpu(pid: u32) -> Duration {
    process_tree(pid).iter().map(|p| stat_cpu(&format!("/proc/{p}/stat")).total()).sum()
}

/// Knot DNS serving `zones` on `address`. One UDP and one TCP worker: Knot's default is one
/// per CPU, and it is given one core.
pub fn knot(directory: &Path, name: &'static str, address: SocketAddr, core: usize, zones: &[ZoneFile]) -> Daemon {
    let run = directory.join(name);
    std::fs::create_dir_all(&run).expect("Knot's directory");
    let mut config = format!(
        "server:\n    rundir: \"{run}\"\n    listen: {ip}@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         database:\n    storage: \"{run}\"\n\
         log:\n  - target: stderr\n    any: warning\n\
         zone:\n",
        run = run.display(),
        ip = address.ip(),
        port = address.port()
    );
    for zone in zones {
        let _ = writeln!(config, "  - domain: {}\n    file: \"{}\"", zone.origin, zone.path.display());
    }
    let path = run.join("knot.conf");
    std::fs::write(&path, config).expect("Knot's configuration");
    Daemon::spawn(name, core, "knotd", &["-c"], path, address)
}

/// NSD serving `zones` on `address`, one server process (its default), response rate
/// limiting off (it is on in Debian's build, and would answer a benchmark with drops).
pub fn nsd(directory: &Path, address: SocketAddr, core: usize, zones: &[ZoneFile]) -> Daemon {
    let run = directory.join("nsd");
    std::fs::create_dir_all(&run).expect("NSD's directory");
    let mut config = format!(
        "server:\n    ip-address: {ip}\n    port: {port}\n    username: \"\"\n    chroot: \"\"\n    zonesdir: \"{run}\"\n\
         \x20   pidfile: \"{run}/nsd.pid\"\n    database: \"\"\n    zonelistfile: \"{run}/zone.list\"\n\
         \x20   xfrdfile: \"{run}/xfrd.state\"\n    xfrdir: \"{run}\"\n    server-count: 1\n    verbosity: 0\n\
         \x20   rrl-ratelimit: 0\n    rrl-whitelist-ratelimit: 0\n\
         remote-control:\n    control-enable: no\n",
        run = run.display(),
        ip = address.ip(),
        port = address.port()
    );
    for zone in zones {
        let _ = writeln!(config, "zone:\n    name: {}\n    zonefile: \"{}\"", zone.origin, zone.path.display());
    }
    let path = run.join("nsd.conf");
    std::fs::write(&path, config).expect("NSD's configuration");
    Daemon::spawn("nsd", core, "nsd", &["-d", "-c"], path, address)
}

/// Unbound on `address`, one thread (its default), forwarding `zone` to `upstream`, caches
/// large enough to hold every name of the step (64 MiB of messages, 128 MiB of record sets), no
/// validation (nothing is signed), `test.` no longer refused as a special-use name.
pub fn unbound(directory: &Path, address: SocketAddr, core: usize, zone: &str, upstream: SocketAddr) -> Daemon {
    let run = directory.join("unbound");
    std::fs::create_dir_all(&run).expect("Unbound's directory");
    let config = format!(
        "server:\n    interface: {ip}\n    port: {port}\n    do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n\
         \x20   directory: \"{run}\"\n    pidfile: \"{run}/unbound.pid\"\n    use-syslog: no\n    logfile: \"\"\n\
         \x20   verbosity: 0\n    num-threads: 1\n    access-control: 0.0.0.0/0 allow\n    do-not-query-localhost: no\n\
         \x20   do-ip6: no\n    module-config: \"iterator\"\n    msg-cache-size: 64m\n    rrset-cache-size: 128m\n\
         \x20   local-zone: \"test.\" nodefault\n\
         forward-zone:\n    name: \"{zone}\"\n    forward-addr: {}@{}\n\
         remote-control:\n    control-enable: no\n",
        upstream.ip(),
        upstream.port(),
        run = run.display(),
        ip = address.ip(),
        port = address.port()
    );
    let path = run.join("unbound.conf");
    std::fs::write(&path, config).expect("Unbound's configuration");
    Daemon::spawn("unbound", core, "unbound", &["-d", "-c"], path, address)
}

/// The version `program` reports (`--version`, `-v` or `-V`): the last word of its first line.
pub fn version(program: &str, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            let text = String::from_utf8_lossy(&text);
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
            line.split_whitespace().last().unwrap_or("unknown").to_string()
        })
        .unwrap_or_default()
}
