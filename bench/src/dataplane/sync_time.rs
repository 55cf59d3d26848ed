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
    /// The connect-time balancer's share of the same sync, when it could be attached here.
    pub socket_lb: Option<SocketLbSync>,
}

/// Writing the same Services into the connect-time balancer's maps (`frontdoor-socket-lb`),
/// as the proxy does after each sync: every frontend, then the same one-endpoint changes.
pub struct SocketLbSync {
    pub full: Duration,
    /// Each change's write, sorted.
    pub changes: Vec<Duration>,
    /// The maps' kernel memory after the full write.
    pub kernel_bytes: Option<u64>,
}

/// Attaches a balancer with nothing in its scope (it rewrites no connection) and times it.
fn socket_lb_sync(count: usize, changes: usize) -> Option<SocketLbSync> {
    use frontdoor_socket_lb::{open_cgroup2_root, Frontend, SocketBalancer};
    let (root, _) = open_cgroup2_root().ok()?;
    let mut balancer = SocketBalancer::attach(&root).ok()?;
    let frontend = |i| Frontend { ip: synthetic::cluster_ip(i), port: synthetic::SERVICE_PORT };
    let started = Instant::now();
    for i in 0..count {
        balancer.set(frontend(i), &synthetic::endpoint_addresses(i, None)).expect("a frontend written");
    }
    let full = started.elapsed();
    let kernel_bytes = balancer.map_memory();
    let mut times = Vec::with_capacity(changes);
    for generation in 0..changes {
        let i = synthetic::changed_service(count, generation);
        let backends = synthetic::endpoint_addresses(i, Some(generation));
        let started = Instant::now();
        balancer.set(frontend(i), &backends).expect("a change written");
        times.push(started.elapsed());
    }
    times.sort();
    Some(SocketLbSync { full, changes: times, kernel_bytes })
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
        let socket_lb = socket_lb_sync(count, changes);
        Sync {
            services: count,
            render_plan,
            apply,
            apply_cpu,
            messages,
            bytes,
            changes: totals,
            change_applies: applies,
            socket_lb,
        }
    })
}
