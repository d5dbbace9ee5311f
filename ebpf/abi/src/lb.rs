//! Service load-balancing maps: frontends (one "service" entry per address,
//! port and protocol a service answers on), backend slots, backends, Maglev
//! tables, session affinity, per-backend connection counts and per-service
//! counters.
//!
//! # How a lookup goes
//!
//! 1. [`ServiceKey`] (frontend address, port, protocol, scope) →
//!    [`ServiceValue`]: the service id, how many backends this frontend may
//!    use, which bank of slots holds them, the selection algorithm and flags.
//! 2. A slot is chosen (random, round-robin, least-connections), and
//!    [`SlotKey`] (service id, bank, slot) → [`SlotValue`] names the backend
//!    id; a Maglev service instead reads the backend id from its table at
//!    the flow's hash.
//! 3. [`BACKENDS_MAP_NAME`]: backend id → [`Backend`] (address, port).
//!
//! # Updates never expose a half-written service
//!
//! Slots come in two banks per service. To change a service's backends,
//! baton-node writes the complete new backend list into the bank *not* in
//! use (and, for Maglev, a complete new table into a free table), then
//! rewrites each frontend's [`ServiceValue`] to point at the new bank (one
//! atomic hash-map update each: a reader sees the old or the new value,
//! never a mix), and only then deletes the old bank's slots and frees the old
//! table. Shrinking is the same operation. A frontend therefore always names
//! a bank whose slots `1..=count` all exist. The hash maps are created with
//! `BPF_F_NO_PREALLOC`, so a replaced element is freed only after an RCU grace
//! period and a program that looked it up just before the flip still reads a
//! whole, consistent value.
//!
//! Backends are written before any slot names them and deleted after the
//! last slot naming them is gone; ids are recycled first-in first-out, so an
//! id freed now is the last one handed out again.

/// Name of the services (frontends) map.
pub const SERVICES_MAP_NAME: &str = "baton_lb_fe";
/// Capacity of the services map: frontends, not services (a service with a
/// ClusterIP, a NodePort and one LoadBalancer IP has three; two more if its
/// internal and external views differ). `BPF_MAP_TYPE_HASH` without
/// preallocation: memory is used per entry (8 B key + 24 B value + about
/// 50 B of kernel overhead), so 65,536 frontends cost ~5 MiB when all used.
/// When full, baton-node's update fails with a map-full error for that
/// service (reported; other services are unaffected).
pub const SERVICES_MAX_ENTRIES: u32 = 65_536;

/// Name of the backend-slots map.
pub const SLOTS_MAP_NAME: &str = "baton_lb_slots";
/// Capacity of the slots map: one entry per (service, backend) in the bank in
/// use, plus the other bank while a service is being switched. Hash without
/// preallocation, ~70 B per entry: 262,144 slots (10,000 services × 10
/// backends, twice over) cost ~18 MiB when all used. When full, the update
/// of that service fails before anything the datapath reads has changed.
pub const SLOTS_MAX_ENTRIES: u32 = 262_144;

/// Name of the backends map.
pub const BACKENDS_MAP_NAME: &str = "baton_lb_be";
/// Capacity of the backends map: distinct (address, port, protocol)
/// backends. Backend ids are `1..=capacity-1`, and they index
/// [`BACKEND_CONNS_MAP_NAME`], which has the same capacity. Hash without
/// preallocation, ~70 B per entry.
pub const BACKENDS_MAX_ENTRIES: u32 = 65_536;

/// Name of the service-membership map.
pub const MEMBERS_MAP_NAME: &str = "baton_lb_member";
/// Capacity of the membership map: one entry per (service, backend) the
/// service may currently use. Session affinity checks it before reusing a
/// remembered backend, so a backend removed from a service is never chosen
/// for it again through an old affinity entry. Same sizing as the slots.
pub const MEMBERS_MAX_ENTRIES: u32 = 262_144;

/// Name of the Maglev lookup-table map.
pub const MAGLEV_MAP_NAME: &str = "baton_lb_maglev";
/// Default number of entries per Maglev table (`M`). Must be prime so that
/// every backend's permutation visits every entry. The Maglev paper keeps
/// the imbalance under about 1 % with `M` ≥ 100 × backends; 1,021 suits up
/// to ~10 backends with that bound and stays usable (a few percent) up to
/// ~100. baton-node can load a larger prime.
pub const MAGLEV_TABLE_SIZE: u32 = 1_021;
/// Default number of Maglev tables. A frontend view (all backends, or the
/// node-local ones for a Local traffic policy) of a Maglev service uses one
/// table, plus one more while it is being replaced.
pub const MAGLEV_TABLES: u32 = 1_024;
/// Capacity of the Maglev map: `BPF_MAP_TYPE_ARRAY` of
/// `MAGLEV_TABLES × MAGLEV_TABLE_SIZE` [`MaglevEntry`]s, flat, so one lookup
/// finds the backend: entry `table × M + hash % M`. Preallocated: 4 B per
/// entry, 4 MiB at the defaults. baton-node sizes it from the configured
/// table count and size; when every table is taken, programming a Maglev
/// service fails with a map-full error.
pub const MAGLEV_MAX_ENTRIES: u32 = MAGLEV_TABLES * MAGLEV_TABLE_SIZE;

/// Name of the session-affinity map.
pub const AFFINITY_MAP_NAME: &str = "baton_lb_aff";
/// Capacity of the affinity map. `BPF_MAP_TYPE_LRU_HASH`: when full, the
/// least recently used client's entry is evicted, so that client may be sent
/// to another backend on its next connection (as if its timeout had
/// passed). 32 B per entry plus overhead, preallocated: ~6 MiB.
pub const AFFINITY_MAX_ENTRIES: u32 = 65_536;

/// Name of the per-backend connection-count map.
pub const BACKEND_CONNS_MAP_NAME: &str = "baton_lb_conns";
/// `BPF_MAP_TYPE_ARRAY` indexed by backend id, so it has the backends map's
/// capacity (8 B per backend, 512 KiB).
pub const BACKEND_CONNS_MAX_ENTRIES: u32 = BACKENDS_MAX_ENTRIES;

/// Name of the round-robin position map.
pub const RR_MAP_NAME: &str = "baton_lb_rr";
/// `BPF_MAP_TYPE_ARRAY` indexed by service id: the capacity bounds service
/// ids, `1..=capacity-1` (4 B each, 256 KiB).
pub const RR_MAX_ENTRIES: u32 = 65_536;

/// Name of the per-service counters map.
pub const SERVICE_STATS_MAP_NAME: &str = "baton_svc_stats";
/// Capacity of the per-service counters: `BPF_MAP_TYPE_PERCPU_HASH` without
/// preallocation, keyed by service id, so only services that saw traffic
/// use memory (32 B per CPU each). When full, new services' samples are
/// lost and counted as [`crate::metrics::Event::StatsMapFull`].
pub const SERVICE_STATS_MAX_ENTRIES: u32 = 65_536;

/// Lookup scope of a [`ServiceKey`]: the only entry of most frontends, and
/// the entry traffic from outside the cluster uses.
pub const SCOPE_DEFAULT: u8 = 0;
/// Lookup scope of the second entry of a frontend whose in-cluster view
/// differs from its external one (flag [`SERVICE_F_TWO_SCOPES`] on the
/// default entry): socket LB and pod traffic use this one.
pub const SCOPE_INTERNAL: u8 = 1;

/// Key of the services map: one frontend.
///
/// NodePorts are stored once with `addr` 0.0.0.0 and match any local node
/// address (see [`crate::route::LOCAL_ADDRS_MAP_NAME`]); a NodePort on one
/// specific address uses that address.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Frontend address (ClusterIP, ExternalIP, LoadBalancer IP, node
    /// address, or 0.0.0.0 for "every local address").
    pub addr: [u8; 4],
    /// Frontend port.
    pub port: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub proto: u8,
    /// [`SCOPE_DEFAULT`] or [`SCOPE_INTERNAL`].
    pub scope: u8,
}
const _: () = assert!(size_of::<ServiceKey>() == 8);

/// What kind of frontend a [`ServiceValue`] is. The uplink translates only
/// frontends reachable from outside (everything but ClusterIP).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrontendKind {
    /// `spec.clusterIP`: reachable from inside the cluster only.
    ClusterIp = 1,
    /// `spec.ports[].nodePort` on a node address.
    NodePort = 2,
    /// `spec.externalIPs[]`.
    ExternalIp = 3,
    /// `status.loadBalancer.ingress[].ip`.
    LoadBalancer = 4,
}

impl FrontendKind {
    /// The kind with this wire value, if it is one.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::ClusterIp),
            2 => Some(Self::NodePort),
            3 => Some(Self::ExternalIp),
            4 => Some(Self::LoadBalancer),
            _ => None,
        }
    }

    /// Short stable name, as shown in dumps.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::ClusterIp => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::ExternalIp => "ExternalIP",
            Self::LoadBalancer => "LoadBalancer",
        }
    }

    /// Whether traffic from outside the cluster may use this frontend.
    #[must_use]
    pub const fn is_external(self) -> bool {
        !matches!(self, Self::ClusterIp)
    }
}

/// How a service picks a backend for a new connection.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Uniformly random slot (kube-proxy's behaviour).
    #[default]
    Random = 0,
    /// Maglev consistent hashing of the flow (the client for socket LB):
    /// the same client keeps its backend while unrelated backends change.
    Maglev = 1,
    /// Slots in turn, one shared position per service (exact rotation).
    RoundRobin = 2,
    /// The backend with the fewest active connections among up to
    /// [`LEAST_CONN_CANDIDATES`] consecutive slots from a random start:
    /// exact for services with that many backends or fewer, the
    /// power-of-d-choices approximation above.
    LeastConnections = 3,
}

impl Algorithm {
    /// The algorithm with this wire value, if it is one.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Random),
            1 => Some(Self::Maglev),
            2 => Some(Self::RoundRobin),
            3 => Some(Self::LeastConnections),
            _ => None,
        }
    }

    /// Short stable name, as shown in dumps and accepted in annotations.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Maglev => "maglev",
            Self::RoundRobin => "round-robin",
            Self::LeastConnections => "least-connections",
        }
    }
}

/// Slots least-connections compares per decision: a constant, so the choice
/// costs the same whatever the number of backends.
pub const LEAST_CONN_CANDIDATES: u16 = 4;

/// The frontend only uses node-local backends (externalTrafficPolicy or
/// internalTrafficPolicy `Local`); `count` counts only those. With none, the
/// frontend refuses new connections.
pub const SERVICE_F_LOCAL_ONLY: u16 = 1 << 0;
/// ClientIP session affinity: a client keeps its backend for
/// `affinity_timeout_s` seconds after its last new connection.
pub const SERVICE_F_AFFINITY: u16 = 1 << 1;
/// This [`SCOPE_DEFAULT`] entry is the external view; in-cluster traffic
/// must look up the [`SCOPE_INTERNAL`] entry of the same frontend.
pub const SERVICE_F_TWO_SCOPES: u16 = 1 << 2;
/// The slots hold terminating-but-serving backends because the view has no
/// ready one (Kubernetes' graceful-termination fallback).
pub const SERVICE_F_TERMINATING_FALLBACK: u16 = 1 << 3;

/// Value of the services map: the "master" entry of one frontend.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceValue {
    /// Service id: keys the slots, affinity, round-robin position and
    /// counters. Shared by every frontend of a service.
    pub service_id: u32,
    /// Backends this frontend may use: `count` slots of bank `bank` from
    /// `slot_offset + 1`. 0 means none: new connections are refused.
    pub count: u16,
    /// `SERVICE_F_*` bits.
    pub flags: u16,
    /// An [`Algorithm`] value.
    pub algorithm: u8,
    /// A [`FrontendKind`] value.
    pub kind: u8,
    /// Which bank of slots (0 or 1) is current.
    pub bank: u8,
    pub _pad0: u8,
    /// Session-affinity timeout in seconds (with [`SERVICE_F_AFFINITY`]).
    pub affinity_timeout_s: u32,
    /// Index of this frontend's Maglev table (with [`Algorithm::Maglev`]).
    pub maglev_table: u32,
    /// Slots of this frontend's view are `slot_offset + 1 ..= slot_offset +
    /// count`: a service whose internal and external views hold different
    /// backends keeps both in one bank, one after the other.
    pub slot_offset: u16,
    pub _pad1: u16,
}
const _: () = assert!(size_of::<ServiceValue>() == 24);

/// Key of the slots map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    /// The service.
    pub service_id: u32,
    /// Slot number, from 1 (see [`ServiceValue::slot_offset`]).
    pub slot: u16,
    /// Bank 0 or 1.
    pub bank: u8,
    pub _pad: u8,
}
const _: () = assert!(size_of::<SlotKey>() == 8);

/// Value of the slots map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SlotValue {
    /// The backend in this slot.
    pub backend_id: u32,
}
const _: () = assert!(size_of::<SlotValue>() == 4);

/// Backend state: ready backends get new connections.
pub const BACKEND_STATE_ACTIVE: u8 = 0;
/// Backend state: terminating but still serving. It is only in slots when
/// its service view has no ready backend; existing flows to it continue.
pub const BACKEND_STATE_TERMINATING: u8 = 1;

/// The backend runs on this node (a pod endpoint of this node): traffic
/// from outside reaches it without SNAT.
pub const BACKEND_F_LOCAL: u8 = 1 << 0;

/// Value of the backends map (key: backend id, `u32`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Backend {
    /// Backend address (a pod IP, or any address for services without
    /// selectors).
    pub addr: [u8; 4],
    /// Backend port.
    pub port: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub proto: u8,
    /// `BACKEND_STATE_*`.
    pub state: u8,
    /// `BACKEND_F_*` bits.
    pub flags: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<Backend>() == 12);

/// Key of the membership map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberKey {
    /// The service.
    pub service_id: u32,
    /// A backend the service currently uses.
    pub backend_id: u32,
}
const _: () = assert!(size_of::<MemberKey>() == 8);

/// Value of the membership map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MemberValue {
    /// Weight the backend has in this service (slots or Maglev share).
    pub weight: u32,
}
const _: () = assert!(size_of::<MemberValue>() == 4);

/// Value of the Maglev map (key: `table × M + position`, `u32`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MaglevEntry {
    /// The backend for flows hashing to this position.
    pub backend_id: u32,
}
const _: () = assert!(size_of::<MaglevEntry>() == 4);

/// [`AffinityKey::client_kind`]: the client is a network-namespace cookie
/// (socket LB, where the source address is not known yet at `connect`).
pub const AFFINITY_CLIENT_NETNS: u8 = 1;
/// [`AffinityKey::client_kind`]: the client is an IPv4 address (packet
/// path), in the low four bytes of `client` in network order.
pub const AFFINITY_CLIENT_ADDR: u8 = 2;

/// Key of the session-affinity map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    /// Network-namespace cookie or IPv4 address, per `client_kind`.
    pub client: u64,
    /// The service.
    pub service_id: u32,
    /// `AFFINITY_CLIENT_*`.
    pub client_kind: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<AffinityKey>() == 16);

/// Value of the session-affinity map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AffinityValue {
    /// The backend the client keeps.
    pub backend_id: u32,
    pub _pad: u32,
    /// `CLOCK_MONOTONIC` time (ns) of the client's last new connection.
    pub last_used_ns: u64,
}
const _: () = assert!(size_of::<AffinityValue>() == 16);

/// Value of the per-backend connection-count map (index: backend id).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BackendConns {
    /// Connected sockets translated to this backend by socket LB, counted
    /// at `connect` and uncounted at `sock_release` (exact: the count lives
    /// in socket storage, which dies with the socket).
    pub sockets: u32,
    /// Conntrack flows to this backend that are not closed, counted when
    /// the flow is created and uncounted at FIN/RST or when baton-node's
    /// conntrack GC removes the expired entry.
    pub flows: u32,
}
const _: () = assert!(size_of::<BackendConns>() == 8);

/// Value of the round-robin map (index: service id).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RrState {
    /// Incremented atomically by every round-robin decision; the slot is
    /// `next % count + 1`.
    pub next: u32,
}
const _: () = assert!(size_of::<RrState>() == 4);

/// Value of the per-service counters map (key: service id, `u32`; per CPU,
/// readers sum the CPUs).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceStats {
    /// New connections or flows sent to a backend (socket LB connects and
    /// UDP sends to a new backend, new conntrack flows).
    pub new_flows: u64,
    /// New connections refused because no backend was usable.
    pub refused: u64,
    /// Packets translated by the packet path (socket LB has no packets).
    pub packets: u64,
    /// Bytes of those packets.
    pub bytes: u64,
}
const _: () = assert!(size_of::<ServiceStats>() == 32);

#[cfg(feature = "user")]
#[allow(unsafe_code)]
mod pod {
    use super::*;

    // SAFETY (all impls below): each type is `#[repr(C)]`, made only of
    // integers and integer arrays, has no implicit padding (every gap is a
    // named `_pad` field and the size is asserted next to the type), and
    // every bit pattern is a valid value.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for ServiceValue {}
    unsafe impl aya::Pod for SlotKey {}
    unsafe impl aya::Pod for SlotValue {}
    unsafe impl aya::Pod for Backend {}
    unsafe impl aya::Pod for MemberKey {}
    unsafe impl aya::Pod for MemberValue {}
    unsafe impl aya::Pod for MaglevEntry {}
    unsafe impl aya::Pod for AffinityKey {}
    unsafe impl aya::Pod for AffinityValue {}
    unsafe impl aya::Pod for BackendConns {}
    unsafe impl aya::Pod for RrState {}
    unsafe impl aya::Pod for ServiceStats {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for kind in [
            FrontendKind::ClusterIp,
            FrontendKind::NodePort,
            FrontendKind::ExternalIp,
            FrontendKind::LoadBalancer,
        ] {
            assert_eq!(FrontendKind::from_u8(kind as u8), Some(kind));
        }
        assert_eq!(FrontendKind::from_u8(0), None);
        for algorithm in [
            Algorithm::Random,
            Algorithm::Maglev,
            Algorithm::RoundRobin,
            Algorithm::LeastConnections,
        ] {
            assert_eq!(Algorithm::from_u8(algorithm as u8), Some(algorithm));
        }
    }

    #[test]
    fn maglev_default_size_is_prime() {
        let m = MAGLEV_TABLE_SIZE;
        assert!(
            (2..m)
                .take_while(|d| d * d <= m)
                .all(|d| !m.is_multiple_of(d))
        );
    }

    #[test]
    fn map_names_fit_the_kernel_name_length() {
        // BPF_OBJ_NAME_LEN is 16 including the NUL: longer names are cut
        // in `bpftool map` output.
        for name in crate::PINNED_MAPS {
            assert!(name.len() <= 15, "{name} is longer than 15 bytes");
        }
    }
}
