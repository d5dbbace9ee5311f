//! The metrics map: packets and bytes per (reason, direction).
//!
//! Modelled on Cilium's `cilium_metrics`: reason 0 means the packet was
//! forwarded; reasons 1..=127 are [`Event`]s (outcomes that do not drop the
//! packet, such as a translation, and map-full events that lose only
//! bookkeeping), and [`DropReason`] values start at 128.

/// Name of the metrics map in the eBPF object (and of its pin file).
pub const METRICS_MAP_NAME: &str = "baton_metrics";

/// Capacity of the metrics map. One entry exists per (reason, direction) pair
/// that has been seen; reasons are a `u8` and there are three directions, so
/// 1024 can never fill. Should it ever be full, the program keeps passing packets
/// and the sample is lost (the map is observability, not state).
pub const METRICS_MAP_MAX_ENTRIES: u32 = 1024;

/// Metrics reason of a packet that went on its way normally.
pub const REASON_FORWARDED: u8 = 0;

/// Outcomes other than plain forwarding that do not drop the packet, and
/// events worth counting. Values are below 128; wire values never change
/// meaning.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A service translation (DNAT, SNAT) or its reverse was applied and
    /// the packet went on.
    Translated = 1,
    /// The packet was delivered by a redirect (to a local pod with
    /// `bpf_redirect_peer`, or out of a device after a FIB lookup).
    Redirected = 2,
    /// A TCP RST or ICMP unreachable was generated and sent back in place
    /// of a packet dropped for [`DropReason::NoServiceBackends`].
    RejectSent = 3,
    /// An ICMP error about a translated flow was translated too.
    IcmpErrorTranslated = 4,
    /// A per-service counter could not be created (the stats map is full):
    /// the sample is lost, the traffic is not affected.
    StatsMapFull = 10,
    /// A session-affinity entry could not be created: the connection went
    /// on, but the next one of that client may pick another backend.
    AffinityMapFull = 11,
    /// A socket reverse-translation entry could not be created: replies of
    /// that UDP socket show the backend's address instead of the service's.
    RevSkMapFull = 12,
    /// Socket storage could not be created for a translated socket: its
    /// connection is not counted for least-connections and `getpeername`
    /// falls back to the reverse map.
    SockStateUnavailable = 13,
}

impl Event {
    /// Every event, in wire order.
    pub const ALL: [Self; 8] = [
        Self::Translated,
        Self::Redirected,
        Self::RejectSent,
        Self::IcmpErrorTranslated,
        Self::StatsMapFull,
        Self::AffinityMapFull,
        Self::RevSkMapFull,
        Self::SockStateUnavailable,
    ];

    /// Short stable name, as shown in dumps and metric labels.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Translated => "translated",
            Self::Redirected => "redirected",
            Self::RejectSent => "reject_sent",
            Self::IcmpErrorTranslated => "icmp_error_translated",
            Self::StatsMapFull => "stats_map_full",
            Self::AffinityMapFull => "affinity_map_full",
            Self::RevSkMapFull => "revsk_map_full",
            Self::SockStateUnavailable => "sock_state_unavailable",
        }
    }

    /// The event with this wire value, if it is one.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Translated),
            2 => Some(Self::Redirected),
            3 => Some(Self::RejectSent),
            4 => Some(Self::IcmpErrorTranslated),
            10 => Some(Self::StatsMapFull),
            11 => Some(Self::AffinityMapFull),
            12 => Some(Self::RevSkMapFull),
            13 => Some(Self::SockStateUnavailable),
            _ => None,
        }
    }
}

/// Why a packet (or a socket operation) was dropped. Discriminants are wire
/// values and never change meaning; new reasons get new numbers.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The frame ended inside a header it claims to carry (Ethernet, IPv4,
    /// TCP, UDP, ICMP, or the header quoted by an ICMP error).
    Truncated = 128,
    /// An IPv4 header that cannot be valid: version other than 4 or a header
    /// length (IHL) below 5 words.
    InvalidIpv4Header = 129,
    /// The service has no usable backend (none at all, or none on this node
    /// for a Local traffic policy). A TCP SYN is answered with an RST, UDP
    /// with ICMP port unreachable, a socket `connect`/`sendmsg` fails with
    /// `ECONNREFUSED`.
    NoServiceBackends = 130,
    /// A conntrack entry for a new translated flow could not be created.
    ConntrackFull = 131,
    /// No free SNAT port was found for a flow to a remote backend.
    NatPortsExhausted = 132,
    /// A packet reached translation without what it needs (TCP/UDP ports,
    /// an ICMP header): counted and dropped rather than mis-translated.
    /// (Non-first fragments carry no ports and are never matched to a
    /// frontend; they pass untouched.)
    Unsupported = 133,
    /// A backend slot names a backend that is not in the backends map (the
    /// maps are inconsistent; baton-node never writes this state).
    BackendMissing = 134,
    /// No route to the destination of a routed or translated packet (a FIB
    /// blackhole/unreachable/prohibit route, or no SNAT address configured
    /// for a flow to a remote backend).
    NoRoute = 135,
    /// A redirect helper refused the packet.
    RedirectFailed = 136,
    /// A packet rewrite (store or checksum helper) failed.
    RewriteFailed = 137,
    /// A translated TCP segment other than a SYN arrived for a flow that
    /// conntrack does not know (expired or evicted): it cannot be sent to
    /// the right backend.
    ConntrackMiss = 138,
}

impl DropReason {
    /// Every drop reason, in wire order.
    pub const ALL: [Self; 11] = [
        Self::Truncated,
        Self::InvalidIpv4Header,
        Self::NoServiceBackends,
        Self::ConntrackFull,
        Self::NatPortsExhausted,
        Self::Unsupported,
        Self::BackendMissing,
        Self::NoRoute,
        Self::RedirectFailed,
        Self::RewriteFailed,
        Self::ConntrackMiss,
    ];

    /// Short stable name, as shown in dumps and metric labels.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::InvalidIpv4Header => "invalid_ipv4_header",
            Self::NoServiceBackends => "no_service_backends",
            Self::ConntrackFull => "conntrack_full",
            Self::NatPortsExhausted => "nat_ports_exhausted",
            Self::Unsupported => "unsupported",
            Self::BackendMissing => "backend_missing",
            Self::NoRoute => "no_route",
            Self::RedirectFailed => "redirect_failed",
            Self::RewriteFailed => "rewrite_failed",
            Self::ConntrackMiss => "conntrack_miss",
        }
    }

    /// The reason with this wire value, if it is one.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            128 => Some(Self::Truncated),
            129 => Some(Self::InvalidIpv4Header),
            130 => Some(Self::NoServiceBackends),
            131 => Some(Self::ConntrackFull),
            132 => Some(Self::NatPortsExhausted),
            133 => Some(Self::Unsupported),
            134 => Some(Self::BackendMissing),
            135 => Some(Self::NoRoute),
            136 => Some(Self::RedirectFailed),
            137 => Some(Self::RewriteFailed),
            138 => Some(Self::ConntrackMiss),
            _ => None,
        }
    }
}

/// Name of a metrics reason as stored in [`MetricsKey::reason`]: `forwarded`,
/// an [`Event::name`], a [`DropReason::name`], or `unknown` for a value this
/// build does not know (for example one written by a newer program into a
/// pinned map).
#[must_use]
pub const fn reason_name(reason: u8) -> &'static str {
    if reason == REASON_FORWARDED {
        return "forwarded";
    }
    if let Some(event) = Event::from_u8(reason) {
        return event.name();
    }
    match DropReason::from_u8(reason) {
        Some(drop) => drop.name(),
        None => "unknown",
    }
}

/// Traffic direction as seen from the device a program is attached to.
/// Values 1 and 2 follow Cilium's `METRIC_INGRESS`/`METRIC_EGRESS`; 0 is never
/// used so that a zeroed key is recognisably invalid.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Packets received by the device.
    Ingress = 1,
    /// Packets sent by the device.
    Egress = 2,
    /// Socket operations seen by the cgroup hooks (connect, sendmsg, ...):
    /// no device is involved.
    Socket = 3,
}

impl Direction {
    /// Short stable name, as shown in dumps and metric labels.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
            Self::Socket => "socket",
        }
    }

    /// The direction with this wire value, if it is one.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Ingress),
            2 => Some(Self::Egress),
            3 => Some(Self::Socket),
            _ => None,
        }
    }
}

/// Key of the metrics map. Holds raw `u8`s rather than the enums so that any
/// bit pattern read back from the kernel is a valid value of this type.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricsKey {
    /// [`REASON_FORWARDED`], an [`Event`] or a [`DropReason`] value.
    pub reason: u8,
    /// A [`Direction`] value.
    pub direction: u8,
}
const _: () = assert!(size_of::<MetricsKey>() == 2);

impl MetricsKey {
    /// Key for packets forwarded in `direction`.
    #[must_use]
    pub const fn forwarded(direction: Direction) -> Self {
        Self {
            reason: REASON_FORWARDED,
            direction: direction as u8,
        }
    }

    /// Key for `event` in `direction`.
    #[must_use]
    pub const fn event(event: Event, direction: Direction) -> Self {
        Self {
            reason: event as u8,
            direction: direction as u8,
        }
    }

    /// Key for packets with drop reason `reason` in `direction`.
    #[must_use]
    pub const fn dropped(reason: DropReason, direction: Direction) -> Self {
        Self {
            reason: reason as u8,
            direction: direction as u8,
        }
    }
}

/// Value of the metrics map (per CPU; readers sum the CPUs).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsValue {
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted: the full frame length as the program saw it (`skb->len`,
    /// including the Ethernet header).
    pub bytes: u64,
}
const _: () = assert!(size_of::<MetricsValue>() == 16);

#[cfg(feature = "user")]
#[allow(unsafe_code)]
mod pod {
    use super::{MetricsKey, MetricsValue};

    // SAFETY: `MetricsKey` is `#[repr(C)]`, made only of `u8` fields, has no
    // padding (size asserted to be 2) and every bit pattern is a valid value.
    unsafe impl aya::Pod for MetricsKey {}
    // SAFETY: `MetricsValue` is `#[repr(C)]`, made of two `u64`s with no
    // padding (size asserted to be 16) and every bit pattern is a valid value.
    unsafe impl aya::Pod for MetricsValue {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_round_trip_and_stay_out_of_the_forward_range() {
        for reason in DropReason::ALL {
            assert_eq!(DropReason::from_u8(reason as u8), Some(reason));
            assert!(reason as u8 >= 128, "{} is below 128", reason.name());
            assert_eq!(reason_name(reason as u8), reason.name());
        }
        assert_eq!(reason_name(REASON_FORWARDED), "forwarded");
        assert_eq!(reason_name(127), "unknown");
    }

    #[test]
    fn events_round_trip_and_stay_in_the_non_drop_range() {
        for event in Event::ALL {
            assert_eq!(Event::from_u8(event as u8), Some(event));
            assert!((1..128).contains(&(event as u8)), "{}", event.name());
            assert_eq!(reason_name(event as u8), event.name());
        }
    }

    #[test]
    fn directions_round_trip_and_zero_is_invalid() {
        for direction in [Direction::Ingress, Direction::Egress, Direction::Socket] {
            assert_eq!(Direction::from_u8(direction as u8), Some(direction));
        }
        assert_eq!(Direction::from_u8(0), None);
    }

    #[test]
    fn metrics_map_holds_every_reason_and_direction() {
        assert!(METRICS_MAP_MAX_ENTRIES as usize >= 256 * 3);
    }
}
