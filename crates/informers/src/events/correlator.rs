//! What to write for each event, as client-go's `EventCorrelator` decides it, with one
//! refinement. Pure: no I/O, time passed in.
//!
//! - **Aggregation**: events of one source about one object with the same type and reason but
//!   different messages are counted; from the tenth distinct message within ten minutes on,
//!   they become one event "(combined from similar events): <latest message>".
//! - **Deduplication**: an event identical to one already written (same source, object, field
//!   path, type, reason, message) is not created again; that Event's `count` and
//!   `lastTimestamp` go up instead (`kubectl describe`: `(x8 over 10s)`).
//! - **Spam filter**: each source may write about each object in bursts of 25, refilled one
//!   every five minutes; a new event beyond that is dropped.
//! - **Refinement**: a repeat is not written at once. Its count is kept, and written (one patch
//!   with the latest count) at most once per [`CorrelatorOptions::repeat_interval`] per Event.
//!   Counts stay true and a pod failing its probe every second costs one write per interval,
//!   not one per second.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The object an event is about (`involvedObject`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct InvolvedObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub api_version: String,
    pub resource_version: String,
    pub field_path: String,
}

/// One event as a component reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub involved: InvolvedObject,
    pub component: String,
    pub host: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    pub message: String,
}

/// An Event as stored: what a create writes, and what a repeat's patch updates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub name: String,
    pub event: NewEvent,
    pub count: u32,
    /// Seconds since the Unix epoch of the first and last occurrence.
    pub first_seen: i64,
    pub last_seen: i64,
}

/// What the writer does with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create this Event.
    Create(Box<Written>),
    /// Counted against an Event already written; it is patched when due.
    Counted,
    /// Dropped by the spam filter.
    Dropped,
}

#[derive(Clone, Copy, Debug)]
pub struct CorrelatorOptions {
    /// Events a source may write about one object at once (client-go: 25).
    pub spam_burst: u32,
    /// One more every this long (client-go: five minutes).
    pub spam_refill: Duration,
    /// Distinct messages of one reason before they are combined (client-go: 10)...
    pub aggregate_after: usize,
    /// ...within this window (client-go: ten minutes).
    pub aggregate_window: Duration,
    /// The shortest time between two writes of one Event's count.
    pub repeat_interval: Duration,
    /// Keys remembered per table (client-go: 4096); the least recently seen go first.
    pub capacity: usize,
}

impl Default for CorrelatorOptions {
    fn default() -> Self {
        CorrelatorOptions {
            spam_burst: 25,
            spam_refill: Duration::from_secs(300),
            aggregate_after: 10,
            aggregate_window: Duration::from_secs(600),
            repeat_interval: Duration::from_secs(10),
            capacity: 4096,
        }
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
    seen: Instant,
}

struct Similar {
    messages: HashSet<String>,
    seen: Instant,
}

struct Observed {
    written: Written,
    /// The count last written.
    count_written: u32,
    last_write: Instant,
    seen: Instant,
}

/// The correlator's memory. One per writer.
pub struct Correlator {
    options: CorrelatorOptions,
    buckets: HashMap<String, Bucket>,
    similar: HashMap<String, Similar>,
    observed: HashMap<String, Observed>,
    /// Makes names unique within one instant.
    sequence: u64,
}

fn join(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

fn object_key(event: &NewEvent) -> Vec<&str> {
    let o = &event.involved;
    vec![&event.component, &event.host, &o.kind, &o.namespace, &o.name, &o.uid, &o.api_version]
}

/// Drops the least recently seen entries once `map` is over `capacity`.
fn bound<V>(map: &mut HashMap<String, V>, capacity: usize, seen: impl Fn(&V) -> Instant) {
    if map.len() <= capacity {
        return;
    }
    let mut ages: Vec<(Instant, String)> = map.iter().map(|(k, v)| (seen(v), k.clone())).collect();
    ages.sort();
    for (_, key) in ages.into_iter().take(map.len() - capacity) {
        map.remove(&key);
    }
}

impl Correlator {
    pub fn new(options: CorrelatorOptions) -> Correlator {
        Correlator { options, buckets: HashMap::new(), similar: HashMap::new(), observed: HashMap::new(), sequence: 0 }
    }

    /// Decides what to do with `event`, seen at `now` (`unix` seconds since the epoch).
    pub fn observe(&mut self, mut event: NewEvent, now: Instant, unix: i64) -> Decision {
        let mut key_parts = object_key(&event);
        key_parts.extend([event.type_.as_str(), event.reason.as_str()]);
        let aggregate_key = join(&key_parts);
        // Aggregation: many messages of one reason become one combined event.
        let window = self.options.aggregate_window;
        let similar = self
            .similar
            .entry(aggregate_key.clone())
            .or_insert_with(|| Similar { messages: HashSet::new(), seen: now });
        if now.duration_since(similar.seen) > window {
            similar.messages.clear();
        }
        similar.seen = now;
        similar.messages.insert(event.message.clone());
        let key = if similar.messages.len() >= self.options.aggregate_after {
            event.message = format!("(combined from similar events): {}", event.message);
            event.involved.field_path.clear();
            aggregate_key
        } else {
            let o = &event.involved;
            join(&[&aggregate_key, &o.field_path, &event.message])
        };
        bound(&mut self.similar, self.options.capacity, |s| s.seen);

        // Deduplication: a repeat counts against the Event already written.
        if let Some(observed) = self.observed.get_mut(&key) {
            observed.written.count += 1;
            observed.written.last_seen = unix;
            observed.written.event.message = event.message;
            observed.written.event.involved.resource_version = event.involved.resource_version;
            observed.seen = now;
            return Decision::Counted;
        }

        // Spam filter: a new Event costs a token of its source and object.
        let spam_key = join(&object_key(&event));
        let (burst, refill) = (f64::from(self.options.spam_burst), self.options.spam_refill.as_secs_f64());
        let bucket = self.buckets.entry(spam_key).or_insert(Bucket { tokens: burst, updated: now, seen: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() / refill).min(burst);
        bucket.updated = now;
        bucket.seen = now;
        if bucket.tokens < 1.0 {
            return Decision::Dropped;
        }
        bucket.tokens -= 1.0;
        bound(&mut self.buckets, self.options.capacity, |b| b.seen);

        self.sequence += 1;
        let name = format!(
            "{}.{:x}",
            event.involved.name,
            (unix as u64).wrapping_mul(1_000_000_000).wrapping_add(self.sequence)
        );
        let written = Written { name, event, count: 1, first_seen: unix, last_seen: unix };
        self.observed.insert(key, Observed { written: written.clone(), count_written: 1, last_write: now, seen: now });
        bound(&mut self.observed, self.options.capacity, |o| o.seen);
        Decision::Create(Box::new(written))
    }

    /// The Events whose count changed since last written and whose interval has passed (all
    /// of them with `everything`, for a final flush). Each is marked written.
    pub fn due(&mut self, now: Instant, everything: bool) -> Vec<Written> {
        let interval = self.options.repeat_interval;
        let mut due = Vec::new();
        for observed in self.observed.values_mut() {
            let changed = observed.written.count != observed.count_written;
            if changed && (everything || now.duration_since(observed.last_write) >= interval) {
                observed.count_written = observed.written.count;
                observed.last_write = now;
                due.push(observed.written.clone());
            }
        }
        due
    }

    /// When the next repeat falls due, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        let interval = self.options.repeat_interval;
        self.observed.values().filter(|o| o.written.count != o.count_written).map(|o| o.last_write + interval).min()
    }

    /// An Event could not be patched (deleted meanwhile, or expired): the next occurrence
    /// creates it again.
    pub fn forget(&mut self, name: &str) {
        self.observed.retain(|_, o| o.written.name != name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, message: &str) -> NewEvent {
        NewEvent {
            involved: InvolvedObject {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "web".into(),
                uid: "u1".into(),
                api_version: "v1".into(),
                resource_version: "1".into(),
                field_path: "spec.containers{c}".into(),
            },
            component: "kubelet".into(),
            host: "n1".into(),
            type_: "Warning".into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn options() -> CorrelatorOptions {
        CorrelatorOptions {
            spam_burst: 25,
            spam_refill: Duration::from_secs(300),
            aggregate_after: 10,
            aggregate_window: Duration::from_secs(600),
            repeat_interval: Duration::from_secs(10),
            capacity: 4096,
        }
    }

    #[test]
    fn a_repeated_event_is_counted_and_written_once_per_interval() {
        let mut correlator = Correlator::new(options());
        let start = Instant::now();
        let probe = event("Unhealthy", "Readiness probe failed: connection refused");
        let Decision::Create(first) = correlator.observe(probe.clone(), start, 1000) else { panic!("created") };
        assert_eq!(first.count, 1);
        assert!(first.name.starts_with("web."));
        let mut patches = Vec::new();
        // Once a second for a minute.
        for second in 1..60u64 {
            let now = start + Duration::from_secs(second);
            assert_eq!(correlator.observe(probe.clone(), now, 1000 + second as i64), Decision::Counted);
            patches.extend(correlator.due(now, false));
        }
        let counts: Vec<u32> = patches.iter().map(|p| p.count).collect();
        assert_eq!(counts, [11, 21, 31, 41, 51], "one write every 10 s with the latest count");
        assert!(patches.iter().all(|p| p.name == first.name && p.first_seen == 1000));
        assert_eq!(correlator.next_due(), Some(start + Duration::from_secs(60)));
        let last = correlator.due(start + Duration::from_secs(60), false);
        assert_eq!(last.len(), 1);
        assert_eq!((last[0].count, last[0].last_seen), (60, 1059));
        assert!(correlator.due(start + Duration::from_secs(120), true).is_empty(), "nothing left to write");
    }

    #[test]
    fn many_messages_of_one_reason_are_combined() {
        let mut correlator = Correlator::new(options());
        let now = Instant::now();
        let mut created = Vec::new();
        for n in 0..12 {
            match correlator.observe(event("BackOff", &format!("message {n}")), now, 1) {
                Decision::Create(w) => created.push(w.event.message),
                Decision::Counted => created.push("counted".into()),
                Decision::Dropped => panic!("not dropped"),
            }
        }
        assert_eq!(created[8], "message 8");
        assert_eq!(created[9], "(combined from similar events): message 9");
        assert_eq!(created[10], "counted", "further ones count against the combined event");
        let due = correlator.due(now, true);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].count, due[0].event.message.as_str()), (3, "(combined from similar events): message 11"));
    }

    #[test]
    fn the_spam_filter_drops_new_events_past_the_burst_and_refills() {
        let mut correlator = Correlator::new(CorrelatorOptions { aggregate_after: 1000, ..options() });
        let start = Instant::now();
        let outcomes: Vec<bool> = (0..30)
            .map(|n| matches!(correlator.observe(event("Reason", &format!("m{n}")), start, 1), Decision::Create(_)))
            .collect();
        assert_eq!(outcomes.iter().filter(|c| **c).count(), 25);
        assert!(!outcomes[25]);
        // Repeats of written events are still counted.
        assert_eq!(correlator.observe(event("Reason", "m0"), start, 1), Decision::Counted);
        // Another object has its own bucket.
        let mut other = event("Reason", "x");
        other.involved.name = "db".into();
        assert!(matches!(correlator.observe(other, start, 1), Decision::Create(_)));
        // Five minutes later, one more.
        let later = start + Duration::from_secs(300);
        assert!(matches!(correlator.observe(event("Reason", "late-1"), later, 301), Decision::Create(_)));
        assert_eq!(correlator.observe(event("Reason", "late-2"), later, 301), Decision::Dropped);
    }

    #[test]
    fn a_forgotten_event_is_created_again_and_tables_stay_bounded() {
        let mut correlator = Correlator::new(CorrelatorOptions { capacity: 8, ..options() });
        let now = Instant::now();
        let Decision::Create(first) = correlator.observe(event("R", "m"), now, 1) else { panic!() };
        correlator.forget(&first.name);
        assert!(matches!(correlator.observe(event("R", "m"), now, 2), Decision::Create(_)));
        for n in 0..100 {
            let mut e = event("R", "m");
            e.involved.name = format!("pod-{n}");
            correlator.observe(e, now + Duration::from_millis(n), 3);
        }
        assert!(correlator.observed.len() <= 8 && correlator.buckets.len() <= 8 && correlator.similar.len() <= 8);
    }
}
