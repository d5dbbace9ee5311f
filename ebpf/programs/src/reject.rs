//! Refusing a new connection to a service without a usable backend, at
//! once and in BPF: the packet is turned into the answer a host gives for a
//! closed port and sent back out of the device it came in on.
//!
//! - TCP SYN → RST|ACK, sequence 0, acknowledging the SYN (RFC 9293 3.10.7.1
//!   for a segment without ACK).
//! - UDP → ICMP destination unreachable, port unreachable (RFC 1122
//!   3.2.2.1), quoting the datagram's IPv4 header and first 8 bytes, sent
//!   from the frontend address the client used.
//!
//! Checksums are computed in full (`bpf_csum_diff` over the new headers).
//! A packet that was checksum-offloaded by a local sender (`CHECKSUM_PARTIAL`
//! on a veth) keeps that state and the receiving stack trusts it; the
//! content is right either way, and packets from a physical NIC are never
//! in that state.

use aya_ebpf::{
    bindings::bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    helpers::{bpf_csum_diff, bpf_skb_change_tail},
    programs::TcContext,
};
use baton_abi::DropReason;

use crate::{
    csum,
    parse::{
        ETH_HLEN, ETH_P_IP, ICMP_DEST_UNREACH, ICMP_HLEN, IPPROTO_ICMP, IPPROTO_TCP, IPV4_MIN_HLEN,
        Ipv4, L4, TCP_ACK, TCP_FIN, TCP_MIN_HLEN, TCP_RST, TCP_SYN, UDP_HLEN,
    },
    route,
};

/// ICMP code "port unreachable".
const ICMP_PORT_UNREACH: u8 = 3;
/// TTL of generated packets.
const TTL: u8 = 64;
/// Bytes of the offending datagram an ICMP error quotes when its header has
/// no options: the IPv4 header and 8 bytes (RFC 792).
const QUOTED_LEN: usize = IPV4_MIN_HLEN + UDP_HLEN;

/// Answers the new connection in `ip` as refused and sends the answer
/// back. The caller counts the drop of the original packet.
#[inline(always)]
pub fn refuse(ctx: &TcContext, ip: &Ipv4) -> Result<i32, DropReason> {
    match ip.l4 {
        L4::Tcp { .. } => tcp_reset(ctx, ip),
        L4::Udp { .. } => port_unreachable(ctx, ip),
        _ => Err(DropReason::Unsupported),
    }
}

#[inline(always)]
fn swapped_macs(ctx: &TcContext) -> Result<[u8; ETH_HLEN], DropReason> {
    let eth: [u8; ETH_HLEN] = ctx.load(0).map_err(|_| DropReason::Truncated)?;
    let mut out = [0u8; ETH_HLEN];
    out[..6].copy_from_slice(&eth[6..12]);
    out[6..12].copy_from_slice(&eth[..6]);
    out[12..].copy_from_slice(&ETH_P_IP.to_be_bytes());
    Ok(out)
}

/// An IPv4 header without options, checksum filled in.
#[inline(always)]
fn ipv4_header(protocol: u8, total_len: u16, src: [u8; 4], dst: [u8; 4]) -> [u8; IPV4_MIN_HLEN] {
    let mut header = [0u8; IPV4_MIN_HLEN];
    header[0] = 0x45;
    header[2..4].copy_from_slice(&total_len.to_be_bytes());
    // Don't fragment, like the kernel's own RSTs and ICMP errors.
    header[6] = 0x40;
    header[8] = TTL;
    header[9] = protocol;
    header[12..16].copy_from_slice(&src);
    header[16..20].copy_from_slice(&dst);
    let sum = sum(&header);
    header[10..12].copy_from_slice(&csum::fold(sum));
    header
}

/// One's-complement sum of `bytes` (a multiple of 4 long) in native words.
#[inline(always)]
fn sum<const N: usize>(bytes: &[u8; N]) -> u64 {
    // SAFETY: `bytes` is a live stack buffer of `N` bytes (a multiple of 4);
    // the helper only reads it.
    let sum = unsafe {
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            bytes.as_ptr().cast_mut().cast::<u32>(),
            N as u32,
            0,
        )
    };
    if sum < 0 { 0 } else { sum as u64 }
}

fn resize(ctx: &TcContext, len: usize) -> Result<(), DropReason> {
    // SAFETY: the context is this program's skb.
    let ret = unsafe { bpf_skb_change_tail(ctx.skb.skb, len as u32, 0) };
    if ret == 0 {
        Ok(())
    } else {
        Err(DropReason::RewriteFailed)
    }
}

#[inline(always)]
fn tcp_reset(ctx: &TcContext, ip: &Ipv4) -> Result<i32, DropReason> {
    let L4::Tcp {
        src_port,
        dst_port,
        flags,
    } = ip.l4
    else {
        return Err(DropReason::Unsupported);
    };
    let tcp: [u8; TCP_MIN_HLEN] = ctx.load(ip.l4_offset).map_err(|_| DropReason::Truncated)?;
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let data_offset = usize::from(tcp[12] >> 4) * 4;
    let payload = ip
        .total_len
        .saturating_sub(ip.header_len)
        .saturating_sub(data_offset) as u32;
    // The SYN (and a FIN) take one sequence number each.
    let mut ack = seq.wrapping_add(payload);
    if flags & TCP_SYN != 0 {
        ack = ack.wrapping_add(1);
    }
    if flags & TCP_FIN != 0 {
        ack = ack.wrapping_add(1);
    }

    let eth = swapped_macs(ctx)?;
    let total = (IPV4_MIN_HLEN + TCP_MIN_HLEN) as u16;
    let header = ipv4_header(IPPROTO_TCP, total, ip.dst, ip.src);

    // Pseudo-header (12 bytes) followed by the TCP header (20 bytes).
    let mut segment = [0u8; 12 + TCP_MIN_HLEN];
    segment[..4].copy_from_slice(&ip.dst);
    segment[4..8].copy_from_slice(&ip.src);
    segment[9] = IPPROTO_TCP;
    segment[10..12].copy_from_slice(&(TCP_MIN_HLEN as u16).to_be_bytes());
    let reset = &mut segment[12..];
    reset[..2].copy_from_slice(&dst_port.to_be_bytes());
    reset[2..4].copy_from_slice(&src_port.to_be_bytes());
    reset[8..12].copy_from_slice(&ack.to_be_bytes());
    reset[12] = 5 << 4;
    reset[13] = TCP_RST | TCP_ACK;
    let checksum = csum::fold(sum(&segment));
    segment[12 + 16..12 + 18].copy_from_slice(&checksum);

    resize(ctx, ETH_HLEN + IPV4_MIN_HLEN + TCP_MIN_HLEN)?;
    ctx.store(0, &eth, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.store(ETH_HLEN, &header, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    let mut tcp_out = [0u8; TCP_MIN_HLEN];
    tcp_out.copy_from_slice(&segment[12..]);
    ctx.store(ETH_HLEN + IPV4_MIN_HLEN, &tcp_out, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    route::back_out(ctx)
}

#[inline(always)]
fn port_unreachable(ctx: &TcContext, ip: &Ipv4) -> Result<i32, DropReason> {
    // With IP options the quote would be longer than the fixed buffer used
    // for its checksum; such datagrams are dropped without an answer.
    if ip.header_len != IPV4_MIN_HLEN {
        return Err(DropReason::Unsupported);
    }
    let eth = swapped_macs(ctx)?;
    let quoted: [u8; QUOTED_LEN] = ctx.load(ETH_HLEN).map_err(|_| DropReason::Truncated)?;

    let icmp_len = ICMP_HLEN + QUOTED_LEN;
    let total = (IPV4_MIN_HLEN + icmp_len) as u16;
    // From the address the client sent to, so its socket matches the error.
    let header = ipv4_header(IPPROTO_ICMP, total, ip.dst, ip.src);
    let mut message = [0u8; ICMP_HLEN + QUOTED_LEN];
    message[0] = ICMP_DEST_UNREACH;
    message[1] = ICMP_PORT_UNREACH;
    message[ICMP_HLEN..].copy_from_slice(&quoted);
    let checksum = csum::fold(sum(&message));
    message[2..4].copy_from_slice(&checksum);

    // Room for the new IPv4 + ICMP headers in front of the quoted datagram,
    // then cut it after the quoted bytes.
    let room = (IPV4_MIN_HLEN + ICMP_HLEN) as i32;
    ctx.adjust_room(room, BPF_ADJ_ROOM_MAC, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    resize(ctx, ETH_HLEN + IPV4_MIN_HLEN + icmp_len)?;
    ctx.store(0, &eth, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.store(ETH_HLEN, &header, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.store(ETH_HLEN + IPV4_MIN_HLEN, &message, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    route::back_out(ctx)
}
