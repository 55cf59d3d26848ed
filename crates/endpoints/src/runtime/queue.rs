//! A work queue of keys, like client-go's: a key is queued at most once, is never worked on
//! by two workers at once (adding it while it is being worked on queues it again for when
//! that work is done), and a key whose sync failed comes back after an exponential backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

/// Delays for retrying a failed key: `min`, doubling per consecutive failure, at most `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
        self.min.saturating_mul(factor).min(self.max)
    }
}

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    ready: Notify,
    backoff: Backoff,
}

struct State<K> {
    queue: VecDeque<K>,
    queued: HashSet<K>,
    active: HashSet<K>,
    /// Added while active: queue again once done.
    again: HashSet<K>,
    failures: HashMap<K, u32>,
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> WorkQueue<K> {
    pub fn new(backoff: Backoff) -> Arc<WorkQueue<K>> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued: HashSet::new(),
                active: HashSet::new(),
                again: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
            backoff,
        })
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: K) {
        let mut state = self.state.lock().expect("queue lock");
        if state.active.contains(&key) {
            state.again.insert(key);
            return;
        }
        if state.queued.insert(key.clone()) {
            state.queue.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Waits for the next key and marks it active. Cancel-safe: a key is only taken out of
    /// the queue when this returns it.
    pub async fn next(&self) -> K {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock().expect("queue lock");
                if let Some(key) = state.queue.pop_front() {
                    state.queued.remove(&key);
                    state.active.insert(key.clone());
                    let more = !state.queue.is_empty();
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

    /// Marks `key`'s work finished; `succeeded` resets its backoff, otherwise it is queued
    /// again after the next backoff delay.
    pub fn done(self: &Arc<Self>, key: K, succeeded: bool) {
        let mut state = self.state.lock().expect("queue lock");
        state.active.remove(&key);
        let retry = if succeeded {
            state.failures.remove(&key);
            None
        } else {
            let failures = state.failures.entry(key.clone()).or_insert(0);
            *failures += 1;
            Some(self.backoff.delay(*failures))
        };
        let again = state.again.remove(&key);
        drop(state);
        if again {
            self.add(key.clone());
        }
        if let Some(delay) = retry {
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

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().unwrap().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Arc<WorkQueue<&'static str>> {
        WorkQueue::new(Backoff {
            min: Duration::from_millis(5),
            max: Duration::from_millis(40),
        })
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff {
            min: Duration::from_millis(5),
            max: Duration::from_millis(40),
        };
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
            queue.done(key, true);
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
        queue.done(key, true);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.next().await, "a");
    }

    #[tokio::test]
    async fn failures_come_back_after_backoff() {
        let queue = queue();
        queue.add("a");
        let key = queue.next().await;
        let started = tokio::time::Instant::now();
        queue.done(key, false);
        assert_eq!(queue.len(), 0);
        let key = tokio::time::timeout(Duration::from_secs(2), queue.next())
            .await
            .expect("retried");
        assert!(started.elapsed() >= Duration::from_millis(5));
        assert_eq!(key, "a");
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
        let key = tokio::time::timeout(Duration::from_secs(2), worker)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(key, "z");
    }
}
