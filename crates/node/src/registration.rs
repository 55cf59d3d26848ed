//! This machine as a Kubernetes Node: the Node object (addresses, capacity, conditions, pod
//! range) and its heartbeat Lease in `kube-node-lease`, renewed as a kubelet does.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};

use crate::{NodeConfig, NodeError};

/// How often the Lease is renewed (upstream: 10 s for a 40 s lease).
const LEASE_RENEW: Duration = Duration::from_secs(10);
const LEASE_SECONDS: i32 = 40;
/// How often the Ready condition's heartbeat is refreshed.
const STATUS_REFRESH: Duration = Duration::from_secs(60);

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn micro_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|r| r.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".to_string())
}

/// The address the Node reports as InternalIP when none is given (`--node-ip`): as the kubelet
/// picks it, the address of the interface that holds the default route (its primary address;
/// see `frontdoor_netns::default_route_address`), read in the calling thread's network
/// namespace. Where there is no default route (a namespace made for a test), `fallback`: the
/// bridge's address.
pub fn default_node_ip(fallback: Ipv4Addr) -> Ipv4Addr {
    match frontdoor_netns::default_route_address() {
        Ok(Some(address)) => address,
        Ok(None) => {
            tracing::info!(address = %fallback, "no default route: the node's InternalIP is the bridge's address");
            fallback
        }
        Err(error) => {
            tracing::warn!(%error, address = %fallback, "reading the default route failed; using the bridge's address");
            fallback
        }
    }
}

fn condition(kind: &str, status: &str, reason: &str, message: &str, at: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": at, "lastTransitionTime": at})
}

/// The Node's status as a kubelet reports it.
fn node_status(config: &NodeConfig) -> Value {
    let at = now();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let capacity = json!({"cpu": cpus.to_string(), "memory": format!("{}Ki", memory_kib()), "pods": "110", "ephemeral-storage": "0"});
    let arch = if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH };
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available", &at),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure", &at),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available", &at),
            condition("Ready", "True", "KubeletReady", "kubelet is posting ready status", &at),
        ],
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip.to_string()},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": kernel_version(),
            "osImage": os_image(),
            "containerRuntimeVersion": format!("frontdoor://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": format!("v1.33.0-frontdoor.{}", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch,
        },
    })
}

/// Creates the Node if needed and reports its status.
pub async fn register(client: &kube::Client, config: &NodeConfig) -> Result<(), NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let arch = if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH };
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.node_name,
            "labels": {
                "kubernetes.io/hostname": config.node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "node-role.kubernetes.io/control-plane": "",
            },
        },
        "spec": {"podCIDR": config.pod_cidr.to_string(), "podCIDRs": [config.pod_cidr.to_string()]},
    }))
    .map_err(|e| NodeError::Internal(e.to_string()))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    report_status(client, config).await
}

async fn report_status(client: &kube::Client, config: &NodeConfig) -> Result<(), NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": node_status(config)});
    nodes.patch_status(&config.node_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

async fn renew_lease(client: &kube::Client, config: &NodeConfig) -> Result<(), NodeError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let spec =
        json!({"holderIdentity": config.node_name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro_now()});
    match leases.patch(&config.node_name, &PatchParams::default(), &Patch::Merge(&json!({"spec": spec}))).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": config.node_name, "namespace": "kube-node-lease"},
                "spec": spec,
            }))
            .map_err(|e| NodeError::Internal(e.to_string()))?;
            leases.create(&PostParams::default(), &lease).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Renews the Lease and refreshes the Node status until `shutdown`.
pub async fn heartbeat(client: kube::Client, config: NodeConfig, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut lease = tokio::time::interval(LEASE_RENEW);
    let mut status = tokio::time::interval(STATUS_REFRESH);
    status.tick().await;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = lease.tick() => {
                if let Err(error) = renew_lease(&client, &config).await {
                    tracing::warn!(%error, "renewing the node lease failed");
                }
            }
            _ = status.tick() => {
                if let Err(error) = report_status(&client, &config).await {
                    tracing::warn!(%error, "reporting node status failed");
                }
            }
        }
    }
}
