//! tc programs on the node uplink (the device that carries the node address).
//!
//! For now they observe: every frame is parsed and counted by reason and
//! direction, then handed on unchanged. Later concerns (NodePort, reverse NAT,
//! conntrack) slot in between parsing and the verdict.
//!
//! The verdict is `TC_ACT_UNSPEC`: on tcx that is `TCX_NEXT` (run the next
//! program attached to the hook, then continue normally), and for a legacy
//! `clsact` filter in direct-action mode it means "no opinion", which also
//! lets the packet continue. Either way programs attached after ours still see
//! the packet; `TC_ACT_OK` would end the chain.

use aya_ebpf::{bindings::TC_ACT_UNSPEC, programs::TcContext};
use baton_abi::{Direction, DropReason, MetricsKey};

use crate::{metrics, parse};

/// Ingress and egress share the same logic with a different direction.
#[inline(always)]
pub fn try_observe(ctx: &TcContext, direction: Direction) -> Result<i32, DropReason> {
    let _packet = parse::parse(ctx)?;
    metrics::count(MetricsKey::forwarded(direction), ctx.len());
    Ok(TC_ACT_UNSPEC)
}

/// What the uplink does with a frame it could not parse: count it under the
/// reason and let it through, since the uplink does not translate anything
/// yet and the stack drops such frames itself.
#[inline(always)]
pub fn pass_malformed(ctx: &TcContext, direction: Direction, reason: DropReason) -> i32 {
    metrics::count(MetricsKey::dropped(reason, direction), ctx.len());
    TC_ACT_UNSPEC
}
