//! An informer against the real API server, over a link the test cuts: an object deleted while
//! the watch was down, with more changes than the server's watch window since, comes back as a
//! re-list, and the informer announces the deletion.
#![allow(clippy::unwrap_used)] // a test (or the bench) stops at the first broken assumption

use std::time::Duration;

use frontdoor_informers::{Change, InformerFactory, Shutdown, Subscription};
use frontdoor_testkit::InProcessServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, PostParams};
use kube::Api;

const WAIT: Duration = Duration::from_secs(30);

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}

/// The next change for which `wanted` is true, skipping the rest.
async fn next_change(
    changes: &mut Subscription<ConfigMap>,
    wanted: impl Fn(&Change<ConfigMap>) -> bool,
) -> Change<ConfigMap> {
    tokio::time::timeout(WAIT, async {
        loop {
            let change = changes.recv().await.expect("informer running");
            if wanted(&change) {
                return change;
            }
        }
    })
    .await
    .expect("the change arrives in time")
}

fn name_of(change: &Change<ConfigMap>) -> (&'static str, String) {
    match change {
        Change::Applied { new, .. } => ("applied", new.metadata.name.clone().unwrap_or_default()),
        Change::Deleted(gone) => ("deleted", gone.metadata.name.clone().unwrap_or_default()),
    }
}

#[tokio::test]
async fn a_deletion_missed_while_the_watch_was_down_is_announced_after_the_relist() {
    let server = InProcessServer::start_with_window(4).await;
    let direct: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let (client, partition) = server.partitioned_client();
    let (_stop, shutdown) = Shutdown::new();
    let factory = InformerFactory::new(client, Default::default(), shutdown);
    let informer = factory.namespaced::<ConfigMap>(frontdoor_informers::Scope::namespace(Some("default")));
    let mut changes = informer.subscribe();

    for name in ["keep", "doomed"] {
        direct.create(&PostParams::default(), &config_map(name)).await.unwrap();
    }
    next_change(&mut changes, |c| name_of(c) == ("applied", "doomed".into())).await;

    // The link breaks; meanwhile "doomed" goes, and more changes than the window can hold.
    partition.cut();
    direct.delete("doomed", &DeleteParams::default()).await.unwrap();
    for n in 0..8 {
        direct.create(&PostParams::default(), &config_map(&format!("filler-{n}"))).await.unwrap();
    }
    partition.heal();

    // The watcher cannot resume (410 Gone), re-lists, and the vanished object is announced.
    let deleted = next_change(&mut changes, |c| name_of(c).0 == "deleted").await;
    assert_eq!(name_of(&deleted), ("deleted", "doomed".into()));
    let store = informer.store();
    assert!(store.get(&kube::runtime::reflector::ObjectRef::new("doomed").within("default")).is_none());
    assert!(store.get(&kube::runtime::reflector::ObjectRef::new("filler-7").within("default")).is_some());
}

#[tokio::test]
async fn one_informer_per_type_and_scope_and_late_subscribers_see_the_store_first() {
    let server = InProcessServer::start().await;
    let direct: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    direct.create(&PostParams::default(), &config_map("early")).await.unwrap();
    let (_stop, shutdown) = Shutdown::new();
    let factory = InformerFactory::new(server.client(), Default::default(), shutdown);
    let scope = frontdoor_informers::Scope::namespace(Some("default"));
    let first = factory.namespaced::<ConfigMap>(scope.clone());
    tokio::time::timeout(WAIT, first.synced()).await.expect("synced");
    let second = factory.namespaced::<ConfigMap>(scope);
    assert!(second.has_synced(), "the same informer, already synced");

    // Two tasks wait on synced() at once: both are woken.
    let (a, b) = (first.synced(), second.synced());
    tokio::time::timeout(WAIT, async { tokio::join!(a, b) }).await.expect("both wake");

    // What the store holds comes first, as applied (beside "early", the namespace's root CA
    // ConfigMap, which the API server makes at a moment of its own).
    let mut late = second.subscribe();
    let change = next_change(&mut late, |c| name_of(c).1 != "kube-root-ca.crt").await;
    assert_eq!(name_of(&change), ("applied", "early".into()));
}

/// An object that the API accepts as Go does (a condition whose lastTransitionTime is client-go's
/// zero time, sent as null) but that k8s-openapi alone cannot decode does not stop the informer
/// from syncing, and reaches its store.
#[tokio::test]
async fn an_object_only_go_can_decode_does_not_stall_the_informer() {
    use k8s_openapi::api::core::v1::Service;
    let server = InProcessServer::start().await;
    let client = server.client();
    let service = serde_json::json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
    let url = "/api/v1/namespaces/default/services";
    let request =
        kube::core::Request::new(url).create(&PostParams::default(), service.to_string().into_bytes()).unwrap();
    client.request_text(request).await.unwrap();
    let status = serde_json::json!({"status": {"conditions": [{"type": "StatusUpdate", "status": "True", "reason": "E2E", "message": "m", "lastTransitionTime": null}]}});
    let patch = kube::api::Patch::Merge(&status);
    let request = kube::core::Request::new(url)
        .patch_subresource("status", "s", &kube::api::PatchParams::default(), &patch)
        .unwrap();
    client.request_text(request).await.unwrap();

    let (_stop, shutdown) = Shutdown::new();
    let factory = InformerFactory::new(server.client(), Default::default(), shutdown);
    let informer = factory.all::<Service>();
    tokio::time::timeout(WAIT, informer.synced()).await.expect("the informer syncs");
    let cached =
        informer.store().get(&kube::runtime::reflector::ObjectRef::new("s").within("default")).expect("cached");
    assert_eq!(cached.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].reason, "E2E");
}
