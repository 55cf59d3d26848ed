//! Starting a container's process inside a pod's namespaces, and signalling its process group.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::Error;

/// `PATH` for a process whose environment sets none (containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A process to start in a sandbox, as a container runtime would start a container's command.
#[derive(Debug)]
pub struct ProcessSpec {
    /// The command and its arguments; `argv[0]` without a `/` is looked up in the `PATH` of `env`
    /// (or [`DEFAULT_PATH`]).
    pub argv: Vec<String>,
    /// The whole environment: nothing is inherited from the node.
    pub env: Vec<(String, String)>,
    /// The working directory (host filesystem); `/` if `None`.
    pub working_dir: Option<PathBuf>,
    /// Standard input (`Stdio::null()` by default).
    pub stdin: Stdio,
    /// Standard output: a log file, a pipe, or `Stdio::null()` (the default).
    pub stdout: Stdio,
    /// Standard error, likewise.
    pub stderr: Stdio,
    /// Kill the process (SIGKILL) when its `Child` is dropped (false by default).
    pub kill_on_drop: bool,
}

impl ProcessSpec {
    /// A spec with an empty environment, `/` as working directory and all stdio to `/dev/null`.
    pub fn new(argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ProcessSpec {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            working_dir: None,
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
            kill_on_drop: false,
        }
    }
}

/// A process ready to start: its command resolved and checked, nothing forked yet.
pub(crate) struct Prepared {
    command: tokio::process::Command,
    name: String,
}

/// Checks that `spec`'s command can be found and its working directory exists, as starting it
/// would, without starting anything (for a command that another program will start).
pub fn check_command(spec: &ProcessSpec) -> Result<(), Error> {
    locate(spec).map(|_| ())
}

/// The program `spec` runs and the directory it runs in, both checked.
fn locate(spec: &ProcessSpec) -> Result<(PathBuf, PathBuf), Error> {
    let command_name = spec.argv.first().ok_or(Error::EmptyCommand)?;
    let working_dir = spec.working_dir.clone().unwrap_or_else(|| PathBuf::from("/"));
    if !working_dir.is_dir() {
        return Err(Error::WorkingDirectory { path: working_dir });
    }
    let program = resolve_executable(command_name, environment_path(&spec.env), &working_dir)?;
    Ok((program, working_dir))
}

/// Resolves `spec`'s command and checks its working directory, so that a command that cannot
/// run is reported before anything is forked.
pub(crate) fn prepare(spec: ProcessSpec) -> Result<Prepared, Error> {
    let (program, working_dir) = locate(&spec)?;
    let command_name = spec.argv[0].clone();
    let path = environment_path(&spec.env);

    let mut command = tokio::process::Command::new(&program);
    command
        .arg0(&command_name)
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&working_dir)
        .stdin(spec.stdin)
        .stdout(spec.stdout)
        .stderr(spec.stderr)
        .kill_on_drop(spec.kill_on_drop)
        .process_group(0);
    if path.is_none() {
        command.env("PATH", DEFAULT_PATH);
    }
    Ok(Prepared { command, name: command_name })
}

impl Prepared {
    /// Starts the process, in a new process group whose id is the child's pid, in the namespaces
    /// of the calling thread: call it from a thread that has joined the pod's. Must be called
    /// within a tokio runtime.
    ///
    /// With no code to run between fork and exec, the standard library starts it with
    /// `posix_spawn` (a `vfork`-style clone that shares the parent's memory until exec), which
    /// costs the same however large this process is; a `fork` would copy the page tables of the
    /// whole node.
    pub(crate) fn spawn(mut self) -> Result<tokio::process::Child, Error> {
        let command = self.name;
        self.command.spawn().map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => Error::ExecutableNotFound { command },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied { command },
            _ => Error::Spawn { command, source },
        })
    }
}

fn environment_path(env: &[(String, String)]) -> Option<&str> {
    env.iter().rev().find(|(name, _)| name == "PATH").map(|(_, value)| value.as_str())
}

/// Finds the file `command` names, as `execvp` would: a name with a `/` is taken as a path
/// (relative to `working_dir`), any other is searched in `path`.
fn resolve_executable(command: &str, path: Option<&str>, working_dir: &Path) -> Result<PathBuf, Error> {
    if command.is_empty() {
        return Err(Error::EmptyCommand);
    }
    if command.contains('/') {
        let candidate = working_dir.join(command);
        return match executable_status(&candidate) {
            ExecutableStatus::Runnable => Ok(candidate),
            ExecutableStatus::NotExecutable => Err(Error::PermissionDenied { command: command.to_owned() }),
            ExecutableStatus::Missing => Err(Error::ExecutableNotFound { command: command.to_owned() }),
        };
    }
    let mut saw_not_executable = false;
    for directory in path.unwrap_or(DEFAULT_PATH).split(':') {
        let directory = if directory.is_empty() { Path::new(".") } else { Path::new(directory) };
        let candidate = working_dir.join(directory).join(OsStr::new(command));
        match executable_status(&candidate) {
            ExecutableStatus::Runnable => return Ok(candidate),
            ExecutableStatus::NotExecutable => saw_not_executable = true,
            ExecutableStatus::Missing => {}
        }
    }
    if saw_not_executable {
        Err(Error::PermissionDenied { command: command.to_owned() })
    } else {
        Err(Error::ExecutableNotFound { command: command.to_owned() })
    }
}

enum ExecutableStatus {
    Runnable,
    NotExecutable,
    Missing,
}

fn executable_status(path: &Path) -> ExecutableStatus {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() && metadata.permissions().mode() & 0o111 != 0 => ExecutableStatus::Runnable,
        Ok(metadata) if metadata.is_file() => ExecutableStatus::NotExecutable,
        _ => ExecutableStatus::Missing,
    }
}

/// A signal the node sends to a container's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGTERM`: ask to stop (first step of a graceful stop).
    Terminate,
    /// `SIGKILL`: stop now (after the grace period).
    Kill,
    /// `SIGINT`.
    Interrupt,
    /// `SIGHUP`.
    Hangup,
}

impl From<Signal> for nix::sys::signal::Signal {
    fn from(signal: Signal) -> Self {
        use nix::sys::signal::Signal as Nix;
        match signal {
            Signal::Terminate => Nix::SIGTERM,
            Signal::Kill => Nix::SIGKILL,
            Signal::Interrupt => Nix::SIGINT,
            Signal::Hangup => Nix::SIGHUP,
        }
    }
}

/// Sends `signal` to every process in the process group `group` (the pid of a process that
/// [`crate::PodSandbox::spawn`] started). Returns `false` if the group has no process left.
pub fn signal_process_group(group: u32, signal: Signal) -> Result<bool, Error> {
    let group = i32::try_from(group).ok().filter(|group| *group > 1).ok_or_else(|| Error::Invalid {
        what: format!("process group {group}"),
        reason: "must be a pid above 1".into(),
    })?;
    match nix::sys::signal::killpg(nix::unistd::Pid::from_raw(group), nix::sys::signal::Signal::from(signal)) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(errno) => Err(Error::os(format!("signal process group {group}"), errno.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_commands_like_execvp() {
        let root = Path::new("/");
        assert_eq!(
            resolve_executable("sh", Some("/nonexistent:/bin:/usr/bin"), root).unwrap(),
            PathBuf::from("/bin/sh")
        );
        assert!(resolve_executable("sh", None, root).is_ok(), "found via the default PATH");
        assert!(matches!(
            resolve_executable("no-such-command-xyz", Some("/bin"), root),
            Err(Error::ExecutableNotFound { .. })
        ));
        assert!(matches!(resolve_executable("/no/such/file", None, root), Err(Error::ExecutableNotFound { .. })));
        assert!(matches!(resolve_executable("passwd", Some("/etc"), root), Err(Error::PermissionDenied { .. })));
        assert_eq!(resolve_executable("bin/sh", None, Path::new("/usr")).unwrap(), PathBuf::from("/usr/bin/sh"));
    }

    #[test]
    fn not_found_message_matches_the_container_runtime() {
        let error = Error::ExecutableNotFound { command: "nginx".into() };
        assert_eq!(error.to_string(), "exec: \"nginx\": executable file not found in $PATH");
    }

    #[test]
    fn refuses_to_signal_init_or_everything() {
        assert!(signal_process_group(0, Signal::Terminate).is_err());
        assert!(signal_process_group(1, Signal::Terminate).is_err());
        assert!(signal_process_group(u32::MAX, Signal::Terminate).is_err());
    }
}
