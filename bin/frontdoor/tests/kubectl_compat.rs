//! The real kubectl (1.27, 1.32, 1.33) against the real `frontdoor up`: every command a user of
//! the seed articles types must behave and print as on a real cluster.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::time::Duration;

use frontdoor_testkit::{manifest, wait_until, Frontdoor, KUBECTL_VERSIONS};

fn start() -> Frontdoor {
    Frontdoor::start(env!("CARGO_BIN_EXE_frontdoor").as_ref())
}

fn path(name: &str) -> String {
    manifest(name).to_string_lossy().into_owned()
}

const SEEDS: &[&str] = &["seed0-service-types.yaml", "seed2-gke-services.yaml", "seed3-devgains.yaml"];

#[test]
fn seed_manifests_apply_then_reapply_unchanged() {
    for version in KUBECTL_VERSIONS {
        // Two seeds both ask for NodePort 30080, so each seed gets a cluster of its own (the
        // clash itself is tested in `services.rs`).
        for seed in SEEDS {
            let fd = start();
            let out = fd.kubectl_ok(version, &["apply", "-f", &path(seed)]);
            assert!(out.lines().all(|l| l.ends_with(" created")), "kubectl {version} first apply of {seed}: {out}");
            let again = fd.kubectl_ok(version, &["apply", "-f", &path(seed)]);
            assert!(
                again.lines().all(|l| l.ends_with(" unchanged")),
                "kubectl {version} second apply of {seed}: {again}"
            );
            let services = fd.kubectl_ok(version, &["get", "svc"]);
            let header: Vec<&str> = services.lines().next().unwrap().split_whitespace().collect();
            assert_eq!(header, ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], "kubectl {version}");
            let wide = fd.kubectl_ok(version, &["get", "svc", "-o", "wide"]);
            assert!(wide.lines().next().unwrap().ends_with("SELECTOR"), "{wide}");
            if *seed == "seed3-devgains.yaml" {
                let ingress = fd.kubectl_ok(version, &["get", "ingress"]);
                let ingress_row: Vec<&str> = ingress.lines().nth(1).unwrap_or("").split_whitespace().collect();
                assert_eq!(ingress_row[..4], ["web", "<none>", "app.example.com", "80"], "{ingress}");
            }
        }
    }
}

#[test]
fn output_formats_label_annotate_edit_delete() {
    for version in KUBECTL_VERSIONS {
        let fd = start();
        fd.kubectl_ok(version, &["apply", "-f", &path("seed3-devgains.yaml")]);
        let yaml = fd.kubectl_ok(version, &["get", "svc", "api", "-o", "yaml"]);
        assert!(
            yaml.contains("kind: Service") && yaml.contains("targetPort: 8080") && yaml.contains("uid: "),
            "{yaml}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&fd.kubectl_ok(version, &["get", "svc", "api", "-o", "json"])).unwrap();
        assert_eq!(json["spec"]["ports"][0]["port"], 80);
        // The three seed Services and the API server's own `kubernetes` Service.
        assert_eq!(fd.kubectl_ok(version, &["get", "svc", "-o", "name"]).lines().count(), 4);
        assert_eq!(fd.kubectl_ok(version, &["label", "svc", "api", "tier=backend"]).trim(), "service/api labeled");
        // kubectl 1.27 prints "annotate", later versions "annotated".
        assert!(fd
            .kubectl_ok(version, &["annotate", "svc", "api", "owner=team-a"])
            .starts_with("service/api annotate"));
        let labels = fd.kubectl_ok(version, &["get", "svc", "-l", "tier=backend", "-o", "name"]);
        assert_eq!(labels.trim(), "service/api");
        let editor = [("KUBE_EDITOR", "sed -i s/targetPort:\\ 8080/targetPort:\\ 9191/")];
        let edited = fd.kubectl_full(version, &["edit", "svc", "api"], None, &editor);
        assert!(edited.status.success(), "edit: {}", String::from_utf8_lossy(&edited.stderr));
        let port = fd.kubectl_ok(version, &["get", "svc", "api", "-o", "jsonpath={.spec.ports[0].targetPort}"]);
        assert_eq!(port, "9191");
        assert_eq!(fd.kubectl_ok(version, &["delete", "svc", "api"]).trim(), "service \"api\" deleted");
        let missing = fd.kubectl_err(version, &["get", "svc", "api"]);
        assert!(missing.contains("Error from server (NotFound): services \"api\" not found"), "{missing}");
    }
}

#[test]
fn diff_reports_changes_and_only_changes() {
    for version in KUBECTL_VERSIONS {
        let fd = start();
        let seed = path("seed3-devgains.yaml");
        fd.kubectl_ok(version, &["apply", "-f", &seed]);
        let same = fd.kubectl(version, &["diff", "-f", &seed]);
        assert_eq!(same.status.code(), Some(0), "no diff expected: {}", String::from_utf8_lossy(&same.stdout));
        let changed = std::fs::read_to_string(&seed).unwrap().replace("targetPort: 8080", "targetPort: 9090");
        let file = fd.data_dir().join("changed.yaml");
        std::fs::write(&file, changed).unwrap();
        let diff = fd.kubectl(version, &["diff", "-f", file.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&diff.stdout);
        assert_eq!(diff.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&diff.stderr));
        assert!(text.contains("-    targetPort: 8080") && text.contains("+    targetPort: 9090"), "{text}");
        assert!(diff.stderr.is_empty(), "diff warned: {}", String::from_utf8_lossy(&diff.stderr));
        // The dry run changed nothing.
        assert_eq!(
            fd.kubectl_ok(version, &["get", "svc", "api", "-o", "jsonpath={.spec.ports[0].targetPort}"]),
            "8080"
        );
    }
}

#[test]
fn get_watch_prints_each_change() {
    for version in KUBECTL_VERSIONS {
        let fd = start();
        let mut watch = std::process::Command::new(frontdoor_testkit::kubectl_dir().join(format!("kubectl.{version}")))
            .args(["get", "svc", "-w"])
            .env("KUBECONFIG", fd.kubeconfig())
            .env("HOME", fd.data_dir())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = watch.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        // kubectl has listed once it prints the `kubernetes` Service; it watches from that list's
        // resourceVersion, so every later change reaches it.
        let mut seen = Vec::new();
        let listed = wait_until(Duration::from_secs(10), || {
            while let Ok(line) = receiver.try_recv() {
                seen.push(line);
            }
            seen.iter().any(|l| l.starts_with("kubernetes "))
        });
        assert!(listed, "kubectl {version} get -w printed: {seen:?}");
        fd.kubectl_ok(version, &["apply", "-f", &path("seed0-service-types.yaml")]);
        let found = wait_until(Duration::from_secs(10), || {
            while let Ok(line) = receiver.try_recv() {
                seen.push(line);
            }
            seen.iter().any(|l| l.starts_with("external-db "))
        });
        let _ = watch.kill();
        let _ = watch.wait();
        assert!(found, "kubectl {version} get -w printed: {seen:?}");
        assert!(seen.iter().any(|l| l.starts_with("frontend-service") && l.contains("80:30007/TCP")), "{seen:?}");
    }
}

#[test]
fn discovery_get_all_and_explain() {
    for version in KUBECTL_VERSIONS {
        let fd = start();
        fd.kubectl_ok(version, &["apply", "-f", &path("seed3-devgains.yaml")]);
        let resources = fd.kubectl_ok(version, &["api-resources"]);
        for expected in ["services ", "svc", "deployments", "endpointslices", "ingresses", "leases"] {
            assert!(resources.contains(expected), "kubectl {version} api-resources lacks {expected}: {resources}");
        }
        let all = fd.kubectl_ok(version, &["get", "all"]);
        assert!(all.contains("service/api ") && all.contains("service/api-public "), "{all}");
        let explain = fd.kubectl_ok(version, &["explain", "service.spec"]);
        assert!(explain.contains("Spec defines the behavior of a service"), "kubectl {version} explain: {explain}");
        let ports = fd.kubectl_ok(version, &["explain", "deployment.spec.template.spec.containers.ports"]);
        assert!(ports.contains("containerPort"), "{ports}");
    }
}

#[test]
fn create_commands() {
    for version in KUBECTL_VERSIONS {
        let fd = start();
        assert_eq!(fd.kubectl_ok(version, &["create", "namespace", "shop"]).trim(), "namespace/shop created");
        let cm = fd.kubectl_ok(version, &["create", "configmap", "cfg", "-n", "shop", "--from-literal=a=b"]);
        assert_eq!(cm.trim(), "configmap/cfg created");
        let deploy = fd.kubectl_ok(
            version,
            &["create", "deployment", "web", "-n", "shop", "--image=nginx", "--replicas=3", "--port=80"],
        );
        assert_eq!(deploy.trim(), "deployment.apps/web created");
        let svc = fd.kubectl_ok(
            version,
            &["create", "service", "nodeport", "web", "-n", "shop", "--tcp=80:8080", "--node-port=30080"],
        );
        assert_eq!(svc.trim(), "service/web created");
        assert_eq!(fd.kubectl_ok(version, &["get", "cm", "cfg", "-n", "shop", "-o", "jsonpath={.data.a}"]), "b");
        let jsonpath = "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image}";
        assert_eq!(fd.kubectl_ok(version, &["get", "deploy", "web", "-n", "shop", "-o", jsonpath]), "3 nginx");
        let svc = fd.kubectl_ok(version, &["get", "svc", "web", "-n", "shop"]);
        assert!(svc.contains("80:30080/TCP"), "{svc}");
    }
}

#[test]
fn bad_input_gets_kubernetes_errors_and_stores_nothing() {
    let version = "1.32";
    let fd = start();
    let stderr_of = |args: &[&str], input: &str| {
        let out = fd.kubectl_with_stdin(version, args, Some(input));
        assert!(!out.status.success(), "{args:?} succeeded with {input}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let bad_name = "apiVersion: v1\nkind: Service\nmetadata:\n  name: Bad_Name\nspec:\n  ports:\n  - port: 80\n";
    let err = stderr_of(&["apply", "-f", "-"], bad_name);
    assert!(
        err.contains("The Service \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a DNS-1035 label must consist of lower case alphanumeric characters"),
        "{err}"
    );
    let unknown = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  portz:\n  - port: 80\n";
    let err = stderr_of(&["apply", "-f", "-"], unknown);
    assert!(err.contains("strict decoding error: unknown field \"spec.portz\""), "{err}");
    let wrong_type = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: eighty\n";
    let err = stderr_of(&["apply", "--validate=false", "-f", "-"], wrong_type);
    assert!(err.contains("BadRequest") && err.contains("cannot be handled as a Service"), "{err}");
    stderr_of(&["apply", "-f", "-"], "apiVersion: v1\nkind: Service\nmetadata: [\n");
    let bad_label = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels:\n    app: -web-\n";
    let err = stderr_of(&["apply", "-f", "-"], bad_label);
    assert!(err.contains("The ConfigMap \"cfg\" is invalid: metadata.labels: Invalid value: \"-web-\": a valid label must be an empty string or consist of alphanumeric characters"), "{err}");

    // Raw bodies the CLI would never send.
    let (code, body) = fd.curl("POST", "/api/v1/namespaces/default/services", "application/json", Some("{not json"));
    assert_eq!(code, 400, "{body}");
    let garbage = fd.data_dir().join("garbage.pb");
    std::fs::write(&garbage, b"k8s\0\n\x02garbage").unwrap();
    let (code, body) = fd.curl(
        "POST",
        "/api/v1/namespaces/default/services",
        "application/vnd.kubernetes.protobuf",
        Some(&format!("@{}", garbage.display())),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("protobuf"), "{body}");
    assert!(body.contains("\"kind\":\"Status\"") && body.contains("\"reason\":\"BadRequest\""), "{body}");
    let wrong_kind = r#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#;
    let (code, body) = fd.curl("POST", "/api/v1/namespaces/default/configmaps", "application/json", Some(wrong_kind));
    assert_eq!(code, 400, "{body}");
    let big = format!(r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#, "x".repeat(4 * 1024 * 1024));
    let file = fd.data_dir().join("big.json");
    std::fs::write(&file, big).unwrap();
    let (code, _) = fd.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        Some(&format!("@{}", file.display())),
    );
    assert_eq!(code, 413);
    let names_in = |path: &str| -> Vec<String> {
        let (code, body) = fd.curl("GET", path, "", None);
        assert_eq!(code, 200, "{body}");
        let list: serde_json::Value = serde_json::from_str(&body).unwrap();
        list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names_in("/api/v1/namespaces/default/services"), ["kubernetes"], "nothing may have been stored");
    // The namespace's root CA alone, as on every cluster.
    let config_maps = names_in("/api/v1/namespaces/default/configmaps");
    assert_eq!(config_maps, ["kube-root-ca.crt"], "nothing may have been stored");

    // Optimistic concurrency: an update from a stale read is refused with upstream's message.
    fd.kubectl_ok(version, &["apply", "-f", &path("seed3-devgains.yaml")]);
    let stale = fd.kubectl_ok(version, &["get", "svc", "api", "-o", "json"]);
    fd.kubectl_ok(version, &["label", "svc", "api", "x=y"]);
    let err = stderr_of(&["replace", "-f", "-"], &stale);
    assert!(
        err.contains("Operation cannot be fulfilled on services \"api\": the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );
    // The server is unharmed.
    assert!(fd.kubectl_ok(version, &["get", "svc", "api"]).contains("ClusterIP"));
}

#[test]
fn namespace_deletion_removes_its_contents_then_itself() {
    let version = "1.32";
    let fd = start();
    fd.kubectl_ok("1.27", &["create", "namespace", "tmp"]);
    fd.kubectl_ok(version, &["apply", "-n", "tmp", "-f", &path("seed3-devgains.yaml")]);
    fd.kubectl_ok(version, &["delete", "namespace", "tmp", "--wait=true", "--timeout=20s"]);
    let gone = fd.kubectl_err(version, &["get", "namespace", "tmp"]);
    assert!(gone.contains("namespaces \"tmp\" not found"), "{gone}");
    let (_, body) = fd.curl("GET", "/api/v1/namespaces/tmp/services", "", None);
    assert!(body.contains("\"items\":[]"), "{body}");
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: nosuch\n";
    let out = fd.kubectl_with_stdin(version, &["apply", "-f", "-"], Some(cm));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("namespaces \"nosuch\" not found"), "{err}");
}

fn configmap_owned_by(name: &str, owner: &str, uid: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n"
    )
}

#[test]
fn owner_references_are_garbage_collected() {
    let version = "1.32";
    let fd = start();
    let owner = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owner\n";
    assert!(fd.kubectl_with_stdin(version, &["apply", "-f", "-"], Some(owner)).status.success());
    let uid = fd.kubectl_ok(version, &["get", "cm", "owner", "-o", "jsonpath={.metadata.uid}"]);
    let out =
        fd.kubectl_with_stdin(version, &["apply", "-f", "-"], Some(&configmap_owned_by("dependent", "owner", &uid)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    fd.kubectl_ok(version, &["delete", "cm", "owner"]);
    let collected =
        wait_until(Duration::from_secs(10), || !fd.kubectl(version, &["get", "cm", "dependent"]).status.success());
    assert!(collected, "the dependent outlived its owner");
    // One written after its owner was gone (as by a controller whose cache lags) goes too.
    let out = fd.kubectl_with_stdin(version, &["apply", "-f", "-"], Some(&configmap_owned_by("late", "owner", &uid)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let collected =
        wait_until(Duration::from_secs(10), || !fd.kubectl(version, &["get", "cm", "late"]).status.success());
    assert!(collected, "a dependent of an owner already gone was kept");

    // Orphan propagation keeps the dependent and drops its owner reference.
    let owner2 = owner.replace("owner", "owner2");
    assert!(fd.kubectl_with_stdin(version, &["apply", "-f", "-"], Some(&owner2)).status.success());
    let uid = fd.kubectl_ok(version, &["get", "cm", "owner2", "-o", "jsonpath={.metadata.uid}"]);
    assert!(fd
        .kubectl_with_stdin(version, &["apply", "-f", "-"], Some(&configmap_owned_by("dependent2", "owner2", &uid)))
        .status
        .success());
    fd.kubectl_ok(version, &["delete", "cm", "owner2", "--cascade=orphan"]);
    assert!(wait_until(Duration::from_secs(10), || !fd.kubectl(version, &["get", "cm", "owner2"]).status.success()));
    let refs = fd.kubectl_ok(version, &["get", "cm", "dependent2", "-o", "jsonpath={.metadata.ownerReferences}"]);
    assert_eq!(refs, "");
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    let mut fd = start();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (address, token, ca) = (fd.address.clone(), fd.token(), fd.ca_path());
    // A stream of writes, one at a time, recording which the server acknowledged.
    let acknowledged_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = acknowledged_so_far.clone();
    let writer = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        let mut attempted = 0;
        for i in 0.. {
            if stopped.try_recv().is_ok() {
                break;
            }
            attempted = i;
            let body = format!(r#"{{"metadata":{{"name":"cm-{i}"}},"data":{{"i":"{i}"}}}}"#);
            let out = std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "--cacert"])
                .arg(&ca)
                .args([
                    "-H",
                    &format!("Authorization: Bearer {token}"),
                    "-H",
                    "Content-Type: application/json",
                    "--data-binary",
                    &body,
                ])
                .arg(format!("https://{address}/api/v1/namespaces/default/configmaps"))
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout) == "201" {
                acknowledged.push(i);
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        (acknowledged, attempted)
    });
    let enough =
        || fd.curl("GET", "/api/v1/namespaces/default/configmaps", "", None).1.matches("\"name\":\"cm-").count() >= 30;
    assert!(wait_until(Duration::from_secs(30), enough));
    let before_restart = acknowledged_so_far.load(std::sync::atomic::Ordering::SeqCst);
    fd.kill_and_restart();
    // Some writes reach the restarted server too, then the writer stops.
    let resumed = wait_until(Duration::from_secs(30), || {
        acknowledged_so_far.load(std::sync::atomic::Ordering::SeqCst) > before_restart
    });
    assert!(resumed, "no write was acknowledged after the restart");
    let _ = stop.send(());
    let (acknowledged, attempted) = writer.join().unwrap();
    assert!(acknowledged.len() >= 30, "only {} writes were acknowledged", acknowledged.len());
    let (_, body) = fd.curl("GET", "/api/v1/namespaces/default/configmaps", "", None);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let stored: std::collections::BTreeSet<usize> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str()?.strip_prefix("cm-")?.parse().ok())
        .collect();
    for i in &acknowledged {
        assert!(stored.contains(i), "acknowledged cm-{i} was lost");
    }
    assert!(stored.iter().all(|i| *i <= attempted), "an object appeared that was never sent: {stored:?}");
}

#[test]
fn starts_fast_and_serves_health() {
    let fd = start();
    assert!(fd.startup < Duration::from_secs(2), "startup took {:?}", fd.startup);
    for path in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(fd.curl("GET", path, "", None), (200, "ok".to_string()));
    }
    let (code, body) = fd.curl("GET", "/version", "", None);
    assert_eq!(code, 200);
    assert!(body.contains("\"minor\":\"33\""), "{body}");
    // No token, no access.
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(fd.ca_path())
        .arg(format!("https://{}/api/v1/namespaces", fd.address))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
}
