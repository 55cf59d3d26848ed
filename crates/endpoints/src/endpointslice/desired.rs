//! The pieces of a desired EndpointSlice: one endpoint per pod, the ports a pod offers for
//! the Service, and a new slice's metadata (labels, owner, generateName).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::pods;
use crate::service::{self, AddressType};
use crate::wellknown::{HEADLESS, MANAGED_BY, SERVICE_NAME, SLICE_CONTROLLER};

/// The endpoint for a pod (upstream's `podToEndpoint`). `serving` is the Ready condition,
/// `terminating` the deletionTimestamp; `ready` is serving and not terminating, or always
/// true when the Service publishes not-ready addresses. Empty `addresses` means the pod has no
/// IP of this family.
pub fn pod_endpoint(pod: &Pod, service: &Service, address_type: AddressType) -> Endpoint {
    let serving = pods::is_ready(pod);
    let terminating = pods::is_terminating(pod);
    let ready = service::publishes_not_ready(service) || (serving && !terminating);
    Endpoint {
        addresses: pods::addresses(pod, address_type),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
        hostname: pods::hostname_for(pod, service),
        ..Default::default()
    }
}

/// The ports this pod serves for the Service (upstream's `getEndpointPorts`): one per
/// Service port whose target the pod has; a headless Service may have none.
pub fn pod_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec_ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
    spec_ports
        .into_iter()
        .flatten()
        .filter_map(|service_port| {
            let port = pods::find_port(pod, service_port)?;
            Some(EndpointPort {
                name: Some(service_port.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(service_port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: service_port.app_protocol.clone(),
            })
        })
        .collect()
}

/// The labels a slice of this Service carries (upstream's `setEndpointSliceLabels`): the
/// Service's labels minus the reserved keys, the headless marker, the service name and the
/// managing controller. The flag says whether the non-reserved labels differ from `current`.
pub fn slice_labels(current: Option<&BTreeMap<String, String>>, service: &Service) -> (BTreeMap<String, String>, bool) {
    let reserved = |key: &str| key == SERVICE_NAME || key == MANAGED_BY || key == HEADLESS;
    let unreserved = |labels: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        labels.into_iter().flatten().filter(|(k, _)| !reserved(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let mut labels = unreserved(service.metadata.labels.as_ref());
    let changed = unreserved(current) != labels;
    if !service::has_cluster_ip(service) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels.insert(SERVICE_NAME.into(), service.metadata.name.clone().unwrap_or_default());
    labels.insert(MANAGED_BY.into(), SLICE_CONTROLLER.into());
    (labels, changed)
}

/// The controller reference every slice of the Service carries.
pub fn owner_reference(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: service.metadata.name.clone().unwrap_or_default(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// True when the slice's owner references include this Service (by uid).
pub fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let uid = service.metadata.uid.as_deref().unwrap_or("");
    let owners = slice.metadata.owner_references.iter().flatten();
    owners.into_iter().any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

/// The name prefix of a new slice: `<service>-`, as long as that stays a valid name.
pub fn generate_name(service_name: &str) -> String {
    if service_name.len() < 253 {
        format!("{service_name}-")
    } else {
        service_name.to_string()
    }
}

/// A new, empty slice for the Service with these ports (upstream's `newEndpointSlice`).
pub fn new_slice(service: &Service, ports: &[EndpointPort], address_type: AddressType) -> EndpointSlice {
    let (labels, _) = slice_labels(None, service);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(generate_name(service.metadata.name.as_deref().unwrap_or(""))),
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(service)]),
            ..Default::default()
        },
        address_type: address_type.as_str().into(),
        endpoints: Vec::new(),
        ports: Some(ports.to_vec()),
    }
}
