//! Conntrack of translated flows (the packet path: NodePort, ExternalIP and
//! LoadBalancer traffic on the uplink, per-packet service translation on pod
//! veths).
//!
//! A translated flow has two entries, each keyed by a tuple *as it arrives
//! at this node*, each saying what to rewrite it to:
//!
//! - the **original** entry, keyed by the client's packet before translation
//!   (`client:port → frontend:port`), rewrites it to
//!   (`snat-or-client → backend`);
//! - the **reply** entry, keyed by the backend's reply as it arrives
//!   (`backend → snat-or-client`), rewrites it back to
//!   (`frontend → client`).
//!
//! The reply entry's key is also the SNAT port reservation: a port is free
//! for a (node address, backend) pair exactly when no reply entry has it, and
//! it is claimed by inserting the reply entry with `BPF_NOEXIST`. There is
//! therefore no separate NAT map that could disagree with conntrack.
//!
//! An ICMP error about a flow quotes a packet this node sent; its quoted
//! tuple reversed is one of the two keys, which tells how to translate it.

/// Name of the conntrack map.
pub const CT_MAP_NAME: &str = "baton_ct";
/// Capacity of the conntrack map: two entries per translated flow.
/// `BPF_MAP_TYPE_LRU_HASH`, 16 B key + 40 B value, preallocated (~24 MiB).
/// When full, the least recently used entry is evicted; the next packet of
/// that flow is then handled as new (a TCP segment other than a SYN is
/// dropped as [`crate::DropReason::ConntrackMiss`]). An insert that fails
/// outright is counted as [`crate::DropReason::ConntrackFull`].
pub const CT_MAX_ENTRIES: u32 = 262_144;

/// Lifetime of a TCP flow that has seen only its SYN (seconds; Cilium's
/// `CT_SYN_TIMEOUT`).
pub const CT_TIMEOUT_TCP_SYN_S: u32 = 60;
/// Lifetime of an established TCP flow after its last packet (seconds;
/// kube-proxy's `--conntrack-tcp-timeout-established` default).
pub const CT_TIMEOUT_TCP_ESTABLISHED_S: u32 = 86_400;
/// Lifetime of a TCP flow after a FIN or RST (seconds; Cilium's
/// `CT_CLOSE_TIMEOUT`), long enough for the last retransmissions.
pub const CT_TIMEOUT_TCP_CLOSING_S: u32 = 10;
/// Lifetime of a UDP flow after its last packet (seconds).
pub const CT_TIMEOUT_UDP_S: u32 = 60;
/// An entry's expiry is pushed forward only when it would move by more than
/// this (nanoseconds), so a busy flow does not write its entry on every
/// packet.
pub const CT_REFRESH_GRANULARITY_NS: u64 = 1_000_000_000;

/// [`CtKey::dir`] of an original-direction entry.
pub const CT_DIR_ORIGINAL: u8 = 1;
/// [`CtKey::dir`] of a reply-direction entry.
pub const CT_DIR_REPLY: u8 = 2;

/// Key of the conntrack map: a tuple as it arrives at this node.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CtKey {
    /// Source address.
    pub saddr: [u8; 4],
    /// Destination address.
    pub daddr: [u8; 4],
    /// Source port (ICMP: 0).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// [`CT_DIR_ORIGINAL`] or [`CT_DIR_REPLY`].
    pub dir: u8,
    pub _pad: u16,
}
const _: () = assert!(size_of::<CtKey>() == 16);

/// TCP state (and, for UDP, just "open").
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtState {
    /// TCP: SYN seen, no reply yet. UDP: open.
    New = 1,
    /// TCP: the backend answered; the flow is established.
    Established = 2,
    /// TCP: a FIN or RST was seen in either direction.
    Closing = 3,
}

impl CtState {
    /// The state with this wire value, if it is one.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::New),
            2 => Some(Self::Established),
            3 => Some(Self::Closing),
            _ => None,
        }
    }

    /// Short stable name, as shown in dumps.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Established => "established",
            Self::Closing => "closing",
        }
    }
}

/// The entry rewrites the source (SNAT to the node, or reverse of DNAT).
pub const CT_F_SNAT: u8 = 1 << 0;
/// The entry rewrites the destination (DNAT to a backend, or reverse of
/// SNAT).
pub const CT_F_DNAT: u8 = 1 << 1;
/// The flow is counted in [`crate::lb::BackendConns::flows`] of
/// `backend_id` (original entry only; cleared when uncounted).
pub const CT_F_COUNTED: u8 = 1 << 2;
/// The backend is on this node.
pub const CT_F_LOCAL_BACKEND: u8 = 1 << 3;
/// A packet was seen in the reply direction.
pub const CT_F_SEEN_REPLY: u8 = 1 << 4;
/// A masqueraded flow (a pod reaching an address outside the cluster with
/// the node address): no service, no backend.
pub const CT_F_MASQUERADE: u8 = 1 << 5;

/// Value of the conntrack map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtEntry {
    /// Source address to write.
    pub to_saddr: [u8; 4],
    /// Destination address to write.
    pub to_daddr: [u8; 4],
    /// Source port to write.
    pub to_sport: u16,
    /// Destination port to write.
    pub to_dport: u16,
    /// The backend of the flow.
    pub backend_id: u32,
    /// The service of the flow.
    pub service_id: u32,
    /// A [`CtState`] value.
    pub state: u8,
    /// `CT_F_*` bits.
    pub flags: u8,
    pub _pad: u16,
    /// `CLOCK_MONOTONIC` time (ns) after which the entry is dead.
    pub expires_ns: u64,
    /// `CLOCK_MONOTONIC` time (ns) the flow was created.
    pub created_ns: u64,
}
const _: () = assert!(size_of::<CtEntry>() == 40);

#[cfg(feature = "user")]
#[allow(unsafe_code)]
mod pod {
    use super::*;

    // SAFETY (both impls): `#[repr(C)]`, integers and integer arrays only,
    // no implicit padding (sizes asserted), any bit pattern is valid.
    unsafe impl aya::Pod for CtKey {}
    unsafe impl aya::Pod for CtEntry {}
}
