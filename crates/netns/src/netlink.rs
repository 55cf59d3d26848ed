//! A small synchronous rtnetlink client: links, addresses and routes.
//!
//! A netlink socket talks to the network namespace it was *created* in, whichever thread later
//! uses it. That is what lets a sandbox configure its pod side from the caller's thread: the
//! socket for the pod namespace is opened by the thread that made the namespace, while inside it.
//!
//! Requests are strictly one at a time (send, then read until the kernel's ack or `DONE`), which
//! is all pod setup needs and keeps this free of async machinery.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData,
    InfoPortKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A link named in a request: by index, or by name (the kernel looks it up, saving a request).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Link<'a> {
    Index(u32),
    Name(&'a str),
}

impl Link<'_> {
    fn message(self) -> LinkMessage {
        let mut message = LinkMessage::default();
        match self {
            Link::Index(index) => message.header.index = index,
            Link::Name(name) => message.attributes.push(LinkAttribute::IfName(name.to_owned())),
        }
        message
    }
}

/// `IFLA_AF_SPEC` turning off IPv6 address generation (`addr_gen_mode` none) on a link.
fn no_ipv6_addresses() -> LinkAttribute {
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)])])
}

/// One link as listed by [`RouteSocket::links`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkSummary {
    pub index: u32,
    pub name: String,
    /// `veth`, `bridge`, … (`None` for links without a kind, such as `lo`).
    pub kind: Option<String>,
    /// The hardware address (`None` for links without one).
    pub address: Option<Vec<u8>>,
    /// The index of the bridge (or other controller) it is a port of.
    pub controller: Option<u32>,
}

/// The routing table of local addresses (`RT_TABLE_LOCAL`).
const RT_TABLE_LOCAL: u8 = 255;

/// The kernel always gives a network namespace's loopback device index 1.
pub(crate) const LOOPBACK_INDEX: u32 = 1;

/// One request to the kernel: a message, its flags, and an error number that counts as
/// success (an address that is already there, say).
pub(crate) struct Request {
    message: RouteNetlinkMessage,
    flags: u16,
    tolerated: Option<i32>,
}

impl Request {
    fn new(message: RouteNetlinkMessage, flags: u16) -> Request {
        Request { message, flags, tolerated: None }
    }

    /// Sets a link's administrative state up.
    pub fn link_up(link: Link<'_>) -> Request {
        let mut message = link.message();
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        Request::new(RouteNetlinkMessage::SetLink(message), 0)
    }

    /// Sets a link up with no IPv6 address of its own: pods here are IPv4 single-stack (as
    /// with a CNI plugin that assigns no IPv6 address), and a link without an IPv6 link-local
    /// address sends no duplicate address detection, router solicitations or multicast listener
    /// reports that the bridge would flood to every other pod.
    ///
    /// The kernel applies the address mode after the flags, so this only works while the link
    /// has no carrier (a veth whose peer is still down): it makes the link-local address when
    /// carrier comes.
    pub fn link_up_without_ipv6(link: Link<'_>) -> Request {
        let mut request = Request::link_up(link);
        if let RouteNetlinkMessage::SetLink(message) = &mut request.message {
            message.attributes.push(no_ipv6_addresses());
        }
        request
    }

    /// Prepares a bridge port before it goes up: hairpin mode on (a pod reaching its own
    /// Service may be sent back out of the port it came in by), no IPv6 address of its own (see
    /// [`link_up_without_ipv6`](Self::link_up_without_ipv6)), and `isolated` as asked.
    ///
    /// A Service connection DNATed to a pod on the same bridge must have its replies translated
    /// back, so they must pass the node's conntrack. Where `br_netfilter` runs bridged frames
    /// through it, ports stay plain (isolating them would drop the DNATed frames it switches
    /// between two ports). Elsewhere ports are isolated: pods then reach each other only through
    /// the node, which answers their ARP requests for one another (see
    /// [`ensure_bridge`](crate::ensure_bridge)) and routes every packet between them.
    pub fn bridge_port_settings(link: Link<'_>, isolated: bool) -> Request {
        let mut message = link.message();
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![
                InfoBridgePort::HairpinMode(true),
                InfoBridgePort::Isolated(isolated),
            ])),
        ]));
        message.attributes.push(no_ipv6_addresses());
        Request::new(RouteNetlinkMessage::NewLink(message), 0)
    }

    /// Adds `address/prefix_len` to link `index`; an address that is already there is fine.
    pub fn address(index: u32, address: Ipv4Addr, prefix_len: u8) -> Request {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix_len;
        message.header.scope = AddressScope::Universe;
        message.header.index = index;
        message.attributes.push(AddressAttribute::Local(IpAddr::V4(address)));
        message.attributes.push(AddressAttribute::Address(IpAddr::V4(address)));
        if prefix_len < 31 {
            message.attributes.push(AddressAttribute::Broadcast(broadcast(address, prefix_len)));
        }
        Request {
            tolerated: Some(libc::EEXIST),
            ..Request::new(RouteNetlinkMessage::NewAddress(message), NLM_F_CREATE | NLM_F_EXCL)
        }
    }

    /// Removes `address/prefix_len` from link `index`; an address that is not there is fine.
    pub fn delete_address(index: u32, address: Ipv4Addr, prefix_len: u8) -> Request {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix_len;
        message.header.index = index;
        message.attributes.push(AddressAttribute::Local(IpAddr::V4(address)));
        message.attributes.push(AddressAttribute::Address(IpAddr::V4(address)));
        Request { tolerated: Some(libc::EADDRNOTAVAIL), ..Request::new(RouteNetlinkMessage::DelAddress(message), 0) }
    }

    /// Removes the route to `destination/prefix_len` out of link `index`; one that is not there
    /// is fine.
    pub fn delete_link_route(index: u32, destination: Ipv4Addr, prefix_len: u8) -> Request {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.destination_prefix_length = prefix_len;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.scope = RouteScope::NoWhere;
        message.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(destination)));
        message.attributes.push(RouteAttribute::Oif(index));
        Request { tolerated: Some(libc::ESRCH), ..Request::new(RouteNetlinkMessage::DelRoute(message), 0) }
    }

    /// Adds a link-scope route to `destination/prefix_len` out of link `index`, with `source` as
    /// the preferred source address; a route that is already there is fine.
    pub fn link_route(index: u32, destination: Ipv4Addr, prefix_len: u8, source: Ipv4Addr) -> Request {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.destination_prefix_length = prefix_len;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Static;
        message.header.scope = RouteScope::Link;
        message.header.kind = RouteType::Unicast;
        message.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(destination)));
        message.attributes.push(RouteAttribute::PrefSource(RouteAddress::Inet(source)));
        message.attributes.push(RouteAttribute::Oif(index));
        Request {
            tolerated: Some(libc::EEXIST),
            ..Request::new(RouteNetlinkMessage::NewRoute(message), NLM_F_CREATE | NLM_F_EXCL)
        }
    }

    /// Makes `address` this machine's without giving any interface the address: a `local`
    /// route to it (table local, scope host, on link `index`, protocol `protocol`), so sockets
    /// may bind it and packets to it are delivered here. Gone with the link; one that is
    /// already there is fine.
    pub fn local_route(index: u32, address: Ipv4Addr, protocol: u8) -> Request {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.destination_prefix_length = 32;
        message.header.table = RT_TABLE_LOCAL;
        message.header.protocol = RouteProtocol::Other(protocol);
        message.header.scope = RouteScope::Host;
        message.header.kind = RouteType::Local;
        message.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(address)));
        message.attributes.push(RouteAttribute::Oif(index));
        Request {
            tolerated: Some(libc::EEXIST),
            ..Request::new(RouteNetlinkMessage::NewRoute(message), NLM_F_CREATE | NLM_F_EXCL)
        }
    }

    /// Adds the IPv4 default route via `gateway` out of link `index` to the main table.
    pub fn default_route(index: u32, gateway: Ipv4Addr) -> Request {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.destination_prefix_length = 0;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        message.attributes.push(RouteAttribute::Oif(index));
        Request::new(RouteNetlinkMessage::NewRoute(message), NLM_F_CREATE | NLM_F_EXCL)
    }
}

/// The largest datagram read: the kernel sizes its answers (dump parts included) well below.
const RECEIVE_BUFFER: usize = 64 * 1024;

/// A blocking `NETLINK_ROUTE` socket bound to the network namespace it was opened in.
pub(crate) struct RouteSocket {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl RouteSocket {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(RouteSocket { socket, sequence: 0, buffer: Vec::new() })
    }

    /// The index of the link called `name`, or `None` if there is none.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request(RouteNetlinkMessage::GetLink(message), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })),
            Err(error) if error.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every link in the namespace.
    pub fn links(&mut self) -> io::Result<Vec<LinkSummary>> {
        let replies = self.request(RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_DUMP)?;
        Ok(replies
            .into_iter()
            .filter_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(link) => Some(summarize(link)),
                _ => None,
            })
            .collect())
    }

    /// Creates a bridge called `name` (down). Fails with `EEXIST` if a link of that name exists.
    pub fn create_bridge(&mut self, name: &str) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.to_owned()));
        message.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        self.request(RouteNetlinkMessage::NewLink(message), NLM_F_CREATE | NLM_F_EXCL)?;
        Ok(())
    }

    /// Turns multicast snooping off on the bridge `link`. Pods here have no IPv6 addresses and
    /// so send no multicast listener reports; with snooping off the bridge floods multicast
    /// like a plain hub, and enabling each new port skips the per-port multicast state
    /// (measured: about a tenth of a sandbox's creation time).
    pub fn disable_bridge_multicast_snooping(&mut self, link: Link<'_>) -> io::Result<()> {
        let mut message = link.message();
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::MulticastSnooping(false)])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(message), 0)?;
        Ok(())
    }

    /// Creates a veth pair: `host_name` here, attached to the bridge `controller`, and
    /// `peer_name` directly inside the namespace `peer_netns` (so the peer never exists under a
    /// temporary name here). Both ends start down.
    ///
    /// Returns the peer's index in its namespace when the kernel says it: it echoes the new
    /// link to the requester (Linux 6.3 and later), and a veth's link is its peer.
    pub fn create_veth(
        &mut self,
        host_name: &str,
        controller: u32,
        peer_name: &str,
        peer_netns: BorrowedFd<'_>,
        mtu: Option<u32>,
    ) -> io::Result<Option<u32>> {
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName(peer_name.to_owned()));
        peer.attributes.push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(host_name.to_owned()));
        message.attributes.push(LinkAttribute::Controller(controller));
        if let Some(mtu) = mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        // One queue each way per end: a veth otherwise gets one per possible CPU, each with
        // its sysfs objects, and then the kernel takes all but one away again.
        for attributes in [&mut peer.attributes, &mut message.attributes] {
            attributes.push(LinkAttribute::NumTxQueues(1));
            attributes.push(LinkAttribute::NumRxQueues(1));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let replies = self.request(RouteNetlinkMessage::NewLink(message), NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO)?;
        Ok(replies.into_iter().find_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => link.attributes.into_iter().find_map(|attribute| match attribute {
                LinkAttribute::Link(index) => Some(index),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// Deletes the link called `name`. Returns `false` if there was no such link.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request(RouteNetlinkMessage::DelLink(message), 0) {
            Ok(_) => Ok(true),
            Err(error) if error.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Sets a link's hardware address. The kernel then counts it as chosen by the user, which
    /// for a bridge means it stays when ports come and go.
    pub fn set_link_address(&mut self, link: Link<'_>, address: &[u8]) -> io::Result<()> {
        let mut message = link.message();
        message.attributes.push(LinkAttribute::Address(address.to_vec()));
        self.request(RouteNetlinkMessage::SetLink(message), 0)?;
        Ok(())
    }

    /// Sets the administrative state of a link up.
    pub fn set_link_up(&mut self, link: Link<'_>) -> io::Result<()> {
        self.batch(vec![Request::link_up(link)]).map_err(|(_, error)| error)
    }

    /// Adds `address/prefix_len` to the link; an address that is already there is fine.
    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        self.batch(vec![Request::address(index, address, prefix_len)]).map_err(|(_, error)| error)
    }

    /// Adds `address/prefix_len` to the link marked with `protocol` (the address's `IFA_PROTO`,
    /// which says who added it); an address that is already there is fine, and keeps its mark.
    pub fn add_address_marked(
        &mut self,
        index: u32,
        address: Ipv4Addr,
        prefix_len: u8,
        protocol: u8,
    ) -> io::Result<()> {
        let mut request = Request::address(index, address, prefix_len);
        if let RouteNetlinkMessage::NewAddress(message) = &mut request.message {
            message.attributes.push(AddressAttribute::Protocol(protocol.into()));
        }
        self.batch(vec![request]).map_err(|(_, error)| error)
    }

    /// Sends `requests` together (one system call; the kernel carries them out in order, each
    /// whatever became of the one before) and waits for all their answers. On failure, says
    /// which request failed first (`None`: the exchange itself failed) and why.
    pub fn batch(&mut self, requests: Vec<Request>) -> Result<(), (Option<usize>, io::Error)> {
        let first = self.sequence.wrapping_add(1);
        let mut buffer = Vec::new();
        let mut tolerated = Vec::with_capacity(requests.len());
        for request in requests {
            self.sequence = self.sequence.wrapping_add(1);
            tolerated.push(request.tolerated);
            append(&mut buffer, request.message, request.flags | NLM_F_ACK, self.sequence);
        }
        self.socket.send(&buffer, 0).map_err(|error| (None, error))?;
        let mut answered = vec![false; tolerated.len()];
        let mut failure: Option<(usize, i32)> = None;
        while answered.contains(&false) {
            for (sequence, payload) in self.receive().map_err(|error| (None, error))? {
                let position = sequence.wrapping_sub(first) as usize;
                let NetlinkPayload::Error(error) = payload else {
                    continue;
                };
                if position >= answered.len() {
                    continue; // a late answer to an earlier request
                }
                answered[position] = true;
                let code = error.code.map(|code| -code.get());
                if code.is_some() && code != tolerated[position] {
                    failure = failure.filter(|(earlier, _)| *earlier < position).or(code.map(|code| (position, code)));
                }
            }
        }
        match failure {
            Some((position, code)) => Err((Some(position), io::Error::from_raw_os_error(code))),
            None => Ok(()),
        }
    }

    /// Dumps what `message` asks for (routes, addresses, links) and returns every part.
    pub fn dump(&mut self, message: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.request(message, NLM_F_DUMP)
    }

    /// Sends one request and collects the kernel's replies until its ack (or `DONE` for dumps).
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut buffer = Vec::new();
        append(&mut buffer, message, flags | if dump { 0 } else { NLM_F_ACK }, sequence);
        self.socket.send(&buffer, 0)?;

        let mut replies = Vec::new();
        loop {
            for (reply_sequence, payload) in self.receive()? {
                if reply_sequence != sequence {
                    continue; // a late answer to an earlier request
                }
                match payload {
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(replies),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// Reads one datagram (in one system call) and returns its messages with their sequence
    /// numbers.
    fn receive(&mut self) -> io::Result<Vec<(u32, NetlinkPayload<RouteNetlinkMessage>)>> {
        self.buffer.clear();
        self.buffer.reserve(RECEIVE_BUFFER);
        let length = self.socket.recv(&mut self.buffer, libc::MSG_TRUNC)?;
        if length > self.buffer.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a netlink answer of {length} bytes did not fit the receive buffer"),
            ));
        }
        let datagram = &self.buffer[..length];
        let mut messages = Vec::new();
        let mut offset = 0;
        while offset < datagram.len() {
            let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[offset..])
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
            let length = reply.header.length as usize;
            if length == 0 {
                break;
            }
            offset += (length + 3) & !3;
            messages.push((reply.header.sequence_number, reply.payload));
        }
        Ok(messages)
    }
}

/// Appends `message` with `flags` (plus `NLM_F_REQUEST`) and `sequence` to `buffer`.
fn append(buffer: &mut Vec<u8>, message: RouteNetlinkMessage, flags: u16, sequence: u32) {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = sequence;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let start = buffer.len();
    // Messages in one datagram start on four-byte boundaries.
    buffer.resize(start + ((packet.buffer_len() + 3) & !3), 0);
    packet.serialize(&mut buffer[start..]);
}

fn summarize(link: LinkMessage) -> LinkSummary {
    let mut summary =
        LinkSummary { index: link.header.index, name: String::new(), kind: None, address: None, controller: None };
    for attribute in link.attributes {
        match attribute {
            LinkAttribute::IfName(name) => summary.name = name,
            LinkAttribute::Address(address) => summary.address = Some(address),
            LinkAttribute::Controller(index) => summary.controller = Some(index),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        summary.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    summary
}

fn broadcast(address: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    let host_mask = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    Ipv4Addr::from(u32::from(address) | host_mask)
}

#[cfg(test)]
mod tests {
    use super::{broadcast, Link, Request, RouteSocket};
    use crate::run_in_fresh_network_namespace;
    use std::net::Ipv4Addr;
    use std::os::fd::AsFd;

    #[test]
    fn a_batch_reports_its_first_failure_and_tolerates_what_it_may() {
        run_in_fresh_network_namespace(|| {
            let mut socket = RouteSocket::open().unwrap();
            let own = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
            socket.create_bridge("tb0").unwrap();
            let bridge = socket.link_index("tb0").unwrap().expect("bridge");
            let echoed = socket.create_veth("tv0", bridge, "tp0", own.as_fd(), None).unwrap();
            let peer = socket.link_index("tp0").unwrap().expect("peer");
            // Linux 6.3 and later echo the new link; a sandbox looks the peer up otherwise.
            assert_eq!(echoed, Some(peer), "the echoed veth names its peer");

            let address = Ipv4Addr::new(10, 9, 0, 2);
            socket
                .batch(vec![
                    Request::address(peer, address, 24),
                    Request::address(peer, address, 24),
                    Request::link_up(Link::Name("tp0")),
                ])
                .expect("an address already there is no failure");

            let (failed, error) = socket
                .batch(vec![
                    Request::link_up(Link::Name("tv0")),
                    Request::link_up(Link::Name("no-such-link")),
                    Request::default_route(peer, Ipv4Addr::new(10, 9, 0, 1)),
                    Request::link_up(Link::Index(9999)),
                ])
                .expect_err("a missing link fails");
            assert_eq!(failed, Some(1), "the first failure is reported: {error}");
            assert_eq!(error.raw_os_error(), Some(libc::ENODEV));
            // The kernel carried on with the rest.
            let routes = std::process::Command::new("ip").args(["-4", "route", "show", "default"]).output().unwrap();
            let routes = String::from_utf8(routes.stdout).unwrap();
            assert!(routes.contains("via 10.9.0.1 dev tp0"), "{routes}");
        })
        .unwrap();
    }

    #[test]
    fn broadcast_address_of_a_prefix() {
        assert_eq!(broadcast(Ipv4Addr::new(10, 244, 0, 1), 24), Ipv4Addr::new(10, 244, 0, 255));
        assert_eq!(broadcast(Ipv4Addr::new(10, 244, 3, 7), 16), Ipv4Addr::new(10, 244, 255, 255));
        assert_eq!(broadcast(Ipv4Addr::new(10, 0, 0, 1), 0), Ipv4Addr::new(255, 255, 255, 255));
    }
}
