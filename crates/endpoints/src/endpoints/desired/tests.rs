use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::pods::tests::{pod, terminating};

fn web(ports: &[(&str, i32)]) -> Service {
    let mut service = Service {
        spec: Some(ServiceSpec {
            selector: Some([("app".to_string(), "web".to_string())].into()),
            cluster_ip: Some("10.96.0.20".into()),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, target)| ServicePort {
                        name: Some(name.to_string()),
                        port: 80,
                        protocol: Some("TCP".into()),
                        target_port: Some(IntOrString::Int(*target)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    service.metadata.name = Some("web".into());
    service.metadata.namespace = Some("default".into());
    service
}

/// A subset written as text: `ready ips | not-ready ips | ports`.
fn describe(subsets: &[EndpointSubset]) -> Vec<String> {
    subsets
        .iter()
        .map(|s| {
            let ips = |list: &Option<Vec<EndpointAddress>>| {
                list.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>().join(",")
            };
            let ports = s
                .ports
                .iter()
                .flatten()
                .map(|p| format!("{}:{}", p.name.clone().unwrap_or_default(), p.port))
                .collect::<Vec<_>>()
                .join(",");
            format!("{} | {} | {}", ips(&s.addresses), ips(&s.not_ready_addresses), ports)
        })
        .collect()
}

fn refs(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter().collect()
}

#[test]
fn subsets_split_ready_from_not_ready_and_sort_addresses() {
    let pods = [pod("b", "10.244.0.6", true), pod("a", "10.244.0.10", true), pod("c", "10.244.0.7", false)];
    let subsets = desired_subsets(&web(&[("http", 8080)]), &refs(&pods));
    // Addresses sort as strings, as upstream's bytes.Compare does.
    assert_eq!(describe(&subsets), ["10.244.0.10,10.244.0.6 | 10.244.0.7 | http:8080"]);
    let address = &subsets[0].addresses.as_ref().unwrap()[0];
    assert_eq!(address.node_name.as_deref(), Some("node-1"));
    assert_eq!(address.target_ref.as_ref().unwrap().name.as_deref(), Some("a"));
}

#[test]
fn terminating_pods_are_left_out_unless_not_ready_addresses_are_published() {
    let pods = [pod("a", "10.244.0.5", true), terminating(pod("b", "10.244.0.6", true))];
    assert_eq!(describe(&desired_subsets(&web(&[("http", 8080)]), &refs(&pods))), ["10.244.0.5 |  | http:8080"]);
    let mut service = web(&[("http", 8080)]);
    service.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let pods = [pod("a", "10.244.0.5", false), terminating(pod("b", "10.244.0.6", false))];
    assert_eq!(describe(&desired_subsets(&service, &refs(&pods))), ["10.244.0.5,10.244.0.6 |  | http:8080"]);
}

#[test]
fn ports_offered_by_the_same_addresses_share_a_subset() {
    let service = web(&[("http", 8080), ("metrics", 9090)]);
    let pods = [pod("a", "10.244.0.5", true), pod("b", "10.244.0.6", true)];
    assert_eq!(
        describe(&desired_subsets(&service, &refs(&pods))),
        ["10.244.0.5,10.244.0.6 |  | http:8080,metrics:9090"]
    );
}

#[test]
fn repack_merges_and_not_ready_wins() {
    let address = |ip: &str| EndpointAddress { ip: ip.into(), ..Default::default() };
    let port = |name: &str, number: i32| EndpointPort { name: Some(name.into()), port: number, ..Default::default() };
    let input = vec![
        EndpointSubset {
            addresses: Some(vec![address("10.0.0.1")]),
            ports: Some(vec![port("a", 1)]),
            ..Default::default()
        },
        EndpointSubset {
            not_ready_addresses: Some(vec![address("10.0.0.1")]),
            ports: Some(vec![port("a", 1)]),
            ..Default::default()
        },
        EndpointSubset {
            addresses: Some(vec![address("10.0.0.2")]),
            ports: Some(vec![port("a", 1), port("b", 2)]),
            ..Default::default()
        },
        EndpointSubset { addresses: Some(vec![address("10.0.0.3")]), ports: None, ..Default::default() },
    ];
    let mut lines = describe(&repack(&input));
    lines.sort();
    assert_eq!(lines, ["10.0.0.2 |  | b:2", "10.0.0.2 | 10.0.0.1 | a:1", "10.0.0.3 |  | "]);
}

#[test]
fn headless_services_without_ports_still_list_addresses() {
    let mut service = web(&[]);
    service.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let subsets = desired_subsets(&service, &refs(&[pod("a", "10.244.0.5", true)]));
    assert_eq!(describe(&subsets), ["10.244.0.5 |  | "]);
    let endpoints = plan(&service, &refs(&[pod("a", "10.244.0.5", true)]), None).unwrap();
    assert_eq!(endpoints.metadata.labels.unwrap().get(HEADLESS).map(String::as_str), Some(""));
}

#[test]
fn plan_creates_then_leaves_alone_then_updates() {
    let service = web(&[("http", 8080)]);
    let pods = [pod("a", "10.244.0.5", true)];
    let created = plan(&service, &refs(&pods), None).expect("create");
    assert_eq!(created.metadata.name.as_deref(), Some("web"));
    assert_eq!(created.metadata.labels.as_ref().unwrap()[SKIP_MIRROR], "true");
    assert_eq!(plan(&service, &refs(&pods), Some(&created)), None);
    let not_ready = [pod("a", "10.244.0.5", false)];
    let updated = plan(&service, &refs(&not_ready), Some(&created)).expect("update");
    assert_eq!(describe(updated.subsets.as_deref().unwrap()), [" | 10.244.0.5 | http:8080"]);
    let empty = plan(&service, &[], Some(&updated)).expect("update");
    assert_eq!(empty.subsets, None);
}

#[test]
fn over_capacity_is_truncated_and_annotated() {
    let service = web(&[("http", 8080)]);
    let mut pods: Vec<Pod> =
        (0..1200).map(|i| pod(&format!("p{i}"), &format!("10.244.{}.{}", i / 200, i % 200 + 1), i % 2 == 0)).collect();
    pods.truncate(1200);
    let endpoints = plan(&service, &refs(&pods), None).unwrap();
    let subsets = endpoints.subsets.as_deref().unwrap();
    let ready: usize = subsets.iter().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).sum();
    let not_ready: usize = subsets.iter().map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len)).sum();
    assert_eq!((ready, not_ready), (600, 400));
    assert_eq!(endpoints.metadata.annotations.as_ref().unwrap()[OVER_CAPACITY], "truncated");
    assert_eq!(plan(&service, &refs(&pods), Some(&endpoints)), None, "truncated endpoints are stable");
    let fewer = plan(&service, &refs(&pods[..10]), Some(&endpoints)).unwrap();
    assert!(fewer.metadata.annotations.is_none());
}

#[test]
fn truncation_prefers_ready_addresses() {
    let address = |i: usize| EndpointAddress { ip: format!("10.0.{}.{}", i / 200, i % 200), ..Default::default() };
    let mut subsets = vec![
        EndpointSubset {
            addresses: Some((0..8).map(address).collect()),
            not_ready_addresses: Some((8..10).map(address).collect()),
            ..Default::default()
        },
        EndpointSubset { addresses: Some((10..14).map(address).collect()), ..Default::default() },
    ];
    assert!(truncate(&mut subsets, 6));
    let ready: Vec<usize> = subsets.iter().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).collect();
    assert_eq!(ready, [4, 2]);
    assert!(subsets.iter().all(|s| s.not_ready_addresses.is_none()));
    assert!(!truncate(&mut subsets, 6));
}
