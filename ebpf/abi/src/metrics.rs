//! The metrics map: packets and bytes per (reason, direction).
//!
//! Modelled on Cilium's `cilium_metrics`: reason 0 means the packet was
//! forwarded; every other reason names why a packet was (or, where a program
//! only observes for now, would be) dropped. Reasons below 128 are kept for
//! non-drop outcomes, [`DropReason`] values start at 128.

/// Name of the metrics map in the eBPF object (and of its pin file).
pub const METRICS_MAP_NAME: &str = "baton_metrics";

/// Capacity of the metrics map. One entry exists per (reason, direction) pair
/// that has been seen; reasons are a `u8` and there are two directions, so 512
/// can never fill. Should it ever be full, the program keeps passing packets
/// and the sample is lost (the map is observability, not state).
pub const METRICS_MAP_MAX_ENTRIES: u32 = 512;

/// Metrics reason of a packet that went on its way normally.
pub const REASON_FORWARDED: u8 = 0;

/// Why a packet was dropped, or would have been by a program that so far only
/// observes. Discriminants are wire values and never change meaning; new
/// reasons get new numbers.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The frame ended inside a header it claims to carry (Ethernet, IPv4,
    /// TCP, UDP).
    Truncated = 128,
    /// An IPv4 header that cannot be valid: version other than 4 or a header
    /// length (IHL) below 5 words.
    InvalidIpv4Header = 129,
}

impl DropReason {
    /// Every drop reason, in wire order.
    pub const ALL: [Self; 2] = [Self::Truncated, Self::InvalidIpv4Header];

    /// Short stable name, as shown in dumps and metric labels.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::InvalidIpv4Header => "invalid_ipv4_header",
        }
    }

    /// The reason with this wire value, if it is one.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            128 => Some(Self::Truncated),
            129 => Some(Self::InvalidIpv4Header),
            _ => None,
        }
    }
}

/// Name of a metrics reason as stored in [`MetricsKey::reason`]: `forwarded`,
/// a [`DropReason::name`], or `unknown` for a value this build does not know
/// (for example one written by a newer program into a pinned map).
#[must_use]
pub const fn reason_name(reason: u8) -> &'static str {
    if reason == REASON_FORWARDED {
        return "forwarded";
    }
    match DropReason::from_u8(reason) {
        Some(drop) => drop.name(),
        None => "unknown",
    }
}

/// Traffic direction as seen from the device a program is attached to.
/// Values follow Cilium's `METRIC_INGRESS`/`METRIC_EGRESS`; 0 is never used so
/// that a zeroed key is recognisably invalid.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Packets received by the device.
    Ingress = 1,
    /// Packets sent by the device.
    Egress = 2,
}

impl Direction {
    /// Short stable name, as shown in dumps and metric labels.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }

    /// The direction with this wire value, if it is one.
    #[must_use]
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Ingress),
            2 => Some(Self::Egress),
            _ => None,
        }
    }
}

/// Key of the metrics map. Holds raw `u8`s rather than the enums so that any
/// bit pattern read back from the kernel is a valid value of this type.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricsKey {
    /// [`REASON_FORWARDED`] or a [`DropReason`] value.
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
    fn directions_round_trip_and_zero_is_invalid() {
        for direction in [Direction::Ingress, Direction::Egress] {
            assert_eq!(Direction::from_u8(direction as u8), Some(direction));
        }
        assert_eq!(Direction::from_u8(0), None);
    }

    #[test]
    fn metrics_map_holds_every_reason_and_direction() {
        assert!(METRICS_MAP_MAX_ENTRIES as usize >= 256 * 2);
    }
}
