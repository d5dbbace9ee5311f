//! baton's node agent: the kubelet (CRI, pods, node status, logs/exec
//! server), the CNI plugin, the eBPF dataplane loader and the service
//! proxy that programs it.

pub mod cni;
pub mod cri;
pub mod dataplane;
pub mod kubelet;
pub mod proxy;
// The only module of baton-node with `unsafe` code (raw system calls).
#[allow(unsafe_code)]
pub mod sys;

/// baton's eBPF object (all programs and maps), built by `build.rs` from
/// `ebpf/programs` and embedded so the binary is self-contained.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/baton"));
