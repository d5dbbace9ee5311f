#![no_std]
#![no_main]
#![allow(unsafe_code)]

use aya_ebpf::{macros::classifier, programs::TcContext};

#[classifier]
pub fn uplink_ingress(_ctx: TcContext) -> i32 {
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
