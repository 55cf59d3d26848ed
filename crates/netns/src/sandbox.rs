//! A pod's sandbox: its namespaces, its veth into the node's bridge, and what runs inside.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use crate::namespace::{self, HomeNamespaces, NamespaceContents, Namespaces};
use crate::netlink::{Link, Request, RouteSocket, LOOPBACK_INDEX};
use crate::process::{self, ProcessSpec};
use crate::{validate_link_name, Error};

/// The name of the pod's end of its veth pair, inside the pod.
pub const POD_INTERFACE: &str = "eth0";

/// Everything needed to create a [`PodSandbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Names the sandbox in errors and logs (e.g. `default/web-0` or the pod's uid).
    pub name: String,
    /// The pod's hostname, set in its own UTS namespace (at most 64 bytes).
    pub hostname: String,
    /// The pod's address on `eth0`.
    pub ip: Ipv4Addr,
    /// The prefix length of the pod network on the bridge (24 for 10.244.0.0/24).
    pub prefix_len: u8,
    /// The default route inside the pod: the bridge's address.
    pub gateway: Ipv4Addr,
    /// The bridge in the caller's network namespace that the host end joins (see
    /// [`crate::ensure_bridge`]).
    pub bridge: String,
    /// The host end's name (at most 15 bytes), unique on the node. Give all sandboxes a common
    /// prefix so [`crate::cleanup_stale`] can find leftovers.
    pub veth_host_name: String,
    /// MTU of both veth ends; the kernel's default (1500) if `None`.
    pub mtu: Option<u32>,
    /// The contents of the pod's `/etc/resolv.conf`.
    pub resolv_conf: String,
    /// The contents of the pod's `/etc/hosts`.
    pub hosts: String,
    /// The pod's volumes, mounted in its mount namespace only.
    pub volumes: Vec<crate::Volume>,
}

/// A pod's network, UTS and mount namespaces and the veth that connects it to the node's bridge.
///
/// The namespaces are kept alive by descriptors this value holds (no holder process, nothing
/// mounted on the host): dropping or [destroying](PodSandbox::destroy) the sandbox releases them,
/// and so does the kernel if the node process dies. Processes started with
/// [`spawn`](PodSandbox::spawn) keep the namespaces alive while they run.
pub struct PodSandbox {
    name: String,
    ip: Ipv4Addr,
    veth_host_name: String,
    /// `None` once destroyed. Readers (spawn, probes) hold the read lock while they use the
    /// descriptors, so `destroy` never closes one under them.
    namespaces: RwLock<Option<Namespaces>>,
    /// Bound to the network namespace the sandbox was created from (the node's), whichever thread
    /// later destroys the sandbox.
    node_socket: Mutex<RouteSocket>,
}

impl std::fmt::Debug for PodSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSandbox")
            .field("name", &self.name)
            .field("ip", &self.ip)
            .field("veth_host_name", &self.veth_host_name)
            .finish_non_exhaustive()
    }
}

/// Makes pod sandboxes on the thread that created it, one after another. The thread makes each
/// pod's namespaces itself and returns to its own (the node's) afterwards, and keeps a netlink
/// socket to the node's namespace and the bridge's index from one sandbox to the next: for a
/// node starting many pods, a thread of their own holding one of these. [`PodSandbox::create`]
/// makes one sandbox with a factory on a fresh thread.
///
/// Making one gives the calling thread a filesystem context of its own (`unshare(CLONE_FS)`),
/// which changing mount namespace requires; a factory is therefore not `Send`.
pub struct SandboxFactory {
    home: HomeNamespaces,
    node_socket: RouteSocket,
    /// The bridge's name and index, as last looked up.
    bridge: Option<(String, u32)>,
}

impl std::fmt::Debug for SandboxFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxFactory").field("bridge", &self.bridge).field("home", &self.home).finish_non_exhaustive()
    }
}

impl SandboxFactory {
    /// A factory making sandboxes on (and attaching them to a bridge in the network namespace
    /// of) the calling thread.
    pub fn for_this_thread() -> Result<SandboxFactory, Error> {
        Ok(SandboxFactory {
            home: HomeNamespaces::of_this_thread()?,
            node_socket: RouteSocket::open().map_err(|error| Error::os("open node netlink socket", error))?,
            bridge: None,
        })
    }

    /// Creates a sandbox. The bridge must exist in the factory thread's network namespace, which
    /// is where the host end of the veth goes. Blocking (about 1.3 ms of mostly kernel work
    /// here).
    ///
    /// On error nothing is left behind.
    pub fn create(&mut self, config: &SandboxConfig) -> Result<PodSandbox, Error> {
        validate(config)?;
        let contents = NamespaceContents {
            hostname: &config.hostname,
            resolv_conf: &config.resolv_conf,
            hosts: &config.hosts,
            volumes: &config.volumes,
        };
        let (namespaces, mut pod_socket) = namespace::create_pod_namespaces(&contents, &mut self.home)?;
        let pod_index = self.create_veth(config, &namespaces)?;
        let node_socket = RouteSocket::open().map_err(|error| Error::os("open node netlink socket", error))?;
        let sandbox = PodSandbox {
            name: config.name.clone(),
            ip: config.ip,
            veth_host_name: config.veth_host_name.clone(),
            namespaces: RwLock::new(Some(namespaces)),
            node_socket: Mutex::new(node_socket),
        };
        // From here on, dropping `sandbox` on error removes the veth and the namespaces.
        self.configure_veth(config, &mut pod_socket, pod_index)?;
        tracing::debug!(sandbox = %sandbox.name, ip = %sandbox.ip, veth = %sandbox.veth_host_name, "pod sandbox created");
        Ok(sandbox)
    }

    fn bridge_index(&mut self, bridge: &str, fresh: bool) -> Result<u32, Error> {
        if let Some((name, index)) = &self.bridge {
            if name == bridge && !fresh {
                return Ok(*index);
            }
        }
        let index = self
            .node_socket
            .link_index(bridge)
            .map_err(|error| Error::os(format!("look up bridge {bridge}"), error))?
            .ok_or_else(|| Error::BridgeNotFound { bridge: bridge.to_owned() })?;
        self.bridge = Some((bridge.to_owned(), index));
        Ok(index)
    }

    /// Creates the veth pair, host end on the bridge and pod end `eth0` in the pod's namespace,
    /// both down. A bridge that was replaced since its index was cached is looked up again.
    /// Returns the pod end's index if the kernel told it.
    fn create_veth(&mut self, config: &SandboxConfig, namespaces: &Namespaces) -> Result<Option<u32>, Error> {
        let veth = &config.veth_host_name;
        let mut fresh = false;
        loop {
            let bridge = self.bridge_index(&config.bridge, fresh)?;
            let created = self.node_socket.create_veth(
                veth,
                bridge,
                POD_INTERFACE,
                std::os::fd::AsFd::as_fd(&namespaces.net),
                config.mtu,
            );
            match created {
                Ok(pod_index) => return Ok(pod_index),
                Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {
                    return Err(Error::LinkExists { name: veth.clone() })
                }
                Err(_) if !fresh => fresh = true,
                Err(error) => {
                    return Err(Error::os(
                        format!("create veth pair {veth}/{POD_INTERFACE} on {}", config.bridge),
                        error,
                    ))
                }
            }
        }
    }

    /// Configures both ends of a new veth and brings them up, the pod's side first and the host
    /// end last: each end's IPv6 address mode must be set while it has no carrier, which it has
    /// once both are up. Each side's requests go to the kernel together.
    fn configure_veth(
        &mut self,
        config: &SandboxConfig,
        pod_socket: &mut RouteSocket,
        pod_index: Option<u32>,
    ) -> Result<(), Error> {
        let pod_index = match pod_index {
            Some(index) => index,
            None => pod_socket
                .link_index(POD_INTERFACE)
                .map_err(|error| Error::os("look up pod eth0", error))?
                .ok_or_else(|| Error::os("look up pod eth0", std::io::Error::from_raw_os_error(libc::ENODEV)))?,
        };
        let pod_side = [
            (Request::link_up(Link::Index(LOOPBACK_INDEX)), "set lo up".to_owned()),
            (
                Request::address(pod_index, config.ip, config.prefix_len),
                format!("add {}/{} to pod eth0", config.ip, config.prefix_len),
            ),
            (Request::link_up_without_ipv6(Link::Index(pod_index)), "set pod eth0 up".to_owned()),
            (
                Request::default_route(pod_index, config.gateway),
                format!("add pod default route via {}", config.gateway),
            ),
        ];
        run_batch(pod_socket, pod_side)?;
        let veth = &config.veth_host_name;
        let host_side = [
            (
                Request::bridge_port_settings(Link::Name(veth), !crate::bridge::bridge_netfilter_active()),
                format!("configure bridge port {veth}"),
            ),
            (Request::link_up(Link::Name(veth)), format!("set {veth} up")),
        ];
        run_batch(&mut self.node_socket, host_side)
    }
}

/// Sends the requests together; an error names the step that failed.
fn run_batch<const N: usize>(socket: &mut RouteSocket, steps: [(Request, String); N]) -> Result<(), Error> {
    let (requests, mut names): (Vec<Request>, Vec<String>) = steps.into_iter().unzip();
    socket.batch(requests).map_err(|(failed, error)| match failed {
        Some(step) => Error::os(std::mem::take(&mut names[step]), error),
        None => Error::os(format!("ask the kernel to {}", names.join(", ")), error),
    })
}

/// Starts processes in pods' sandboxes from the thread that created it, one after another: the
/// thread joins the pod's namespaces, starts the process and returns to its own (the node's).
/// For a node starting many containers, a thread of their own holding one of these: no thread is
/// made and ended per process, as [`PodSandbox::spawn`] does.
///
/// Like a [`SandboxFactory`] it gives its thread a filesystem context of its own and is not
/// `Send`.
#[derive(Debug)]
pub struct Launcher {
    home: HomeNamespaces,
}

impl Launcher {
    /// A launcher starting processes from the calling thread.
    pub fn for_this_thread() -> Result<Launcher, Error> {
        Ok(Launcher { home: HomeNamespaces::of_this_thread()? })
    }

    /// Starts `spec` in `sandbox`, as [`PodSandbox::spawn`] does. Must be called within a tokio
    /// runtime. Blocking (the parent waits for the child's exec, well under a millisecond).
    pub fn spawn(&mut self, sandbox: &PodSandbox, spec: ProcessSpec) -> Result<tokio::process::Child, Error> {
        self.home.usable()?;
        let prepared = process::prepare(spec)?;
        sandbox.with_namespaces(|namespaces| self.home.visit(namespaces, || prepared.spawn())?)
    }
}

impl PodSandbox {
    /// Creates the sandbox on a short-lived thread with a [`SandboxFactory`] of its own. The
    /// bridge must exist in the calling thread's network namespace, which is where the host end
    /// of the veth goes. Blocking (a few milliseconds); from async code use `spawn_blocking`.
    ///
    /// On error nothing is left behind.
    pub fn create(config: &SandboxConfig) -> Result<PodSandbox, Error> {
        namespace::on_thread(|| SandboxFactory::for_this_thread()?.create(config))
    }

    /// The name given in [`SandboxConfig::name`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The host end of the pod's veth.
    pub fn veth_host_name(&self) -> &str {
        &self.veth_host_name
    }

    /// Whether [`destroy`](PodSandbox::destroy) has run.
    pub fn is_destroyed(&self) -> bool {
        self.namespaces.read().unwrap_or_else(|poison| poison.into_inner()).is_none()
    }

    /// The inode number of the pod's network namespace (what `/proc/<pid>/ns/net` links to as
    /// `net:[N]`), to recognise the pod's processes; `None` once destroyed.
    pub fn network_namespace_inode(&self) -> Option<u64> {
        self.with_namespaces(|namespaces| Ok(nix::sys::stat::fstat(&namespaces.net).ok().map(|stat| stat.st_ino)))
            .ok()
            .flatten()
    }

    /// Starts a process in the pod's network, UTS and mount namespaces (it sees the host's
    /// filesystem, except the pod's `/etc/resolv.conf` and `/etc/hosts`), as the leader of a new
    /// process group: signal the whole container with [`crate::signal_process_group`] and the
    /// child's pid. Must be called within a tokio runtime. The child is not killed on drop.
    /// Starts it from a short-lived thread; a [`Launcher`] starts many from one.
    ///
    /// A command that cannot be found is [`Error::ExecutableNotFound`] (checked before forking).
    pub fn spawn(&self, spec: ProcessSpec) -> Result<tokio::process::Child, Error> {
        let prepared = process::prepare(spec)?;
        let runtime = tokio::runtime::Handle::current();
        self.with_namespaces(|namespaces| {
            namespace::run_in_pod_namespaces(namespaces, move || {
                let _runtime = runtime.enter();
                prepared.spawn()
            })?
        })
    }

    /// Runs `f` on a new thread inside the pod's network namespace. Sockets `f` creates stay in
    /// that namespace wherever they are used afterwards. Blocks until `f` returns.
    pub fn run_in_network<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        self.with_namespaces(|namespaces| namespace::run_in_network_namespace(&namespaces.net, f))
    }

    /// Opens a TCP connection from inside the pod (for probes: tcpSocket, or httpGet over the
    /// stream). Blocks for at most `timeout`; convert with `tokio::net::TcpStream::from_std`
    /// after `set_nonblocking(true)` if needed.
    pub fn tcp_connect(&self, address: SocketAddr, timeout: Duration) -> Result<TcpStream, Error> {
        self.run_in_network(|| TcpStream::connect_timeout(&address, timeout))?
            .map_err(|source| Error::Connect { address, source })
    }

    /// Replaces the files of the volume mounted at `volume.path` in the pod with
    /// `volume.files`, all at once, as the kubelet refreshes a ConfigMap's or Secret's volume in a
    /// running pod (see [`Volume`](crate::Volume)). Blocks for a moment (a thread joins the pod's
    /// namespaces); call it off the async runtime.
    pub fn update_volume(&self, volume: &crate::Volume) -> Result<(), Error> {
        crate::volumes::validate(volume).map_err(|reason| Error::Invalid { what: "volume".into(), reason })?;
        self.with_namespaces(|namespaces| {
            namespace::run_in_pod_namespaces(namespaces, || crate::volumes::update_volume(volume))?
        })
    }

    /// Calls `f` with the pod's namespaces, which stay open meanwhile (`destroy` waits).
    fn with_namespaces<T>(&self, f: impl FnOnce(&Namespaces) -> Result<T, Error>) -> Result<T, Error> {
        let namespaces = self.namespaces.read().unwrap_or_else(|poison| poison.into_inner());
        let namespaces = namespaces.as_ref().ok_or_else(|| Error::Destroyed { sandbox: self.name.clone() })?;
        f(namespaces)
    }

    /// Removes the sandbox: deletes the veth pair (from the node's namespace, whichever thread
    /// calls this) and releases the namespaces. Idempotent. Stop the pod's processes first: any
    /// still running keep the (now unconnected) namespaces alive until they exit.
    pub fn destroy(&self) -> Result<(), Error> {
        let mut namespaces = self.namespaces.write().unwrap_or_else(|poison| poison.into_inner());
        if namespaces.is_none() {
            return Ok(());
        }
        let mut node_socket = self.node_socket.lock().unwrap_or_else(|poison| poison.into_inner());
        node_socket
            .delete_link(&self.veth_host_name)
            .map_err(|error| Error::os(format!("delete veth {}", self.veth_host_name), error))?;
        if let Some(released) = namespaces.take() {
            tracing::debug!(sandbox = %self.name, net_fd = released.net.as_raw_fd(), "pod sandbox destroyed");
        }
        Ok(())
    }
}

impl Drop for PodSandbox {
    fn drop(&mut self) {
        if let Err(error) = self.destroy() {
            tracing::warn!(sandbox = %self.name, %error, "destroying pod sandbox on drop");
        }
    }
}

fn validate(config: &SandboxConfig) -> Result<(), Error> {
    let invalid = |reason: String| Err(Error::Invalid { what: format!("sandbox {:?}", config.name), reason });
    validate_link_name(&config.bridge).or_else(|reason| invalid(format!("bridge: {reason}")))?;
    validate_link_name(&config.veth_host_name).or_else(|reason| invalid(format!("veth_host_name: {reason}")))?;
    if config.hostname.is_empty() || config.hostname.len() > 64 {
        return invalid(format!("hostname {:?} must be 1 to 64 bytes", config.hostname));
    }
    if config.prefix_len == 0 || config.prefix_len > 30 {
        return invalid(format!("prefix_len {} must be 1 to 30", config.prefix_len));
    }
    let mask = u32::MAX << (32 - u32::from(config.prefix_len));
    if u32::from(config.ip) & mask != u32::from(config.gateway) & mask {
        return invalid(format!("gateway {} is not in {}/{}", config.gateway, config.ip, config.prefix_len));
    }
    if config.ip == config.gateway {
        return invalid(format!("ip {} is the gateway", config.ip));
    }
    if let Some(mtu) = config.mtu {
        if !(68..=65535).contains(&mtu) {
            return invalid(format!("mtu {mtu} must be 68 to 65535"));
        }
    }
    for volume in &config.volumes {
        crate::volumes::validate(volume).or_else(|reason| invalid(format!("volume: {reason}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SandboxConfig {
        SandboxConfig {
            name: "default/web".into(),
            hostname: "web".into(),
            ip: Ipv4Addr::new(10, 244, 0, 5),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 244, 0, 1),
            bridge: "frontdoor0".into(),
            veth_host_name: "fdveth5".into(),
            mtu: None,
            resolv_conf: String::new(),
            hosts: String::new(),
            volumes: Vec::new(),
        }
    }

    #[test]
    fn validation_rejects_bad_configs() {
        assert!(validate(&config()).is_ok());
        type Change = fn(&mut SandboxConfig);
        let cases: Vec<(&str, Change)> = vec![
            ("veth_host_name", |c| c.veth_host_name = "a-name-longer-than-15".into()),
            ("veth_host_name", |c| c.veth_host_name = "has/slash".into()),
            ("bridge", |c| c.bridge = String::new()),
            ("hostname", |c| c.hostname = "h".repeat(65)),
            ("prefix_len", |c| c.prefix_len = 31),
            ("gateway", |c| c.gateway = Ipv4Addr::new(10, 244, 1, 1)),
            ("is the gateway", |c| c.ip = c.gateway),
            ("mtu", |c| c.mtu = Some(10)),
        ];
        for (expected, change) in cases {
            let mut config = config();
            change(&mut config);
            let error = validate(&config).expect_err(expected).to_string();
            assert!(error.contains(expected), "{error:?} should mention {expected}");
        }
    }
}
