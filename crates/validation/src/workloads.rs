//! Upstream's v1 defaulting for Pods and the workload kinds that carry a pod template
//! (`SetDefaults_PodSpec`, `SetDefaults_Container`, probes, and the apps/v1 defaulters), so
//! stored objects look as they would on a real cluster and controllers see the same values.

use serde_json::{json, Map, Value};

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
    set_if_absent(spec, "persistentVolumeClaimRetentionPolicy", json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(deployment["spec"]["strategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
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
}
