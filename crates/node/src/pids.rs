//! Which container processes this node started, so that a node that crashed without stopping
//! its pods can kill them when it starts again (their namespaces die with the node, so they
//! could never be reached again).
//!
//! One append-only file per node, one line per container start: `<pid> <start time>`. The start
//! time (field 22 of `/proc/<pid>/stat`) makes sure a pid the kernel has since given to another
//! process is never signalled. Appending a line to an open file costs no inode, where a file per
//! container would (creating inodes is a large part of a pod's start on a busy ext4).

use std::fs::{File, OpenOptions, TryLockError};
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
    ///
    /// The journal stays locked (`flock`) while the node runs: that lock is how `frontdoor
    /// cleanup` knows the node is alive ([`Leftovers::take`]). If another live node holds it,
    /// nothing of its is killed or forgotten (logged: two nodes should not share a data
    /// directory).
    pub fn open(path: &Path) -> PidJournal {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path);
        let file = match file {
            Ok(file) => match file.try_lock() {
                Ok(()) => {
                    let killed = kill_recorded(path).len();
                    if killed > 0 {
                        tracing::info!(killed, "stopped containers an earlier run of this node left running");
                    }
                    file.set_len(0).map(|()| file)
                }
                Err(TryLockError::WouldBlock) => {
                    tracing::error!(
                        path = %path.display(),
                        "another running node holds this pid journal; its containers are left alone"
                    );
                    OpenOptions::new().append(true).open(path)
                }
                Err(TryLockError::Error(error)) => Err(error),
            },
            Err(error) => Err(error),
        };
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

/// The path of a node's pid journal under its data directory.
pub fn journal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pods").join("containers.pids")
}

/// A crashed node's pid journal, taken by `frontdoor cleanup` while no node holds it.
#[derive(Debug)]
pub struct Leftovers {
    path: PathBuf,
    /// Holds the journal's lock until dropped, so no node starts on it meanwhile (`None`: there
    /// is no journal).
    file: Option<File>,
}

impl Leftovers {
    /// Takes the journal at `path` if no running node holds it: `Ok(None)` if one does, and
    /// an empty journal if there is none (nothing was ever recorded there).
    pub fn take(path: &Path) -> std::io::Result<Option<Leftovers>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Some(Leftovers { path: path.to_path_buf(), file: None }));
            }
            Err(error) => return Err(error),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(Leftovers { path: path.to_path_buf(), file: Some(file) })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => Err(error),
        }
    }

    /// Kills every recorded process group whose leader is still the process that was recorded
    /// (SIGKILL), empties the journal and returns the pids it killed.
    pub fn stop(&self) -> std::io::Result<Vec<u32>> {
        let Some(file) = &self.file else { return Ok(Vec::new()) };
        let killed = kill_recorded(&self.path);
        file.set_len(0)?;
        Ok(killed)
    }
}

/// Kills the recorded process groups whose leader is still the process that was recorded, and
/// returns their pids.
fn kill_recorded(path: &Path) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    let mut killed = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(pid), Some(start)) = (parts.next().and_then(|p| p.parse::<u32>().ok()), parts.next()) else {
            continue;
        };
        if !killed.contains(&pid)
            && process_start_time(pid).as_deref() == Some(start)
            && frontdoor_netns::signal_process_group(pid, Signal::Kill).unwrap_or(false)
        {
            killed.push(pid);
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

    #[test]
    fn cleanup_takes_the_journal_only_from_a_node_that_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pods").join("containers.pids");
        assert!(Leftovers::take(&path).unwrap().expect("no journal, no node").stop().unwrap().is_empty());
        let mut leftover = std::process::Command::new("sleep").arg("60").process_group(0).spawn().unwrap();
        let journal = PidJournal::open(&path);
        journal.record(leftover.id());
        assert!(Leftovers::take(&path).unwrap().is_none(), "a running node holds its journal");
        drop(journal); // the node is gone
        let leftovers = Leftovers::take(&path).unwrap().expect("no node holds the journal");
        assert!(PidJournal::open(&path).file.lock().unwrap().is_some(), "a node may still write, not kill");
        assert_eq!(leftovers.stop().unwrap(), [leftover.id()]);
        assert!(!leftover.wait().unwrap().success(), "the recorded process was killed");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "", "the journal is emptied");
        assert!(leftovers.stop().unwrap().is_empty(), "a second run has nothing to do");
    }
}
