// The programs are built for `bpfel-unknown-none` by baton-node's build script.
// On the host the crate still builds (with std) so that clippy and rustdoc see
// it like every other member; that build has nothing to run.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![allow(unsafe_code)]

use aya_ebpf::{macros::classifier, programs::TcContext};

#[classifier]
pub fn uplink_ingress(_ctx: TcContext) -> i32 {
    0
}

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
