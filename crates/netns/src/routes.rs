//! The node's routing table as a kubelet reads it (the address of the interface of the default
//! route), and taking the node's bridge down again with what the kernel hung on it.
//!
//! Both read the kernel's tables with netlink dumps (links, addresses, routes) in the calling
//! thread's network namespace; the bridge itself is deleted through [`RouteSocket`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::netlink::RouteSocket;
use crate::{validate_link_name, Error};

/// The IPv4 address a kubelet given no `--node-ip` reports as the Node's InternalIP: the first
/// global unicast IPv4 address of the interface that holds the default route (of the main
/// table; of several default routes, the one with the lowest metric whose interface is up and
/// has such an address). `None` when there is no default route (or none with a usable address).
///
/// Reads the calling thread's network namespace.
pub fn default_route_address() -> io::Result<Option<Ipv4Addr>> {
    let mut socket = RouteSocket::open()?;
    let routes = default_routes(socket.dump(RouteNetlinkMessage::GetRoute(inet_route_query()))?);
    if routes.is_empty() {
        return Ok(None);
    }
    let up: HashMap<u32, bool> = socket
        .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => Some((link.header.index, link.header.flags.contains(LinkFlags::Up))),
            _ => None,
        })
        .collect();
    let addresses = ipv4_addresses(socket.dump(RouteNetlinkMessage::GetAddress(inet_address_query()))?);
    Ok(choose(&routes, |index| up.get(&index).copied().unwrap_or(false), &addresses))
}

/// The mark (`IFA_PROTO`, Linux 5.18 and later) on every address [`announce_address`] adds:
/// what lets [`withdraw_address`] and [`withdraw_announced`] remove frontdoor's own addresses and
/// never one that someone else put on the interface. An address is `proto 0xfd` in `ip address`.
pub const ANNOUNCED_PROTOCOL: u8 = 0xfd;

/// Makes this machine answer ARP for `address` on the network it belongs to, as MetalLB's
/// layer-2 mode does for a load-balancer address: the address is added (as a /32, marked
/// [`ANNOUNCED_PROTOCOL`]) to the first interface other than loopback and `except` (the pod
/// bridge) whose own IPv4 subnet contains it. Returns that interface's name, or `None` when no
/// attached network contains the address (nothing to answer on). Idempotent; an address already
/// on that interface (someone else's) is left as it is, unmarked. Works in the calling thread's
/// network namespace.
pub fn announce_address(address: Ipv4Addr, except: &str) -> Result<Option<String>, Error> {
    let mut socket = RouteSocket::open().map_err(|e| os("open netlink socket", e))?;
    let addresses = list_addresses(&mut socket)?;
    let links = socket.links().map_err(|e| os("list links", e))?;
    let name_of = |index: u32| links.iter().find(|link| link.index == index).map(|link| link.name.clone());
    let containing = addresses.iter().find(|held| {
        let name = name_of(held.index).unwrap_or_default();
        held.prefix_len > 0
            && held.prefix_len < 32
            && name != "lo"
            && name != except
            && (u32::from(held.address) ^ u32::from(address)) >> (32 - u32::from(held.prefix_len)) == 0
    });
    let Some(containing) = containing else { return Ok(None) };
    socket
        .add_address_marked(containing.index, address, 32, ANNOUNCED_PROTOCOL)
        .map_err(|e| os(&format!("add {address}/32"), e))?;
    Ok(name_of(containing.index))
}

/// Stops answering for `address`: removes the /32s of it that [`announce_address`] added (those
/// marked [`ANNOUNCED_PROTOCOL`]; the same address put there by anyone else stays). Returns
/// whether there was one.
///
/// A kernel older than Linux 5.18 keeps no mark: there every /32 of the address goes, as before
/// marks were used.
pub fn withdraw_address(address: Ipv4Addr) -> Result<bool, Error> {
    Ok(!withdraw(|announced| announced == address, kernel_keeps_marks())?.is_empty())
}

/// Removes every address [`announce_address`] added in the calling thread's network namespace,
/// whatever it was for: what a node that stops, or `frontdoor cleanup` after a crash, leaves no
/// load-balancer address behind with. Returns the interfaces' names and the addresses removed.
///
/// A kernel older than Linux 5.18 keeps no mark, so nothing tells frontdoor's addresses from
/// others there: nothing is removed.
pub fn withdraw_announced() -> Result<Vec<(String, Ipv4Addr)>, Error> {
    if !kernel_keeps_marks() {
        return Ok(Vec::new());
    }
    withdraw(|_| true, true)
}

/// Removes the /32s that `wanted` picks, only those marked as announced if `marked_only`; says
/// which, on which interface.
fn withdraw(wanted: impl Fn(Ipv4Addr) -> bool, marked_only: bool) -> Result<Vec<(String, Ipv4Addr)>, Error> {
    let mut socket = RouteSocket::open().map_err(|e| os("open netlink socket", e))?;
    let ours = |held: &HeldAddress| !marked_only || held.protocol == Some(ANNOUNCED_PROTOCOL);
    let held: Vec<HeldAddress> = list_addresses(&mut socket)?
        .into_iter()
        .filter(|held| held.prefix_len == 32 && ours(held) && wanted(held.address))
        .collect();
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let links = socket.links().map_err(|e| os("list links", e))?;
    let mut removed = Vec::with_capacity(held.len());
    for HeldAddress { index, address, .. } in held {
        socket
            .batch(vec![crate::netlink::Request::delete_address(index, address, 32)])
            .map_err(|(_, e)| os(&format!("remove {address}/32"), e))?;
        let name = links.iter().find(|link| link.index == index).map(|link| link.name.clone());
        removed.push((name.unwrap_or_else(|| index.to_string()), address));
    }
    Ok(removed)
}

/// Whether this kernel keeps an address's protocol mark (`IFA_PROTO`: Linux 5.18 and later;
/// an older one ignores it).
fn kernel_keeps_marks() -> bool {
    static KEEPS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KEEPS.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or(true, |release| release_at_least(&release, (5, 18)))
    })
}

/// Whether a kernel release (`6.18.44-fc`, `5.4.0-150-generic`) is at least `major.minor`; one
/// that cannot be read is taken to be.
fn release_at_least(release: &str, wanted: (u32, u32)) -> bool {
    let mut numbers = release.trim().split(|c: char| !c.is_ascii_digit()).map(str::parse::<u32>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= wanted,
        _ => true,
    }
}

fn os(what: &str, error: io::Error) -> Error {
    Error::os(what.to_string(), error)
}

/// The IPv4 addresses of every interface.
fn list_addresses(socket: &mut RouteSocket) -> Result<Vec<HeldAddress>, Error> {
    let replies =
        socket.dump(RouteNetlinkMessage::GetAddress(inet_address_query())).map_err(|e| os("list addresses", e))?;
    Ok(ipv4_addresses(replies))
}

/// Removes the route [`route_to_bridge`](crate::route_to_bridge) added for `network/prefix_len`.
pub fn unroute_from_bridge(name: &str, network: Ipv4Addr, prefix_len: u8) -> Result<(), Error> {
    let mut socket = RouteSocket::open().map_err(|error| Error::os("open netlink socket", error))?;
    let Some(index) = socket.link_index(name).map_err(|error| Error::os(format!("look up {name}"), error))? else {
        return Ok(());
    };
    socket
        .batch(vec![crate::netlink::Request::delete_link_route(index, network, prefix_len)])
        .map_err(|(_, error)| Error::os(format!("remove the route to {network}/{prefix_len}"), error))
}

/// A default route: its metric and the interfaces it leaves by (one, or a multipath route's).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DefaultRoute {
    metric: u32,
    interfaces: Vec<u32>,
}

/// The IPv4 default routes of the main table, lowest metric first (the kernel's order among
/// equals).
fn default_routes(replies: Vec<RouteNetlinkMessage>) -> Vec<DefaultRoute> {
    let mut routes: Vec<DefaultRoute> = replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewRoute(route) => Some(route),
            _ => None,
        })
        .filter(|route| {
            route.header.address_family == AddressFamily::Inet
                && route.header.destination_prefix_length == 0
                && route.header.kind == RouteType::Unicast
                && table(route) == u32::from(RouteHeader::RT_TABLE_MAIN)
        })
        .map(|route| {
            let mut default = DefaultRoute { metric: 0, interfaces: Vec::new() };
            for attribute in route.attributes {
                match attribute {
                    RouteAttribute::Priority(metric) => default.metric = metric,
                    RouteAttribute::Oif(index) => default.interfaces.push(index),
                    RouteAttribute::MultiPath(hops) => {
                        default.interfaces.extend(hops.iter().map(|hop| hop.interface_index))
                    }
                    _ => {}
                }
            }
            default
        })
        .collect();
    routes.sort_by_key(|route| route.metric);
    routes
}

/// The table a route is in (the attribute, when the header's byte cannot hold it).
fn table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

/// An IPv4 address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeldAddress {
    /// The link's index.
    index: u32,
    address: Ipv4Addr,
    prefix_len: u8,
    /// Who added it (`IFA_PROTO`), where the kernel says.
    protocol: Option<u8>,
}

/// Every IPv4 address with its link's index, in the kernel's order (a link's primary address
/// before its secondaries).
fn ipv4_addresses(replies: Vec<RouteNetlinkMessage>) -> Vec<HeldAddress> {
    replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewAddress(address) => Some(address),
            _ => None,
        })
        .filter_map(|message| {
            let (mut local, mut address, mut protocol) = (None, None, None);
            for attribute in &message.attributes {
                match attribute {
                    AddressAttribute::Local(IpAddr::V4(ip)) => local = Some(*ip),
                    AddressAttribute::Address(IpAddr::V4(ip)) => address = Some(*ip),
                    AddressAttribute::Protocol(mark) => protocol = Some(u8::from(*mark)),
                    _ => {}
                }
            }
            local.or(address).map(|address| HeldAddress {
                index: message.header.index,
                address,
                prefix_len: message.header.prefix_len,
                protocol,
            })
        })
        .collect()
}

/// What Go's `net.IP.IsGlobalUnicast` accepts (private ranges included, as the kubelet takes them).
fn global_unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_link_local() || ip.is_multicast() || ip.is_broadcast())
}

/// The kubelet's choice (`ChooseHostInterface` from the routes): for each default route in order,
/// each of its interfaces that is up, the first global unicast address on it.
fn choose(routes: &[DefaultRoute], up: impl Fn(u32) -> bool, addresses: &[HeldAddress]) -> Option<Ipv4Addr> {
    routes.iter().flat_map(|route| route.interfaces.iter().copied()).filter(|index| up(*index)).find_map(|index| {
        addresses.iter().find(|held| held.index == index && global_unicast(held.address)).map(|held| held.address)
    })
}

/// What went with a bridge [`remove_bridge`] deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedBridge {
    /// Its IPv4 addresses (`10.244.0.1/24`).
    pub addresses: Vec<String>,
    /// The routes of the main table through it (`10.244.0.0/24 dev frontdoor0 proto kernel
    /// scope link src 10.244.0.1`), as `ip route` shows them, and the addresses made the node's
    /// on it (`local 10.96.0.10 dev frontdoor0 table local proto 0xfd scope host`).
    pub routes: Vec<String>,
}

/// Deletes the bridge called `name` from the calling thread's network namespace, and with it
/// its addresses and every route through it (the kernel removes them with the link). Returns
/// what it had, or `None` if there was no such link. A link of that name that is not a bridge
/// is left alone ([`Error::NotABridge`]).
pub fn remove_bridge(name: &str) -> Result<Option<RemovedBridge>, Error> {
    validate_link_name(name).map_err(|reason| Error::Invalid { what: format!("bridge {name:?}"), reason })?;
    let mut socket = RouteSocket::open().map_err(|error| Error::os("open netlink socket", error))?;
    let Some(link) =
        socket.links().map_err(|error| Error::os("list links", error))?.into_iter().find(|link| link.name == name)
    else {
        return Ok(None);
    };
    if link.kind.as_deref() != Some("bridge") {
        return Err(Error::NotABridge { name: name.to_owned(), kind: link.kind });
    }
    let addresses = list_addresses(&mut socket)?
        .into_iter()
        .filter(|held| held.index == link.index)
        .map(|held| format!("{}/{}", held.address, held.prefix_len))
        .collect();
    let routes = socket
        .dump(RouteNetlinkMessage::GetRoute(inet_route_query()))
        .map_err(|error| Error::os("list routes", error))?
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewRoute(route) => Some(route),
            _ => None,
        })
        .filter(|route| {
            (table(route) == u32::from(RouteHeader::RT_TABLE_MAIN) || is_made_local(route))
                && leaves_by(route, link.index)
        })
        .map(|route| describe_route(&route, name))
        .collect();
    if !socket.delete_link(name).map_err(|error| Error::os(format!("delete bridge {name}"), error))? {
        return Ok(None); // gone meanwhile
    }
    tracing::info!(bridge = name, "deleted bridge");
    Ok(Some(RemovedBridge { addresses, routes }))
}

/// A route [`make_local_on_bridge`](crate::make_local_on_bridge) added.
fn is_made_local(route: &RouteMessage) -> bool {
    route.header.kind == RouteType::Local && route.header.protocol == RouteProtocol::Other(ANNOUNCED_PROTOCOL)
}

fn leaves_by(route: &RouteMessage, index: u32) -> bool {
    route.attributes.iter().any(|attribute| match attribute {
        RouteAttribute::Oif(oif) => *oif == index,
        RouteAttribute::MultiPath(hops) => hops.iter().any(|hop| hop.interface_index == index),
        _ => false,
    })
}

/// A route as `ip route` prints it.
fn describe_route(route: &RouteMessage, device: &str) -> String {
    let address = |address: &RouteAddress| match address {
        RouteAddress::Inet(ip) => ip.to_string(),
        other => format!("{other:?}"),
    };
    let mut destination = None;
    let (mut gateway, mut source, mut metric) = (None, None, None);
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Destination(value) => destination = Some(address(value)),
            RouteAttribute::Gateway(value) => gateway = Some(address(value)),
            RouteAttribute::PrefSource(value) => source = Some(address(value)),
            RouteAttribute::Priority(value) => metric = Some(*value),
            _ => {}
        }
    }
    let mut text = String::from(if route.header.kind == RouteType::Local { "local " } else { "" });
    text += &match (destination, route.header.destination_prefix_length) {
        (_, 0) => "default".to_string(),
        (Some(destination), 32) => destination,
        (Some(destination), prefix_len) => format!("{destination}/{prefix_len}"),
        (None, prefix_len) => format!("0.0.0.0/{prefix_len}"),
    };
    if let Some(gateway) = gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    text.push_str(&format!(" dev {device}"));
    if is_made_local(route) {
        text.push_str(&format!(" table local proto {ANNOUNCED_PROTOCOL:#x}"));
    } else {
        text.push_str(&format!(" proto {}", route.header.protocol));
    }
    if route.header.scope != RouteScope::Universe {
        text.push_str(&format!(" scope {}", route.header.scope));
    }
    if let Some(source) = source {
        text.push_str(&format!(" src {source}"));
    }
    if let Some(metric) = metric {
        text.push_str(&format!(" metric {metric}"));
    }
    text
}

fn inet_route_query() -> RouteMessage {
    let mut message = RouteMessage::default();
    message.header.address_family = AddressFamily::Inet;
    message
}

fn inet_address_query() -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = AddressFamily::Inet;
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_in_fresh_network_namespace;

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn run(args: &[&str]) {
        let status = std::process::Command::new("ip").args(args).status().unwrap();
        assert!(status.success(), "ip {args:?}");
    }

    #[test]
    fn the_kubelets_choice_among_routes_links_and_addresses() {
        let route = |metric, interfaces: &[u32]| DefaultRoute { metric, interfaces: interfaces.to_vec() };
        let held = |index, address, prefix_len| HeldAddress { index, address: ip(address), prefix_len, protocol: None };
        let addresses = [
            held(2, "169.254.3.3", 16),
            held(2, "192.168.1.5", 24),
            held(2, "192.168.1.6", 24),
            held(3, "10.0.0.7", 8),
            held(4, "127.0.0.2", 8),
        ];
        let all_up = |_| true;
        // The first global unicast address of the route's interface: not the link-local one.
        assert_eq!(choose(&[route(0, &[2])], all_up, &addresses), Some(ip("192.168.1.5")));
        // Routes in order; an interface that is down or has no usable address is passed over.
        assert_eq!(choose(&[route(0, &[4]), route(10, &[3])], all_up, &addresses), Some(ip("10.0.0.7")));
        assert_eq!(choose(&[route(0, &[2]), route(10, &[3])], |index| index != 2, &addresses), Some(ip("10.0.0.7")));
        assert_eq!(choose(&[route(0, &[5])], all_up, &addresses), None);
        assert_eq!(choose(&[], all_up, &addresses), None);
    }

    #[test]
    fn the_default_routes_interface_address_in_a_namespace() {
        run_in_fresh_network_namespace(|| {
            assert_eq!(default_route_address().unwrap(), None, "no default route, no address");
            // Veth pairs with both ends up (every kernel that runs pods has veths).
            for (name, peer) in [("up0", "up0p"), ("other0", "other0p")] {
                run(&["link", "add", name, "type", "veth", "peer", "name", peer]);
                run(&["link", "set", peer, "up"]);
            }
            run(&["address", "add", "172.16.9.9/24", "dev", "other0"]);
            run(&["link", "set", "other0", "up"]);
            run(&["address", "add", "192.168.77.2/24", "dev", "up0"]);
            run(&["address", "add", "192.168.77.3/24", "dev", "up0"]);
            run(&["link", "set", "up0", "up"]);
            assert_eq!(default_route_address().unwrap(), None, "addresses alone are no default route");
            run(&["route", "add", "default", "via", "192.168.77.1", "dev", "up0", "metric", "100"]);
            assert_eq!(default_route_address().unwrap(), Some(ip("192.168.77.2")), "the primary address");
            // A second default route with a lower metric wins.
            run(&["route", "add", "default", "via", "172.16.9.1", "dev", "other0", "metric", "50"]);
            assert_eq!(default_route_address().unwrap(), Some(ip("172.16.9.9")));
            // Its interface down, the next one's.
            run(&["link", "set", "other0", "down"]);
            assert_eq!(default_route_address().unwrap(), Some(ip("192.168.77.2")));
        })
        .unwrap();
    }

    #[test]
    fn kernel_releases_compared() {
        for (release, at_least) in [
            ("6.18.44-fc-v1272\n", true),
            ("5.18.0", true),
            ("5.17.15-arch1", false),
            ("5.4.0-150-generic", false),
            ("4.19.0", false),
            ("10.0", true),
            ("garbage", true),
        ] {
            assert_eq!(release_at_least(release, (5, 18)), at_least, "{release}");
        }
    }

    /// The /32s of `address` on any link, each with its mark.
    fn held(address: &str) -> Vec<HeldAddress> {
        let mut socket = RouteSocket::open().unwrap();
        list_addresses(&mut socket).unwrap().into_iter().filter(|h| h.address == ip(address)).collect()
    }

    #[test]
    fn announced_addresses_are_marked_and_only_those_are_withdrawn() {
        run_in_fresh_network_namespace(|| {
            run(&["link", "add", "lan0", "type", "veth", "peer", "name", "lan0p"]);
            run(&["address", "add", "192.168.79.2/24", "dev", "lan0"]);
            crate::ensure_bridge("tbr1", ip("10.79.0.1"), 24).unwrap();
            // On the LAN that holds it, marked as ours; nowhere for an address no network holds.
            assert_eq!(announce_address(ip("192.168.79.240"), "tbr1").unwrap().as_deref(), Some("lan0"));
            assert_eq!(announce_address(ip("192.168.79.240"), "tbr1").unwrap().as_deref(), Some("lan0"), "again");
            assert_eq!(announce_address(ip("10.79.0.9"), "tbr1").unwrap(), None, "never on the pod bridge");
            assert_eq!(announce_address(ip("172.31.0.1"), "tbr1").unwrap(), None);
            let ours = held("192.168.79.240");
            assert_eq!(ours.len(), 1, "{ours:?}");
            assert_eq!((ours[0].prefix_len, ours[0].protocol), (32, Some(ANNOUNCED_PROTOCOL)));
            // The same kind of /32, added by someone else (an admin's `ip address add`).
            run(&["address", "add", "192.168.79.241/32", "dev", "lan0"]);
            assert_eq!(announce_address(ip("192.168.79.241"), "tbr1").unwrap().as_deref(), Some("lan0"));
            assert_eq!(held("192.168.79.241")[0].protocol, None, "someone else's address keeps no mark of ours");
            assert!(!withdraw_address(ip("192.168.79.241")).unwrap(), "someone else's address is not withdrawn");
            assert_eq!(held("192.168.79.241").len(), 1);
            assert_eq!(announce_address(ip("192.168.79.242"), "tbr1").unwrap().as_deref(), Some("lan0"));

            assert!(withdraw_address(ip("192.168.79.240")).unwrap());
            assert!(held("192.168.79.240").is_empty());
            assert!(!withdraw_address(ip("192.168.79.240")).unwrap(), "nothing left to withdraw");
            // Everything announced, and nothing else, goes at once (a stopping node, cleanup).
            assert_eq!(withdraw_announced().unwrap(), [("lan0".to_string(), ip("192.168.79.242"))]);
            assert_eq!(withdraw_announced().unwrap(), []);
            assert_eq!(held("192.168.79.241").len(), 1, "the admin's address stays");
            assert_eq!(held("192.168.79.2").len(), 1, "the link's own address stays");
        })
        .unwrap();
    }

    #[test]
    fn a_removed_bridge_takes_its_addresses_and_routes() {
        run_in_fresh_network_namespace(|| {
            assert_eq!(remove_bridge("tbr0").unwrap(), None, "nothing to remove");
            crate::ensure_bridge("tbr0", ip("10.77.0.1"), 24).unwrap();
            run(&["route", "add", "10.78.0.0/16", "dev", "tbr0"]);
            run(&["link", "add", "notbr0", "type", "veth", "peer", "name", "notbr0p"]);
            assert!(matches!(remove_bridge("notbr0"), Err(Error::NotABridge { .. })), "only a bridge is removed");
            let removed = remove_bridge("tbr0").unwrap().expect("the bridge was there");
            assert_eq!(removed.addresses, ["10.77.0.1/24"]);
            assert!(
                removed
                    .routes
                    .iter()
                    .any(|r| r.starts_with("10.77.0.0/24 dev tbr0 proto kernel scope link src 10.77.0.1")),
                "{removed:?}"
            );
            assert!(removed.routes.iter().any(|r| r.starts_with("10.78.0.0/16 dev tbr0")), "{removed:?}");
            assert!(!crate::link_names().unwrap().contains(&"tbr0".to_string()));
            let routes = std::process::Command::new("ip").args(["-4", "route"]).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&routes.stdout), "", "no route is left");
            assert_eq!(remove_bridge("tbr0").unwrap(), None, "a second removal has nothing to do");
        })
        .unwrap();
    }
}
