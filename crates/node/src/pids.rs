//! Which container processes this node started, so that a node that crashed without stopping
//! its pods can kill them when it starts again (their namespaces die with the node, so they
//! could never be reached again).
//!
//! One append-only file per node, one line per container start: `<pid> <start time>`. The start
//! time (field 22 of `/proc/<pid>/stat`) makes sure a pid the kernel has since given to another
//! process is never signalled. Appending a line to an open file costs no inode, where a file per
//! container would (creating inodes is a large part of a pod's start on a busy ext4).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use frontdoor_netns::Signal;

#[derive(Debug)]
pub struct PidJournal {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl PidJournal {
    /// Kills every process group recorded in `path` by an earlier run that still runs, then
    /// starts the journal afresh. Without a writable journal the node still runs pods; it just
    /// cannot clean up after a crash (logged).
    pub fn open(path: &Path) -> PidJournal {
        let killed = kill_recorded(path);
        if killed > 0 {
            tracing::info!(killed, "stopped containers an earlier run of this node left running");
        }
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(path);
        if let Err(error) = &file {
            tracing::warn!(path = %path.display(), %error, "cannot record container pids");
        }
        PidJournal { path: path.to_path_buf(), file: Mutex::new(file.ok()) }
    }

    /// Records the process group a container was started as.
    pub fn record(&self, pid: u32) {
        let Some(start) = process_start_time(pid) else { return };
        let mut file = self.file.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(file) = file.as_mut() {
            if let Err(error) = file.write_all(format!("{pid} {start}\n").as_bytes()) {
                tracing::warn!(path = %self.path.display(), %error, "recording a container pid");
            }
        }
    }
}

/// Kills the recorded process groups whose leader is still the process that was recorded.
fn kill_recorded(path: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else { return 0 };
    let mut killed = 0;
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(pid), Some(start)) = (parts.next().and_then(|p| p.parse::<u32>().ok()), parts.next()) else {
            continue;
        };
        if process_start_time(pid).as_deref() == Some(start)
            && frontdoor_netns::signal_process_group(pid, Signal::Kill).unwrap_or(false)
        {
            killed += 1;
        }
    }
    killed
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn process_start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split_whitespace().nth(19).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn kills_what_an_earlier_run_recorded_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containers.pids");
        let mut leftover = std::process::Command::new("sleep").arg("60").process_group(0).spawn().unwrap();
        let mut other = std::process::Command::new("sleep").arg("60").process_group(0).spawn().unwrap();
        {
            let journal = PidJournal::open(&path);
            journal.record(leftover.id());
        }
        // A line whose start time no longer matches (the pid was reused) is left alone.
        std::fs::write(&path, format!("{}{} 1\n", std::fs::read_to_string(&path).unwrap(), other.id())).unwrap();
        let _journal = PidJournal::open(&path);
        let status = leftover.wait().unwrap();
        assert!(!status.success(), "the recorded process was killed");
        assert!(other.try_wait().unwrap().is_none(), "the other process still runs");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "the journal starts afresh");
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
