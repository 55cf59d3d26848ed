//! `wrk` against a proxy, pinned to core 1: requests/s and p99 latency from its `--latency`
//! report, and the proxy's CPU time per request (its threads' run time from `schedstat`): when
//! core 1 (wrk and the backends) is the limit rather than the proxy's core, requests/s tells the
//! proxies apart less than what each spends on a request. That time is split into the kernel's
//! and the proxy's own (`stat`'s user and system ticks), the part a proxy's code can win on.

use std::process::Command;

use super::HOST;
use crate::dataplane::system::{busy_share, core_ticks, stat_cpu, Cpu};

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// 50 keep-alive connections over HTTP/1.1.
    KeepAlive,
    /// A new connection per request (`Connection: close`), 50 at a time.
    Close,
    /// 50 keep-alive connections over HTTPS (TLS 1.3; one handshake per connection).
    Https,
}

const SECONDS: &str = "8";
const CONNECTIONS: &str = "50";

#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    pub requests_per_second: f64,
    pub p99_ms: f64,
    /// The proxy's CPU time (user and system, every thread) per request.
    pub cpu_us_per_request: f64,
    /// The part of that CPU time spent in user mode (its own code and libraries); the rest is
    /// the kernel's, mostly TCP over loopback, where a send also delivers to the receiver.
    pub user_share: f64,
    /// How busy core 0 (the proxy's) and core 1 (wrk's and the backends') were, 0 to 1.
    pub core_busy: [f64; 2],
    /// Each core's busy time per request (from `/proc/stat`'s ticks): on core 1, what wrk and
    /// the backends (and the kernel in their context) spend on a request.
    pub core_us_per_request: [f64; 2],
}

impl Run {
    /// CPU per request spent in the kernel.
    pub fn kernel_us_per_request(&self) -> f64 {
        self.cpu_us_per_request * (1.0 - self.user_share)
    }

    /// The run with more requests/s (its own p99 with it).
    pub fn best(self, other: Run) -> Run {
        if other.requests_per_second > self.requests_per_second {
            other
        } else {
            self
        }
    }
}

fn url(mode: Mode, (http, https): (u16, u16)) -> String {
    match mode {
        Mode::KeepAlive | Mode::Close => format!("http://127.0.0.1:{http}/api/x"),
        Mode::Https => format!("https://127.0.0.1:{https}/api/x"),
    }
}

/// One request through the proxy must be answered by a backend (`ok`), or the figures are
/// meaningless.
pub fn check(name: &str, ports: (u16, u16)) {
    for mode in [Mode::KeepAlive, Mode::Https] {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "5", "-H", &format!("Host: {HOST}"), &url(mode, ports)])
            .output()
            .expect("curl runs");
        let body = String::from_utf8_lossy(&out.stdout);
        assert_eq!(body, "ok\n", "{name} ({mode:?}) did not reach the backend");
    }
}

/// What the threads of `pids` have run: nanoseconds (`schedstat`), and user and system time
/// (`stat`'s ticks: coarser, so only their ratio is used).
fn cpu(pids: &[String]) -> (u64, Cpu) {
    let (mut ran, mut cpu) = (0, Cpu::default());
    for pid in pids {
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
            let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ran += schedstat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0);
            cpu = cpu + stat_cpu(&task.path().join("stat").to_string_lossy());
        }
    }
    (ran, cpu)
}

/// One wrk run against the proxy on `ports`, whose processes are `pids`.
pub fn run(mode: Mode, ports: (u16, u16), pids: &[String]) -> Run {
    let mut command = Command::new("taskset");
    command.args(["-c", "1", "wrk", "-t1", "-c", CONNECTIONS, "-d", &format!("{SECONDS}s"), "--latency"]);
    command.args(["-H", &format!("Host: {HOST}")]);
    if let Mode::Close = mode {
        command.args(["-H", "Connection: close"]);
    }
    let cores = || core_ticks(["cpu0", "cpu1"]);
    let ((ran_before, cpu_before), cores_before) = (cpu(pids), cores());
    let out = command.arg(url(mode, ports)).output().expect("wrk runs");
    let ((ran_after, cpu_after), cores_after) = (cpu(pids), cores());
    let ran = ran_after - ran_before;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "responses other than 2xx:\n{text}");
    let requests_per_second = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| milliseconds(v.trim()))
        .unwrap_or_else(|| panic!("no 99% latency in wrk's output:\n{text}"));
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(count, _)| count.parse().ok())
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    Run {
        requests_per_second,
        p99_ms: p99,
        cpu_us_per_request: ran as f64 / 1e3 / requests.max(1.0),
        user_share: (cpu_after - cpu_before).user_share(),
        core_busy: [0, 1].map(|core| busy_share(cores_before[core], cores_after[core])),
        core_us_per_request: [0, 1].map(|core| {
            cores_after[core].0.saturating_sub(cores_before[core].0).as_secs_f64() * 1e6 / requests.max(1.0)
        }),
    }
}

/// wrk's durations: `812.00us`, `2.34ms`, `1.02s`.
fn milliseconds(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let value: f64 = text[..split].parse().unwrap_or(f64::NAN);
    match &text[split..] {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::milliseconds("812.00us"), 0.812);
        assert_eq!(super::milliseconds("2.34ms"), 2.34);
        assert_eq!(super::milliseconds("1.50s"), 1500.0);
    }
}
