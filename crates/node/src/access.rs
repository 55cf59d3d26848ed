//! What the node offers into its pods, for `kubectl port-forward` and `kubectl exec` (upstream:
//! the kubelet's streaming server). The runtime lists each pod's sandbox here while it has one,
//! and each container's environment and working directory once it has started. A connection
//! goes to the pod's own loopback from inside its network namespace, as a kubelet's container
//! runtime makes it, so a port the pod listens on only at 127.0.0.1 is reachable too; a command
//! runs in the pod's namespaces with its container's environment.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use frontdoor_netns::{Error as NetnsError, PodSandbox, ProcessSpec, Terminal};

use crate::pids::PidJournal;

/// How long a connection into a pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A started container's environment and working directory.
#[derive(Clone)]
struct ContainerContext {
    /// Shared with the container's probes.
    env: Arc<Vec<(String, String)>>,
    working_dir: Option<PathBuf>,
}

struct PodEntry {
    sandbox: Arc<PodSandbox>,
    containers: HashMap<String, ContainerContext>,
}

/// The node's pods with a sandbox, by uid.
#[derive(Clone, Default)]
pub struct PodAccess {
    pods: Arc<Mutex<HashMap<String, PodEntry>>>,
    /// Where the node records the processes it starts (set when the runtime starts).
    journal: Arc<OnceLock<Arc<PidJournal>>>,
}

/// Why a command could not start in a pod.
#[derive(Debug)]
pub enum ExecError {
    /// The command does not exist or cannot run (upstream's runtimes answer exit code 126 or 127).
    CannotRun(String),
    /// The pod or container is not (or no longer) running here.
    Unavailable(String),
}

impl PodAccess {
    pub(crate) fn record_pids_in(&self, journal: Arc<PidJournal>) {
        let _ = self.journal.set(journal);
    }

    pub(crate) fn insert(&self, uid: &str, sandbox: Arc<PodSandbox>) {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.to_string(), PodEntry { sandbox, containers: HashMap::new() });
    }

    pub(crate) fn remove(&self, uid: &str) {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner).remove(uid);
    }

    /// Notes how container `name` of pod `uid` runs, for commands run in it later.
    pub(crate) fn container_started(
        &self,
        uid: &str,
        name: &str,
        env: Arc<Vec<(String, String)>>,
        working_dir: Option<PathBuf>,
    ) {
        if let Some(pod) = self.pods.lock().unwrap_or_else(PoisonError::into_inner).get_mut(uid) {
            pod.containers.insert(name.to_string(), ContainerContext { env, working_dir });
        }
    }

    fn sandbox(&self, uid: &str) -> Result<Arc<PodSandbox>, String> {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uid)
            .map(|pod| pod.sandbox.clone())
            .ok_or_else(|| "the pod is not running on this node".to_string())
    }

    /// A TCP connection to `port` on the loopback of the pod with `uid`.
    /// Whether the pod `uid` still has a sandbox (and an address) on this node.
    pub fn holds(&self, uid: &str) -> bool {
        self.pods.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(uid)
    }

    pub async fn connect(&self, uid: &str, port: u16) -> Result<tokio::net::TcpStream, String> {
        let sandbox = self.sandbox(uid)?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let connected = tokio::task::spawn_blocking(move || sandbox.tcp_connect(address, CONNECT_TIMEOUT))
            .await
            .map_err(|e| e.to_string())?;
        let stream = connected.map_err(|error| match error {
            NetnsError::Connect { source, .. } => {
                format!("failed to connect to localhost:{port} inside the pod's network namespace: {source}")
            }
            other => other.to_string(),
        })?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())
    }

    /// Starts `argv` in container `container` of pod `uid`: with `tty`, on a new terminal (its
    /// standard input, output and error; the terminal comes back with the child), else with
    /// its output piped and its input piped if `stdin`. Dropping the child kills it.
    pub async fn exec(
        &self,
        uid: &str,
        container: &str,
        argv: Vec<String>,
        stdin: bool,
        tty: bool,
    ) -> Result<(tokio::process::Child, Option<Terminal>), ExecError> {
        let (sandbox, context) = {
            let pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
            let pod =
                pods.get(uid).ok_or_else(|| ExecError::Unavailable("the pod is not running on this node".into()))?;
            let context = pod
                .containers
                .get(container)
                .cloned()
                .ok_or_else(|| ExecError::Unavailable(format!("container {container:?} is not running")))?;
            (pod.sandbox.clone(), context)
        };
        let mut spec = ProcessSpec::new(argv);
        spec.env = context.env.as_ref().clone();
        spec.working_dir = context.working_dir;
        let terminal = if tty {
            // The command itself is looked up as it would be without a terminal.
            frontdoor_netns::check_command(&spec).map_err(|error| ExecError::CannotRun(error.to_string()))?;
            let (terminal, stdio) =
                Terminal::open().map_err(|e| ExecError::Unavailable(format!("opening a terminal: {e}")))?;
            spec.argv.splice(0..0, frontdoor_netns::SESSION_LEADER.iter().map(|s| s.to_string()));
            (spec.stdin, spec.stdout, spec.stderr) = (stdio.stdin, stdio.stdout, stdio.stderr);
            Some(terminal)
        } else {
            spec.stdin = if stdin { Stdio::piped() } else { Stdio::null() };
            spec.stdout = Stdio::piped();
            spec.stderr = Stdio::piped();
            None
        };
        // A session the client left ends its command.
        spec.kill_on_drop = true;
        // Recorded on the spawning thread, at once: a crash between the spawn and the record
        // would leave the command running.
        let journal = self.journal.get().cloned();
        let child = tokio::task::spawn_blocking(move || {
            let child = sandbox.spawn(spec)?;
            if let (Some(journal), Some(pid)) = (journal, child.id()) {
                journal.record(pid);
            }
            Ok(child)
        })
        .await
        .map_err(|e| ExecError::Unavailable(e.to_string()))?
        .map_err(|error| match error {
            NetnsError::ExecutableNotFound { .. } | NetnsError::PermissionDenied { .. } | NetnsError::EmptyCommand => {
                ExecError::CannotRun(error.to_string())
            }
            other => ExecError::Unavailable(other.to_string()),
        })?;
        Ok((child, terminal))
    }
}
