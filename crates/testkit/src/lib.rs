//! Test support: start the real `frontdoor up` on a free loopback port with its own data
//! directory, and run the real kubectl (any installed version) against it.
//!
//! [`Frontdoor`] is an RAII guard: dropping it kills the process it started (by PID) and removes
//! its temporary directory. Waiting is always "until a condition holds or a deadline passes".
#![forbid(unsafe_code)]

mod client;
mod in_process;
pub mod metrics;

pub use client::ApiClient;
pub use in_process::{InProcessServer, Partition};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `frontdoor up`.
pub struct Frontdoor {
    child: Child,
    binary: PathBuf,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>` the API server listens on.
    pub address: String,
    /// How long the process took from spawn to "ready".
    pub startup: Duration,
    flags: Vec<String>,
    /// Declared last so it is dropped after the process is killed.
    netns: Option<NetworkNamespace>,
}

/// A network namespace made for one test (`ip netns add`), with loopback up and nothing else:
/// no route leaves it. Deleted on drop, even when the test fails.
pub struct NetworkNamespace {
    pub name: String,
}

impl NetworkNamespace {
    pub fn create() -> NetworkNamespace {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("fdt-{}-{n}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
        assert!(status.success(), "ip netns add {name} failed");
        let namespace = NetworkNamespace { name };
        let up = Command::new("ip")
            .args(["netns", "exec", &namespace.name, "ip", "link", "set", "lo", "up"])
            .status()
            .expect("ip link");
        assert!(up.success());
        namespace
    }
}

/// A Python program for a pod's container: answers HTTP on TCP `tcp_port` and any datagram on
/// UDP `udp_port` with the pod's name (its hostname) and the client address it saw, so a test
/// can tell which pod a connection reached and whether its source was kept.
pub fn whoami_server(tcp_port: u16, udp_port: u16) -> String {
    format!(
        r#"import http.server, socket, threading
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", {udp_port}))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto((socket.gethostname() + " " + peer[0]).encode(), peer)
threading.Thread(target=udp, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(s):
        b = (socket.gethostname() + " " + s.client_address[0] + "\n").encode()
        s.send_response(200); s.send_header("Content-Length", str(len(b))); s.end_headers(); s.wfile.write(b)
    def log_message(s, *a): pass
http.server.ThreadingHTTPServer(("", {tcp_port}), H).serve_forever()
"#
    )
}

/// A second network namespace on a LAN with a node's: a veth between them, the node's end
/// `lan0` with `192.168.<subnet>.1/24`, the client's `eth0` with `192.168.<subnet>.2/24` and a
/// default route via the node. Deleted (and the veth with it) when dropped.
pub struct Lan {
    pub namespace: NetworkNamespace,
    pub node_address: String,
    pub client_address: String,
}

impl Lan {
    /// Attaches a LAN to the network namespace `node_netns` (before or after a node starts there).
    pub fn attach(node_netns: &str, subnet: u8) -> Lan {
        let lan = Lan {
            namespace: NetworkNamespace::create(),
            node_address: format!("192.168.{subnet}.1"),
            client_address: format!("192.168.{subnet}.2"),
        };
        let script = format!(
            "ip -n {node} link add lan0 type veth peer name eth0 netns {client}
             ip -n {node} addr add {node_address}/24 dev lan0; ip -n {node} link set lan0 up
             ip -n {client} addr add {client_address}/24 dev eth0; ip -n {client} link set eth0 up
             ip -n {client} route add default via {node_address}",
            node = node_netns,
            client = lan.namespace.name,
            node_address = lan.node_address,
            client_address = lan.client_address,
        );
        let status = Command::new("sh").args(["-ec", &script]).status().expect("sh");
        assert!(status.success(), "{script}");
        lan
    }

    /// `program` to run inside the LAN's namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        in_netns(Some(&self.namespace.name), program)
    }

    /// `curl -s --max-time 5 <args>` from the LAN.
    pub fn curl(&self, args: &[&str]) -> Output {
        self.command("curl").args(["-s", "--max-time", "5"]).args(args).output().expect("curl runs")
    }
}

impl Drop for NetworkNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

/// kubectl `version` (or "" for the dispatcher) with `args`, for the server of `kubeconfig`, with
/// a home directory of its own (kubectl's caches), in `netns` if any.
fn kubectl_command(netns: Option<&str>, kubeconfig: &Path, home: &Path, version: &str, args: &[&str]) -> Command {
    let mut command = in_netns(netns, kubectl_path(version));
    command.args(args).env("KUBECONFIG", kubeconfig).env("HOME", home);
    command
}

/// Runs a kubectl command with `stdin` (if any) and collects its output.
fn run_kubectl(mut command: Command, stdin: Option<&str>) -> Output {
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("kubectl runs");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl finishes")
}

/// kubectl's stdout, failing the test with its stderr if it failed.
fn succeeded(output: Output, version: &str, args: &[&str]) -> String {
    assert!(
        output.status.success(),
        "kubectl {version} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn in_netns(netns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match netns {
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

impl Frontdoor {
    /// Starts `binary up` on 127.0.0.1 with a fresh data directory.
    /// The control plane only (`--without-node`): nothing touches this machine's network, so it
    /// can run in the test's own namespace.
    pub fn start(binary: &Path) -> Frontdoor {
        Frontdoor::start_with(binary, &[])
    }

    /// Control plane only, with extra `frontdoor up` flags (e.g. a small node port range).
    pub fn start_with(binary: &Path, flags: &[&str]) -> Frontdoor {
        let mut flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        flags.push("--without-node".into());
        Frontdoor::launch(binary, flags, None)
    }

    /// The API server alone (`--without-node --without-controllers`): for tests of a controller
    /// that runs its own copy in the test process.
    pub fn start_bare(binary: &Path) -> Frontdoor {
        Frontdoor::start_with(binary, &["--without-controllers"])
    }

    /// The whole node, inside a network namespace made for this test (no route out of the
    /// machine), deleted when the guard drops. kubectl and curl run inside it too.
    pub fn start_node(binary: &Path, flags: &[&str]) -> Frontdoor {
        let namespace = NetworkNamespace::create();
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        Frontdoor::launch(binary, flags, Some(namespace))
    }

    /// The whole node, as [`Frontdoor::start_node`], in a namespace that `prepare` sets up first
    /// (links, addresses, routes; it is given the namespace's name) before `up` starts there.
    /// The namespace is deleted with the guard, or at once if `prepare` panics.
    pub fn start_node_prepared(binary: &Path, flags: &[&str], prepare: impl FnOnce(&str)) -> Frontdoor {
        let namespace = NetworkNamespace::create();
        prepare(&namespace.name);
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        Frontdoor::launch(binary, flags, Some(namespace))
    }

    /// The whole node in the calling thread's network namespace, which the caller has made
    /// private (e.g. inside `frontdoor_netns::run_in_fresh_network_namespace`), so an in-process
    /// client can reach it.
    pub fn start_node_in_current_namespace(binary: &Path, flags: &[&str]) -> Frontdoor {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        Frontdoor::launch(binary, flags, None)
    }

    fn launch(binary: &Path, flags: Vec<String>, netns: Option<NetworkNamespace>) -> Frontdoor {
        let dir = tempfile::Builder::new().prefix("frontdoor-test-").tempdir().expect("temp dir");
        let netns_name = netns.as_ref().map(|n| n.name.clone());
        let (child, address, startup) = spawn(binary, dir.path(), "127.0.0.1:0", &flags, netns_name.as_deref());
        Frontdoor { child, binary: binary.to_path_buf(), dir, address, startup, flags, netns }
    }

    /// The network namespace the node runs in, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_ref().map(|n| n.name.as_str())
    }

    /// A command that runs inside the test's network namespace (if it has one).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        in_netns(self.netns(), program)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Kills the process with SIGKILL (no chance to flush anything) and starts it again on the
    /// same address and data directory.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let netns = self.netns.as_ref().map(|n| n.name.clone());
        let (child, address, startup) =
            spawn(&self.binary, self.dir.path(), &self.address.clone(), &self.flags, netns.as_deref());
        self.child = child;
        self.address = address;
        self.startup = startup;
    }

    /// The PID of the running server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs kubectl `version` (e.g. "1.32", or "" for the dispatcher) with `args`.
    pub fn kubectl(&self, version: &str, args: &[&str]) -> Output {
        self.kubectl_with_stdin(version, args, None)
    }

    pub fn kubectl_with_stdin(&self, version: &str, args: &[&str], stdin: Option<&str>) -> Output {
        self.kubectl_full(version, args, stdin, &[])
    }

    /// kubectl with standard input and extra environment variables (e.g. `KUBE_EDITOR`).
    pub fn kubectl_full(&self, version: &str, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut command = self.kubectl_command(version, args);
        command.envs(env.iter().copied());
        run_kubectl(command, stdin)
    }

    /// kubectl `version` with `args`, set up for this server (in its namespace, its kubeconfig),
    /// to start as the caller likes (e.g. a long-running `port-forward`).
    pub fn kubectl_command(&self, version: &str, args: &[&str]) -> Command {
        kubectl_command(self.netns(), &self.kubeconfig(), self.dir.path(), version, args)
    }

    /// Runs kubectl and returns stdout, failing the test with kubectl's stderr if it failed.
    pub fn kubectl_ok(&self, version: &str, args: &[&str]) -> String {
        succeeded(self.kubectl(version, args), version, args)
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn kubectl_err(&self, version: &str, args: &[&str]) -> String {
        let output = self.kubectl(version, args);
        assert!(
            !output.status.success(),
            "kubectl {version} {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// `kubectl apply -f -` (the newest kubectl) with `manifest`, which must succeed.
    pub fn apply(&self, manifest: &str) {
        let out = self.kubectl_with_stdin(KUBECTL_NEWEST, &["apply", "-f", "-"], Some(manifest));
        assert!(out.status.success(), "kubectl apply: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `kubectl get <what> -o jsonpath=<path>` (the newest kubectl): what it printed, empty when
    /// the object is missing.
    pub fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let expression = format!("jsonpath={path}");
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", &expression]);
        String::from_utf8_lossy(&self.kubectl(KUBECTL_NEWEST, &args).stdout).into_owned()
    }

    /// A kube-rs client for this server, from its kubeconfig (as any real client would connect).
    pub async fn kube_client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    }

    /// The bearer token and CA for direct HTTPS clients.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("token")).expect("token").trim().to_string()
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// `curl` against the API server with the right CA and token; returns (HTTP code, body).
    pub fn curl(&self, method: &str, path: &str, content_type: &str, body: Option<&str>) -> (u16, String) {
        let url = format!("https://{}{path}", self.address);
        let mut command = self.command("curl");
        command.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"]).arg(self.ca_path()).args([
            "-H",
            &format!("Authorization: Bearer {}", self.token()),
            "-X",
            method,
            &url,
        ]);
        if let Some(body) = body {
            command.args(["-H", &format!("Content-Type: {content_type}"), "--data-binary", body]);
        }
        let output = command.output().expect("curl runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for Frontdoor {
    /// Asks the server to stop (as [`Frontdoor::stop`]) if it has not stopped already.
    fn drop(&mut self) {
        self.stop();
    }
}

impl Frontdoor {
    /// Asks the server to stop (SIGTERM: a node then stops its pods, as a node shutting down
    /// does) and waits for it; kills it if it has not stopped within ten seconds. Returns
    /// whether it stopped by itself. A server already stopped is not signalled again (its PID
    /// may be another process's by now).
    pub fn stop(&mut self) -> bool {
        if let Ok(Some(_)) = self.child.try_wait() {
            return true;
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

fn spawn(binary: &Path, dir: &Path, listen: &str, flags: &[String], netns: Option<&str>) -> (Child, String, Duration) {
    let started = Instant::now();
    let mut child = in_netns(netns, binary)
        .args(["up", "--listen", listen, "--data-dir"])
        .arg(dir)
        .args(flags)
        .arg("--kubeconfig-out")
        .arg(dir.join("kubeconfig"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("frontdoor starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    let address = line
        .split("https://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("frontdoor did not report ready: {line:?}"))
        .to_string();
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, address, started.elapsed())
}

/// The directory holding the versioned kubectl binaries (`kubectl.1.27` … `kubectl.1.33`).
pub fn kubectl_dir() -> PathBuf {
    let which = Command::new("sh").args(["-c", "readlink -f \"$(command -v kubectl)\""]).output().expect("sh");
    let path = PathBuf::from(String::from_utf8_lossy(&which.stdout).trim());
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn kubectl_path(version: &str) -> PathBuf {
    if version.is_empty() {
        return PathBuf::from("kubectl");
    }
    kubectl_dir().join(format!("kubectl.{version}"))
}

/// The kubectl versions every compatibility test runs with.
pub const KUBECTL_VERSIONS: &[&str] = &["1.27", "1.32", "1.33"];
/// The newest kubectl the tests drive.
pub const KUBECTL_NEWEST: &str = "1.33";

/// Polls `condition` until it returns true or `timeout` passes.
/// Polls `probe` until it yields a value, failing the test (naming `what`) after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The path of a manifest under `tests/e2e/manifests`.
pub fn manifest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/manifests").join(name)
}
