//! baton's node agent: the eBPF dataplane loader, and later the kubelet and
//! the service proxy.

pub mod dataplane;
// The only module of baton-node with `unsafe` code (raw system calls).
#[allow(unsafe_code)]
pub mod sys;

/// baton's eBPF object (all programs and maps), built by `build.rs` from
/// `ebpf/programs` and embedded so the binary is self-contained.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/baton"));
