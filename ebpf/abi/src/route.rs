//! Pod routing: the pod endpoints of this node, the node's own addresses and
//! the other nodes' addresses.

/// Name of the pod-endpoints map.
pub const ENDPOINTS_MAP_NAME: &str = "baton_endpoints";
/// Capacity of the endpoints map: pods on this node (Kubernetes' default
/// limit is 110 per node). `BPF_MAP_TYPE_HASH`, preallocated, 4 B key +
/// 24 B value. When full, registering another pod fails with a map-full
/// error and that pod is not routed by eBPF.
pub const ENDPOINTS_MAX_ENTRIES: u32 = 4_096;

/// Name of the local-addresses map.
pub const LOCAL_ADDRS_MAP_NAME: &str = "baton_local_ip";
/// Capacity of the local-addresses map: this node's own addresses, on which
/// NodePorts answer. `BPF_MAP_TYPE_HASH`, preallocated.
pub const LOCAL_ADDRS_MAX_ENTRIES: u32 = 256;

/// Name of the map of the other nodes' addresses (their InternalIPs, from
/// the Node objects): pod traffic to them is never masqueraded.
pub const NODE_ADDRS_MAP_NAME: &str = "baton_node_ip";
/// Capacity of the node-addresses map (Kubernetes supports 5,000 nodes).
/// `BPF_MAP_TYPE_HASH`, preallocated.
pub const NODE_ADDRS_MAX_ENTRIES: u32 = 5_000;

/// Key of the endpoints map and of the address maps.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Key {
    /// The address, network order.
    pub addr: [u8; 4],
}
const _: () = assert!(size_of::<Ipv4Key>() == 4);

/// Value of the endpoints map: how to deliver to a pod of this node.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Endpoint {
    /// Interface index of the pod's host-side veth (in the node's network
    /// namespace); `bpf_redirect_peer` delivers into its peer inside the pod.
    pub ifindex: u32,
    /// Security identity of the pod (reserved for policy; 0 = none).
    pub identity: u32,
    /// MAC address of the pod's interface: destination MAC of delivered
    /// frames.
    pub pod_mac: [u8; 6],
    /// MAC address of the host-side veth: source MAC of delivered frames
    /// (the pod's gateway as it sees it).
    pub host_mac: [u8; 6],
    /// Reserved flags.
    pub flags: u32,
}
const _: () = assert!(size_of::<Endpoint>() == 24);

/// Value of the local-addresses and node-addresses maps.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LocalAddr {
    /// Interface carrying the address (informational; 0 if unknown).
    pub ifindex: u32,
    /// Reserved flags.
    pub flags: u32,
}
const _: () = assert!(size_of::<LocalAddr>() == 8);

#[cfg(feature = "user")]
#[allow(unsafe_code)]
mod pod {
    use super::*;

    // SAFETY (all impls): `#[repr(C)]`, integers and integer arrays only,
    // no implicit padding (sizes asserted), any bit pattern is valid.
    unsafe impl aya::Pod for Ipv4Key {}
    unsafe impl aya::Pod for Endpoint {}
    unsafe impl aya::Pod for LocalAddr {}
}
