//! The `kube-dns` Service in kube-system, as every cluster has it: the cluster DNS address,
//! ports 53/UDP, 53/TCP and 9153/TCP (named `dns`, `dns-tcp` and `metrics`, as CoreDNS's), with an EndpointSlice
//! that points at this node's server. Kept until shutdown: recreated if deleted.

use std::time::Duration;

use frontdoor_informers::errors::{is_already_exists, is_not_found};
use frontdoor_informers::{Backoff, Shutdown};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::DnsConfig;

const NAMESPACE: &str = "kube-system";
const NAME: &str = "kube-dns";
/// Who manages the slice (the EndpointSlice controller leaves selector-less Services alone).
const MANAGED_BY: &str = "dns.frontdoor.dev";

/// Makes sure the Service and its slice exist and point here; then checks again every so often.
pub async fn keep(client: Client, config: DnsConfig, shutdown: Shutdown) {
    let backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(10) };
    let mut failures = 0;
    let stop = shutdown.triggered();
    tokio::pin!(stop);
    loop {
        let wait = match ensure(&client, &config).await {
            Ok(()) => {
                failures = 0;
                Duration::from_secs(10)
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "keeping the kube-dns Service");
                backoff.delay(failures)
            }
        };
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn ensure(client: &Client, config: &DnsConfig) -> Result<(), kube::Error> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    if services.get_opt(NAME).await?.is_none() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
            "spec": {
                "clusterIP": config.cluster_dns.to_string(),
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}
                ]
            }
        }))
        .map_err(kube::Error::SerdeError)?;
        match services.create(&PostParams::default(), &service).await {
            Ok(_) => tracing::info!(address = %config.cluster_dns, "created the kube-dns Service"),
            Err(error) if is_already_exists(&error) => {}
            Err(error) => return Err(error),
        }
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let name = format!("{NAME}-{}", config.node_name);
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": NAME, "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
        "addressType": "IPv4",
        "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "metrics", "port": 9153, "protocol": "TCP"}
        ],
        "endpoints": [{"addresses": [config.listen.to_string()], "nodeName": config.node_name,
                       "conditions": {"ready": true, "serving": true, "terminating": false}}]
    });
    match slices.get_opt(&name).await {
        Ok(Some(_)) => {
            slices.patch(&name, &PatchParams::default(), &Patch::Merge(&slice)).await?;
        }
        Ok(None) => {
            let typed: EndpointSlice = serde_json::from_value(slice).map_err(kube::Error::SerdeError)?;
            match slices.create(&PostParams::default(), &typed).await {
                Ok(_) => {}
                Err(error) if is_already_exists(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Err(error) if is_not_found(&error) => {}
        Err(error) => return Err(error),
    }
    Ok(())
}
