//! What the controllers need to know about a Pod: readiness, termination, addresses, and
//! which container port a Service port points at.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::service::AddressType;

pub use frontdoor_informers::pods::{is_ready, is_terminal, is_terminating};

/// The pod's IPs (`status.podIPs`, else `status.podIP`), parsed; unparsable ones are skipped.
pub fn ips(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let listed: Vec<&str> = status.pod_ips.iter().flatten().map(|p| p.ip.as_str()).collect();
    let raw = if listed.is_empty() { status.pod_ip.iter().map(String::as_str).collect() } else { listed };
    raw.into_iter().filter_map(|ip| ip.parse().ok()).collect()
}

/// The pod's addresses of one family, as strings in canonical form.
pub fn addresses(pod: &Pod, address_type: AddressType) -> Vec<String> {
    ips(pod).into_iter().filter(|ip| AddressType::of(*ip) == address_type).map(|ip| ip.to_string()).collect()
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal, has an IP, and (unless
/// `include_terminating`) not being deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_terminal(pod) || ips(pod).is_empty() {
        return false;
    }
    include_terminating || !is_terminating(pod)
}

/// A pod gets a `hostname` in the Service's endpoints when it names the Service as its
/// subdomain (the StatefulSet / headless Service pattern).
pub fn hostname_for(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    let same_namespace = pod.metadata.namespace == service.metadata.namespace;
    let subdomain_matches = spec.subdomain.as_deref() == service.metadata.name.as_deref();
    (same_namespace && subdomain_matches).then(|| hostname.to_string())
}

/// The port a Service port reaches on this pod (upstream's `FindPort`): a numeric
/// `targetPort` as is; a named one looked up by name and protocol among the containers'
/// ports (and those of restartable init containers, i.e. sidecars). `None` when the pod
/// has no such port.
pub fn find_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    let protocol = service_port.protocol.as_deref().unwrap_or("TCP");
    match &service_port.target_port {
        None => Some(service_port.port),
        Some(IntOrString::Int(port)) => Some(*port),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars =
                spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Whether a pod update can change any endpoint (upstream's `podEndpointsChanged`, plus the
/// phase): labels, hostname/subdomain, deletion, readiness, IPs, node or phase. Other
/// updates (annotations, container statuses...) wake no Service.
pub fn endpoints_may_differ(before: &Pod, after: &Pod) -> bool {
    let spec = |p: &Pod| p.spec.as_ref().map(|s| (s.hostname.clone(), s.subdomain.clone(), s.node_name.clone()));
    let phase = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.clone());
    before.metadata.labels != after.metadata.labels
        || before.metadata.deletion_timestamp != after.metadata.deletion_timestamp
        || spec(before) != spec(after)
        || is_ready(before) != is_ready(after)
        || ips(before) != ips(after)
        || phase(before) != phase(after)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    /// A pod in `default` with labels `app=web`, an IP, and the given readiness.
    pub fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                containers: vec![Container {
                    name: "app".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
                pod_ips: (!ip.is_empty()).then(|| vec![PodIP { ip: ip.to_string() }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    pub fn terminating(mut pod: Pod) -> Pod {
        pod.metadata.deletion_timestamp = Some(Time(Default::default()));
        pod
    }

    pub fn with_phase(mut pod: Pod, phase: &str) -> Pod {
        pod.status.as_mut().unwrap().phase = Some(phase.into());
        pod
    }

    #[test]
    fn membership() {
        let cases = [
            ("running", pod("a", "10.244.0.5", true), false, true),
            ("not ready is still a member", pod("a", "10.244.0.5", false), false, true),
            ("no ip", pod("a", "", true), false, false),
            ("succeeded", with_phase(pod("a", "10.244.0.5", true), "Succeeded"), true, false),
            ("failed", with_phase(pod("a", "10.244.0.5", true), "Failed"), true, false),
            ("terminating, excluded", terminating(pod("a", "10.244.0.5", true)), false, false),
            ("terminating, included", terminating(pod("a", "10.244.0.5", true)), true, true),
        ];
        for (what, pod, include_terminating, expected) in cases {
            assert_eq!(should_be_in_endpoints(&pod, include_terminating), expected, "{what}");
        }
    }

    #[test]
    fn ports() {
        let pod = pod("a", "10.244.0.5", true);
        let port = |target: Option<IntOrString>, protocol: Option<&str>| ServicePort {
            port: 80,
            target_port: target,
            protocol: protocol.map(String::from),
            ..Default::default()
        };
        let cases = [
            (port(None, None), Some(80)),
            (port(Some(IntOrString::Int(9376)), None), Some(9376)),
            (port(Some(IntOrString::String("http".into())), Some("TCP")), Some(8080)),
            (port(Some(IntOrString::String("http".into())), Some("UDP")), None),
            (port(Some(IntOrString::String("metrics".into())), None), None),
        ];
        for (service_port, expected) in cases {
            assert_eq!(find_port(&pod, &service_port), expected, "{service_port:?}");
        }
    }

    #[test]
    fn only_endpoint_relevant_updates_count() {
        let before = pod("a", "10.244.0.5", true);
        let mut annotated = before.clone();
        annotated.metadata.annotations = Some([("x".to_string(), "y".to_string())].into());
        annotated.metadata.resource_version = Some("7".into());
        let mut relabelled = before.clone();
        relabelled.metadata.labels = Some([("app".to_string(), "api".to_string())].into());
        let cases = [
            ("annotation", annotated, false),
            ("labels", relabelled, true),
            ("readiness", pod("a", "10.244.0.5", false), true),
            ("ip", pod("a", "10.244.0.6", true), true),
            ("deletion", terminating(before.clone()), true),
            ("phase", with_phase(before.clone(), "Succeeded"), true),
        ];
        for (what, after, expected) in cases {
            assert_eq!(endpoints_may_differ(&before, &after), expected, "{what}");
        }
    }

    #[test]
    fn hostnames() {
        let mut service = Service::default();
        service.metadata.name = Some("db".into());
        service.metadata.namespace = Some("default".into());
        let mut member = pod("db-0", "10.244.0.5", true);
        assert_eq!(hostname_for(&member, &service), None);
        let spec = member.spec.as_mut().unwrap();
        spec.hostname = Some("db-0".into());
        spec.subdomain = Some("db".into());
        assert_eq!(hostname_for(&member, &service).as_deref(), Some("db-0"));
        member.spec.as_mut().unwrap().subdomain = Some("other".into());
        assert_eq!(hostname_for(&member, &service), None);
    }
}
