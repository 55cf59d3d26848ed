//! Recording core/v1 Events, as client-go's event recorder writes them: what `kubectl
//! describe` shows under Events. One recorder for every component of a process.
//!
//! A [`EventRecorder`] queues events and one task writes them in order, so an event never
//! delays the work it reports. Each event goes through the [`correlator`] first (aggregation,
//! deduplication into `count`, a per-object spam filter), so a condition that repeats every
//! second costs one Event and a patch now and then, not a new Event each time. The task writes
//! once the queue has been quiet for [`QUIET`] (or its oldest event has waited [`MOST_DELAY`]):
//! in a burst (a hundred pods starting) the events trail the work instead of competing with it.
//! Recording is best effort: a failure is logged, never fatal.

pub mod correlator;

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams, PostParams};
use kube::Resource;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use correlator::{Correlator, CorrelatorOptions, Decision, InvolvedObject, NewEvent, Written};

/// client-go's broadcaster queue length; events beyond it are dropped (and logged).
const QUEUE: usize = 1000;
/// How long the queue must stay empty before queued events are written.
pub const QUIET: Duration = Duration::from_millis(20);
/// The longest an event waits for a quiet moment.
pub const MOST_DELAY: Duration = Duration::from_millis(500);

/// Records events for one component (`kubelet`, `default-scheduler`); clones share the queue.
#[derive(Debug, Clone)]
pub struct EventRecorder {
    component: String,
    host: String,
    queue: mpsc::Sender<NewEvent>,
}

impl EventRecorder {
    /// Starts the writer task (on the current tokio runtime) for `component` on `host` (the
    /// node's name, or empty); it ends when every clone of the recorder is gone and what was
    /// queued is written.
    pub fn new(client: kube::Client, component: &str, host: &str, options: CorrelatorOptions) -> EventRecorder {
        let (queue, pending) = mpsc::channel::<NewEvent>(QUEUE);
        tokio::spawn(write_events(client, pending, Correlator::new(options)));
        EventRecorder { component: component.into(), host: host.into(), queue }
    }

    /// A recorder for another component of this process, writing through the same queue.
    pub fn for_component(&self, component: &str) -> EventRecorder {
        EventRecorder { component: component.into(), host: self.host.clone(), queue: self.queue.clone() }
    }

    /// An event about `object` (and a part of it: `field_path`, such as
    /// `spec.containers{web}`). `type_` is `Normal` or `Warning`.
    pub fn record<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        field_path: Option<&str>,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let meta = object.meta();
        let involved = InvolvedObject {
            kind: K::kind(&()).into_owned(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            api_version: K::api_version(&()).into_owned(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            field_path: field_path.unwrap_or_default().to_string(),
        };
        let event = NewEvent {
            involved,
            component: self.component.clone(),
            host: self.host.clone(),
            type_: type_.into(),
            reason: reason.into(),
            message: message.into(),
        };
        if self.queue.try_send(event).is_err() {
            tracing::debug!(reason, "event queue full or closed; event dropped");
        }
    }
}

/// The writer: creates new Events, patches repeated ones when due, until the queue closes
/// (then writes every count still pending).
async fn write_events(client: kube::Client, mut pending: mpsc::Receiver<NewEvent>, mut correlator: Correlator) {
    loop {
        // Wait for the next event, or until a repeat's count is due (receiving is cancel-safe).
        let first = match correlator.next_due() {
            Some(due) => tokio::select! {
                first = pending.recv() => first.map(Some),
                () = tokio::time::sleep_until(due.into()) => Some(None),
            },
            None => pending.recv().await.map(Some),
        };
        let Some(first) = first else { break };
        if let Some(first) = first {
            for event in gather(first, &mut pending, QUIET, MOST_DELAY).await {
                if let Decision::Create(written) = correlator.observe(event, Instant::now(), unix_now()) {
                    create(&client, &written).await;
                }
            }
        }
        for written in correlator.due(Instant::now(), false) {
            patch(&client, &mut correlator, &written).await;
        }
    }
    for written in correlator.due(Instant::now(), true) {
        patch(&client, &mut correlator, &written).await;
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn timestamp(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Waits for the next event, then gathers what follows until the queue has been empty for
/// `quiet` or the first has waited `most`. `None` once the queue is closed and empty.
pub async fn next_batch<T>(pending: &mut mpsc::Receiver<T>, quiet: Duration, most: Duration) -> Option<Vec<T>> {
    let first = pending.recv().await?;
    Some(gather(first, pending, quiet, most).await)
}

/// `first` and what follows it until the queue has been empty for `quiet` or `first` has
/// waited `most`.
async fn gather<T>(first: T, pending: &mut mpsc::Receiver<T>, quiet: Duration, most: Duration) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + most;
    let mut batch = vec![first];
    loop {
        let until = deadline.min(tokio::time::Instant::now() + quiet);
        match tokio::time::timeout_at(until, pending.recv()).await {
            Ok(Some(next)) => batch.push(next),
            // Closed, quiet, or waited long enough.
            Ok(None) | Err(_) => return batch,
        }
    }
}

/// The Event object of `written`.
pub fn event_json(written: &Written) -> Value {
    let event = &written.event;
    let o = &event.involved;
    let mut involved = json!({"kind": o.kind, "namespace": o.namespace, "name": o.name, "apiVersion": o.api_version});
    for (field, value) in [("uid", &o.uid), ("resourceVersion", &o.resource_version), ("fieldPath", &o.field_path)] {
        if !value.is_empty() {
            involved[field] = json!(value);
        }
    }
    let mut source = json!({"component": event.component});
    if !event.host.is_empty() {
        source["host"] = json!(event.host);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": written.name, "namespace": events_namespace(o)},
        "involvedObject": involved,
        "reason": event.reason,
        "message": event.message,
        "type": event.type_,
        "source": source,
        "reportingComponent": event.component,
        "reportingInstance": event.host,
        "firstTimestamp": timestamp(written.first_seen),
        "lastTimestamp": timestamp(written.last_seen),
        "eventTime": null,
        "count": written.count,
    })
}

/// Events about cluster-scoped objects live in `default`, as client-go puts them.
fn events_namespace(object: &InvolvedObject) -> &str {
    if object.namespace.is_empty() {
        "default"
    } else {
        &object.namespace
    }
}

/// Creates an Event (the answer, the stored Event, is not decoded).
async fn create(client: &kube::Client, written: &Written) {
    let namespace = events_namespace(&written.event.involved);
    let url = format!("/api/v1/namespaces/{namespace}/events");
    let result = async {
        let body = serde_json::to_vec(&event_json(written)).map_err(kube::Error::SerdeError)?;
        let request =
            kube::core::Request::new(url).create(&PostParams::default(), body).map_err(kube::Error::BuildRequest)?;
        client.request_text(request).await.map(drop)
    };
    if let Err(error) = result.await {
        tracing::debug!(%error, reason = %written.event.reason, "recording an event failed");
    }
}

/// Writes a repeated Event's count, last time and message; if it is gone, creates it again.
async fn patch(client: &kube::Client, correlator: &mut Correlator, written: &Written) {
    let namespace = events_namespace(&written.event.involved);
    let url = format!("/api/v1/namespaces/{namespace}/events");
    let body = json!({"count": written.count, "lastTimestamp": timestamp(written.last_seen), "message": written.event.message});
    let result = async {
        let patch = Patch::Merge(&body);
        let request = kube::core::Request::new(url)
            .patch(&written.name, &PatchParams::default(), &patch)
            .map_err(kube::Error::BuildRequest)?;
        client.request_text(request).await.map(drop)
    };
    match result.await {
        Ok(()) => {}
        Err(error) if crate::errors::is_not_found(&error) => {
            create(client, written).await;
        }
        Err(error) => {
            tracing::debug!(%error, reason = %written.event.reason, "updating an event failed");
            correlator.forget(&written.name);
        }
    }
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

    #[test]
    fn the_event_object_carries_count_times_and_the_involved_object() {
        let written = Written {
            name: "web.1".into(),
            event: NewEvent {
                involved: InvolvedObject {
                    kind: "Pod".into(),
                    namespace: "default".into(),
                    name: "web".into(),
                    uid: "u".into(),
                    api_version: "v1".into(),
                    resource_version: "".into(),
                    field_path: "spec.containers{c}".into(),
                },
                component: "kubelet".into(),
                host: "n1".into(),
                type_: "Warning".into(),
                reason: "Unhealthy".into(),
                message: "Readiness probe failed".into(),
            },
            count: 8,
            first_seen: 0,
            last_seen: 10,
        };
        let value = event_json(&written);
        assert_eq!(value["count"], 8);
        assert_eq!(value["firstTimestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(value["lastTimestamp"], "1970-01-01T00:00:10Z");
        assert_eq!(value["involvedObject"]["fieldPath"], "spec.containers{c}");
        assert!(value["involvedObject"].get("resourceVersion").is_none());
        assert_eq!(value["source"], json!({"component": "kubelet", "host": "n1"}));
        assert_eq!(value["metadata"], json!({"name": "web.1", "namespace": "default"}));
    }
}
