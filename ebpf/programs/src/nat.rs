//! Per-packet service translation: the packet path's composition of
//! [`lb`] (which backend), [`conntrack`] (which flow, which state) and
//! packet rewriting, for both attach points that translate packets (the
//! uplink for traffic from outside, pod veths for what socket LB cannot
//! see).
//!
//! - [`forward`]: a packet to a frontend. A known flow is rewritten as its
//!   conntrack entry says; a new one (TCP SYN, any UDP datagram) gets a
//!   backend and two conntrack entries. Traffic from outside to a backend
//!   on another node is SNATed to the node address with a port claimed
//!   through the reply entry's key; a pod reaching itself through its
//!   service is SNATed to the hairpin address. Without a usable backend
//!   the connection is refused at once (see [`reject`]).
//! - [`reverse`]: a reply of a translated flow is rewritten back (source
//!   becomes the frontend, destination the original client).
//! - [`masquerade`]: a pod's packet to an address outside the cluster's
//!   pod range leaves with the node address and a claimed port; its
//!   replies come back through [`reverse`].
//! - [`icmp_error`]: an ICMP error about a translated flow (PMTU,
//!   unreachable) is translated like the packet it quotes, so the client
//!   or the backend can act on it.

use aya_ebpf::{
    bindings::{BPF_EXIST, BPF_NOEXIST, TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::bpf_get_prandom_u32,
    programs::TcContext,
};
use baton_abi::{
    Direction, DropReason,
    config::{CONFIG_F_MASQUERADE, Config, SNAT_PORT_ATTEMPTS},
    conntrack::{
        CT_DIR_ORIGINAL, CT_DIR_REPLY, CT_F_COUNTED, CT_F_DNAT, CT_F_LOCAL_BACKEND,
        CT_F_MASQUERADE, CT_F_SNAT, CtEntry, CtKey, CtState,
    },
    lb::{AFFINITY_CLIENT_ADDR, BACKEND_F_LOCAL, ServiceValue},
    metrics::Event,
};

use crate::{
    conntrack::{self, CT},
    csum::{self, IP_CSUM_OFFSET, IP_DST_OFFSET, IP_SRC_OFFSET, L4Csum},
    lb::{self, Client, Origin},
    metrics::{self, ServiceSample},
    parse::{self, Ipv4, L4},
    reject, route,
};

/// Translates a packet to the frontend `service` (new or known flow) and
/// delivers it. `origin` says which side it came from.
#[inline(always)]
pub fn forward(
    ctx: &TcContext,
    ip: &Ipv4,
    service: &ServiceValue,
    origin: Origin,
    direction: Direction,
    config: &Config,
    now_ns: u64,
) -> Result<i32, DropReason> {
    let (sport, dport) = ip.l4.ports().ok_or(DropReason::Unsupported)?;
    let tcp_flags = ip.l4.tcp_flags();
    let key = flow_key(ip, sport, dport, CT_DIR_ORIGINAL);
    let syn = conntrack::is_syn(ip.protocol, tcp_flags);
    let entry = match known_flow(&key, syn, now_ns) {
        Some(entry) => {
            conntrack::on_packet(entry, &key, tcp_flags, now_ns);
            // SAFETY: `entry` was found by `lookup` in this run.
            unsafe { *entry }
        }
        None => {
            if ip.protocol == baton_abi::IPPROTO_TCP && !syn {
                // Mid-stream without state (expired, evicted): no backend
                // can be chosen for it.
                return Err(DropReason::ConntrackMiss);
            }
            match new_flow(
                ip, sport, dport, &key, service, origin, direction, config, now_ns,
            ) {
                Ok(entry) => entry,
                Err(DropReason::NoServiceBackends) => {
                    metrics::service(service.service_id, ServiceSample::REFUSED, direction);
                    metrics::dropped(DropReason::NoServiceBackends, direction, ctx.len());
                    // The packet is counted once, under the reason above;
                    // if no answer can be built it is simply dropped.
                    return Ok(match reject::refuse(ctx, ip) {
                        Ok(verdict) => {
                            metrics::event(Event::RejectSent, direction, ctx.len());
                            verdict
                        }
                        Err(_) => TC_ACT_SHOT,
                    });
                }
                Err(reason) => return Err(reason),
            }
        }
    };
    metrics::service(
        entry.service_id,
        ServiceSample::packet(ctx.len()),
        direction,
    );
    rewrite(ctx, ip, sport, dport, &entry)?;
    metrics::event(Event::Translated, direction, ctx.len());
    deliver(ctx, ip, &entry, config)
}

/// The conntrack key of the packet `ip` (with ports `sport`, `dport`) in
/// direction `dir`.
#[inline(always)]
fn flow_key(ip: &Ipv4, sport: u16, dport: u16, dir: u8) -> CtKey {
    CtKey {
        saddr: ip.src,
        daddr: ip.dst,
        sport,
        dport,
        proto: ip.protocol,
        dir,
        _pad: 0,
    }
}

/// The live entry of the flow `key` names, unless `syn` starts a new flow
/// on the ports of a closing one (which is then uncounted).
#[inline(always)]
fn known_flow(key: &CtKey, syn: bool, now_ns: u64) -> Option<*mut CtEntry> {
    match conntrack::lookup(key, now_ns) {
        // SAFETY: `entry` was found by `lookup` in this run.
        Some(entry) if syn && unsafe { (*entry).state } == CtState::Closing as u8 => {
            conntrack::uncount(entry);
            None
        }
        other => other,
    }
}

/// Chooses a backend for a new flow and creates its two conntrack entries.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn new_flow(
    ip: &Ipv4,
    sport: u16,
    dport: u16,
    key: &CtKey,
    service: &ServiceValue,
    origin: Origin,
    direction: Direction,
    config: &Config,
    now_ns: u64,
) -> Result<CtEntry, DropReason> {
    let src = u32::from_ne_bytes(ip.src);
    let client = Client {
        id: u64::from(src),
        kind: AFFINITY_CLIENT_ADDR,
        hash: lb::hash([
            src,
            (u32::from(sport) << 16) | u32::from(dport),
            u32::from_ne_bytes(ip.dst),
            u32::from(ip.protocol),
        ]),
    };
    let chosen = lb::select(service, &client, now_ns, direction)?;
    let backend = chosen.backend;
    let local = backend.flags & BACKEND_F_LOCAL != 0;

    let mut flags = CT_F_DNAT | CT_F_COUNTED;
    if local {
        flags |= CT_F_LOCAL_BACKEND;
    }
    let (to_saddr, snat) = if origin == Origin::Outside && !local {
        if config.snat_addr == [0; 4] {
            return Err(DropReason::NoRoute);
        }
        (config.snat_addr, true)
    } else if origin == Origin::Inside && backend.addr == ip.src {
        (config.hairpin_addr, true)
    } else {
        (ip.src, false)
    };
    if snat {
        flags |= CT_F_SNAT;
    }
    let timeout = conntrack::timeout_ns(ip.protocol, CtState::New as u8);
    let mut original = CtEntry {
        to_saddr,
        to_daddr: backend.addr,
        to_sport: sport,
        to_dport: backend.port,
        backend_id: chosen.id,
        service_id: service.service_id,
        state: CtState::New as u8,
        flags,
        _pad: 0,
        expires_ns: now_ns + timeout,
        created_ns: now_ns,
    };
    let reply = CtEntry {
        to_saddr: ip.dst,
        to_daddr: ip.src,
        to_sport: dport,
        to_dport: sport,
        backend_id: chosen.id,
        service_id: service.service_id,
        state: CtState::New as u8,
        flags: if snat {
            CT_F_SNAT | CT_F_DNAT
        } else {
            CT_F_SNAT
        },
        _pad: 0,
        expires_ns: now_ns + timeout,
        created_ns: now_ns,
    };
    let mut reply_key = CtKey {
        saddr: backend.addr,
        daddr: to_saddr,
        sport: backend.port,
        dport: sport,
        proto: ip.protocol,
        dir: CT_DIR_REPLY,
        _pad: 0,
    };
    if origin == Origin::Outside && snat {
        reply_key.dport = claim_snat_port(&mut reply_key, &reply, config, now_ns)?;
        original.to_sport = reply_key.dport;
    } else if CT.insert(reply_key, reply, 0).is_err() {
        return Err(DropReason::ConntrackFull);
    }
    if CT.insert(*key, original, 0).is_err() {
        let _ = CT.remove(reply_key);
        return Err(DropReason::ConntrackFull);
    }
    lb::count_connection(chosen.id, false);
    metrics::service(service.service_id, ServiceSample::NEW_FLOW, direction);
    Ok(original)
}

/// Claims a free SNAT port for `reply_key` (backend → node address) by
/// inserting the reply entry under it with `BPF_NOEXIST`; an expired entry
/// in the way is taken over. Tries [`SNAT_PORT_ATTEMPTS`] random ports.
#[inline(always)]
fn claim_snat_port(
    reply_key: &mut CtKey,
    reply: &CtEntry,
    config: &Config,
    now_ns: u64,
) -> Result<u16, DropReason> {
    let span = u32::from(config.snat_port_max)
        .saturating_sub(u32::from(config.snat_port_min))
        .saturating_add(1);
    for _ in 0..SNAT_PORT_ATTEMPTS {
        // SAFETY: a helper without arguments.
        let random = unsafe { bpf_get_prandom_u32() };
        let port = (u32::from(config.snat_port_min) + random.checked_rem(span).unwrap_or(0)) as u16;
        reply_key.dport = port;
        if CT
            .insert(*reply_key, *reply, u64::from(BPF_NOEXIST))
            .is_ok()
        {
            return Ok(port);
        }
        if conntrack::lookup(reply_key, now_ns).is_none()
            && CT.insert(*reply_key, *reply, u64::from(BPF_EXIST)).is_ok()
        {
            return Ok(port);
        }
    }
    Err(DropReason::NatPortsExhausted)
}

/// Rewrites a reply of a translated flow back and delivers it. `Ok(None)`
/// if the packet belongs to no translated flow.
#[inline(always)]
pub fn reverse(
    ctx: &TcContext,
    ip: &Ipv4,
    direction: Direction,
    config: &Config,
    now_ns: u64,
) -> Result<Option<i32>, DropReason> {
    let Some((sport, dport)) = ip.l4.ports() else {
        return Ok(None);
    };
    let key = flow_key(ip, sport, dport, CT_DIR_REPLY);
    let Some(entry) = conntrack::lookup(&key, now_ns) else {
        return Ok(None);
    };
    let tcp_flags = ip.l4.tcp_flags();
    conntrack::on_packet(entry, &key, tcp_flags, now_ns);
    // SAFETY: `entry` was found by `lookup` in this run.
    let entry = unsafe { *entry };
    if entry.flags & CT_F_MASQUERADE == 0 {
        metrics::service(
            entry.service_id,
            ServiceSample::packet(ctx.len()),
            direction,
        );
    }
    rewrite(ctx, ip, sport, dport, &entry)?;
    metrics::event(Event::Translated, direction, ctx.len());
    deliver(ctx, ip, &entry, config).map(Some)
}

/// Masquerades a pod's packet to an address outside the cluster's pod
/// range: it leaves with the node address and a port claimed for the flow,
/// as Cilium's BPF masquerading does. `Ok(None)` when it stays as it is
/// (masquerading off, no node address, a destination inside the pod range,
/// on this node or another node, a packet without ports).
#[inline(always)]
pub fn masquerade(
    ctx: &TcContext,
    ip: &Ipv4,
    config: &Config,
    now_ns: u64,
) -> Result<Option<i32>, DropReason> {
    if config.flags & CONFIG_F_MASQUERADE == 0 || config.snat_addr == [0; 4] {
        return Ok(None);
    }
    let Some((sport, dport)) = ip.l4.ports() else {
        return Ok(None);
    };
    if !in_cluster_cidr(ip.src, config)
        || in_cluster_cidr(ip.dst, config)
        || route::is_local_addr(ip.dst)
        || route::is_node_addr(ip.dst)
    {
        return Ok(None);
    }
    let key = flow_key(ip, sport, dport, CT_DIR_ORIGINAL);
    let tcp_flags = ip.l4.tcp_flags();
    let syn = conntrack::is_syn(ip.protocol, tcp_flags);
    let entry = match known_flow(&key, syn, now_ns) {
        Some(entry) => {
            conntrack::on_packet(entry, &key, tcp_flags, now_ns);
            // SAFETY: `entry` was found by `lookup` in this run.
            unsafe { *entry }
        }
        // Mid-stream without state: a reply of a connection opened to the
        // pod's own address (from a network that routes pod addresses), or
        // a flow whose state was lost, which a new port could not save
        // either. It goes out as it is.
        None if ip.protocol == baton_abi::IPPROTO_TCP && !syn => return Ok(None),
        None => new_masquerade(ip, sport, dport, &key, config, now_ns)?,
    };
    rewrite(ctx, ip, sport, dport, &entry)?;
    metrics::event(Event::Translated, Direction::Ingress, ctx.len());
    deliver(ctx, ip, &entry, config).map(Some)
}

/// Whether `addr` is inside the cluster's pod range.
#[inline(always)]
fn in_cluster_cidr(addr: [u8; 4], config: &Config) -> bool {
    let mask = u32::from_ne_bytes(config.cluster_cidr_mask);
    u32::from_ne_bytes(addr) & mask == u32::from_ne_bytes(config.cluster_cidr_addr) & mask
}

/// The two conntrack entries of a new masqueraded flow, with the node
/// port claimed through the reply entry's key.
#[inline(always)]
fn new_masquerade(
    ip: &Ipv4,
    sport: u16,
    dport: u16,
    key: &CtKey,
    config: &Config,
    now_ns: u64,
) -> Result<CtEntry, DropReason> {
    let timeout = conntrack::timeout_ns(ip.protocol, CtState::New as u8);
    let reply = CtEntry {
        to_saddr: ip.dst,
        to_daddr: ip.src,
        to_sport: dport,
        to_dport: sport,
        backend_id: 0,
        service_id: 0,
        state: CtState::New as u8,
        flags: CT_F_DNAT | CT_F_MASQUERADE,
        _pad: 0,
        expires_ns: now_ns + timeout,
        created_ns: now_ns,
    };
    let mut reply_key = CtKey {
        saddr: ip.dst,
        daddr: config.snat_addr,
        sport: dport,
        dport: sport,
        proto: ip.protocol,
        dir: CT_DIR_REPLY,
        _pad: 0,
    };
    let port = claim_snat_port(&mut reply_key, &reply, config, now_ns)?;
    let original = CtEntry {
        to_saddr: config.snat_addr,
        to_daddr: ip.dst,
        to_sport: port,
        to_dport: dport,
        backend_id: 0,
        service_id: 0,
        state: CtState::New as u8,
        flags: CT_F_SNAT | CT_F_MASQUERADE,
        _pad: 0,
        expires_ns: now_ns + timeout,
        created_ns: now_ns,
    };
    if CT.insert(*key, original, 0).is_err() {
        let _ = CT.remove(reply_key);
        return Err(DropReason::ConntrackFull);
    }
    Ok(original)
}

/// Rewrites addresses and ports to what `entry` says, with checksums.
#[inline(always)]
fn rewrite(
    ctx: &TcContext,
    ip: &Ipv4,
    sport: u16,
    dport: u16,
    entry: &CtEntry,
) -> Result<(), DropReason> {
    let l4 = L4Csum::of(ip.protocol, ip.l4_offset);
    csum::set_addr(
        ctx,
        IP_SRC_OFFSET,
        IP_CSUM_OFFSET,
        ip.src,
        entry.to_saddr,
        l4,
    )?;
    csum::set_addr(
        ctx,
        IP_DST_OFFSET,
        IP_CSUM_OFFSET,
        ip.dst,
        entry.to_daddr,
        l4,
    )?;
    csum::set_port(ctx, ip.l4_offset, sport, entry.to_sport, l4)?;
    csum::set_port(ctx, ip.l4_offset + 2, dport, entry.to_dport, l4)
}

/// Sends a translated packet on: into a local pod, or routed by the FIB,
/// or (pod routing off, or nothing the FIB can route) to the stack.
#[inline(always)]
fn deliver(
    ctx: &TcContext,
    ip: &Ipv4,
    entry: &CtEntry,
    config: &Config,
) -> Result<i32, DropReason> {
    if let Some(endpoint) = route::endpoint(entry.to_daddr) {
        return route::to_endpoint(ctx, &endpoint);
    }
    if config.flags & baton_abi::config::CONFIG_F_ROUTE_PODS == 0 {
        return Ok(TC_ACT_UNSPEC);
    }
    let mut routed = *ip;
    routed.src = entry.to_saddr;
    routed.dst = entry.to_daddr;
    routed.l4 = match ip.l4 {
        L4::Tcp { flags, .. } => L4::Tcp {
            src_port: entry.to_sport,
            dst_port: entry.to_dport,
            flags,
        },
        L4::Udp { .. } => L4::Udp {
            src_port: entry.to_sport,
            dst_port: entry.to_dport,
        },
        other => other,
    };
    Ok(route::forward(ctx, &routed)?.unwrap_or(TC_ACT_UNSPEC))
}

/// Translates an ICMP error about a translated flow and delivers it.
/// `Ok(None)` if it is about no translated flow.
#[inline(always)]
pub fn icmp_error(
    ctx: &TcContext,
    ip: &Ipv4,
    direction: Direction,
    config: &Config,
    now_ns: u64,
) -> Result<Option<i32>, DropReason> {
    let Some(quoted) = parse::parse_quoted(ctx, ip)? else {
        return Ok(None);
    };
    // The quoted packet left this node; reversed, it is a tuple as it
    // arrives here, in one direction or the other.
    let mut key = CtKey {
        saddr: quoted.dst,
        daddr: quoted.src,
        sport: quoted.dst_port,
        dport: quoted.src_port,
        proto: quoted.protocol,
        dir: CT_DIR_REPLY,
        _pad: 0,
    };
    let (entry, about_reply) = match conntrack::lookup(&key, now_ns) {
        // The error is about a packet sent towards a backend (after DNAT
        // and SNAT): it goes to the original client.
        Some(entry) => (entry, false),
        None => {
            key.dir = CT_DIR_ORIGINAL;
            match conntrack::lookup(&key, now_ns) {
                // About a reply sent to the client: it goes to the backend.
                Some(entry) => (entry, true),
                None => return Ok(None),
            }
        }
    };
    // SAFETY: `entry` was found by `lookup` in this run.
    let entry = unsafe { *entry };

    // The quoted packet becomes what the other side sent: the entry's
    // rewritten tuple reversed.
    let new_src = entry.to_daddr;
    let new_dst = entry.to_saddr;
    let new_sport = entry.to_dport;
    let new_dport = entry.to_sport;

    let icmp = L4Csum::of(baton_abi::IPPROTO_ICMP, ip.l4_offset).ok_or(DropReason::Unsupported)?;
    let inner_csum = quoted.offset + 10;
    quoted_addr(
        ctx,
        quoted.offset + 12,
        inner_csum,
        quoted.src,
        new_src,
        icmp,
    )?;
    quoted_addr(
        ctx,
        quoted.offset + 16,
        inner_csum,
        quoted.dst,
        new_dst,
        icmp,
    )?;
    csum::set_covered_u16(
        ctx,
        quoted.l4_offset,
        quoted.src_port.to_be_bytes(),
        new_sport.to_be_bytes(),
        icmp,
    )?;
    csum::set_covered_u16(
        ctx,
        quoted.l4_offset + 2,
        quoted.dst_port.to_be_bytes(),
        new_dport.to_be_bytes(),
        icmp,
    )?;

    // The outer header goes to whoever sent the quoted packet's original.
    let outer_dst = new_src;
    csum::set_addr(ctx, IP_DST_OFFSET, IP_CSUM_OFFSET, ip.dst, outer_dst, None)?;
    if !about_reply {
        // Towards the client: from the frontend it talked to, so no
        // internal address leaks and its stack matches the error.
        csum::set_addr(ctx, IP_SRC_OFFSET, IP_CSUM_OFFSET, ip.src, new_dst, None)?;
    }
    metrics::event(Event::IcmpErrorTranslated, direction, ctx.len());

    if let Some(endpoint) = route::endpoint(outer_dst) {
        return route::to_endpoint(ctx, &endpoint).map(Some);
    }
    if config.flags & baton_abi::config::CONFIG_F_ROUTE_PODS == 0 {
        return Ok(Some(TC_ACT_UNSPEC));
    }
    let mut routed = *ip;
    routed.dst = outer_dst;
    if !about_reply {
        routed.src = new_dst;
    }
    Ok(Some(route::forward(ctx, &routed)?.unwrap_or(TC_ACT_UNSPEC)))
}

/// Replaces an address inside the quoted header: the quoted IPv4 checksum
/// is updated, and the ICMP checksum for both changes.
#[inline(always)]
fn quoted_addr(
    ctx: &TcContext,
    offset: usize,
    inner_csum: usize,
    old: [u8; 4],
    new: [u8; 4],
    icmp: L4Csum,
) -> Result<(), DropReason> {
    if old == new {
        return Ok(());
    }
    let before: [u8; 2] = ctx.load(inner_csum).map_err(|_| DropReason::Truncated)?;
    csum::set_addr(ctx, offset, inner_csum, old, new, None)?;
    let after: [u8; 2] = ctx.load(inner_csum).map_err(|_| DropReason::Truncated)?;
    let from = u64::from(u32::from_ne_bytes(old));
    let to = u64::from(u32::from_ne_bytes(new));
    ctx.l4_csum_replace(icmp.offset, from, to, 4)
        .map_err(|_| DropReason::RewriteFailed)?;
    ctx.l4_csum_replace(
        icmp.offset,
        u64::from(u16::from_ne_bytes(before)),
        u64::from(u16::from_ne_bytes(after)),
        2,
    )
    .map_err(|_| DropReason::RewriteFailed)
}
