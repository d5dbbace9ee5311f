//! Counters: per-CPU packets and bytes by (reason, direction) in the
//! `baton_metrics` map, and per-service counters in `baton_svc_stats`.

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_NOEXIST},
    macros::map,
    maps::PerCpuHashMap,
};
use baton_abi::{
    Direction, DropReason, METRICS_MAP_MAX_ENTRIES, MetricsKey, MetricsValue,
    lb::{SERVICE_STATS_MAX_ENTRIES, ServiceStats},
    metrics::Event,
};

// Map names must equal the ABI constants (the attribute takes a literal);
// baton-node's tests check the embedded object against the ABI.
#[map(name = "baton_metrics")]
static METRICS: PerCpuHashMap<MetricsKey, MetricsValue> =
    PerCpuHashMap::with_max_entries(METRICS_MAP_MAX_ENTRIES, 0);

#[map(name = "baton_svc_stats")]
static SERVICE_STATS: PerCpuHashMap<u32, ServiceStats> =
    PerCpuHashMap::with_max_entries(SERVICE_STATS_MAX_ENTRIES, BPF_F_NO_PREALLOC);

/// Counts one packet of `bytes` bytes under `key`.
///
/// The value is this CPU's slot of a per-CPU map and tc programs run with
/// bottom halves disabled, so nothing else updates the slot meanwhile and plain
/// adds are enough (as in Cilium's `update_metrics`). If the map is full the
/// sample is lost; counting never changes what happens to the packet.
#[inline(always)]
pub fn count(key: MetricsKey, bytes: u32) {
    if add(&key, bytes) {
        return;
    }
    let first = MetricsValue {
        packets: 1,
        bytes: u64::from(bytes),
    };
    // Another CPU may create the entry between the lookup and the insert; the
    // insert then fails with EEXIST and the entry can be updated in place.
    if METRICS.insert(key, first, u64::from(BPF_NOEXIST)).is_err() {
        add(&key, bytes);
    }
}

/// Counts a packet forwarded in `direction`.
#[inline(always)]
pub fn forwarded(direction: Direction, bytes: u32) {
    count(MetricsKey::forwarded(direction), bytes);
}

/// Counts `event` in `direction`.
#[inline(always)]
pub fn event(event: Event, direction: Direction, bytes: u32) {
    count(MetricsKey::event(event, direction), bytes);
}

/// Counts a drop for `reason` in `direction`.
#[inline(always)]
pub fn dropped(reason: DropReason, direction: Direction, bytes: u32) {
    count(MetricsKey::dropped(reason, direction), bytes);
}

#[inline(always)]
fn add(key: &MetricsKey, bytes: u32) -> bool {
    match METRICS.get_ptr_mut(key) {
        Some(value) => {
            // SAFETY: the pointer comes from a successful lookup in a per-CPU
            // hash map, so it points at this CPU's properly aligned
            // `MetricsValue`, valid for the rest of the program run; no other
            // context writes this CPU's slot concurrently (see `count`).
            unsafe {
                (*value).packets += 1;
                (*value).bytes += u64::from(bytes);
            }
            true
        }
        None => false,
    }
}

/// What to add to a service's counters.
#[derive(Clone, Copy)]
pub struct ServiceSample {
    pub new_flows: u64,
    pub refused: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl ServiceSample {
    /// A new connection or flow sent to a backend.
    pub const NEW_FLOW: Self = Self {
        new_flows: 1,
        refused: 0,
        packets: 0,
        bytes: 0,
    };
    /// A new connection refused for lack of backends.
    pub const REFUSED: Self = Self {
        new_flows: 0,
        refused: 1,
        packets: 0,
        bytes: 0,
    };

    /// One translated packet of `bytes` bytes.
    #[inline(always)]
    pub const fn packet(bytes: u32) -> Self {
        Self {
            new_flows: 0,
            refused: 0,
            packets: 1,
            bytes: bytes as u64,
        }
    }
}

/// Adds `sample` to the counters of `service_id` (per CPU, like `count`). A
/// full map loses the sample and counts [`Event::StatsMapFull`].
#[inline(always)]
pub fn service(service_id: u32, sample: ServiceSample, direction: Direction) {
    if add_service(service_id, sample) {
        return;
    }
    let first = ServiceStats {
        new_flows: sample.new_flows,
        refused: sample.refused,
        packets: sample.packets,
        bytes: sample.bytes,
    };
    match SERVICE_STATS.insert(service_id, first, u64::from(BPF_NOEXIST)) {
        Ok(()) => {}
        Err(_) if add_service(service_id, sample) => {}
        Err(_) => event(Event::StatsMapFull, direction, 0),
    }
}

#[inline(always)]
fn add_service(service_id: u32, sample: ServiceSample) -> bool {
    match SERVICE_STATS.get_ptr_mut(service_id) {
        Some(value) => {
            // SAFETY: as in `add`: this CPU's slot of a per-CPU map, from a
            // successful lookup. Socket hooks run with preemption disabled
            // (cgroup programs run under `migrate_disable` + RCU and the
            // update is not interleaved with another program on this CPU for
            // the same slot in practice); a lost increment would only make a
            // counter low by one.
            unsafe {
                (*value).new_flows += sample.new_flows;
                (*value).refused += sample.refused;
                (*value).packets += sample.packets;
                (*value).bytes += sample.bytes;
            }
            true
        }
        None => false,
    }
}
