//! Connections into pods for `kubectl port-forward`. The runtime lists each pod's sandbox here
//! while it has one; a connection goes to the pod's own loopback from inside its network
//! namespace, as a kubelet's container runtime makes it, so a port the pod listens on only at
//! 127.0.0.1 is reachable too.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use frontdoor_netns::{Error as NetnsError, PodSandbox};

/// How long a connection into a pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The node's pods with a sandbox, by uid.
#[derive(Clone, Default)]
pub struct PodConnector {
    sandboxes: Arc<Mutex<HashMap<String, Arc<PodSandbox>>>>,
}

impl PodConnector {
    pub(crate) fn insert(&self, uid: &str, sandbox: Arc<PodSandbox>) {
        self.sandboxes.lock().unwrap().insert(uid.to_string(), sandbox);
    }

    pub(crate) fn remove(&self, uid: &str) {
        self.sandboxes.lock().unwrap().remove(uid);
    }

    /// A TCP connection to `port` on the loopback of the pod with `uid`.
    pub async fn connect(&self, uid: &str, port: u16) -> Result<tokio::net::TcpStream, String> {
        let sandbox = self.sandboxes.lock().unwrap().get(uid).cloned().ok_or_else(|| "the pod is not running on this node".to_string())?;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let connected = tokio::task::spawn_blocking(move || sandbox.tcp_connect(address, CONNECT_TIMEOUT)).await.map_err(|e| e.to_string())?;
        let stream = connected.map_err(|error| match error {
            NetnsError::Connect { source, .. } => format!("failed to connect to localhost:{port} inside the pod's network namespace: {source}"),
            other => other.to_string(),
        })?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())
    }
}
