//! API machinery semantics through the real binary: paging, watch resume and expiry, dry runs,
//! field validation warnings, subresources, server-side apply, collections.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::time::Duration;

use frontdoor_testkit::{wait_until, Frontdoor};
use serde_json::Value;

fn start() -> Frontdoor {
    Frontdoor::start(env!("CARGO_BIN_EXE_frontdoor").as_ref())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn create_configmaps(fd: &Frontdoor, count: usize) {
    let items: Vec<Value> = (0..count)
        .map(|i| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i:04}")}, "data": {"i": i.to_string()}}))
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    let out = fd.kubectl_with_stdin("1.32", &["create", "-f", "-"], Some(&list));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn lists_page_with_limit_and_continue() {
    let fd = start();
    create_configmaps(&fd, 1203);
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let path = format!("/api/v1/namespaces/default/configmaps?limit=500&continue={token}");
        let (code, body) = fd.curl("GET", &path, "", None);
        assert_eq!(code, 200, "{body}");
        let page = json(&body);
        pages += 1;
        names.extend(
            page["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() => {
                assert!(page["metadata"]["remainingItemCount"].as_u64().unwrap() > 0);
                token = next.to_string();
            }
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    // With the namespace's own root CA ConfigMap, as on every cluster.
    let mut expected: Vec<String> = (0..1203).map(|i| format!("cm-{i:04}")).collect();
    expected.push("kube-root-ca.crt".into());
    assert!(names == expected, "{} names, {:?} at the end", names.len(), names.last());
    // kubectl pages transparently (limit=500) and prints every object once.
    let printed = fd.kubectl_ok("1.32", &["get", "configmaps", "-o", "name"]);
    assert_eq!(printed.lines().filter(|l| l.starts_with("configmap/cm-")).count(), 1203);
    let (code, body) = fd.curl("GET", "/api/v1/namespaces/default/configmaps?limit=5&continue=zz", "", None);
    assert_eq!(code, 400, "{body}");
    // resourceVersionMatch=Exact of an older revision is gone; a future one is refused.
    let (_, body) = fd.curl("GET", "/api/v1/namespaces/default/configmaps?limit=1", "", None);
    let rv: u64 = json(&body)["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    let (code, _) = fd.curl(
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact"),
        "",
        None,
    );
    assert_eq!(code, 200);
    let (code, _) = fd.curl(
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?resourceVersion={}&resourceVersionMatch=Exact", rv - 1),
        "",
        None,
    );
    assert_eq!(code, 410);
    let (code, _) = fd.curl(
        "GET",
        &format!(
            "/api/v1/namespaces/default/configmaps?resourceVersion={}&resourceVersionMatch=NotOlderThan",
            rv + 100
        ),
        "",
        None,
    );
    assert_eq!(code, 504);
}

#[test]
fn watch_resumes_from_a_resource_version_and_expires_outside_the_window() {
    let fd = start();
    let (_, body) = fd.curl("GET", "/api/v1/namespaces/default/configmaps", "", None);
    let start_rv: u64 = json(&body)["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    create_configmaps(&fd, 3);
    // Watch from before the creates: the three ADDED events replay, then the stream times out.
    let (code, body) = fd.curl(
        "GET",
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={start_rv}&timeoutSeconds=1"),
        "",
        None,
    );
    assert_eq!(code, 200);
    let events: Vec<Value> = body.lines().map(json).collect();
    assert_eq!(events.len(), 3, "{body}");
    assert!(events.iter().all(|e| e["type"] == "ADDED"));
    // With selectors, an object that stops matching arrives as DELETED.
    let (_, body) = fd.curl("GET", "/api/v1/namespaces/default/configmaps", "", None);
    let rv = json(&body)["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    fd.kubectl_ok("1.32", &["label", "cm", "cm-0001", "team=a"]);
    fd.kubectl_ok("1.32", &["label", "cm", "cm-0001", "team=b", "--overwrite"]);
    let (_, body) = fd.curl("GET", &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&labelSelector=team%3Da&timeoutSeconds=1"), "", None);
    let types: Vec<String> = body.lines().map(|l| json(l)["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, ["ADDED", "DELETED"], "{body}");
    // Too old: an ERROR event with a 410 Expired Status, as upstream.
    let mut small = fd;
    drop(small.kubectl_ok("1.32", &["get", "ns"]));
    small.kill_and_restart();
    let (_, body) = small.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=1&timeoutSeconds=1",
        "",
        None,
    );
    let event = json(body.lines().next().unwrap_or("null"));
    assert_eq!(event["type"], "ERROR", "{body}");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
}

#[test]
fn bookmarks_arrive_when_asked_for() {
    let fd = start();
    let (_, body) = fd.curl("GET", "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1", "", None);
    let bookmark = json(body.lines().last().unwrap_or("null"));
    assert_eq!(bookmark["type"], "BOOKMARK", "{body}");
    assert_eq!(bookmark["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}

#[test]
fn dry_run_and_field_validation_warn() {
    let fd = start();
    let service = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}],"colour":"blue"}}"#;
    let (code, body) = fd.curl(
        "POST",
        "/api/v1/namespaces/default/services?dryRun=All&fieldValidation=Ignore",
        "application/json",
        Some(service),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(fd.curl("GET", "/api/v1/namespaces/default/services/web", "", None).0, 404, "a dry run stores nothing");
    let out = fd.kubectl_with_stdin(
        "1.32",
        &["apply", "--validate=warn", "-f", "-"],
        Some(&service.replace(r#""colour":"blue""#, r#""colour":"blue","type":"ClusterIP""#)),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("unknown field \"spec.colour\""), "{stderr}");
}

#[test]
fn scale_status_and_server_side_apply() {
    // No controllers: this checks the API's status and scale subresources, and the Deployment
    // controller would write status itself.
    let fd = Frontdoor::start_bare(env!("CARGO_BIN_EXE_frontdoor").as_ref());
    fd.kubectl_ok("1.32", &["create", "deployment", "web", "--image=nginx", "--replicas=2"]);
    assert_eq!(
        fd.kubectl_ok("1.32", &["scale", "deployment", "web", "--replicas=5"]).trim(),
        "deployment.apps/web scaled"
    );
    let replicas =
        fd.kubectl_ok("1.32", &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"]);
    assert_eq!(replicas, "5 2");
    let (code, body) = fd.curl("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale", "", None);
    assert_eq!(code, 200);
    assert_eq!(json(&body)["spec"]["replicas"], 5);
    assert_eq!(json(&body)["kind"], "Scale");
    // Status is written only through the status subresource.
    let patch = r#"{"status":{"replicas":7}}"#;
    fd.curl("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", "application/merge-patch+json", Some(patch));
    assert_eq!(fd.kubectl_ok("1.32", &["get", "deploy", "web", "-o", "jsonpath={.status.replicas}"]), "");
    let (code, _) = fd.curl(
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web/status",
        "application/merge-patch+json",
        Some(patch),
    );
    assert_eq!(code, 200);
    assert_eq!(
        fd.kubectl_ok("1.32", &["get", "deploy", "web", "-o", "jsonpath={.status.replicas} {.metadata.generation}"]),
        "7 2"
    );
    // Server-side apply creates, then updates the fields it names.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: \"1\"\n";
    let out = fd.kubectl_with_stdin("1.32", &["apply", "--server-side", "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = fd.kubectl_with_stdin(
        "1.32",
        &["apply", "--server-side", "-f", "-"],
        Some(&manifest.replace("\"1\"", "\"2\"")),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fd.kubectl_ok("1.32", &["get", "cm", "ssa", "-o", "jsonpath={.data.a}"]), "2");
}

#[test]
fn collections_generate_name_and_finalizers() {
    let fd = start();
    let generated = r#"{"metadata":{"generateName":"job-"},"data":{}}"#;
    let (code, body) = fd.curl("POST", "/api/v1/namespaces/default/configmaps", "application/json", Some(generated));
    assert_eq!(code, 201);
    let name = json(&body)["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("job-") && name.len() == 9, "{name}");
    assert_eq!(json(&body)["metadata"]["generateName"], "job-", "the prefix is kept, as upstream");
    create_configmaps(&fd, 4);
    fd.kubectl_ok("1.32", &["label", "cm", "cm-0000", "cm-0001", "group=x"]);
    let (code, _) = fd.curl("DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=group%3Dx", "", None);
    assert_eq!(code, 200);
    let left = fd.kubectl_ok("1.32", &["get", "cm", "-o", "name"]);
    assert!(!left.contains("cm-0000") && !left.contains("cm-0001") && left.contains("cm-0002"), "{left}");
    // A finalizer holds deletion until it is removed.
    let held = r#"{"metadata":{"name":"held","finalizers":["example.com/hold"]}}"#;
    fd.curl("POST", "/api/v1/namespaces/default/configmaps", "application/json", Some(held));
    fd.kubectl_ok("1.32", &["delete", "cm", "held", "--wait=false"]);
    let stamp = fd.kubectl_ok("1.32", &["get", "cm", "held", "-o", "jsonpath={.metadata.deletionTimestamp}"]);
    assert!(!stamp.is_empty());
    fd.kubectl_ok("1.32", &["patch", "cm", "held", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
    assert!(wait_until(Duration::from_secs(5), || !fd.kubectl("1.32", &["get", "cm", "held"]).status.success()));
}

#[test]
fn a_pods_spec_changes_only_where_upstream_allows() {
    let fd = start();
    for version in frontdoor_testkit::KUBECTL_VERSIONS {
        let name = format!("immutable-{}", version.replace('.', "-"));
        fd.kubectl_ok(version, &["run", &name, "--image=nginx:1.25", "--port=80", "--command", "--", "sleep", "60"]);
        // Images and labels may change.
        fd.kubectl_ok(version, &["set", "image", &format!("pod/{name}"), &format!("{name}=nginx:1.27")]);
        fd.kubectl_ok(version, &["label", "pod", &name, "tier=web"]);
        let image = fd.kubectl_ok(
            version,
            &["get", "pod", &name, "-o", "jsonpath={.spec.containers[0].image} {.metadata.labels.tier}"],
        );
        assert_eq!(image, "nginx:1.27 web");
        // Anything else in the spec is refused as upstream refuses it, naming what changed.
        let err = fd.kubectl_err(version, &["set", "env", &format!("pod/{name}"), "COLOUR=blue"]);
        assert!(
            err.contains(&format!("Pod \"{name}\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`")),
            "{err}"
        );
        assert!(err.contains("containers[0].env"), "{err}");
        let patch =
            r#"{"spec":{"containers":[{"name":"NAME","ports":[{"containerPort":8080}]}]}}"#.replace("NAME", &name);
        let err = fd.kubectl_err(version, &["patch", "pod", &name, "-p", &patch]);
        assert!(err.contains("spec: Forbidden: pod updates may not change fields other than"), "{err}");
        let env = fd.kubectl_ok(
            version,
            &[
                "get",
                "pod",
                &name,
                "-o",
                "jsonpath={.spec.containers[0].env}{.spec.containers[0].ports[*].containerPort}",
            ],
        );
        assert_eq!(env, "80", "nothing refused was stored");
    }
}

#[test]
fn controller_revisions_are_served_with_upstreams_rules() {
    let fd = start();
    let revision = r#"{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"web-abc","labels":{"app":"web"}},"data":{"spec":{"template":{"$patch":"replace"}}},"revision":1}"#;
    for version in frontdoor_testkit::KUBECTL_VERSIONS {
        let out = fd.kubectl_with_stdin(version, &["apply", "-f", "-"], Some(revision));
        assert!(out.status.success(), "{version}: {}", String::from_utf8_lossy(&out.stderr));
        let listed = fd.kubectl_ok(version, &["get", "controllerrevisions", "-l", "app=web"]);
        let cells: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(cells[0], ["NAME", "CONTROLLER", "REVISION", "AGE"], "{listed}");
        assert_eq!(cells[1][..3], ["web-abc", "<none>", "1"], "{listed}");
        let generation =
            fd.kubectl_ok(version, &["get", "controllerrevision", "web-abc", "-o", "jsonpath={.metadata.generation}"]);
        assert_eq!(generation, "", "upstream's strategy sets no generation");
        // The number may change (a rollback renumbers), the recorded state may not.
        fd.kubectl_ok(version, &["patch", "controllerrevision", "web-abc", "--type=merge", "-p", r#"{"revision":2}"#]);
        let err = fd.kubectl_err(
            version,
            &["patch", "controllerrevision", "web-abc", "--type=merge", "-p", r#"{"data":{"spec":{"x":1}}}"#],
        );
        assert!(
            err.contains("The ControllerRevision \"web-abc\" is invalid: data: Invalid value:")
                && err.contains("field is immutable"),
            "{version}: {err}"
        );
        let err = fd.kubectl_with_stdin(
            version,
            &["create", "-f", "-"],
            Some(r#"{"apiVersion":"apps/v1","kind":"ControllerRevision","metadata":{"name":"empty"},"revision":-1}"#),
        );
        let err = String::from_utf8_lossy(&err.stderr);
        assert!(
            err.contains("data: Required value: data is mandatory")
                && err.contains("revision: Invalid value: -1: must be greater than or equal to 0"),
            "{version}: {err}"
        );
        fd.kubectl_ok(version, &["delete", "controllerrevision", "web-abc"]);
    }
}

/// Events go `--event-ttl` after their last write, and nothing is written to make that happen:
/// a watch from before the create sees the Event added and then deleted, nothing between.
#[test]
fn events_expire_after_the_ttl_without_being_rewritten() {
    let fd = Frontdoor::start_with(env!("CARGO_BIN_EXE_frontdoor").as_ref(), &["--event-ttl", "3s"]);
    let (_, body) = fd.curl("GET", "/api/v1/namespaces/default/events", "", None);
    let start_rv = json(&body)["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let event = serde_json::json!({
        "metadata": {"name": "short-lived"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Test", "message": "expires", "type": "Normal",
        "firstTimestamp": chrono_now(), "lastTimestamp": chrono_now(), "count": 1,
    });
    let created = std::time::Instant::now();
    let (code, body) =
        fd.curl("POST", "/api/v1/namespaces/default/events", "application/json", Some(&event.to_string()));
    assert_eq!(code, 201, "{body}");
    let gone = wait_until(Duration::from_secs(30), || {
        fd.curl("GET", "/api/v1/namespaces/default/events/short-lived", "", None).0 == 404
    });
    let lived = created.elapsed();
    assert!(gone, "the Event was never expired");
    assert!(lived >= Duration::from_millis(2900), "expired after {lived:?}, before its TTL");
    let (_, body) = fd.curl(
        "GET",
        &format!("/api/v1/namespaces/default/events?watch=true&resourceVersion={start_rv}&timeoutSeconds=1"),
        "",
        None,
    );
    let types: Vec<String> = body.lines().map(|l| json(l)["type"].as_str().unwrap_or("").to_string()).collect();
    assert_eq!(types, ["ADDED", "DELETED"], "{body}");
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Options and bodies upstream refuses before writing anything: an unknown dryRun or
/// fieldValidation is a 422 about the options; a body in an unknown media type is a 415; a null
/// where a map holds strings is stored as "" (as Go decodes it), never handed to clients as null.
#[test]
fn bad_options_and_media_types_are_refused_and_null_strings_stored_as_go_does() {
    let fd = start();
    let path = "/api/v1/namespaces/default/configmaps";
    let body = r#"{"metadata": {"name": "opts", "labels": {"a": null, "b": "x"}}, "data": {"k": null}}"#;
    let (code, answer) = fd.curl("POST", &format!("{path}?dryRun=foo"), "application/json", Some(body));
    assert_eq!(code, 422, "{answer}");
    let status = json(&answer);
    assert_eq!(status["details"]["kind"], "CreateOptions", "{answer}");
    assert_eq!(status["details"]["causes"][0]["field"], "dryRun", "{answer}");
    assert_eq!(fd.curl("GET", &format!("{path}/opts"), "", None).0, 404, "nothing was written");
    let (code, answer) = fd.curl("POST", &format!("{path}?fieldValidation=bogus"), "application/json", Some(body));
    assert_eq!(code, 422, "{answer}");
    let (code, answer) = fd.curl("POST", path, "image/gif", Some(body));
    assert_eq!(code, 415, "{answer}");
    assert_eq!(json(&answer)["reason"], "UnsupportedMediaType");

    let (code, answer) = fd.curl("POST", path, "application/json", Some(body));
    assert_eq!(code, 201, "{answer}");
    let (_, stored) = fd.curl("GET", &format!("{path}/opts"), "", None);
    let stored = json(&stored);
    assert_eq!(stored["metadata"]["labels"], serde_json::json!({"a": "", "b": "x"}));
    assert_eq!(stored["data"], serde_json::json!({"k": ""}));
    // kubectl (a typed Go client) reads it.
    assert!(fd.kubectl_ok("1.33", &["get", "configmap", "opts", "--show-labels"]).contains("a=,b=x"));
}
