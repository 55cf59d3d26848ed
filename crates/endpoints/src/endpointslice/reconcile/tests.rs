use k8s_openapi::api::core::v1::{ContainerPort, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::pods::tests::{pod, terminating, with_phase};
use crate::wellknown::{HEADLESS, MANAGED_BY, SERVICE_NAME};

fn web() -> Service {
    let mut service = Service {
        spec: Some(ServiceSpec {
            selector: Some([("app".to_string(), "web".to_string())].into()),
            cluster_ip: Some("10.96.0.20".into()),
            ip_families: Some(vec!["IPv4".into()]),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    service.metadata.name = Some("web".into());
    service.metadata.namespace = Some("default".into());
    service.metadata.uid = Some("svc-uid".into());
    service
}

fn pods(count: usize, ready: bool) -> Vec<Pod> {
    (0..count).map(|i| pod(&format!("web-{i}"), &format!("10.244.{}.{}", i / 250, i % 250 + 2), ready)).collect()
}

/// Plays the API server: applies changes to the stored slices, naming creates.
#[derive(Default)]
struct Server {
    slices: Vec<EndpointSlice>,
    next: usize,
}

impl Server {
    fn apply(&mut self, changes: &SliceChanges) {
        for slice in &changes.delete {
            self.slices.retain(|s| s.metadata.name != slice.metadata.name);
        }
        for slice in &changes.update {
            let stored =
                self.slices.iter_mut().find(|s| s.metadata.name == slice.metadata.name).expect("updated slice exists");
            *stored = slice.clone();
        }
        for slice in &changes.create {
            let mut slice = slice.clone();
            self.next += 1;
            slice.metadata.name = Some(format!("{}{}", slice.metadata.generate_name.clone().unwrap(), self.next));
            self.slices.push(slice);
        }
    }

    /// Reconciles, applies, and checks that a second reconcile has nothing left to do.
    fn sync(&mut self, service: &Service, pods: &[Pod], max: usize) -> SliceChanges {
        let changes = self.plan(service, pods, max);
        self.apply(&changes);
        let again = self.plan(service, pods, max);
        assert!(again.is_empty(), "a second reconcile must be a no-op: {again:#?}");
        changes
    }

    fn plan(&self, service: &Service, pods: &[Pod], max: usize) -> SliceChanges {
        let pods: Vec<&Pod> = pods.iter().collect();
        let existing: Vec<&EndpointSlice> = self.slices.iter().collect();
        reconcile(service, &pods, &existing, max)
    }

    fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.slices.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        sizes
    }
}

fn counts(changes: &SliceChanges) -> (usize, usize, usize) {
    (changes.create.len(), changes.update.len(), changes.delete.len())
}

fn conditions(slice: &EndpointSlice, ip: &str) -> (Option<bool>, Option<bool>, Option<bool>) {
    let endpoint = slice.endpoints.iter().find(|e| e.addresses == [ip]).unwrap_or_else(|| panic!("{ip} in slice"));
    let c = endpoint.conditions.clone().unwrap();
    (c.ready, c.serving, c.terminating)
}

#[test]
fn a_service_with_no_pods_gets_one_placeholder() {
    let mut server = Server::default();
    let changes = server.sync(&web(), &[], 100);
    assert_eq!(counts(&changes), (1, 0, 0));
    let slice = &server.slices[0];
    assert!(slice.endpoints.is_empty());
    assert_eq!(slice.ports, Some(vec![]));
    assert_eq!(slice.address_type, "IPv4");
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(labels[SERVICE_NAME], "web");
    assert_eq!(labels[MANAGED_BY], "endpointslice-controller.k8s.io");
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller, owner.block_owner_deletion),
        ("Service", "svc-uid", Some(true), Some(true))
    );
}

#[test]
fn endpoints_carry_conditions_ports_node_and_target() {
    let mut server = Server::default();
    let pods =
        vec![pod("a", "10.244.0.5", true), pod("b", "10.244.0.6", false), terminating(pod("c", "10.244.0.7", true))];
    server.sync(&web(), &pods, 100);
    assert_eq!(server.sizes(), [3]);
    let slice = &server.slices[0];
    let port = &slice.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (Some("http"), Some(8080), Some("TCP")));
    let cases = [
        ("10.244.0.5", (Some(true), Some(true), Some(false))),
        ("10.244.0.6", (Some(false), Some(false), Some(false))),
        ("10.244.0.7", (Some(false), Some(true), Some(true))),
    ];
    for (ip, expected) in cases {
        assert_eq!(conditions(slice, ip), expected, "{ip}");
    }
    let endpoint = &slice.endpoints[0];
    assert_eq!(endpoint.node_name.as_deref(), Some("node-1"));
    let target = endpoint.target_ref.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref(), target.uid.as_deref()),
        (Some("Pod"), Some("a"), Some("uid-a"))
    );
}

#[test]
fn pods_without_ip_or_finished_are_left_out() {
    let mut server = Server::default();
    let pods =
        vec![pod("a", "10.244.0.5", true), pod("b", "", true), with_phase(pod("c", "10.244.0.7", true), "Succeeded")];
    server.sync(&web(), &pods, 100);
    assert_eq!(server.sizes(), [1]);
}

#[test]
fn publish_not_ready_addresses_makes_every_endpoint_ready() {
    let mut service = web();
    service.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    let mut server = Server::default();
    server.sync(&service, &[pod("a", "10.244.0.5", false), terminating(pod("b", "10.244.0.6", false))], 100);
    assert_eq!(conditions(&server.slices[0], "10.244.0.5"), (Some(true), Some(false), Some(false)));
    assert_eq!(conditions(&server.slices[0], "10.244.0.6"), (Some(true), Some(false), Some(true)));
}

#[test]
fn slices_hold_at_most_max_endpoints() {
    let cases = [
        (1, 100, vec![1]),
        (100, 100, vec![100]),
        (150, 100, vec![50, 100]),
        (250, 100, vec![50, 100, 100]),
        (7, 3, vec![1, 3, 3]),
    ];
    for (count, max, expected) in cases {
        let mut server = Server::default();
        server.sync(&web(), &pods(count, true), max);
        assert_eq!(server.sizes(), expected, "{count} pods, max {max}");
    }
}

#[test]
fn a_readiness_flip_updates_only_the_slice_holding_the_pod() {
    let mut server = Server::default();
    let mut all = pods(150, true);
    server.sync(&web(), &all, 100);
    all[120] = pod("web-120", "10.244.0.122", false);
    let changes = server.sync(&web(), &all, 100);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(server.sizes(), [50, 100]);
    let slice = server.slices.iter().find(|s| s.endpoints.iter().any(|e| e.addresses == ["10.244.0.122"])).unwrap();
    assert_eq!(conditions(slice, "10.244.0.122").0, Some(false));
}

#[test]
fn nothing_changes_when_nothing_changed() {
    let mut server = Server::default();
    let all = pods(120, true);
    server.sync(&web(), &all, 100);
    // A pod's resourceVersion or unrelated fields do not matter.
    let mut touched = all.clone();
    touched[3].metadata.resource_version = Some("99".into());
    touched[3].metadata.annotations = Some([("x".to_string(), "y".to_string())].into());
    assert!(server.plan(&web(), &touched, 100).is_empty());
}

#[test]
fn new_endpoints_fill_existing_slices_before_new_ones_are_made() {
    let mut server = Server::default();
    let all = pods(60, true);
    server.sync(&web(), &all[..50], 100);
    let changes = server.sync(&web(), &all, 100);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(server.sizes(), [60]);
}

#[test]
fn removed_pods_leave_their_slice_and_an_emptied_slice_goes() {
    let mut server = Server::default();
    let all = pods(150, true);
    server.sync(&web(), &all, 100);
    // Drop the 50 that share a slice: that slice is deleted, the other untouched.
    let small = server.slices.iter().find(|s| s.endpoints.len() == 50).unwrap().clone();
    let gone: Vec<String> = small.endpoints.iter().map(|e| e.target_ref.clone().unwrap().name.unwrap()).collect();
    let kept: Vec<Pod> = all.iter().filter(|p| !gone.contains(p.metadata.name.as_ref().unwrap())).cloned().collect();
    let changes = server.sync(&web(), &kept, 100);
    assert_eq!(counts(&changes), (0, 0, 1));
    assert_eq!(server.sizes(), [100]);
    // No pods at all: the last slice becomes the placeholder in place.
    let changes = server.sync(&web(), &[], 100);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(server.sizes(), [0]);
    assert_eq!(server.slices[0].ports, Some(vec![]));
}

#[test]
fn named_target_ports_group_pods_by_the_port_they_resolve_to() {
    let mut service = web();
    service.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].target_port = Some(IntOrString::String("http".into()));
    let mut other = pod("b", "10.244.0.6", true);
    other.spec.as_mut().unwrap().containers[0].ports =
        Some(vec![ContainerPort { name: Some("http".into()), container_port: 9090, ..Default::default() }]);
    let mut portless = pod("c", "10.244.0.7", true);
    portless.spec.as_mut().unwrap().containers[0].ports = None;
    let mut server = Server::default();
    server.sync(&service, &[pod("a", "10.244.0.5", true), other, portless], 100);
    let mut by_port: Vec<(Vec<i32>, Vec<String>)> = server
        .slices
        .iter()
        .map(|s| {
            (
                s.ports.iter().flatten().filter_map(|p| p.port).collect(),
                s.endpoints.iter().map(|e| e.addresses[0].clone()).collect(),
            )
        })
        .collect();
    by_port.sort();
    assert_eq!(
        by_port,
        [
            (vec![], vec!["10.244.0.7".to_string()]),
            (vec![8080], vec!["10.244.0.5".to_string()]),
            (vec![9090], vec!["10.244.0.6".to_string()])
        ]
    );
}

#[test]
fn a_port_change_rewrites_slices_in_place() {
    let mut server = Server::default();
    server.sync(&web(), &pods(3, true), 100);
    let mut service = web();
    service.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].target_port = Some(IntOrString::Int(9000));
    let changes = server.sync(&service, &pods(3, true), 100);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(server.slices[0].ports.as_ref().unwrap()[0].port, Some(9000));
}

#[test]
fn headless_services_and_hostnames() {
    let mut service = web();
    let spec = service.spec.as_mut().unwrap();
    spec.cluster_ip = Some("None".into());
    spec.ports = None;
    let mut member = pod("web-0", "10.244.0.5", true);
    member.spec.as_mut().unwrap().hostname = Some("web-0".into());
    member.spec.as_mut().unwrap().subdomain = Some("web".into());
    let mut server = Server::default();
    server.sync(&service, &[member], 100);
    let slice = &server.slices[0];
    assert_eq!(slice.metadata.labels.as_ref().unwrap().get(HEADLESS).map(String::as_str), Some(""));
    assert_eq!(slice.ports, Some(vec![]));
    assert_eq!(slice.endpoints[0].hostname.as_deref(), Some("web-0"));
}

#[test]
fn service_labels_are_copied_and_follow_changes() {
    let mut service = web();
    service.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let mut server = Server::default();
    server.sync(&service, &pods(2, true), 100);
    assert_eq!(server.slices[0].metadata.labels.as_ref().unwrap()["team"], "a");
    service.metadata.labels = Some([("team".to_string(), "b".to_string())].into());
    let changes = server.sync(&service, &pods(2, true), 100);
    assert_eq!(counts(&changes), (0, 1, 0));
    assert_eq!(server.slices[0].metadata.labels.as_ref().unwrap()["team"], "b");
}

#[test]
fn slices_of_another_owner_or_family_are_deleted() {
    let mut server = Server::default();
    server.sync(&web(), &pods(2, true), 100);
    let mut stranger = server.slices[0].clone();
    stranger.metadata.name = Some("web-old".into());
    stranger.metadata.owner_references.as_mut().unwrap()[0].uid = "old-uid".into();
    let mut v6 = server.slices[0].clone();
    v6.metadata.name = Some("web-v6".into());
    v6.address_type = "IPv6".into();
    server.slices.push(stranger);
    server.slices.push(v6);
    let changes = server.sync(&web(), &pods(2, true), 100);
    assert_eq!(counts(&changes), (0, 0, 2));
}

#[test]
fn a_terminating_service_gets_no_new_slices() {
    let mut service = web();
    service.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()));
    let changes = Server::default().plan(&service, &pods(3, true), 100);
    assert!(changes.create.is_empty());
}
