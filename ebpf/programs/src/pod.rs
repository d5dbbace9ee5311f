//! tc program on the ingress of a pod's host-side veth: everything the pod
//! sends passes here first (Cilium's `bpf_lxc` "from-container").
//!
//! In order:
//! 1. an ARP request from the pod is answered with the veth's MAC (the
//!    node is every pod's next hop; no proxy-ARP sysctl needed);
//! 2. a reply of a translated flow (the pod is the local backend of a
//!    NodePort flow, or answers a hairpin) is translated back
//!    ([`nat::reverse`]);
//! 3. a packet to a service frontend that socket LB did not translate (the
//!    socket hooks are not attached for this pod, a raw socket, a pod
//!    reaching its own service) is translated per packet, sharing
//!    conntrack with the uplink ([`nat::forward`]);
//!    A connection the pod opens to a pod's own address on a tuple a closed
//!    translated flow used drops that flow's conntrack entries
//!    ([`conntrack::forget_reused_tuple`]);
//! 4. an ICMP error the pod sends about a translated flow is translated;
//! 5. a packet to an address outside the cluster's pod range is
//!    masqueraded to the node address ([`nat::masquerade`]);
//! 6. with pod routing on: a packet for a pod of this node is delivered
//!    with `bpf_redirect_peer`, anything else is routed with a FIB lookup
//!    and `bpf_redirect_neigh` (native routes: a route per remote node's
//!    pod CIDR via that node's address) — no bridge, no iptables.
//!
//! Without pod routing, and for what the FIB leaves to the host (the
//! node's own addresses), the packet goes on to the stack.

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::bpf_ktime_get_ns,
    programs::TcContext,
};
use baton_abi::{Direction, DropReason, config::CONFIG_F_ROUTE_PODS, metrics::Event};

use crate::{
    config, conntrack,
    lb::{self, Origin},
    metrics, nat,
    parse::{self, Packet},
    route,
};

/// tc ingress of a pod's host-side veth.
#[inline(always)]
pub fn from_pod(ctx: &TcContext) -> i32 {
    match try_from_pod(ctx) {
        Ok(verdict) => verdict,
        Err(reason) => {
            metrics::dropped(reason, Direction::Ingress, ctx.len());
            TC_ACT_SHOT
        }
    }
}

#[inline(always)]
fn try_from_pod(ctx: &TcContext) -> Result<i32, DropReason> {
    let ip = match parse::parse(ctx) {
        Ok(Packet::Ipv4(ip)) => ip,
        Ok(Packet::Other { ether_type }) => {
            if ether_type == route::ETH_P_ARP
                && let Some(verdict) = route::answer_arp(ctx)?
            {
                return Ok(verdict);
            }
            metrics::forwarded(Direction::Ingress, ctx.len());
            return Ok(TC_ACT_UNSPEC);
        }
        Err(reason) => {
            // The stack drops it too; counted, not translated.
            metrics::dropped(reason, Direction::Ingress, ctx.len());
            return Ok(TC_ACT_UNSPEC);
        }
    };
    let config = config::get();
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };

    if let Some((_, dport)) = ip.l4.ports() {
        if let Some(verdict) = nat::reverse(ctx, &ip, Direction::Ingress, &config, now)? {
            return Ok(verdict);
        }
        if let Some(service) = lb::lookup(ip.dst, dport, ip.protocol, Origin::Inside) {
            return nat::forward(
                ctx,
                &ip,
                &service,
                Origin::Inside,
                Direction::Ingress,
                &config,
                now,
            );
        }
        conntrack::forget_reused_tuple(&ip, now);
        if let Some(verdict) = nat::masquerade(ctx, &ip, &config, now)? {
            return Ok(verdict);
        }
    } else if ip.is_icmp_error()
        && let Some(verdict) = nat::icmp_error(ctx, &ip, Direction::Ingress, &config, now)?
    {
        return Ok(verdict);
    }

    if config.flags & CONFIG_F_ROUTE_PODS != 0
        && let Some(verdict) = route::deliver(ctx, &ip)?
    {
        metrics::event(Event::Redirected, Direction::Ingress, ctx.len());
        return Ok(verdict);
    }
    metrics::forwarded(Direction::Ingress, ctx.len());
    Ok(TC_ACT_UNSPEC)
}
