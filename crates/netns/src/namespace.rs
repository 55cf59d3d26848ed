//! Making and entering namespaces.
//!
//! Linux keeps the network, UTS and mount namespace per *thread*. A function here that changes a
//! namespace either does so on a thread it spawns for the purpose and that ends afterwards, or
//! (through [`HomeNamespaces`]) moves the calling thread, which the caller gave to this work,
//! and brings it back: the caller's other threads (and tokio's workers) never change namespace.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::netlink::{Link, RouteSocket, LOOPBACK_INDEX};
use crate::Error;

/// A thread's network, UTS and mount namespaces (a pod's, or the node's to return to), pinned
/// by open file descriptors (`O_CLOEXEC`, so no child inherits them). A namespace lives while a
/// descriptor or a process refers to it.
pub(crate) struct Namespaces {
    pub net: OwnedFd,
    pub uts: OwnedFd,
    pub mnt: OwnedFd,
}

impl Namespaces {
    /// The calling thread's namespaces.
    fn of_this_thread() -> Result<Namespaces, Error> {
        Ok(Namespaces {
            net: open_own_namespace("net")?,
            uts: open_own_namespace("uts")?,
            mnt: open_own_namespace("mnt")?,
        })
    }

    /// Joins these namespaces on the calling thread, which must not share its filesystem
    /// context.
    fn enter(&self) -> Result<(), Error> {
        for (fd, kind, what) in [
            (self.net.as_fd(), CloneFlags::CLONE_NEWNET, "network"),
            (self.uts.as_fd(), CloneFlags::CLONE_NEWUTS, "UTS"),
            // The mount namespace last: joining it resets the thread's root and working directory.
            (self.mnt.as_fd(), CloneFlags::CLONE_NEWNS, "mount"),
        ] {
            setns(fd, kind).map_err(|errno| Error::os(format!("enter the {what} namespace"), errno.into()))?;
        }
        Ok(())
    }
}

/// What goes into a pod's new UTS and mount namespaces.
pub(crate) struct NamespaceContents<'a> {
    pub hostname: &'a str,
    pub resolv_conf: &'a str,
    pub hosts: &'a str,
    pub volumes: &'a [crate::Volume],
}

/// Where the per-pod files are mounted; these paths must exist on the host.
const RESOLV_CONF: &str = "/etc/resolv.conf";
const HOSTS: &str = "/etc/hosts";
/// A tmpfs where the per-pod files are written for the moment it takes to bind-mount them into
/// the pod's mount namespace; each is unlinked right after (the bind mount keeps its contents).
const STAGING_DIR: &str = "/dev/shm";

/// The namespaces of a thread that works in pods' namespaces (makes sandboxes, starts
/// processes), which it returns to after each pod's: the node's. A thread that once could not
/// return is *stranded* and refuses further work ([`Error::Stranded`]). Bound to its thread, so
/// not `Send`.
pub(crate) struct HomeNamespaces {
    namespaces: Namespaces,
    /// Why the thread could not return after a pod's, if it could not.
    stranded: Option<String>,
    _bound_to_its_thread: PhantomData<*const ()>,
}

impl std::fmt::Debug for HomeNamespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeNamespaces").field("stranded", &self.stranded).finish_non_exhaustive()
    }
}

impl HomeNamespaces {
    /// Gives the calling thread a filesystem context (root, working directory) of its own, which
    /// changing mount namespace requires, and records its current namespaces.
    pub fn of_this_thread() -> Result<HomeNamespaces, Error> {
        unshare(CloneFlags::CLONE_FS).map_err(|errno| Error::os("unshare the filesystem context", errno.into()))?;
        Ok(HomeNamespaces {
            namespaces: Namespaces::of_this_thread()?,
            stranded: None,
            _bound_to_its_thread: PhantomData,
        })
    }

    /// Refuses work once the thread is stranded.
    pub fn usable(&self) -> Result<(), Error> {
        match &self.stranded {
            Some(reason) => Err(Error::Stranded { reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// Returns the thread home after work elsewhere gave `outcome`; if it cannot, the thread
    /// is stranded from now on.
    fn come_back<T>(&mut self, outcome: Result<T, Error>) -> Result<T, Error> {
        match self.namespaces.enter() {
            Ok(()) => outcome,
            Err(error) => {
                self.stranded = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// Runs `f` on the calling thread inside the namespaces `pod`, then returns the thread here.
    pub fn visit<T>(&mut self, pod: &Namespaces, f: impl FnOnce() -> T) -> Result<T, Error> {
        self.usable()?;
        let outcome = pod.enter().map(|()| f());
        self.come_back(outcome)
    }
}

/// Makes new network, UTS and mount namespaces on the calling thread (hostname set,
/// `/etc/resolv.conf` and `/etc/hosts` replaced), then returns the thread to `home` with the
/// pod's namespaces and a netlink socket bound to the pod's network namespace (loopback is
/// still down: the sandbox brings it up with the pod's interface).
pub(crate) fn create_pod_namespaces(
    contents: &NamespaceContents<'_>,
    home: &mut HomeNamespaces,
) -> Result<(Namespaces, RouteSocket), Error> {
    home.usable()?;
    let staged = StagedFiles::write(contents)?;
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS)
        .map_err(|errno| Error::os("unshare network, UTS and mount namespaces", errno.into()))?;
    let made = populate_pod_namespaces(contents, &staged);
    drop(staged);
    home.come_back(made)
}

/// Inside the calling thread's new namespaces: hostname, files, descriptors, netlink socket.
fn populate_pod_namespaces(
    contents: &NamespaceContents<'_>,
    staged: &StagedFiles,
) -> Result<(Namespaces, RouteSocket), Error> {
    nix::unistd::sethostname(contents.hostname).map_err(|errno| Error::os("set the pod hostname", errno.into()))?;
    // The node routes between pods on its bridge (their ports are isolated) and would tell a pod
    // to go direct to another one; a pod that listened could then no longer reach a Service
    // whose connection the node DNATed to a pod beside it. (/proc/sys/net shows the calling
    // thread's network namespace: these are the pod's.)
    for setting in ["all", "default"] {
        let path = format!("/proc/sys/net/ipv4/conf/{setting}/accept_redirects");
        std::fs::write(&path, "0").map_err(|error| Error::os(format!("write {path}"), error))?;
    }
    populate_mount_namespace(staged)?;
    for (index, volume) in contents.volumes.iter().enumerate() {
        crate::volumes::mount_volume(volume, &staged.volume_dir(index))?;
    }
    let namespaces = Namespaces::of_this_thread()?;
    let socket = RouteSocket::open().map_err(|error| Error::os("open pod netlink socket", error))?;
    Ok((namespaces, socket))
}

/// Runs `f` on a new thread that has joined the network namespace `net`.
pub(crate) fn run_in_network_namespace<T: Send>(net: &OwnedFd, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
    let net = net.as_fd();
    on_thread(move || {
        setns(net, CloneFlags::CLONE_NEWNET)
            .map_err(|errno| Error::os("enter the pod network namespace", errno.into()))?;
        Ok(f())
    })
}

/// Runs `f` on a new thread that has joined all of the pod's namespaces, so that processes it
/// starts begin life inside them. The thread first stops sharing its filesystem context (root,
/// working directory) with the rest of the process, which joining a mount namespace requires.
pub(crate) fn run_in_pod_namespaces<T: Send>(
    namespaces: &Namespaces,
    f: impl FnOnce() -> T + Send,
) -> Result<T, Error> {
    on_thread(move || {
        unshare(CloneFlags::CLONE_FS).map_err(|errno| Error::os("unshare the filesystem context", errno.into()))?;
        namespaces.enter()?;
        Ok(f())
    })
}

/// Runs `f` on a new thread in a brand-new network namespace with only `lo` (up) in it. Threads
/// and processes `f` starts inherit that namespace; it disappears when the last of them is gone.
///
/// This is how tests (here and in crates that use this one) get a "node" of their own that can
/// create bridges and sandboxes without touching the machine's real network.
pub fn run_in_fresh_network_namespace<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, Error> {
    on_thread(|| {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|errno| Error::os("unshare network namespace", errno.into()))?;
        let mut socket = RouteSocket::open().map_err(|error| Error::os("open netlink socket", error))?;
        bring_loopback_up(&mut socket)?;
        drop(socket);
        Ok(f())
    })
}

/// Runs `f` on a scoped thread and returns its result; a panic in `f` is resumed here.
pub(crate) fn on_thread<T: Send>(f: impl FnOnce() -> Result<T, Error> + Send) -> Result<T, Error> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("frontdoor-netns".into())
            .spawn_scoped(scope, f)
            .map_err(|error| Error::os("spawn namespace thread", error))?;
        match handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn bring_loopback_up(socket: &mut RouteSocket) -> Result<(), Error> {
    socket.set_link_up(Link::Index(LOOPBACK_INDEX)).map_err(|error| Error::os("set lo up", error))
}

fn open_own_namespace(kind: &str) -> Result<OwnedFd, Error> {
    // `thread-self`, not `self`: `self` would name the main thread's namespaces.
    let path = format!("/proc/thread-self/ns/{kind}");
    File::open(&path).map(OwnedFd::from).map_err(|error| Error::os(format!("open {path}"), error))
}

/// The per-pod files, written to [`STAGING_DIR`] under names of their own and unlinked on drop.
struct StagedFiles {
    resolv_conf: PathBuf,
    hosts: PathBuf,
    /// This pod's number, in the names.
    n: u64,
}

impl StagedFiles {
    fn write(contents: &NamespaceContents<'_>) -> Result<StagedFiles, Error> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            |file: &str| Path::new(STAGING_DIR).join(format!("{STAGED_PREFIX}{}-{n}-{file}", std::process::id()));
        let staged = StagedFiles { resolv_conf: path("resolv.conf"), hosts: path("hosts"), n };
        for (path, text) in [(&staged.resolv_conf, contents.resolv_conf), (&staged.hosts, contents.hosts)] {
            write_new_file(path, text.as_bytes(), 0o644)
                .map_err(|error| Error::os(format!("write {}", path.display()), error))?;
        }
        Ok(staged)
    }
}

/// The prefix of staged files' names, followed by the pid of the process that wrote them.
const STAGED_PREFIX: &str = ".frontdoor-";

/// Removes staged files (and volumes' empty staging directories) left in [`STAGING_DIR`] by
/// processes that are gone (one that died in the moment between writing a file and unlinking
/// it); returns how many.
pub(crate) fn remove_stale_staged_files() -> usize {
    remove_stale_staged_files_in(Path::new(STAGING_DIR))
}

fn remove_stale_staged_files_in(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(STAGED_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let gone = |path: &Path| std::fs::remove_file(path).or_else(|_| std::fs::remove_dir(path)).is_ok();
        if !Path::new(&format!("/proc/{pid}")).exists() && gone(&path) {
            removed += 1;
        }
    }
    removed
}

impl StagedFiles {
    /// Where the pod's volume number `index` is made and filled (a directory, removed once the
    /// volume's mounts are made).
    fn volume_dir(&self, index: usize) -> PathBuf {
        Path::new(STAGING_DIR).join(format!("{STAGED_PREFIX}{}-{}-volume-{index}", std::process::id(), self.n))
    }
}

impl Drop for StagedFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.resolv_conf);
        let _ = std::fs::remove_file(&self.hosts);
    }
}

/// Inside the (new, still copied-from-the-host) mount namespace of the current thread: make every
/// mount a slave (`rslave`, as container runtimes do) so that mounts the host makes later still
/// appear in the pod but nothing done here propagates back to the host, then bind the staged
/// per-pod files over `/etc/resolv.conf` and `/etc/hosts`. Once the staged names are unlinked
/// the files exist only through those bind mounts, and vanish with the namespace. (Nothing is
/// unmounted here: every unmount waits for an RCU grace period, a good part of a millisecond.)
fn populate_mount_namespace(staged: &StagedFiles) -> Result<(), Error> {
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|errno| Error::os("make the pod's mounts slaves of the host's", errno.into()))?;
    for (source, target) in [(&staged.resolv_conf, RESOLV_CONF), (&staged.hosts, HOSTS)] {
        mount(Some(source.as_path()), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|errno| Error::os(format!("bind-mount pod {target}"), errno.into()))?;
    }
    Ok(())
}

/// Writes a new file (never an existing one) with exactly `mode`, whatever the umask.
pub(crate) fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.write_all(contents)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_hold_the_text_until_dropped() {
        let contents = NamespaceContents {
            hostname: "web-0",
            resolv_conf: "nameserver 10.96.0.10\n",
            hosts: "127.0.0.1 localhost\n",
            volumes: &[],
        };
        let staged = StagedFiles::write(&contents).unwrap();
        let paths = [staged.resolv_conf.clone(), staged.hosts.clone()];
        assert_eq!(std::fs::read_to_string(&paths[0]).unwrap(), contents.resolv_conf);
        assert_eq!(std::fs::read_to_string(&paths[1]).unwrap(), contents.hosts);
        drop(staged);
        assert!(paths.iter().all(|path| !path.exists()), "unlinked: {paths:?}");
    }

    #[test]
    fn stale_staged_files_are_those_of_processes_that_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        // Above the kernel's highest possible pid (2^22), so never a live process.
        let gone = dir.path().join(format!("{STAGED_PREFIX}4194305-0-hosts"));
        let live = dir.path().join(format!("{STAGED_PREFIX}{}-0-hosts", std::process::id()));
        let other = dir.path().join("unrelated");
        for path in [&gone, &live, &other] {
            std::fs::write(path, "").unwrap();
        }
        assert_eq!(remove_stale_staged_files_in(dir.path()), 1);
        assert!(!gone.exists());
        assert!(live.exists() && other.exists());
    }
}
