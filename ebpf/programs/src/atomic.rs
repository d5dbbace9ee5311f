//! Atomic adds on map values shared between CPUs (round-robin positions,
//! connection counts).
//!
//! The `bpfel-unknown-none` target declares no compare-and-swap, so
//! `core::sync::atomic` offers no `fetch_add` there; the compiler intrinsic
//! it would use underneath is called directly and becomes one BPF
//! `atomic_fetch_add` instruction (ISA v3, which baton-node's build script
//! selects). The ordering is `SeqCst`: BPF's fetching atomics are fully
//! ordered anyway, and LLVM lowers a relaxed fetch-add whose result is used
//! to the non-fetching instruction, losing the previous value. The host
//! build (clippy, unit tests) never runs the programs and uses the standard
//! atomics instead.

/// Adds `value` to `*target` atomically and returns the previous value.
///
/// # Safety
///
/// `target` must point to a live, 4-byte aligned `u32` (a map value from a
/// successful lookup).
#[inline(always)]
pub unsafe fn fetch_add(target: *mut u32, value: u32) -> u32 {
    #[cfg(target_arch = "bpf")]
    {
        use core::intrinsics::{AtomicOrdering, atomic_xadd};
        // SAFETY: guaranteed by the caller.
        unsafe { atomic_xadd::<u32, u32, { AtomicOrdering::SeqCst }>(target, value) }
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        use core::sync::atomic::{AtomicU32, Ordering};
        // SAFETY: guaranteed by the caller.
        unsafe { AtomicU32::from_ptr(target) }.fetch_add(value, Ordering::SeqCst)
    }
}

/// Subtracts one from `*target` unless it is already zero, so a counter
/// never wraps below zero when an uncount races a reset by baton-node.
///
/// # Safety
///
/// As for [`fetch_add`].
#[inline(always)]
pub unsafe fn decrement(target: *mut u32) {
    // SAFETY: guaranteed by the caller.
    if unsafe { core::ptr::read_volatile(target) } > 0 {
        // SAFETY: as above; adding u32::MAX is subtracting one.
        unsafe { fetch_add(target, u32::MAX) };
    }
}
