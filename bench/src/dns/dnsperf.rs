//! Runs `dnsperf` (pinned to its own core) against one server and reads its report: queries/s,
//! lost queries, response codes, average latency. Alongside, the CPU time the server's processes
//! and dnsperf used, so a reader can tell which side was the bottleneck. (Latency percentiles at
//! a fixed rate come from the bench's own client, `latency`, not from dnsperf's `-v`.)

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::daemons::tree_cpu;
use crate::dataplane::system::{children_cpu, core_ticks, Cpu};

/// How dnsperf loads the server.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// `-l`: run for this long (`None`: once through the input, `-n 1`).
    pub seconds: Option<u32>,
    /// `-c`: client sockets.
    pub clients: u32,
    /// `-q`: queries outstanding at most.
    pub outstanding: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Run {
    pub qps: f64,
    pub sent: u64,
    pub completed: u64,
    pub lost: u64,
    pub average: Duration,
    pub response_codes: String,
    /// CPU the server's processes used during the run.
    pub server_cpu: Duration,
    /// CPU dnsperf used.
    pub client_cpu: Cpu,
    /// CPU the whole machine used (every core, every process, interrupts): beside the server's
    /// and dnsperf's, it tells whether something else was competing.
    pub machine_cpu: Duration,
    pub wall: Duration,
}

impl Run {
    /// Busy share of one core: the server's and dnsperf's.
    pub fn busy(&self) -> (f64, f64) {
        let wall = self.wall.as_secs_f64().max(1e-9);
        let client = self.client_cpu.user + self.client_cpu.system;
        (self.server_cpu.as_secs_f64() / wall, client.as_secs_f64() / wall)
    }

    /// Cores the whole machine kept busy on average.
    pub fn machine_busy(&self) -> f64 {
        self.machine_cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// Cores kept busy by neither the server nor dnsperf (other processes, interrupts outside
    /// their time): what a shared machine took from the run.
    pub fn others_busy(&self) -> f64 {
        let (server, client) = self.busy();
        (self.machine_busy() - server - client).max(0.0)
    }
}

/// The machine's busy CPU time so far.
fn machine_cpu() -> Duration {
    core_ticks(["cpu"])[0].0
}

fn seconds(text: &str) -> Duration {
    text.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64).unwrap_or_default()
}

fn parse(report: &str) -> Run {
    let mut run = Run::default();
    for line in report.lines() {
        let Some((key, value)) = line.trim().split_once(':') else { continue };
        let first = value.split_whitespace().next().unwrap_or_default();
        match key.trim() {
            "Queries sent" => run.sent = first.parse().unwrap_or(0),
            "Queries completed" => run.completed = first.parse().unwrap_or(0),
            "Queries lost" => run.lost = first.parse().unwrap_or(0),
            "Queries per second" => run.qps = first.parse().unwrap_or(0.0),
            "Average Latency (s)" => run.average = seconds(first),
            "Response codes" => run.response_codes = value.trim().to_string(),
            _ => {}
        }
    }
    run
}

/// Runs dnsperf on `core` against `server`, the queries read from `input`; `server_pid` is the
/// server's main process, whose tree's CPU time is taken around the run.
pub fn run(server: SocketAddr, input: &Path, load: Load, core: usize, server_pid: u32) -> Run {
    let mut command = Command::new("taskset");
    command
        .args(["-c", &core.to_string(), "dnsperf", "-s", &server.ip().to_string(), "-p", &server.port().to_string()])
        .arg("-d")
        .arg(input)
        .args(["-T", "1", "-t", "2", "-c", &load.clients.to_string(), "-q", &load.outstanding.to_string()]);
    match load.seconds {
        Some(seconds) => command.args(["-l", &seconds.to_string()]),
        None => command.args(["-n", "1"]),
    };
    let (server_before, client_before, machine_before) = (tree_cpu(server_pid), children_cpu(), machine_cpu());
    let started = Instant::now();
    let output = command.output().expect("dnsperf runs");
    let wall = started.elapsed();
    let (server_after, client_after, machine_after) = (tree_cpu(server_pid), children_cpu(), machine_cpu());
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dnsperf against {server} failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        report.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    let mut run = parse(&report);
    run.server_cpu = server_after.saturating_sub(server_before);
    run.client_cpu = client_after - client_before;
    run.machine_cpu = machine_after.saturating_sub(machine_before);
    run.wall = wall;
    run
}

/// The version line of the installed dnsperf.
pub fn version() -> String {
    let output = Command::new("dnsperf").arg("-h").output();
    output
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .find(|l| l.starts_with("Version"))
                .map(|l| format!("dnsperf {}", l.trim_start_matches("Version").trim()))
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report() {
        let report = "Statistics:\n\n  Queries sent:         391047\n  Queries completed:    390757 (99.93%)\n\
            \x20 Queries lost:         290 (0.07%)\n\n  Response codes:       NOERROR 260506 (66.67%), NXDOMAIN 130251 (33.33%)\n\
            \x20 Queries per second:   129582.306421\n\n  Average Latency (s):  0.001233 (min 0.000014, max 0.015815)\n";
        let run = parse(report);
        assert_eq!((run.sent, run.completed, run.lost), (391_047, 390_757, 290));
        assert!((run.qps - 129_582.306_421).abs() < 1e-6);
        assert_eq!(run.average, Duration::from_micros(1233));
        assert!(run.response_codes.starts_with("NOERROR 260506"));
    }
}
