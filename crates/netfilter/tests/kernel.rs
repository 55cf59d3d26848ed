//! Against the kernel, each test in a network namespace of its own (created by the test thread
//! with `unshare(CLONE_NEWNET)`, gone when the thread ends): apply batches through `Socket`, read
//! back with `nft list`. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and the `nft` program.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{in_netns, nft, TABLE};
use frontdoor_netfilter::conntrack::{delete_udp_flows, list_udp_flows, FlowFilter};
use frontdoor_netfilter::{
    ApplyError, BaseChain, Batch, ChainType, CmpOp, CtKey, DataType, Element, ElementData, Expr, Family, Hook,
    ImmediateData, Register, SetData, SetSpec, Socket, Value, Verdict,
};

/// What `nft list table ip fdtest` prints for the golden ruleset, whether nft or this crate
/// programmed it.
const GOLDEN_LISTING: &str = "table ip fdtest {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.11 . udp . 53 : jump svc-b,
			     10.96.0.10 . tcp . 80 : goto svc-a }
	}

	map backends {
		typeof ip daddr . meta l4proto . th dport . numgen random mod 3 : ip daddr . th dport
		elements = { 10.96.0.10 . tcp . 80 . 0 : 10.1.0.5 . 8080,
			     10.96.0.10 . tcp . 80 . 1 : 10.1.0.6 . 8080 }
	}

	set aff {
		type ipv4_addr
		size 65535
		flags dynamic,timeout
		timeout 3h
	}

	set cluster-ips {
		type ipv4_addr
		elements = { 10.96.0.10, 10.96.0.11 }
	}

	map marks {
		type mark : verdict
		elements = { 0x00004000 : accept }
	}

	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}

	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x00004000 == 0x00000000 return
		meta mark set meta mark ^ 0x00004000
		masquerade fully-random
		ip saddr 10.0.0.0 snat to 10.0.0.1 random,persistent
	}

	chain filter-input {
		type filter hook input priority -110; policy accept;
		ct state new jump checks
		fib daddr type local counter packets 0 bytes 0 accept
		ct status dnat accept
	}

	chain checks {
		ip daddr @cluster-ips reject
		reject with tcp reset
		ip daddr != @cluster-ips drop
		ct original ip daddr 10.96.0.10 ct mark 0x00000001 continue
	}

	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}

	chain svc-a {
		ip saddr @aff goto svc-b
		update @aff { ip saddr }
		dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @backends
	}

	chain svc-b {
		meta mark set meta mark | 0x00004000
		meta l4proto udp dnat to 10.1.0.7:53
	}
}
";

fn list_table() -> String {
    nft(&["list", "table", "ip", TABLE])
}

#[test]
fn golden_ruleset_lists_as_nft_prints_it() {
    let listed = in_netns(|| {
        let mut sock = Socket::open().unwrap();
        sock.apply(&common::golden_batch()).unwrap();
        list_table()
    });
    assert_eq!(listed, GOLDEN_LISTING);

    // The same ruleset programmed by nft itself lists the same.
    let by_nft = in_netns(|| {
        let mut child = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(common::GOLDEN_NFT.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        list_table()
    });
    assert_eq!(by_nft, GOLDEN_LISTING);
}

#[test]
fn a_failing_batch_names_the_message_and_changes_nothing() {
    in_netns(|| {
        let mut sock = Socket::open().unwrap();
        sock.apply(&common::golden_batch()).unwrap();

        let mut b = Batch::new(Family::Ipv4);
        b.add_chain(TABLE, "new-chain", None);
        b.add_elements(
            TABLE,
            &common::cluster_ips(),
            &[Element { key: vec![Value::Ipv4(Ipv4Addr::new(10, 96, 0, 99))], data: None }],
        );
        b.flush_chain(TABLE, "svc-a");
        let jump =
            Expr::Immediate { dreg: Register::Verdict, data: ImmediateData::Verdict(Verdict::Jump("nope".into())) };
        b.add_rule(TABLE, "svc-b", &[jump]);
        b.add_rule(TABLE, "new-chain", &[Expr::Counter]);
        match sock.apply(&b) {
            Err(ApplyError::Kernel { operation, source }) => {
                assert_eq!(operation, "add rule fdtest svc-b");
                assert_eq!(source.raw_os_error(), Some(libc_enoent()), "{source}");
            }
            other => panic!("expected a kernel error, got {other:?}"),
        }
        assert_eq!(list_table(), GOLDEN_LISTING, "the failed batch changed nothing");

        // The socket stays usable, and errors are reported for whichever message failed.
        let mut missing = Batch::new(Family::Ipv4);
        missing.add_table("other");
        missing.delete_table("no-such-table");
        let err = sock.apply(&missing).unwrap_err();
        assert_eq!(err.to_string(), format!("delete table no-such-table: {}", std::io::Error::from_raw_os_error(2)));
        assert!(!nft(&["list", "tables"]).contains("other"));

        let mut ok = Batch::new(Family::Ipv4);
        ok.flush_chain(TABLE, "svc-b");
        ok.flush_set(TABLE, "cluster-ips");
        sock.apply(&ok).unwrap();
        let listed = list_table();
        assert!(listed.contains("\tchain svc-b {\n\t}\n"), "{listed}");
        assert!(listed.contains("\tset cluster-ips {\n\t\ttype ipv4_addr\n\t}\n"), "{listed}");
    });
}

fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}

#[test]
fn deletes_sets_chains_elements_and_tables() {
    in_netns(|| {
        let mut sock = Socket::open().unwrap();
        sock.apply(&common::golden_batch()).unwrap();
        let mut b = Batch::new(Family::Ipv4);
        b.delete_elements(
            TABLE,
            &common::service_ips(),
            &[Element {
                key: vec![Value::Ipv4(Ipv4Addr::new(10, 96, 0, 11)), Value::Proto(17), Value::Port(53)],
                data: None,
            }],
        );
        b.flush_chain(TABLE, "nat-prerouting");
        b.flush_chain(TABLE, "services");
        b.delete_chain(TABLE, "services");
        b.delete_set(TABLE, "marks");
        sock.apply(&b).unwrap();
        let listed = list_table();
        assert!(listed.contains("elements = { 10.96.0.10 . tcp . 80 : goto svc-a }"), "{listed}");
        assert!(!listed.contains("chain services"), "{listed}");
        assert!(!listed.contains("map marks"), "{listed}");

        let mut b = Batch::new(Family::Ipv4);
        b.delete_table(TABLE);
        sock.apply(&b).unwrap();
        assert_eq!(nft(&["list", "ruleset"]), "");
    });
}

#[test]
fn plain_integer_fields_list_through_typeof() {
    let listed = in_netns(|| {
        let map = SetSpec {
            name: "by-index".into(),
            key: vec![DataType::Ipv4Addr, DataType::Integer32],
            data: Some(SetData::Types(vec![DataType::Ipv4Addr])),
            timeout: None,
            dynamic: false,
        };
        let mut b = Batch::new(Family::Inet);
        b.add_table("t");
        b.add_set("t", &map);
        b.add_elements(
            "t",
            &map,
            &[Element {
                key: vec![Value::Ipv4(Ipv4Addr::new(10, 96, 0, 1)), Value::U32(7)],
                data: Some(ElementData::Values(vec![Value::Ipv4(Ipv4Addr::new(10, 1, 0, 1))])),
            }],
        );
        Socket::open().unwrap().apply(&b).unwrap();
        nft(&["list", "ruleset"])
    });
    assert_eq!(
        listed,
        "table inet t {
	map by-index {
		typeof ip daddr . numgen random mod 0 : ip daddr
		elements = { 10.96.0.1 . 7 : 10.1.0.1 }
	}
}
"
    );
}

#[test]
fn a_quarter_million_elements_in_one_batch() {
    const N: u32 = 250_000;
    in_netns(|| {
        let map = common::service_ips();
        let started = Instant::now();
        let mut b = Batch::new(Family::Ipv4);
        b.add_table(TABLE);
        b.add_chain(TABLE, "svc-a", None);
        b.add_set(TABLE, &map);
        let elements: Vec<Element> = (0..N)
            .map(|i| Element {
                key: vec![Value::Ipv4(Ipv4Addr::from(0x0a60_0000 + i)), Value::Proto(6), Value::Port(80)],
                data: Some(ElementData::Verdict(Verdict::Goto("svc-a".into()))),
            })
            .collect();
        let built = started.elapsed();
        b.add_elements(TABLE, &map, &elements);
        let encoded = started.elapsed();
        let bytes = b.encode(1).len();
        let mut sock = Socket::open().unwrap();
        let (user_before, system_before) = cpu_time();
        let applied_at = Instant::now();
        sock.apply(&b).unwrap();
        let applied = applied_at.elapsed();
        let (user, system) = cpu_time();
        println!(
            "{N} elements: {} messages, {:.1} MiB; elements built in {built:?}, batch encoded in {:?}; \
             applied in {applied:?} (this thread: user {:?}, system {:?} — the kernel's work)",
            b.message_count(),
            bytes as f64 / (1024.0 * 1024.0),
            encoded - built,
            user - user_before,
            system - system_before,
        );

        // Every element arrived: deleting them all again succeeds only if each exists.
        let mut del = Batch::new(Family::Ipv4);
        del.delete_elements(TABLE, &map, &elements);
        sock.apply(&del).unwrap();
        let mut again = Batch::new(Family::Ipv4);
        again.delete_elements(TABLE, &map, &elements[..1]);
        assert!(matches!(sock.apply(&again), Err(ApplyError::Kernel { .. })));
    });
}

/// User and system CPU time of the calling thread.
fn cpu_time() -> (Duration, Duration) {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD).unwrap();
    let d = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    (d(usage.user_time()), d(usage.system_time()))
}

/// Brings `lo` up in the calling thread's namespace (RTM_NEWLINK over rtnetlink).
fn loopback_up() {
    let sock = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE).unwrap();
    let mut msg = Vec::new();
    msg.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&16u16.to_ne_bytes()); // RTM_NEWLINK
    msg.extend_from_slice(&(0x1u16 | 0x4).to_ne_bytes()); // NLM_F_REQUEST | NLM_F_ACK
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
    msg.extend_from_slice(&[0, 0, 0, 0]); // ifi_family, pad, ifi_type
    msg.extend_from_slice(&1i32.to_ne_bytes()); // ifi_index: lo
    msg.extend_from_slice(&1u32.to_ne_bytes()); // ifi_flags: IFF_UP
    msg.extend_from_slice(&1u32.to_ne_bytes()); // ifi_change
    sock.send_to(&msg, &netlink_sys::SocketAddr::new(0, 0), 0).unwrap();
    let mut buf = Vec::with_capacity(4096);
    sock.recv(&mut buf, 0).unwrap();
    let error = i32::from_ne_bytes(buf[16..20].try_into().unwrap());
    assert_eq!(error, 0, "bringing lo up");
}

/// `ct state != 0 counter`: a rule that uses conntrack, so that the namespace's packets are
/// tracked at all.
fn tracking() -> [Expr; 3] {
    [
        Expr::Ct { key: CtKey::State, direction: None, dreg: Register::R1 },
        Expr::Cmp { op: CmpOp::Neq, sreg: Register::R1, data: 0u32.to_ne_bytes().to_vec() },
        Expr::Counter,
    ]
}

#[test]
fn deletes_exactly_the_matching_udp_flows() {
    in_netns(|| {
        loopback_up();
        // Conntrack only tracks a namespace whose rules use it.
        let mut b = Batch::new(Family::Ipv4);
        b.add_table("ct");
        let hook = BaseChain { hook: Hook::Output, priority: 0, kind: ChainType::Filter };
        b.add_chain("ct", "out", Some(&hook));
        b.add_rule("ct", "out", &tracking());
        Socket::open().unwrap().apply(&b).unwrap();

        let lo = Ipv4Addr::LOCALHOST;
        let servers: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind((lo, 0)).unwrap()).collect();
        let ports: Vec<u16> = servers.iter().map(|s| s.local_addr().unwrap().port()).collect();
        let client = UdpSocket::bind((lo, 0)).unwrap();
        for port in &ports {
            client.send_to(b"hello", (lo, *port)).unwrap();
        }
        let flows = list_udp_flows().unwrap();
        let to = |port: u16| flows.iter().filter(|f| f.original.dst_port == port).count();
        assert!(ports.iter().all(|p| to(*p) == 1), "{flows:?}");

        // By original destination (a Service frontend).
        let frontend = FlowFilter { original_destination: Some((lo, Some(ports[0]))), reply_source: None };
        assert_eq!(delete_udp_flows(&frontend).unwrap(), 1);
        assert_eq!(delete_udp_flows(&frontend).unwrap(), 0);
        // By reply source (an endpoint).
        let endpoint = FlowFilter { original_destination: None, reply_source: Some((lo, Some(ports[1]))) };
        assert_eq!(delete_udp_flows(&endpoint).unwrap(), 1);
        // Other addresses match nothing.
        let elsewhere =
            FlowFilter { original_destination: Some((Ipv4Addr::new(10, 0, 0, 1), None)), reply_source: None };
        assert_eq!(delete_udp_flows(&elsewhere).unwrap(), 0);

        let left: Vec<u16> = list_udp_flows().unwrap().iter().map(|f| f.original.dst_port).collect();
        assert_eq!(left, vec![ports[2]]);
        // Both parts must match.
        let both = FlowFilter { original_destination: Some((lo, Some(ports[2]))), reply_source: Some((lo, Some(1))) };
        assert_eq!(delete_udp_flows(&both).unwrap(), 0);
        let any_port = FlowFilter { original_destination: Some((lo, None)), reply_source: Some((lo, None)) };
        assert_eq!(delete_udp_flows(&any_port).unwrap(), 1);
        assert!(list_udp_flows().unwrap().is_empty());

        // Many flows (sent to closed ports: conntrack tracks them all the same), deleted in
        // several rounds of requests.
        for port in 20_000..21_000u16 {
            client.send_to(b"x", (lo, port)).unwrap();
        }
        assert_eq!(list_udp_flows().unwrap().len(), 1000);
        let range = FlowFilter { original_destination: Some((lo, None)), reply_source: None };
        assert_eq!(delete_udp_flows(&range).unwrap(), 1000);
        assert!(list_udp_flows().unwrap().is_empty());
    });
}

/// `notrack` before conntrack: a datagram to the untracked port is delivered and leaves no
/// conntrack entry, while one to another port of the same address leaves one. The rules list
/// as nft's own do.
#[test]
fn notrack_leaves_one_port_untracked() {
    const RULES: &str = "table ip raw {
	chain pre {
		type filter hook output priority raw; policy accept;
		ip daddr 127.0.0.1 udp dport 5353 notrack
	}

	chain track {
		type filter hook output priority filter; policy accept;
		ct state != 0x00000000 counter packets 0 bytes 0
	}
}
";
    let by_nft = in_netns(|| {
        let mut child = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(RULES.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        nft(&["list", "table", "ip", "raw"])
    });
    in_netns(|| {
        loopback_up();
        let lo = Ipv4Addr::LOCALHOST;
        let mut b = Batch::new(Family::Ipv4);
        b.add_table("raw");
        b.add_chain("raw", "pre", Some(&BaseChain { hook: Hook::Output, priority: -300, kind: ChainType::Filter }));
        b.add_chain("raw", "track", Some(&BaseChain { hook: Hook::Output, priority: 0, kind: ChainType::Filter }));
        let mut untrack = frontdoor_netfilter::phrases::to_port(lo, 17, 5353).to_vec();
        untrack.push(frontdoor_netfilter::phrases::notrack());
        b.add_rule("raw", "pre", &untrack);
        b.add_rule("raw", "track", &tracking());
        Socket::open().unwrap().apply(&b).unwrap();
        assert_eq!(nft(&["list", "table", "ip", "raw"]), by_nft);

        let untracked = UdpSocket::bind((lo, 5353)).unwrap();
        let tracked = UdpSocket::bind((lo, 0)).unwrap();
        let client = UdpSocket::bind((lo, 0)).unwrap();
        client.send_to(b"untracked", (lo, 5353)).unwrap();
        client.send_to(b"tracked", tracked.local_addr().unwrap()).unwrap();
        // Both arrived: the system got past the rules.
        let mut buf = [0u8; 16];
        untracked.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tracked.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = untracked.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"untracked");
        let n = tracked.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"tracked");
        let ports: Vec<u16> = list_udp_flows().unwrap().iter().map(|f| f.original.dst_port).collect();
        assert_eq!(ports, vec![tracked.local_addr().unwrap().port()]);
    });
}
