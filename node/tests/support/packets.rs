//! Frames for packet-translation tests and independent checks of what the
//! programs made of them.
//!
//! Frames are built with etherparse (so their lengths and checksums are
//! right). Output frames are decoded with etherparse, and their checksums
//! are verified here with a plain RFC 1071 sum over the bytes — the same
//! check a receiving host does — not with anything the programs use.

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{
    IcmpEchoHeader, Icmpv4Type, NetHeaders, PacketBuilder, PacketHeaders, TransportHeader,
    icmpv4::DestUnreachableHeader,
};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const NODE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const ETH_HLEN: usize = 14;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// A TCP segment `src → dst` with `flags`, sequence and acknowledgment
/// numbers and `payload`.
pub fn tcp(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut builder = PacketBuilder::ethernet2(CLIENT_MAC, NODE_MAC)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), seq, 64240);
    if flags & TCP_SYN != 0 {
        builder = builder.syn();
    }
    if flags & TCP_ACK != 0 {
        builder = builder.ack(ack);
    }
    if flags & TCP_FIN != 0 {
        builder = builder.fin();
    }
    if flags & TCP_RST != 0 {
        builder = builder.rst();
    }
    if flags & TCP_PSH != 0 {
        builder = builder.psh();
    }
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, payload).unwrap();
    frame
}

/// A UDP datagram `src → dst`.
pub fn udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, NODE_MAC)
        .ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .udp(src.port(), dst.port());
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, payload).unwrap();
    frame
}

/// An ICMP "fragmentation needed" from `router` to `to`, quoting the IPv4
/// header and first 8 L4 bytes of `quoted` (a frame).
pub fn frag_needed(router: Ipv4Addr, to: Ipv4Addr, quoted: &[u8], mtu: u16) -> Vec<u8> {
    let header_len = usize::from(quoted[ETH_HLEN] & 0x0f) * 4;
    let quote = &quoted[ETH_HLEN..ETH_HLEN + header_len + 8];
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, NODE_MAC)
        .ipv4(router.octets(), to.octets(), 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu },
        ));
    let mut frame = Vec::with_capacity(builder.size(quote.len()));
    builder.write(&mut frame, quote).unwrap();
    frame
}

/// An ICMP echo request.
pub fn ping(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, NODE_MAC)
        .ipv4(src.octets(), dst.octets(), 64)
        .icmpv4(Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 1 }));
    let mut frame = Vec::with_capacity(builder.size(4));
    builder.write(&mut frame, b"ping").unwrap();
    frame
}

/// RFC 1071 Internet checksum of `bytes` (the value a valid packet's
/// checksummed range sums to is 0).
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What a frame carries, decoded, with its checksums verified.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub protocol: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
    /// The ICMP message after its 8-byte header (the quoted packet).
    pub icmp_body: Vec<u8>,
    /// UDP checksum field as found.
    pub udp_checksum: u16,
    pub payload: Vec<u8>,
}

impl Decoded {
    pub fn source(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.src, self.sport)
    }

    pub fn destination(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.dst, self.dport)
    }
}

/// Decodes `frame` and panics (naming `context`) if any checksum is wrong:
/// the IPv4 header's, the TCP/UDP checksum over the pseudo-header and the
/// segment, the ICMP checksum over the message, and the quoted IPv4
/// header's inside an ICMP error.
pub fn decode(frame: &[u8], context: &str) -> Decoded {
    let headers = PacketHeaders::from_ethernet_slice(frame)
        .unwrap_or_else(|error| panic!("{context}: undecodable frame: {error}"));
    let eth = match headers.link.as_ref() {
        Some(etherparse::LinkHeader::Ethernet2(eth)) => eth.clone(),
        other => panic!("{context}: link {other:?}"),
    };
    let Some(NetHeaders::Ipv4(ip, _)) = headers.net.as_ref() else {
        panic!("{context}: not IPv4");
    };
    let header_len = usize::from(ip.ihl()) * 4;
    let ip_bytes = &frame[ETH_HLEN..ETH_HLEN + header_len];
    assert_eq!(
        internet_checksum(ip_bytes),
        0,
        "{context}: IPv4 header checksum"
    );
    let total = usize::from(ip.total_len);
    let l4 = &frame[ETH_HLEN + header_len..ETH_HLEN + total];

    let mut decoded = Decoded {
        eth_dst: eth.destination,
        eth_src: eth.source,
        src: Ipv4Addr::from(ip.source),
        dst: Ipv4Addr::from(ip.destination),
        ttl: ip.time_to_live,
        protocol: ip.protocol.0,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        seq: 0,
        ack: 0,
        icmp: None,
        icmp_body: Vec::new(),
        udp_checksum: 0,
        payload: headers.payload.slice().to_vec(),
    };
    let pseudo = |protocol: u8| {
        let mut bytes = Vec::with_capacity(12 + l4.len());
        bytes.extend_from_slice(&ip.source);
        bytes.extend_from_slice(&ip.destination);
        bytes.push(0);
        bytes.push(protocol);
        bytes.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        bytes.extend_from_slice(l4);
        bytes
    };
    match headers.transport.as_ref() {
        Some(TransportHeader::Tcp(tcp)) => {
            assert_eq!(internet_checksum(&pseudo(6)), 0, "{context}: TCP checksum");
            decoded.sport = tcp.source_port;
            decoded.dport = tcp.destination_port;
            decoded.seq = tcp.sequence_number;
            decoded.ack = tcp.acknowledgment_number;
            decoded.tcp_flags = l4[13];
        }
        Some(TransportHeader::Udp(udp)) => {
            if udp.checksum != 0 {
                assert_eq!(internet_checksum(&pseudo(17)), 0, "{context}: UDP checksum");
            }
            decoded.sport = udp.source_port;
            decoded.dport = udp.destination_port;
            decoded.udp_checksum = udp.checksum;
        }
        Some(TransportHeader::Icmpv4(_)) => {
            assert_eq!(internet_checksum(l4), 0, "{context}: ICMP checksum");
            decoded.icmp = Some((l4[0], l4[1]));
            decoded.icmp_body = l4[8..].to_vec();
            if matches!(l4[0], 3 | 11 | 12) {
                let quoted_len = usize::from(l4[8] & 0x0f) * 4;
                assert_eq!(
                    internet_checksum(&l4[8..8 + quoted_len]),
                    0,
                    "{context}: quoted IPv4 header checksum"
                );
            }
        }
        other => panic!("{context}: transport {other:?}"),
    }
    decoded
}

/// The quoted packet of an ICMP error: (source, destination) with ports.
pub fn quoted_tuple(body: &[u8]) -> (SocketAddrV4, SocketAddrV4) {
    let header_len = usize::from(body[0] & 0x0f) * 4;
    let src = Ipv4Addr::new(body[12], body[13], body[14], body[15]);
    let dst = Ipv4Addr::new(body[16], body[17], body[18], body[19]);
    let ports = &body[header_len..header_len + 4];
    (
        SocketAddrV4::new(src, u16::from_be_bytes([ports[0], ports[1]])),
        SocketAddrV4::new(dst, u16::from_be_bytes([ports[2], ports[3]])),
    )
}
