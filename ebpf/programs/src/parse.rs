//! Bounded packet parsing: Ethernet, IPv4 and the first bytes of TCP, UDP and
//! ICMP.
//!
//! Every read goes through [`Frame::load`], which copies a fixed number of
//! bytes at an offset and fails if the frame is shorter. On tc that is
//! `bpf_skb_load_bytes`, which also reads headers that sit in paged (non-linear)
//! skb data, so no `bpf_skb_pull_data` is needed before parsing. A concern that
//! rewrites packets later uses the matching store and checksum helpers on the
//! offsets recorded here.
//!
//! The checks mirror what the kernel's own receive path (`ip_rcv_core`) treats
//! as malformed, so a frame this parser rejects is one the stack would drop
//! too, and a translating program can drop it with a counted reason instead of
//! rewriting garbage.

use aya_ebpf::programs::TcContext;
use baton_abi::DropReason;

/// Length of an Ethernet II header (no VLAN tag).
pub const ETH_HLEN: usize = 14;
/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// Minimum IPv4 header length (IHL 5).
pub const IPV4_MIN_HLEN: usize = 20;
/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// Fixed part of the TCP header.
pub const TCP_MIN_HLEN: usize = 20;
/// UDP header.
pub const UDP_HLEN: usize = 8;
/// ICMP header (type, code, checksum, rest of header).
pub const ICMP_HLEN: usize = 8;
/// ICMP destination unreachable.
pub const ICMP_DEST_UNREACH: u8 = 3;
/// ICMP time exceeded.
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// ICMP parameter problem.
pub const ICMP_PARAMETERPROB: u8 = 12;
/// TCP flag FIN.
pub const TCP_FIN: u8 = 0x01;
/// TCP flag SYN.
pub const TCP_SYN: u8 = 0x02;
/// TCP flag RST.
pub const TCP_RST: u8 = 0x04;
/// TCP flag ACK.
pub const TCP_ACK: u8 = 0x10;

/// Read access to a frame, starting at the Ethernet header.
pub trait Frame {
    /// Length of the whole frame in bytes (`skb->len` on tc).
    fn frame_len(&self) -> usize;

    /// Copies `N` bytes at `offset`; [`DropReason::Truncated`] if the frame
    /// ends before `offset + N`.
    fn load<const N: usize>(&self, offset: usize) -> Result<[u8; N], DropReason>;
}

impl L4 {
    /// Source and destination port of TCP and UDP, `None` otherwise.
    #[inline(always)]
    pub fn ports(&self) -> Option<(u16, u16)> {
        match *self {
            Self::Tcp {
                src_port, dst_port, ..
            }
            | Self::Udp { src_port, dst_port } => Some((src_port, dst_port)),
            _ => None,
        }
    }

    /// The TCP flags byte; 0 for anything but TCP.
    #[inline(always)]
    pub fn tcp_flags(&self) -> u8 {
        match *self {
            Self::Tcp { flags, .. } => flags,
            _ => 0,
        }
    }
}

impl Ipv4 {
    /// Whether this is an ICMP error message (which quotes the header of the
    /// packet it is about).
    #[inline(always)]
    pub fn is_icmp_error(&self) -> bool {
        matches!(
            self.l4,
            L4::Icmp {
                icmp_type: ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED | ICMP_PARAMETERPROB,
                ..
            }
        )
    }
}

/// The packet an ICMP error quotes: its IPv4 header and the first 8 bytes
/// behind it (RFC 792 guarantees those; they hold TCP and UDP ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoted {
    /// Offset of the quoted IPv4 header in the frame.
    pub offset: usize,
    /// Offset of the quoted L4 header in the frame.
    pub l4_offset: usize,
    /// Quoted source address.
    pub src: [u8; 4],
    /// Quoted destination address.
    pub dst: [u8; 4],
    /// Quoted protocol: TCP or UDP (others are not looked into).
    pub protocol: u8,
    /// Quoted source port.
    pub src_port: u16,
    /// Quoted destination port.
    pub dst_port: u16,
}

/// Parses the header quoted by the ICMP error `ip` (a packet this node or a
/// router sent), for TCP and UDP. `Ok(None)` for another quoted protocol or
/// a quoted fragment without ports.
#[inline(always)]
pub fn parse_quoted<F: Frame>(frame: &F, ip: &Ipv4) -> Result<Option<Quoted>, DropReason> {
    let offset = ip.l4_offset + ICMP_HLEN;
    let inner: [u8; IPV4_MIN_HLEN] = frame.load(offset)?;
    let header_len = usize::from(inner[0] & 0x0f) * 4;
    if inner[0] >> 4 != 4 || header_len < IPV4_MIN_HLEN {
        return Err(DropReason::InvalidIpv4Header);
    }
    let protocol = inner[9];
    let fragment = u16::from_be_bytes([inner[6], inner[7]]) & 0x1fff;
    if fragment != 0 || (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP) {
        return Ok(None);
    }
    let l4_offset = offset + header_len;
    let ports: [u8; 4] = frame.load(l4_offset)?;
    Ok(Some(Quoted {
        offset,
        l4_offset,
        src: [inner[12], inner[13], inner[14], inner[15]],
        dst: [inner[16], inner[17], inner[18], inner[19]],
        protocol,
        src_port: u16::from_be_bytes([ports[0], ports[1]]),
        dst_port: u16::from_be_bytes([ports[2], ports[3]]),
    }))
}

impl Frame for TcContext {
    #[inline(always)]
    fn frame_len(&self) -> usize {
        TcContext::len(self) as usize
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Result<[u8; N], DropReason> {
        TcContext::load::<[u8; N]>(self, offset).map_err(|_| DropReason::Truncated)
    }
}

/// What the parser found in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// Not IPv4 (ARP, IPv6, VLAN-tagged, …): the EtherType, host byte order.
    Other { ether_type: u16 },
    /// An IPv4 datagram.
    Ipv4(Ipv4),
}

/// The IPv4 header fields the dataplane uses, plus the L4 header behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4 {
    /// Source address, network byte order as on the wire.
    pub src: [u8; 4],
    /// Destination address, network byte order as on the wire.
    pub dst: [u8; 4],
    /// IP protocol number.
    pub protocol: u8,
    /// Header length in bytes (IHL × 4).
    pub header_len: usize,
    /// Offset of the L4 header in the frame: `ETH_HLEN + header_len`.
    pub l4_offset: usize,
    /// Datagram length from the header (or, for BIG TCP, from the frame).
    pub total_len: usize,
    /// What follows the IPv4 header.
    pub l4: L4,
}

/// The transport header of an IPv4 datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP ports (host byte order) and flags byte.
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: u8,
    },
    /// UDP ports (host byte order).
    Udp { src_port: u16, dst_port: u16 },
    /// ICMP type and code.
    Icmp { icmp_type: u8, code: u8 },
    /// A non-first fragment: its L4 header is in the first fragment.
    Fragment,
    /// Another protocol, not looked into.
    Other,
}

/// Parses a frame that starts with an Ethernet II header.
#[inline(always)]
pub fn parse<F: Frame>(frame: &F) -> Result<Packet, DropReason> {
    let eth: [u8; ETH_HLEN] = frame.load(0)?;
    let ether_type = u16::from_be_bytes([eth[12], eth[13]]);
    if ether_type != ETH_P_IP {
        return Ok(Packet::Other { ether_type });
    }
    parse_ipv4(frame, ETH_HLEN).map(Packet::Ipv4)
}

/// Parses the IPv4 header at `offset` and the L4 header behind it.
#[inline(always)]
fn parse_ipv4<F: Frame>(frame: &F, offset: usize) -> Result<Ipv4, DropReason> {
    let ip: [u8; IPV4_MIN_HLEN] = frame.load(offset)?;
    let version = ip[0] >> 4;
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    if version != 4 || header_len < IPV4_MIN_HLEN {
        return Err(DropReason::InvalidIpv4Header);
    }

    let on_wire = frame.frame_len().saturating_sub(offset);
    let total_len = match usize::from(u16::from_be_bytes([ip[2], ip[3]])) {
        // BIG TCP (IPv4 GSO packets above 64 KiB) carries tot_len 0; the
        // kernel then takes the length from the skb (`iph_totlen`). Any other
        // zero length is invalid and caught below.
        0 if on_wire > usize::from(u16::MAX) => on_wire,
        len => len,
    };
    if total_len < header_len {
        return Err(DropReason::InvalidIpv4Header);
    }
    // Ethernet may pad short frames, so the frame can be longer than the
    // datagram, never shorter.
    if on_wire < total_len {
        return Err(DropReason::Truncated);
    }

    let flags_fragment = u16::from_be_bytes([ip[6], ip[7]]);
    let protocol = ip[9];
    let l4_offset = offset + header_len;
    let l4_len = total_len - header_len;
    let l4 = if flags_fragment & 0x1fff != 0 {
        L4::Fragment
    } else {
        parse_l4(frame, protocol, l4_offset, l4_len)?
    };

    Ok(Ipv4 {
        src: [ip[12], ip[13], ip[14], ip[15]],
        dst: [ip[16], ip[17], ip[18], ip[19]],
        protocol,
        header_len,
        l4_offset,
        total_len,
        l4,
    })
}

/// Parses the L4 header at `offset`; `len` is what the IPv4 header says the
/// datagram holds after its own header.
#[inline(always)]
fn parse_l4<F: Frame>(
    frame: &F,
    protocol: u8,
    offset: usize,
    len: usize,
) -> Result<L4, DropReason> {
    match protocol {
        IPPROTO_TCP => {
            if len < TCP_MIN_HLEN {
                return Err(DropReason::Truncated);
            }
            let tcp: [u8; TCP_MIN_HLEN] = frame.load(offset)?;
            Ok(L4::Tcp {
                src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
                dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
                flags: tcp[13],
            })
        }
        IPPROTO_UDP => {
            if len < UDP_HLEN {
                return Err(DropReason::Truncated);
            }
            let udp: [u8; UDP_HLEN] = frame.load(offset)?;
            Ok(L4::Udp {
                src_port: u16::from_be_bytes([udp[0], udp[1]]),
                dst_port: u16::from_be_bytes([udp[2], udp[3]]),
            })
        }
        IPPROTO_ICMP => {
            if len < ICMP_HLEN {
                return Err(DropReason::Truncated);
            }
            let icmp: [u8; ICMP_HLEN] = frame.load(offset)?;
            Ok(L4::Icmp {
                icmp_type: icmp[0],
                code: icmp[1],
            })
        }
        _ => Ok(L4::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame held in memory, for testing the parser on the host.
    struct Bytes<'a>(&'a [u8]);

    impl Frame for Bytes<'_> {
        fn frame_len(&self) -> usize {
            self.0.len()
        }

        fn load<const N: usize>(&self, offset: usize) -> Result<[u8; N], DropReason> {
            self.0
                .get(offset..offset.checked_add(N).ok_or(DropReason::Truncated)?)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or(DropReason::Truncated)
        }
    }

    fn ipv4_frame(ihl_byte: u8, total_len: u16, frag: u16, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&ETH_P_IP.to_be_bytes());
        frame.extend_from_slice(&[ihl_byte, 0]);
        frame.extend_from_slice(&total_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&frag.to_be_bytes());
        frame.extend_from_slice(&[64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        frame.extend_from_slice(l4);
        frame
    }

    #[test]
    fn udp_ports_are_read_in_host_order() {
        let udp = [0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0];
        let frame = ipv4_frame(0x45, 28, 0, IPPROTO_UDP, &udp);
        let Packet::Ipv4(ip) = parse(&Bytes(&frame)).unwrap() else {
            panic!("not parsed as IPv4");
        };
        assert_eq!(ip.src, [10, 0, 0, 1]);
        assert_eq!(ip.dst, [10, 0, 0, 2]);
        assert_eq!(
            ip.l4,
            L4::Udp {
                src_port: 12345,
                dst_port: 53
            }
        );
    }

    #[test]
    fn ethernet_padding_after_the_datagram_is_accepted() {
        let mut frame = ipv4_frame(0x45, 28, 0, IPPROTO_UDP, &[0, 1, 0, 2, 0, 8, 0, 0]);
        frame.resize(60, 0);
        assert!(matches!(parse(&Bytes(&frame)), Ok(Packet::Ipv4(_))));
    }

    #[test]
    fn non_first_fragments_have_no_l4_header() {
        let frame = ipv4_frame(0x45, 24, 0x0010, IPPROTO_TCP, &[0; 4]);
        let Packet::Ipv4(ip) = parse(&Bytes(&frame)).unwrap() else {
            panic!("not parsed as IPv4");
        };
        assert_eq!(ip.l4, L4::Fragment);
    }

    #[test]
    fn malformed_headers_are_named() {
        let mut ipv4_cut = ipv4_frame(0x45, 28, 0, IPPROTO_UDP, &[0; 8]);
        ipv4_cut.truncate(ETH_HLEN + 10);
        let cases: [(&str, Vec<u8>, DropReason); 7] = [
            ("short ethernet", vec![0; 13], DropReason::Truncated),
            ("short ipv4", ipv4_cut, DropReason::Truncated),
            (
                "ihl 3",
                ipv4_frame(0x43, 28, 0, IPPROTO_UDP, &[0; 8]),
                DropReason::InvalidIpv4Header,
            ),
            (
                "version 6",
                ipv4_frame(0x65, 28, 0, IPPROTO_UDP, &[0; 8]),
                DropReason::InvalidIpv4Header,
            ),
            (
                "total below ihl",
                ipv4_frame(0x45, 12, 0, IPPROTO_UDP, &[0; 8]),
                DropReason::InvalidIpv4Header,
            ),
            (
                "datagram cut",
                ipv4_frame(0x45, 60, 0, IPPROTO_UDP, &[0; 8]),
                DropReason::Truncated,
            ),
            (
                "tcp cut",
                ipv4_frame(0x45, 30, 0, IPPROTO_TCP, &[0; 10]),
                DropReason::Truncated,
            ),
        ];
        for (name, frame, reason) in cases {
            assert_eq!(parse(&Bytes(&frame)), Err(reason), "{name}");
        }
    }

    #[test]
    fn icmp_errors_quote_ports_of_the_packet_they_are_about() {
        // Port unreachable about a UDP datagram 10.0.0.2:53 -> 10.0.0.1:4000.
        let mut quoted = vec![0x45, 0, 0, 36, 0, 0, 0, 0, 64, IPPROTO_UDP, 0, 0];
        quoted.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        quoted.extend_from_slice(&[0, 53, 0x0f, 0xa0, 0, 16, 0, 0]);
        let mut icmp = vec![ICMP_DEST_UNREACH, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let total = u16::try_from(20 + icmp.len()).unwrap();
        let frame = ipv4_frame(0x45, total, 0, IPPROTO_ICMP, &icmp);
        let Packet::Ipv4(ip) = parse(&Bytes(&frame)).unwrap() else {
            panic!("not parsed as IPv4");
        };
        assert!(ip.is_icmp_error());
        let inner = parse_quoted(&Bytes(&frame), &ip).unwrap().unwrap();
        assert_eq!(inner.src, [10, 0, 0, 2]);
        assert_eq!((inner.src_port, inner.dst_port), (53, 4000));
        assert_eq!(inner.offset, ETH_HLEN + 20 + ICMP_HLEN);
        assert_eq!(inner.l4_offset, inner.offset + 20);

        // The same error cut inside the quoted ports.
        let cut = &frame[..frame.len() - 6];
        assert_eq!(parse_quoted(&Bytes(cut), &ip), Err(DropReason::Truncated));
    }

    #[test]
    fn non_ip_is_reported_with_its_ethertype() {
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&0x0806u16.to_be_bytes());
        arp.resize(42, 0);
        assert_eq!(
            parse(&Bytes(&arp)),
            Ok(Packet::Other { ether_type: 0x0806 })
        );
    }
}
