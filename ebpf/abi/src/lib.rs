//! The ABI shared by baton's eBPF programs and baton-node.
//!
//! Everything a map holds is a named `#[repr(C)]` type defined here, with any
//! padding spelled out as a field and its size asserted at compile time, so the
//! kernel side and the userspace side cannot drift. Map names and default
//! capacities are constants here too (baton-node may change a capacity at load
//! time; the pin checks then compare against the configured size). This crate
//! holds no logic beyond converting its own enums to and from their wire
//! values.
//!
//! Conventions for every type here:
//! - IPv4 addresses are `[u8; 4]` in network order (what
//!   `Ipv4Addr::octets` returns and what a packet carries).
//! - Ports are `u16` in host order; the programs convert at the edge.
//! - Ids are `u32` and 0 never names anything, so a zeroed value is
//!   recognisably empty.
//!
//! With the `user` feature the types implement `aya::Pod`, so baton-node opens
//! the maps through aya's typed API, which checks key and value sizes against
//! the loaded object.
#![cfg_attr(not(test), no_std)]

pub mod config;
pub mod conntrack;
pub mod lb;
pub mod metrics;
pub mod route;
pub mod sock;

pub use metrics::{
    Direction, DropReason, METRICS_MAP_MAX_ENTRIES, METRICS_MAP_NAME, MetricsKey, MetricsValue,
    REASON_FORWARDED,
};

/// IP protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// Maps that baton-node pins under its bpffs directory so that their contents
/// outlive a restart of baton-node. Each is pinned at `<pin dir>/<name>`.
///
/// Every map that holds state a restarted agent must find again is here:
/// the services it programmed (so established flows keep their backend and
/// the reconcile reuses ids), conntrack (so translated flows keep being
/// translated), socket state (so connection counts and `getpeername` stay
/// right for sockets opened before the restart), pod endpoints and counters.
pub const PINNED_MAPS: &[&str] = &[
    METRICS_MAP_NAME,
    lb::SERVICES_MAP_NAME,
    lb::SLOTS_MAP_NAME,
    lb::BACKENDS_MAP_NAME,
    lb::MEMBERS_MAP_NAME,
    lb::MAGLEV_MAP_NAME,
    lb::AFFINITY_MAP_NAME,
    lb::BACKEND_CONNS_MAP_NAME,
    lb::RR_MAP_NAME,
    lb::SERVICE_STATS_MAP_NAME,
    sock::REVSK_MAP_NAME,
    sock::SOCK_STATE_MAP_NAME,
    conntrack::CT_MAP_NAME,
    route::ENDPOINTS_MAP_NAME,
    route::LOCAL_ADDRS_MAP_NAME,
    route::NODE_ADDRS_MAP_NAME,
    config::CONFIG_MAP_NAME,
];

/// Names of the programs in the eBPF object, as baton-node looks them up.
pub mod programs {
    /// tc classifier on the node uplink, ingress side.
    pub const UPLINK_INGRESS: &str = "uplink_ingress";
    /// tc classifier on the node uplink, egress side.
    pub const UPLINK_EGRESS: &str = "uplink_egress";
    /// tc classifier on the ingress of a pod's host-side veth (packets the
    /// pod sends).
    pub const POD_INGRESS: &str = "pod_ingress";
    /// cgroup `connect4`: socket-level service translation of TCP and
    /// connected-UDP sockets.
    pub const SOCK_CONNECT4: &str = "sock_connect4";
    /// cgroup `sendmsg4`: translation of unconnected UDP sends.
    pub const SOCK_SENDMSG4: &str = "sock_sendmsg4";
    /// cgroup `recvmsg4`: UDP replies show the service address.
    pub const SOCK_RECVMSG4: &str = "sock_recvmsg4";
    /// cgroup `getpeername4`: a translated socket's peer is the service.
    pub const SOCK_GETPEERNAME4: &str = "sock_getpeername4";
    /// cgroup `sock_release`: closes the books of a translated socket
    /// (connection counts, reverse entries).
    pub const SOCK_RELEASE: &str = "sock_release";
}

/// Names of global variables in the object that baton-node sets at load time
/// (read-only data: the verifier sees them as constants).
pub mod globals {
    /// `u32`: number of entries of one Maglev lookup table (a prime). Must
    /// match how baton-node sized and filled [`crate::lb::MAGLEV_MAP_NAME`].
    pub const MAGLEV_TABLE_SIZE: &str = "BATON_MAGLEV_TABLE_SIZE";
}
