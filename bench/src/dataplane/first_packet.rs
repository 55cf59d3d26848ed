//! Step 2: first-packet latency. For each size, a fresh network namespace with N Services
//! programmed by the proxy's own path (`Programmed::full`, one batch), where the 8 endpoints of
//! the Service in the middle are addresses of the namespace itself with a TCP server behind them
//! (the DNAT target is local, as a node's own pod address would be one hop away); a route sends
//! the Service range out of `lo` from a node address in the pod range. Each sample is one
//! `connect()` to the ClusterIP: a new conntrack entry, the `nat output` lookup, DNAT, the
//! handshake. The same-run baseline is a `connect()` straight to an endpoint address (same hooks,
//! no Service matched), interleaved with it. The sizes run side by side, in batches taken in
//! turn, so that a busy moment of the machine falls on all of them alike.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use frontdoor_netfilter::Socket;

use super::synthetic::{self, SERVICE_PORT};
use super::system::{in_fresh_netns, ip};

/// The node's address, in the pod range (so the proxy does not masquerade its connections).
const NODE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 244, 255, 254);
const BATCH: usize = 100;
const WARM_UP: usize = 200;

pub struct FirstPacket {
    pub services: usize,
    /// `connect()` to the ClusterIP, sorted.
    pub cluster_ip: Vec<Duration>,
    /// `connect()` straight to an endpoint, sorted.
    pub direct: Vec<Duration>,
    pub failures: usize,
}

/// One round: a connect to the ClusterIP, then one straight to an endpoint.
type Round = (Option<Duration>, Option<Duration>);

fn timed_connect(to: SocketAddrV4) -> Option<Duration> {
    let started = Instant::now();
    let stream = TcpStream::connect_timeout(&SocketAddr::V4(to), Duration::from_secs(2)).ok()?;
    let took = started.elapsed();
    drop(stream);
    Some(took)
}

/// Sets up the namespace of the calling thread for `count` Services, then runs the batches of
/// rounds asked on `batches`, answering each on `rounds` (an empty answer first: ready).
fn worker(count: usize, batches: Receiver<usize>, rounds: Sender<Vec<Round>>) {
    let target = count / 2;
    let endpoints = synthetic::endpoint_addresses(target, None);
    assert!(endpoints.iter().all(|e| *e.ip() != NODE_ADDRESS));
    ip(&["addr", "add", &format!("{NODE_ADDRESS}/32"), "dev", "lo"]);
    for endpoint in &endpoints {
        ip(&["addr", "add", &format!("{}/32", endpoint.ip()), "dev", "lo"]);
    }
    ip(&["route", "add", "10.96.0.0/12", "dev", "lo", "src", &NODE_ADDRESS.to_string()]);
    let (_programmed, plan) = synthetic::full_sync(count);
    Socket::open().expect("a netfilter socket").apply(&plan.batch).expect("the ruleset applies");
    drop(plan);

    let port = endpoints[0].port();
    assert!(endpoints.iter().all(|e| e.port() == port), "one server port for all 8 endpoints");
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("the endpoints' server binds");
    let stop = AtomicBool::new(false);
    let service = SocketAddrV4::new(synthetic::cluster_ip(target), SERVICE_PORT);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                drop(stream);
            }
        });
        let mut next = 0;
        let mut listening = rounds.send(Vec::new()).is_ok();
        while listening {
            let Ok(count) = batches.recv() else { break };
            let batch: Vec<Round> = (0..count)
                .map(|_| {
                    next += 1;
                    (timed_connect(service), timed_connect(endpoints[next % endpoints.len()]))
                })
                .collect();
            listening = rounds.send(batch).is_ok();
        }
        stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&SocketAddr::V4(endpoints[0]), Duration::from_secs(1));
    });
}

/// `connects` rounds at each of `sizes`, side by side.
pub fn measure(sizes: &[usize], connects: usize) -> Vec<FirstPacket> {
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for &count in sizes {
            let (ask, batches) = channel::<usize>();
            let (answer, rounds) = channel::<Vec<Round>>();
            scope.spawn(move || in_fresh_netns(|| worker(count, batches, answer)));
            workers.push((ask, rounds));
        }
        let answer =
            |rounds: &Receiver<Vec<Round>>| rounds.recv().expect("a first-packet worker stopped (its panic is above)");
        let run = |(ask, rounds): &(Sender<usize>, Receiver<Vec<Round>>), count: usize| -> Vec<Round> {
            let _ = ask.send(count);
            answer(rounds)
        };
        // Each first says it is ready (an empty answer).
        let mut results: Vec<Vec<Round>> = workers.iter().map(|(_, rounds)| answer(rounds)).collect();
        for worker in &workers {
            run(worker, WARM_UP);
        }
        for _ in 0..connects.div_ceil(BATCH) {
            for (worker, result) in workers.iter().zip(&mut results) {
                result.extend(run(worker, BATCH));
            }
        }
        drop(workers);
        sizes
            .iter()
            .zip(results)
            .map(|(&services, rounds)| {
                let failures = rounds.iter().filter(|(a, b)| a.is_none() || b.is_none()).count();
                let (mut cluster_ip, mut direct): (Vec<Duration>, Vec<Duration>) =
                    rounds.into_iter().filter_map(|(a, b)| Some((a?, b?))).unzip();
                cluster_ip.sort();
                direct.sort();
                FirstPacket { services, cluster_ip, direct, failures }
            })
            .collect()
    })
}
