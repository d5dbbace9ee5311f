//! The ABI shared by baton's eBPF programs and baton-node.
//!
//! Everything a map holds is a named `#[repr(C)]` type defined here, with any
//! padding spelled out as a field and its size asserted at compile time, so the
//! kernel side and the userspace side cannot drift. Map names and capacities are
//! constants here too. This crate holds no logic beyond converting its own
//! enums to and from their wire values.
//!
//! With the `user` feature the types implement `aya::Pod`, so baton-node opens
//! the maps through aya's typed API, which checks key and value sizes against
//! the loaded object.
#![cfg_attr(not(test), no_std)]

pub mod metrics;

pub use metrics::{
    Direction, DropReason, METRICS_MAP_MAX_ENTRIES, METRICS_MAP_NAME, MetricsKey, MetricsValue,
    REASON_FORWARDED,
};

/// Maps that baton-node pins under its bpffs directory so that their contents
/// outlive a restart of baton-node. Each is pinned at `<pin dir>/<name>`.
pub const PINNED_MAPS: &[&str] = &[METRICS_MAP_NAME];

/// Names of the programs in the eBPF object, as baton-node looks them up.
pub mod programs {
    /// tc classifier on the node uplink, ingress side.
    pub const UPLINK_INGRESS: &str = "uplink_ingress";
    /// tc classifier on the node uplink, egress side.
    pub const UPLINK_EGRESS: &str = "uplink_egress";
}
