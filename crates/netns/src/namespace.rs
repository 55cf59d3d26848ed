//! Making and entering namespaces on dedicated threads.
//!
//! Linux keeps the network, UTS and mount namespace per *thread*. Every function here that
//! changes a namespace does so on a thread it spawns for the purpose and that ends afterwards, so
//! the caller's threads (and tokio's workers) never change namespace.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::netlink::RouteSocket;
use crate::Error;

/// The namespaces of one pod, pinned by open file descriptors (`O_CLOEXEC`, so no child inherits
/// them). A namespace lives while a descriptor or a process refers to it.
pub(crate) struct PodNamespaces {
    pub net: OwnedFd,
    pub uts: OwnedFd,
    pub mnt: OwnedFd,
}

/// What goes into a pod's new UTS and mount namespaces.
pub(crate) struct NamespaceContents<'a> {
    pub hostname: &'a str,
    pub resolv_conf: &'a str,
    pub hosts: &'a str,
}

/// Where the per-pod files are mounted; these paths must exist on the host.
const RESOLV_CONF: &str = "/etc/resolv.conf";
const HOSTS: &str = "/etc/hosts";
/// Where a small tmpfs is mounted for a moment, inside the pod's private mount namespace only,
/// to hold the per-pod files before they are bind-mounted into place.
const STAGING_DIR: &str = "/tmp";

/// Creates new network, UTS and mount namespaces (loopback up, hostname set, `/etc/resolv.conf`
/// and `/etc/hosts` replaced) and returns them with a netlink socket bound to the new network
/// namespace.
pub(crate) fn create_pod_namespaces(
    contents: &NamespaceContents<'_>,
) -> Result<(PodNamespaces, RouteSocket), Error> {
    on_thread(|| {
        unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWNS)
            .map_err(|errno| {
                Error::os("unshare network, UTS and mount namespaces", errno.into())
            })?;

        nix::unistd::sethostname(contents.hostname)
            .map_err(|errno| Error::os("set the pod hostname", errno.into()))?;
        ipv4_only_interfaces()?;

        populate_mount_namespace(contents)?;

        let namespaces = PodNamespaces {
            net: open_own_namespace("net")?,
            uts: open_own_namespace("uts")?,
            mnt: open_own_namespace("mnt")?,
        };

        let mut socket =
            RouteSocket::open().map_err(|error| Error::os("open pod netlink socket", error))?;
        bring_loopback_up(&mut socket)?;

        Ok((namespaces, socket))
    })
}

/// Runs `f` on a new thread that has joined the network namespace `net`.
pub(crate) fn run_in_network_namespace<T: Send>(
    net: &OwnedFd,
    f: impl FnOnce() -> T + Send,
) -> Result<T, Error> {
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
    namespaces: &PodNamespaces,
    f: impl FnOnce() -> T + Send,
) -> Result<T, Error> {
    on_thread(move || {
        unshare(CloneFlags::CLONE_FS)
            .map_err(|errno| Error::os("unshare the filesystem context", errno.into()))?;
        for (fd, kind, what) in [
            (namespaces.net.as_fd(), CloneFlags::CLONE_NEWNET, "network"),
            (namespaces.uts.as_fd(), CloneFlags::CLONE_NEWUTS, "UTS"),
            // The mount namespace last: joining it resets the thread's root and working directory.
            (namespaces.mnt.as_fd(), CloneFlags::CLONE_NEWNS, "mount"),
        ] {
            setns(fd, kind).map_err(|errno| {
                Error::os(format!("enter the pod {what} namespace"), errno.into())
            })?;
        }
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
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|errno| Error::os("unshare network namespace", errno.into()))?;
        let mut socket =
            RouteSocket::open().map_err(|error| Error::os("open netlink socket", error))?;
        bring_loopback_up(&mut socket)?;
        drop(socket);
        Ok(f())
    })
}

/// Runs `f` on a scoped thread and returns its result; a panic in `f` is resumed here.
fn on_thread<T: Send>(f: impl FnOnce() -> Result<T, Error> + Send) -> Result<T, Error> {
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
    let index = socket
        .link_index("lo")
        .map_err(|error| Error::os("look up lo", error))?
        .ok_or_else(|| Error::os("look up lo", io::Error::from_raw_os_error(libc::ENODEV)))?;
    socket
        .set_link_up(index, None)
        .map_err(|error| Error::os("set lo up", error))
}

/// Pods here are IPv4 single-stack (as with a CNI plugin that assigns no IPv6 address): new
/// interfaces in the pod's network namespace get no IPv6 link-local address, so the pod's `eth0`
/// sends no duplicate address detection, router solicitations or multicast listener reports
/// that the bridge would flood to every other pod. `lo` keeps `::1`. Applies to this thread's
/// (new) network namespace only; does nothing on a kernel without IPv6.
fn ipv4_only_interfaces() -> Result<(), Error> {
    const DEFAULT_ADDR_GEN_MODE: &str = "/proc/sys/net/ipv6/conf/default/addr_gen_mode";
    match OpenOptions::new().write(true).open(DEFAULT_ADDR_GEN_MODE) {
        // 1 = IN6_ADDR_GEN_MODE_NONE.
        Ok(mut file) => file
            .write_all(b"1")
            .map_err(|error| Error::os(format!("write {DEFAULT_ADDR_GEN_MODE}"), error)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::os(format!("open {DEFAULT_ADDR_GEN_MODE}"), error)),
    }
}

fn open_own_namespace(kind: &str) -> Result<OwnedFd, Error> {
    // `thread-self`, not `self`: `self` would name the main thread's namespaces.
    let path = format!("/proc/thread-self/ns/{kind}");
    File::open(&path)
        .map(OwnedFd::from)
        .map_err(|error| Error::os(format!("open {path}"), error))
}

/// Inside the (new, still copied-from-the-host) mount namespace of the current thread: make every
/// mount a slave (`rslave`, as container runtimes do) so that mounts the host makes later still
/// appear in the pod but nothing done here propagates back to the host, then bind the per-pod files over
/// `/etc/resolv.conf` and `/etc/hosts`. The files live on a tmpfs that is detached from the tree
/// again at once; the bind mounts keep it alive, and it vanishes with the namespace, so no file is
/// ever written to the host's disk.
fn populate_mount_namespace(contents: &NamespaceContents<'_>) -> Result<(), Error> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|errno| Error::os("make the pod's mounts slaves of the host's", errno.into()))?;
    mount(
        Some("tmpfs"),
        STAGING_DIR,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=1m,mode=0755"),
    )
    .map_err(|errno| Error::os("mount staging tmpfs", errno.into()))?;
    let result = (|| {
        for (target, text) in [(RESOLV_CONF, contents.resolv_conf), (HOSTS, contents.hosts)] {
            let name = Path::new(target)
                .file_name()
                .expect("constant path has a file name");
            let staged = Path::new(STAGING_DIR).join(name);
            write_file(&staged, text)
                .map_err(|error| Error::os(format!("write pod {target}"), error))?;
            mount(
                Some(&staged),
                target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|errno| Error::os(format!("bind-mount pod {target}"), errno.into()))?;
        }
        Ok(())
    })();
    umount2(STAGING_DIR, MntFlags::MNT_DETACH)
        .map_err(|errno| Error::os("detach staging tmpfs", errno.into()))?;
    result
}

fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}
