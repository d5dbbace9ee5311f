//! baton's node agent: the kubelet (CRI, pods, node status, logs/exec
//! server), the CNI plugin, pod networking, the eBPF dataplane loader and
//! the service proxy that programs it.
//!
//! Its layers, bottom first (docs/architecture.md draws them, and
//! `tests/layers.rs` checks that imports only point down): system calls
//! ([`sys`]) and metrics rendering ([`metrics`]); the eBPF dataplane
//! ([`dataplane`]), the CNI plugin's library ([`cni`]), the container
//! runtime client ([`cri`]) and the node's credentials ([`credentials`]); the kubelet ([`kubelet`]), the service proxy
//! ([`proxy`]) and pod networking ([`podnet`]); and the start-up of the
//! proxy and pod networking on one dataplane ([`agent`]).

pub mod agent;
pub mod cni;
pub mod credentials;
pub mod cri;
pub mod dataplane;
pub mod kubelet;
pub mod metrics;
pub mod podnet;
pub mod proxy;
// The only module of baton-node with `unsafe` code (raw system calls).
#[allow(unsafe_code)]
pub mod sys;

/// baton's eBPF object (all programs and maps), built by `build.rs` from
/// `ebpf/programs` and embedded so the binary is self-contained.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/baton"));
