//! Pod routing: delivery to a pod of this node with `bpf_redirect_peer`, and
//! forwarding to anywhere else after a FIB lookup with `bpf_redirect` or
//! `bpf_redirect_neigh` (the kernel resolves the next hop's MAC). No bridge
//! and no iptables are involved; what the FIB cannot route here (the node's
//! own addresses, forwarding disabled, a packet too big for the route) is
//! left to the kernel stack, which answers it as it always would.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_BLACKHOLE, BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_PROHIBIT,
        BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LKUP_RET_UNREACHABLE, TC_ACT_REDIRECT, bpf_fib_lookup,
        bpf_redir_neigh,
    },
    helpers::{bpf_fib_lookup as fib_lookup, bpf_redirect, bpf_redirect_neigh, bpf_redirect_peer},
    macros::map,
    maps::HashMap,
    programs::TcContext,
};
use baton_abi::{
    DropReason,
    route::{
        ENDPOINTS_MAX_ENTRIES, Endpoint, Ipv4Key, LOCAL_ADDRS_MAX_ENTRIES, LocalAddr,
        NODE_ADDRS_MAX_ENTRIES,
    },
};

use crate::{
    csum::IP_CSUM_OFFSET,
    parse::{ETH_HLEN, Ipv4},
};

#[map(name = "baton_endpoints")]
static ENDPOINTS: HashMap<Ipv4Key, Endpoint> = HashMap::with_max_entries(ENDPOINTS_MAX_ENTRIES, 0);

#[map(name = "baton_local_ip")]
static LOCAL_ADDRS: HashMap<Ipv4Key, LocalAddr> =
    HashMap::with_max_entries(LOCAL_ADDRS_MAX_ENTRIES, 0);

#[map(name = "baton_node_ip")]
static NODE_ADDRS: HashMap<Ipv4Key, LocalAddr> =
    HashMap::with_max_entries(NODE_ADDRS_MAX_ENTRIES, 0);

/// `AF_INET`.
const AF_INET: u8 = 2;

/// Whether `addr` is one of this node's addresses.
#[inline(always)]
pub fn is_local_addr(addr: [u8; 4]) -> bool {
    LOCAL_ADDRS.get_ptr(Ipv4Key { addr }).is_some()
}

/// Whether `addr` is another node's address.
#[inline(always)]
pub fn is_node_addr(addr: [u8; 4]) -> bool {
    NODE_ADDRS.get_ptr(Ipv4Key { addr }).is_some()
}

/// The pod of this node with address `addr`, if there is one.
#[inline(always)]
pub fn endpoint(addr: [u8; 4]) -> Option<Endpoint> {
    // SAFETY: a successful lookup points at a live, aligned `Endpoint`; it
    // is copied out at once.
    ENDPOINTS
        .get_ptr(Ipv4Key { addr })
        .map(|endpoint| unsafe { *endpoint })
}

/// Delivers the frame into the pod `endpoint` through its veth peer: the
/// Ethernet header becomes host veth → pod, then `bpf_redirect_peer` hands
/// the skb to the pod's interface without a second pass through the host's
/// stack or the host-side veth. Only valid from a tc ingress hook.
#[inline(always)]
pub fn to_endpoint(ctx: &TcContext, endpoint: &Endpoint) -> Result<i32, DropReason> {
    set_macs(ctx, endpoint.pod_mac, endpoint.host_mac)?;
    // SAFETY: a plain helper call with scalar arguments.
    let ret = unsafe { bpf_redirect_peer(endpoint.ifindex, 0) };
    if ret == i64::from(TC_ACT_REDIRECT) {
        Ok(TC_ACT_REDIRECT)
    } else {
        Err(DropReason::RedirectFailed)
    }
}

/// Sends the frame back out of the device it arrived on (a generated reply).
#[inline(always)]
pub fn back_out(ctx: &TcContext) -> Result<i32, DropReason> {
    // SAFETY: reads a field of the live skb context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: a plain helper call with scalar arguments.
    let ret = unsafe { bpf_redirect(ifindex, 0) };
    if ret == i64::from(TC_ACT_REDIRECT) {
        Ok(TC_ACT_REDIRECT)
    } else {
        Err(DropReason::RedirectFailed)
    }
}

/// Delivers to a local pod if `ip.dst` is one, leaves a packet for one of
/// the node's own addresses to the kernel stack (`Ok(None)`, without a FIB
/// lookup that could only say so), and forwards anything else after a FIB
/// lookup.
#[inline(always)]
pub fn deliver(ctx: &TcContext, ip: &Ipv4) -> Result<Option<i32>, DropReason> {
    if let Some(endpoint) = endpoint(ip.dst) {
        return to_endpoint(ctx, &endpoint).map(Some);
    }
    if is_local_addr(ip.dst) {
        return Ok(None);
    }
    forward(ctx, ip)
}

/// Routes the packet as the node's FIB says. `Ok(None)`: the kernel stack
/// should handle it (local destination, forwarding disabled on the device,
/// MTU exceeded — the stack then sends the ICMP error —, TTL expiring).
#[inline(always)]
pub fn forward(ctx: &TcContext, ip: &Ipv4) -> Result<Option<i32>, DropReason> {
    // SAFETY: `bpf_fib_lookup` is plain data; all-zero is a valid value.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.family = AF_INET;
    params.l4_protocol = ip.protocol;
    if let Some((sport, dport)) = ip.l4.ports() {
        params.sport = sport.to_be();
        params.dport = dport.to_be();
    }
    params.__bindgen_anon_1.tot_len = ip.total_len as u16;
    // SAFETY: reads a field of the live skb context.
    params.ifindex = unsafe { (*ctx.skb.skb).ingress_ifindex };
    params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(ip.src);
    params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(ip.dst);

    // SAFETY: `params` is a live, initialised `struct bpf_fib_lookup` and
    // its size is passed along.
    let ret = unsafe {
        fib_lookup(
            ctx.skb.skb.cast::<c_void>(),
            &raw mut params,
            size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    let ret = ret as u32;
    if ret == BPF_FIB_LKUP_RET_BLACKHOLE
        || ret == BPF_FIB_LKUP_RET_UNREACHABLE
        || ret == BPF_FIB_LKUP_RET_PROHIBIT
    {
        return Err(DropReason::NoRoute);
    }
    if ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH {
        return Ok(None);
    }
    if !decrement_ttl(ctx)? {
        // The stack sends the ICMP time exceeded.
        return Ok(None);
    }
    let redirected = if ret == BPF_FIB_LKUP_RET_SUCCESS {
        set_macs(ctx, params.dmac, params.smac)?;
        // SAFETY: a plain helper call with scalar arguments.
        unsafe { bpf_redirect(params.ifindex, 0) }
    } else {
        // SAFETY: `bpf_redir_neigh` is plain data; all-zero is valid.
        let mut neigh: bpf_redir_neigh = unsafe { core::mem::zeroed() };
        neigh.nh_family = u32::from(AF_INET);
        // After the lookup, `ipv4_dst` holds the next hop.
        // SAFETY: reading the IPv4 member of a union the helper wrote.
        neigh.__bindgen_anon_1.ipv4_nh = unsafe { params.__bindgen_anon_4.ipv4_dst };
        // SAFETY: `neigh` is a live, initialised `struct bpf_redir_neigh`
        // and its size is passed along.
        unsafe {
            bpf_redirect_neigh(
                params.ifindex,
                &raw mut neigh,
                size_of::<bpf_redir_neigh>() as i32,
                0,
            )
        }
    };
    if redirected == i64::from(TC_ACT_REDIRECT) {
        Ok(Some(TC_ACT_REDIRECT))
    } else {
        Err(DropReason::RedirectFailed)
    }
}

/// Decrements the TTL of a packet the node routes, as a router does.
/// `Ok(false)` if it would reach zero (left to the stack).
#[inline(always)]
fn decrement_ttl(ctx: &TcContext) -> Result<bool, DropReason> {
    let word: [u8; 2] = ctx.load(ETH_HLEN + 8).map_err(|_| DropReason::Truncated)?;
    if word[0] <= 1 {
        return Ok(false);
    }
    let new = [word[0] - 1, word[1]];
    ctx.store(ETH_HLEN + 8, &new, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.l3_csum_replace(
        IP_CSUM_OFFSET,
        u64::from(u16::from_ne_bytes(word)),
        u64::from(u16::from_ne_bytes(new)),
        2,
    )
    .map_err(|_| DropReason::RewriteFailed)?;
    Ok(true)
}

#[inline(always)]
fn set_macs(ctx: &TcContext, dst: [u8; 6], src: [u8; 6]) -> Result<(), DropReason> {
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&dst);
    macs[6..].copy_from_slice(&src);
    ctx.store(0, &macs, 0)
        .map_err(|_| DropReason::RewriteFailed)
}

/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// Length of an Ethernet/IPv4 ARP message.
const ARP_LEN: usize = 28;

/// Answers an ARP request a registered pod sends for any address but its
/// own with the MAC of its host-side veth: every destination of a pod is
/// behind its veth (the node routes), whatever gateway address the pod's
/// routes name. `Ok(None)` if the frame is not such a request.
#[inline(always)]
pub fn answer_arp(ctx: &TcContext) -> Result<Option<i32>, DropReason> {
    let arp: [u8; ARP_LEN] = ctx.load(ETH_HLEN).map_err(|_| DropReason::Truncated)?;
    // Ethernet (1), IPv4 (0x0800), 6-byte and 4-byte addresses, request (1).
    if arp[..8] != [0, 1, 8, 0, 6, 4, 0, 1] {
        return Ok(None);
    }
    let sender_mac: [u8; 6] = [arp[8], arp[9], arp[10], arp[11], arp[12], arp[13]];
    let sender_ip = [arp[14], arp[15], arp[16], arp[17]];
    let target_ip = [arp[24], arp[25], arp[26], arp[27]];
    if sender_ip == target_ip {
        // Gratuitous ARP or duplicate-address detection: not a question.
        return Ok(None);
    }
    let Some(endpoint) = endpoint(sender_ip) else {
        return Ok(None);
    };
    let mut reply = [0u8; ARP_LEN];
    reply[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
    reply[7] = 2;
    reply[8..14].copy_from_slice(&endpoint.host_mac);
    reply[14..18].copy_from_slice(&target_ip);
    reply[18..24].copy_from_slice(&sender_mac);
    reply[24..28].copy_from_slice(&sender_ip);
    set_macs(ctx, sender_mac, endpoint.host_mac)?;
    ctx.store(ETH_HLEN, &reply, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
    back_out(ctx).map(Some)
}
