//! Node-wide settings the programs read at run time (as opposed to load-time
//! globals): a one-entry array baton-node writes when it starts or when the
//! node's address changes.

/// Name of the config map (`BPF_MAP_TYPE_ARRAY` of one [`Config`]).
pub const CONFIG_MAP_NAME: &str = "baton_config";
/// The config map has exactly one entry, at index 0.
pub const CONFIG_MAX_ENTRIES: u32 = 1;

/// Default first SNAT source port. The range stays below Linux's default
/// ephemeral range (`ip_local_port_range` 32768–60999), so the node's own
/// outgoing connections (kubelet probes to pods, for instance) never share a
/// (node address, port, backend) tuple with a translated flow, and above
/// 10000 so well-known source ports are left alone.
pub const SNAT_PORT_MIN: u16 = 10_000;
/// Default last SNAT source port (see [`SNAT_PORT_MIN`]); NodePorts start at
/// 30000.
pub const SNAT_PORT_MAX: u16 = 29_999;
/// Random SNAT ports tried before a flow is dropped as
/// [`crate::DropReason::NatPortsExhausted`].
pub const SNAT_PORT_ATTEMPTS: u32 = 16;

/// Default address used as the source when a pod reaches itself through a
/// service on the packet path (hairpin): the pod would drop a packet whose
/// source is its own address. Link-local, never routed off the node
/// (Cilium uses the same address).
pub const HAIRPIN_ADDR: [u8; 4] = [169, 254, 42, 1];

/// The node routes pods itself: `bpf_redirect_peer` to local pods and FIB
/// lookups to other nodes. Without it the programs leave routing to the
/// kernel stack.
pub const CONFIG_F_ROUTE_PODS: u32 = 1 << 0;

/// Pods' traffic to addresses outside the cluster's pod range leaves with
/// the node address ([`Config::cluster_cidr_addr`]): a pod address means
/// nothing beyond the nodes.
pub const CONFIG_F_MASQUERADE: u32 = 1 << 1;

/// The config map's only value.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Config {
    /// Node address that flows from outside to remote backends are SNATed
    /// to (all-zero: no SNAT possible; such flows are dropped as
    /// [`crate::DropReason::NoRoute`]).
    pub snat_addr: [u8; 4],
    /// Source address for hairpin flows (see [`HAIRPIN_ADDR`]).
    pub hairpin_addr: [u8; 4],
    /// First SNAT port.
    pub snat_port_min: u16,
    /// Last SNAT port.
    pub snat_port_max: u16,
    /// `CONFIG_F_*` bits.
    pub flags: u32,
    /// The cluster's pod range (kube-proxy's `--cluster-cidr`): its network
    /// address and mask. Pod traffic inside it is never masqueraded.
    pub cluster_cidr_addr: [u8; 4],
    pub cluster_cidr_mask: [u8; 4],
}
const _: () = assert!(size_of::<Config>() == 24);

impl Default for Config {
    fn default() -> Self {
        Self {
            snat_addr: [0; 4],
            hairpin_addr: HAIRPIN_ADDR,
            snat_port_min: SNAT_PORT_MIN,
            snat_port_max: SNAT_PORT_MAX,
            flags: 0,
            cluster_cidr_addr: [0; 4],
            cluster_cidr_mask: [0; 4],
        }
    }
}

#[cfg(feature = "user")]
#[allow(unsafe_code)]
mod pod {
    // SAFETY: `#[repr(C)]`, integers and integer arrays only, no implicit
    // padding (size asserted), any bit pattern is valid.
    unsafe impl aya::Pod for super::Config {}
}
