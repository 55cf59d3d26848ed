use k8s_openapi::api::core::v1::{EndpointPort as CorePort, EndpointSubset};

use super::*;

fn custom(subsets: Vec<EndpointSubset>) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some("external".into()),
            namespace: Some("default".into()),
            uid: Some("ep-uid".into()),
            labels: Some([("team".to_string(), "a".to_string())].into()),
            annotations: Some(
                [(LAST_APPLIED.to_string(), "{}".to_string()), ("note".to_string(), "x".to_string())].into(),
            ),
            ..Default::default()
        },
        subsets: Some(subsets),
    }
}

fn subset(ready: &[&str], not_ready: &[&str], ports: &[i32]) -> EndpointSubset {
    let addresses = |ips: &[&str]| -> Option<Vec<EndpointAddress>> {
        (!ips.is_empty())
            .then(|| ips.iter().map(|ip| EndpointAddress { ip: ip.to_string(), ..Default::default() }).collect())
    };
    EndpointSubset {
        addresses: addresses(ready),
        not_ready_addresses: addresses(not_ready),
        ports: Some(
            ports.iter().map(|p| CorePort { name: Some(format!("p{p}")), port: *p, ..Default::default() }).collect(),
        ),
    }
}

/// Applies changes like the API server would and checks the next reconcile is a no-op.
fn sync(stored: &mut Vec<EndpointSlice>, endpoints: &Endpoints, max: usize) -> SliceChanges {
    let changes = reconcile(endpoints, &stored.iter().collect::<Vec<_>>(), max);
    stored.retain(|s| !changes.delete.iter().any(|d| d.metadata.name == s.metadata.name));
    for update in &changes.update {
        *stored.iter_mut().find(|s| s.metadata.name == update.metadata.name).unwrap() = update.clone();
    }
    for (i, create) in changes.create.iter().enumerate() {
        let mut create = create.clone();
        create.metadata.name = Some(format!("external-{}{i}", stored.len()));
        stored.push(create);
    }
    let again = reconcile(endpoints, &stored.iter().collect::<Vec<_>>(), max);
    assert!(again.is_empty(), "second reconcile must be a no-op: {again:#?}");
    changes
}

fn summary(stored: &[EndpointSlice]) -> Vec<String> {
    let mut lines: Vec<String> = stored
        .iter()
        .map(|s| {
            let ports: Vec<String> = s.ports.iter().flatten().map(|p| p.port.unwrap().to_string()).collect();
            let eps: Vec<String> = s
                .endpoints
                .iter()
                .map(|e| {
                    format!(
                        "{}{}",
                        e.addresses[0],
                        if e.conditions.as_ref().unwrap().ready == Some(true) { "" } else { "(not ready)" }
                    )
                })
                .collect();
            format!("{} [{}] {}", s.address_type, ports.join(","), eps.join(","))
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn endpoints_are_mirrored_with_labels_annotations_and_owner() {
    let endpoints = custom(vec![subset(&["10.1.2.3"], &["10.1.2.4"], &[80])]);
    let mut stored = Vec::new();
    let changes = sync(&mut stored, &endpoints, 1000);
    assert_eq!(changes.create.len(), 1);
    assert_eq!(summary(&stored), ["IPv4 [80] 10.1.2.3,10.1.2.4(not ready)"]);
    let meta = &stored[0].metadata;
    let labels = meta.labels.clone().unwrap();
    assert_eq!(
        (labels[SERVICE_NAME].as_str(), labels[MANAGED_BY].as_str(), labels["team"].as_str()),
        ("external", MIRRORING_CONTROLLER, "a")
    );
    assert_eq!(meta.annotations.clone().unwrap(), [("note".to_string(), "x".to_string())].into());
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Endpoints", "ep-uid", Some(true)));
}

#[test]
fn updates_rewrite_the_slice_in_place_and_removal_deletes_it() {
    let mut stored = Vec::new();
    sync(&mut stored, &custom(vec![subset(&["10.1.2.3"], &[], &[80])]), 1000);
    let changes = sync(&mut stored, &custom(vec![subset(&["10.2.3.4"], &[], &[80])]), 1000);
    assert_eq!((changes.create.len(), changes.update.len(), changes.delete.len()), (0, 1, 0));
    assert_eq!(summary(&stored), ["IPv4 [80] 10.2.3.4"]);
    // A port change is a different port set: the new slice reuses the old one.
    let changes = sync(&mut stored, &custom(vec![subset(&["10.2.3.4"], &[], &[8080])]), 1000);
    assert_eq!((changes.create.len(), changes.update.len(), changes.delete.len()), (0, 1, 0));
    let changes = sync(&mut stored, &custom(vec![]), 1000);
    assert_eq!(changes.delete.len(), 1);
    assert!(stored.is_empty());
}

#[test]
fn families_and_port_sets_get_slices_of_their_own_and_bad_ips_are_skipped() {
    let endpoints =
        custom(vec![subset(&["10.1.2.3", "fd00::1", "not-an-ip"], &[], &[80]), subset(&["10.1.2.5"], &[], &[443])]);
    let mut stored = Vec::new();
    sync(&mut stored, &endpoints, 1000);
    assert_eq!(summary(&stored), ["IPv4 [443] 10.1.2.5", "IPv4 [80] 10.1.2.3", "IPv6 [80] fd00::1"]);
}

#[test]
fn at_most_max_addresses_per_subset_are_mirrored() {
    let ips: Vec<String> = (1..=5).map(|i| format!("10.1.2.{i}")).collect();
    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
    let mut stored = Vec::new();
    sync(&mut stored, &custom(vec![subset(&ips, &[], &[80])]), 3);
    assert_eq!(stored[0].endpoints.len(), 3);
}

#[test]
fn label_changes_on_the_endpoints_are_mirrored() {
    let mut stored = Vec::new();
    let mut endpoints = custom(vec![subset(&["10.1.2.3"], &[], &[80])]);
    sync(&mut stored, &endpoints, 1000);
    endpoints.metadata.labels = Some([("team".to_string(), "b".to_string())].into());
    let changes = sync(&mut stored, &endpoints, 1000);
    assert_eq!(changes.update.len(), 1);
    assert_eq!(stored[0].metadata.labels.as_ref().unwrap()["team"], "b");
}

#[test]
fn skip_mirror_and_leader_election_are_not_mirrored() {
    let mut endpoints = custom(vec![]);
    assert!(should_mirror(&endpoints));
    endpoints.metadata.labels = Some([(SKIP_MIRROR.to_string(), "true".to_string())].into());
    assert!(!should_mirror(&endpoints));
    let mut lock = custom(vec![]);
    lock.metadata.annotations = Some([(LEADER_ELECTION.to_string(), "{}".to_string())].into());
    assert!(!should_mirror(&lock));
}
