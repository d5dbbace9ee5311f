//! Crafted Ethernet frames for packet tests, built with etherparse so that
//! lengths and checksums are right unless a test breaks them on purpose.

use etherparse::{ArpHardwareId, ArpOperation, ArpPacket, EtherType, PacketBuilder};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const NODE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const CLIENT_IP: [u8; 4] = [198, 18, 0, 2];
pub const NODE_IP: [u8; 4] = [198, 18, 0, 1];

/// Offset of the IPv4 header in an Ethernet II frame.
pub const IPV4_OFFSET: usize = 14;

pub fn ipv4_tcp_syn(src_port: u16, dst_port: u16) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, NODE_MAC)
        .ipv4(CLIENT_IP, NODE_IP, 64)
        .tcp(src_port, dst_port, 1, 64240)
        .syn();
    let mut frame = Vec::with_capacity(builder.size(0));
    builder.write(&mut frame, &[]).unwrap();
    frame
}

pub fn ipv4_udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, NODE_MAC)
        .ipv4(CLIENT_IP, NODE_IP, 64)
        .udp(src_port, dst_port);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, payload).unwrap();
    frame
}

pub fn ipv4_icmp_echo(payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, NODE_MAC)
        .ipv4(CLIENT_IP, NODE_IP, 64)
        .icmpv4_echo_request(7, 1);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, payload).unwrap();
    frame
}

pub fn ipv6_udp(payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, NODE_MAC)
        .ipv6([0xfd; 16], [0xfe; 16], 64)
        .udp(4000, 53);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, payload).unwrap();
    frame
}

/// An ARP who-has for the node address, padded to the Ethernet minimum as a
/// NIC would send it.
pub fn arp_request() -> Vec<u8> {
    let arp = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation::REQUEST,
        &CLIENT_MAC,
        &CLIENT_IP,
        &[0; 6],
        &NODE_IP,
    )
    .unwrap();
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, [0xff; 6]).arp(arp);
    let mut frame = Vec::with_capacity(60);
    builder.write(&mut frame).unwrap();
    frame.resize(60, 0);
    frame
}
