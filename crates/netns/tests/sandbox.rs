//! Pod sandboxes for real: every test runs its "node" in a network namespace of its own
//! ([`run_in_fresh_network_namespace`]), so nothing here touches the machine's interfaces, and
//! checks afterwards that none of its links showed up in the root namespace.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use frontdoor_netns::{
    cleanup_stale, enable_ip_forward, ensure_bridge, ip_forward_enabled, link_address, link_names, pod_veth_name,
    run_in_fresh_network_namespace, signal_process_group, Error, Launcher, PodSandbox, ProcessSpec, SandboxConfig,
    SandboxFactory, Signal,
};

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

/// A test's node: its own network namespace, a bridge with the gateway address, and unique
/// names for everything it creates.
struct Node {
    prefix: String,
    bridge: String,
}

impl Node {
    fn veth(&self, n: u8) -> String {
        format!("{}v{n}", self.prefix)
    }

    fn pod(&self, n: u8) -> SandboxConfig {
        SandboxConfig {
            name: format!("default/pod-{n}"),
            hostname: format!("pod-{n}"),
            ip: Ipv4Addr::new(10, 244, 0, 10 + n),
            prefix_len: 24,
            gateway: GATEWAY,
            bridge: self.bridge.clone(),
            veth_host_name: self.veth(n),
            mtu: None,
            resolv_conf: format!("nameserver 10.96.0.10\nsearch ns{n}.svc.cluster.local svc.cluster.local\n"),
            hosts: format!("127.0.0.1\tlocalhost\n10.244.0.{}\tpod-{n}\n", 10 + n),
            volumes: Vec::new(),
        }
    }
}

/// Runs `test` as a node in a fresh network namespace with a tokio runtime, then checks that the
/// root namespace has none of the node's links.
fn on_node<T: Send>(test: impl FnOnce(&Node) -> T + Send) -> T {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    // Short enough for 15-byte link names: "fd" + 4 hex of the pid + counter + suffix.
    let prefix = format!("fd{:04x}{}", std::process::id() & 0xffff, COUNTER.fetch_add(1, Ordering::Relaxed));
    let node = Node { bridge: format!("{prefix}br"), prefix };
    let result = run_in_fresh_network_namespace(|| {
        ensure_bridge(&node.bridge, GATEWAY, 24).expect("bridge");
        test(&node)
    })
    .expect("fresh network namespace");
    let leaked: Vec<String> = link_names().unwrap().into_iter().filter(|name| name.starts_with(&node.prefix)).collect();
    assert!(leaked.is_empty(), "links leaked into the root namespace: {leaked:?}");
    result
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Waits for `condition` with a deadline instead of sleeping for a guessed time.
fn eventually<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn host_env() -> Vec<(String, String)> {
    vec![("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into())]
}

fn http_get(mut stream: TcpStream, path: &str) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

async fn output_of(sandbox: &PodSandbox, argv: &[&str]) -> String {
    let mut spec = ProcessSpec::new(argv.iter().copied());
    spec.env = host_env();
    spec.stdout = Stdio::piped();
    let output = sandbox.spawn(spec).expect("spawn").wait_with_output().await.unwrap();
    assert!(output.status.success(), "{argv:?} failed: {:?}", output.status);
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn pods_reach_each_other_and_the_node_over_the_bridge() {
    on_node(|node| {
        let a = PodSandbox::create(&node.pod(1)).expect("sandbox a");
        let b = PodSandbox::create(&node.pod(2)).expect("sandbox b");
        let site = tempfile::tempdir().unwrap();
        std::fs::write(site.path().join("hello.txt"), "hello from pod 1\n").unwrap();
        let server_address = SocketAddr::from((a.ip(), 8080));

        runtime().block_on(async {
            let mut spec = ProcessSpec::new(["python3", "-m", "http.server", "8080", "--bind", &a.ip().to_string()]);
            spec.env = host_env();
            spec.working_dir = Some(site.path().to_owned());
            let mut server = a.spawn(spec).expect("spawn server in pod a");

            // From pod b, through a socket made in b's namespace.
            let stream = eventually("the server in pod a to listen", Duration::from_secs(20), || {
                b.tcp_connect(server_address, Duration::from_secs(1)).ok()
            });
            let response = http_get(stream, "/hello.txt");
            assert!(response.starts_with("HTTP/1.0 200"), "{response}");
            assert!(response.ends_with("hello from pod 1\n"), "{response}");

            // From a process in pod b.
            let body = output_of(&b, &["curl", "-sS", "--max-time", "5", "http://10.244.0.11:8080/hello.txt"]).await;
            assert_eq!(body, "hello from pod 1\n");

            // From the node, over the bridge.
            let stream = TcpStream::connect_timeout(&server_address, Duration::from_secs(5)).expect("node to pod");
            assert!(http_get(stream, "/hello.txt").ends_with("hello from pod 1\n"));

            let _ = signal_process_group(server.id().unwrap(), Signal::Kill);
            server.wait().await.unwrap();
        });

        // A pod reaches the node at its gateway address (default route via the bridge).
        let listener = TcpListener::bind((GATEWAY, 0)).unwrap();
        let node_address = listener.local_addr().unwrap();
        let mut from_pod = b.tcp_connect(node_address, Duration::from_secs(5)).expect("pod to node");
        let (mut accepted, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), b.ip(), "the node sees the pod's own address");
        from_pod.write_all(b"ping").unwrap();
        let mut buffer = [0; 4];
        accepted.read_exact(&mut buffer).unwrap();
        assert_eq!(&buffer, b"ping");

        // Nothing listens on this port: refused, reported as a connect error.
        match a.tcp_connect(SocketAddr::from((b.ip(), 9)), Duration::from_secs(2)) {
            Err(Error::Connect { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
            }
            other => panic!("expected a refused connection, got {other:?}"),
        }

        // The pod's network holds only its loopback and eth0.
        let mut pod_links = a.run_in_network(link_names).unwrap().unwrap();
        pod_links.sort();
        assert_eq!(pod_links, ["eth0", "lo"]);

        // IPv4 single-stack: eth0 has only the pod's address (no IPv6 link-local address, so
        // nothing for the bridge to flood), lo keeps ::1, and the host end has no address.
        let addresses = runtime().block_on(output_of(&a, &["ip", "-o", "addr", "show"]));
        let mut summary: Vec<String> = addresses
            .lines()
            .map(|line| line.split_whitespace().skip(1).take(3).collect::<Vec<_>>().join(" "))
            .collect();
        summary.sort();
        assert_eq!(summary, ["eth0 inet 10.244.0.11/24", "lo inet 127.0.0.1/8", "lo inet6 ::1/128"], "{addresses}");
        let host_end =
            std::process::Command::new("ip").args(["-o", "addr", "show", "dev", &node.veth(1)]).output().unwrap();
        assert!(host_end.status.success());
        assert_eq!(String::from_utf8_lossy(&host_end.stdout), "", "the host end has no address");
        a.destroy().unwrap();
        b.destroy().unwrap();
    });
}

#[test]
fn hostname_resolv_conf_and_hosts_are_the_pods_own() {
    let host_resolv_conf = std::fs::read("/etc/resolv.conf").unwrap();
    let host_hosts = std::fs::read("/etc/hosts").unwrap();
    let host_name = nix_free_hostname();
    on_node(|node| {
        let config = node.pod(3);
        let sandbox = PodSandbox::create(&config).expect("sandbox");
        runtime().block_on(async {
            assert_eq!(output_of(&sandbox, &["hostname"]).await, "pod-3\n");
            assert_eq!(output_of(&sandbox, &["cat", "/etc/resolv.conf"]).await, config.resolv_conf);
            assert_eq!(output_of(&sandbox, &["cat", "/etc/hosts"]).await, config.hosts);
            // The rest of the filesystem is the host's, and the working directory is honoured.
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("marker"), "host file\n").unwrap();
            let mut spec = ProcessSpec::new(["sh", "-c", "pwd; cat marker"]);
            spec.env = host_env();
            spec.working_dir = Some(dir.path().to_owned());
            spec.stdout = Stdio::piped();
            let output = sandbox.spawn(spec).unwrap().wait_with_output().await.unwrap();
            assert_eq!(String::from_utf8(output.stdout).unwrap(), format!("{}\nhost file\n", dir.path().display()));
        });
        sandbox.destroy().unwrap();
    });
    assert_eq!(std::fs::read("/etc/resolv.conf").unwrap(), host_resolv_conf, "host resolv.conf untouched");
    assert_eq!(std::fs::read("/etc/hosts").unwrap(), host_hosts, "host hosts untouched");
    assert_eq!(nix_free_hostname(), host_name, "host hostname untouched");
}

/// Where a volume appears: `path`, with `sub_path` if any.
fn at(path: &std::path::Path, sub_path: Option<&str>, read_only: bool) -> frontdoor_netns::VolumeMount {
    frontdoor_netns::VolumeMount { path: path.to_path_buf(), sub_path: sub_path.map(Into::into), read_only }
}

/// A volume is the pod's alone: its files (in subdirectories too, with their modes) appear at
/// its path inside the pod, a read-only one refuses writes, a writable one takes them, one
/// volume mounted at two paths is one set of files, a `subPath` mount binds one key or one
/// directory of it, and the host sees only the empty directories and file the volumes were
/// mounted on.
#[test]
fn volumes_are_mounted_in_the_pod_only() {
    use frontdoor_netns::{Volume, VolumeFile};
    let host_dir = tempfile::tempdir().unwrap();
    let secrets = host_dir.path().join("run/secrets");
    let scratch = host_dir.path().join("scratch");
    let shared = host_dir.path().join("shared");
    let one_key = host_dir.path().join("etc/app.conf");
    let sub_dir = host_dir.path().join("nested-only");
    let scratch_part = host_dir.path().join("scratch-part");
    on_node(|node| {
        let mut config = node.pod(7);
        config.volumes = vec![
            Volume {
                name: "secrets".into(),
                files: vec![
                    VolumeFile { path: "token".into(), contents: b"t0ken".to_vec(), mode: 0o644 },
                    VolumeFile { path: "nested/dir/key".into(), contents: b"value".to_vec(), mode: 0o400 },
                ],
                size_limit: None,
                mounts: vec![
                    at(&secrets, None, true),
                    at(&one_key, Some("token"), true),
                    at(&sub_dir, Some("nested/dir"), true),
                ],
                host_path: None,
            },
            Volume {
                name: "scratch".into(),
                files: vec![],
                size_limit: Some(1 << 20),
                mounts: vec![
                    at(&scratch, None, false),
                    at(&shared, None, true),
                    at(&scratch_part, Some("part"), false),
                ],
                host_path: None,
            },
        ];
        let sandbox = PodSandbox::create(&config).expect("sandbox");
        runtime().block_on(async {
            let (secrets, scratch, shared) = (secrets.display(), scratch.display(), shared.display());
            assert_eq!(output_of(&sandbox, &["cat", &format!("{secrets}/token")]).await, "t0ken");
            let script = format!("stat -L -c %a {secrets}/nested/dir/key; cat {secrets}/nested/dir/key");
            assert_eq!(output_of(&sandbox, &["sh", "-c", &script]).await, "400\nvalue");
            let script = format!("if touch {secrets}/new 2>/dev/null; then echo wrote; else echo refused; fi");
            assert_eq!(output_of(&sandbox, &["sh", "-c", &script]).await, "refused\n");
            let script = format!("echo hi > {scratch}/f && cat {scratch}/f");
            assert_eq!(output_of(&sandbox, &["sh", "-c", &script]).await, "hi\n");
            // The same emptyDir elsewhere: the same files, read-only there.
            let script =
                format!("cat {shared}/f; if touch {shared}/g 2>/dev/null; then echo wrote; else echo refused; fi");
            assert_eq!(output_of(&sandbox, &["sh", "-c", &script]).await, "hi\nrefused\n");
            // subPath: one key bound as a file, one directory of keys, a part of the emptyDir
            // (made, and the same files as through the whole volume).
            assert_eq!(output_of(&sandbox, &["cat", &one_key.display().to_string()]).await, "t0ken");
            assert_eq!(output_of(&sandbox, &["cat", &sub_dir.join("key").display().to_string()]).await, "value");
            let script = format!("echo part > {}/p && cat {scratch}/part/p", scratch_part.display());
            assert_eq!(output_of(&sandbox, &["sh", "-c", &script]).await, "part\n");
        });
        // Changed while the pod runs (a ConfigMap edited): the new files replace the old at
        // once, a key that went is gone, and the volume is read-only again; the subPath mount
        // keeps what it was bound to, as the kubelet's do.
        let token = |contents: &[u8]| VolumeFile { path: "token".into(), contents: contents.to_vec(), mode: 0o644 };
        let changed = Volume {
            name: "secrets".into(),
            files: vec![token(b"n3w")],
            size_limit: None,
            mounts: vec![at(&secrets, None, true), at(&one_key, Some("token"), true)],
            host_path: None,
        };
        sandbox.update_volume(&changed).expect("the volume is updated");
        runtime().block_on(async {
            let secrets = secrets.display();
            assert_eq!(output_of(&sandbox, &["cat", &format!("{secrets}/token")]).await, "n3w");
            let script = format!("ls -A {secrets} | grep -v '^[.][.]20'; readlink {secrets}/token");
            assert_eq!(output_of(&sandbox, &["sh", "-c", &script]).await, "..data\ntoken\n..data/token\n");
            let script = format!("if touch {secrets}/new 2>/dev/null; then echo wrote; else echo refused; fi");
            assert_eq!(output_of(&sandbox, &["sh", "-c", &script]).await, "refused\n");
            assert_eq!(output_of(&sandbox, &["cat", &one_key.display().to_string()]).await, "t0ken");
        });
        let outside = Volume { files: vec![VolumeFile { path: "../x".into(), ..token(b"") }], ..changed };
        assert!(sandbox.update_volume(&outside).is_err(), "a file outside the volume is refused");
        sandbox.destroy().unwrap();
    });
    let left = |dir: &std::path::Path| std::fs::read_dir(dir).unwrap().count();
    assert_eq!((left(&secrets), left(&scratch), left(&shared)), (0, 0, 0), "the host sees empty mount points only");
    assert_eq!(std::fs::read(&one_key).unwrap(), b"", "and an empty file for a key's subPath");
}

/// A `subPath` that would lead out of its volume is refused before anything is made.
#[test]
fn a_sub_path_cannot_lead_out_of_its_volume() {
    use frontdoor_netns::Volume;
    let host_dir = tempfile::tempdir().unwrap();
    on_node(|node| {
        let mut config = node.pod(9);
        config.volumes = vec![Volume {
            name: "v".into(),
            files: vec![],
            size_limit: None,
            mounts: vec![at(&host_dir.path().join("x"), Some("../../etc"), true)],
            host_path: None,
        }];
        let error = PodSandbox::create(&config).map(|_| ()).expect_err("refused").to_string();
        assert!(error.contains("subPath") && error.contains("without '..'"), "{error}");
    });
    assert!(!host_dir.path().join("x").exists(), "nothing made");
}

/// A read-only volume is made while other threads start processes (as the node starts containers
/// while it makes sandboxes): a process spawned while a volume's file is open for writing holds
/// it until it execs, which must not fail the sandbox.
#[test]
fn read_only_volumes_are_made_while_processes_start() {
    use frontdoor_netns::{Volume, VolumeFile};
    let host_dir = tempfile::tempdir().unwrap();
    on_node(|node| {
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = std::process::Command::new("true").status();
                    }
                });
            }
            for n in 0..40u8 {
                let mut config = node.pod(20 + n);
                let files = (0..8)
                    .map(|i| VolumeFile { path: format!("f{i}").into(), contents: vec![b'x'; 4096], mode: 0o644 })
                    .collect();
                let path = host_dir.path().join(format!("v{n}"));
                let mounts = vec![at(&path, None, true)];
                config.volumes = vec![Volume { name: "v".into(), files, mounts, ..Volume::default() }];
                let made = PodSandbox::create(&config);
                if made.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                made.expect("sandbox with a read-only volume").destroy().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
}

/// A volume whose files would land outside it is refused before anything is made.
#[test]
fn a_volume_file_outside_its_volume_is_refused() {
    use frontdoor_netns::{Volume, VolumeFile};
    on_node(|node| {
        let mut config = node.pod(8);
        config.volumes = vec![Volume {
            files: vec![VolumeFile { path: "../escape".into(), contents: vec![], mode: 0o644 }],
            mounts: vec![at(std::path::Path::new("/tmp/never-made-by-frontdoor"), None, false)],
            ..Volume::default()
        }];
        let error = PodSandbox::create(&config).map(|_| ()).expect_err("refused").to_string();
        assert!(error.contains("without '..'"), "{error}");
    });
    assert!(!std::path::Path::new("/tmp/never-made-by-frontdoor").exists());
}

fn nix_free_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap()
}

#[test]
fn a_missing_command_is_reported_as_the_kubelet_does() {
    on_node(|node| {
        let sandbox = PodSandbox::create(&node.pod(4)).expect("sandbox");
        runtime().block_on(async {
            let mut spec = ProcessSpec::new(["frontdoor-no-such-command"]);
            spec.env = host_env();
            let error = sandbox.spawn(spec).expect_err("missing command");
            assert!(matches!(error, Error::ExecutableNotFound { .. }), "{error:?}");
            assert_eq!(error.to_string(), "exec: \"frontdoor-no-such-command\": executable file not found in $PATH");

            let error = sandbox.spawn(ProcessSpec::new(["/no/such/binary"])).expect_err("missing path");
            assert!(matches!(error, Error::ExecutableNotFound { .. }), "{error:?}");

            let mut spec = ProcessSpec::new(["true"]);
            spec.working_dir = Some("/no/such/directory".into());
            assert!(matches!(sandbox.spawn(spec), Err(Error::WorkingDirectory { .. })));

            assert!(matches!(sandbox.spawn(ProcessSpec::new(Vec::<String>::new())), Err(Error::EmptyCommand)));
            // Without PATH in the environment, the default PATH applies.
            assert_eq!(output_of(&sandbox, &["sh", "-c", "echo $PATH"]).await.trim(), host_env()[0].1);
            let mut spec = ProcessSpec::new(["sh", "-c", "echo $PATH"]);
            spec.stdout = Stdio::piped();
            let output = sandbox.spawn(spec).unwrap().wait_with_output().await.unwrap();
            assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), frontdoor_netns::DEFAULT_PATH);
        });
    });
}

#[test]
fn destroy_removes_the_veth_and_releases_the_namespace() {
    on_node(|node| {
        let sandbox = PodSandbox::create(&node.pod(5)).expect("sandbox");
        assert!(link_names().unwrap().contains(&node.veth(5)));
        let inode = sandbox.network_namespace_inode().expect("live sandbox has a namespace");
        let reference = format!("net:[{inode}]");
        assert!(open_descriptors_to(&reference) > 0);

        sandbox.destroy().unwrap();
        assert!(!link_names().unwrap().contains(&node.veth(5)), "veth deleted");
        assert_eq!(open_descriptors_to(&reference), 0, "namespace descriptors closed");
        assert!(sandbox.is_destroyed());
        sandbox.destroy().expect("destroy is idempotent");
        assert!(matches!(
            sandbox.tcp_connect(SocketAddr::from((GATEWAY, 1)), Duration::from_secs(1)),
            Err(Error::Destroyed { .. })
        ));

        // The same names can be used again at once.
        let again = PodSandbox::create(&node.pod(5)).expect("recreate with the same names");
        // A link of the veth's name already there is refused, and nothing is left behind.
        let clash = PodSandbox::create(&node.pod(5)).expect_err("veth name in use");
        assert!(matches!(clash, Error::LinkExists { .. }), "{clash:?}");
        // Dropping without destroy cleans up too.
        drop(again);
        assert!(!link_names().unwrap().contains(&node.veth(5)), "veth deleted on drop");

        // A failed create leaves nothing: the bridge does not exist.
        let mut config = node.pod(6);
        config.bridge = format!("{}nobr", node.prefix);
        assert!(matches!(PodSandbox::create(&config), Err(Error::BridgeNotFound { .. })));
        assert!(!link_names().unwrap().contains(&node.veth(6)));
    });
}

/// What identifies the calling thread's network, UTS and mount namespaces, its hostname and the
/// `/etc/resolv.conf` it sees.
fn this_threads_view() -> Vec<String> {
    let mut view: Vec<String> = ["net", "uts", "mnt"]
        .iter()
        .map(|kind| std::fs::read_link(format!("/proc/thread-self/ns/{kind}")).unwrap().display().to_string())
        .collect();
    view.push(nix_free_hostname());
    view.push(std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    view
}

/// The bridge a link is attached to, as `ip link` in the calling thread's namespace reports it
/// (`/sys` shows the namespace that mounted it).
fn controller_of(link: &str) -> Option<String> {
    let output = std::process::Command::new("ip").args(["-o", "link", "show", "dev", link]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut words = text.split_whitespace();
    words.find(|word| *word == "master")?;
    words.next().map(str::to_owned)
}

#[test]
fn a_factory_makes_sandboxes_on_its_thread_and_brings_it_back() {
    on_node(|node| {
        // A thread of its own, as the node gives its factory; it starts in the node's namespace.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let before = this_threads_view();
                    let mut factory = SandboxFactory::for_this_thread().expect("factory");
                    let a = factory.create(&node.pod(1)).expect("sandbox a");
                    assert_eq!(this_threads_view(), before, "back in the node's namespaces");
                    assert_eq!(controller_of(&node.veth(1)).as_deref(), Some(node.bridge.as_str()));

                    // The bridge is replaced (a new index): the factory finds the new one.
                    let deleted =
                        std::process::Command::new("ip").args(["link", "del", &node.bridge]).status().unwrap();
                    assert!(deleted.success());
                    ensure_bridge(&node.bridge, GATEWAY, 24).expect("bridge again");
                    let b = factory.create(&node.pod(2)).expect("sandbox b on the new bridge");
                    assert_eq!(controller_of(&node.veth(2)).as_deref(), Some(node.bridge.as_str()));

                    // A clash leaves the other sandbox alone, and the factory goes on working.
                    let clash = factory.create(&node.pod(2)).expect_err("veth name in use");
                    assert!(matches!(clash, Error::LinkExists { .. }), "{clash:?}");
                    assert!(link_names().unwrap().contains(&node.veth(2)));
                    let c = factory.create(&node.pod(3)).expect("sandbox c");
                    assert_eq!(this_threads_view(), before, "back in the node's namespaces");

                    // Each pod has its own hostname and files, and reaches the node over the
                    // new bridge.
                    let rt = runtime();
                    let _guard = rt.enter();
                    for (sandbox, n) in [(&b, 2), (&c, 3)] {
                        let seen = rt.block_on(output_of(sandbox, &["sh", "-c", "hostname; cat /etc/resolv.conf"]));
                        assert!(seen.starts_with(&format!("pod-{n}\n")), "{seen}");
                        assert!(seen.contains(&format!("search ns{n}.svc.cluster.local")), "{seen}");
                        sandbox
                            .tcp_connect(SocketAddr::from((GATEWAY, 9)), Duration::from_secs(2))
                            .map(drop)
                            .or_else(|error| match error {
                                Error::Connect { source, .. }
                                    if source.kind() == std::io::ErrorKind::ConnectionRefused =>
                                {
                                    Ok(())
                                }
                                other => Err(other),
                            })
                            .expect("the node answers (with a refusal)");
                    }
                    drop((a, b, c));
                })
                .join()
                .unwrap();
        });
        assert!(
            !link_names().unwrap().iter().any(|name| name.starts_with(&format!("{}v", node.prefix))),
            "every veth removed"
        );
    });
}

#[test]
fn a_launcher_starts_processes_in_pods_from_its_thread_and_comes_back() {
    on_node(|node| {
        let a = PodSandbox::create(&node.pod(1)).expect("sandbox a");
        let b = PodSandbox::create(&node.pod(2)).expect("sandbox b");
        // A thread of its own, as the node gives its launcher.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = runtime();
                    let _guard = rt.enter();
                    let before = this_threads_view();
                    let mut launcher = Launcher::for_this_thread().expect("launcher");
                    let start = |launcher: &mut Launcher, sandbox: &PodSandbox, script: &str| {
                        let mut spec = ProcessSpec::new(["sh", "-c", script]);
                        spec.env = host_env();
                        spec.stdout = Stdio::piped();
                        launcher.spawn(sandbox, spec)
                    };
                    let script = "hostname; cat /etc/resolv.conf; cat /proc/net/dev | grep -c eth0";
                    for (sandbox, n) in [(&a, 1), (&b, 2), (&a, 1)] {
                        let child = start(&mut launcher, sandbox, script).expect("started");
                        assert_eq!(this_threads_view(), before, "back in the node's namespaces");
                        let output = rt.block_on(child.wait_with_output()).unwrap();
                        let seen = String::from_utf8(output.stdout).unwrap();
                        assert!(seen.starts_with(&format!("pod-{n}\n")), "{seen}");
                        assert!(seen.contains(&format!("search ns{n}.svc")), "{seen}");
                        assert!(seen.ends_with("1\n"), "the pod's eth0: {seen}");
                    }

                    // A command that is not there is reported before anything is forked, and
                    // the launcher goes on working.
                    let mut missing = ProcessSpec::new(["no-such-command-xyz"]);
                    missing.env = host_env();
                    let error = launcher.spawn(&a, missing).expect_err("missing command");
                    assert!(matches!(error, Error::ExecutableNotFound { .. }), "{error:?}");
                    assert_eq!(this_threads_view(), before);

                    // A destroyed sandbox has no namespaces to start anything in.
                    b.destroy().expect("destroy b");
                    let error = start(&mut launcher, &b, "true").expect_err("destroyed");
                    assert!(matches!(error, Error::Destroyed { .. }), "{error:?}");
                    let child = start(&mut launcher, &a, "true").expect("a still works");
                    assert!(rt.block_on(child.wait_with_output()).unwrap().status.success());
                    assert_eq!(this_threads_view(), before);
                })
                .join()
                .unwrap();
        });
    });
}

/// How many of this process's descriptors point at `target` (e.g. `net:[4026532000]`).
fn open_descriptors_to(target: &str) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|link| link == Path::new(target))
        .count()
}

#[test]
fn sigterm_to_the_process_group_stops_the_whole_tree() {
    on_node(|node| {
        let sandbox = PodSandbox::create(&node.pod(7)).expect("sandbox");
        runtime().block_on(async {
            let mut spec = ProcessSpec::new(["sh", "-c", "sleep 100 & wait"]);
            spec.env = host_env();
            let mut child = sandbox.spawn(spec).expect("spawn");
            let group = child.id().unwrap();
            eventually("sleep to start in the group", Duration::from_secs(10), || {
                live_members(group).iter().any(|(_, name)| name == "sleep").then_some(())
            });
            let in_pod = format!("net:[{}]", sandbox.network_namespace_inode().unwrap());
            for (pid, _) in live_members(group) {
                let namespace = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
                assert_eq!(namespace, Path::new(&in_pod), "process {pid} runs in the pod's network");
            }

            assert!(signal_process_group(group, Signal::Terminate).unwrap());
            let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("sh stops").unwrap();
            assert!(!status.success());
            eventually("every process of the group to stop", Duration::from_secs(10), || {
                live_members(group).is_empty().then_some(())
            });
        });
        sandbox.destroy().unwrap();
    });
}

/// The (pid, name) of processes in process group `group` that have not exited (zombies are
/// left out: who reaps orphans depends on the machine's init).
fn live_members(group: u32) -> Vec<(u32, String)> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map(|(_, name)| name.to_owned()).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == group.to_string() && fields[0] != "Z" && fields[0] != "X" {
            members.push((pid, name));
        }
    }
    members
}

#[test]
fn bridge_setup_is_idempotent_and_forwarding_is_per_namespace() {
    let root_forwarding = ip_forward_enabled().unwrap();
    on_node(|node| {
        ensure_bridge(&node.bridge, GATEWAY, 24).expect("second ensure_bridge is a no-op");
        let addresses = std::process::Command::new("ip")
            .args(["-o", "-4", "addr", "show", "dev", &node.bridge])
            .output()
            .expect("ip addr");
        let addresses = String::from_utf8(addresses.stdout).unwrap();
        assert_eq!(addresses.matches("inet 10.244.0.1/24").count(), 1, "{addresses}");
        assert!(link_is_up(&node.bridge), "bridge up");
        let bridge = std::process::Command::new("ip")
            .args(["-d", "link", "show", "dev", &node.bridge])
            .output()
            .expect("ip -d link");
        let bridge = String::from_utf8(bridge.stdout).unwrap();
        assert!(bridge.contains("mcast_snooping 0"), "{bridge}");

        let sandbox = PodSandbox::create(&node.pod(8)).expect("sandbox");
        let port =
            std::process::Command::new("ip").args(["-d", "link", "show", "dev", &node.veth(8)]).output().unwrap();
        let port = String::from_utf8(port.stdout).unwrap();
        assert!(port.contains(&format!("master {}", node.bridge)), "{port}");
        assert!(port.contains("hairpin on"), "a pod can reach itself through its Service: {port}");
        let error = ensure_bridge(&node.veth(8), GATEWAY, 24).expect_err("a veth is not a bridge");
        assert!(matches!(error, Error::NotABridge { .. }), "{error:?}");
        sandbox.destroy().unwrap();

        assert!(!ip_forward_enabled().unwrap(), "a new namespace starts without forwarding");
        enable_ip_forward().unwrap();
        assert!(ip_forward_enabled().unwrap());
    });
    assert_eq!(ip_forward_enabled().unwrap(), root_forwarding, "root namespace untouched");
}

fn link_is_up(name: &str) -> bool {
    let output = std::process::Command::new("ip").args(["-o", "link", "show", "dev", name]).output().unwrap();
    let line = String::from_utf8(output.stdout).unwrap();
    line.contains("<") && line.split('<').nth(1).unwrap().split('>').next().unwrap().split(',').any(|flag| flag == "UP")
}

/// `ip link …` in the calling thread's network namespace (the node's, inside `on_node`).
fn ip_link(args: &[&str]) {
    let status = std::process::Command::new("ip").arg("link").args(args).status().expect("ip link");
    assert!(status.success(), "ip link {args:?}");
}

#[test]
fn cleanup_stale_deletes_only_pod_veths_of_its_bridge() {
    on_node(|node| {
        // The namespace is the test's own: the node's real prefix clashes with nothing here.
        let pod_veth = |uid: &str| pod_veth_name("fdv", uid);
        let on_bridge = pod_veth("11111111-aaaa-4bbb-8ccc-000000000001");
        let orphaned = pod_veth("22222222-aaaa-4bbb-8ccc-000000000002");
        let elsewhere = pod_veth("33333333-aaaa-4bbb-8ccc-000000000003");
        let other_bridge = format!("{}ob", node.prefix);
        ip_link(&["add", &other_bridge, "type", "bridge"]);
        // A machine's own interface that happens to share the prefix, as a LAN veth `fdv0`.
        for (name, peer) in
            [(&on_bridge, "peer1"), (&orphaned, "peer2"), (&elsewhere, "peer3"), (&"fdv0".to_string(), "peer4")]
        {
            ip_link(&["add", name, "type", "veth", "peer", "name", peer]);
        }
        ip_link(&["set", &on_bridge, "master", &node.bridge]);
        ip_link(&["set", &elsewhere, "master", &other_bridge]);
        let live = PodSandbox::create(&node.pod(9)).expect("sandbox");

        let mut removed = cleanup_stale("fdv", &node.bridge).unwrap();
        removed.sort();
        let mut expected = vec![on_bridge.clone(), orphaned.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        let links = link_names().unwrap();
        assert!(!links.contains(&on_bridge) && !links.contains(&orphaned), "{links:?}");
        assert!(links.contains(&elsewhere), "a port of another bridge is left alone: {links:?}");
        assert!(links.contains(&"fdv0".to_string()), "other names are left alone: {links:?}");
        assert!(links.contains(&node.bridge), "bridges are not veths");
        assert!(links.contains(&node.veth(9)), "other prefixes are left alone");
        assert!(cleanup_stale("fdv", &node.bridge).unwrap().is_empty(), "idempotent");
        assert!(matches!(cleanup_stale("", &node.bridge), Err(Error::Invalid { .. })));
        live.destroy().unwrap();
    });
}

/// Left to the kernel, a bridge takes the lowest hardware address among its ports. A pod that
/// resolved its gateway while another pod's veth had the lowest would lose its way out when that
/// pod went (until its ARP entry expired): the bridge must keep the address it started with.
#[test]
fn the_gateway_keeps_its_hardware_address_while_pods_come_and_go() {
    on_node(|node| {
        let listener = TcpListener::bind((GATEWAY, 0)).unwrap();
        let node_address = listener.local_addr().unwrap();
        let gateway_address = link_address(&node.bridge).unwrap().expect("bridge address");
        let lowest = PodSandbox::create(&node.pod(1)).expect("sandbox");
        // Run from this thread, `ip` works in the node's namespace.
        let set = std::process::Command::new("ip")
            .args(["link", "set", "dev", &node.veth(1), "address", "00:00:00:00:00:01"])
            .status()
            .unwrap();
        assert!(set.success());
        assert_eq!(link_address(&node.bridge).unwrap().as_ref(), Some(&gateway_address));
        let pod = PodSandbox::create(&node.pod(2)).expect("sandbox");
        // One whole exchange, both sides closed, as a finished request leaves it: the pod now
        // knows its gateway's hardware address, and the node has nothing more to send it.
        let stream = pod.tcp_connect(node_address, Duration::from_secs(3)).expect("pod to node");
        drop(listener.accept().unwrap());
        drop(stream);
        std::thread::sleep(Duration::from_millis(200));
        lowest.destroy().unwrap();
        assert_eq!(link_address(&node.bridge).unwrap().as_ref(), Some(&gateway_address));
        pod.tcp_connect(node_address, Duration::from_secs(3)).expect("pod to node after the other pod went");
        pod.destroy().unwrap();
    });
}

#[test]
fn sandboxes_can_be_created_and_destroyed_concurrently() {
    on_node(|node| {
        let listener = TcpListener::bind((GATEWAY, 0)).unwrap();
        let node_address = listener.local_addr().unwrap();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (20..28u8)
                .map(|n| {
                    // Threads started here inherit the node's network namespace.
                    scope.spawn(move || {
                        let sandbox = PodSandbox::create(&node.pod(n)).expect("sandbox");
                        let stream = sandbox.tcp_connect(node_address, Duration::from_secs(5)).expect("pod to node");
                        let local = stream.local_addr().unwrap();
                        drop(stream);
                        sandbox.destroy().unwrap();
                        local.ip()
                    })
                })
                .collect();
            let mut sources: Vec<_> = workers.into_iter().map(|worker| worker.join().unwrap()).collect();
            sources.sort();
            let expected: Vec<_> =
                (20..28u8).map(|n| std::net::IpAddr::V4(Ipv4Addr::new(10, 244, 0, 10 + n))).collect();
            assert_eq!(sources, expected, "each pod connects from its own address");
        });
        let left: Vec<_> =
            link_names().unwrap().into_iter().filter(|name| name.starts_with(&format!("{}v", node.prefix))).collect();
        assert!(left.is_empty(), "{left:?}");
    });
}
