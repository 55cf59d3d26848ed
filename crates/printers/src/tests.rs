//! Table-driven tests of the public API against realistic objects.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::{cells, columns, row_conditions};

/// The fixed "now" of every test; objects are created relative to it.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

/// An RFC 3339 timestamp `ago` before [`now`].
fn ago(d: Duration) -> String {
    (now() - d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Metadata created five seconds ago.
fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(Duration::seconds(5))})
}

fn row(group: &str, kind: &str, obj: &Value) -> Vec<Value> {
    let cells = cells(group, kind, obj, now());
    assert_eq!(cells.len(), columns(group, kind).len(), "{group}/{kind}: one cell per column");
    cells
}

/// Cells as strings for compact comparison (integers rendered with `to_string`).
fn row_strings(group: &str, kind: &str, obj: &Value) -> Vec<String> {
    row(group, kind, obj)
        .into_iter()
        .map(|c| match c {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .collect()
}

const ALL_KINDS: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "Pod"),
    ("", "ReplicationController"),
    ("", "Service"),
    ("", "Endpoints"),
    ("", "Event"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "ServiceAccount"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "ControllerRevision"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "IngressClass"),
    ("events.k8s.io", "Event"),
    ("coordination.k8s.io", "Lease"),
    ("rbac.authorization.k8s.io", "Role"),
];

#[test]
fn column_names_per_kind() {
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        ("", "Namespace", &["Name", "Status", "Age"], &[]),
        (
            "",
            "Node",
            &["Name", "Status", "Roles", "Age", "Version"],
            &["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"],
        ),
        (
            "",
            "Pod",
            &["Name", "Ready", "Status", "Restarts", "Age"],
            &["IP", "Node", "Nominated Node", "Readiness Gates"],
        ),
        (
            "",
            "ReplicationController",
            &["Name", "Desired", "Current", "Ready", "Age"],
            &["Containers", "Images", "Selector"],
        ),
        ("", "Service", &["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], &["Selector"]),
        ("", "Endpoints", &["Name", "Endpoints", "Age"], &[]),
        (
            "",
            "Event",
            &["Last Seen", "Type", "Reason", "Object", "Message"],
            &["Subobject", "Source", "First Seen", "Count", "Name"],
        ),
        ("", "ConfigMap", &["Name", "Data", "Age"], &[]),
        ("", "Secret", &["Name", "Type", "Data", "Age"], &[]),
        ("", "ServiceAccount", &["Name", "Secrets", "Age"], &[]),
        (
            "apps",
            "Deployment",
            &["Name", "Ready", "Up-to-date", "Available", "Age"],
            &["Containers", "Images", "Selector"],
        ),
        ("apps", "ReplicaSet", &["Name", "Desired", "Current", "Ready", "Age"], &["Containers", "Images", "Selector"]),
        ("apps", "StatefulSet", &["Name", "Ready", "Age"], &["Containers", "Images"]),
        ("discovery.k8s.io", "EndpointSlice", &["Name", "AddressType", "Ports", "Endpoints", "Age"], &[]),
        ("networking.k8s.io", "Ingress", &["Name", "Class", "Hosts", "Address", "Ports", "Age"], &[]),
        ("networking.k8s.io", "IngressClass", &["Name", "Controller", "Parameters", "Age"], &[]),
        (
            "events.k8s.io",
            "Event",
            &["Last Seen", "Type", "Reason", "Object", "Message"],
            &["Subobject", "Source", "First Seen", "Count", "Name"],
        ),
        ("coordination.k8s.io", "Lease", &["Name", "Holder", "Age"], &[]),
        ("rbac.authorization.k8s.io", "Role", &["Name", "Age"], &[]),
        ("apps", "ControllerRevision", &["Name", "Controller", "Revision", "Age"], &[]),
        ("example.com", "Widget", &["Name", "Age"], &[]),
    ];
    for (group, kind, default_cols, wide_cols) in cases {
        let cols = columns(group, kind);
        let default: Vec<&str> = cols.iter().filter(|c| c.priority == 0).map(|c| c.name).collect();
        let wide: Vec<&str> = cols.iter().filter(|c| c.priority == 1).map(|c| c.name).collect();
        assert_eq!(&default, default_cols, "{group}/{kind} default columns");
        assert_eq!(&wide, wide_cols, "{group}/{kind} wide columns");
        for c in cols {
            assert!(!c.description.is_empty(), "{group}/{kind} {} has a description", c.name);
            let want_format = if c.name == "Name" { "name" } else { "" };
            assert_eq!(c.format, want_format, "{group}/{kind} {} format", c.name);
        }
    }
}

#[test]
fn exact_column_order_for_events() {
    // The Event printer interleaves wide columns between default ones.
    let names: Vec<&str> = columns("", "Event").iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"]
    );
}

#[test]
fn column_definition_json() {
    let name = columns("", "Service")[0].to_json();
    assert_eq!(name["name"], "Name");
    assert_eq!(name["type"], "string");
    assert_eq!(name["format"], "name");
    assert_eq!(name["priority"], 0);
    assert!(name["description"].as_str().unwrap().starts_with("Name must be unique within a namespace."));
    let keys: Vec<&String> = name.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "type", "format", "description", "priority"]);

    let restarts = columns("apps", "ReplicaSet")[1].to_json();
    assert_eq!(
        restarts,
        json!({"name": "Desired", "type": "integer", "format": "",
        "description": crate::descriptions::REPLICA_SET_SPEC_REPLICAS, "priority": 0})
    );
    assert_eq!(columns("", "Service")[6].to_json()["priority"], 1);
    assert!(columns("", "Pod")[4].description.starts_with("CreationTimestamp is a timestamp"));
}

#[test]
fn odd_objects_never_panic_and_fill_every_column() {
    let odd = [
        json!({}),
        json!(null),
        json!([1, 2]),
        json!("pod"),
        json!({"metadata": "x", "spec": 5, "status": []}),
        json!({"metadata": {"name": 7, "creationTimestamp": "yesterday"},
               "spec": {"ports": "x", "containers": [null, 3], "selector": [1], "rules": {}, "replicas": "3"},
               "status": {"containerStatuses": [null, {"state": 1}], "conditions": "x", "loadBalancer": {"ingress": [1]}},
               "subsets": [null, {"addresses": [{}], "ports": [{}]}],
               "endpoints": [{"addresses": [null]}], "ports": [null], "series": {}}),
    ];
    for (group, kind) in ALL_KINDS {
        for obj in &odd {
            row(group, kind, obj);
            assert!(row_conditions(group, kind, obj).is_empty());
        }
    }
    // Missing creationTimestamp.
    assert_eq!(row_strings("", "ConfigMap", &json!({"metadata": {"name": "x"}})), ["x", "0", "<unknown>"]);
}

#[test]
fn default_printer() {
    let role = json!({"metadata": meta("reader"), "rules": []});
    assert_eq!(row_strings("rbac.authorization.k8s.io", "Role", &role), ["reader", "5s"]);
}

// --- Services ----------------------------------------------------------------------------------

fn service(spec: Value, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("web"), "spec": spec, "status": status})
}

#[test]
fn services() {
    let tcp80 = json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]);
    let cases: Vec<(&str, Value, [&str; 7])> = vec![
        (
            "cluster ip",
            service(
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                       "ports": tcp80, "selector": {"tier": "fe", "app": "web"}}),
                json!({"loadBalancer": {}}),
            ),
            ["web", "ClusterIP", "10.96.0.10", "<none>", "80/TCP", "5s", "app=web,tier=fe"],
        ),
        (
            "node port",
            service(
                json!({"type": "NodePort", "clusterIPs": ["10.96.0.10"], "selector": {"app": "web"},
                       "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                                 {"port": 53, "protocol": "UDP", "nodePort": 30053}]}),
                json!({}),
            ),
            ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53:30053/UDP", "5s", "app=web"],
        ),
        (
            "headless without ports or selector",
            service(json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}), json!({})),
            ["web", "ClusterIP", "None", "<none>", "<none>", "5s", "<none>"],
        ),
        (
            "cluster ip with external ips",
            service(
                json!({"type": "ClusterIP", "clusterIPs": ["10.96.0.11"], "externalIPs": ["1.2.3.4", "5.6.7.8"],
                       "ports": tcp80}),
                json!({}),
            ),
            ["web", "ClusterIP", "10.96.0.11", "1.2.3.4,5.6.7.8", "80/TCP", "5s", "<none>"],
        ),
        (
            "external name",
            service(json!({"type": "ExternalName", "externalName": "db.example.com"}), json!({})),
            ["web", "ExternalName", "<none>", "db.example.com", "<none>", "5s", "<none>"],
        ),
        (
            "load balancer pending",
            service(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"],
                       "ports": [{"port": 443, "protocol": "TCP", "nodePort": 31443}]}),
                json!({"loadBalancer": {}}),
            ),
            ["web", "LoadBalancer", "10.96.0.12", "<pending>", "443:31443/TCP", "5s", "<none>"],
        ),
        (
            "load balancer with ingress, de-duplicated, sorted, never clipped (wide)",
            service(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "externalIPs": ["9.9.9.9"],
                       "ports": [{"port": 443, "protocol": "TCP", "nodePort": 31443}]}),
                json!({"loadBalancer": {"ingress": [
                    {"ip": "203.0.113.10"},
                    {"hostname": "a1b2c3.elb.us-east-1.amazonaws.com"},
                    {"ip": "203.0.113.10", "hostname": "ignored.example.com"},
                    {}
                ]}}),
            ),
            [
                "web",
                "LoadBalancer",
                "10.96.0.12",
                "203.0.113.10,a1b2c3.elb.us-east-1.amazonaws.com,9.9.9.9",
                "443:31443/TCP",
                "5s",
                "<none>",
            ],
        ),
        (
            "load balancer ingress only",
            service(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": tcp80}),
                json!({"loadBalancer": {"ingress": [{"ip": "172.18.0.5"}]}}),
            ),
            ["web", "LoadBalancer", "10.96.0.12", "172.18.0.5", "80/TCP", "5s", "<none>"],
        ),
        (
            "defaults: no type, no protocol, legacy clusterIP only",
            service(json!({"clusterIP": "10.96.0.13", "ports": [{"port": 8080}]}), json!({})),
            ["web", "ClusterIP", "10.96.0.13", "<none>", "8080/TCP", "5s", "<none>"],
        ),
        (
            "unknown type",
            service(json!({"type": "Weird", "clusterIPs": [""]}), json!({})),
            ["web", "Weird", "<none>", "<unknown>", "<none>", "5s", "<none>"],
        ),
    ];
    for (label, svc, want) in cases {
        assert_eq!(row_strings("", "Service", &svc), want, "{label}");
    }
}

#[test]
fn endpoints() {
    let ep = |subsets: Value| json!({"metadata": meta("web"), "subsets": subsets});
    let addrs = |ips: &[&str]| Value::from(ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("no subsets", json!({"metadata": meta("web")}), "<none>"),
        ("empty subsets", ep(json!([])), "<none>"),
        (
            "two addresses",
            ep(
                json!([{"addresses": addrs(&["10.244.0.5", "10.244.0.6"]), "ports": [{"port": 8080, "protocol": "TCP"}]}]),
            ),
            "10.244.0.5:8080,10.244.0.6:8080",
        ),
        (
            "exactly three",
            ep(json!([{"addresses": addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]), "ports": [{"port": 80}]}])),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80",
        ),
        (
            "truncated after three",
            ep(json!([{"addresses": addrs(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]),
                       "ports": [{"port": 80}]}])),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...",
        ),
        (
            "ports multiply addresses, across subsets",
            ep(json!([
                {"addresses": addrs(&["10.0.0.1", "10.0.0.2"]), "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
                {"addresses": addrs(&["10.0.1.1"]), "ports": [{"port": 9090}]}
            ])),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...",
        ),
        ("headless without ports", ep(json!([{"addresses": addrs(&["10.0.0.1", "10.0.0.2"])}])), "10.0.0.1,10.0.0.2"),
        ("ipv6", ep(json!([{"addresses": addrs(&["fd00::1"]), "ports": [{"port": 80}]}])), "[fd00::1]:80"),
        (
            "only not-ready addresses",
            ep(json!([{"notReadyAddresses": addrs(&["10.0.0.1"]), "ports": [{"port": 80}]}])),
            "",
        ),
    ];
    for (label, obj, want) in cases {
        assert_eq!(row_strings("", "Endpoints", &obj), ["web", want, "5s"], "{label}");
    }
}

#[test]
fn endpoint_slices() {
    let slice = |ports: Value, endpoints: Value| json!({"metadata": meta("web-abc12"), "addressType": "IPv4", "ports": ports, "endpoints": endpoints});
    let cases: Vec<(&str, Value, [&str; 2])> = vec![
        (
            "typical",
            slice(
                json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
                json!([{"addresses": ["10.244.0.5"]}, {"addresses": ["10.244.0.6"]}]),
            ),
            ["8080", "10.244.0.5,10.244.0.6"],
        ),
        ("nothing", slice(json!([]), json!([])), ["<unset>", "<unset>"]),
        ("missing", json!({"metadata": meta("web-abc12"), "addressType": "IPv4"}), ["<unset>", "<unset>"]),
        (
            "names, all ports and truncation",
            slice(
                json!([{"name": "metrics"}, {}, {"port": 1}, {"port": 2}, {"port": 3}]),
                json!([{"addresses": ["a", "b"]}, {"addresses": ["c", "d"]}, {"addresses": ["e"]}]),
            ),
            ["metrics,*,1 + 2 more...", "a,b,c + 2 more..."],
        ),
    ];
    for (label, obj, [ports, endpoints]) in cases {
        assert_eq!(
            row_strings("discovery.k8s.io", "EndpointSlice", &obj),
            ["web-abc12", "IPv4", ports, endpoints, "5s"],
            "{label}"
        );
    }
}

// --- Pods --------------------------------------------------------------------------------------

fn pod(spec: Value, status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web-1"), "spec": spec, "status": status})
}

fn one_container() -> Value {
    json!({"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx:1.27"}]})
}

#[test]
fn pods() {
    let running = json!({"running": {"startedAt": ago(Duration::seconds(4))}});
    let cases: Vec<(&str, Value, [&str; 4])> = vec![
        (
            "running",
            pod(
                one_container(),
                json!({"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": running}]}),
            ),
            ["1/1", "Running", "0", "10.244.0.5"],
        ),
        (
            "pending, no status yet",
            pod(json!({"containers": [{"name": "app"}, {"name": "side"}]}), json!({"phase": "Pending"})),
            ["0/2", "Pending", "0", "<none>"],
        ),
        (
            "container creating",
            pod(
                one_container(),
                json!({"phase": "Pending", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                       "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
            ),
            ["0/1", "ContainerCreating", "0", "<none>"],
        ),
        (
            "crash loop with recent restart",
            pod(
                one_container(),
                json!({"phase": "Running", "podIPs": [{"ip": "10.244.0.7"}],
                       "containerStatuses": [{"name": "app", "ready": false, "restartCount": 5,
                           "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s"}},
                           "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                               "finishedAt": ago(Duration::seconds(150))}}}]}),
            ),
            ["0/1", "CrashLoopBackOff", "5 (2m30s ago)", "10.244.0.7"],
        ),
        (
            "restarts without a finish time",
            pod(
                one_container(),
                json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 2,
                       "state": running, "lastState": {"terminated": {"exitCode": 137}}}]}),
            ),
            ["1/1", "Running", "2", "<none>"],
        ),
        (
            "terminating",
            {
                let mut p = pod(
                    one_container(),
                    json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "state": running}]}),
                );
                p["metadata"]["deletionTimestamp"] = json!(ago(Duration::seconds(1)));
                p
            },
            ["1/1", "Terminating", "0", "<none>"],
        ),
        (
            "deleted pod on lost node",
            {
                let mut p = pod(one_container(), json!({"phase": "Running", "reason": "NodeLost"}));
                p["metadata"]["deletionTimestamp"] = json!(ago(Duration::seconds(1)));
                p
            },
            ["0/1", "Unknown", "0", "<none>"],
        ),
        (
            "completed",
            pod(
                one_container(),
                json!({"phase": "Succeeded", "containerStatuses": [{"name": "app", "ready": false,
                       "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            ),
            ["0/1", "Completed", "0", "<none>"],
        ),
        (
            "succeeded pod being deleted stays Completed",
            {
                let mut p = pod(
                    one_container(),
                    json!({"phase": "Succeeded", "containerStatuses": [{"name": "app",
                           "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                );
                p["metadata"]["deletionTimestamp"] = json!(ago(Duration::seconds(1)));
                p
            },
            ["0/1", "Completed", "0", "<none>"],
        ),
        (
            "terminated without reason",
            pod(
                one_container(),
                json!({"phase": "Failed", "containerStatuses": [{"name": "app",
                       "state": {"terminated": {"exitCode": 2}}}]}),
            ),
            ["0/1", "ExitCode:2", "0", "<none>"],
        ),
        (
            "killed by signal",
            pod(
                one_container(),
                json!({"phase": "Failed", "containerStatuses": [{"name": "app",
                       "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
            ),
            ["0/1", "Signal:9", "0", "<none>"],
        ),
        (
            "one container completed, another still running and ready",
            pod(
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [
                           {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                           {"name": "b", "ready": true, "state": running}]}),
            ),
            ["1/2", "Running", "0", "<none>"],
        ),
        (
            "one container completed, pod not ready",
            pod(
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [
                           {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                           {"name": "b", "ready": true, "state": running}]}),
            ),
            ["1/2", "NotReady", "0", "<none>"],
        ),
        (
            "scheduling gated",
            pod(
                json!({"containers": [{"name": "app"}], "schedulingGates": [{"name": "example.com/gate"}]}),
                json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                       "reason": "SchedulingGated"}]}),
            ),
            ["0/1", "SchedulingGated", "0", "<none>"],
        ),
        (
            "evicted (status.reason)",
            pod(one_container(), json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"})),
            ["0/1", "Evicted", "0", "<none>"],
        ),
    ];
    for (label, obj, [ready, status, restarts, ip]) in cases {
        let cells = row_strings("", "Pod", &obj);
        assert_eq!(cells[0], "web-1", "{label}");
        assert_eq!([cells[1].as_str(), &cells[2], &cells[3], &cells[5]], [ready, status, restarts, ip], "{label}");
        assert_eq!(cells[4], "5s", "{label}");
    }
}

#[test]
fn pod_init_containers() {
    let spec = json!({"initContainers": [{"name": "init-a"}, {"name": "init-b"}], "containers": [{"name": "app"}]});
    let waiting = |reason: &str| json!({"waiting": {"reason": reason}});
    let init_status = |a: Value, b: Value| {
        json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "init-a", "restartCount": 0, "state": a},
            {"name": "init-b", "restartCount": 0, "state": b}],
            "containerStatuses": [{"name": "app", "state": waiting("PodInitializing")}]})
    };
    let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    let cases: Vec<(&str, Value, &str)> = vec![
        ("first running", init_status(json!({"running": {}}), waiting("PodInitializing")), "Init:0/2"),
        ("second running", init_status(done.clone(), json!({"running": {}})), "Init:1/2"),
        ("crash looping", init_status(done.clone(), waiting("CrashLoopBackOff")), "Init:CrashLoopBackOff"),
        (
            "failed with reason",
            init_status(json!({"terminated": {"exitCode": 1, "reason": "Error"}}), waiting("PodInitializing")),
            "Init:Error",
        ),
        (
            "failed with exit code",
            init_status(json!({"terminated": {"exitCode": 3}}), waiting("PodInitializing")),
            "Init:ExitCode:3",
        ),
        (
            "failed with signal",
            init_status(json!({"terminated": {"exitCode": 0, "signal": 9, "reason": ""}}), json!({})),
            "Init:1/2",
        ),
        (
            "killed by signal",
            init_status(json!({"terminated": {"exitCode": 137, "signal": 9}}), json!({})),
            "Init:Signal:9",
        ),
        ("all done", init_status(done.clone(), done.clone()), "PodInitializing"),
    ];
    for (label, status, want) in cases {
        let cells = row_strings("", "Pod", &pod(spec.clone(), status));
        assert_eq!(cells[2], want, "{label}");
        assert_eq!(cells[1], "0/1", "{label}");
    }

    // Init container restarts count (with their finish time) while initialising.
    let status = json!({"phase": "Pending", "initContainerStatuses": [
        {"name": "init-a", "restartCount": 3, "state": waiting("CrashLoopBackOff"),
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(Duration::minutes(5))}}}]});
    let cells = row_strings("", "Pod", &pod(spec.clone(), status));
    assert_eq!((cells[2].as_str(), cells[3].as_str()), ("Init:CrashLoopBackOff", "3 (5m ago)"));
}

#[test]
fn pod_sidecars_count_towards_ready_and_total() {
    let spec = json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}, {"name": "setup"}],
                      "containers": [{"name": "app"}]});
    let status = json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
        "initContainerStatuses": [
            {"name": "proxy", "started": true, "ready": true, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(Duration::hours(3))}}},
            {"name": "setup", "restartCount": 4, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(Duration::minutes(10))}}}]});
    let cells = row_strings("", "Pod", &pod(spec, status));
    // Only the sidecar's restarts survive from the init containers once initialised.
    assert_eq!(&cells[1..4], ["2/2", "Running", "2 (10m ago)"]);
}

#[test]
fn pod_wide_cells() {
    let obj = pod(
        json!({"nodeName": "node-1", "containers": [{"name": "app"}],
               "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]}),
        json!({"phase": "Running", "podIPs": [{"ip": "10.244.0.5"}, {"ip": "fd00::5"}], "nominatedNodeName": "node-2",
               "conditions": [{"type": "example.com/lb", "status": "True"}, {"type": "example.com/dns", "status": "False"}]}),
    );
    assert_eq!(&row_strings("", "Pod", &obj)[5..], ["10.244.0.5", "node-1", "node-2", "1/2"]);
    let bare = pod(json!({"containers": []}), json!({}));
    assert_eq!(&row_strings("", "Pod", &bare)[5..], ["<none>", "<none>", "<none>", "<none>"]);
}

#[test]
fn pod_cell_types_and_row_conditions() {
    let running = pod(one_container(), json!({"phase": "Running"}));
    assert!(cells("", "Pod", &running, now()).iter().all(Value::is_string));
    assert!(row_conditions("", "Pod", &running).is_empty());

    let succeeded = pod(one_container(), json!({"phase": "Succeeded"}));
    assert_eq!(
        row_conditions("", "Pod", &succeeded),
        [json!({"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."})]
    );
    let failed = pod(one_container(), json!({"phase": "Failed"}));
    assert_eq!(row_conditions("", "Pod", &failed)[0]["reason"], "Failed");
    assert!(row_conditions("", "Service", &succeeded).is_empty());
}

// --- Workloads ---------------------------------------------------------------------------------

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
}

#[test]
fn workloads() {
    let deployment = json!({"metadata": meta("web"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}});
    let cells = row("apps", "Deployment", &deployment);
    assert_eq!(
        cells,
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("5s"),
            json!("nginx,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web")
        ]
    );

    // Fresh deployment: no status, replicas defaulted, empty selector prints as empty.
    let fresh = json!({"metadata": meta("web"), "spec": {"selector": {}, "template": template()}});
    assert_eq!(row_strings("apps", "Deployment", &fresh)[..4], ["web", "0/1", "0", "0"]);
    assert_eq!(row_strings("apps", "Deployment", &fresh)[7], "");
    let invalid = json!({"metadata": meta("web"),
        "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}});
    assert_eq!(row_strings("apps", "Deployment", &invalid)[7], "<invalid>");

    let rs = json!({"metadata": meta("web-5d8f7"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d8f7"}}, "template": template()},
        "status": {"replicas": 3, "readyReplicas": 1}});
    assert_eq!(
        row("apps", "ReplicaSet", &rs),
        [
            json!("web-5d8f7"),
            json!(3),
            json!(3),
            json!(1),
            json!("5s"),
            json!("nginx,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web,pod-template-hash=5d8f7")
        ]
    );
    let rs_no_selector = json!({"metadata": meta("x"), "spec": {"replicas": 0}});
    assert_eq!(row_strings("apps", "ReplicaSet", &rs_no_selector), ["x", "0", "0", "0", "5s", "", "", "<none>"]);

    let rc = json!({"metadata": meta("legacy"),
        "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template()},
        "status": {"replicas": 2, "readyReplicas": 2}});
    assert_eq!(
        row_strings("", "ReplicationController", &rc),
        ["legacy", "2", "2", "2", "5s", "nginx,log", "nginx:1.27,busybox", "app=legacy"]
    );

    let sts = json!({"metadata": meta("db"), "spec": {"replicas": 3, "serviceName": "db", "template": template()},
                     "status": {"replicas": 2, "readyReplicas": 1}});
    assert_eq!(row_strings("apps", "StatefulSet", &sts), ["db", "1/3", "5s", "nginx,log", "nginx:1.27,busybox"]);
}

// --- Nodes, namespaces and friends -------------------------------------------------------------

#[test]
fn nodes() {
    let node = |unschedulable: bool, conditions: Value, labels: Value| {
        json!({"metadata": {"name": "node-1", "creationTimestamp": ago(Duration::days(3) + Duration::hours(4)), "labels": labels},
               "spec": {"unschedulable": unschedulable},
               "status": {"conditions": conditions,
                   "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": "node-1"}],
                   "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                "kernelVersion": "6.8.0-45-generic", "containerRuntimeVersion": "containerd://2.1.1"}}})
    };
    let ready = json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]);
    let roles = json!({"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "master",
                       "node-role.kubernetes.io/": "", "kubernetes.io/hostname": "node-1"});
    assert_eq!(
        row_strings("", "Node", &node(false, ready.clone(), roles)),
        [
            "node-1",
            "Ready",
            "control-plane,master",
            "3d4h",
            "v1.33.1",
            "172.18.0.2",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.8.0-45-generic",
            "containerd://2.1.1"
        ]
    );
    let cases: Vec<(bool, Value, &str)> = vec![
        (true, ready, "Ready,SchedulingDisabled"),
        (false, json!([{"type": "Ready", "status": "Unknown"}]), "NotReady"),
        (false, json!([{"type": "Ready", "status": "False"}]), "NotReady"),
        (false, json!([]), "Unknown"),
        (true, json!([]), "Unknown,SchedulingDisabled"),
    ];
    for (unschedulable, conditions, want) in cases {
        let cells = row_strings("", "Node", &node(unschedulable, conditions, json!({})));
        assert_eq!((cells[1].as_str(), cells[2].as_str()), (want, "<none>"));
    }
    let bare = json!({"metadata": {"name": "n"}});
    assert_eq!(
        row_strings("", "Node", &bare),
        ["n", "Unknown", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]
    );
}

#[test]
fn small_kinds() {
    let ns = json!({"metadata": meta("kube-system"), "status": {"phase": "Active"}});
    assert_eq!(row_strings("", "Namespace", &ns), ["kube-system", "Active", "5s"]);
    let terminating = json!({"metadata": meta("old"), "status": {"phase": "Terminating"}});
    assert_eq!(row_strings("", "Namespace", &terminating)[1], "Terminating");

    let cm = json!({"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(row("", "ConfigMap", &cm), [json!("cfg"), json!(3), json!("5s")]);

    let secret = json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(row("", "Secret", &secret), [json!("tls"), json!("kubernetes.io/tls"), json!(2), json!("5s")]);
    let string_data = json!({"metadata": meta("s"), "data": {"a": "eA=="}, "stringData": {"a": "x", "b": "y"}});
    assert_eq!(row_strings("", "Secret", &string_data), ["s", "Opaque", "2", "5s"]);

    let sa = json!({"metadata": meta("default"), "secrets": [{"name": "default-token-abc"}]});
    assert_eq!(row("", "ServiceAccount", &sa), [json!("default"), json!(1), json!("5s")]);
    assert_eq!(row("", "ServiceAccount", &json!({"metadata": meta("x")}))[1], json!(0));

    let lease = json!({"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "node-1_1234", "leaseDurationSeconds": 15}});
    assert_eq!(row_strings("coordination.k8s.io", "Lease", &lease), ["kube-scheduler", "node-1_1234", "5s"]);
    assert_eq!(row_strings("coordination.k8s.io", "Lease", &json!({"metadata": meta("l")}))[1], "");
}

#[test]
fn ingresses() {
    let ing = |rules: Value, tls: Value, status: Value| json!({"metadata": meta("web"), "spec": {"ingressClassName": "nginx", "rules": rules, "tls": tls}, "status": status});
    let hosts = |hs: &[&str]| Value::from(hs.iter().map(|h| json!({"host": h})).collect::<Vec<_>>());
    let cases: Vec<(&str, Value, [&str; 3])> = vec![
        ("no rules", ing(json!([]), json!([]), json!({})), ["*", "", "80"]),
        ("host-less rule", ing(json!([{"http": {}}]), json!(null), json!({})), ["*", "", "80"]),
        (
            "two hosts with tls and address",
            ing(
                hosts(&["a.example.com", "b.example.com"]),
                json!([{"hosts": ["a.example.com"]}]),
                json!({"loadBalancer": {"ingress": [{"ip": "172.18.0.5"}, {"hostname": "lb.example.com"}]}}),
            ),
            ["a.example.com,b.example.com", "172.18.0.5,lb.example.com", "80, 443"],
        ),
        ("exactly three", ing(hosts(&["a", "b", "c"]), json!([]), json!({})), ["a,b,c", "", "80"]),
        (
            "more than three",
            ing(hosts(&["a", "b", "c", "d", "e"]), json!([]), json!({})),
            ["a,b,c + 2 more...", "", "80"],
        ),
        (
            "host-less rules skipped before the third",
            ing(hosts(&["", "a", "b", "c"]), json!([]), json!({})),
            ["a,b,c", "", "80"],
        ),
        (
            "host-less rule after three counts",
            ing(hosts(&["a", "b", "c", ""]), json!([]), json!({})),
            ["a,b,c + 1 more...", "", "80"],
        ),
    ];
    for (label, obj, [hosts, address, ports]) in cases {
        assert_eq!(
            row_strings("networking.k8s.io", "Ingress", &obj),
            ["web", "nginx", hosts, address, ports, "5s"],
            "{label}"
        );
    }
    let no_class = json!({"metadata": meta("web"), "spec": {}});
    assert_eq!(row_strings("networking.k8s.io", "Ingress", &no_class)[1], "<none>");
}

#[test]
fn ingress_classes() {
    let class = |parameters: Value| json!({"metadata": meta("nginx"), "spec": {"controller": "k8s.io/ingress-nginx", "parameters": parameters}});
    let cases: Vec<(Value, &str)> = vec![
        (json!(null), "<none>"),
        (
            json!({"kind": "IngressParameters", "apiGroup": "k8s.example.com", "name": "external-lb"}),
            "IngressParameters.k8s.example.com/external-lb",
        ),
        (json!({"kind": "ConfigMap", "name": "cfg", "scope": "Namespace", "namespace": "ingress"}), "ConfigMap/cfg"),
    ];
    for (parameters, want) in cases {
        assert_eq!(
            row_strings("networking.k8s.io", "IngressClass", &class(parameters)),
            ["nginx", "k8s.io/ingress-nginx", want, "5s"]
        );
    }
}

// --- Events ------------------------------------------------------------------------------------

#[test]
fn core_events() {
    let event = json!({"metadata": meta("web-1.17f3a"),
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "message": "  Successfully pulled image \"nginx\"\n", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(Duration::minutes(3)), "lastTimestamp": ago(Duration::seconds(30)), "count": 4});
    assert_eq!(
        row("", "Event", &event),
        [
            json!("30s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web-1"),
            json!("spec.containers{app}"),
            json!("kubelet, node-1"),
            json!("Successfully pulled image \"nginx\""),
            json!("3m"),
            json!(4),
            json!("web-1.17f3a")
        ]
    );

    // New-style event written through core/v1: eventTime, series, reporting component, no name.
    let series = json!({"metadata": meta("x"), "involvedObject": {"kind": "Node"}, "type": "Warning", "reason": "Rebooted",
        "eventTime": ago(Duration::minutes(20)), "series": {"count": 7, "lastObservedTime": ago(Duration::minutes(1))},
        "reportingComponent": "kubelet", "reportingInstance": "", "firstTimestamp": null, "lastTimestamp": null});
    assert_eq!(
        row_strings("", "Event", &series),
        ["60s", "Warning", "Rebooted", "node", "", "kubelet", "", "20m", "7", "x"]
    );

    // Singleton without times: count 1, unknown ages.
    let bare = json!({"metadata": {"name": "e"}});
    assert_eq!(row_strings("", "Event", &bare), ["<unknown>", "", "", "", "", "", "", "<unknown>", "1", "e"]);
}

#[test]
fn events_k8s_io_events() {
    let event = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta("web.1"),
        "eventTime": ago(Duration::seconds(45)), "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-cp-1", "action": "Binding", "reason": "Scheduled",
        "regarding": {"kind": "Pod", "name": "web-1", "namespace": "default"},
        "note": "Successfully assigned default/web-1 to node-1", "type": "Normal"});
    assert_eq!(
        row_strings("events.k8s.io", "Event", &event),
        [
            "45s",
            "Normal",
            "Scheduled",
            "pod/web-1",
            "",
            "default-scheduler, default-scheduler-cp-1",
            "Successfully assigned default/web-1 to node-1",
            "45s",
            "1",
            "web.1"
        ]
    );
    let deprecated = json!({"metadata": meta("old"), "regarding": {"kind": "Pod", "name": "p"},
        "deprecatedSource": {"component": "kubelet"}, "deprecatedFirstTimestamp": ago(Duration::hours(2)),
        "deprecatedLastTimestamp": ago(Duration::minutes(2)), "deprecatedCount": 3});
    assert_eq!(
        row_strings("events.k8s.io", "Event", &deprecated),
        ["2m", "", "", "pod/p", "", "kubelet", "", "120m", "3", "old"]
    );
}

#[test]
fn controller_revision_rows_name_their_controller() {
    let now = now();
    let owned = json!({
        "metadata": {"name": "web-7d9c", "creationTimestamp": ago(Duration::seconds(60)), "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": "other", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "2", "controller": true}
        ]},
        "revision": 3
    });
    assert_eq!(
        cells("apps", "ControllerRevision", &owned, now),
        vec![json!("web-7d9c"), json!("statefulset.apps/web"), json!(3), json!("60s")]
    );
    let core = json!({"metadata": {"name": "r", "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController", "name": "rc", "uid": "3", "controller": true}]}, "revision": 1});
    assert_eq!(cells("apps", "ControllerRevision", &core, now)[1], json!("replicationcontroller/rc"));
    let orphan = json!({"metadata": {"name": "r"}, "revision": 1});
    assert_eq!(cells("apps", "ControllerRevision", &orphan, now)[1], json!("<none>"));
}
