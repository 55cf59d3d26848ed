//! Steps 3 and 4 run against the real `frontdoor up`, started in a network namespace made for
//! them (the bench's thread `unshare`s it, as the node benchmark does): its API client, probes
//! and `wrk` run in that namespace too, and the namespace goes when the thread ends.

use std::time::Duration;

use frontdoor_testkit::{ApiClient, Frontdoor};
use serde_json::Value;

/// Creates an object, failing the bench if the API refuses it; returns the created object.
pub async fn create(client: &ApiClient, collection: &str, body: Value) -> Value {
    let (status, answer) = client.send("POST", collection, Some(body.to_string())).await;
    assert_eq!(status, 201, "create in {collection}: {}", String::from_utf8_lossy(&answer));
    serde_json::from_slice(&answer).expect("a JSON object")
}

/// Waits until `probe` gives a value, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the node in the calling thread's (private) namespace, after `prepare` set it up.
pub fn start(binary: &std::path::Path, prepare: impl FnOnce()) -> Frontdoor {
    prepare();
    Frontdoor::start_node_in_current_namespace(binary, &["--node-name", "bench"])
}
