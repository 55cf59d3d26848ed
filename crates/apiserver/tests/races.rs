//! Writes that race: a DELETE or PUT without preconditions applies to whatever version is
//! current, as upstream's, instead of answering 409 because another write came first.
#![allow(clippy::unwrap_used)] // a test stops at the first broken assumption

use frontdoor_testkit::InProcessServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"n": "0"}})).unwrap()
}

/// Changes `name` as fast as it can until the object is gone.
fn spawn_writer(api: Api<ConfigMap>, name: String) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut writes = 0;
        loop {
            let patch = json!({"data": {"n": writes.to_string()}});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => writes += 1,
                Err(_) => return writes,
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unconditional_deletes_and_updates_win_over_concurrent_writes() {
    let server = InProcessServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut raced = 0;
    for round in 0..30 {
        let name = format!("cm-{round}");
        api.create(&PostParams::default(), &config_map(&name)).await.unwrap();
        let writers: Vec<_> = (0..3).map(|_| spawn_writer(api.clone(), name.clone())).collect();
        // Let the writers get going: wait until the object has changed a few times.
        frontdoor_testkit::eventually("writes", std::time::Duration::from_secs(10), || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let n: usize = api.get(&name).await.ok()?.data?.get("n")?.parse().ok()?;
                (n >= 3).then_some(())
            }
        })
        .await;
        // A PUT without a resourceVersion, then a DELETE without preconditions: both succeed.
        let mut replacement = config_map(&name);
        replacement.data = Some([("replaced".to_string(), "yes".to_string())].into());
        api.replace(&name, &PostParams::default(), &replacement).await.unwrap();
        api.delete(&name, &DeleteParams::default()).await.unwrap();
        for writer in writers {
            raced += writer.await.unwrap();
        }
    }
    assert!(raced > 90, "the writers did race the deletes ({raced} writes)");
}
