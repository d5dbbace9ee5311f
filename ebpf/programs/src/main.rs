//! baton's in-kernel programs, one object loaded by baton-node.
//!
//! Entry points only: each calls its attach-point
//! module (`uplink`, `pod`, `sock`), which composes concern modules (`parse`,
//! `lb`, `conntrack`, `nat`, `reject`, `route`, `csum`, `metrics`).
//!
//! The programs are built for `bpfel-unknown-none` by baton-node's build
//! script. On the host the crate still builds (with std) so that clippy and
//! rustdoc see it like every other member, and the unit tests of the pure
//! parts run; that build has nothing to run.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
// Fetching atomic adds need the compiler intrinsic on this target (see
// `atomic.rs`); only the kernel build, which uses nightly, enables it.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]
// aya's program and map attributes expand to `#[unsafe(no_mangle)]` and
// `#[unsafe(link_section)]`; map value access is a raw pointer. Each unsafe
// block carries its own `SAFETY:` comment.
#![allow(unsafe_code)]

mod atomic;
mod config;
mod conntrack;
mod csum;
mod lb;
mod metrics;
mod nat;
mod parse;
mod pod;
mod reject;
mod route;
mod sock;
mod uplink;

use aya_ebpf::{
    macros::{cgroup_sock, cgroup_sock_addr, classifier},
    programs::{SockAddrContext, SockContext, TcContext},
};

/// tc ingress on the node uplink.
#[classifier]
pub fn uplink_ingress(ctx: TcContext) -> i32 {
    uplink::ingress(&ctx)
}

/// tc egress on the node uplink.
#[classifier]
pub fn uplink_egress(ctx: TcContext) -> i32 {
    uplink::egress(&ctx)
}

/// tc ingress on a pod's host-side veth.
#[classifier]
pub fn pod_ingress(ctx: TcContext) -> i32 {
    pod::from_pod(&ctx)
}

/// cgroup `connect4`.
#[cgroup_sock_addr(connect4)]
pub fn sock_connect4(ctx: SockAddrContext) -> i32 {
    sock::connect4(&ctx)
}

/// cgroup `sendmsg4`.
#[cgroup_sock_addr(sendmsg4)]
pub fn sock_sendmsg4(ctx: SockAddrContext) -> i32 {
    sock::sendmsg4(&ctx)
}

/// cgroup `recvmsg4`.
#[cgroup_sock_addr(recvmsg4)]
pub fn sock_recvmsg4(ctx: SockAddrContext) -> i32 {
    sock::recvmsg4(&ctx)
}

/// cgroup `getpeername4`.
#[cgroup_sock_addr(getpeername4)]
pub fn sock_getpeername4(ctx: SockAddrContext) -> i32 {
    sock::getpeername4(&ctx)
}

/// cgroup `sock_release`.
#[cgroup_sock(sock_release)]
pub fn sock_release(ctx: SockContext) -> i32 {
    sock::release(&ctx)
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
