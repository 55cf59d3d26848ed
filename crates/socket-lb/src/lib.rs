//! Connect-time load balancing for ClusterIPs, as Cilium's socket LB: a BPF program on the
//! cgroup `connect4` hook rewrites a TCP socket's destination from a Service's cluster IP and
//! port to one of its endpoints *before* the connection starts. The connection then runs
//! straight to the pod: no per-packet NAT and no conntrack rewrite, so traffic through a
//! ClusterIP from the node and its pods costs what traffic to the pod address costs. A second
//! program, on `getpeername4`, answers with the ClusterIP the socket was connected to, as an
//! application behind NAT would be told.
//!
//! The nftables rules stay the whole data plane: anything the program leaves alone (UDP,
//! another protocol, a Service it does not hold, a packet from another machine) is handled by
//! them as before. The service proxy decides which frontends the program holds (see
//! `frontdoor-proxy`); this crate only programs the kernel:
//!
//! * [`SocketBalancer::attach`] creates the maps, loads the program (assembled in
//!   [`program`]) and attaches it to a cgroup v2 through a BPF link, which the kernel
//!   detaches when the process exits however it exits;
//! * the program acts only in network namespaces listed in its [`Scope`] (the node's and its
//!   pods'), so nodes in other namespaces of the same machine (parallel tests) never see it;
//! * [`SocketBalancer::set`] replaces a frontend's endpoints atomically: the new set is written
//!   under a fresh slot and the frontend switched to it in one update, so a `connect()` sees
//!   the old set or the new one, never a mix.

pub mod program;
mod sys;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

pub use sys::netns_cookie;

/// Most frontends the program holds (more are left to the nftables rules).
pub const MAX_FRONTENDS: u32 = 65_536;
/// Most endpoints across all frontends (30,000 Services × 8 take 240,000). The kernel sizes a
/// hash map's bucket array by it (8 MiB here) even with no element in it.
pub const MAX_BACKENDS: u32 = 1 << 19;
/// Most network namespaces in scope.
pub const MAX_SCOPE: u32 = 16_384;
/// Most balanced sockets whose `getpeername` names their frontend (older ones name the pod).
pub const MAX_REVERSE: u32 = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no cgroup v2 hierarchy is mounted")]
    NoCgroup2,
    #[error("{what}: {source}")]
    Kernel {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn kernel(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Kernel { what, source }
}

/// A Service's cluster IP and TCP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// An address and port as `struct bpf_sock_addr` holds them: the address's four bytes, then the
/// port in network byte order, then two zero bytes.
fn sock_addr_bytes(ip: Ipv4Addr, port: u16) -> [u8; 8] {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&ip.octets());
    bytes[4..6].copy_from_slice(&port.to_be_bytes());
    bytes
}

fn pair(first: u32, second: u32) -> [u8; 8] {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&first.to_ne_bytes());
    bytes[4..].copy_from_slice(&second.to_ne_bytes());
    bytes
}

/// The network namespaces the program acts in. Cheap to clone: the node runtime adds its pods'
/// namespaces as it makes them. Counted: a namespace added twice (the node's own, or one two
/// holders share) stays in scope until it has been removed as often.
#[derive(Clone, Debug)]
pub struct Scope(Arc<ScopeMap>);

#[derive(Debug)]
struct ScopeMap {
    map: OwnedFd,
    holders: Mutex<HashMap<u64, usize>>,
}

impl Scope {
    /// Lets the program act for sockets of the namespace with this cookie.
    pub fn add(&self, cookie: u64) -> Result<(), Error> {
        let mut holders = self.0.holders.lock().unwrap_or_else(PoisonError::into_inner);
        if holders.get(&cookie).is_none() {
            sys::map_update(self.0.map.as_fd(), &cookie.to_ne_bytes(), &[1])
                .map_err(kernel("adding a namespace to the scope"))?;
        }
        *holders.entry(cookie).or_default() += 1;
        Ok(())
    }

    /// How many namespaces are in scope.
    pub fn len(&self) -> usize {
        self.0.holders.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no namespace is in scope.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Undoes one [`add`](Scope::add) of this cookie.
    pub fn remove(&self, cookie: u64) -> Result<(), Error> {
        let mut holders = self.0.holders.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(count) = holders.get_mut(&cookie) else { return Ok(()) };
        *count -= 1;
        if *count > 0 {
            return Ok(());
        }
        holders.remove(&cookie);
        sys::map_delete(self.0.map.as_fd(), &cookie.to_ne_bytes())
            .map(drop)
            .map_err(kernel("removing a namespace from the scope"))
    }
}

/// What a frontend points at in the maps.
#[derive(Clone, Debug)]
struct Entry {
    slot: u32,
    backends: Vec<SocketAddrV4>,
}

/// The attached program and its maps, and what they hold.
pub struct SocketBalancer {
    services: OwnedFd,
    backends: OwnedFd,
    scope: Scope,
    reverse: OwnedFd,
    /// Each program and its link (connect4, getpeername4): dropping a link detaches its program.
    _programs: [(OwnedFd, OwnedFd); 2],
    entries: HashMap<Frontend, Entry>,
    used_slots: HashSet<u32>,
    next_slot: u32,
}

impl std::fmt::Debug for SocketBalancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketBalancer").field("frontends", &self.entries.len()).finish_non_exhaustive()
    }
}

impl SocketBalancer {
    /// Creates the maps and attaches the program to the cgroup v2 directory `cgroup` (the
    /// hierarchy's root covers every process of the machine; the [`Scope`] narrows that to
    /// this node's namespaces). The program acts nowhere until a namespace is in its scope.
    pub fn attach(cgroup: &std::fs::File) -> Result<SocketBalancer, Error> {
        let hash = |name, value_size, max_entries| {
            sys::create_map(sys::BPF_MAP_TYPE_HASH, name, 8, value_size, max_entries, sys::BPF_F_NO_PREALLOC)
        };
        let scope = hash("fd_lb_scope", 1, MAX_SCOPE).map_err(kernel("creating the scope map"))?;
        let services = hash("fd_lb_services", 8, MAX_FRONTENDS).map_err(kernel("creating the services map"))?;
        let backends = hash("fd_lb_backends", 8, MAX_BACKENDS).map_err(kernel("creating the backends map"))?;
        let reverse = sys::create_map(sys::BPF_MAP_TYPE_LRU_HASH, "fd_lb_reverse", 8, 8, MAX_REVERSE, 0)
            .map_err(kernel("creating the reverse map"))?;
        let maps = program::Maps {
            scope: raw(scope.as_fd()),
            services: raw(services.as_fd()),
            backends: raw(backends.as_fd()),
            reverse: raw(reverse.as_fd()),
        };
        // Neither program calls a GPL-only helper.
        let attach = |name, hook, insns: Vec<program::Insn>| -> Result<(OwnedFd, OwnedFd), Error> {
            let program = sys::load_program(sys::BPF_PROG_TYPE_CGROUP_SOCK_ADDR, hook, name, &insns, c"Apache-2.0")
                .map_err(kernel("loading a program"))?;
            let link = sys::link_create(program.as_fd(), cgroup.as_fd(), hook)
                .map_err(kernel("attaching a program to the cgroup"))?;
            Ok((program, link))
        };
        let connect = attach("fd_connect4", sys::BPF_CGROUP_INET4_CONNECT, program::assemble(maps))?;
        let getpeername =
            attach("fd_getpeername4", sys::BPF_CGROUP_INET4_GETPEERNAME, program::assemble_getpeername(maps))?;
        Ok(SocketBalancer {
            services,
            backends,
            scope: Scope(Arc::new(ScopeMap { map: scope, holders: Mutex::new(HashMap::new()) })),
            reverse,
            _programs: [connect, getpeername],
            entries: HashMap::new(),
            used_slots: HashSet::new(),
            next_slot: 0,
        })
    }

    /// The namespaces the program acts in.
    pub fn scope(&self) -> Scope {
        self.scope.clone()
    }

    /// The kernel memory the four maps take (the `memlock` their `/proc/self/fdinfo` entries
    /// report), in bytes; `None` where the kernel does not say.
    pub fn map_memory(&self) -> Option<u64> {
        [self.scope.0.map.as_fd(), self.services.as_fd(), self.backends.as_fd(), self.reverse.as_fd()]
            .into_iter()
            .map(|fd| {
                let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", raw(fd))).ok()?;
                text.lines().find_map(|line| line.strip_prefix("memlock:")).and_then(|v| v.trim().parse::<u64>().ok())
            })
            .sum()
    }

    /// The frontends the program holds now.
    pub fn frontends(&self) -> impl Iterator<Item = &Frontend> {
        self.entries.keys()
    }

    fn fresh_slot(&mut self) -> u32 {
        loop {
            let slot = self.next_slot;
            self.next_slot = self.next_slot.wrapping_add(1);
            if self.used_slots.insert(slot) {
                return slot;
            }
        }
    }

    fn delete_slot(&mut self, entry: &Entry) {
        for index in 0..entry.backends.len() as u32 {
            // A failure here leaves an unreachable element, never a wrong answer.
            let _ = sys::map_delete(self.backends.as_fd(), &pair(entry.slot, index));
        }
        self.used_slots.remove(&entry.slot);
    }

    /// Makes `connect()` to `frontend` go to one of `backends`, chosen at random per
    /// connection; with none, removes the frontend (its connections go to the nftables rules
    /// again). The same backends as before write nothing. On an error the frontend is left out
    /// of the program entirely.
    pub fn set(&mut self, frontend: Frontend, backends: &[SocketAddrV4]) -> Result<(), Error> {
        if backends.is_empty() {
            return self.remove(frontend);
        }
        if self.entries.get(&frontend).is_some_and(|entry| entry.backends == backends) {
            return Ok(());
        }
        let entry = Entry { slot: self.fresh_slot(), backends: backends.to_vec() };
        let written = (|| {
            for (index, backend) in backends.iter().enumerate() {
                sys::map_update(
                    self.backends.as_fd(),
                    &pair(entry.slot, index as u32),
                    &sock_addr_bytes(*backend.ip(), backend.port()),
                )
                .map_err(kernel("writing an endpoint"))?;
            }
            sys::map_update(
                self.services.as_fd(),
                &sock_addr_bytes(frontend.ip, frontend.port),
                &pair(backends.len() as u32, entry.slot),
            )
            .map_err(kernel("writing a frontend"))
        })();
        match written {
            Ok(()) => {
                if let Some(old) = self.entries.insert(frontend, entry) {
                    self.delete_slot(&old);
                }
                Ok(())
            }
            Err(error) => {
                self.delete_slot(&entry);
                let _ = self.remove(frontend);
                Err(error)
            }
        }
    }

    /// Leaves `frontend` to the nftables rules.
    pub fn remove(&mut self, frontend: Frontend) -> Result<(), Error> {
        let result = sys::map_delete(self.services.as_fd(), &sock_addr_bytes(frontend.ip, frontend.port))
            .map(drop)
            .map_err(kernel("removing a frontend"));
        if let Some(old) = self.entries.remove(&frontend) {
            self.delete_slot(&old);
        }
        result
    }
}

fn raw(fd: BorrowedFd<'_>) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// The cgroup v2 hierarchy's root directory, opened, and where it was found. Where it is
/// mounted (`/sys/fs/cgroup` on a unified system, `/sys/fs/cgroup/unified` on a hybrid one, from
/// `/proc/self/mountinfo`) it is opened there; where it is not (`ip netns exec` mounts a fresh
/// `/sys` without it) it is mounted on a private directory just long enough to open it, so
/// nothing stays mounted.
pub fn open_cgroup2_root() -> Result<(std::fs::File, PathBuf), Error> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(kernel("reading /proc/self/mountinfo"))?;
    if let Some(path) = cgroup2_mount(&text) {
        let directory = std::fs::File::open(&path).map_err(kernel("opening the cgroup v2 root"))?;
        return Ok((directory, path));
    }
    let point = std::env::temp_dir().join(format!("frontdoor-cgroup2-{}", std::process::id()));
    std::fs::create_dir_all(&point).map_err(kernel("making a directory to mount cgroup v2 on"))?;
    let mounted =
        nix::mount::mount(Some("cgroup2"), &point, Some("cgroup2"), nix::mount::MsFlags::empty(), None::<&str>)
            .map_err(|errno| Error::Kernel { what: "mounting cgroup v2", source: errno.into() });
    let opened = mounted.and_then(|()| {
        let directory = std::fs::File::open(&point).map_err(kernel("opening the cgroup v2 root"));
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
        directory
    });
    let _ = std::fs::remove_dir(&point);
    opened.map(|directory| (directory, PathBuf::from("cgroup2 (mounted to open it)")))
}

fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        if filesystem.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        // Fields: id parent major:minor root mount-point ...; only a mount of the whole
        // hierarchy (root "/") covers every process.
        let fields: Vec<&str> = mount.split_whitespace().collect();
        let point = fields.get(4)?;
        (fields.get(3) == Some(&"/")).then(|| PathBuf::from(point))
    })
}

/// The cookie of the calling thread's network namespace.
pub fn current_netns_cookie() -> Result<u64, Error> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .or_else(|_| std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
        .map_err(kernel("opening a socket for the namespace cookie"))?;
    netns_cookie(socket.as_fd()).map_err(kernel("reading the namespace cookie"))
}

/// The remote address the kernel holds for this thread's namespace's established TCP socket
/// bound to `local_port` (its line in `/proc/thread-self/net/tcp`): where a balanced socket
/// really runs, whatever `getpeername` answers. For diagnostics and tests.
pub fn kernel_peer(local_port: u16) -> Option<SocketAddrV4> {
    let table = std::fs::read_to_string("/proc/thread-self/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = proc_net_address(fields.get(1)?)?;
        // State 01: ESTABLISHED.
        (local.port() == local_port && fields.get(3) == Some(&"01")).then(|| proc_net_address(fields.get(2)?))?
    })
}

/// `/proc/net/tcp`'s `0100007F:1F90`: the address as the kernel's 32-bit word in hex (so its
/// bytes reversed on a little-endian machine), the port in hex.
fn proc_net_address(text: &str) -> Option<SocketAddrV4> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), u16::from_str_radix(port, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_laid_out_as_the_kernel_hands_them_to_the_program() {
        assert_eq!(sock_addr_bytes(Ipv4Addr::new(10, 96, 0, 1), 443), [10, 96, 0, 1, 0x01, 0xbb, 0, 0]);
        assert_eq!(sock_addr_bytes(Ipv4Addr::new(10, 244, 0, 7), 80), [10, 244, 0, 7, 0, 80, 0, 0]);
    }

    #[test]
    fn proc_net_addresses_read_as_the_kernel_writes_them() {
        let want = |text| proc_net_address(text);
        assert_eq!(want("0100007F:1F90"), Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)));
        assert_eq!(want("0200F40A:0050"), Some(SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, 2), 80)));
        assert_eq!(want("0100007F"), None);
        assert_eq!(want("zz:1F90"), None);
    }

    #[test]
    fn the_cgroup2_mount_is_found_on_unified_and_hybrid_systems() {
        let cases = [
            (
                "unified",
                "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n",
                Some("/sys/fs/cgroup"),
            ),
            (
                "hybrid",
                "30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n\
                 31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                 32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
                Some("/sys/fs/cgroup/unified"),
            ),
            ("v1 only", "32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", None),
            ("a container's own subtree", "35 24 0:30 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", None),
        ];
        for (name, text, want) in cases {
            assert_eq!(cgroup2_mount(text), want.map(PathBuf::from), "{name}");
        }
    }
}
