//! Step 1, frontdoor's side: a full sync of N Services into a fresh network namespace (render +
//! plan in process, then one netlink batch), then one-endpoint changes applied one at a time.

use std::time::{Duration, Instant};

use frontdoor_netfilter::Socket;

use super::synthetic;
use super::system::{in_fresh_netns, thread_cpu, Cpu};

pub struct Sync {
    pub services: usize,
    /// Resolving (categorize), rendering and planning every Service.
    pub render_plan: Duration,
    /// Sending the batch and the kernel committing it.
    pub apply: Duration,
    pub apply_cpu: Cpu,
    pub messages: usize,
    pub bytes: usize,
    /// One-endpoint changes, render + plan + apply each, sorted.
    pub changes: Vec<Duration>,
    /// The apply part of each change, sorted.
    pub change_applies: Vec<Duration>,
}

impl Sync {
    pub fn full(&self) -> Duration {
        self.render_plan + self.apply
    }
}

pub fn measure(count: usize, changes: usize) -> Sync {
    in_fresh_netns(|| {
        let started = Instant::now();
        let (mut programmed, plan) = synthetic::full_sync(count);
        let render_plan = started.elapsed();
        let (messages, bytes) = (plan.batch.message_count(), plan.batch.encoded_len());
        let mut socket = Socket::open().expect("a netfilter socket in the bench's namespace");
        let cpu = thread_cpu();
        let started = Instant::now();
        socket.apply(&plan.batch).expect("the full sync applies");
        let apply = started.elapsed();
        let apply_cpu = thread_cpu() - cpu;
        drop(plan);
        let mut totals = Vec::with_capacity(changes);
        let mut applies = Vec::with_capacity(changes);
        for generation in 0..changes {
            let started = Instant::now();
            let plan = synthetic::one_change(&mut programmed, count, generation);
            let planned = Instant::now();
            socket.apply(&plan.batch).expect("a one-endpoint change applies");
            let done = Instant::now();
            totals.push(done - started);
            applies.push(done - planned);
        }
        totals.sort();
        applies.sort();
        Sync {
            services: count,
            render_plan,
            apply,
            apply_cpu,
            messages,
            bytes,
            changes: totals,
            change_applies: applies,
        }
    })
}
