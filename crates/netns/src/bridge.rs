//! The node side: the pod bridge, IP forwarding, and leftovers of an earlier run.

use std::io;
use std::net::Ipv4Addr;

use crate::netlink::{Link, RouteSocket};
use crate::{validate_link_name, Error};

/// Makes sure a bridge called `name` exists in the calling thread's network namespace, has
/// `gateway/prefix_len` (the pods' default gateway), a hardware address of its own, multicast
/// snooping off (pods send no multicast listener reports, and each new port is cheaper to
/// enable without it), and is up.
/// Idempotent: an existing bridge is kept as it is, with the address added if missing. A
/// non-bridge link of that name is an error.
///
/// The bridge's hardware address is pinned to the one it has now. Left to the kernel, a bridge
/// takes the lowest address among its ports, so it would change whenever a pod with a lower
/// one came or went; pods that had resolved their gateway to a removed pod's veth would then
/// send into nowhere until their ARP entry expired (tens of seconds).
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix_len: u8) -> Result<(), Error> {
    let invalid = |reason: String| Error::Invalid { what: format!("bridge {name:?}"), reason };
    validate_link_name(name).map_err(invalid)?;
    if prefix_len == 0 || prefix_len > 30 {
        return Err(invalid(format!("prefix length {prefix_len} must be 1 to 30")));
    }
    let mut socket = RouteSocket::open().map_err(|error| Error::os("open netlink socket", error))?;
    match socket.create_bridge(name) {
        Ok(()) => tracing::info!(bridge = name, "created bridge"),
        Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
        Err(error) => return Err(Error::os(format!("create bridge {name}"), error)),
    }
    let link = socket
        .links()
        .map_err(|error| Error::os("list links", error))?
        .into_iter()
        .find(|link| link.name == name)
        .ok_or_else(|| Error::os(format!("look up bridge {name}"), io::Error::from_raw_os_error(libc::ENODEV)))?;
    if link.kind.as_deref() != Some("bridge") {
        return Err(Error::NotABridge { name: name.to_owned(), kind: link.kind });
    }
    let hardware_address = link.address.ok_or_else(|| {
        Error::os(format!("read the hardware address of {name}"), io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))
    })?;
    socket
        .set_link_address(Link::Index(link.index), &hardware_address)
        .map_err(|error| Error::os(format!("pin the hardware address of {name}"), error))?;
    socket
        .disable_bridge_multicast_snooping(Link::Index(link.index))
        .map_err(|error| Error::os(format!("turn multicast snooping off on {name}"), error))?;
    socket
        .add_address(link.index, gateway, prefix_len)
        .map_err(|error| Error::os(format!("add {gateway}/{prefix_len} to {name}"), error))?;
    // Where pods' ports are isolated (see `Request::bridge_port_settings`) the node answers a
    // pod's ARP request for another pod itself, at once, and routes between them without
    // telling them to go direct.
    for (setting, value) in [
        (format!("conf/{name}/proxy_arp_pvlan"), "1"),
        (format!("neigh/{name}/proxy_delay"), "0"),
        (format!("conf/{name}/send_redirects"), "0"),
    ] {
        let path = format!("/proc/sys/net/ipv4/{setting}");
        std::fs::write(&path, value).map_err(|error| Error::os(format!("set {path}"), error))?;
    }
    socket.set_link_up(Link::Index(link.index)).map_err(|error| Error::os(format!("set {name} up"), error))
}

/// Whether `br_netfilter` passes bridged IPv4 frames through the IP hooks (and so through
/// conntrack) in the calling thread's network namespace.
pub(crate) fn bridge_netfilter_active() -> bool {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").is_ok_and(|value| value.trim() == "1")
}

/// Routes `network/prefix_len` onto the bridge called `name` with `source` as the preferred
/// source address: the node's way to Service addresses, so that connections the node opens to a
/// ClusterIP leave from the bridge's address and are DNATed to a pod (even where there is no
/// default route). Nothing reaches a Service address there untranslated: the proxy drops what it
/// does not serve. Idempotent.
pub fn route_to_bridge(name: &str, network: Ipv4Addr, prefix_len: u8, source: Ipv4Addr) -> Result<(), Error> {
    route_on_bridge(name, &format!("route {network}/{prefix_len} to {name}"), |index| {
        crate::netlink::Request::link_route(index, network, prefix_len, source)
    })
}

/// Sends the route request `request` makes with the index of the bridge called `name`; `what`
/// names it in an error.
fn route_on_bridge(name: &str, what: &str, request: impl FnOnce(u32) -> crate::netlink::Request) -> Result<(), Error> {
    let mut socket = RouteSocket::open().map_err(|error| Error::os("open netlink socket", error))?;
    let index = socket
        .link_index(name)
        .map_err(|error| Error::os(format!("look up {name}"), error))?
        .ok_or_else(|| Error::os(format!("look up bridge {name}"), io::Error::from_raw_os_error(libc::ENODEV)))?;
    socket.batch(vec![request(index)]).map_err(|(_, error)| Error::os(what, error))
}

/// Makes `address` one of this machine's, hung on the bridge called `name` (a `local` route,
/// marked [`ANNOUNCED_PROTOCOL`](crate::ANNOUNCED_PROTOCOL); no interface gets the address): the
/// node's own servers may then listen on it, as the cluster DNS server does on the `kube-dns`
/// Service's address. It goes with the bridge. Idempotent.
pub fn make_local_on_bridge(name: &str, address: Ipv4Addr) -> Result<(), Error> {
    route_on_bridge(name, &format!("make {address} local on {name}"), |index| {
        crate::netlink::Request::local_route(index, address, crate::ANNOUNCED_PROTOCOL)
    })
}

/// Turns on IPv4 forwarding in the calling thread's network namespace (so traffic between the
/// bridge and other interfaces, and DNATed Service traffic, is routed).
pub fn enable_ip_forward() -> Result<(), Error> {
    // /proc/sys/net shows the namespace of the thread that opens it.
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|error| Error::os("enable net.ipv4.ip_forward", error))
}

/// Whether IPv4 forwarding is on in the calling thread's network namespace.
pub fn ip_forward_enabled() -> Result<bool, Error> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|value| value.trim() == "1")
        .map_err(|error| Error::os("read net.ipv4.ip_forward", error))
}

/// How many hexadecimal digits of the pod's UID a pod veth's name carries after its prefix.
const POD_VETH_UID_DIGITS: usize = 11;

/// The name of the host end of a pod's veth: `prefix` and the first 11 hexadecimal digits of the
/// pod's UID (dashes left out), 14 characters with a 3-character prefix (a link name has 15 at
/// most). [`cleanup_stale`] recognises exactly these names.
pub fn pod_veth_name(prefix: &str, uid: &str) -> String {
    let digits: String = uid.chars().filter(|c| *c != '-').take(POD_VETH_UID_DIGITS).collect();
    format!("{prefix}{}", digits.to_ascii_lowercase())
}

/// Whether `name` is one [`pod_veth_name`] makes with `prefix`.
fn is_pod_veth_name(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == POD_VETH_UID_DIGITS && rest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Deletes the host ends of sandboxes of an earlier run of the node in the calling thread's
/// network namespace, and returns their names: every veth named as [`pod_veth_name`] names them
/// with `prefix` that is a port of `bridge` or of no bridge at all (its bridge was deleted).
/// Links of other names, and veths that are ports of another bridge, are never touched: the
/// machine's own interfaces may share the prefix. Also removes per-pod files an earlier process
/// left staged on `/dev/shm`.
///
/// Call it at start-up, before creating sandboxes: it cannot tell a live sandbox from a stale
/// one. The prefix must be one only this node uses. A veth is normally gone by itself when its
/// pod's namespace went away with the earlier process; one is left only while a process of that
/// run still holds the namespace, and deleting it cuts that process off the bridge.
pub fn cleanup_stale(prefix: &str, bridge: &str) -> Result<Vec<String>, Error> {
    if prefix.is_empty() {
        return Err(Error::Invalid { what: "stale veth prefix".into(), reason: "must not be empty".into() });
    }
    let mut socket = RouteSocket::open().map_err(|error| Error::os("open netlink socket", error))?;
    let links = socket.links().map_err(|error| Error::os("list links", error))?;
    let bridge_index = links.iter().find(|link| link.name == bridge).map(|link| link.index);
    let stale: Vec<String> = links
        .into_iter()
        .filter(|link| link.kind.as_deref() == Some("veth") && is_pod_veth_name(prefix, &link.name))
        .filter(|link| link.controller.is_none() || link.controller == bridge_index)
        .map(|link| link.name)
        .collect();
    for name in &stale {
        socket.delete_link(name).map_err(|error| Error::os(format!("delete stale veth {name}"), error))?;
        tracing::info!(veth = %name, "deleted stale pod veth");
    }
    let files = crate::namespace::remove_stale_staged_files();
    if files > 0 {
        tracing::info!(files, "removed stale staged pod files");
    }
    Ok(stale)
}

/// The hardware address of the link called `name` in the calling thread's network namespace,
/// if there is such a link and it has one (for diagnostics and tests).
pub fn link_address(name: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(all_links()?.into_iter().find(|link| link.name == name).and_then(|link| link.address))
}

/// The names of all links in the calling thread's network namespace (for diagnostics and tests).
pub fn link_names() -> Result<Vec<String>, Error> {
    Ok(all_links()?.into_iter().map(|link| link.name).collect())
}

fn all_links() -> Result<Vec<crate::netlink::LinkSummary>, Error> {
    let mut socket = RouteSocket::open().map_err(|error| Error::os("open netlink socket", error))?;
    socket.links().map_err(|error| Error::os("list links", error))
}

#[cfg(test)]
mod tests {
    use super::{is_pod_veth_name, pod_veth_name};

    #[test]
    fn pod_veth_names_are_the_prefix_and_eleven_digits_of_the_uid() {
        let name = pod_veth_name("fdv", "0f3c2a9e-81b4-4d2e-9c1a-5b6d7e8f9a0b");
        assert_eq!(name, "fdv0f3c2a9e81b");
        assert!(name.len() <= 15);
        assert!(is_pod_veth_name("fdv", &name));
        for (name, ours) in [
            ("fdv0f3c2a9e81b", true),
            ("fdv0", false),            // a machine's own veth that shares the prefix
            ("fdv0f3c2a9e81b4", false), // one digit too many
            ("fdv0f3c2a9e81", false),   // one too few
            ("fdv0f3c2a9e81g", false),  // not hexadecimal
            ("fdv0F3C2A9E81B", false),  // the UID's digits are written lowercase
            ("xfdv0f3c2a9e81b", false),
            ("veth0f3c2a9e81b", false),
        ] {
            assert_eq!(is_pod_veth_name("fdv", name), ours, "{name}");
        }
    }
}
