//! tc programs on the node uplink (the device that carries the node address
//! and reaches other nodes and outside clients).
//!
//! Ingress, in order:
//! 1. a packet to an external frontend (NodePort on a local address,
//!    ExternalIP, LoadBalancer IP) is translated ([`nat::forward`]):
//!    DNAT to a local backend, or DNAT+SNAT to a backend on another node;
//! 2. a reply of a flow this node translated (the backend answering the
//!    SNAT address, or a remote backend answering a local pod) is
//!    translated back ([`nat::reverse`]); a connection opened from
//!    outside straight to a pod on a tuple a closed translated flow used
//!    drops that flow's conntrack entries ([`conntrack::forget_reused_tuple`]);
//! 3. an ICMP error about a translated flow is translated too;
//! 4. with pod routing on, a packet for a local pod is delivered with
//!    `bpf_redirect_peer`.
//!
//! Everything else — and every frame the parser rejects, counted under its
//! reason — is passed on untouched with `TC_ACT_UNSPEC`: on tcx that is
//! `TCX_NEXT` (the next program, then the stack), for a classic `clsact`
//! filter "no opinion". ClusterIPs are never served from outside.
//!
//! Egress observes and counts: replies of local backends are translated
//! back on the pod's veth before they get here.

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

/// tc ingress.
#[inline(always)]
pub fn ingress(ctx: &TcContext) -> i32 {
    match try_ingress(ctx) {
        Ok(verdict) => verdict,
        Err(reason) => drop(ctx, Direction::Ingress, reason),
    }
}

#[inline(always)]
fn try_ingress(ctx: &TcContext) -> Result<i32, DropReason> {
    let ip = match parse::parse(ctx) {
        Ok(Packet::Ipv4(ip)) => ip,
        Ok(Packet::Other { .. }) => {
            metrics::forwarded(Direction::Ingress, ctx.len());
            return Ok(TC_ACT_UNSPEC);
        }
        Err(reason) => return Ok(pass_malformed(ctx, Direction::Ingress, reason)),
    };
    let config = config::get();
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };

    if let Some((_, dport)) = ip.l4.ports() {
        if let Some(service) = lb::lookup(ip.dst, dport, ip.protocol, Origin::Outside) {
            return nat::forward(
                ctx,
                &ip,
                &service,
                Origin::Outside,
                Direction::Ingress,
                &config,
                now,
            );
        }
        if let Some(verdict) = nat::reverse(ctx, &ip, Direction::Ingress, &config, now)? {
            return Ok(verdict);
        }
        conntrack::forget_reused_tuple(&ip, now);
    } else if ip.is_icmp_error()
        && let Some(verdict) = nat::icmp_error(ctx, &ip, Direction::Ingress, &config, now)?
    {
        return Ok(verdict);
    }

    if config.flags & CONFIG_F_ROUTE_PODS != 0
        && let Some(endpoint) = route::endpoint(ip.dst)
    {
        let verdict = route::to_endpoint(ctx, &endpoint)?;
        metrics::event(Event::Redirected, Direction::Ingress, ctx.len());
        return Ok(verdict);
    }
    metrics::forwarded(Direction::Ingress, ctx.len());
    Ok(TC_ACT_UNSPEC)
}

/// tc egress: counts.
#[inline(always)]
pub fn egress(ctx: &TcContext) -> i32 {
    match parse::parse(ctx) {
        Ok(_) => {
            metrics::forwarded(Direction::Egress, ctx.len());
            TC_ACT_UNSPEC
        }
        Err(reason) => pass_malformed(ctx, Direction::Egress, reason),
    }
}

/// What the uplink does with a frame it could not parse: count it under the
/// reason and let it through. It cannot be a translated flow (its headers
/// are not all there), and the stack drops it itself.
#[inline(always)]
pub fn pass_malformed(ctx: &TcContext, direction: Direction, reason: DropReason) -> i32 {
    metrics::dropped(reason, direction, ctx.len());
    TC_ACT_UNSPEC
}

/// Drops a packet that was to be translated or routed but cannot be,
/// counting why.
#[inline(always)]
pub fn drop(ctx: &TcContext, direction: Direction, reason: DropReason) -> i32 {
    metrics::dropped(reason, direction, ctx.len());
    TC_ACT_SHOT
}
