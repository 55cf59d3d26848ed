//! Linux namespaces, links, addresses and routes for pods, and starting processes inside them:
//! what a kubelet's container runtime and the CNI bridge plugin do, for pods that are plain
//! processes on the host's filesystem.
//!
//! Like every crate in the workspace it is `#![forbid(unsafe_code)]`: the system calls go
//! through `nix`'s safe wrappers, and processes are started by the standard library.
//!
//! # A guided tour
//!
//! ```no_run
//! # async fn tour() -> Result<(), frontdoor_netns::Error> {
//! use std::net::Ipv4Addr;
//! use frontdoor_netns::{ensure_bridge, PodSandbox, ProcessSpec, SandboxConfig, Signal};
//!
//! // Once per node, in the node's network namespace:
//! frontdoor_netns::cleanup_stale("fdv", "frontdoor0")?;
//! ensure_bridge("frontdoor0", Ipv4Addr::new(10, 244, 0, 1), 24)?;
//!
//! // Per pod:
//! let sandbox = PodSandbox::create(&SandboxConfig {
//!     name: "default/web-0".into(),
//!     hostname: "web-0".into(),
//!     ip: Ipv4Addr::new(10, 244, 0, 5),
//!     prefix_len: 24,
//!     gateway: Ipv4Addr::new(10, 244, 0, 1),
//!     bridge: "frontdoor0".into(),
//!     veth_host_name: frontdoor_netns::pod_veth_name("fdv", "5a3c9e01-7d2b-4f4e-8a61-0c9d2e3f4a5b"),
//!     mtu: None,
//!     resolv_conf: "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n".into(),
//!     hosts: "127.0.0.1 localhost\n10.244.0.5 web-0\n".into(),
//!     volumes: vec![],
//! })?;
//! let mut child = sandbox.spawn(ProcessSpec::new(["nginx", "-g", "daemon off;"]))?;
//! let pid = child.id().expect("running");
//! // Stopping: SIGTERM to the container's process group, SIGKILL after the grace period.
//! frontdoor_netns::signal_process_group(pid, Signal::Terminate)?;
//! # let _ = child.wait().await;
//! sandbox.destroy()?;
//! # Ok(()) }
//! ```
//!
//! # How a sandbox is kept
//!
//! A [`SandboxFactory`] makes new network, UTS and mount namespaces on its own thread (which
//! returns to the node's namespaces afterwards; [`PodSandbox::create`] uses a factory on a fresh
//! thread) and keeps them alive by holding open (`O_CLOEXEC`) descriptors to them: there is no
//! holder process and nothing is mounted on the host. If the node process dies, the kernel
//! closes those descriptors and the namespaces go away with everything in them (the pod's
//! `eth0`, and with it the host end of the veth) as soon as no pod process remains in them. The
//! per-pod `/etc/resolv.conf` and `/etc/hosts` are written to `/dev/shm` under a name of their
//! own, bind-mounted inside the pod's mount namespace and unlinked at once, so they live only
//! as long as that namespace. [`cleanup_stale`] deletes the host ends of veths still held by
//! processes of an earlier run.
//!
//! The veth's host end is created in the calling thread's network namespace and its pod end is
//! created directly inside the pod's namespace as `eth0`. Netlink is spoken synchronously
//! through `netlink-packet-route` and `netlink-sys` (the crates `rtnetlink` is built on); a
//! netlink socket stays bound to the namespace it was opened in, which is how the pod side is
//! configured from the caller's thread.
//!
//! # Threads and namespaces
//!
//! Linux keeps namespaces per thread. No function here moves a caller's thread: entering or
//! creating a namespace happens on a thread spawned for it ([`PodSandbox::create`],
//! [`PodSandbox::run_in_network`], [`PodSandbox::spawn`], [`run_in_fresh_network_namespace`]),
//! except in a [`SandboxFactory`] or a [`Launcher`], which moves its own thread and brings it
//! back.
//! "The node's namespace" always means the namespace of the thread that calls
//! [`PodSandbox::create`], [`SandboxFactory::for_this_thread`], [`ensure_bridge`],
//! [`enable_ip_forward`] or [`cleanup_stale`].
//!
//! # Starting processes
//!
//! [`PodSandbox::spawn`] joins the pod's namespaces on a short-lived thread (after giving that
//! thread its own filesystem context, which joining a mount namespace requires) and starts the
//! process from there: a child begins in the namespaces of the thread that made it. A
//! [`Launcher`] does the same from the one thread that holds it, which returns to the node's
//! namespaces after each process. With no code
//! to run between fork and exec the standard library uses `posix_spawn`, a clone that shares
//! memory with the parent until exec, so starting a container costs the same however large the
//! node process has grown; `fork` would copy its page tables every time.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod arp;
mod bridge;
mod descriptors;
mod namespace;
mod netlink;
mod process;
mod routes;
mod sandbox;
mod terminal;
mod volumes;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use arp::announce_gratuitously;
pub use bridge::{
    cleanup_stale, enable_ip_forward, ensure_bridge, ip_forward_enabled, link_address, link_names,
    make_local_on_bridge, pod_veth_name, route_to_bridge,
};
pub use descriptors::reserve_descriptors;
pub use namespace::run_in_fresh_network_namespace;
pub use process::{check_command, signal_process_group, ProcessSpec, Signal, DEFAULT_PATH};
pub use routes::{
    announce_address, default_route_address, remove_bridge, unroute_from_bridge, withdraw_address, withdraw_announced,
    RemovedBridge, ANNOUNCED_PROTOCOL,
};
pub use sandbox::{Launcher, PodSandbox, SandboxConfig, SandboxFactory, POD_INTERFACE};
pub use terminal::{Terminal, TerminalStdio, SESSION_LEADER};
pub use volumes::{Volume, VolumeFile, VolumeMount};

/// What can go wrong; each variant says where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A caller-supplied value is unusable (nothing was changed).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being configured.
        what: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A system call or netlink request failed.
    #[error("{operation}: {source}")]
    Os {
        /// What was being done.
        operation: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// [`SandboxConfig::bridge`] does not exist in the caller's network namespace.
    #[error("bridge {bridge} not found (call ensure_bridge first)")]
    BridgeNotFound {
        /// The bridge's name.
        bridge: String,
    },
    /// A [`SandboxFactory`]'s or [`Launcher`]'s thread could not return to its own namespaces
    /// after a pod's, so it does no more work.
    #[error("the thread is stuck in a pod's namespaces: {reason}")]
    Stranded {
        /// Why it could not return.
        reason: String,
    },
    /// A link with the veth's name already exists on the node.
    #[error("link {name} already exists")]
    LinkExists {
        /// The link's name.
        name: String,
    },
    /// [`ensure_bridge`] found a link of that name that is not a bridge.
    #[error("link {name} exists and is not a bridge (kind {kind:?})")]
    NotABridge {
        /// The link's name.
        name: String,
        /// Its kind (`veth`, `dummy`, …).
        kind: Option<String>,
    },
    /// The command's executable does not exist (worded as the kubelet reports it).
    #[error("exec: \"{command}\": executable file not found in $PATH")]
    ExecutableNotFound {
        /// `argv[0]`.
        command: String,
    },
    /// The command's file exists but is not executable.
    #[error("exec: \"{command}\": permission denied")]
    PermissionDenied {
        /// `argv[0]`.
        command: String,
    },
    /// [`ProcessSpec::argv`] is empty.
    #[error("no command given")]
    EmptyCommand,
    /// [`ProcessSpec::working_dir`] is not a directory.
    #[error("working directory {path:?} does not exist")]
    WorkingDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// Starting the process failed for another reason.
    #[error("start {command}: {source}")]
    Spawn {
        /// `argv[0]`.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// The sandbox was destroyed.
    #[error("pod sandbox {sandbox} has been destroyed")]
    Destroyed {
        /// [`SandboxConfig::name`].
        sandbox: String,
    },
    /// [`PodSandbox::tcp_connect`] failed (refused, timed out, unreachable).
    #[error("connect to {address} from the pod: {source}")]
    Connect {
        /// Where to.
        address: SocketAddr,
        /// Why not.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn os(operation: impl Into<String>, source: io::Error) -> Error {
        Error::Os { operation: operation.into(), source }
    }
}

/// Checks a Linux interface name: 1 to 15 bytes, no `/`, whitespace or `:`.
pub(crate) fn validate_link_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("link name {name:?} must be 1 to 15 bytes"));
    }
    if name == "." || name == ".." || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("link name {name:?} must not contain '/', ':' or spaces"));
    }
    Ok(())
}
