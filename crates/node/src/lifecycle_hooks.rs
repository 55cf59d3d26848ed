//! Container lifecycle hooks (`lifecycle.postStart`, `lifecycle.preStop`) as the kubelet runs
//! them, with its handlers:
//!
//! * `exec`: the command runs inside the container (the pod's namespaces, the container's
//!   environment and working directory), as exec probes do; a non-zero exit fails the hook.
//! * `httpGet`: a GET from the node to `host` (the pod's address when empty) at the port, with
//!   the path and headers given; any HTTP answer is success (the kubelet does not look at the
//!   status code), only a failed connection or exchange fails the hook. HTTPS is not offered.
//! * `sleep`: waits that many seconds.
//! * `tcpSocket` (deprecated, "not supported as a LifecycleHandler") fails, as upstream.
//!
//! When they run and what a failure does is the runtime's business (`runtime`): `postStart`
//! right after the container started, before it is reported Running (a failure records
//! `FailedPostStartHook` and kills the container, which restarts by the pod's policy); `preStop`
//! on a graceful stop before SIGTERM, inside the grace period (a failure records
//! `FailedPreStopHook`; the stop goes on either way).
//!
//! A hook's process is killed (its whole process group) when the hook is abandoned: a caller
//! drops the future at the end of the grace period, or when the pod stops.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use frontdoor_netns::{Launcher, PodSandbox, ProcessSpec, Signal};

use crate::dedicated::Dedicated;
use crate::pids::PidJournal;

/// Upstream's `minimumGracePeriodInSeconds`: after a preStop hook, however long it took, a
/// container still gets this long between SIGTERM and SIGKILL.
pub const MINIMUM_GRACE: Duration = Duration::from_secs(2);

/// Where a container's hooks run.
#[derive(Clone)]
pub(crate) struct HookTarget {
    pub sandbox: Arc<PodSandbox>,
    pub ip: Ipv4Addr,
    pub env: Arc<Vec<(String, String)>>,
    pub working_dir: Option<PathBuf>,
}

/// What runs hooks: the node's launcher (exec handlers start there) and its pid journal.
pub(crate) struct HookRunner<'a> {
    pub launcher: &'a Dedicated<Launcher>,
    pub pids: &'a Arc<PidJournal>,
}

/// The hook of a container: `postStart` or `preStop`, if it has one.
pub fn post_start(container: &Container) -> Option<&LifecycleHandler> {
    container.lifecycle.as_ref().and_then(|l| l.post_start.as_ref())
}

pub fn pre_stop(container: &Container) -> Option<&LifecycleHandler> {
    container.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
}

/// The time left for SIGTERM-to-SIGKILL after a preStop hook that took `took` of `grace`, as the
/// kubelet counts it: in whole seconds (`grace - int(took)`), never below [`MINIMUM_GRACE`].
pub fn grace_after_hook(grace: Duration, took: Duration) -> Duration {
    let left = grace.as_secs().saturating_sub(took.as_secs());
    Duration::from_secs(left).max(MINIMUM_GRACE)
}

/// Upstream's `format.Pod`: `name_namespace(uid)`.
fn pod_label(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// Kills a hook's process group if the hook is dropped before its process ended.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = frontdoor_netns::signal_process_group(pid, Signal::Kill);
        }
    }
}

impl HookRunner<'_> {
    /// Runs `handler` for `container` of `pod`. `Err` carries the message of the kubelet's
    /// handler runner (used for `FailedPostStartHook` events).
    pub async fn run(
        &self,
        handler: &LifecycleHandler,
        container: &Container,
        pod: &Pod,
        target: &HookTarget,
    ) -> Result<(), String> {
        if let Some(exec) = &handler.exec {
            let argv = exec.command.clone().unwrap_or_default();
            return self.exec(&argv, target).await.map_err(|(error, output)| {
                format!(
                    "Exec lifecycle hook ([{}]) for Container {:?} in Pod {:?} failed - error: {error}, message: {output:?}",
                    argv.join(" "),
                    container.name,
                    pod_label(pod)
                )
            });
        }
        if let Some(http) = &handler.http_get {
            let path = http.path.clone().unwrap_or_default();
            return http_get(http, container, target.ip).await.map_err(|error| {
                format!(
                    "HTTP lifecycle hook ({path}) for Container {:?} in Pod {:?} failed - error: {error}",
                    container.name,
                    pod_label(pod)
                )
            });
        }
        if let Some(sleep) = &handler.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
            return Ok(());
        }
        Err("Cannot run handler: invalid handler".into())
    }

    /// Runs `argv` in the container; `Err((error, output))` unless it exits 0.
    async fn exec(&self, argv: &[String], target: &HookTarget) -> Result<(), (String, String)> {
        let mut spec = ProcessSpec::new(argv.to_vec());
        spec.env = target.env.as_ref().clone();
        spec.working_dir = target.working_dir.clone();
        spec.stdin = Stdio::null();
        spec.stdout = Stdio::piped();
        spec.stderr = Stdio::piped();
        spec.kill_on_drop = true;
        let (sandbox, pids) = (target.sandbox.clone(), self.pids.clone());
        // Recorded on the spawning thread, at once, as containers are.
        let started = self
            .launcher
            .run(move |launcher| {
                let child = launcher.spawn(&sandbox, spec).map_err(|e| e.to_string())?;
                if let Some(pid) = child.id() {
                    pids.record(pid);
                }
                Ok(child)
            })
            .await;
        let child = match started.and_then(|spawned| spawned) {
            Ok(child) => child,
            Err(error) => return Err((error, String::new())),
        };
        let mut guard = GroupGuard(child.id());
        let output = child.wait_with_output().await.map_err(|e| (e.to_string(), String::new()))?;
        // It has ended: its pid is no longer its to kill.
        guard.0 = None;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        if output.status.success() {
            return Ok(());
        }
        use std::os::unix::process::ExitStatusExt;
        let error = match (output.status.code(), output.status.signal()) {
            (Some(code), _) => format!("command '{}' exited with {code}: {}", argv.join(" "), text.trim_end()),
            (None, Some(signal)) => format!("command '{}' killed by signal {signal}", argv.join(" ")),
            _ => format!("command '{}' failed", argv.join(" ")),
        };
        Err((error, text))
    }
}

/// The kubelet's lifecycle `httpGet`: a GET to `host` (else the pod's address), any answer is a
/// success.
async fn http_get(
    http: &k8s_openapi::api::core::v1::HTTPGetAction,
    container: &Container,
    pod_ip: Ipv4Addr,
) -> Result<(), String> {
    if http.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS")) {
        return Err("HTTPS lifecycle hooks are not supported by this node".into());
    }
    let port =
        crate::probes::resolve_port(&http.port, container).ok_or_else(|| format!("unknown port {:?}", http.port))?;
    let host = http.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| pod_ip.to_string());
    let mut path = http.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let address = match host.parse::<IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port),
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("dial tcp: lookup {host}: no such host"))?,
    };
    let url = format!("http://{host}:{port}{path}");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("Get {url:?}: dial tcp {address}: connect: {}", e.to_string().to_lowercase()))?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-lifecycle/1.33\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for header in http.http_headers.as_deref().unwrap_or_default() {
        request.push_str(&format!("{}: {}\r\n", header.name, header.value));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("Get {url:?}: {e}"))?;
    // Any HTTP answer will do; the rest of it is read and dropped, as upstream discards the body.
    let mut head = Vec::with_capacity(64);
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await.map_err(|e| format!("Get {url:?}: {e}"))?;
        if n == 0 {
            break;
        }
        if head.len() < 16 {
            head.extend_from_slice(&buffer[..n.min(16)]);
        }
    }
    if head.starts_with(b"HTTP/") {
        Ok(())
    } else {
        Err(format!("Get {url:?}: malformed HTTP response"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_left_after_a_hook_is_counted_in_seconds_and_at_least_two() {
        let s = Duration::from_secs;
        assert_eq!(grace_after_hook(s(30), Duration::from_millis(2500)), s(28));
        assert_eq!(grace_after_hook(s(10), s(9)), MINIMUM_GRACE);
        assert_eq!(grace_after_hook(s(3), s(100)), MINIMUM_GRACE);
        assert_eq!(grace_after_hook(s(1), Duration::ZERO), MINIMUM_GRACE);
    }

    #[test]
    fn hooks_of_a_container() {
        let container: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "lifecycle": {"preStop": {"sleep": {"seconds": 2}}, "postStart": {"exec": {"command": ["true"]}}},
        }))
        .unwrap();
        assert_eq!(pre_stop(&container).and_then(|h| h.sleep.as_ref()).map(|s| s.seconds), Some(2));
        assert!(post_start(&container).and_then(|h| h.exec.as_ref()).is_some());
        assert!(pre_stop(&Container::default()).is_none());
    }

    #[tokio::test]
    async fn http_hooks_take_any_answer_and_fail_without_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 1024];
            let n = socket.read(&mut request).await.unwrap();
            socket.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n").await.unwrap();
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        let action: k8s_openapi::api::core::v1::HTTPGetAction = serde_json::from_value(serde_json::json!({
            "port": port, "path": "drain", "httpHeaders": [{"name": "X-Hook", "value": "preStop"}],
        }))
        .unwrap();
        assert_eq!(http_get(&action, &Container::default(), Ipv4Addr::LOCALHOST).await, Ok(()));
        let request = seen.await.unwrap();
        assert!(request.starts_with("GET /drain HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nX-Hook: preStop\r\n"), "{request}");
        // Nobody listens there any more.
        let refused = http_get(&action, &Container::default(), Ipv4Addr::LOCALHOST).await.unwrap_err();
        assert!(refused.contains("connection refused"), "{refused}");
    }
}
