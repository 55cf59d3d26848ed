//! What the balancer adds to a `connect()`: in a fresh network namespace, connections straight
//! to a loopback listener, then through a frontend the balancer rewrites to it, interleaved in
//! batches; prints the median time per connect+close of each. (The maps' kernel memory at
//! scale is the data-plane bench's, step 1.)
//!
//! `cargo run --release -p frontdoor-socket-lb --example connect_cost` (root).

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use frontdoor_socket_lb::{current_netns_cookie, open_cgroup2_root, Frontend, SocketBalancer};

const BATCH: usize = 2_000;
const ROUNDS: usize = 15;

fn batch(to: SocketAddrV4) -> Duration {
    let started = Instant::now();
    for _ in 0..BATCH {
        drop(TcpStream::connect(to).expect("connect"));
    }
    started.elapsed() / BATCH as u32
}

fn main() {
    frontdoor_netns::run_in_fresh_network_namespace(|| {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listen");
        let backend = SocketAddrV4::new(Ipv4Addr::LOCALHOST, listener.local_addr().expect("address").port());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
            }
        });
        let mut balancer = SocketBalancer::attach(&open_cgroup2_root().expect("cgroup v2").0).expect("attach");
        balancer.scope().add(current_netns_cookie().expect("cookie")).expect("scope");
        let frontend = Frontend { ip: Ipv4Addr::new(10, 96, 0, 1), port: 80 };
        balancer.set(frontend, &[backend]).expect("frontend");
        let (mut direct, mut balanced) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            direct.push(batch(backend));
            balanced.push(batch(SocketAddrV4::new(frontend.ip, frontend.port)));
        }
        direct.sort();
        balanced.sort();
        let (d, b) = (direct[ROUNDS / 2], balanced[ROUNDS / 2]);
        println!(
            "connect+close, median of {ROUNDS} batches of {BATCH}: straight {:.2} µs, through the balancer {:.2} µs (+{:.2} µs)",
            d.as_secs_f64() * 1e6,
            b.as_secs_f64() * 1e6,
            (b.as_secs_f64() - d.as_secs_f64()) * 1e6
        );
    })
    .expect("a fresh network namespace");
}
