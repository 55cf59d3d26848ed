//! The program in the real kernel: each test attaches it to the machine's cgroup v2 root, puts
//! only a fresh network namespace of its own in scope, and connects there. The frontend address
//! has no route in that namespace, so a connect that the program did not rewrite fails at once
//! (ENETUNREACH) rather than reaching anything.
#![allow(clippy::unwrap_used)] // a test stops at the first broken assumption

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use frontdoor_socket_lb::{current_netns_cookie, kernel_peer, open_cgroup2_root, Frontend, SocketBalancer};

const FRONTEND: Frontend = Frontend { ip: Ipv4Addr::new(10, 96, 7, 7), port: 80 };

/// A listener on loopback that answers each connection with its own port and closes.
fn backend() -> (SocketAddrV4, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).unwrap_or(0) == 0 {
                return; // the test's last connection: stop
            }
            let _ = stream.write_all(&port.to_be_bytes());
        }
    });
    (SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), handle)
}

/// Connects to the frontend and returns the port of the backend that answered.
fn ask() -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&(FRONTEND.ip, FRONTEND.port).into(), Duration::from_secs(2))?;
    stream.write_all(b"?")?;
    let mut port = [0u8; 2];
    stream.read_exact(&mut port)?;
    Ok(u16::from_be_bytes(port))
}

fn stop(backend: SocketAddrV4) {
    drop(TcpStream::connect(backend));
}

fn in_namespace(test: impl FnOnce() + Send) {
    frontdoor_netns::run_in_fresh_network_namespace(test).expect("a fresh network namespace");
}

#[test]
fn connections_to_a_frontend_go_straight_to_its_backends_in_scope_only() {
    in_namespace(|| {
        let mut balancer = SocketBalancer::attach(&open_cgroup2_root().unwrap().0).expect("attach");
        let (first, first_thread) = backend();
        let (second, second_thread) = backend();
        balancer.set(FRONTEND, &[first, second]).unwrap();

        // Not in scope yet: the program leaves the address alone and nothing routes it.
        let unreachable = ask().expect_err("no rewrite outside the scope");
        assert_eq!(unreachable.kind(), ErrorKind::NetworkUnreachable, "{unreachable}");

        // Added twice (say, the node's namespace and a holder sharing it), removed once: still
        // in scope.
        let here = current_netns_cookie().unwrap();
        balancer.scope().add(here).unwrap();
        balancer.scope().add(here).unwrap();
        balancer.scope().remove(here).unwrap();
        let mut answered: HashMap<u16, usize> = HashMap::new();
        for _ in 0..200 {
            *answered.entry(ask().expect("rewritten to a backend")).or_default() += 1;
        }
        assert_eq!(answered.len(), 2, "both backends chosen: {answered:?}");
        assert!(answered.values().all(|&n| n > 40), "spread at random: {answered:?}");

        // The socket runs to a backend, yet getpeername names the frontend it was connected to,
        // as through NAT.
        let mut stream = TcpStream::connect((FRONTEND.ip, FRONTEND.port)).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), (FRONTEND.ip, FRONTEND.port).into());
        let peer = kernel_peer(stream.local_addr().unwrap().port()).expect("the socket in /proc/net/tcp");
        assert!([first, second].contains(&peer), "the kernel's peer {peer}");
        // Asked like the others (a connection closed unasked stops a backend).
        stream.write_all(b"?").unwrap();
        stream.read_exact(&mut [0u8; 2]).unwrap();
        drop(stream);

        // A new set replaces the old one whole.
        balancer.set(FRONTEND, &[second]).unwrap();
        for _ in 0..20 {
            assert_eq!(ask().unwrap(), second.port());
        }
        // Another port of the same address is not a frontend.
        let other = TcpStream::connect_timeout(&(FRONTEND.ip, 81).into(), Duration::from_secs(2)).unwrap_err();
        assert_eq!(other.kind(), ErrorKind::NetworkUnreachable);

        // UDP is left to the nftables rules.
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        assert_eq!(udp.connect((FRONTEND.ip, FRONTEND.port)).unwrap_err().kind(), ErrorKind::NetworkUnreachable);

        // Removed (no endpoints): back to the kernel's routing.
        balancer.set(FRONTEND, &[]).unwrap();
        assert_eq!(ask().unwrap_err().kind(), ErrorKind::NetworkUnreachable);
        assert_eq!(balancer.frontends().count(), 0);

        // Out of scope once removed as often as added.
        balancer.set(FRONTEND, &[first]).unwrap();
        assert_eq!(ask().unwrap(), first.port());
        balancer.scope().remove(here).unwrap();
        assert_eq!(ask().unwrap_err().kind(), ErrorKind::NetworkUnreachable);
        balancer.scope().add(here).unwrap();

        // Dropping the balancer detaches the program.
        balancer.set(FRONTEND, &[first]).unwrap();
        assert_eq!(ask().unwrap(), first.port());
        drop(balancer);
        assert_eq!(ask().unwrap_err().kind(), ErrorKind::NetworkUnreachable);

        stop(first);
        stop(second);
        first_thread.join().unwrap();
        second_thread.join().unwrap();
    });
}
