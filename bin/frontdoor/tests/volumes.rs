//! Pods' service accounts and volumes, driven with the real kubectl inside a network namespace
//! made for each test: every namespace has its `default` ServiceAccount and `kube-root-ca.crt`;
//! a pod finds the token, CA and namespace where in-cluster clients look, so `kubectl` inside it
//! works with no configuration; ConfigMap, Secret and emptyDir volumes hold what they should, and
//! follow their ConfigMap, Secret and the pod's labels while the pod runs.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::time::Duration;

use frontdoor_testkit::{kubectl_dir, wait_until, Frontdoor};

const ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn start() -> Frontdoor {
    Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &[])
}

fn pod(name: &str, extra_spec: &str, mounts: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{extra_spec}  containers:
  - name: main
    image: busybox
    command: [sleep, '600']
{mounts}"
    )
}

fn wait_ready(fd: &Frontdoor, name: &str) {
    let ready = wait_until(Duration::from_secs(30), || {
        fd.jsonpath(&["pod", name], "{.status.conditions[?(@.type==\"Ready\")].status}") == "True"
    });
    assert!(ready, "{}", fd.kubectl_ok("1.33", &["describe", "pod", name]));
}

/// What `sh -c script` prints in the pod, and whether it succeeded.
fn run_in(fd: &Frontdoor, pod: &str, script: &str) -> (bool, String) {
    let out = fd.kubectl("1.33", &["exec", pod, "--", "sh", "-c", script]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn a_pod_is_an_in_cluster_client_of_the_api_server() {
    let fd = start();
    // Every namespace has the account and the CA, and gets them back when they are deleted.
    fd.kubectl_ok("1.33", &["create", "namespace", "team"]);
    let both_there = || {
        let names = fd.kubectl("1.33", &["-n", "team", "get", "sa/default", "cm/kube-root-ca.crt", "-o", "name"]);
        String::from_utf8_lossy(&names.stdout) == "serviceaccount/default\nconfigmap/kube-root-ca.crt\n"
    };
    assert!(wait_until(Duration::from_secs(10), both_there));
    let ca = std::fs::read_to_string(fd.ca_path()).unwrap();
    assert_eq!(fd.jsonpath(&["-n", "team", "cm", "kube-root-ca.crt"], "{.data.ca\\.crt}"), ca);
    fd.kubectl_ok("1.33", &["-n", "team", "delete", "sa/default", "cm/kube-root-ca.crt"]);
    assert!(wait_until(Duration::from_secs(10), both_there), "recreated");
    // A changed CA is put back.
    let patch = r#"{"data":{"ca.crt":"not a CA"}}"#;
    fd.kubectl_ok("1.33", &["-n", "team", "patch", "cm", "kube-root-ca.crt", "--type=merge", "-p", patch]);
    let restored = wait_until(Duration::from_secs(10), || {
        fd.jsonpath(&["-n", "team", "cm", "kube-root-ca.crt"], "{.data.ca\\.crt}") == ca
    });
    assert!(restored, "the CA is restored");

    fd.apply(&pod("client", "", ""));
    wait_ready(&fd, "client");
    assert_eq!(fd.jsonpath(&["pod", "client"], "{.spec.serviceAccountName}"), "default");
    let volume = fd.jsonpath(&["pod", "client"], "{.spec.containers[0].volumeMounts[0].name}");
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    // The token, CA and namespace, where client libraries read them.
    let (ok, files) = run_in(&fd, "client", &format!("cd {ACCOUNT_DIR} && cat namespace && echo && cat ca.crt"));
    assert!(ok, "{files}");
    assert_eq!(files, format!("default\n{ca}"));
    let (ok, token) = run_in(&fd, "client", &format!("cat {ACCOUNT_DIR}/token"));
    assert!(ok && token == fd.token(), "{token}");
    let (ok, refused) = run_in(&fd, "client", &format!("echo x > {ACCOUNT_DIR}/token"));
    assert!(!ok, "the volume is read-only: {refused}");
    // By name through cluster DNS and the data plane, trusting the mounted CA.
    let script = format!("curl -s --max-time 5 --cacert {ACCOUNT_DIR}/ca.crt https://kubernetes.default.svc/version");
    let (ok, version) = run_in(&fd, "client", &script);
    let version: serde_json::Value = serde_json::from_str(&version).unwrap_or_else(|_| panic!("{ok} {version}"));
    assert_eq!(version["major"], "1");
    // kubectl with no kubeconfig: its in-cluster configuration.
    let kubectl = kubectl_dir().join("kubectl.1.33");
    let script = format!("env -u KUBECONFIG HOME=/nonexistent {} get service kubernetes -o name", kubectl.display());
    let (ok, listed) = run_in(&fd, "client", &script);
    assert!(ok && listed == "service/kubernetes\n", "{listed}");

    // Opting out, and an account that does not exist.
    fd.apply(&pod("quiet", "  automountServiceAccountToken: false\n", ""));
    wait_ready(&fd, "quiet");
    assert_eq!(fd.jsonpath(&["pod", "quiet"], "{.spec.volumes}"), "");
    let (ok, _) = run_in(&fd, "quiet", &format!("test -e {ACCOUNT_DIR}/token"));
    assert!(!ok, "no token without automounting");
    let out =
        fd.kubectl_with_stdin("1.33", &["apply", "-f", "-"], Some(&pod("lost", "  serviceAccountName: ghost\n", "")));
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains(
            "pods \"lost\" is forbidden: error looking up service account default/ghost: serviceaccount \"ghost\" not found"
        ),
        "{error}"
    );
}

#[test]
fn config_map_secret_and_empty_dir_volumes_hold_their_files() {
    let fd = start();
    // Mount points are made on the host's filesystem (pods share it); this test's own.
    let root = tempfile::tempdir().unwrap();
    let at = |name: &str| root.path().join(name).display().to_string();
    fd.kubectl_ok("1.33", &["create", "configmap", "site", "--from-literal=index.html=<h1>from a ConfigMap</h1>"]);
    fd.kubectl_ok("1.33", &["create", "secret", "generic", "creds", "--from-literal=password=s3cret"]);
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: python:3
    command: [python3, -m, http.server, '8080', --directory, {site}]
    readinessProbe:
      tcpSocket:
        port: 8080
      periodSeconds: 1
    volumeMounts:
    - name: site
      mountPath: {site}
    - name: creds
      mountPath: {creds}
    - name: scratch
      mountPath: {scratch}
  volumes:
  - name: site
    configMap:
      name: site
  - name: creds
    secret:
      secretName: creds
      defaultMode: 0400
  - name: scratch
    emptyDir: {{}}
",
        site = at("site"),
        creds = at("creds"),
        scratch = at("scratch"),
    );
    fd.apply(&manifest);
    wait_ready(&fd, "web");
    let ip = fd.jsonpath(&["pod", "web"], "{.status.podIP}");
    let out =
        fd.command("curl").args(["-s", "--max-time", "5", &format!("http://{ip}:8080/index.html")]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "<h1>from a ConfigMap</h1>");
    // Each key is a link into `..data` (the kubelet's layout): its mode is the file's.
    let (ok, secret) = run_in(&fd, "web", &format!("stat -L -c %a {0}/password; cat {0}/password", at("creds")));
    assert!(ok && secret == "400\ns3cret", "{secret}");
    let (ok, written) = run_in(&fd, "web", &format!("echo kept > {0}/f && cat {0}/f", at("scratch")));
    assert!(ok && written == "kept\n", "{written}");
    let (ok, _) = run_in(&fd, "web", &format!("touch {}/new", at("site")));
    assert!(!ok, "a ConfigMap volume is read-only");
    // The host sees none of it.
    for dir in ["site", "creds", "scratch"] {
        assert_eq!(std::fs::read_dir(root.path().join(dir)).unwrap().count(), 0, "{dir} is empty on the host");
    }

    // A pod whose ConfigMap is not there yet waits, saying why, and starts once it is.
    let mounts = format!(
        "    volumeMounts:
    - name: conf
      mountPath: {conf}
  volumes:
  - name: conf
    configMap:
      name: not-yet
",
        conf = at("conf")
    );
    fd.apply(&pod("later", "", &mounts));
    let told = wait_until(Duration::from_secs(20), || {
        let events = fd
            .kubectl_ok("1.33", &["get", "events", "--field-selector", "involvedObject.name=later,reason=FailedMount"]);
        events.contains("MountVolume.SetUp failed for volume \"conf\" : configmap \"not-yet\" not found")
    });
    assert!(told, "{}", fd.kubectl_ok("1.33", &["describe", "pod", "later"]));
    assert_eq!(
        fd.jsonpath(&["pod", "later"], "{.status.containerStatuses[0].state.waiting.reason}"),
        "ContainerCreating"
    );
    fd.kubectl_ok("1.33", &["create", "configmap", "not-yet", "--from-literal=k=v"]);
    wait_ready(&fd, "later");
    let (ok, value) = run_in(&fd, "later", &format!("cat {}/k", at("conf")));
    assert!(ok && value == "v", "{value}");
}

#[test]
fn volumes_follow_their_sources_while_the_pod_runs() {
    let fd = Frontdoor::start_node(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--sync-frequency", "1s"]);
    let root = tempfile::tempdir().unwrap();
    let at = |name: &str| root.path().join(name).display().to_string();
    fd.kubectl_ok("1.33", &["create", "configmap", "app", "--from-literal=greeting=hello", "--from-literal=old=1"]);
    fd.kubectl_ok("1.33", &["create", "secret", "generic", "creds", "--from-literal=password=first"]);
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: app
  labels: {{tier: one}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sleep, '600']
    volumeMounts:
    - {{name: conf, mountPath: {conf}}}
    - {{name: creds, mountPath: {creds}}}
    - {{name: info, mountPath: {info}}}
  volumes:
  - name: conf
    configMap: {{name: app}}
  - name: creds
    secret: {{secretName: creds}}
  - name: info
    downwardAPI:
      items:
      - path: labels
        fieldRef: {{fieldPath: metadata.labels}}
",
        conf = at("conf"),
        creds = at("creds"),
        info = at("info"),
    );
    fd.apply(&manifest);
    wait_ready(&fd, "app");
    let read = |script: &str| run_in(&fd, "app", script);
    let files =
        format!("cat {0}/greeting; echo; cat {1}/password; echo; cat {2}/labels", at("conf"), at("creds"), at("info"));
    assert_eq!(read(&files), (true, "hello\nfirst\ntier=\"one\"".to_string()));
    // The kubelet's layout: each key a link into `..data`, itself a link to the current files.
    let (ok, layout) = read(&format!("cd {} && readlink greeting && readlink ..data", at("conf")));
    assert!(ok && layout.starts_with("..data/greeting\n..20"), "{layout}");
    let first_data = layout.lines().nth(1).unwrap().to_string();

    // Changed while the pod runs: the files follow within the sync period (1 s here).
    let patch = r#"{"data":{"greeting":"bonjour","new":"2","old":null}}"#;
    fd.kubectl_ok("1.33", &["patch", "configmap", "app", "--type=merge", "-p", patch]);
    fd.kubectl_ok(
        "1.33",
        &["patch", "secret", "creds", "--type=merge", "-p", r#"{"stringData":{"password":"second"}}"#],
    );
    fd.kubectl_ok("1.33", &["label", "pod", "app", "tier=two", "--overwrite"]);
    let expected = "bonjour\nsecond\ntier=\"two\"";
    let followed = wait_until(Duration::from_secs(20), || read(&files) == (true, expected.to_string()));
    assert!(followed, "{:?}", read(&files));
    let (ok, listed) = read(&format!("cd {} && ls && cat new && echo && readlink ..data", at("conf")));
    assert!(ok, "{listed}");
    let mut lines = listed.lines();
    assert_eq!((lines.next(), lines.next(), lines.next()), (Some("greeting"), Some("new"), Some("2")), "{listed}");
    assert_ne!(lines.next(), Some(first_data.as_str()), "..data points at a new directory");
    let (ok, refused) = read(&format!("touch {}/x", at("conf")));
    assert!(!ok, "still read-only after the update: {refused}");

    // A deleted ConfigMap leaves the files as they were (the kubelet keeps them too).
    fd.kubectl_ok("1.33", &["delete", "configmap", "app"]);
    fd.kubectl_ok(
        "1.33",
        &["patch", "secret", "creds", "--type=merge", "-p", r#"{"stringData":{"password":"third"}}"#],
    );
    let synced = wait_until(Duration::from_secs(20), || {
        read(&format!("cat {}/password", at("creds"))) == (true, "third".into())
    });
    assert!(synced, "the next sync came");
    assert_eq!(read(&format!("cat {}/greeting", at("conf"))), (true, "bonjour".to_string()));
}

/// The Kubernetes tutorial "Communicate Between Containers in the Same Pod Using a Shared Volume":
/// one emptyDir at a different path in each container, written by one and served by the other;
/// and a ConfigMap key mounted with `subPath` as one file of a directory that has others.
#[test]
fn containers_share_a_volume_and_a_sub_path_mounts_one_key() {
    let fd = start();
    let root = tempfile::tempdir().unwrap();
    let at = |name: &str| root.path().join(name).display().to_string();
    std::fs::create_dir_all(root.path().join("conf.d")).unwrap();
    std::fs::write(root.path().join("conf.d/other.conf"), "the host's own\n").unwrap();
    fd.kubectl_ok(
        "1.33",
        &["create", "configmap", "web", "--from-literal=site.conf=listen 8080;", "--from-literal=x=y"],
    );
    let manifest = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: two-containers
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: shared-data
    emptyDir: {{}}
  - name: web
    configMap: {{name: web}}
  containers:
  - name: server
    image: python:3
    command: [python3, -m, http.server, '8080', --directory, {html}]
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
    volumeMounts:
    - {{name: shared-data, mountPath: {html}}}
    - {{name: web, mountPath: {site_conf}, subPath: site.conf}}
  - name: writer
    image: debian
    command: [sh, -c, 'echo Hello from the debian container > {pod_data}/index.html && sleep 600']
    volumeMounts:
    - {{name: shared-data, mountPath: {pod_data}}}
",
        html = at("html"),
        pod_data = at("pod-data"),
        site_conf = at("conf.d/site.conf"),
    );
    fd.apply(&manifest);
    wait_ready(&fd, "two-containers");
    let ip = fd.jsonpath(&["pod", "two-containers"], "{.status.podIP}");
    let served = wait_until(Duration::from_secs(20), || {
        let out = fd.command("curl").args(["-s", "--max-time", "5", &format!("http://{ip}:8080/")]).output().unwrap();
        String::from_utf8_lossy(&out.stdout) == "Hello from the debian container\n"
    });
    assert!(served, "the server does not serve what the writer wrote");
    // One key as one file, beside the directory's other files; the other keys are not there.
    let script = format!("cd {} && ls && cat site.conf && echo && cat other.conf", at("conf.d"));
    let out = fd.kubectl("1.33", &["exec", "two-containers", "-c", "server", "--", "sh", "-c", &script]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "other.conf\nsite.conf\nlisten 8080;\nthe host's own\n");
    let out = fd.kubectl(
        "1.33",
        &["exec", "two-containers", "-c", "server", "--", "sh", "-c", &format!("echo x >> {}", at("conf.d/site.conf"))],
    );
    assert!(!out.status.success(), "a ConfigMap's key is read-only through its subPath too");
    // The host sees the empty file the key was bound on, and none of the shared files.
    assert_eq!(std::fs::read(root.path().join("conf.d/site.conf")).unwrap(), b"");
    assert_eq!(std::fs::read_dir(root.path().join("html")).unwrap().count(), 0);
}

/// A `hostPath` volume shows the node's own directory at the pod's path (read-only where the
/// mount says so); one whose type does not match what is there waits with the kubelet's message.
#[test]
fn host_path_volumes_bind_the_nodes_files() {
    let fd = start();
    let root = tempfile::tempdir().unwrap();
    let at = |name: &str| root.path().join(name).display().to_string();
    std::fs::create_dir(root.path().join("logs")).unwrap();
    std::fs::write(root.path().join("logs/node.log"), "from the node\n").unwrap();
    let mounts = format!(
        "    volumeMounts:
    - {{name: logs, mountPath: {seen}, readOnly: true}}
    - {{name: state, mountPath: {state_in_pod}}}
  volumes:
  - name: logs
    hostPath: {{path: {logs}, type: Directory}}
  - name: state
    hostPath: {{path: {state}, type: DirectoryOrCreate}}
",
        seen = at("seen"),
        logs = at("logs"),
        state = at("state"),
        state_in_pod = at("state-in-pod"),
    );
    fd.apply(&pod("collector", "", &mounts));
    wait_ready(&fd, "collector");
    assert_eq!(run_in(&fd, "collector", &format!("cat {}/node.log", at("seen"))), (true, "from the node\n".into()));
    let (ok, _) = run_in(&fd, "collector", &format!("touch {}/x", at("seen")));
    assert!(!ok, "read-only where the mount says so");
    let (ok, out) = run_in(&fd, "collector", &format!("echo kept > {}/f", at("state-in-pod")));
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("state/f")).unwrap(),
        "kept\n",
        "written to the node's directory"
    );

    // The wrong type: the pod waits, saying why, as the kubelet's FailedMount.
    let wrong = format!(
        "    volumeMounts: [{{name: f, mountPath: /in-pod}}]
  volumes:
  - name: f
    hostPath: {{path: {log}, type: Directory}}
",
        log = at("logs/node.log")
    );
    fd.apply(&pod("wrong", "", &wrong));
    let told = wait_until(Duration::from_secs(20), || {
        let events = fd
            .kubectl_ok("1.33", &["get", "events", "--field-selector", "involvedObject.name=wrong,reason=FailedMount"]);
        events.contains(&format!("hostPath type check failed: {} is not a directory", at("logs/node.log")))
    });
    assert!(told, "{}", fd.kubectl_ok("1.33", &["describe", "pod", "wrong"]));
}
