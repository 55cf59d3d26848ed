//! `kubectl exec` with the real kubectl of each supported version (1.27: SPDY; 1.32, 1.33:
//! WebSocket v5, and SPDY when told to) into a real pod in the test's network namespace: the
//! command runs in the pod's namespaces with its container's environment, output and exit code
//! come back as upstream's, standard input goes in; with `-it` on a terminal of its own.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor, KUBECTL_VERSIONS};

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: box
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: box
    image: busybox
    command: [sleep, '3600']
    workingDir: /tmp
    env:
    - name: GREETING
      value: hello from the pod
";

/// Runs kubectl `version` with `args` (and `stdin`), returning (exit code, stdout, stderr).
fn kubectl(
    fd: &Frontdoor,
    version: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut child = fd
        .kubectl_command(version, args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    let out = child.wait_with_output().expect("kubectl finishes");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kubectl_exec_runs_commands_in_the_pod_with_every_kubectl() {
    let mut fd = Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &[]);
    let out = fd.kubectl_with_stdin("1.33", &["apply", "-f", "-"], Some(POD));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let running = wait_until(Duration::from_secs(20), || {
        fd.kubectl_ok("1.33", &["get", "pod", "box", "-o", "jsonpath={.status.phase}"]) == "Running"
    });
    assert!(running, "{}", fd.kubectl_ok("1.33", &["describe", "pod", "box"]));

    let runs: Vec<(&str, Vec<(&str, &str)>)> = KUBECTL_VERSIONS
        .iter()
        .map(|v| (*v, vec![]))
        .chain([("1.33", vec![("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")])])
        .collect();
    for (version, env) in &runs {
        let what = format!("kubectl {version} {env:?}");
        // Output on both channels, the container's environment and working directory, the
        // pod's own hostname and resolv.conf (its namespaces: the cluster's search domains
        // first; the machine's own may follow).
        let script = "echo to stdout; echo to stderr >&2; echo $GREETING; pwd; hostname; grep -o '^search [^ ]* [^ ]* [^ ]*' /etc/resolv.conf";
        let (code, stdout, stderr) =
            kubectl(&fd, version, &["exec", "box", "-v=4", "--", "sh", "-c", script], None, env);
        assert_eq!(code, 0, "{what}: {stderr}");
        assert_eq!(stdout, "to stdout\nhello from the pod\n/tmp\nbox\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n", "{what}");
        assert!(stderr.contains("to stderr"), "{what}: {stderr}");
        assert!(!stderr.contains("RemoteCommand fallback"), "{what}: the first protocol tried serves it: {stderr}");

        // The exit code comes back.
        let (code, _, stderr) = kubectl(&fd, version, &["exec", "box", "--", "sh", "-c", "exit 3"], None, env);
        assert_eq!(code, 3, "{what}: {stderr}");
        assert!(stderr.contains("command terminated with exit code 3"), "{what}: {stderr}");

        // Standard input goes in, to its end.
        let input: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (code, stdout, stderr) =
            kubectl(&fd, version, &["exec", "-i", "box", "--", "sh", "-c", "wc -c; echo done"], Some(&input), env);
        assert_eq!(
            (code, stdout.split_whitespace().collect::<Vec<_>>()),
            (0, vec!["300000", "done"]),
            "{what}: {stderr}"
        );

        // A command that does not exist: said, and exit code 126.
        let (code, _, stderr) = kubectl(&fd, version, &["exec", "box", "--", "no-such-command"], None, env);
        assert_eq!(code, 126, "{what}: {stderr}");
        assert!(stderr.contains("exec: \"no-such-command\": executable file not found in $PATH"), "{what}: {stderr}");
    }

    // A client that goes away takes its command with it, and what the command started.
    for version in ["1.27", "1.33"] {
        let marker = format!("{}{}", 4000 + version.len(), &version[2..]);
        let script = format!("sleep {marker} & wait");
        let mut client = fd
            .kubectl_command(version, &["exec", "box", "--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl runs");
        let running = || sleeping(&marker);
        assert!(wait_until(Duration::from_secs(10), running), "kubectl {version}: the command started");
        let _ = client.kill();
        let _ = client.wait();
        assert!(
            wait_until(Duration::from_secs(10), || !running()),
            "kubectl {version}: the command outlived its client"
        );
    }

    // `-it`: a shell on a terminal of the pod's, sized as kubectl's, where ^C interrupts.
    for version in ["1.27", "1.33"] {
        let kubectl_binary = frontdoor_testkit::kubectl_dir().join(format!("kubectl.{version}"));
        let out = fd
            .command("python3")
            .args(["-c", INTERACTIVE, kubectl_binary.to_str().unwrap()])
            .env("KUBECONFIG", fd.kubeconfig())
            .env("HOME", fd.data_dir())
            .output()
            .expect("python3");
        let transcript = String::from_utf8_lossy(&out.stdout);
        let what = format!("kubectl {version}: {transcript}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(transcript.contains("33 101"), "the terminal has kubectl's size; {what}");
        assert!(transcript.contains("/dev/pts/"), "{what}");
        assert!(transcript.contains("= 42"), "{what}");
        assert!(transcript.contains("after-2-interrupts"), "^C interrupted the foreground command; {what}");
        assert!(transcript.trim_end().ends_with("exit status 5"), "{what}");
    }

    // Bad requests get upstream's answers.
    let (code, _, stderr) = kubectl(&fd, "1.33", &["exec", "nothing", "--", "true"], None, &[]);
    assert!(code != 0 && stderr.contains("pods \"nothing\" not found"), "{stderr}");
    let (code, _, stderr) = kubectl(&fd, "1.33", &["exec", "box", "-c", "other", "--", "true"], None, &[]);
    assert!(code != 0 && stderr.contains("container other is not valid for pod box"), "{stderr}");

    // A node that crashes (kill -9) while a command runs in a pod stops it when it starts again,
    // as it does the pod's containers.
    let marker = "400999";
    let mut client = fd
        .kubectl_command("1.33", &["exec", "box", "--", "sleep", marker])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl runs");
    // Once the node has recorded it in its pid journal: a crash in the moment between a spawn
    // and its record leaves that process, as a crash of the kubelet between a container's start
    // and its record would.
    let journal = fd.data_dir().join("pods").join("containers.pids");
    let recorded = || {
        let Some(pid) = sleeper(marker) else { return false };
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        text.lines().any(|line| line.split_whitespace().next() == Some(pid.to_string().as_str()))
    };
    assert!(wait_until(Duration::from_secs(10), recorded), "the command started and was recorded");
    fd.kill_and_restart();
    let _ = client.kill();
    let _ = client.wait();
    assert!(wait_until(Duration::from_secs(30), || !sleeping(marker)), "the command outlived its crashed node");
}

/// Whether a `sleep <marker>` process exists (the pod's processes are this machine's).
fn sleeping(marker: &str) -> bool {
    sleeper(marker).is_some()
}

/// The pid of a `sleep <marker>` process, if one exists.
fn sleeper(marker: &str) -> Option<u32> {
    let wanted = format!("sleep\0{marker}\0");
    std::fs::read_dir("/proc").into_iter().flatten().flatten().find_map(|entry| {
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        (cmdline == wanted.as_bytes()).then(|| entry.file_name().to_str()?.parse().ok())?
    })
}

/// Drives `kubectl exec -it box -- sh` (argv[1] is kubectl) from a terminal 101 wide and 33
/// high: prints what the session showed, then kubectl's exit status.
const INTERACTIVE: &str = r#"
import fcntl, os, pty, select, struct, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    os.execv(sys.argv[1], [sys.argv[1], "exec", "-it", "box", "--", "sh"])
seen = b""
def read_until(marker, timeout=15):
    global seen
    deadline = time.time() + timeout
    while marker not in seen and time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen += chunk
os.write(fd, b"stty size; tty; echo = $((6*7))\n")
read_until(b"= 42")
os.write(fd, b"sleep 300\n")
time.sleep(1)
os.write(fd, b"\x03")
time.sleep(0.5)
os.write(fd, b"echo after-$((1+1))-interrupts\n")
read_until(b"after-2-interrupts", timeout=5)
os.write(fd, b"exit 5\n")
read_until(b"never", timeout=10)
done, status = os.waitpid(pid, os.WNOHANG)
if done == 0:
    os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
print(f"\nexit status {os.waitstatus_to_exitcode(status)}")
"#;
