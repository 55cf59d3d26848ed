//! A work queue of keys, like client-go's rate-limited queue: a key is queued at most once, is
//! never worked on by two workers at once (adding it while it is being worked on queues it
//! again for when that work is done), and a key whose sync failed comes back after a per-key
//! exponential backoff. Its metrics carry client-go's names (`workqueue_*`, labelled by the
//! queue's name).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::Notify;

/// Delays for retrying a failed key: `min`, doubling per consecutive failure, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `failures` (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
        self.min.saturating_mul(factor).min(self.max)
    }
}

impl Default for Backoff {
    /// client-go's default controller rate limiter: 5 ms doubling to 1000 s; we cap at 60 s.
    fn default() -> Self {
        Backoff { min: Duration::from_millis(5), max: Duration::from_secs(60) }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    name: String,
}

fn duration_histogram() -> Histogram {
    // client-go's buckets: 1e-8 s × 10^n, n = 0..9.
    Histogram::new(exponential_buckets(1e-8, 10.0, 10))
}

/// The work-queue metric families of one registry (registered once, shared by every queue).
#[derive(Clone)]
pub(crate) struct QueueMetrics {
    depth: Family<QueueLabel, Gauge>,
    adds: Family<QueueLabel, Counter>,
    retries: Family<QueueLabel, Counter>,
    queue_duration: Family<QueueLabel, Histogram, fn() -> Histogram>,
    work_duration: Family<QueueLabel, Histogram, fn() -> Histogram>,
}

impl QueueMetrics {
    pub(crate) fn register(registry: &frontdoor_metrics::Registry) -> QueueMetrics {
        let metrics = QueueMetrics {
            depth: Family::default(),
            adds: Family::default(),
            retries: Family::default(),
            queue_duration: Family::new_with_constructor(duration_histogram),
            work_duration: Family::new_with_constructor(duration_histogram),
        };
        registry.register("workqueue_depth", "Current depth of workqueue", metrics.depth.clone());
        registry.register("workqueue_adds", "Total number of adds handled by workqueue", metrics.adds.clone());
        registry.register("workqueue_retries", "Total number of retries handled by workqueue", metrics.retries.clone());
        registry.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            metrics.queue_duration.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            metrics.work_duration.clone(),
        );
        metrics
    }

    fn for_queue(&self, name: &str) -> OneQueue {
        let label = QueueLabel { name: name.to_string() };
        OneQueue {
            depth: self.depth.get_or_create(&label).clone(),
            adds: self.adds.get_or_create(&label).clone(),
            retries: self.retries.get_or_create(&label).clone(),
            queue_duration: self.queue_duration.get_or_create(&label).clone(),
            work_duration: self.work_duration.get_or_create(&label).clone(),
        }
    }
}

/// One queue's series.
#[derive(Clone)]
struct OneQueue {
    depth: Gauge,
    adds: Counter,
    retries: Counter,
    queue_duration: Histogram,
    work_duration: Histogram,
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
    backoff: Backoff,
    metrics: OneQueue,
}

struct State<K> {
    queue: VecDeque<K>,
    /// Queued keys and since when.
    queued: HashMap<K, Instant>,
    /// Keys being worked on and since when.
    active: HashMap<K, Instant>,
    /// Added while active: queue again once done.
    again: HashSet<K>,
    failures: HashMap<K, u32>,
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> WorkQueue<K> {
    /// A queue whose metrics are labelled `name` (upstream's controller names: `endpoint`,
    /// `endpoint_slice`, `replicaset`, ...).
    pub(crate) fn new(name: &str, backoff: Backoff, metrics: &QueueMetrics) -> Arc<WorkQueue<K>> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashMap::new(),
                active: HashMap::new(),
                again: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
            backoff,
            metrics: metrics.for_queue(name),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: K) {
        let mut state = self.lock();
        self.metrics.adds.inc();
        if state.active.contains_key(&key) {
            state.again.insert(key);
            return;
        }
        if state.queued.contains_key(&key) {
            return;
        }
        state.queued.insert(key.clone(), Instant::now());
        state.queue.push_back(key);
        self.metrics.depth.set(state.queue.len() as i64);
        drop(state);
        self.ready.notify_one();
    }

    /// Waits for the next key and marks it active. Cancel-safe: a key is only taken out of the
    /// queue when this returns it.
    pub async fn next(&self) -> K {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if let Some(key) = state.queue.pop_front() {
                    if let Some(since) = state.queued.remove(&key) {
                        self.metrics.queue_duration.observe(since.elapsed().as_secs_f64());
                    }
                    state.active.insert(key.clone(), Instant::now());
                    let more = !state.queue.is_empty();
                    self.metrics.depth.set(state.queue.len() as i64);
                    drop(state);
                    if more {
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Marks `key`'s work finished. A success resets its backoff and, with `requeue_after`,
    /// looks at it again after that delay; a failure queues it again after its next backoff.
    pub fn done(self: &Arc<Self>, key: K, outcome: Done) {
        let mut state = self.lock();
        if let Some(since) = state.active.remove(&key) {
            self.metrics.work_duration.observe(since.elapsed().as_secs_f64());
        }
        let later = match outcome {
            Done::Succeeded { requeue_after } => {
                state.failures.remove(&key);
                requeue_after
            }
            Done::Failed => {
                let failures = state.failures.entry(key.clone()).or_insert(0);
                *failures += 1;
                self.metrics.retries.inc();
                Some(self.backoff.delay(*failures))
            }
        };
        let again = state.again.remove(&key);
        drop(state);
        if again {
            self.add(key.clone());
        }
        if let Some(delay) = later {
            self.add_after(key, delay);
        }
    }

    /// Queues `key` after `delay`; nothing happens if the queue is gone by then.
    pub fn add_after(self: &Arc<Self>, key: K, delay: Duration) {
        let queue: Weak<WorkQueue<K>> = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(queue) = queue.upgrade() {
                queue.add(key);
            }
        });
    }

    /// How many keys wait (not counting those being worked on).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the work on a key ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    Succeeded { requeue_after: Option<Duration> },
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Arc<WorkQueue<&'static str>> {
        let metrics = QueueMetrics::register(&frontdoor_metrics::Registry::default());
        WorkQueue::new("test", Backoff { min: Duration::from_millis(5), max: Duration::from_millis(40) }, &metrics)
    }

    const OK: Done = Done::Succeeded { requeue_after: None };

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff { min: Duration::from_millis(5), max: Duration::from_millis(40) };
        let delays: Vec<u128> = (1..=6).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 40, 40]);
        assert_eq!(backoff.delay(u32::MAX).as_millis(), 40);
    }

    #[tokio::test]
    async fn keys_are_deduplicated_in_order() {
        let queue = queue();
        for key in ["a", "b", "a", "c", "b"] {
            queue.add(key);
        }
        assert_eq!(queue.len(), 3);
        let mut order = Vec::new();
        for _ in 0..3 {
            let key = queue.next().await;
            order.push(key);
            queue.done(key, OK);
        }
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_key_added_while_active_comes_back_after_done() {
        let queue = queue();
        queue.add("a");
        let key = queue.next().await;
        queue.add("a");
        assert_eq!(queue.len(), 0, "not queued twice while active");
        queue.done(key, OK);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.next().await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_come_back_after_backoff_and_requeues_after_their_delay() {
        let queue = queue();
        queue.add("a");
        let key = queue.next().await;
        let started = tokio::time::Instant::now();
        queue.done(key, Done::Failed);
        assert_eq!(queue.len(), 0);
        let key = tokio::time::timeout(Duration::from_secs(2), queue.next()).await.expect("retried");
        assert_eq!(started.elapsed(), Duration::from_millis(5));
        queue.done(key, Done::Failed);
        let key = queue.next().await;
        assert_eq!(started.elapsed(), Duration::from_millis(15), "second retry after 10 ms");
        let started = tokio::time::Instant::now();
        queue.done(key, Done::Succeeded { requeue_after: Some(Duration::from_secs(3)) });
        assert_eq!(queue.next().await, "a");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        queue.done("a", Done::Failed);
        let started = tokio::time::Instant::now();
        queue.next().await;
        assert_eq!(started.elapsed(), Duration::from_millis(5), "a success reset the backoff");
    }

    #[tokio::test]
    async fn waiting_workers_wake_for_new_keys() {
        let queue = queue();
        let worker = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.next().await })
        };
        tokio::task::yield_now().await;
        queue.add("z");
        let key = tokio::time::timeout(Duration::from_secs(2), worker).await.expect("woken").unwrap();
        assert_eq!(key, "z");
    }

    #[tokio::test]
    async fn metrics_count_adds_retries_and_depth() {
        let registry = frontdoor_metrics::Registry::default();
        let metrics = QueueMetrics::register(&registry);
        let queue: Arc<WorkQueue<&str>> = WorkQueue::new("endpoint", Backoff::default(), &metrics);
        queue.add("a");
        queue.add("b");
        queue.add("a");
        let key = queue.next().await;
        queue.done(key, Done::Failed);
        let text = registry.encode();
        for line in [
            "workqueue_adds_total{name=\"endpoint\"} 3",
            "workqueue_depth{name=\"endpoint\"} 1",
            "workqueue_retries_total{name=\"endpoint\"} 1",
            "workqueue_queue_duration_seconds_count{name=\"endpoint\"} 1",
            "workqueue_work_duration_seconds_count{name=\"endpoint\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
