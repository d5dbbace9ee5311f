//! baton's in-kernel programs, one object loaded by baton-node.
//!
//! Entry points only: each composes an attach-point module (`uplink`) from
//! concern modules (`parse`, `metrics`) and turns an `Err(reason)` into a
//! counted outcome.
//!
//! The programs are built for `bpfel-unknown-none` by baton-node's build
//! script. On the host the crate still builds (with std) so that clippy and
//! rustdoc see it like every other member, and the parser's unit tests run;
//! that build has nothing to run.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
// aya's program and map attributes expand to `#[unsafe(no_mangle)]` and
// `#[unsafe(link_section)]`; map value access is a raw pointer. Each unsafe
// block carries its own `SAFETY:` comment.
#![allow(unsafe_code)]

mod metrics;
mod parse;
mod uplink;

use aya_ebpf::{macros::classifier, programs::TcContext};
use baton_abi::Direction;

/// tc ingress on the node uplink.
#[classifier]
pub fn uplink_ingress(ctx: TcContext) -> i32 {
    match uplink::try_observe(&ctx, Direction::Ingress) {
        Ok(verdict) => verdict,
        Err(reason) => uplink::pass_malformed(&ctx, Direction::Ingress, reason),
    }
}

/// tc egress on the node uplink.
#[classifier]
pub fn uplink_egress(ctx: TcContext) -> i32 {
    match uplink::try_observe(&ctx, Direction::Egress) {
        Ok(verdict) => verdict,
        Err(reason) => uplink::pass_malformed(&ctx, Direction::Egress, reason),
    }
}

/// The kernel only lets GPL-compatible programs call GPL-only helpers (such as
/// `bpf_fib_lookup`, which pod routing needs); this crate is therefore
/// dual-licensed MIT/GPL, as its manifest says.
#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("baton-ebpf holds kernel programs; baton-node embeds and loads them");
    std::process::exit(2);
}
