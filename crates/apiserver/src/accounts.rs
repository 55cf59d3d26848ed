//! Service accounts as every cluster has them, so that a pod finds the API server and its
//! credentials where clients look (`/var/run/secrets/kubernetes.io/serviceaccount`):
//!
//! * [`ensure_namespace`], what kube-controller-manager's `serviceaccount` and
//!   `root-ca-cert-publisher` controllers keep in every namespace that is not terminating: the
//!   `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap holding the cluster CA
//!   (recreated when deleted, its data restored when changed; see `lifecycle`, which calls it);
//! * [`Registry::admit_service_account`], the ServiceAccount admission plugin: a new pod runs as
//!   `default` unless it names an account, the account must exist (`default` is waited for a
//!   moment, as upstream retries it, since its controller may not have made it yet), and unless
//!   automounting is turned off (`automountServiceAccountToken: false` on the pod, or else on
//!   the account) every container mounts a projected `kube-api-access-*` volume of the token,
//!   `ca.crt` and `namespace` (the node renders it).

use std::time::Duration;

use serde_json::{json, Value};

use frontdoor_resources::{self as resources, ResourceType};

use crate::errors::{ignore_exists, ApiError, ApiResult};
use crate::registry::{generated_suffix, ObjectRef, Registry, WriteOptions};
use crate::request::object_key;

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Where the admission mounts the account's volume, and clients' in-cluster configuration reads.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Upstream's `kubernetes.io/description` of the root CA ConfigMap.
const ROOT_CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// The token's lifetime the admission asks for (upstream's `WarnOnlyBoundTokenExpirationSeconds`).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// How long a pod's create waits for its namespace's `default` account (upstream: ten tries,
/// 100–200 ms apart).
const DEFAULT_ACCOUNT_WAIT: Duration = Duration::from_secs(2);
const DEFAULT_ACCOUNT_POLL: Duration = Duration::from_millis(20);

fn service_accounts() -> &'static ResourceType {
    resources::lookup("", "v1", "serviceaccounts").expect("serviceaccounts are served")
}

fn config_maps() -> &'static ResourceType {
    resources::lookup("", "v1", "configmaps").expect("configmaps are served")
}

/// Whether `key` is one of the objects [`ensure_namespace`] keeps: the namespace it is in, if so.
pub fn kept_object_namespace(key: &str, object: &Value) -> Option<String> {
    let name = object.pointer("/metadata/name").and_then(Value::as_str)?;
    let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str)?;
    // The names first: every store event passes here, and only these two need a key made.
    let kept = (name == DEFAULT_SERVICE_ACCOUNT && key == object_key(service_accounts(), Some(namespace), name))
        || (name == ROOT_CA_CONFIG_MAP && key == object_key(config_maps(), Some(namespace), name));
    kept.then(|| namespace.to_string())
}

/// Makes sure `namespace` has the `default` ServiceAccount and a `kube-root-ca.crt` ConfigMap
/// that holds `ca_pem`. Writes only what differs.
pub async fn ensure_namespace(registry: &Registry, namespace: &str, ca_pem: &str) -> ApiResult<()> {
    let options = WriteOptions::default();
    let at = ObjectRef { resource: config_maps(), namespace: Some(namespace), name: ROOT_CA_CONFIG_MAP };
    match registry.get(&at) {
        Ok(stored) if stored.value.pointer("/data/ca.crt").and_then(Value::as_str) == Some(ca_pem) => {}
        Ok(_) => {
            let patch = json!({"data": {"ca.crt": ca_pem}});
            registry.patch(&at, crate::patch::MERGE, &patch, &options).await?;
        }
        Err(_) => {
            let object = json!({
                "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": namespace,
                             "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                "data": {"ca.crt": ca_pem},
            });
            ignore_exists(registry.create(config_maps(), Some(namespace), object, &options).await)?;
        }
    }
    // The account last: a pod admitted once it exists finds the CA its volume names.
    let account = ObjectRef { resource: service_accounts(), namespace: Some(namespace), name: DEFAULT_SERVICE_ACCOUNT };
    if registry.get(&account).is_err() {
        let object = json!({"metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace}});
        ignore_exists(registry.create(service_accounts(), Some(namespace), object, &options).await)?;
    }
    Ok(())
}

impl Registry {
    /// The ServiceAccount admission plugin, for a pod being created (see the module's notes).
    pub(crate) async fn admit_service_account(&self, resource: &ResourceType, pod: &mut Value) -> ApiResult<()> {
        if (resource.group, resource.kind) != ("", "Pod") {
            return Ok(());
        }
        // Mirror pods (the kubelet's static pods) are left as they are.
        if pod.pointer("/metadata/annotations/kubernetes.io~1config.mirror").is_some() {
            return Ok(());
        }
        let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default").to_string();
        if !pod.get("spec").is_some_and(Value::is_object) {
            pod["spec"] = json!({});
        }
        let named = pod["spec"]["serviceAccountName"].as_str().filter(|n| !n.is_empty()).map(String::from);
        let account_name = named.unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_string());
        pod["spec"]["serviceAccountName"] = json!(account_name);
        // The deprecated alias, as upstream's conversion fills it.
        pod["spec"]["serviceAccount"] = json!(account_name);
        let account = self.wait_for_account(&namespace, &account_name).await.ok_or_else(|| {
            let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            ApiError::forbidden(format!(
                "pods \"{name}\" is forbidden: error looking up service account {namespace}/{account_name}: serviceaccount \"{account_name}\" not found"
            ))
        })?;
        if automounts(&account, pod) {
            mount_token_volume(pod, &format!("kube-api-access-{}", generated_suffix()));
        }
        Ok(())
    }

    /// The account, waiting a moment for `default` (its controller may be about to make it).
    async fn wait_for_account(&self, namespace: &str, name: &str) -> Option<Value> {
        let key = object_key(service_accounts(), Some(namespace), name);
        let deadline = tokio::time::Instant::now() + DEFAULT_ACCOUNT_WAIT;
        loop {
            if let Some(stored) = self.store.get(&key) {
                return Some(Value::clone(&stored.value));
            }
            if name != DEFAULT_SERVICE_ACCOUNT || tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(DEFAULT_ACCOUNT_POLL).await;
        }
    }
}

/// The pod's own `automountServiceAccountToken` decides; without one, the account's; without
/// either, the token is mounted.
fn automounts(account: &Value, pod: &Value) -> bool {
    pod.pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| account.get("automountServiceAccountToken").and_then(Value::as_bool))
        .unwrap_or(true)
}

/// Adds the projected volume `volume_name` to the pod and a read-only mount of it at
/// [`TOKEN_MOUNT_PATH`] to each init and app container that mounts nothing there already; the
/// volume only if some container took it.
fn mount_token_volume(pod: &mut Value, volume_name: &str) {
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = pod["spec"].get_mut(list).and_then(Value::as_array_mut) else { continue };
        for container in containers.iter_mut().filter(|c| c.is_object()) {
            let taken = container.get("volumeMounts").and_then(Value::as_array).is_some_and(|mounts| {
                mounts.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH))
            });
            if taken {
                continue;
            }
            match container.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                Some(mounts) => mounts.push(mount.clone()),
                None => container["volumeMounts"] = json!([mount.clone()]),
            }
            needed = true;
        }
    }
    if !needed {
        return;
    }
    let volume = json!({
        "name": volume_name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    });
    match pod["spec"].get_mut("volumes").and_then(Value::as_array_mut) {
        Some(volumes) => volumes.push(volume),
        None => pod["spec"]["volumes"] = json!([volume]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts_of(pod: &Value, list: &str) -> Vec<Vec<String>> {
        pod["spec"][list]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        c["volumeMounts"]
                            .as_array()
                            .map(|ms| {
                                ms.iter()
                                    .map(|m| {
                                        format!("{}@{}", m["name"].as_str().unwrap(), m["mountPath"].as_str().unwrap())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn every_container_mounts_the_volume_unless_it_mounts_something_there() {
        let at = TOKEN_MOUNT_PATH;
        let mine = format!("mine@{at}");
        let token = format!("kube-api-access-abcde@{at}");
        let cases = [
            // (containers, init containers, app mounts after, init mounts after, volume added)
            (
                json!([{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}]),
                json!(null),
                vec![vec![token.clone()], vec!["x@/x".to_string(), token.clone()]],
                vec![],
                true,
            ),
            (
                json!([{"name": "a"}]),
                json!([{"name": "init"}]),
                vec![vec![token.clone()]],
                vec![vec![token.clone()]],
                true,
            ),
            (
                json!([{"name": "a", "volumeMounts": [{"name": "mine", "mountPath": at}]}, {"name": "b"}]),
                json!(null),
                vec![vec![mine.clone()], vec![token.clone()]],
                vec![],
                true,
            ),
            (
                json!([{"name": "a", "volumeMounts": [{"name": "mine", "mountPath": at}]}]),
                json!(null),
                vec![vec![mine.clone()]],
                vec![],
                false,
            ),
        ];
        for (containers, init, app_after, init_after, added) in cases {
            let mut pod = json!({"spec": {"containers": containers, "volumes": [{"name": "mine", "emptyDir": {}}]}});
            if !init.is_null() {
                pod["spec"]["initContainers"] = init;
            }
            mount_token_volume(&mut pod, "kube-api-access-abcde");
            assert_eq!(mounts_of(&pod, "containers"), app_after, "{pod}");
            assert_eq!(mounts_of(&pod, "initContainers"), init_after, "{pod}");
            let volumes: Vec<&str> =
                pod["spec"]["volumes"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
            let expected: &[&str] = if added { &["mine", "kube-api-access-abcde"] } else { &["mine"] };
            assert_eq!(volumes, expected);
        }
    }

    #[test]
    fn the_volume_projects_token_ca_and_namespace_read_only() {
        let mut pod = json!({"spec": {"containers": [{"name": "a"}]}});
        mount_token_volume(&mut pod, "kube-api-access-x");
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"][0]["readOnly"], true);
        let sources = &pod["spec"]["volumes"][0]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(sources[1]["configMap"]["items"][0], json!({"key": "ca.crt", "path": "ca.crt"}));
        assert_eq!(sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"], "metadata.namespace");
        assert_eq!(pod["spec"]["volumes"][0]["projected"]["defaultMode"], 420);
    }

    #[test]
    fn the_pod_decides_then_the_account_then_mounting() {
        let cases = [
            (json!({}), json!({}), true),
            (json!({}), json!({"automountServiceAccountToken": false}), false),
            (
                json!({"spec": {"automountServiceAccountToken": true}}),
                json!({"automountServiceAccountToken": false}),
                true,
            ),
            (
                json!({"spec": {"automountServiceAccountToken": false}}),
                json!({"automountServiceAccountToken": true}),
                false,
            ),
        ];
        for (pod, account, expected) in cases {
            assert_eq!(automounts(&account, &pod), expected, "{pod} {account}");
        }
    }
}
