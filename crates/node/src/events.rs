//! Recording core/v1 Events about pods, as the kubelet and scheduler do (what `kubectl describe`
//! shows under Events). Recording is best effort: a failure is logged, never fatal.
//!
//! As upstream's event broadcaster, a [`Recorder`] queues events and one task writes them in
//! order, so an event never delays the work it reports. The task writes once the queue has been
//! quiet for [`QUIET`] (or its oldest event has waited [`MOST_DELAY`]): writing an event costs
//! about as much as the pod write it reports, so in a burst (a hundred pods starting) the events
//! trail behind the work instead of taking a share of the CPU from it. The components of one
//! process (kubelet, scheduler) share the queue ([`Recorder::for_component`]), so the quiet
//! moment is the whole process's: the scheduler's events do not go out in the middle of the
//! kubelet's burst.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Upstream's event broadcaster queue length; events beyond it are dropped (and logged).
const QUEUE: usize = 1000;

/// How long the queue must stay empty before queued events are written.
const QUIET: Duration = Duration::from_millis(20);
/// The longest an event waits for a quiet moment.
const MOST_DELAY: Duration = Duration::from_millis(500);

/// Records events for one component (`kubelet`, `default-scheduler`).
#[derive(Debug, Clone)]
pub struct Recorder {
    component: &'static str,
    queue: mpsc::Sender<Queued>,
}

/// An event waiting to be written: its namespace and its JSON.
struct Queued {
    namespace: String,
    event: Value,
}

impl Recorder {
    /// Starts the writer task (on the current tokio runtime); it ends when every clone of the
    /// recorder is gone and the queue is written.
    pub fn new(client: kube::Client, component: &'static str) -> Recorder {
        let (queue, mut pending) = mpsc::channel::<Queued>(QUEUE);
        tokio::spawn(async move {
            while let Some(batch) = next_batch(&mut pending, QUIET, MOST_DELAY).await {
                for Queued { namespace, event } in batch {
                    if let Err(error) = write(&client, &namespace, &event).await {
                        tracing::debug!(%error, reason = %event["reason"], "recording an event failed");
                    }
                }
            }
        });
        Recorder { component, queue }
    }

    /// A recorder for another component of this process, writing through the same queue.
    pub fn for_component(&self, component: &'static str) -> Recorder {
        Recorder { component, queue: self.queue.clone() }
    }

    /// An event about a pod, optionally about one of its containers (`spec.containers{name}`).
    pub fn record(&self, pod: &Pod, container: Option<&str>, kind: &str, reason: &str, message: &str) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let event = pod_event(pod, &namespace, container, kind, reason, message, self.component);
        if self.queue.try_send(Queued { namespace, event }).is_err() {
            tracing::debug!(reason, "event queue full or closed; event dropped");
        }
    }
}

/// Waits for the next event, then gathers what follows until the queue has been empty for
/// `quiet` or the first has waited `most`. `None` once the queue is closed and empty.
async fn next_batch<T>(pending: &mut mpsc::Receiver<T>, quiet: Duration, most: Duration) -> Option<Vec<T>> {
    let first = pending.recv().await?;
    let deadline = tokio::time::Instant::now() + most;
    let mut batch = vec![first];
    loop {
        let until = deadline.min(tokio::time::Instant::now() + quiet);
        match tokio::time::timeout_at(until, pending.recv()).await {
            Ok(Some(next)) => batch.push(next),
            // Closed, quiet, or waited long enough.
            Ok(None) | Err(_) => return Some(batch),
        }
    }
}

/// Creates an event (the answer, the stored event, is not needed).
async fn write(client: &kube::Client, namespace: &str, event: &Value) -> Result<(), kube::Error> {
    let url = format!("/api/v1/namespaces/{namespace}/events");
    let body = serde_json::to_vec(event).map_err(kube::Error::SerdeError)?;
    let request = kube::core::Request::new(url).create(&PostParams::default(), body).map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(drop)
}

fn pod_event(pod: &Pod, namespace: &str, container: Option<&str>, kind: &str, reason: &str, message: &str, component: &str) -> Value {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut involved = json!({
        "kind": "Pod", "namespace": namespace, "name": name, "apiVersion": "v1",
        "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version,
    });
    if let Some(container) = container {
        involved["fieldPath"] = json!(format!("spec.containers{{{container}}}"));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": null,
        "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn events_wait_for_a_quiet_moment_or_at_most_the_limit() {
        let (sender, mut pending) = mpsc::channel::<u32>(100);
        let (quiet, most) = (Duration::from_millis(20), Duration::from_millis(500));

        // A lone event goes out after the quiet time.
        let started = Instant::now();
        sender.send(1).await.unwrap();
        assert_eq!(next_batch(&mut pending, quiet, most).await, Some(vec![1]));
        assert_eq!(started.elapsed(), quiet);

        // Events 5 ms apart for 100 ms are written together, once they stop.
        let feeder = sender.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                feeder.send(i).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let started = Instant::now();
        let batch = next_batch(&mut pending, quiet, most).await.unwrap();
        assert_eq!(batch, (0..20).collect::<Vec<_>>());
        assert!(started.elapsed() >= Duration::from_millis(95) + quiet, "{:?}", started.elapsed());

        // A stream that never pauses is written every `most`.
        let feeder = sender.clone();
        let stream = tokio::spawn(async move {
            for i in 0..1000 {
                if feeder.send(i).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let started = Instant::now();
        let batch = next_batch(&mut pending, quiet, most).await.unwrap();
        assert!(started.elapsed() <= most + Duration::from_millis(5), "{:?}", started.elapsed());
        assert!(batch.len() >= 90, "{}", batch.len());
        stream.abort();

        // A closed queue ends the writer once it is empty.
        drop(sender);
        while next_batch(&mut pending, quiet, most).await.is_some() {}
    }
}
