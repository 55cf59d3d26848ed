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
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, InfoBridge, In6AddrGenMode, InfoBridgePort, InfoData, InfoKind, InfoPortData,
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
            Link::Name(name) => message
                .attributes
                .push(LinkAttribute::IfName(name.to_owned())),
        }
        message
    }
}

/// `IFLA_AF_SPEC` turning off IPv6 address generation (`addr_gen_mode` none) on a link.
fn no_ipv6_addresses() -> LinkAttribute {
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
        In6AddrGenMode::None,
    )])])
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
}

/// A blocking `NETLINK_ROUTE` socket bound to the network namespace it was opened in.
pub(crate) struct RouteSocket {
    socket: Socket,
    sequence: u32,
}

impl RouteSocket {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(RouteSocket {
            socket,
            sequence: 0,
        })
    }

    /// The index of the link called `name`, or `None` if there is none.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
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
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
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
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
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
    pub fn create_veth(
        &mut self,
        host_name: &str,
        controller: u32,
        peer_name: &str,
        peer_netns: BorrowedFd<'_>,
        mtu: Option<u32>,
    ) -> io::Result<()> {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.to_owned()));
        peer.attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(host_name.to_owned()));
        message
            .attributes
            .push(LinkAttribute::Controller(controller));
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
        self.request(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Deletes the link called `name`. Returns `false` if there was no such link.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_owned()));
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
        message
            .attributes
            .push(LinkAttribute::Address(address.to_vec()));
        self.request(RouteNetlinkMessage::SetLink(message), 0)?;
        Ok(())
    }

    /// Sets the administrative state of a link up.
    pub fn set_link_up(&mut self, link: Link<'_>) -> io::Result<()> {
        let mut message = link.message();
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(message), 0)?;
        Ok(())
    }

    /// Sets a link up with no IPv6 address of its own: pods here are IPv4 single-stack (as
    /// with a CNI plugin that assigns no IPv6 address), and a link without an IPv6 link-local
    /// address sends no duplicate address detection, router solicitations or multicast listener
    /// reports that the bridge would flood to every other pod.
    ///
    /// The kernel applies the address mode after the flags, so this only works while the link
    /// has no carrier (a veth whose peer is still down): it makes the link-local address when
    /// carrier comes.
    pub fn set_link_up_without_ipv6(&mut self, link: Link<'_>) -> io::Result<()> {
        let mut message = link.message();
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        message.attributes.push(no_ipv6_addresses());
        self.request(RouteNetlinkMessage::SetLink(message), 0)?;
        Ok(())
    }

    /// Prepares a bridge port before it goes up: hairpin mode on, so a frame may leave through
    /// the port it came in by (a pod reaching its own Service address is DNATed back to itself
    /// across the bridge), and no IPv6 address of its own (see
    /// [`set_link_up_without_ipv6`](Self::set_link_up_without_ipv6)).
    pub fn configure_bridge_port(&mut self, link: Link<'_>) -> io::Result<()> {
        let mut message = link.message();
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                true,
            )])),
        ]));
        message.attributes.push(no_ipv6_addresses());
        self.request(RouteNetlinkMessage::NewLink(message), 0)?;
        Ok(())
    }

    /// Adds `address/prefix_len` to the link; an address that is already there is fine.
    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix_len;
        message.header.scope = AddressScope::Universe;
        message.header.index = index;
        message
            .attributes
            .push(AddressAttribute::Local(IpAddr::V4(address)));
        message
            .attributes
            .push(AddressAttribute::Address(IpAddr::V4(address)));
        if prefix_len < 31 {
            message
                .attributes
                .push(AddressAttribute::Broadcast(broadcast(address, prefix_len)));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Adds the IPv4 default route via `gateway` out of link `index` to the main table.
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.destination_prefix_length = 0;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        message.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Sends one request and collects the kernel's replies until its ack (or `DONE` for dumps).
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        header.sequence_number = sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buffer = vec![0; packet.buffer_len()];
        packet.serialize(&mut buffer);
        self.socket.send(&buffer, 0)?;

        let mut replies = Vec::new();
        loop {
            let (datagram, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < datagram.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[offset..])
                    .map_err(|error| {
                        io::Error::new(io::ErrorKind::InvalidData, error.to_string())
                    })?;
                let length = reply.header.length as usize;
                if length == 0 {
                    break;
                }
                offset += (length + 3) & !3;
                if reply.header.sequence_number != sequence {
                    continue; // a late answer to an earlier request
                }
                match reply.payload {
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
}

fn summarize(link: LinkMessage) -> LinkSummary {
    let mut summary = LinkSummary {
        index: link.header.index,
        name: String::new(),
        kind: None,
        address: None,
    };
    for attribute in link.attributes {
        match attribute {
            LinkAttribute::IfName(name) => summary.name = name,
            LinkAttribute::Address(address) => summary.address = Some(address),
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
    use super::broadcast;
    use std::net::Ipv4Addr;

    #[test]
    fn broadcast_address_of_a_prefix() {
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 244, 0, 1), 24),
            Ipv4Addr::new(10, 244, 0, 255)
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 244, 3, 7), 16),
            Ipv4Addr::new(10, 244, 255, 255)
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 0, 0, 1), 0),
            Ipv4Addr::new(255, 255, 255, 255)
        );
    }
}
