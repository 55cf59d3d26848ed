//! Gratuitous ARP: telling a LAN that an address is now answered here, as MetalLB's layer-2
//! mode does when it takes a load-balancer address. Neighbours that still hold the address at
//! another hardware address (a machine that had it before, or a stale entry) update their
//! tables at once instead of sending to the old one until their entry expires; a neighbour
//! without an entry is not made to create one (Linux's `arp_accept` defaults to off).
//!
//! The frame is an ARP request for the address from the address (RFC 5227's announcement),
//! broadcast, written whole to a packet socket. The interface's packet address (its index and
//! hardware address) comes from `getifaddrs`, which is how a packet socket's address is had
//! without building one by hand.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use nix::ifaddrs::getifaddrs;
use nix::sys::socket::{sendto, socket, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType};

use crate::Error;

/// Ethernet's minimum frame (without the check sequence): a shorter one is padded to it.
const FRAME: usize = 60;
const ETHERTYPE_ARP: u16 = 0x0806;

/// An ARP announcement of `address` by `mac`: a broadcast Ethernet frame holding a request whose
/// sender and target protocol addresses are both `address` (RFC 5227 §2.3), padded to 60 bytes.
fn announcement(mac: [u8; 6], address: Ipv4Addr) -> [u8; FRAME] {
    let mut frame = [0u8; FRAME];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    // Hardware Ethernet (1), protocol IPv4, address lengths 6 and 4, operation request (1).
    frame[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&address.octets());
    // Target hardware address: zero, as a request has it.
    frame[38..42].copy_from_slice(&address.octets());
    frame
}

/// Broadcasts an announcement of `address` on `interface` (in the calling thread's network
/// namespace).
pub fn announce_gratuitously(interface: &str, address: Ipv4Addr) -> Result<(), Error> {
    let os = |what: &str, e: nix::Error| Error::os(format!("{what} ({interface})"), e.into());
    let link: LinkAddr = getifaddrs()
        .map_err(|e| os("list interface addresses", e))?
        .filter(|a| a.interface_name == interface)
        .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
        .ok_or_else(|| {
            Error::os(format!("find the packet address of {interface}"), std::io::ErrorKind::NotFound.into())
        })?;
    let mac = link.addr().ok_or_else(|| {
        Error::os(format!("find the hardware address of {interface}"), std::io::ErrorKind::NotFound.into())
    })?;
    // Protocol 0: the socket only sends; it is given no frame to read.
    let packet = socket(AddressFamily::Packet, SockType::Raw, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| os("open a packet socket", e))?;
    sendto(packet.as_raw_fd(), &announcement(mac, address), &link, MsgFlags::empty())
        .map_err(|e| os("send a gratuitous ARP", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_is_a_broadcast_request_for_the_address_from_it() {
        let mac = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
        let frame = announcement(mac, Ipv4Addr::new(192, 168, 1, 240));
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x06, // Ethernet
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // Ethernet/IPv4, request
            0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 192, 168, 1, 240, // sender
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 168, 1, 240, // target
        ];
        assert_eq!(frame[..42], expected);
        assert!(frame[42..].iter().all(|b| *b == 0));
    }
}
