//! Upstream's v1 defaulting for Pods and the workload kinds that carry a pod template
//! (`SetDefaults_PodSpec`, `SetDefaults_Container`, probes, and the apps/v1 defaulters), so
//! stored objects look as they would on a real cluster and controllers see the same values.

use serde_json::{json, Map, Value};

use crate::FieldError;

fn set_if_absent(object: &mut Map<String, Value>, key: &str, value: Value) {
    object.entry(key.to_string()).or_insert(value);
}

/// `IfNotPresent` unless the image has no tag or the `latest` tag (digests count as tagged).
fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_probe(probe: &mut Value) {
    let Some(probe) = probe.as_object_mut() else { return };
    set_if_absent(probe, "timeoutSeconds", json!(1));
    set_if_absent(probe, "periodSeconds", json!(10));
    set_if_absent(probe, "successThreshold", json!(1));
    set_if_absent(probe, "failureThreshold", json!(3));
    if let Some(http) = probe.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_if_absent(http, "path", json!("/"));
        set_if_absent(http, "scheme", json!("HTTP"));
    }
}

fn default_container(container: &mut Value) {
    let Some(c) = container.as_object_mut() else { return };
    let image = c.get("image").and_then(Value::as_str).unwrap_or("").to_string();
    set_if_absent(c, "imagePullPolicy", json!(image_pull_policy(&image)));
    set_if_absent(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_if_absent(c, "terminationMessagePolicy", json!("File"));
    set_if_absent(c, "resources", json!({}));
    for port in c.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(port) = port.as_object_mut() {
            set_if_absent(port, "protocol", json!("TCP"));
        }
    }
    for env in c.get_mut("env").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(field_ref) = env.pointer_mut("/valueFrom/fieldRef").and_then(Value::as_object_mut) {
            set_if_absent(field_ref, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe) {
            default_probe(p);
        }
    }
}

/// Defaults a PodSpec in place.
pub fn default_pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else { return };
    set_if_absent(s, "restartPolicy", json!("Always"));
    set_if_absent(s, "terminationGracePeriodSeconds", json!(30));
    set_if_absent(s, "dnsPolicy", json!("ClusterFirst"));
    set_if_absent(s, "securityContext", json!({}));
    set_if_absent(s, "schedulerName", json!("default-scheduler"));
    set_if_absent(s, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        for container in s.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            default_container(container);
        }
    }
}

/// Defaults a Pod (its spec).
pub fn default_pod(pod: &mut Value) {
    if let Some(spec) = pod.get_mut("spec") {
        default_pod_spec(spec);
    }
}

fn default_template(spec: &mut Map<String, Value>) {
    if let Some(pod_spec) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        default_pod_spec(pod_spec);
    }
}

/// Defaults an apps/v1 Deployment.
pub fn default_deployment(deployment: &mut Value) {
    let Some(spec) = deployment.get_mut("spec").and_then(Value::as_object_mut) else { return };
    set_if_absent(spec, "replicas", json!(1));
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
    set_if_absent(spec, "progressDeadlineSeconds", json!(600));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(strategy) = strategy.as_object_mut() {
        set_if_absent(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(rolling) = rolling.as_object_mut() {
                set_if_absent(rolling, "maxUnavailable", json!("25%"));
                set_if_absent(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    default_template(spec);
}

/// Defaults an apps/v1 ReplicaSet or a v1 ReplicationController.
pub fn default_replica_set(replica_set: &mut Value) {
    let Some(spec) = replica_set.get_mut("spec").and_then(Value::as_object_mut) else { return };
    set_if_absent(spec, "replicas", json!(1));
    default_template(spec);
}

/// Defaults an apps/v1 StatefulSet.
pub fn default_stateful_set(stateful_set: &mut Value) {
    let Some(spec) = stateful_set.get_mut("spec").and_then(Value::as_object_mut) else { return };
    set_if_absent(spec, "replicas", json!(1));
    set_if_absent(spec, "podManagementPolicy", json!("OrderedReady"));
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
    set_if_absent(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
    );
    let strategy = spec.entry("updateStrategy").or_insert_with(|| json!({}));
    if let Some(strategy) = strategy.as_object_mut() {
        set_if_absent(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(rolling) = rolling.as_object_mut() {
                set_if_absent(rolling, "partition", json!(0));
            }
        }
    }
    default_template(spec);
}

/// What upstream's `ValidatePodUpdate` says when a pod's spec changed beyond what may change.
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// What frontdoor checks in a pod's spec on create and update: scheduling gates are qualified
/// names, each once, and a pod that names its node has none (upstream's
/// `validateSchedulingGates` and the `nodeName` rule of pod creation).
pub fn validate_pod(pod: &Value) -> Vec<FieldError> {
    let Some(spec) = pod.get("spec") else { return Vec::new() };
    let mut errs = Vec::new();
    let gates = crate::json::array(spec, "schedulingGates");
    let mut seen = Vec::new();
    for (i, gate) in gates.iter().enumerate() {
        let name = gate.get("name").and_then(Value::as_str).unwrap_or("");
        let path = format!("spec.schedulingGates[{i}]");
        for message in crate::formats::qualified_name(name) {
            errs.push(FieldError::invalid(path.clone(), crate::gofmt::quote(name), &message));
        }
        if seen.contains(&name) {
            errs.push(FieldError::duplicate(path, crate::gofmt::quote(name)));
        }
        seen.push(name);
    }
    if !gates.is_empty() && spec.get("nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
        errs.push(FieldError::forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"));
    }
    errs
}

/// Upstream's `ValidatePodUpdate` rule for the spec of a running pod: only container images,
/// `activeDeadlineSeconds`, tolerations (added, never removed or changed), scheduling gates
/// (removed, never added), a `terminationGracePeriodSeconds` of 1 where it was negative and,
/// while the pod is gated, `nodeSelector` (added to, never changed) may change. Both pods are
/// defaulted. The message ends with what changed, one `-`/`+` line pair per differing field
/// (upstream prints a Go diff of the spec there).
pub fn validate_pod_update(pod: &Value, old: &Value) -> Vec<FieldError> {
    let (Some(spec), Some(old_spec)) = (pod.get("spec"), old.get("spec")) else { return Vec::new() };
    let mut errs = validate_pod(pod);
    // Scheduling gates may only be removed.
    let gate_names = |spec: &Value| -> Vec<String> {
        crate::json::array(spec, "schedulingGates")
            .iter()
            .map(|g| g.get("name").and_then(Value::as_str).unwrap_or("").to_string())
            .collect()
    };
    let old_gates = gate_names(old_spec);
    for (i, gate) in gate_names(spec).iter().enumerate().filter(|(_, gate)| !old_gates.contains(gate)) {
        errs.push(FieldError::forbidden(
            format!("spec.schedulingGates[{i}].name"),
            &format!("only deletion is allowed, but found new scheduling gate '{gate}'"),
        ));
    }
    let old_tolerations = crate::json::array(old_spec, "tolerations");
    let tolerations = crate::json::array(spec, "tolerations");
    if old_tolerations.iter().any(|t| !tolerations.contains(t)) {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    // The spec as it would be had only the allowed fields changed: equal to the old one if so.
    let mut munged = spec.clone();
    let Some(fields) = munged.as_object_mut() else { return errs };
    for list in ["containers", "initContainers"] {
        let old_images = crate::json::array(old_spec, list);
        if let Some(containers) = fields.get_mut(list).and_then(Value::as_array_mut) {
            if containers.len() == old_images.len() {
                for (container, old_container) in containers.iter_mut().zip(old_images) {
                    if let (Some(c), Some(image)) = (container.as_object_mut(), old_container.get("image")) {
                        c.insert("image".into(), image.clone());
                    }
                }
            }
        }
    }
    let mut munged_keys = vec!["activeDeadlineSeconds", "tolerations", "schedulingGates"];
    // A pod still waiting on its gates may be narrowed to more nodes' labels.
    if !old_gates.is_empty() {
        let empty = serde_json::Map::new();
        let selector = |spec: &Value| {
            spec.get("nodeSelector").and_then(Value::as_object).cloned().unwrap_or_else(|| empty.clone())
        };
        let (new_selector, old_selector) = (selector(spec), selector(old_spec));
        if new_selector != old_selector {
            if old_selector.iter().any(|(key, value)| new_selector.get(key) != Some(value)) {
                errs.push(FieldError::invalid(
                    "spec.nodeSelector",
                    Value::Object(new_selector).to_string(),
                    "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                ));
            }
            munged_keys.push("nodeSelector");
        }
    }
    for key in munged_keys {
        match old_spec.get(key) {
            Some(value) => fields.insert(key.into(), value.clone()),
            None => fields.remove(key),
        };
    }
    let grace = |s: &Value| s.get("terminationGracePeriodSeconds").and_then(crate::json::as_int);
    if grace(old_spec).is_some_and(|g| g < 0) && grace(spec) == Some(1) {
        fields.insert("terminationGracePeriodSeconds".into(), old_spec["terminationGracePeriodSeconds"].clone());
    }
    if munged != *old_spec {
        let mut changes = Vec::new();
        differences("", old_spec, &munged, &mut changes);
        let shown = changes.len().min(MAX_DIFF_LINES);
        let mut detail = String::from(POD_UPDATE_FORBIDDEN);
        for line in &changes[..shown] {
            detail.push('\n');
            detail.push_str(line);
        }
        if changes.len() > shown {
            detail.push_str(&format!("\n  ... ({} more)", changes.len() - shown));
        }
        errs.push(FieldError::forbidden("spec", &detail));
    }
    errs
}

/// Upstream's `ValidateControllerRevision` (and `…Update` with `old`): `data` is mandatory and,
/// once written, immutable; `revision` is not negative.
pub fn validate_controller_revision(revision: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let data = revision.get("data").filter(|d| !d.is_null());
    if data.is_none() {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    if let Some(number) = revision.get("revision").and_then(crate::json::as_int).filter(|n| *n < 0) {
        errs.push(FieldError::invalid("revision", number.to_string(), "must be greater than or equal to 0"));
    }
    if let Some(old) = old {
        if old.get("data").filter(|d| !d.is_null()) != data {
            let shown = data.map_or_else(|| "null".to_string(), Value::to_string);
            errs.push(FieldError::invalid("data", shown, crate::formats::FIELD_IMMUTABLE));
        }
    }
    errs
}

/// At most this many lines of a forbidden pod update's differences are shown.
const MAX_DIFF_LINES: usize = 20;

/// `-`/`+` lines for each field (by its path under the spec) where `new` differs from `old`.
fn differences(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    let child = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                differences(&child(key), value, b.get(key).unwrap_or(&Value::Null), out);
            }
            for (key, value) in b.iter().filter(|(key, _)| !a.contains_key(*key)) {
                differences(&child(key), &Value::Null, value, out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if old != new => {
            if !old.is_null() {
                out.push(format!("-  {path}: {old}"));
            }
            if !new.is_null() {
                out.push(format!("+  {path}: {new}"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_revisions_need_data_that_never_changes() {
        let revision = json!({"metadata": {"name": "web-1"}, "data": {"spec": {}}, "revision": 2});
        assert!(validate_controller_revision(&revision, None).is_empty());
        let messages =
            |errs: Vec<FieldError>| errs.into_iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>();
        assert_eq!(
            messages(validate_controller_revision(&json!({"metadata": {"name": "r"}, "revision": -1}), None)),
            [
                "data: Required value: data is mandatory",
                "revision: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        let mut renumbered = revision.clone();
        renumbered["revision"] = json!(5);
        assert!(
            validate_controller_revision(&renumbered, Some(&revision)).is_empty(),
            "the revision number may change"
        );
        let mut changed = revision.clone();
        changed["data"] = json!({"spec": {"x": 1}});
        assert_eq!(
            messages(validate_controller_revision(&changed, Some(&revision))),
            [r#"data: Invalid value: {"spec":{"x":1}}: field is immutable"#]
        );
    }

    #[test]
    fn pod_defaults() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}], "readinessProbe": {"httpGet": {"port": 80}}},
            {"name": "side", "image": "busybox:1.36"},
        ]}});
        default_pod(&mut pod);
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["containers"][0]["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(spec["containers"][0]["readinessProbe"]["httpGet"]["scheme"], "HTTP");
        // Values the user set are kept.
        let mut pod = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "x:latest", "imagePullPolicy": "Never"}]}});
        default_pod(&mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Never");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Never");
    }

    #[test]
    fn workload_defaults() {
        let mut deployment = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        default_deployment(&mut deployment);
        assert_eq!(
            deployment["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(deployment["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(deployment["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        default_deployment(&mut recreate);
        assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());
        let mut sts = json!({"spec": {}});
        default_stateful_set(&mut sts);
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
    }

    #[test]
    fn a_running_pods_spec_may_change_only_where_upstream_allows() {
        let mut old = json!({"spec": {
            "containers": [{"name": "web", "image": "nginx:1.25", "command": ["nginx"], "ports": [{"containerPort": 80}]}],
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "terminationGracePeriodSeconds": -1,
        }});
        default_pod(&mut old);
        let changed = |f: &dyn Fn(&mut Value)| {
            let mut pod = old.clone();
            f(&mut pod);
            validate_pod_update(&pod, &old)
        };
        // Allowed: images, activeDeadlineSeconds, added tolerations, a negative grace period to 1.
        assert_eq!(changed(&|_| {}), vec![]);
        assert_eq!(changed(&|p| p["spec"]["containers"][0]["image"] = json!("nginx:1.27")), vec![]);
        assert_eq!(changed(&|p| p["spec"]["activeDeadlineSeconds"] = json!(30)), vec![]);
        assert_eq!(
            changed(&|p| p["spec"]["tolerations"]
                .as_array_mut()
                .unwrap()
                .push(json!({"key": "b", "operator": "Exists"}))),
            vec![]
        );
        assert_eq!(changed(&|p| p["spec"]["terminationGracePeriodSeconds"] = json!(1)), vec![]);
        // Forbidden: anything else, with what changed.
        let errs = changed(&|p| p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9999));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert_eq!(errs[0].reason, "FieldValueForbidden");
        assert!(
            errs[0]
                .message
                .starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
            "{}",
            errs[0].message
        );
        assert!(
            errs[0].message.ends_with(
                "\n-  containers[0].ports[0].containerPort: 80\n+  containers[0].ports[0].containerPort: 9999"
            ),
            "{}",
            errs[0].message
        );
        let errs = changed(&|p| p["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]));
        assert!(
            errs[0].message.ends_with("\n+  containers[0].env: [{\"name\":\"A\",\"value\":\"1\"}]"),
            "{}",
            errs[0].message
        );
        assert_eq!(changed(&|p| p["spec"]["nodeName"] = json!("elsewhere")).len(), 1);
        assert_eq!(changed(&|p| p["spec"]["terminationGracePeriodSeconds"] = json!(5)).len(), 1);
        // A removed toleration is its own error.
        let errs = changed(&|p| p["spec"]["tolerations"] = json!([]));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.tolerations");
        // A new container is a change even with the same images.
        let errs = changed(&|p| {
            p["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "side", "image": "nginx:1.25"}))
        });
        assert_eq!(errs.len(), 1);
    }

    #[test]
    fn scheduling_gates_are_only_removed_and_a_gated_pod_may_gain_node_labels() {
        let mut old = json!({"spec": {
            "containers": [{"name": "web", "image": "nginx", "command": ["nginx"]}],
            "schedulingGates": [{"name": "example.com/quota"}, {"name": "example.com/arch"}],
            "nodeSelector": {"disk": "ssd"},
        }});
        default_pod(&mut old);
        let changed = |f: &dyn Fn(&mut Value)| {
            let mut pod = old.clone();
            f(&mut pod);
            validate_pod_update(&pod, &old).iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert!(changed(&|p| p["spec"]["schedulingGates"] = json!([{"name": "example.com/arch"}])).is_empty());
        assert!(changed(&|p| {
            p["spec"].as_object_mut().unwrap().remove("schedulingGates");
        })
        .is_empty());
        assert_eq!(
            changed(&|p| p["spec"]["schedulingGates"].as_array_mut().unwrap().push(json!({"name": "x"}))),
            ["spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate 'x'"]
        );
        assert!(changed(&|p| p["spec"]["nodeSelector"]["zone"] = json!("a")).is_empty());
        assert_eq!(
            changed(&|p| p["spec"]["nodeSelector"] = json!({"disk": "hdd"})),
            ["spec.nodeSelector: Invalid value: {\"disk\":\"hdd\"}: only additions to spec.nodeSelector are allowed (no mutations or deletions)"]
        );
        // Once the gates are gone the selector is as fixed as the rest.
        let mut ungated = old.clone();
        ungated["spec"].as_object_mut().unwrap().remove("schedulingGates");
        let mut narrowed = ungated.clone();
        narrowed["spec"]["nodeSelector"]["zone"] = json!("a");
        assert_eq!(validate_pod_update(&narrowed, &ungated).len(), 1);
    }

    #[test]
    fn scheduling_gates_are_qualified_unique_and_not_on_a_bound_pod() {
        let pod = |gates: Value, node: Option<&str>| {
            let mut spec = json!({"containers": [{"name": "c", "image": "x"}], "schedulingGates": gates});
            if let Some(node) = node {
                spec["nodeName"] = json!(node);
            }
            validate_pod(&json!({"spec": spec})).iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert!(pod(json!([{"name": "example.com/a"}, {"name": "b"}]), None).is_empty());
        assert_eq!(
            pod(json!([{"name": "a"}, {"name": "a"}]), None),
            ["spec.schedulingGates[1]: Duplicate value: \"a\""]
        );
        let bad = pod(json!([{"name": "not a name"}]), None);
        assert!(
            bad.len() == 1 && bad[0].starts_with("spec.schedulingGates[0]: Invalid value: \"not a name\": "),
            "{bad:?}"
        );
        assert_eq!(
            pod(json!([{"name": "a"}]), Some("n1")),
            ["spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"]
        );
        assert!(pod(json!([]), Some("n1")).is_empty());
    }
}
