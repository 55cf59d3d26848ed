//! `kubectl exec` with the real kubectl of each supported version (1.27: SPDY; 1.32, 1.33:
//! WebSocket v5, and SPDY when told to) into a real pod in the test's network namespace: the
//! command runs in the pod's namespaces with its container's environment, output and exit code
//! come back as upstream's, standard input goes in.

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
fn kubectl(fd: &Frontdoor, version: &str, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> (i32, String, String) {
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
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn kubectl_exec_runs_commands_in_the_pod_with_every_kubectl() {
    let fd = Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &[]);
    let out = fd.kubectl_with_stdin("1.33", &["apply", "-f", "-"], Some(POD));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let running = wait_until(Duration::from_secs(20), || fd.kubectl_ok("1.33", &["get", "pod", "box", "-o", "jsonpath={.status.phase}"]) == "Running");
    assert!(running, "{}", fd.kubectl_ok("1.33", &["describe", "pod", "box"]));

    let runs: Vec<(&str, Vec<(&str, &str)>)> = KUBECTL_VERSIONS
        .iter()
        .map(|v| (*v, vec![]))
        .chain([("1.33", vec![("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")])])
        .collect();
    for (version, env) in &runs {
        let what = format!("kubectl {version} {env:?}");
        // Output on both channels, the container's environment and working directory, the
        // pod's own hostname and resolv.conf (its namespaces).
        let script = "echo to stdout; echo to stderr >&2; echo $GREETING; pwd; hostname; grep ^search /etc/resolv.conf";
        let (code, stdout, stderr) = kubectl(&fd, version, &["exec", "box", "-v=4", "--", "sh", "-c", script], None, env);
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
        let (code, stdout, stderr) = kubectl(&fd, version, &["exec", "-i", "box", "--", "sh", "-c", "wc -c; echo done"], Some(&input), env);
        assert_eq!((code, stdout.split_whitespace().collect::<Vec<_>>()), (0, vec!["300000", "done"]), "{what}: {stderr}");

        // A command that does not exist: said, and exit code 126.
        let (code, _, stderr) = kubectl(&fd, version, &["exec", "box", "--", "no-such-command"], None, env);
        assert_eq!(code, 126, "{what}: {stderr}");
        assert!(stderr.contains("exec: \"no-such-command\": executable file not found in $PATH"), "{what}: {stderr}");
    }

    // A client that goes away takes its command with it.
    for version in ["1.27", "1.33"] {
        let marker = format!("{}{}", 4000 + version.len(), &version[2..]);
        let mut client = fd.kubectl_command(version, &["exec", "box", "--", "sleep", &marker]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("kubectl runs");
        let running = || sleeping(&marker);
        assert!(wait_until(Duration::from_secs(10), running), "kubectl {version}: the command started");
        let _ = client.kill();
        let _ = client.wait();
        assert!(wait_until(Duration::from_secs(10), || !running()), "kubectl {version}: the command outlived its client");
    }

    // Bad requests get upstream's answers.
    let (code, _, stderr) = kubectl(&fd, "1.33", &["exec", "nothing", "--", "true"], None, &[]);
    assert!(code != 0 && stderr.contains("pods \"nothing\" not found"), "{stderr}");
    let (code, _, stderr) = kubectl(&fd, "1.33", &["exec", "box", "-c", "other", "--", "true"], None, &[]);
    assert!(code != 0 && stderr.contains("container other is not valid for pod box"), "{stderr}");
}

/// Whether a `sleep <marker>` process exists (the pod's processes are this machine's).
fn sleeping(marker: &str) -> bool {
    let wanted = format!("sleep\0{marker}\0");
    std::fs::read_dir("/proc").into_iter().flatten().flatten().any(|entry| std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmdline| cmdline == wanted.as_bytes()))
}
